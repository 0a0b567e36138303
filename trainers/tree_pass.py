"""One forward pass per trajectory tree that scores a target after the context of every node (IGPO's
"efficient computation", reference/algorithms.md §3.2, generalised from a path to a tree).

Every node's tokens (inserted prefix, then sampled action) are laid out once; a token attends to its own
node's earlier tokens and to all tokens of the node's ancestors (a tree attention mask), with position ids
continuing along its path, so a prefix shared by several branches is computed once. After them come one
copy of (answer prefix + gold answer) per node, attending to the node's context (ancestors + the node's
prefix) and causally to itself, positioned where the node's action would start. The gold tokens' log-probs
in copy n are then exactly those of teacher forcing after `context_ids(n)` (tests: equal to the per-turn
computation within 1e-5). Needs the model itself (a Hugging Face policy) and trees whose contexts are
prefixes of their paths (no `rebuild_context`); `usable` says so.
"""

from __future__ import annotations

from typing import Any

import torch

from agentgym.trajectory import TrajectoryTree


def model_of(scorer: Any) -> torch.nn.Module | None:
    """The torch model behind a Hugging Face policy's bound `score` method, else None. None for a
    vision-language policy too: a tree pass feeds ids only, and image tokens need their pixels."""
    owner = getattr(scorer, "__self__", None)
    model = getattr(owner, "model", None)
    if getattr(owner, "image_input", "none") == "vision":
        return None
    return model if isinstance(model, torch.nn.Module) else None


def usable(tree: TrajectoryTree) -> bool:
    return not any(n.rebuild_context for n in tree.nodes)


def tree_pass_values(model: torch.nn.Module, tree: TrajectoryTree, nodes: list[int], prefix: list[int],
                     gold: list[int]) -> dict[int, float]:
    """node -> mean log-prob of `gold` after `context_ids(node) + prefix`, for `nodes` (closed under parents,
    i.e. whole paths from the roots)."""
    ids: list[int] = []
    pos: list[int] = []
    span: dict[int, tuple[int, int, int]] = {}  # node -> (start, end of its prefix, end) in `ids`
    for n in sorted(nodes):  # a parent is always added to a tree before its children
        node = tree.nodes[n]
        start = len(ids)
        first = 0 if node.parent is None else pos[span[node.parent][2] - 1] + 1
        ids += node.prefix_ids + node.action_ids
        pos += range(first, first + len(node.prefix_ids) + len(node.action_ids))
        span[n] = (start, start + len(node.prefix_ids), len(ids))
    copy = prefix + gold
    copies = {}
    for n in sorted(nodes):
        copies[n] = len(ids)
        first = pos[span[n][1] - 1] + 1 if span[n][1] > span[n][0] else _start_pos(tree, n, span, pos)
        ids += copy
        pos += range(first, first + len(copy))
    allowed = torch.zeros(len(ids), len(ids), dtype=torch.bool)
    causal = lambda a, b: torch.ones(b - a, b - a, dtype=torch.bool).tril()  # noqa: E731
    for n in sorted(nodes):
        start, mid, end = span[n]
        ancestors = [span[a.id] for a in tree.path(n)[:-1]]
        for a_start, _, a_end in ancestors:
            allowed[start:end, a_start:a_end] = True
            allowed[copies[n]:copies[n] + len(copy), a_start:a_end] = True
        allowed[start:end, start:end] = causal(start, end)
        allowed[copies[n]:copies[n] + len(copy), start:mid] = True
        allowed[copies[n]:copies[n] + len(copy), copies[n]:copies[n] + len(copy)] = causal(0, len(copy))
    device = next(model.parameters()).device
    mask = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)
    rows: dict[int, list[int]] = {}  # node -> the positions whose logits predict its gold tokens
    for n in sorted(nodes):
        rows[n] = [copies[n] + len(prefix) + j - 1 for j in range(len(gold))]
        if not prefix:  # the first gold token is predicted by the context's last token
            rows[n][0] = span[n][1] - 1 if span[n][1] > span[n][0] else span[tree.nodes[n].parent][2] - 1
    wanted = torch.tensor([r for n in sorted(nodes) for r in rows[n]])
    with torch.no_grad():  # the LM head only on the wanted rows: [tokens x vocabulary] logits would dominate
        hidden = model.get_decoder()(input_ids=torch.tensor([ids], device=device),
                                     attention_mask=mask[None, None].to(device),
                                     position_ids=torch.tensor([pos], device=device)).last_hidden_state[0]
        logits = model.get_output_embeddings()(hidden[wanted.to(device)])
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    targets = torch.tensor(gold * len(nodes))
    picked = logp.gather(-1, targets[:, None]).squeeze(-1).view(len(nodes), len(gold))
    return {n: float(picked[i].mean()) for i, n in enumerate(sorted(nodes))}


def _start_pos(tree: TrajectoryTree, n: int, span: dict, pos: list[int]) -> int:
    """Position of a node's first token when its prefix is empty: right after its parent's last token."""
    parent = tree.nodes[n].parent
    return 0 if parent is None else pos[span[parent][2] - 1] + 1
