"""Policy-gradient losses on per-token tensors: the clipped surrogate with clip-higher and dual-clip, the
aggregation modes, and the k3 KL estimator (reference/algorithms.md §1.2-1.4).

All functions take [batch, length] tensors and a 0/1 `mask` of the same shape (1 = a sampled, trained
token). They return per-token values or an aggregated scalar; nothing here knows about models.
"""

from __future__ import annotations

import torch

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


def clipped_surrogate(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor,
                      clip_low: float = 0.2, clip_high: float = 0.28, dual_clip: float | None = 3.0
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO loss ``max(-A·r, -A·clip(r, 1-εl, 1+εh))``; with dual-clip, negative-advantage tokens are
    additionally capped at ``-A·c`` (c > 1). Returns (loss, clipped) where `clipped` marks tokens whose
    gradient the clip removed, for the clip fraction metric."""
    ratio = torch.exp(logp - old_logp)
    unclipped = -advantages * ratio
    clipped_loss = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    loss = torch.maximum(unclipped, clipped_loss)
    was_clipped = clipped_loss > unclipped
    if dual_clip is not None:
        if dual_clip <= 1:
            raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
        capped = torch.minimum(loss, -advantages * dual_clip)
        was_clipped = was_clipped | ((advantages < 0) & (capped < loss))
        loss = torch.where(advantages < 0, capped, loss)
    return loss, was_clipped


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Low-variance KL estimate ``exp(ref-logp) - (ref-logp) - 1`` per token, clamped to [-10, 10] as in verl."""
    diff = ref_logp - logp
    return torch.clamp(torch.exp(diff) - diff - 1, min=-10, max=10)


def aggregate(values: torch.Tensor, mask: torch.Tensor, mode: str = "token-mean",
              global_tokens: float | None = None, global_seqs: float | None = None) -> torch.Tensor:
    """Reduce per-token values to a scalar.

    - ``token-mean``: sum over all trained tokens / their number (DAPO; verl's default);
    - ``seq-mean-token-mean``: mean over sequences of each sequence's token mean (original GRPO);
    - ``seq-mean-token-sum``: mean over sequences of each sequence's token sum.

    With micro-batching, pass the totals of the whole mini-batch (`global_tokens`, `global_seqs`) so the
    accumulated gradient equals the full-batch one exactly.
    """
    mask = mask.to(values.dtype)
    if mode == "token-mean":
        denom = global_tokens if global_tokens is not None else mask.sum().clamp(min=1.0)
        return (values * mask).sum() / denom
    per_seq_tokens = mask.sum(-1)
    seqs = global_seqs if global_seqs is not None else float(values.shape[0])
    if mode == "seq-mean-token-mean":
        return ((values * mask).sum(-1) / per_seq_tokens.clamp(min=1.0)).sum() / seqs
    if mode == "seq-mean-token-sum":
        return (values * mask).sum(-1).sum() / seqs
    raise ValueError(f"unknown loss aggregation {mode!r}; choose one of {AGG_MODES}")
