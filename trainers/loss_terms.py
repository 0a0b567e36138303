"""Loss terms: each an additive part of the loss with its own settings (the `LossTerm` protocol in
pieces.py). The trainer sums the terms of the algorithm; a regulariser is one more term.

Every term normalises by the totals of the whole mini-batch (`LossBatch.total_tokens` / `total_sequences`)
so micro-batch contributions accumulate to the full-batch loss exactly. Metrics are sums over trained
tokens; the trainer reports them per trained token.
"""

from __future__ import annotations

import torch

from agentgym.config import TrainerConfig
from agentgym.trainers.losses import aggregate, clipped_surrogate, k3_kl
from agentgym.trainers.pieces import LossBatch


class ClippedSurrogate:
    """The PPO/GRPO clipped surrogate with clip-higher and dual-clip (reference/algorithms.md §1.2), on the
    ratio to the trainer's pre-update policy, times the truncated importance weight of that policy to the
    sampler's (1 when the sampler is the trainer's own module)."""

    name = "policy"

    def __init__(self, clip_low: float = 0.2, clip_high: float = 0.28, dual_clip: float | None = 3.0,
                 agg: str = "token-mean"):
        self.clip_low, self.clip_high, self.dual_clip, self.agg = clip_low, clip_high, dual_clip, agg

    @classmethod
    def from_config(cls, cfg: TrainerConfig) -> ClippedSurrogate:
        return cls(cfg.clip_low, cfg.clip_high, cfg.dual_clip, cfg.loss_agg)

    def __call__(self, b: LossBatch) -> tuple[torch.Tensor, dict[str, float]]:
        per_token, clipped = clipped_surrogate(b.logp, b.old_logp, b.advantages, self.clip_low, self.clip_high,
                                               self.dual_clip)
        loss = aggregate(per_token * b.is_weight, b.mask, self.agg, b.total_tokens, b.total_sequences)
        return loss, {"clip_frac": float((clipped.float() * b.mask).sum())}


class KLPenalty:
    """``coef * k3(pi || pi_ref)`` per token (§1.4), aggregated like the surrogate."""

    name = "kl"

    def __init__(self, coef: float, agg: str = "token-mean"):
        self.coef, self.agg = coef, agg

    def __call__(self, b: LossBatch) -> tuple[torch.Tensor, dict[str, float]]:
        if b.ref_logp is None:
            raise ValueError("the KL term needs a reference model (trainer.kl_coef > 0 loads one)")
        kl = k3_kl(b.logp, b.ref_logp)
        loss = self.coef * aggregate(kl, b.mask, self.agg, b.total_tokens, b.total_sequences)
        return loss, {"kl": float((kl.detach() * b.mask).sum())}


class NegativeLogLikelihood:
    """Supervised fine-tuning: the token-mean negative log-likelihood of the trained (sampled) tokens."""

    name = "nll"

    def __call__(self, b: LossBatch) -> tuple[torch.Tensor, dict[str, float]]:
        nll = -(b.logp * b.mask).sum()
        return nll / b.total_tokens, {"nll": float(nll.detach())}


class GSPOSurrogate:
    """GSPO (arXiv 2507.18071; EAPO's loss, reference/algorithms.md §4.4): rho = exp(mean over a sample's
    trained tokens of log pi/pi_old); -min(rho A, clip(rho) A) per sample (A = the sample's mean token
    advantage) times its mean truncated importance weight, averaged over the mini-batch's samples."""

    name = "policy"

    def __init__(self, clip_low: float, clip_high: float):
        self.clip_low, self.clip_high = clip_low, clip_high

    def __call__(self, b: LossBatch) -> tuple[torch.Tensor, dict[str, float]]:
        n = b.mask.sum(-1).clamp(min=1)
        rho = torch.exp(((b.logp - b.old_logp) * b.mask).sum(-1) / n)
        adv = (b.advantages * b.mask).sum(-1) / n
        w = (b.is_weight * b.mask).sum(-1) / n
        clipped_rho = rho.clamp(1 - self.clip_low, 1 + self.clip_high)
        per_seq = -torch.minimum(rho * adv, clipped_rho * adv) * w * (b.mask.sum(-1) > 0)
        clipped = ((rho * adv) > (clipped_rho * adv)).float() * b.mask.sum(-1)
        return per_seq.sum() / b.total_sequences, {"clip_frac": float(clipped.sum())}


def rl_terms(cfg: TrainerConfig) -> list:
    """The default RL loss: the clipped surrogate, plus the KL penalty when `trainer.kl_coef` > 0."""
    terms: list = [ClippedSurrogate.from_config(cfg)]
    if cfg.kl_coef > 0:
        terms.append(KLPenalty(cfg.kl_coef, cfg.loss_agg))
    return terms
