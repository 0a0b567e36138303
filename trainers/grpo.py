"""GRPO: flat groups of G episodes per task (G = ``rollout.group_size``), outcome reward, group z-score over
the trajectories, one sample per trajectory (or per round for envs that rebuild their context), the
clipped surrogate (+ KL when ``trainer.kl_coef`` > 0). Reference: reference/algorithms.md §1.
"""

from __future__ import annotations

from typing import Literal

from agentgym.config import AlgorithmConfig, Config
from agentgym.trainers.advantages import TrajectoryZScore
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.credit import outcome_credit
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import NoBranching
from agentgym.trainers.samples import build_samples


class GRPOConfig(AlgorithmConfig):
    name: Literal["grpo"] = "grpo"


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    t = cfg.trainer
    return Algorithm(
        name="grpo",
        rollout=flat_rollout(cfg, "grpo"),
        make_strategy=lambda step: NoBranching(),
        credit=outcome_credit,
        advantage=TrajectoryZScore("soft", norm_by_std=t.norm_adv_by_std, drop_tied_groups=t.dynamic_sampling),
        build_samples=build_samples,
        loss_terms=rl_terms(t),
    )


GRPO = AlgorithmPlugin(name="grpo", config=GRPOConfig, build=build)
