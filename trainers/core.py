"""The shared optimisation core: one policy update from a list of samples.

Micro-batches are packed by a token budget and their gradients accumulated; losses are normalised by the
totals of the whole batch, so the accumulated gradient equals the full-batch gradient exactly (unlike
per-micro-batch means). With a single pass over a batch (``epochs_per_batch=1``) the old policy is the
current one, so old log-probs are the detached current ones and no extra forward pass is spent (as TRL
and verl do); with more passes they are computed once before the first.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from agentgym.config import TrainerConfig
from agentgym.trainers.logprobs import pad_batch, token_logprobs
from agentgym.trainers.losses import aggregate, clipped_surrogate, k3_kl
from agentgym.trainers.samples import Sample


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainerConfig, total_steps: int) -> Any:
    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
        progress = min(max(progress, 0.0), 1.0)
        if cfg.schedule == "linear":
            return 1.0 - progress
        if cfg.schedule == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def pack_by_tokens(samples: list[Sample], budget: int) -> list[list[Sample]]:
    """Consecutive micro-batches whose padded size (rows x longest) stays within `budget` tokens."""
    batches: list[list[Sample]] = []
    current: list[Sample] = []
    width = 0
    for s in samples:
        w = max(width, len(s.input_ids))
        if current and (len(current) + 1) * w > budget:
            batches.append(current)
            current, w = [], len(s.input_ids)
        current.append(s)
        width = w
    return batches + ([current] if current else [])


@dataclass
class UpdateStats:
    loss: float = 0.0
    clip_frac: float = 0.0
    kl: float = 0.0
    entropy: float = 0.0
    grad_norm: float = 0.0
    lr: float = 0.0
    trained_tokens: int = 0
    samples: int = 0

    def metrics(self) -> dict[str, float]:
        """The step's log entries. A step that made no update (every group tied) logs no loss, lr or
        grad_norm: zeros there would read as a collapsed loss or a schedule that hit the floor."""
        counts = {"trained_tokens": self.trained_tokens, "samples": self.samples}
        if not self.trained_tokens:
            return counts
        return {"loss": self.loss, "clip_frac": self.clip_frac, "kl": self.kl, "policy_entropy": self.entropy,
                "grad_norm": self.grad_norm, "lr": self.lr, **counts}


class PolicyTrainer:
    """Owns the optimiser and scheduler of a (possibly LoRA-wrapped) causal LM."""

    def __init__(self, model: torch.nn.Module, pad_id: int, cfg: TrainerConfig, temperature: float = 1.0,
                 ref_model: torch.nn.Module | None = None, total_steps: int | None = None):
        self.model, self.pad_id, self.cfg, self.temperature = model, pad_id, cfg, temperature
        self.ref_model = ref_model
        if cfg.kl_coef > 0 and ref_model is None:
            raise ValueError("trainer.kl_coef > 0 needs a reference model")
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg, total_steps or max(cfg.steps, 1))

    def update(self, samples: list[Sample]) -> UpdateStats:
        stats = UpdateStats(samples=len(samples))
        trained = [s for s in samples if s.trained_tokens]
        if not trained:  # no signal this step (every group tied): no optimiser step, but the schedule
            with warnings.catch_warnings():  # follows training steps, as `trainer.steps` sets its horizon
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                self.scheduler.step()
            return stats
        total_tokens = float(sum(s.trained_tokens for s in trained))
        device = next(self.model.parameters()).device
        micro = [{k: v.to(device) for k, v in pad_batch(mb, self.pad_id).items()}
                 for mb in pack_by_tokens(trained, self.cfg.micro_batch_tokens)]
        old = [self._logprobs(mb, grad=False)[0] for mb in micro] if self.cfg.epochs_per_batch > 1 else None
        ref = [self._logprobs(mb, grad=False, model=self.ref_model)[0] for mb in micro] if self.ref_model else None
        self.model.train()
        for _ in range(self.cfg.epochs_per_batch):
            sums = {"loss": 0.0, "clipped": 0.0, "kl": 0.0, "entropy": 0.0}
            for i, mb in enumerate(micro):
                logp, entropy = self._logprobs(mb, grad=True)
                mask = mb["loss_mask"]
                old_logp = old[i] if old is not None else logp.detach()
                per_token, clipped = clipped_surrogate(logp, old_logp, mb["advantages"], self.cfg.clip_low,
                                                       self.cfg.clip_high, self.cfg.dual_clip)
                if ref is not None:
                    kl = k3_kl(logp, ref[i])
                    per_token = per_token + self.cfg.kl_coef * kl
                    sums["kl"] += float((kl * mask).sum())
                loss = aggregate(per_token, mask, self.cfg.loss_agg, global_tokens=total_tokens,
                                 global_seqs=float(len(trained)))
                loss.backward()
                sums["loss"] += loss.item()
                sums["clipped"] += float((clipped.float() * mask).sum())
                sums["entropy"] += float((entropy * mask).sum())
            grad_norm = torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                                       self.cfg.grad_clip)
            stats.lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.model.eval()
        stats.loss, stats.grad_norm = sums["loss"], float(grad_norm)
        stats.clip_frac = sums["clipped"] / total_tokens
        stats.kl = sums["kl"] / total_tokens
        stats.entropy = sums["entropy"] / total_tokens
        stats.trained_tokens = int(total_tokens)
        return stats

    def _logprobs(self, mb: dict[str, torch.Tensor], grad: bool, model: torch.nn.Module | None = None):
        model = model or self.model
        with torch.set_grad_enabled(grad):
            logp, ent = token_logprobs(model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"],
                                       self.temperature, with_entropy=grad)
        return logp, ent

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
