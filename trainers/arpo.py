"""ARPO: entropy-based adaptive rollout (reference/algorithms.md §2).

N = ``rollout.group_size`` trajectories start from scratch; the group grows to M =
``rollout.max_trajectories`` by branching. After every tool result the turn the model samples next is
scored by the mean entropy of its first k tokens, normalised by ln|V| (so it lies in [0, 1]):
``ΔH = H_t - H_initial``, where H_initial is the same measure on the trajectory's first turn. The paper's
rule branches when ``P = α + β·ΔH > τ`` (with α = τ = 0.5: whenever entropy rose after the tool result);
``stochastic_branching`` uses the reference code's rule instead, branching with probability
``clip(α + β·ΔH, 0, 1)``. A branch re-samples that same turn from the same context (the shared prefix is
stored once and never regenerated); Z = ``branches_per_point`` branches per decision. Paths that all end
before M are topped up with fresh trajectories.

Choices where paper and code differ: we follow the paper's timing (the k tokens right after the tool
result, not the segment before it) and refresh H_initial per trajectory and per training step (the
reference code keeps a dict created once, so from its second step H_initial is stale); a branch inherits
its parent's H_initial. Attribution: soft (plain GRPO over all M trajectories, the paper's default) or
hard (shared-prefix tokens get the mean advantage of the trajectories sharing them).
"""

from __future__ import annotations

import math
import random
from functools import partial

from agentgym.config import AlgorithmConfig, Config
from agentgym.policies.base import Generation
from agentgym.rollout import PathState, RolloutConfig
from agentgym.trainers.algorithm import Algorithm, outcome_credit
from agentgym.trainers.samples import build_samples
from agentgym.trajectory import Turn


class EntropyBranching:
    """The ARPO rollout strategy (a `agentgym.rollout.BranchStrategy`)."""

    def __init__(self, cfg: AlgorithmConfig, vocab_size: int, seed: int = 0):
        self.cfg = cfg
        self.norm = math.log(vocab_size)
        self.rng = random.Random(seed)

    def entropy_signal(self, gen: Generation) -> float:
        head = gen.entropies[: self.cfg.entropy_k]
        return sum(head) / len(head) / self.norm if head else 0.0

    def branches(self, path: PathState, node: Turn, gen: Generation) -> int:
        h = self.entropy_signal(gen)
        if "h_initial" not in path.state:  # the trajectory's first turn sets its baseline
            path.state["h_initial"] = h
            return 0
        if not path.after_tool:
            return 0
        delta = h - path.state["h_initial"]
        path.state["delta_entropy"] = delta
        p = self.cfg.alpha + self.cfg.beta * delta
        if self.cfg.stochastic_branching:
            branch = self.rng.random() < min(max(p, 0.0), 1.0)
        else:
            branch = p > self.cfg.tau
        return self.cfg.branches_per_point if branch else 0


def arpo(cfg: Config, vocab_size: int) -> Algorithm:
    r = cfg.rollout
    m = r.max_trajectories or 2 * r.group_size
    rollout = RolloutConfig(group_size=r.group_size, max_trajectories=m, temperature=r.temperature, top_p=r.top_p,
                            step_timeout_s=r.step_timeout_s, max_batch_size=r.max_batch_size, supplement=True,
                            deterministic=r.deterministic, batch_wait_s=r.batch_wait_s)
    return Algorithm(
        name="arpo",
        rollout=rollout,
        make_strategy=lambda step: EntropyBranching(cfg.algorithm, vocab_size, seed=cfg.seed * 1_000_003 + step),
        credit=outcome_credit,
        build_samples=partial(build_samples, attribution=cfg.algorithm.attribution,
                              norm_by_std=cfg.trainer.norm_adv_by_std, dynamic_sampling=cfg.trainer.dynamic_sampling),
    )
