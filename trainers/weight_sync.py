"""The sampler a run rolls out on, when it is not the trainer's own module, and the weight push to it.

``policy.sampler``: ``hf`` (default) samples with the trainer's module itself — nothing to sync — except in
asynchronous training (``trainer.max_staleness`` > 0), where generation of step k+1 overlaps the update of
step k and so needs its own copy of the weights. ``openai:<url>`` rolls out on an OpenAI-compatible server
(`agentgym serve --token`, which takes weight pushes at ``POST /v1/weights``); ``vllm`` on an in-process
vLLM engine (`agentgym.policies.vllm_engine`).

With ``policy.weight_sync`` (the default) the trainer pushes its weights — LoRA merged, named as the base
model's parameters — once when the run opens (so a resumed run or a server started from another checkpoint
samples with the trainer's weights) and after every optimizer step. A sampler that cannot take weights
(plain ``vllm serve``) fails before training starts, unless ``policy.weight_sync=false`` opts into
off-policy training corrected by truncated importance sampling (``trainer.tis_cap``). Every failure here is
a one-line `ConfigError` naming ``policy.sampler``.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from agentgym.config import Config, ConfigError


def named_weights(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The weights a sampler needs, as ``(name, tensor)`` in the plain model's parameter names. A LoRA-wrapped
    (peft) model is merged on the fly, W + B A * scale, without touching the trainer's module."""
    if not hasattr(model, "peft_config"):
        return [(n, p.detach()) for n, p in model.named_parameters()]
    from peft.tuners.lora import LoraLayer

    base = model.get_base_model()
    merged: dict[str, torch.Tensor] = {}
    for name, p in base.named_parameters():
        if ".lora_" not in name:
            merged[name.replace(".base_layer.", ".")] = p.detach()
    with torch.no_grad():
        for name, module in base.named_modules():
            if isinstance(module, LoraLayer):
                weight = module.get_base_layer().weight.detach()
                for adapter in module.active_adapters:
                    if adapter in module.lora_A:
                        weight = weight + module.get_delta_weight(adapter).to(weight.dtype)
                merged[f"{name}.weight"] = weight
    return list(merged.items())


def _trainer_vocab(model: torch.nn.Module) -> int | None:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(base.config, "vocab_size", None)


def open_sampler(cfg: Config, model: torch.nn.Module, tokenizer: Any, version: int, training: bool = True,
                 processor: Any = None) -> Any:
    """The sampler policy for `cfg` (None: roll out on the trainer's own module), its weights already
    pushed from `model` as `version` when ``policy.weight_sync`` is on. `processor`: a vision-language
    model's (its in-process copy then takes the observations' images too)."""
    from agentgym.policies import make_policy
    from agentgym.policies.hf import HFPolicy
    from agentgym.policies.openai_compat import OpenAICompatPolicy, PolicyServerError

    spec = cfg.policy.sampler
    if spec == "hf":
        if not (training and cfg.trainer.max_staleness):
            return None
        copied = copy.deepcopy(model)  # generation of the next step overlaps the update: its own weights
        if hasattr(copied, "merge_and_unload"):
            copied = copied.merge_and_unload()
        if processor is not None:
            from agentgym.policies.hf_vision import HFVisionPolicy

            policy: Any = HFVisionPolicy(copied.eval(), processor, max_batch_size=cfg.policy.max_batch_size)
        else:
            policy = HFPolicy(copied.eval(), tokenizer, max_batch_size=cfg.policy.max_batch_size)
    elif spec == "vllm":
        try:
            policy = make_policy(f"vllm:{cfg.policy.model}")
        except (ValueError, RuntimeError, OSError) as e:
            raise ConfigError(f"policy.sampler=vllm: {e}") from None
    else:
        try:
            policy = OpenAICompatPolicy(base_url=spec.partition(":")[2], tokenizer=tokenizer, max_attempts=2)
            policy.model  # noqa: B018 (reads /v1/models: unreachable, wrong token, wrong tokenizer fail here)
        except (ValueError, PolicyServerError) as e:
            raise ConfigError(f"policy.sampler={spec}: {e}") from None
        served, ours = policy.vocab_size, _trainer_vocab(model)
        if served is not None and ours is not None and served != ours:
            raise ConfigError(f"policy.sampler={spec}: the served model {policy.model!r} has a vocabulary of {served} "
                              f"tokens, the trained model {ours}: serve the same model as policy.model")
    if not cfg.policy.weight_sync:
        return policy
    if not policy.supports_weight_sync:
        raise ConfigError(f"policy.sampler={spec}: the sampler cannot take weights from the trainer (plain vllm serve "
                          "has no weight endpoint; agentgym serve takes them with --token); set "
                          "policy.weight_sync=false to train off-policy with truncated importance sampling "
                          "(trainer.tis_cap)")
    try:
        policy.load_weights(named_weights(model), version)
    except (ValueError, RuntimeError) as e:  # PolicyServerError and WeightsError included
        raise ConfigError(f"policy.sampler={spec}: the first weight push failed: {e}") from None
    return policy


def push(sampler: Any, model: torch.nn.Module, version: int) -> None:
    """After an optimizer step: the sampler takes the trainer's new weights as `version`."""
    sampler.load_weights(named_weights(model), version)
