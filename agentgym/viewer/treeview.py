"""What the tree page receives: a trajectory tree as JSON shaped for display, and sibling diffs.

Prefix token ids (chat-template and observation tokens, never trained on) are sent only as counts; the
sampled tokens are sent with their entropies, log-probs and decoded pieces (see `tokens`). Everything else
a node carries (observation text, memory, images, tool calls, rewards, advantages, timings, info) is sent
as stored, so a new env's observations need no viewer change.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from agentgym.trajectory import TrajectoryTree, Turn, path_segments
from agentgym.viewer.tokens import TokenizerChoice, proportional_pieces, token_pieces

_DIFF_UNIT = re.compile(r"\s+|\w+|[^\w\s]")  # words, runs of space, single punctuation


def node_json(tree: TrajectoryTree, node: Turn, children: list[int], tokenizer: TokenizerChoice) -> dict[str, Any]:
    d = node.model_dump(exclude={"prefix_ids"})
    d["prefix_tokens"] = len(node.prefix_ids)
    d["children"] = children
    if tokenizer.exact:
        d["pieces"] = token_pieces(tokenizer.tokenizer, node.action_ids)
    else:
        d["pieces"] = proportional_pieces(node.action_text, len(node.action_ids))
    entropies = node.entropies
    d["mean_entropy"] = sum(entropies) / len(entropies) if entropies else None
    d["max_entropy"] = max(entropies) if entropies else None
    d["leaf_reward"] = tree.final_rewards.get(node.id) if not children else None
    return finite(d)


def finite(value: Any) -> Any:
    """NaN and infinities become null: JSON has no spelling for them, and a diverged run does produce them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def tree_json(tree: TrajectoryTree, tokenizer: TokenizerChoice, n: int | None = None,
              source: str = "") -> dict[str, Any]:
    children: dict[int, list[int]] = {i: [] for i in range(len(tree.nodes))}
    for node in tree.nodes:
        if node.parent is not None:
            children[node.parent].append(node.id)
    leaves = tree.leaves()
    return {
        "n": n, "source": source, "id": tree.id, "env_id": tree.env_id, "seed": tree.seed, "step": tree.step,
        "policy_version": tree.policy_version, "created_at": tree.created_at, "task": tree.task,
        "initial_observation": tree.initial_observation.model_dump() if tree.initial_observation else None,
        "timings": finite(tree.timings), "meta": finite(tree.meta), "roots": tree.roots(), "leaves": leaves,
        "branch_points": tree.branch_points(),
        "final_rewards": finite({str(k): v for k, v in tree.final_rewards.items()}),
        "default_node": default_node(tree, leaves),
        "tokenizer": {"name": tokenizer.name, "exact": tokenizer.exact, "note": tokenizer.note},
        "nodes": [node_json(tree, node, children[node.id], tokenizer) for node in tree.nodes],
        "segments": training_segments(tree, leaves),
    }


def training_segments(tree: TrajectoryTree, leaves: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Per leaf, the training sequences its path is cut into (the trainer's `path_segments`): the turns in
    each and its trained-token count, so the page can say which sample a turn was trained in."""
    out: dict[str, list[dict[str, Any]]] = {}
    for leaf in leaves:
        try:
            segments = path_segments(tree, leaf)
        except ValueError:  # a malformed stored node (log-probs and ids differ): shown as is, not segmented
            continue
        out[str(leaf)] = [{"nodes": [t[0] for t in seg.turns], "tokens": len(seg.input_ids),
                           "trained_tokens": sum(seg.loss_mask)} for seg in segments]
    return out


def default_node(tree: TrajectoryTree, leaves: list[int] | None = None) -> int | None:
    """The node the page opens on: the leaf of the first branch if the tree has one (branches are what
    this viewer is for), else the first leaf."""
    leaves = leaves if leaves is not None else tree.leaves()
    if not leaves:
        return None
    for branch in tree.branch_points():
        for leaf in leaves:
            if any(t.id == branch for t in tree.path(leaf)):
                return leaf
    return leaves[0]


def first_leaf_below(tree: TrajectoryTree, node_id: int) -> int:
    cur = node_id
    while kids := tree.children(cur):
        cur = kids[0]
    return cur


def transcript(tree: TrajectoryTree, node_id: int) -> str:
    """What happened from `node_id` down to its first leaf: actions and observations, as one text."""
    parts = []
    for turn in tree.path(first_leaf_below(tree, node_id)):
        if turn.depth < tree.nodes[node_id].depth:
            continue
        parts.append(turn.action_text)
        if turn.observation and turn.observation.text:
            parts.append(turn.observation.text)
    return "\n".join(parts)


def diff_ops(a: str, b: str) -> list[list[str]]:
    """Word-level diff: [["equal"|"delete"|"insert", text], ...] turning `a` into `b`."""
    ua, ub = _DIFF_UNIT.findall(a), _DIFF_UNIT.findall(b)
    ops: list[list[str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ua, ub, autojunk=False).get_opcodes():
        if tag in ("equal", "delete", "replace"):
            ops.append(["equal" if tag == "equal" else "delete", "".join(ua[i1:i2])])
        if tag in ("insert", "replace"):
            ops.append(["insert", "".join(ub[j1:j2])])
    return ops


def sibling_diff(tree: TrajectoryTree, a: int, b: int) -> dict[str, Any]:
    """Compare two branches that start from the same context (siblings): each from its node down to its
    first leaf. Raises ValueError if they are not siblings."""
    for node_id in (a, b):
        if not 0 <= node_id < len(tree.nodes):
            raise ValueError(f"no node {node_id} in tree {tree.id}")
    if tree.nodes[a].parent != tree.nodes[b].parent:
        raise ValueError(f"nodes {a} and {b} are not siblings (parents {tree.nodes[a].parent} and {tree.nodes[b].parent})")
    leaf_a, leaf_b = first_leaf_below(tree, a), first_leaf_below(tree, b)
    return {
        "a": a, "b": b, "leaf_a": leaf_a, "leaf_b": leaf_b,
        "reward_a": tree.leaf_reward(leaf_a), "reward_b": tree.leaf_reward(leaf_b),
        "ops": diff_ops(transcript(tree, a), transcript(tree, b)),
    }
