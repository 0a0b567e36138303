"""IGPO's information gain on trajectory trees (reference/algorithms.md §3.2): how much more probable the
gold answer becomes, under the current policy (teacher forcing, no gradient), after each turn.

The value of a context is the gold answer's mean token log-prob when it follows the context and the answer
prefix. A node's "before" context is `context_ids(node)` (what the policy saw before its turn); its "after"
context is the context of its children (they all share it: an ARPO branch re-samples the child's turn from
the same context), so every value is a value of some node's context and a tree needs one per distinct
context. `batched_values` scores a tree in batched rows when the scorer is a Hugging Face policy's
(tree_pass.py: the tree's common prefix computed once, then one row per path with one gold-answer copy per
turn, a node shared by branches scored once); with other backends, every distinct context of the step's trees goes in ONE scorer call (a
server with prefix caching reuses the shared prefixes);
`naive_information_gain` scores each turn of each trajectory on its own, two calls per turn, as the
reference code's default path does. Both give the same numbers (tests/trainers/test_igpo.py).
"""

from __future__ import annotations

import math
from typing import Any

from agentgym.trainers.pieces import Scorer
from agentgym.trainers.tree_pass import model_of, tree_pass_values, usable
from agentgym.trajectory import TrajectoryTree


class MissingGoldAnswer(ValueError):
    """A task has no gold answer, so IGPO cannot teacher-force one."""


def gold_answer(task: dict[str, Any]) -> str:
    """The first gold answer of a task (``golden_answers`` as in Search-R1, else ``answer``); only the first
    alias is scored, as in the reference code."""
    golden = task.get("golden_answers")
    answer = golden[0] if isinstance(golden, list) and golden else task.get("answer")
    if not isinstance(answer, (str, int, float)) or isinstance(answer, bool) or not str(answer).strip():
        raise MissingGoldAnswer(f"IGPO needs a gold answer for every question, but task "
                                f"{task.get('id', task.get('question', task))!r} has none "
                                "(give it 'golden_answers' or 'answer')")
    return str(answer).strip()


def encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def scored_nodes(tree: TrajectoryTree, leaves: list[int]) -> list[int]:
    """Nodes on the given paths, each once."""
    return sorted({n.id for leaf in leaves for n in tree.path(leaf)})


def batched_values(trees: list[TrajectoryTree], leaves: list[list[int]], scorer: Scorer, tokenizer: Any,
                   answer_prefix: str, tree_pass: bool = True) -> list[dict[int, float]]:
    """Per tree: node id -> value of the context before that node's turn, for every node on the paths. With
    a Hugging Face policy's scorer, batched path rows per tree (tree_pass.py); otherwise (or with
    ``tree_pass=False``) all distinct contexts of all trees in one scorer call."""
    prefix = encode(tokenizer, answer_prefix)
    model = model_of(scorer) if tree_pass else None
    pairs: dict[tuple[tuple[int, ...], tuple[int, ...]], int] = {}  # distinct (context, gold) -> pair index
    keys: list[dict[int, tuple]] = []
    direct: dict[int, dict[int, float]] = {}  # tree index -> values from its tree pass
    for i, (tree, tree_leaves) in enumerate(zip(trees, leaves)):
        gold = tuple(encode(tokenizer, gold_answer(tree.task)))
        keys.append({})
        if model is not None and usable(tree) and len(tree_leaves) > 0:
            direct[i] = tree_pass_values(model, tree, scored_nodes(tree, tree_leaves), prefix, list(gold))
            continue
        for node in scored_nodes(tree, tree_leaves):
            key = (tuple(tree.context_ids(node) + prefix), gold)
            pairs.setdefault(key, len(pairs))
            keys[-1][node] = key
    scored = scorer([list(c) for c, _ in pairs], [list(g) for _, g in pairs]) if pairs else []
    return [direct[i] if i in direct else {node: mean(scored[pairs[key]]) for node, key in k.items()}
            for i, k in enumerate(keys)]


def gain(before: float, after: float, kind: str) -> float | None:
    """log_prob_diff (camera-ready) or prob_diff (arXiv v1) of two values; None if not finite (skipped)."""
    g = after - before if kind == "log_prob_diff" else math.exp(after) - math.exp(before)
    return g if math.isfinite(g) else None


def information_gain(tree: TrajectoryTree, values: dict[int, float], kind: str) -> dict[int, float | None]:
    """IG of every non-leaf node with values: value after its turn (its children's context) minus before."""
    out: dict[int, float | None] = {}
    for node_id in values:
        children = tree.children(node_id)
        if children:
            out[node_id] = gain(values[node_id], values[children[0]], kind)
    return out


def naive_information_gain(tree: TrajectoryTree, leaves: list[int], scorer: Scorer, tokenizer: Any,
                           answer_prefix: str, kind: str) -> dict[int, float | None]:
    """The same IG computed turn by turn: one scorer call per context, per turn of every trajectory."""
    prefix, gold = encode(tokenizer, answer_prefix), encode(tokenizer, gold_answer(tree.task))
    out: dict[int, float | None] = {}
    for leaf in leaves:
        path = tree.path(leaf)
        for node, child in zip(path, path[1:]):
            before = mean(scorer([tree.context_ids(node.id) + prefix], [gold])[0])
            after = mean(scorer([tree.context_ids(child.id) + prefix], [gold])[0])
            out[node.id] = gain(before, after, kind)
    return out
