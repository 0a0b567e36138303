"""The pieces an RL algorithm is composed of, each a typed protocol with one job.

    rollout strategy  -> which turns to re-sample (branch), and the signal that triggered it
                         (`agentgym.rollout.RolloutStrategy`: the engine stores the signal on the branch node)
    credit            -> turn-level rewards written into `Turn.credit_reward` (apart from the env's `reward`)
    advantage         -> an advantage for every (trajectory, turn), stored on the tree for the viewer
    sample builder    -> training samples (exact token ids, loss mask, per-token advantages)
    loss terms        -> the clipped surrogate plus optional regularisers, summed by the trainer
    task sampler      -> (optional) which tasks a step rolls out, e.g. a curriculum (curriculum.py)

An algorithm file (grpo.py, arpo.py, a plugin) picks one of each and configures it; the training loop
(rl.py) and the update (core.py) are shared. Protocols only here: implementations live in credit.py,
advantages.py, samples.py and loss_terms.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from agentgym.rollout import Branching, NoBranching, RolloutStrategy, Task, TurnView
from agentgym.trajectory import TrajectoryTree

if TYPE_CHECKING:
    import torch

    from agentgym.config import Config
    from agentgym.trainers.samples import Sample

__all__ = ["Advantages", "AdvantageEstimator", "Branching", "Credit", "CreditContext", "LossBatch", "LossTerm",
           "NoBranching", "RolloutStrategy", "SampleBuilder", "Scorer", "TaskSampler", "TurnView"]


class Scorer(Protocol):
    """Teacher-forced log-probs of given targets (what `Policy.score` provides on the backends): for each
    pair, the log-prob of every target token given the context and the targets before it. Batched."""

    def __call__(self, context_ids: Sequence[Sequence[int]], target_ids: Sequence[Sequence[int]]
                 ) -> list[list[float]]: ...


@dataclass
class CreditContext:
    """What a credit piece may use besides the trees."""

    config: Config
    step: int  # the training step (0-based) whose rollouts are being credited
    tokenizer: Any = None
    scorer: Scorer | None = None  # None when the policy backend cannot score (credit needing it must say so)
    state: dict[str, Any] = field(default_factory=dict)  # the credit piece's own memory across steps


class Credit(Protocol):
    def __call__(self, trees: list[TrajectoryTree], ctx: CreditContext) -> None:
        """Write turn-level rewards into `Turn.credit_reward` of the trees' nodes."""


# Per tree: leaf id -> {node id on the path to that leaf -> advantage of that node's action tokens}.
# A leaf that is absent gets no training tokens (an infra-error leaf, or a dropped group).
Advantages = dict[int, dict[int, float]]


@dataclass
class AdvantageStats:
    infra_error_leaves: int = 0  # excluded: the infrastructure failed, not the model
    dropped_groups: int = 0  # groups with no signal that dynamic sampling dropped


def zero_advantage_share(advantages: list[Advantages]) -> float:
    """The share of groups (trees) whose every trained advantage is 0 (or that were dropped): groups the step
    learns nothing from. GRPO's advantage collapse when it is high; 0.0 for an empty batch."""
    zero = [all(abs(a) < 1e-9 for per_node in per_leaf.values() for a in per_node.values()) for per_leaf in advantages]
    return sum(zero) / len(zero) if zero else 0.0


class AdvantageEstimator(Protocol):
    def __call__(self, trees: list[TrajectoryTree], stats: AdvantageStats) -> list[Advantages]:
        """Advantages per tree (same order); also sets `Turn.advantage` for the viewer."""


class SampleBuilder(Protocol):
    def __call__(self, trees: list[TrajectoryTree], advantages: list[Advantages]) -> list[Sample]:
        """Training samples for every (tree, leaf) that has advantages."""


@dataclass
class LossBatch:
    """One micro-batch as every loss term sees it ([rows, length] tensors; `mask` is 1 on trained tokens)."""

    logp: torch.Tensor  # current policy log-probs (with grad)
    old_logp: torch.Tensor  # the trainer's log-probs before this update (proximal policy; no grad)
    sampling_logp: torch.Tensor  # what the sampler reported when it sampled (behaviour policy)
    is_weight: torch.Tensor  # truncated importance weight min(pi_old / pi_sampler, cap), no grad
    advantages: torch.Tensor
    mask: torch.Tensor
    entropy: torch.Tensor | None  # per-token entropy of the current policy (with grad if a term needs it)
    ref_logp: torch.Tensor | None  # reference model log-probs, if the run has one
    turn_ids: torch.Tensor  # node id of the turn each token belongs to (-1 outside actions)
    total_tokens: float  # trained tokens in the whole mini-batch (for exact accumulated means)
    total_sequences: float  # samples in the whole mini-batch
    step: int


class LossTerm(Protocol):
    """One additive part of the loss. `__call__` returns its contribution to the mini-batch loss for this
    micro-batch (normalised by the mini-batch totals, so contributions accumulate exactly) and metrics to
    sum over micro-batches. Optional: `needs_entropy_grad` (bool), `end_step(metrics)` after the update,
    `state_dict()` / `load_state_dict()` for terms with memory across steps (checkpointed)."""

    name: str

    def __call__(self, batch: LossBatch) -> tuple[torch.Tensor, dict[str, float]]: ...


class TaskSampler(Protocol):
    """Chooses a step's tasks. Without one, a step rolls out the seeds of `task_seeds` and the env picks each
    task from its seed. `tasks` may keep a seed or turn it into a `Task` (seed + the env's task options);
    `observe` sees the step's finished trees; the state is checkpointed so a resumed run samples alike."""

    def tasks(self, step: int, seeds: list[int]) -> list[Task | int]: ...

    def observe(self, trees: list[TrajectoryTree]) -> None: ...

    def metrics(self) -> dict[str, float]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
