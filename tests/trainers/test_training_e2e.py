"""End-to-end: GRPO and ARPO runs on the tiny model; learning on a trivially learnable env; resume."""

import json

import pytest
import torch

import agentgym
from agentgym.config import load_config
from agentgym.trainers.rl import RLRun

agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")


def config(tmp_path, **over):
    base = {"run_dir": str(tmp_path / "run"), "seed": 3,
            "env": {"id": "agentgym/TestLetterE-v0"},
            "policy": {"model": "tiny"},
            "rollout": {"group_size": 8, "temperature": 1.0, "deterministic": True},
            "trainer": {"steps": 12, "tasks_per_step": 4, "lr": 3e-2, "clip_high": 0.28, "warmup_steps": 0},
            "logging": {"tensorboard": False}}
    for key, value in over.items():
        section, _, field = key.partition(".")
        base.setdefault(section, {})[field] = value
    return load_config(overrides=[], **base)


@pytest.mark.slow(ci=True)
def test_grpo_raises_reward_on_a_learnable_env(tmp_path):
    history = RLRun(config(tmp_path), quiet=True).train()
    first = sum(h["reward"] for h in history[:3]) / 3
    last = sum(h["reward"] for h in history[-3:]) / 3
    assert last > first + 0.05, [round(h["reward"], 3) for h in history]
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 12 and all({"reward", "tokens_per_s", "time_update_s", "zero_adv_groups"} <= set(r) for r in records)
    # loss is logged exactly on the steps that trained (a step whose groups all tied makes no update)
    assert all(("loss" in r) == (r["trained_tokens"] > 0) for r in records) and any("loss" in r for r in records)


@pytest.mark.slow(ci=True)
def test_lora_run_trains_only_adapters_and_resumes(tmp_path):
    cfg = config(tmp_path, **{"trainer.steps": 2, "trainer.checkpoint_every": 1, "trainer.lr": 1e-3,
                              "policy.lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}})
    run = RLRun(cfg, quiet=True)
    trainable = [n for n, p in run.session.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in run.session.model.named_parameters() if "lora_B" in n}
    run.train()
    after = dict(run.session.model.named_parameters())
    assert any(not torch.equal(before[n], after[n]) for n in before)  # adapters moved
    ckpt = tmp_path / "run" / "checkpoints" / "step-000002" / "model" / "adapter_model.safetensors"
    assert ckpt.exists()
    cfg2 = config(tmp_path, **{"trainer.steps": 3, "trainer.checkpoint_every": 1, "trainer.lr": 1e-3,
                               "policy.lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}})
    resumed = RLRun(cfg2, resume=True, quiet=True)
    assert resumed.start_step == 2
    for n in before:
        torch.testing.assert_close(dict(resumed.session.model.named_parameters())[n], after[n])


def test_a_step_without_an_update_logs_no_loss_or_lr(tmp_path, capsys):
    from agentgym.trainers.metrics import RunLogger

    logger = RunLogger(tmp_path, tensorboard=False)
    logger.log(1, {"reward": 0.5, "loss": 0.25, "lr": 1e-5, "samples": 4})
    logger.log(2, {"reward": 1.0, "samples": 0, "trained_tokens": 0})  # every group had zero advantage
    out = capsys.readouterr().out
    assert "loss +0.2500" in out and "no update (zero advantages)" in out
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "lr" in records[0] and "loss" not in records[1] and "lr" not in records[1]


def test_a_step_without_an_update_still_advances_the_lr_schedule(tiny_model, tokenizer):
    from agentgym.config import TrainerConfig
    from agentgym.trainers.core import PolicyTrainer

    trainer = PolicyTrainer(tiny_model, tokenizer.pad_token_id, TrainerConfig(steps=4, lr=1e-3, schedule="linear"))
    before = [p.detach().clone() for p in tiny_model.parameters()]
    stats = trainer.update([])  # every group had zero advantage: nothing to train on
    assert stats.trained_tokens == 0 and trainer.scheduler.get_last_lr()[0] == pytest.approx(0.75e-3)
    assert stats.metrics() == {"trained_tokens": 0, "samples": 0}  # no loss or lr logged as if they were zero
    assert all(torch.equal(a, b) for a, b in zip(before, tiny_model.parameters()))  # and no weight changed
