"""One rank of a data-parallel update, launched by torchrun from test_distributed.py: the tiny model, the
batch of `batch()`, this rank's shard, one `PolicyTrainer.update`; rank 0 saves the weights after the step
(gathered whole) and the step's metrics to argv[1]."""

from __future__ import annotations

import json
import sys

import torch


def batch(n: int = 7, seed: int = 0) -> list:
    """Samples of uneven lengths (so the shards and their micro-batch counts differ), a prompt that is not
    trained, then trained spans with a per-sample advantage and plausible sampler log-probs."""
    from agentgym.trainers.samples import Sample

    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        length = int(torch.randint(12, 48, (1,), generator=g))
        prompt = int(torch.randint(3, 8, (1,), generator=g))
        ids = torch.randint(5, 2000, (length,), generator=g).tolist()
        mask = [0] * prompt + [int(x) for x in (torch.rand(length - prompt, generator=g) < 0.7)]
        adv = float(torch.randn(1, generator=g))
        logps = (-9.0 - 3 * torch.rand(length, generator=g)).tolist()
        out.append(Sample(ids, mask, [adv * m for m in mask], [lp * m for lp, m in zip(logps, mask)],
                          f"t{i}", 0, i // 2))
    return out


def with_lora(model, cfg):
    """The model with the config's LoRA adapter (seeded, so every process builds the same one)."""
    if cfg.policy.lora is None:
        return model
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(1)
    lora = cfg.policy.lora
    model = get_peft_model(model, LoraConfig(r=lora.r, lora_alpha=lora.alpha, target_modules=lora.target_modules,
                                             task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():  # LoRA's B starts at zero: make the first step's A-gradients real
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    return model


def main() -> None:
    out_path, settings = sys.argv[1], json.loads(sys.argv[2])
    torch.set_num_threads(1)
    from agentgym.config import load_config
    from agentgym.policies.models import tiny_random_model
    from agentgym.trainers.core import PolicyTrainer
    from agentgym.trainers.distributed import init_distributed, shard_samples

    cfg = load_config(None, None, **settings)
    group = init_distributed(cfg)
    model = with_lora(tiny_random_model(seed=0), cfg)
    train = group.prepare_model(model)
    trainer = PolicyTrainer(train, 0, cfg.trainer, group=group)
    stats = trainer.update(shard_samples(batch(), group.world_size)[group.rank])
    group.sync_sampler(train)  # FSDP: rank 0's unsharded copy gets the trained weights
    if group.is_main:
        torch.save({"params": model.state_dict(), "metrics": stats.metrics(), "world_size": group.world_size,
                    "sharded": any(hasattr(p, "full_tensor") for p in train.parameters())}, out_path)
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
