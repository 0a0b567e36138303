"""Per-token log-probs and entropies of stored sequences under a model (teacher forcing).

Sequences are right-padded into one batch. Only the positions that predict a trained token are sent
through the LM head (`logits_to_keep`): prompts and tool outputs are long, actions are short, and the
[tokens x vocabulary] logits dominate memory on small models.
"""

from __future__ import annotations

from typing import Any

import torch

from agentgym.trainers.samples import Sample


def pad_batch(samples: list[Sample], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attention = torch.zeros_like(ids)
    mask = torch.zeros(len(samples), width)
    adv = torch.zeros(len(samples), width)
    lps = torch.zeros(len(samples), width)
    turns = torch.full((len(samples), width), -1, dtype=torch.long)
    for row, s in enumerate(samples):
        n = len(s.input_ids)
        ids[row, :n] = torch.tensor(s.input_ids)
        attention[row, :n] = 1
        mask[row, :n] = torch.tensor(s.loss_mask, dtype=torch.float)
        adv[row, :n] = torch.tensor(s.advantages)
        lps[row, :n] = torch.tensor(s.sampling_logprobs)
        if s.turn_ids:
            turns[row, :n] = torch.tensor(s.turn_ids)
    return {"input_ids": ids, "attention_mask": attention, "loss_mask": mask, "advantages": adv,
            "sampling_logprobs": lps, "turn_ids": turns}


def first_trained_position(mask: torch.Tensor) -> int:
    rows = mask.bool().any(-1)
    if not rows.any():
        return mask.shape[1]
    return int(mask[rows].float().argmax(-1).min())


def token_logprobs(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   loss_mask: torch.Tensor, temperature: float = 1.0, with_entropy: bool = False,
                   entropy_grad: bool = False, model_inputs: dict[str, Any] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(log-probs, entropies) aligned with `input_ids`: entry t is log p(token t | tokens < t) under
    logits / temperature. Positions before the first trained token are 0. Entropies are detached unless
    `entropy_grad` (an entropy regulariser differentiates them). `model_inputs`: what the model takes beside
    the ids (a vision-language model's pixel values for the image tokens in the ids)."""
    temperature = temperature if temperature > 0 else 1.0
    start = max(first_trained_position(loss_mask), 1)
    keep = input_ids.shape[1] - start + 1  # logits at positions start-1 .. L-1 predict tokens start .. L
    out = model(input_ids=input_ids.to(_device(model)), attention_mask=attention_mask.to(_device(model)),
                logits_to_keep=keep, **(model_inputs or {}))
    logits = out.logits[:, :-1].float() / temperature  # position start-1 .. L-2 -> tokens start .. L-1
    logp_all = torch.log_softmax(logits, dim=-1)
    targets = input_ids[:, start:].to(logits.device)
    logp = logp_all.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    full = torch.zeros(input_ids.shape, dtype=logp.dtype, device=logp.device)
    full[:, start:] = logp
    entropy = None
    if with_entropy:
        ent = -(logp_all.exp() * logp_all).sum(-1)
        entropy = torch.zeros_like(full)
        entropy[:, start:] = ent if entropy_grad else ent.detach()
    return full, entropy


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device
