"""GRPO: flat groups of G episodes per task, outcome reward, group z-score, one sample per trajectory."""

from __future__ import annotations

from functools import partial

from agentgym.config import Config
from agentgym.rollout import RolloutConfig
from agentgym.trainers.algorithm import Algorithm, flat_strategy, outcome_credit
from agentgym.trainers.samples import build_samples


def grpo(cfg: Config) -> Algorithm:
    r = cfg.rollout
    rollout = RolloutConfig(group_size=r.group_size, max_trajectories=r.group_size, temperature=r.temperature,
                            top_p=r.top_p, step_timeout_s=r.step_timeout_s, max_batch_size=r.max_batch_size,
                            deterministic=r.deterministic, batch_wait_s=r.batch_wait_s)
    return Algorithm(
        name="grpo",
        rollout=rollout,
        make_strategy=flat_strategy,
        credit=outcome_credit,
        build_samples=partial(build_samples, attribution="soft", norm_by_std=cfg.trainer.norm_adv_by_std,
                              dynamic_sampling=cfg.trainer.dynamic_sampling),
    )
