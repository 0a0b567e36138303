"""Batched forward passes that score a target after the context of every node of a trajectory tree (IGPO's
"efficient computation", reference/algorithms.md §3.2: one pass per path over all its turns, generalised
from a path to a tree).

Layout. The trunk, the longest token prefix common to every scored path (a flat group's shared prompt, an
ARPO tree's turns before its first branch), is run once and its keys/values are shared by every row. Each
scored path is then one row of a batch: its context after the trunk, followed by one copy of (answer
prefix + gold answer) per node of the path whose value no earlier row computes, so a node shared by
branches is scored once. A copy attends to its node's context (trunk + the row's tokens before the node's
action) and causally to itself, with position ids continuing where the node's action would start; the
gold tokens' log-probs in that copy are then exactly those of teacher forcing after `context_ids(node)`
(tests: equal to the per-turn computation within 1e-5).

Why rows and not the whole tree as one packed sequence with a tree attention mask (the first version):
a masked attention is computed densely, so one sequence of all the tree's tokens costs attention quadratic
in the *tree's* length, against the sum of squared *path* lengths here. On the embedded model with 4 paths
of 1,280 tokens (CPU) the packed tree took 77 s for two trees, per-turn scoring 111 s
(bench/bench_igpo_scoring.py measures the rows against per-turn scoring). The price: turns shared by
branches below the trunk are recomputed in each branch's row (their gold copy is still scored once).

Needs the model itself (a Hugging Face policy) and trees whose contexts are prefixes of their paths (no
`rebuild_context`); `usable` says so. Rows are cut into forward passes of at most `max_tokens` query
tokens (at least one row each), which bounds the [rows x heads x length x length] attention weights.
"""

from __future__ import annotations

from typing import Any

import torch

from agentgym.trajectory import TrajectoryTree

MAX_TOKENS = 8192  # query tokens per forward pass (rows x padded row length)


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


class _Row:
    """One scored path: the context of its last node, and the nodes whose gold copies it carries."""

    def __init__(self, tokens: list[int], copies: list[tuple[int, int]]):
        self.tokens = tokens  # context_ids(end of the path)
        self.copies = copies  # (node, len(context_ids(node))), root first


def _rows(tree: TrajectoryTree, nodes: list[int]) -> list[_Row]:
    wanted, done, rows = set(nodes), set(), []
    ends = sorted(wanted - {tree.nodes[n].parent for n in wanted})  # the last node of each scored path
    for end in ends:
        path = tree.path(end)
        context, copies = 0, []  # no rebuild_context (`usable`): a node's context is its path's tokens before its action
        for node in path:
            context += len(node.prefix_ids)
            if node.id not in done:
                copies.append((node.id, context))
            context += len(node.action_ids)
        done.update(n.id for n in path)
        rows.append(_Row(tree.context_ids(end), copies))
    return rows


def tree_pass_values(model: torch.nn.Module, tree: TrajectoryTree, nodes: list[int], prefix: list[int],
                     gold: list[int], max_tokens: int = MAX_TOKENS) -> dict[int, float]:
    """node -> mean log-prob of `gold` after `context_ids(node) + prefix`, for `nodes` (closed under parents,
    i.e. whole paths from the roots)."""
    from agentgym.policies.kv_cache import common_prefix, forward_cache_name, supported

    rows = _rows(tree, nodes)
    shortest = min(c for row in rows for _, c in row.copies)
    if shortest == 0 and not prefix:
        raise ValueError("a node with an empty context and an empty answer prefix: nothing predicts the first "
                         "gold token")
    # The trunk stops before every copy's last context token, so a copy's first gold token (predicted by
    # that token when the prefix is empty) always has its logit in a row.
    shared = min(common_prefix(rows[0].tokens, row.tokens) for row in rows)
    trunk = max(0, min(shared, shortest - 1)) if supported(model.config) else 0
    device = next(model.parameters()).device
    decoder = model.get_decoder()
    cache_name = forward_cache_name(decoder)
    with torch.no_grad():
        past = None
        if trunk:
            out = decoder(input_ids=torch.tensor([rows[0].tokens[:trunk]], device=device), use_cache=True)
            past = [(layer.keys, layer.values) for layer in getattr(out, cache_name).layers]
        values: dict[int, float] = {}
        for chunk in _chunks(rows, trunk, len(prefix) + len(gold), max_tokens):
            values.update(_score_rows(model, decoder, chunk, trunk, past, prefix, gold, device, cache_name))
    return values


