"""The shared optimisation core: one policy update from a list of samples and a list of loss terms (RL and
SFT use the same loop, optimiser, schedule and gradient clipping).

Micro-batches are packed by a token budget and their gradients accumulated; losses are normalised by the
totals of the whole batch, so the accumulated gradient equals the full-batch gradient exactly (unlike
per-micro-batch means).

Sampler and trainer are separate roles. The trainer's log-probs before the update (the proximal policy)
are its detached forward with one pass over a batch (``epochs_per_batch=1``, free) or computed once before
the first of several passes. The sampler's stored log-probs (`Sample.sampling_logprobs`) are the behaviour
policy: every trained token is weighted by the truncated importance weight
``min(pi_trainer_old / pi_sampler, trainer.tis_cap)`` (TIS, as in "Your efficient RL framework secretly
brings you off-policy RL training", Yao et al. 2025, and verl's ``tis_imp_ratio_cap``), and the clipped
ratio is taken to the proximal policy. When the sampler is the trainer's own module the weight is 1 up to
float round-off and the update is the plain on-policy one. Each step logs the sampler-trainer mismatch over
trained tokens: mean |log pi_trainer - log pi_sampler| and a k3 estimate of KL(sampler || trainer).
Both sides score at the sampling temperature (``rollout.temperature``); greedy sampling (T = 0) stores
T = 1 log-probs and the trainer scores at T = 1 too.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from agentgym.config import TrainerConfig
from agentgym.trainers.distributed import SINGLE_PROCESS, Collective, load_optimizer_state
from agentgym.trainers.logprobs import pad_batch, token_logprobs
from agentgym.trainers.loss_terms import rl_terms
from agentgym.trainers.pieces import LossBatch, LossTerm
from agentgym.trainers.samples import Sample

if TYPE_CHECKING:
    from agentgym.trainers.vision import VisionInputs


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
    """Consecutive micro-batches whose padded size (rows x longest) stays within `budget` tokens. A
    micro-batch holds samples with the same number of context images only (text samples: 0, so text-only
    batches pack as they always did): images stay with their row, as in the sampler's batches."""
    by_images: dict[int, list[Sample]] = {}
    for s in samples:
        by_images.setdefault(len(s.images), []).append(s)
    return [mb for group in by_images.values() for mb in _pack(group, budget)]


def _pack(samples: list[Sample], budget: int) -> list[list[Sample]]:
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
    entropy: float = 0.0
    grad_norm: float = 0.0
    lr: float = 0.0
    trained_tokens: int = 0
    samples: int = 0
    terms: dict[str, float] = field(default_factory=dict)  # each term's loss and its metrics per trained token
    mismatch: dict[str, float] = field(default_factory=dict)  # sampler-trainer mismatch, per trained token

    def metrics(self) -> dict[str, float]:
        """The step's log entries. A step that made no update (every group tied) logs no loss, lr or
        grad_norm: zeros there would read as a collapsed loss or a schedule that hit the floor."""
        counts = {"trained_tokens": self.trained_tokens, "samples": self.samples}
        if not self.trained_tokens:
            return counts
        return {"loss": self.loss, "policy_entropy": self.entropy, "grad_norm": self.grad_norm, "lr": self.lr,
                **self.terms, **self.mismatch, **counts}


