"""EPO: Entropy-regularized Policy Optimization for multi-turn agents (arXiv 2509.22576; reference/
seed-plugins.md §3). A loss term added to GRPO's:

    L_EPO = L_GRPO - lambda * (L_H - beta_k * L_smooth)
    L_H      = mean over trajectories j of mean over turns t of mean over tokens i of H_{j,t,i}  (eq. 2)
    L_smooth = the same nested mean of alpha * P,  P = [k_l*Hbar_W - H]_+ + [H - k_r*Hbar_W]_+     (eq. 3-4)
    beta_k   = 1 + exp(-gamma * k / floor(K/2))                                                   (eq. 6)

H: the current policy's full-vocabulary entropy per trained token; Hbar_W: the mean of the token-mean batch
entropies of all previous steps (cumulative, no window; L_smooth = 0 at step 0). The ReLU corridor is
differentiable: its gradient raises entropy below the corridor and lowers it above (Lemma A.11).

Paper vs reference code (WujiangXu/EPO): the code's penalty, ``torch.where(in_range, 0, const)``, is constant
per token (no gradient through smoothing); we use the paper's differentiable form. The code keeps a history
per turn index (left-padded: misaligned for short episodes) and smooths only late turns; we keep the paper's
single history. ``schedule: code`` swaps beta_k for the code's epoch weight (its max_epochs 150 becomes
trainer.steps). Defaults: lambda 1e-3, gamma 3 (paper tables); kappa (0.5, 1.5), alpha 0.1 (the appendix's
robust default; it requires alpha < 0.5). A batch row (a trajectory, or one round of a rebuilding env) is a j.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, model_validator

from agentgym.config import AlgorithmConfig, Config
from agentgym.trainers.advantages import TrajectoryZScore
from agentgym.trainers.algorithm import Algorithm, AlgorithmPlugin, BuildContext, flat_rollout
from agentgym.trainers.credit import outcome_credit
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import LossBatch, NoBranching
from agentgym.trainers.samples import build_samples
from agentgym.trainers.turn_stats import nested_turn_mean


class EPOConfig(AlgorithmConfig):
    name: Literal["epo"] = "epo"
    entropy_coef: float = Field(default=1e-3, gt=0, description="lambda: weight of the multi-turn entropy term.")
    penalty_weight: float = Field(default=0.1, gt=0, lt=0.5, description="alpha: weight of the corridor "
                                  "penalty (the paper requires < 0.5; 0.05 ScienceWorld, 0.1 ALFWorld).")
    kappa_low: float = Field(default=0.5, ge=0, description="Corridor floor, a multiple of the history mean.")
    kappa_high: float = Field(default=1.5, gt=0, description="Corridor ceiling, a multiple of the history mean.")
    gamma: float = Field(default=3.0, ge=0, description="Decay of beta_k from 2 toward 1 + e^(-2 gamma).")
    schedule: Literal["paper", "code"] = Field(default="paper", description="beta_k (paper) or the reference "
                                               "code's epoch weight on the smoothing term.")

    @model_validator(mode="after")
    def _corridor(self) -> EPOConfig:
        if self.kappa_low >= self.kappa_high:
            raise ValueError(f"kappa_low ({self.kappa_low}) must be below kappa_high ({self.kappa_high})")
        return self


def corridor_penalty(entropy: torch.Tensor, h_ref: float, kappa_low: float, kappa_high: float) -> torch.Tensor:
    """P per token: how far the entropy lies outside [kappa_low*h_ref, kappa_high*h_ref] (eq. 3)."""
    return torch.relu(kappa_low * h_ref - entropy) + torch.relu(entropy - kappa_high * h_ref)


def smoothing_weight(step: int, total_steps: int, gamma: float) -> float:
    """beta_k = 1 + exp(-gamma * k / floor(K/2)): 2 at the start, 1 + e^(-2 gamma) at the end."""
    return 1.0 + math.exp(-gamma * step / max(total_steps // 2, 1))


def code_epoch_weight(epoch: int, max_epochs: int = 150) -> float:
    """The reference code's alternative to beta_k (its max_epochs is hard-coded to 150)."""
    mid = max_epochs / 2
    return 1.0 - 0.2 * (1.0 - math.exp(-2.0 * epoch / mid)) if epoch <= mid else 0.8 * math.exp(-3.0 * (epoch - mid) / mid)


def epo_objective(entropy: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor, h_ref: float | None,
                  alpha: float, kappa_low: float, kappa_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_H, L_smooth) per row, before the mean over rows; L_smooth is 0 without a history (step 0)."""
    l_h = nested_turn_mean(entropy, turn_ids, mask)
    return l_h, torch.zeros_like(l_h) if h_ref is None else \
        nested_turn_mean(alpha * corridor_penalty(entropy, h_ref, kappa_low, kappa_high), turn_ids, mask)


class EPOEntropyTerm:
    """-lambda * (L_H - beta_k * L_smooth) over the mini-batch's rows, with its entropy history (checkpointed)."""

    name = "epo"
    needs_entropy_grad = True

    def __init__(self, cfg: EPOConfig, total_steps: int):
        self.cfg, self.total_steps, self.history = cfg, total_steps, list[float]()

    def __call__(self, b: LossBatch) -> tuple[torch.Tensor, dict[str, float]]:
        c = self.cfg
        h_ref = sum(self.history) / len(self.history) if self.history else None
        l_h, l_s = epo_objective(b.entropy, b.turn_ids, b.mask, h_ref, c.penalty_weight, c.kappa_low, c.kappa_high)
        weight = smoothing_weight(b.step, self.total_steps, c.gamma) if c.schedule == "paper" else \
            code_epoch_weight(b.step, self.total_steps)
        loss = -c.entropy_coef * (l_h.sum() - weight * l_s.sum()) / b.total_sequences
        return loss, {}

    def end_step(self, stats: Any) -> None:
        if stats.trained_tokens:  # H-bar_k: the token-mean entropy of this step's batch
            self.history.append(float(stats.entropy))

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state["history"])


def build(cfg: Config, ctx: BuildContext) -> Algorithm:
    t = cfg.trainer
    return Algorithm(
        name="epo", rollout=flat_rollout(cfg, "epo"), make_strategy=lambda step: NoBranching(), credit=outcome_credit,
        advantage=TrajectoryZScore("soft", norm_by_std=t.norm_adv_by_std, drop_tied_groups=t.dynamic_sampling),
        build_samples=build_samples,
        loss_terms=[*rl_terms(t), EPOEntropyTerm(cfg.algorithm, max(t.steps, 1))],  # type: ignore[arg-type]
    )


EPO = AlgorithmPlugin(name="epo", config=EPOConfig, build=build)
