"""Credit assignment over trajectory trees: rewards -> per-trajectory advantages -> per-token advantages.

Group z-score as in GRPO/verl (reference/algorithms.md §1.1): within one tree (one task's group),
``A_i = (R_i - mean R) / (std R + 1e-6)`` with torch's unbiased std; a group of one gets A = R - R = 0.
ARPO's attribution (§2.1) decides what the tokens shared by several trajectories receive:

- soft: each trajectory keeps its own advantage on every token, the shared prefix included (its copies in
  each trajectory all receive gradient: plain GRPO over the group);
- hard: tokens of a node shared by d trajectories get the mean advantage of those d trajectories.
"""

from __future__ import annotations

import torch

from agentgym.trajectory import TrajectoryTree

EPS = 1e-6


def group_zscore(rewards: list[float], norm_by_std: bool = True) -> list[float]:
    r = torch.tensor(rewards, dtype=torch.float64)
    if len(rewards) < 2:
        return [0.0] * len(rewards)
    centred = r - r.mean()
    if norm_by_std:
        centred = centred / (r.std(unbiased=True) + EPS)
    return centred.tolist()


def leaf_advantages(tree: TrajectoryTree, norm_by_std: bool = True) -> dict[int, float]:
    """Advantage of every trajectory (leaf) of `tree`, z-scored within the tree."""
    leaves = tree.leaves()
    return dict(zip(leaves, group_zscore([tree.leaf_reward(i) for i in leaves], norm_by_std)))


def node_advantages(tree: TrajectoryTree, leaf_adv: dict[int, float], attribution: str = "soft",
                    leaf: int | None = None) -> dict[int, float]:
    """Advantage for the action tokens of each node on the path to `leaf`.

    soft: every node gets the leaf's own advantage; hard: a node gets the mean over the leaves below it.
    """
    if attribution not in ("soft", "hard"):
        raise ValueError(f"attribution must be 'soft' or 'hard', got {attribution!r}")
    path = tree.path(leaf) if leaf is not None else tree.nodes
    if attribution == "soft":
        return {n.id: leaf_adv[leaf] for n in path}  # type: ignore[index]
    below = _leaves_below(tree)
    return {n.id: sum(leaf_adv[i] for i in below[n.id]) / len(below[n.id]) for n in path}


def _leaves_below(tree: TrajectoryTree) -> dict[int, list[int]]:
    below: dict[int, list[int]] = {n.id: [] for n in tree.nodes}
    for leaf in tree.leaves():
        for n in tree.path(leaf):
            below[n.id].append(leaf)
    return below


def has_signal(tree: TrajectoryTree) -> bool:
    """False for a group whose rewards are all equal (dynamic sampling drops it: zero advantage everywhere)."""
    rewards = [tree.leaf_reward(i) for i in tree.leaves()]
    return len(rewards) > 1 and max(rewards) - min(rewards) > 0