class PolicyTrainer:
    """Owns the optimiser and scheduler of a (possibly LoRA-wrapped) causal LM; `update` runs the loss
    terms (default: the clipped surrogate, plus KL when `kl_coef` > 0) over a batch of samples."""

    def __init__(self, model: torch.nn.Module, pad_id: int, cfg: TrainerConfig, temperature: float = 1.0,
                 ref_model: torch.nn.Module | None = None, total_steps: int | None = None,
                 terms: list[LossTerm] | None = None, group: Collective = SINGLE_PROCESS,
                 vision: VisionInputs | None = None):
        self.model, self.pad_id, self.cfg, self.temperature = model, pad_id, cfg, temperature
        self.vision = vision  # a vision-language model: samples' context images become pixel inputs
        self.group = group  # the data-parallel ranks: `samples` are this rank's shard of the batch
        self.ref_model = ref_model
        if cfg.kl_coef > 0 and ref_model is None:
            raise ValueError("trainer.kl_coef > 0 needs a reference model")
        self.terms: list[LossTerm] = terms if terms is not None else rl_terms(cfg)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = make_scheduler(self.optimizer, cfg, total_steps or max(cfg.steps, 1))

    def update(self, samples: list[Sample], step: int = 0) -> UpdateStats:
        trained = [s for s in samples if s.trained_tokens]
        if any(s.images for s in trained):
            if self.vision is None:
                raise ValueError("samples carry context images but the trainer has no vision inputs (a text-only "
                                 "model cannot score image tokens)")
            self.vision.check(trained)  # a missing image file fails here, before any forward pass
        # Normalisers are totals over every rank's shard, so the summed gradient is the full batch's.
        n_samples, total_tokens, n_trained = self.group.sum(
            [float(len(samples)), float(sum(s.trained_tokens for s in trained)), float(len(trained))])
        stats = UpdateStats(samples=int(n_samples))
        if not total_tokens:  # no signal this step (every group tied): no optimiser step, but the schedule
            with warnings.catch_warnings():  # follows training steps, as `trainer.steps` sets its horizon
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step\\(\\)` before")
                self.scheduler.step()
            return stats
        device = next(self.model.parameters()).device
        micro: list[dict[str, Any] | None] = [
            {**{k: v.to(device) for k, v in pad_batch(mb, self.pad_id).items()}, "images": [s.images for s in mb]}
            for mb in pack_by_tokens(trained, self.cfg.micro_batch_tokens)]
        # Sharded forwards and backwards are collectives: every rank runs as many micro-batches (None = idle).
        micro += [None] * (self.group.max(len(micro)) - len(micro))
        old = [self._logprobs(mb, grad=False)[0] if mb is not None else self._idle(grad=False) for mb in micro
               ] if self.cfg.epochs_per_batch > 1 else None
        ref = [self._logprobs(mb, grad=False, model=self.ref_model)[0] if mb is not None else None
               for mb in micro] if self.ref_model else None
        entropy_grad = any(getattr(t, "needs_entropy_grad", False) for t in self.terms)
        self.model.train()
        for epoch in range(self.cfg.epochs_per_batch):
            sums: dict[str, float] = {}
            for i, mb in enumerate(micro):
                last = i == len(micro) - 1
                if mb is None:
                    with self.group.grad_sync(self.model, last):
                        self._idle(grad=True).backward()
                    continue
                logp, entropy = self._logprobs(mb, grad=True, entropy_grad=entropy_grad)
                mask = mb["loss_mask"]
                old_logp = old[i] if old is not None else logp.detach()
                is_weight, mismatch = self._importance_weights(old_logp, mb["sampling_logprobs"], mask)
                batch = LossBatch(logp=logp, old_logp=old_logp, sampling_logp=mb["sampling_logprobs"],
                                  is_weight=is_weight, advantages=mb["advantages"], mask=mask, entropy=entropy,
                                  ref_logp=ref[i] if ref is not None else None, turn_ids=mb["turn_ids"],
                                  total_tokens=total_tokens, total_sequences=n_trained, step=step)
                loss = torch.zeros((), device=logp.device)
                for term in self.terms:
                    value, term_metrics = term(batch)
                    loss = loss + value
                    _add(sums, f"loss_{term.name}", float(value.detach()) * total_tokens)
                    for key, v in term_metrics.items():
                        _add(sums, key, v)
                with self.group.grad_sync(self.model, last):  # ranks' gradients are averaged: scale to sum
                    (loss * self.group.world_size).backward()
                _add(sums, "loss", loss.item() * total_tokens)
                _add(sums, "entropy", float((entropy.detach() * mask).sum()) if entropy is not None else 0.0)
                if epoch == 0:
                    for key, v in mismatch.items():
                        _add(sums, key, v)
            sums = self.group.sum_dict(sums)
            grad_norm = torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad],
                                                       self.cfg.grad_clip)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm  # sharded
            stats.lr = self.scheduler.get_last_lr()[0]
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            if epoch == 0:
                stats.mismatch = {k: sums.pop(k) / total_tokens for k in MISMATCH_KEYS}
        self.scheduler.step()
        self.model.eval()
        per_token = {k: v / total_tokens for k, v in sums.items()}
        stats.loss, stats.entropy = per_token.pop("loss"), per_token.pop("entropy")
        stats.grad_norm, stats.terms = float(grad_norm), per_token
        stats.trained_tokens = int(total_tokens)
        for term in self.terms:
            if hasattr(term, "end_step"):
                term.end_step(stats)
        return stats

    def _idle(self, grad: bool) -> torch.Tensor:
        """A forward (and, with `grad`, a zero loss to back-propagate) over one pad token, for a rank with no
        micro-batch left while others still train: its shards take part in their gathers and reductions."""
        ids = torch.full((1, 1), self.pad_id, dtype=torch.long, device=next(self.model.parameters()).device)
        with torch.set_grad_enabled(grad):
            return self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits.float().sum() * 0.0

    def _importance_weights(self, old_logp: torch.Tensor, sampling_logp: torch.Tensor, mask: torch.Tensor
                            ) -> tuple[torch.Tensor, dict[str, float]]:
        """Truncated importance weights of the trainer's pre-update policy to the sampler's, and the
        mismatch metrics (sums over trained tokens)."""
        diff = (old_logp - sampling_logp) * mask  # log pi_trainer - log pi_sampler on trained tokens
        ratio = torch.exp(diff)
        weight = torch.clamp(ratio, max=self.cfg.tis_cap).detach()
        metrics = {"mismatch_abs_logp": float((diff.abs() * mask).sum()),
                   "mismatch_kl": float(((ratio - 1 - diff) * mask).sum()),  # k3 of KL(sampler || trainer)
                   "tis_weight": float((weight * mask).sum()),
                   "tis_capped_frac": float(((ratio > self.cfg.tis_cap).float() * mask).sum())}
        return weight, metrics

    def _logprobs(self, mb: dict[str, Any], grad: bool, model: torch.nn.Module | None = None,
                  entropy_grad: bool = False):
        model = model or self.model
        # pixels are loaded for this forward only (lazily, per micro-batch) and dropped after it
        pixels = self.vision.model_inputs(mb["images"], model) if self.vision is not None else {}
        with torch.set_grad_enabled(grad):
            logp, ent = token_logprobs(model, mb["input_ids"], mb["attention_mask"], mb["loss_mask"],
                                       self.temperature, with_entropy=grad, entropy_grad=entropy_grad,
                                       model_inputs=pixels)
        return logp, ent

    def state_dict(self) -> dict[str, Any]:
        terms = {t.name: t.state_dict() for t in self.terms if hasattr(t, "state_dict")}
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "terms": terms}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        load_optimizer_state(self.model, self.optimizer, state.get("optimizer", {}), self.group)
        self.scheduler.load_state_dict(state["scheduler"])
        for term in self.terms:
            if hasattr(term, "load_state_dict") and term.name in state.get("terms", {}):
                term.load_state_dict(state["terms"][term.name])


MISMATCH_KEYS = ("mismatch_abs_logp", "mismatch_kl", "tis_weight", "tis_capped_frac")


def _add(sums: dict[str, float], key: str, value: float) -> None:
    sums[key] = sums.get(key, 0.0) + value
