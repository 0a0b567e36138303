"""ARPO: entropy-based adaptive rollout (reference/algorithms.md §2), then GRPO over the whole tree.

N = ``rollout.group_size`` trajectories start from scratch; the group grows to M = ``rollout.max_trajectories``
(default 2N) by branching. After each env answer (see ``branch_after``) the turn the model samples next is
scored by the mean entropy of its first k tokens, normalised by ln|V| (so it lies in [0, 1]):
``ΔH = H_t - H_initial``, where H_initial is the same measure on the trajectory's first turn. The paper's
rule branches when ``P = α + β·ΔH > τ`` (with α = τ = 0.5: whenever entropy rose after the env answered);
``stochastic_branching`` uses the reference code's rule instead, branching with probability
``clip(α + β·ΔH, 0, 1)``. A branch re-samples that same turn from the same context (the shared prefix is
stored once and never regenerated); Z = ``branches_per_point`` branches per decision; ΔH is stored on each
branch node. Paths that all end before M are topped up with fresh trajectories.

``branch_after``: which env answers open a branch point. ``tool`` = only tool results (the paper: "after
each tool call"); ``observation`` = any env observation (a text game's room description as much as a
tool result); ``auto`` (default) follows the env: a tool env branches after tool results, a plain text env
after every observation (otherwise ARPO would never branch on it).

Choices where paper and code differ: we follow the paper's timing (the k tokens right after the env answer,
not the segment before it) and refresh H_initial per trajectory and per training step (the reference code
keeps a dict created once, so from its second step H_initial is stale); a branch inherits its parent's
H_initial. Attribution: soft (plain GRPO over all M trajectories, the paper's default) or hard (shared-prefix
tokens get the mean advantage of the trajectories sharing them).
"""

from __future__ import annotations

import math
import random
from typing import Literal

from pydantic import Field

from agentgym.config import AlgorithmConfig, Config
from agentgym.policies.base import Generation
from agentgym.trainers.advantages import TrajectoryZScore
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext
from agentgym.trainers.credit import outcome_credit
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import Branching, TurnView
from agentgym.trainers.samples import build_samples


class ARPOConfig(AlgorithmConfig):
    name: Literal["arpo"] = "arpo"
    entropy_k: int = Field(default=20, ge=1, description="Entropy of the first k tokens of a turn.")
    alpha: float = 0.5
    beta: float = 0.2
    tau: float = 0.5
    branches_per_point: int = Field(default=1, ge=1, description="Z: branches spawned at a branch point.")
    stochastic_branching: bool = Field(default=False, description="Branch with probability clip(α+βΔH) "
                                       "(reference code) instead of when α+βΔH > τ (paper).")
    branch_after: Literal["auto", "tool", "observation"] = Field(
        default="auto", description="Branch points follow tool results, any env observation, or (auto) tool "
        "results on a tool env and every observation on a plain text env.")
    attribution: Literal["soft", "hard"] = "soft"


class EntropyBranching:
    """The ARPO rollout strategy (an `agentgym.rollout.RolloutStrategy`)."""

    def __init__(self, cfg: ARPOConfig, vocab_size: int, seed: int = 0):
        self.cfg = cfg
        self.norm = math.log(vocab_size)
        self.rng = random.Random(seed)

    def entropy_signal(self, gen: Generation) -> float:
        head = gen.entropies[: self.cfg.entropy_k]
        return sum(head) / len(head) / self.norm if head else 0.0

    def is_branch_point(self, turn: TurnView) -> bool:
        after = self.cfg.branch_after
        if after == "auto":
            after = "tool" if turn.tool_env else "observation"
        return turn.previous == "tool" if after == "tool" else turn.previous in ("tool", "observation")

    def branches(self, turn: TurnView) -> Branching:
        h = self.entropy_signal(turn.generation)
        if "h_initial" not in turn.memory:  # the trajectory's first turn sets its baseline
            turn.memory["h_initial"] = h
            return Branching()
        if not self.is_branch_point(turn):
            return Branching()
        delta = h - turn.memory["h_initial"]
        p = self.cfg.alpha + self.cfg.beta * delta
        if self.cfg.stochastic_branching:
            branch = self.rng.random() < min(max(p, 0.0), 1.0)
        else:
            branch = p > self.cfg.tau
        return Branching(self.cfg.branches_per_point if branch else 0, signal=delta)


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    a, r, t = cfg.algorithm, cfg.rollout, cfg.trainer
    rollout = r.model_copy(update={"max_trajectories": r.max_trajectories or 2 * r.group_size,
                                   "supplement": r.supplement if "supplement" in r.model_fields_set else True})
    vocab = ctx.vocab_size
    return Algorithm(
        name="arpo",
        rollout=rollout,
        make_strategy=lambda step: EntropyBranching(a, vocab, seed=cfg.seed * 1_000_003 + step),
        credit=outcome_credit,
        advantage=TrajectoryZScore(a.attribution, norm_by_std=t.norm_adv_by_std, drop_tied_groups=t.dynamic_sampling),
        build_samples=build_samples,
        loss_terms=rl_terms(t),
    )


ARPO = AlgorithmPlugin(name="arpo", config=ARPOConfig, build=build)
