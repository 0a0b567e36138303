"""EPO: Entropy-regularized Policy Optimization for multi-turn agents (arXiv 2509.22576; reference/
seed-plugins.md §3). A loss term added to GRPO's:

    L_EPO = L_GRPO - lambda * (L_H - beta_k * L_smooth)
    L_H      = mean over trajectories j of mean over turns t of mean over tokens i of H_{j,t,i}  (eq. 2)
    L_smooth = the same nested mean of alpha * P,  P = [k_l*Hbar_W - H]_+ + [H - k_r*Hbar_W]_+     (eq. 3-4)
    beta_k   = 1 + exp(-gamma * k / floor(K/2))                                                   (eq. 6)

H is the full-vocabulary entropy of the current policy at each trained token; Hbar_W is the mean of the
token-mean batch entropies of all previous steps (cumulative, not a window; L_smooth = 0 at step 0). The
corridor penalty is differentiable (a ReLU of H), so its gradient pushes entropy up below the corridor and
down above it (the paper's Lemma A.11).

Paper vs reference code (WujiangXu/EPO): the code's penalty is ``torch.where(in_range, 0, const)``, a
constant per token, so no gradient flows through smoothing; we implement the paper's differentiable
form. The code keeps one history per turn index (left-padded, misaligned for short episodes) and turns
smoothing on only for late turns; we keep the paper's single batch history. ``schedule: code`` replaces
beta_k by the code's epoch weight w(e) (its max_epochs of 150 becomes trainer.steps). Defaults: lambda =
1e-3, gamma = 3 (paper tables); kappa = (0.5, 1.5) and alpha = 0.1, the appendix's robust default (it
requires alpha < 0.5). Each row of the batch (a trajectory, or a round of a context-rebuilding env) is
one j; turns are told apart by the node id of each token.
"""

from __future__ import annotations

import math

import torch


def nested_turn_mean(values: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per row: the mean over its turns of each turn's mean over trained tokens ([rows]; 0 for a row with
    none). Differentiable in `values`. Trained tokens with turn id -1 (unknown) form one turn."""
    rows, length = values.shape
    keep = mask.bool()
    row_of = torch.arange(rows, device=values.device).unsqueeze(1).expand(rows, length)[keep]
    width = int(turn_ids.max()) + 2 if turn_ids.numel() else 1
    keys, inverse = torch.unique(row_of * width + (turn_ids[keep] + 1), return_inverse=True)
    ones = torch.ones_like(inverse, dtype=values.dtype)
    sums = torch.zeros(len(keys), dtype=values.dtype, device=values.device).index_add(0, inverse, values[keep])
    counts = torch.zeros(len(keys), dtype=values.dtype, device=values.device).index_add(0, inverse, ones)
    turn_row = keys // width
    per_row = torch.zeros(rows, dtype=values.dtype, device=values.device).index_add(0, turn_row, sums / counts)
    turns = torch.zeros(rows, dtype=values.dtype, device=values.device).index_add(
        0, turn_row, torch.ones_like(turn_row, dtype=values.dtype))
    return per_row / turns.clamp(min=1)


def corridor_penalty(entropy: torch.Tensor, h_ref: float, kappa_low: float, kappa_high: float) -> torch.Tensor:
    """P per token: how far the entropy lies outside [kappa_low*h_ref, kappa_high*h_ref] (eq. 3)."""
    return torch.relu(kappa_low * h_ref - entropy) + torch.relu(entropy - kappa_high * h_ref)


def smoothing_weight(step: int, total_steps: int, gamma: float) -> float:
    """beta_k = 1 + exp(-gamma * k / floor(K/2)): 2 at the start, 1 + e^(-2 gamma) at the end."""
    return 1.0 + math.exp(-gamma * step / max(total_steps // 2, 1))


def code_epoch_weight(epoch: int, max_epochs: int = 150) -> float:
    """The reference code's alternative to beta_k (its max_epochs is hard-coded to 150)."""
    mid = max_epochs / 2
    if epoch <= mid:
        return 1.0 - 0.2 * (1.0 - math.exp(-2.0 * epoch / mid))
    return 0.8 * math.exp(-3.0 * (epoch - mid) / mid)


def epo_objective(entropy: torch.Tensor, turn_ids: torch.Tensor, mask: torch.Tensor, h_ref: float | None,
                  alpha: float, kappa_low: float, kappa_high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_H, L_smooth) per row, before the mean over rows; L_smooth is 0 without a history (step 0)."""
    l_h = nested_turn_mean(entropy, turn_ids, mask)
    if h_ref is None:
        return l_h, torch.zeros_like(l_h)
    return l_h, nested_turn_mean(alpha * corridor_penalty(entropy, h_ref, kappa_low, kappa_high), turn_ids, mask)
