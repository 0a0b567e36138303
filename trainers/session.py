"""Everything a training or evaluation run sets up before the first step, validated before heavy work:
the config's env and algorithm, the model path, the model (with optional LoRA), the policy that shares it.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgym.config import Config, ConfigError
from agentgym.registry import EnvKwargsError, check_env_kwargs, make, spec
from agentgym.trajectory import TrajectoryTree

def validate(cfg: Config) -> None:
    """Cheap checks that fail with a clear message before any model is loaded."""
    from agentgym.policies.hf_vision import is_vision_model
    from agentgym.policies.models import resolve
    from agentgym.trainers.vision import check_vision_config

    spec(cfg.env.id)  # unknown env id -> UnknownEnvError naming close ids
    try:
        check_env_kwargs(cfg.env.id, env_kwargs(cfg))  # the same check as `agentgym run --env-kwarg`
    except EnvKwargsError as e:
        raise ConfigError(f"env.kwargs: {e}") from e
    if cfg.policy.model.startswith("hf-vision:"):
        resolve(cfg.policy.model.removeprefix("hf-vision:"))
    elif cfg.policy.model != "tiny" and not is_vision_model(cfg.policy.model):
        resolve(cfg.policy.model)  # a model path that does not exist -> ModelNotFoundError
    check_vision_config(cfg)  # a vision model's limits; a text-only model on an env with screenshots
    if cfg.policy.sampler == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError("policy.sampler=vllm needs the vllm package (the vllm extra; see the README's Scale-out "
                          "section), which is not installed")


def env_kwargs(cfg: Config, split: str | None = None) -> dict[str, Any]:
    kwargs = dict(cfg.env.kwargs)
    if cfg.env.limits is not None:
        kwargs["limits"] = cfg.env.limits
    if split is not None:
        kwargs["split"] = split
    return kwargs


@dataclass
class Session:
    cfg: Config
    model: Any
    tokenizer: Any
    policy: Any

    def env_factory(self, split: str | None = None):
        kwargs = env_kwargs(self.cfg, split)
        return lambda: make(self.cfg.env.id, **kwargs)


def open_session(cfg: Config) -> Session:
    import torch

    from agentgym.policies.hf import HFPolicy
    from agentgym.policies.hf_vision import HFVisionPolicy, is_vision_model, load_vision
    from agentgym.policies.models import default_device, load_model

    validate(cfg)
    torch.manual_seed(cfg.seed)
    processor = None  # an image-text-to-text model's: rollouts and training then see the pixels
    if is_vision_model(cfg.policy.model):
        model, processor = load_vision(cfg.policy.model, device=cfg.policy.device or default_device())
        tokenizer = processor.tokenizer
    else:
        model, tokenizer = load_model(cfg.policy.model, device=cfg.policy.device or default_device())
    if cfg.policy.lora is not None:
        from peft import LoraConfig, get_peft_model

        lora = cfg.policy.lora
        model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
                                                 target_modules=lora.target_modules, task_type="CAUSAL_LM"))
    model.eval()
    if processor is not None:
        policy: HFPolicy = HFVisionPolicy(model, processor, max_batch_size=cfg.policy.max_batch_size,
                                          threads=cfg.policy.threads)
    else:
        policy = HFPolicy(model, tokenizer, max_batch_size=cfg.policy.max_batch_size,
                          kv_cache_mb=cfg.policy.kv_cache_mb, threads=cfg.policy.threads)
    return Session(cfg, model, tokenizer, policy)


def task_seeds(seed: int, step: int, n: int) -> list[int]:
    """The tasks of training step `step`: a pure function of (seed, step), so resuming replays the data order."""
    import numpy as np

    return [int(x) for x in np.random.default_rng([seed, step]).integers(0, 2**31 - 1, size=n)]


def write_run_json(run_dir: Path, cfg: Config) -> None:
    """Tells the viewer which tokenizer decodes the run's token ids."""
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    # Every kwarg the training envs are made with (env.limits too): `replay --reexecute` makes the env with them.
    kwargs = {k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in env_kwargs(cfg).items()}
    (run_dir / "run.json").write_text(json.dumps({"tokenizer": cfg.policy.model, "env_id": cfg.env.id,
                                                  "env_kwargs": kwargs, "algorithm": cfg.algorithm.name},
                                                 indent=2, default=str))


def mark_step(trees: list[TrajectoryTree], step: int) -> None:
    for tree in trees:
        tree.step = step
