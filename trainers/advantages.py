"""Advantage pieces: credited rewards -> an advantage for every (trajectory, turn) of a tree.

- `TrajectoryZScore` (GRPO, ARPO; reference/algorithms.md §1.1): within one tree (one task's group),
  ``A_i = (R_i - mean R) / (std R + 1e-6)`` over the trajectories' credited returns, torch's unbiased std;
  a group of one gets 0. ARPO's attribution (§2.1) decides what tokens shared by several trajectories get:
  soft = each trajectory keeps its own advantage on every token, the shared prefix included (plain GRPO
  over the group); hard = a node shared by d trajectories gets the mean advantage of those d.
- `TurnZScore` (IGPO §3.5, EAPO §4.3): every credited turn of the group is z-scored (jointly, or final
  turns and intermediate turns separately), then optionally turned into discounted returns along each
  path ``R_t = sum_k>=t gamma^(k-t) r_k``; without a discount each turn (round) keeps its own.

Both leave out leaves that ended on an `infra_error` (the infrastructure failed, not the model: no
advantage, no training tokens; counted) and store each node's advantage (its mean over the trajectories
through it) on `Turn.advantage` for the viewer.
"""

from __future__ import annotations

from typing import Literal

import torch

from agentgym.trainers.credit import trajectory_return
from agentgym.trainers.pieces import Advantages, AdvantageStats
from agentgym.trajectory import TrajectoryTree, ended_on_infra_error

EPS = 1e-6


def group_zscore(rewards: list[float], norm_by_std: bool = True, unbiased: bool = True) -> list[float]:
    r = torch.tensor(rewards, dtype=torch.float64)
    if len(rewards) < 2:
        return [0.0] * len(rewards)
    centred = r - r.mean()
    if norm_by_std:
        centred = centred / (r.std(unbiased=unbiased) + EPS)
    return centred.tolist()


def scored_leaves(tree: TrajectoryTree, stats: AdvantageStats) -> list[int]:
    """The leaves that carry signal about the policy (infra-error leaves are counted and left out)."""
    leaves = tree.leaves()
    kept = [leaf for leaf in leaves if not ended_on_infra_error(tree, leaf)]
    stats.infra_error_leaves += len(leaves) - len(kept)
    return kept


def has_signal(values: list[float]) -> bool:
    """False for a group whose values are all equal (dynamic sampling drops it: zero advantage everywhere)."""
    return len(values) > 1 and max(values) - min(values) > 0


def show_on_tree(tree: TrajectoryTree, per_leaf: Advantages) -> None:
    """`Turn.advantage` = mean over the trajectories through the node (None where none is trained)."""
    values: dict[int, list[float]] = {}
    for adv in per_leaf.values():
        for node_id, a in adv.items():
            values.setdefault(node_id, []).append(a)
    for node in tree.nodes:
        v = values.get(node.id)
        node.advantage = sum(v) / len(v) if v else None


class TrajectoryZScore:
    def __init__(self, attribution: Literal["soft", "hard"] = "soft", norm_by_std: bool = True,
                 drop_tied_groups: bool = False):
        if attribution not in ("soft", "hard"):
            raise ValueError(f"attribution must be 'soft' or 'hard', got {attribution!r}")
        self.attribution, self.norm_by_std, self.drop_tied_groups = attribution, norm_by_std, drop_tied_groups

    def __call__(self, trees: list[TrajectoryTree], stats: AdvantageStats) -> list[Advantages]:
        out = []
        for tree in trees:
            leaves = scored_leaves(tree, stats)
            returns = [trajectory_return(tree, leaf) for leaf in leaves]
            per_leaf: Advantages = {}
            if self.drop_tied_groups and not has_signal(returns):
                stats.dropped_groups += 1
            else:
                z = dict(zip(leaves, group_zscore(returns, self.norm_by_std)))
                per_leaf = {leaf: node_advantages(tree, z, self.attribution, leaf) for leaf in leaves}
            show_on_tree(tree, per_leaf)
            out.append(per_leaf)
        return out


def node_advantages(tree: TrajectoryTree, leaf_adv: dict[int, float], attribution: str, leaf: int
                    ) -> dict[int, float]:
    """Advantage of each node on the path to `leaf`: soft = the leaf's own; hard = the mean over the
    trajectories in `leaf_adv` that pass through the node."""
    path = tree.path(leaf)
    if attribution == "soft":
        return {n.id: leaf_adv[leaf] for n in path}
    through: dict[int, list[float]] = {}
    for other, a in leaf_adv.items():
        for n in tree.path(other):
            through.setdefault(n.id, []).append(a)
    return {n.id: sum(through[n.id]) / len(through[n.id]) for n in path}


class TurnZScore:
    def __init__(self, normalize: Literal["joint", "separate"] = "joint", discount: float | None = None,
                 norm_by_std: bool = True, unbiased: bool = True, drop_tied_groups: bool = False):
        if normalize not in ("joint", "separate"):
            raise ValueError(f"normalize must be 'joint' or 'separate', got {normalize!r}")
        self.normalize, self.discount, self.norm_by_std = normalize, discount, norm_by_std
        self.unbiased, self.drop_tied_groups = unbiased, drop_tied_groups

    def __call__(self, trees: list[TrajectoryTree], stats: AdvantageStats) -> list[Advantages]:
        out = []
        for tree in trees:
            leaves = scored_leaves(tree, stats)
            nodes = sorted({n.id for leaf in leaves for n in tree.path(leaf)
                            if tree.nodes[n.id].credit_reward is not None})
            raw = {i: float(tree.nodes[i].credit_reward) for i in nodes}  # type: ignore[arg-type]
            per_leaf: Advantages = {}
            if self.drop_tied_groups and not has_signal(list(raw.values())):
                stats.dropped_groups += 1
            else:
                norm = self._normalise(raw, set(leaves))
                per_leaf = {leaf: self._along_path(tree, leaf, norm) for leaf in leaves}
            show_on_tree(tree, per_leaf)
            out.append(per_leaf)
        return out

    def _normalise(self, raw: dict[int, float], finals: set[int]) -> dict[int, float]:
        groups = [list(raw)] if self.normalize == "joint" else \
            [[i for i in raw if i in finals], [i for i in raw if i not in finals]]
        out: dict[int, float] = {}
        for ids in groups:
            out.update(zip(ids, group_zscore([raw[i] for i in ids], self.norm_by_std, self.unbiased)))
        return out

    def _along_path(self, tree: TrajectoryTree, leaf: int, norm: dict[int, float]) -> dict[int, float]:
        path = [n.id for n in tree.path(leaf)]
        if self.discount is None:
            return {i: norm.get(i, 0.0) for i in path}
        adv: dict[int, float] = {}
        running = 0.0
        for i in reversed(path):
            running = norm.get(i, 0.0) + self.discount * running
            adv[i] = running
        return adv
