"""Curriculum sampling (CRAFT-GUI's difficulty-aware training, arXiv 2508.11360): which tasks a training
step rolls out is chosen by how hard each task currently is for the policy, estimated from its recent
success rate, instead of uniformly.

A `TaskSampler` piece (trainers/pieces.py), so any algorithm can compose it; ``curriculum_grpo`` registers
GRPO with it. Works on any env whose ``info["task"]`` names the task (``name``) and may report a
``difficulty`` level; it never imports an env. Per task k, over its last ``window`` finished trajectories
(s_k successes in n_k; a success is a trajectory whose return reaches ``success_reward``):

    p_k  = (s_k + prior * q_k) / (n_k + prior)     q_k = 1 - level_k / (max_level + 1), or 1/2 without a level
    w_k  = p_k * (1 - p_k) + min_weight            (the variance of a success: GRPO learns nothing from a
                                                    group that all succeeds or all fails)

so tasks the policy sometimes solves are drawn most, mastered and hopeless ones rarely; the env's reported
level is the prior while a task has few outcomes (easy levels start with a higher success estimate). Each
step ``ceil(explore * n)`` of its n tasks keep the env's own seeded choice (new tasks are discovered and
every task's estimate is refreshed); the others are drawn with probability w_k / sum(w). Step 0 (nothing
seen yet) is the env's own choice throughout. Draws are a function of (seed, step, statistics), and the
statistics are checkpointed, so a resumed run samples the same tasks.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, Literal

import numpy as np
from pydantic import Field

from agentgym.config import AlgorithmConfig, Config
from agentgym.rollout import Task
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext
from agentgym.trainers.grpo import build as build_grpo
from agentgym.trajectory import TrajectoryTree


class CurriculumConfig(AlgorithmConfig):
    name: Literal["curriculum_grpo"] = "curriculum_grpo"
    window: int = Field(default=16, ge=1, description="Recent trajectories per task that estimate its success rate.")
    prior: float = Field(default=2.0, ge=0, description="Pseudo-trajectories of the level-based prior success rate.")
    min_weight: float = Field(default=0.01, gt=0, description="Floor of a task's weight (mastered and hopeless "
                              "tasks are still drawn now and then).")
    explore: float = Field(default=0.25, ge=0, le=1, description="Share of a step's tasks left to the env's own "
                           "seeded choice (discovers tasks, refreshes estimates).")
    success_reward: float = Field(default=1.0, description="A trajectory whose return reaches this is a success.")


class DifficultyCurriculum:
    """The `TaskSampler`: tracks recent outcomes per task name and draws tasks by the weights above."""

    def __init__(self, cfg: CurriculumConfig, seed: int):
        self.cfg, self.seed = cfg, seed
        self.outcomes: dict[str, deque[int]] = {}
        self.levels: dict[str, float] = {}

    def success_rate(self, name: str) -> float:
        """p_k: the recent success rate, pulled toward the level's prior while outcomes are few."""
        recent, prior = self.outcomes.get(name, ()), self.cfg.prior
        total = len(recent) + prior
        return (sum(recent) + prior * self.prior_rate(name)) / total if total else 0.5

    def prior_rate(self, name: str) -> float:
        """q_k: 1 - level / (max level + 1) from the env's reported difficulty, 1/2 without one."""
        if name not in self.levels:
            return 0.5
        return 1.0 - self.levels[name] / (max(self.levels.values()) + 1.0)

    def weights(self) -> dict[str, float]:
        return {name: (p := self.success_rate(name)) * (1.0 - p) + self.cfg.min_weight for name in sorted(self.outcomes)}

    def tasks(self, step: int, seeds: list[int]) -> list[Task | int]:
        weights = self.weights()
        if not weights:
            return list(seeds)
        rng = np.random.default_rng([self.seed, step, 0x5EED])
        n_free = math.ceil(self.cfg.explore * len(seeds))
        names, w = list(weights), np.array(list(weights.values()))
        picks = rng.choice(len(names), size=len(seeds) - n_free, p=w / w.sum())
        return [*seeds[:n_free], *(Task(seed=s, task={"name": names[i]}) for s, i in zip(seeds[n_free:], picks))]

    def observe(self, trees: list[TrajectoryTree]) -> None:
        for tree in trees:
            name = (tree.task or {}).get("name")
            if name is None:
                continue
            name = str(name)
            level = tree.task.get("difficulty")
            if isinstance(level, (int, float)) and not isinstance(level, bool):
                self.levels[name] = float(level)
            recent = self.outcomes.setdefault(name, deque(maxlen=self.cfg.window))
            for leaf in tree.leaves():
                recent.append(int(tree.leaf_reward(leaf) >= self.cfg.success_reward - 1e-9))

    def metrics(self) -> dict[str, float]:
        if not self.outcomes:
            return {}
        rates = [self.success_rate(n) for n in self.outcomes]
        return {"curriculum_tasks": float(len(rates)), "curriculum_mean_success": sum(rates) / len(rates)}

    def state_dict(self) -> dict[str, Any]:
        return {"outcomes": {k: list(v) for k, v in self.outcomes.items()}, "levels": dict(self.levels)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.outcomes = {k: deque(v, maxlen=self.cfg.window) for k, v in state["outcomes"].items()}
        self.levels = dict(state["levels"])


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    algorithm = build_grpo(cfg, ctx)
    algorithm.name = "curriculum_grpo"
    algorithm.task_sampler = DifficultyCurriculum(cfg.algorithm, cfg.seed)  # type: ignore[arg-type]
    return algorithm


CURRICULUM_GRPO = AlgorithmPlugin(name="curriculum_grpo", config=CurriculumConfig, build=build)
