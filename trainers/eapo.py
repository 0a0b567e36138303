"""EAPO: Efficiency-Aware Policy Optimization (IterResearch, arXiv 2511.07327; reference/algorithms.md §4).
For the deep-research workspace (agentgym/DeepResearch-v0), where every round rebuilds its context.
    r_t = gamma^(T-t) * R_T                       every round t = 1..T of a trajectory, gamma = 0.995
    A_t = (r_t - mean r) / max(std r, std_floor)  over all distinct rounds of the question's group
    |C_train| = floor(|C| / dp_world_size) * dp_world_size   (adaptive downsampling)
    loss: GSPO's length-normalised sequence ratio per round (option `loss: token` = the trainer's surrogate)

No official code exists; where the paper is silent (choices documented here):
- A round shared by several branches (ARPO-style trees) is one sample, trained once; its reward is the mean
  of gamma^(T-t) R_T over the trajectories through it. Flat rollouts have no shared rounds.
- std_floor (default 0.1): with binary R all rewards of an all-correct group lie in [gamma^31, 1], so the raw
  std is ~0.01 and z-scoring would turn tiny efficiency differences into +-1 advantages (§4.6). The floor
  keeps them small; an all-wrong group (std 0) and a group of one round get advantage 0.
- Advantages are computed on the full group, then samples are dropped: `|C| mod dp_world_size` samples of
  the step, chosen uniformly at random by an RNG seeded with the run seed and the step's tree ids (the same
  trees drop the same samples on a rerun or resume). The paper drops "<1%, uniformly across trajectories".
- GSPO's clip range is not reported for EAPO; we use GSPO's own 3e-4 / 4e-4 (loss_terms.GSPOSurrogate).
"""
from __future__ import annotations

import random
from typing import Literal

import torch
from pydantic import Field

from agentgym.config import AlgorithmConfig, Config
from agentgym.trainers.advantages import scored_leaves, show_on_tree
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.loss_terms import GSPOSurrogate, rl_terms
from agentgym.trainers.pieces import Advantages, AdvantageStats, CreditContext, NoBranching
from agentgym.trainers.samples import Sample
from agentgym.trajectory import TrajectoryTree, path_segments


class EAPOConfig(AlgorithmConfig):
    name: Literal["eapo"] = "eapo"
    gamma: float = Field(default=0.995, gt=0, le=1, description="Per-round discount of the final reward.")
    std_floor: float = Field(default=0.1, ge=0, description="Lower bound of the group std (all-correct guard).")
    dp_world_size: int = Field(default=1, ge=1, description="Samples per step are cut to a multiple of this.")
    loss: Literal["gspo", "token"] = Field(default="gspo", description="gspo: sequence-level ratio per round.")
    gspo_clip_low: float = Field(default=3e-4, gt=0)
    gspo_clip_high: float = Field(default=4e-4, gt=0)


def eapo_credit(gamma: float):
    def credit(trees: list[TrajectoryTree], ctx: CreditContext) -> None:
        for tree in trees:
            through: dict[int, list[float]] = {}
            for leaf in tree.leaves():
                path, r_final = tree.path(leaf), tree.leaf_reward(leaf)
                for t, node in enumerate(path, start=1):
                    through.setdefault(node.id, []).append(gamma ** (len(path) - t) * r_final)
            for node in tree.nodes:
                v = through.get(node.id)
                node.credit_reward = sum(v) / len(v) if v else None
    return credit


class RoundZScore:
    """z-score over every distinct round of the group (a shared round counted once), std floored."""

    def __init__(self, std_floor: float):
        self.std_floor = std_floor

    def __call__(self, trees: list[TrajectoryTree], stats: AdvantageStats) -> list[Advantages]:
        out = []
        for tree in trees:
            leaves = scored_leaves(tree, stats)
            rounds = sorted({n.id for leaf in leaves for n in tree.path(leaf)})
            r = torch.tensor([tree.nodes[i].credit_reward or 0.0 for i in rounds], dtype=torch.float64)
            z = torch.zeros_like(r) if len(rounds) < 2 else (r - r.mean()) / max(float(r.std()), self.std_floor, 1e-6)
            adv = dict(zip(rounds, z.tolist()))
            per_leaf: Advantages = {leaf: {n.id: adv[n.id] for n in tree.path(leaf)} for leaf in leaves}
            show_on_tree(tree, per_leaf)
            out.append(per_leaf)
        return out


class RoundSamples:
    """One sample per distinct round (segment) of each group, then adaptive downsampling."""

    def __init__(self, dp_world_size: int, seed: int):
        self.dp, self.seed, self.dropped = dp_world_size, seed, 0

    def __call__(self, trees: list[TrajectoryTree], advantages: list[Advantages]) -> list[Sample]:
        samples: list[Sample] = []
        for g, (tree, per_leaf) in enumerate(zip(trees, advantages, strict=True)):
            seen: set[tuple[int, ...]] = set()
            for leaf, node_adv in per_leaf.items():
                for seg in path_segments(tree, leaf):
                    key = tuple(node_id for node_id, _, _ in seg.turns)
                    if key in seen:
                        continue  # a round shared with an earlier branch: trained once
                    seen.add(key)
                    adv, turn_ids = [0.0] * len(seg.input_ids), [-1] * len(seg.input_ids)
                    for node_id, start, end in seg.turns:
                        adv[start:end] = [node_adv[node_id]] * (end - start)
                        turn_ids[start:end] = [node_id] * (end - start)
                    samples.append(Sample(seg.input_ids, seg.loss_mask, adv, seg.logprobs, tree.id, leaf, g, turn_ids))
        drop = len(samples) % self.dp
        if drop:
            rng = random.Random(f"{self.seed}:" + ",".join(sorted(t.id for t in trees)))
            gone = set(rng.sample(range(len(samples)), drop))
            samples = [s for i, s in enumerate(samples) if i not in gone]
        self.dropped += drop
        return samples


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    a: EAPOConfig = cfg.algorithm  # type: ignore[assignment]
    terms = rl_terms(cfg.trainer)
    if a.loss == "gspo":
        terms[0] = GSPOSurrogate(a.gspo_clip_low, a.gspo_clip_high)
    return Algorithm(name="eapo", rollout=flat_rollout(cfg, "eapo"), make_strategy=lambda step: NoBranching(),
                     credit=eapo_credit(a.gamma), advantage=RoundZScore(a.std_floor),
                     build_samples=RoundSamples(a.dp_world_size, cfg.seed), loss_terms=terms)


EAPO = AlgorithmPlugin(name="eapo", config=EAPOConfig, build=build)
