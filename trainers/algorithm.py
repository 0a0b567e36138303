"""What an RL algorithm is here: a composition of the pieces in pieces.py, not a mode flag.

An algorithm is registered by name (`agentgym.algorithms`, entry-point group ``agentgym.algorithms``) as an
`AlgorithmPlugin`: its name, its config class (the ``algorithm`` section of a run's config is validated
against it) and a `build` function that composes an `Algorithm` from the run's config. grpo.py and arpo.py
are the built-in ones and read side by side; a pip-installed package adds its own the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentgym.config import AlgorithmConfig, Config, ConfigError, RolloutConfig
from agentgym.trainers.pieces import AdvantageEstimator, Credit, LossTerm, RolloutStrategy, SampleBuilder, TaskSampler


@dataclass
class BuildContext:
    """What an algorithm may need to compose itself, besides the config."""

    tokenizer: Any = None

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)


@dataclass
class Algorithm:
    name: str
    rollout: RolloutConfig  # the engine's config for this algorithm's rollouts
    make_strategy: Callable[[int], RolloutStrategy]  # step -> a fresh strategy (its own seeded RNG)
    credit: Credit
    advantage: AdvantageEstimator
    build_samples: SampleBuilder
    loss_terms: list[LossTerm] = field(default_factory=list)  # the terms the trainer sums
    task_sampler: TaskSampler | None = None  # None: each step's seeds, the env picks the tasks


@dataclass(frozen=True)
class AlgorithmPlugin:
    """What the ``agentgym.algorithms`` entry point of an algorithm names."""

    name: str
    config: type[AlgorithmConfig]
    build: Callable[[Config, BuildContext], Algorithm]
    # Checks the run's data before any model loads or any step runs (e.g. IGPO: every training question has
    # a gold answer); raises ConfigError naming the key. None: nothing beyond the config's own validation.
    preflight: Callable[[Config], None] | None = None


def flat_rollout(cfg: Config, algorithm: str) -> RolloutConfig:
    """The rollout config of an algorithm that does not branch: settings that only branching uses are
    refused rather than silently ignored."""
    r = cfg.rollout
    if r.max_trajectories not in (None, r.group_size):
        raise ConfigError(f"rollout.max_trajectories={r.max_trajectories} does nothing under algorithm "
                          f"{algorithm!r} (it does not branch); remove it or set it to rollout.group_size")
    if r.supplement:
        raise ConfigError(f"rollout.supplement does nothing under algorithm {algorithm!r} (it does not branch)")
    return r.model_copy(update={"max_trajectories": r.group_size})