def _row_length(row: _Row, trunk: int, copy: int) -> int:
    return len(row.tokens) - trunk + copy * len(row.copies)


def _chunks(rows: list[_Row], trunk: int, copy: int, max_tokens: int) -> list[list[_Row]]:
    out: list[list[_Row]] = []
    for row in sorted(rows, key=lambda r: _row_length(r, trunk, copy)):
        if not out or (len(out[-1]) + 1) * _row_length(row, trunk, copy) > max_tokens:
            out.append([])  # rows come shortest first: this row sets the chunk's padded width
        out[-1].append(row)
    return out


def _score_rows(model: torch.nn.Module, decoder: Any, rows: list[_Row], trunk: int, past: list | None,
                prefix: list[int], gold: list[int], device: Any, cache_name: str) -> dict[int, float]:
    copy = prefix + gold
    width = max(_row_length(r, trunk, len(copy)) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    pos = torch.zeros(len(rows), width, dtype=torch.long)
    allowed = torch.zeros(len(rows), width, trunk + width, dtype=torch.bool)  # [row, query, trunk + row keys]
    allowed[:, :, 0] = True  # padding queries attend to something (their outputs are never read)
    wanted: list[tuple[int, int]] = []  # (row, query) whose logits predict each gold token, copy by copy
    order: list[int] = []
    for r, row in enumerate(rows):
        own = row.tokens[trunk:]
        ids[r, :len(own)] = torch.tensor(own, dtype=torch.long)
        pos[r, :len(own)] = torch.arange(trunk, trunk + len(own))
        allowed[r, :len(own), :trunk] = True
        allowed[r, :len(own), trunk:trunk + len(own)] = torch.ones(len(own), len(own), dtype=torch.bool).tril()
        at = len(own)
        for node, context in row.copies:
            span = slice(at, at + len(copy))
            ids[r, span] = torch.tensor(copy, dtype=torch.long)
            pos[r, span] = torch.arange(context, context + len(copy))
            allowed[r, span, :min(context, trunk)] = True
            allowed[r, span, trunk:trunk + max(context - trunk, 0)] = True
            allowed[r, span, trunk + at:trunk + at + len(copy)] = torch.ones(len(copy), len(copy), dtype=torch.bool).tril()
            first = at + len(prefix) - 1 if prefix else context - 1 - trunk  # predicts the first gold token
            wanted += [(r, first)] + [(r, at + len(prefix) + j - 1) for j in range(1, len(gold))]
            order.append(node)
            at += len(copy)
    mask = torch.zeros(allowed.shape, dtype=torch.float32).masked_fill(~allowed, torch.finfo(torch.float32).min)
    cache = None
    if past is not None:
        from transformers import DynamicCache

        expanded = [(k.expand(len(rows), -1, -1, -1), v.expand(len(rows), -1, -1, -1)) for k, v in past]
        cache = DynamicCache(ddp_cache_data=expanded, config=model.config)
    hidden = decoder(input_ids=ids.to(device), position_ids=pos.to(device), attention_mask=mask[:, None].to(device),
                     use_cache=cache is not None, **{cache_name: cache}).last_hidden_state
    rows_idx, cols_idx = torch.tensor(wanted).T
    # The LM head only on the wanted positions: [tokens x vocabulary] logits would dominate the pass.
    logits = model.get_output_embeddings()(hidden[rows_idx.to(device), cols_idx.to(device)])
    logp = torch.log_softmax(logits.float(), dim=-1).cpu()
    picked = logp.gather(-1, torch.tensor(gold * len(order))[:, None]).squeeze(-1).view(len(order), len(gold))
    return {n: float(picked[i].mean()) for i, n in enumerate(order)}
