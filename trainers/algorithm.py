"""What an RL algorithm is here: a composition of four pluggable pieces, not a mode flag.

- rollout strategy: how trajectories are sampled (flat groups, or entropy-triggered branching);
- credit: how rewards are placed on trajectories and turns (outcome = the episode return, set by the engine);
- advantage: how rewards become advantages (group z-score over a tree's trajectories);
- sample builder: how trees become training samples (one per trajectory, with an attribution rule for
  tokens that several trajectories share).

Each algorithm file (grpo.py, arpo.py) builds one of these from the config, so they read side by side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agentgym.rollout import BranchStrategy, NoBranching, RolloutConfig
from agentgym.trainers.samples import Sample
from agentgym.trajectory import TrajectoryTree

Credit = Callable[[list[TrajectoryTree]], None]
SampleBuilder = Callable[[list[TrajectoryTree]], list[Sample]]


def outcome_credit(trees: list[TrajectoryTree]) -> None:
    """Outcome reward: the engine already stored each leaf's episode return in `final_rewards`."""


@dataclass
class Algorithm:
    name: str
    rollout: RolloutConfig
    make_strategy: Callable[[int], BranchStrategy]  # step -> a fresh strategy (its own seeded RNG)
    credit: Credit
    build_samples: SampleBuilder


def flat_strategy(step: int) -> BranchStrategy:
    return NoBranching()
