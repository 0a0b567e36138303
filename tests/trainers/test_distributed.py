"""Data-parallel training (trainers/distributed.py): two processes on the gloo backend, launched for real
by torchrun on loopback, update the tiny model exactly as one process does on the same batch; a bad
`trainer.distributed` config or launch fails before any work, naming the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agentgym.launch import free_port
from agentgym.config import ConfigError, load_config
from agentgym.trainers.core import PolicyTrainer, pack_by_tokens
from agentgym.trainers.distributed import check_launch, shard_samples

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from dist_update_worker import batch, with_lora  # noqa: E402

SETTINGS = {"policy": {"model": "tiny", "device": "cpu"},
            "trainer": {"lr": 1e-3, "micro_batch_tokens": 40, "tasks_per_step": 4}}


def launch(tmp_path: Path, settings: dict, nproc: int = 2) -> dict:
    out = tmp_path / "rank0.pt"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr",
           "127.0.0.1", "--master_port", str(free_port()), str(HERE / "dist_update_worker.py"), str(out),
           json.dumps(settings)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out, weights_only=False)


def one_process(settings: dict) -> tuple[dict, dict, dict]:
    from agentgym.policies.models import tiny_random_model

    cfg = load_config(None, None, **settings)
    model = with_lora(tiny_random_model(seed=0), cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = PolicyTrainer(model, 0, cfg.trainer).update(batch())
    return before, model.state_dict(), stats.metrics()


def assert_same_update(dist: dict, settings: dict) -> None:
    before, after, metrics = one_process(settings)
    assert dist["world_size"] == 2
    moved = max(float((after[k] - before[k]).abs().max()) for k in after)
    assert moved > 1e-4  # the step changed the weights: the comparison below can fail
    worst = max(float((dist["params"][k] - after[k]).abs().max()) for k in after)
    assert worst <= 1e-5, worst
    # Adam's first step hides a uniformly scaled gradient; the pre-clip norm and the loss do not.
    assert dist["metrics"].keys() == metrics.keys()
    for key, value in metrics.items():
        assert dist["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7), key


@pytest.mark.slow(ci=True)
def test_two_process_fsdp_update_equals_one_process(tmp_path):
    shards = shard_samples(batch(), 2)
    micro = [len(pack_by_tokens([s for s in sh if s.trained_tokens], 40)) for sh in shards]
    assert micro[0] != micro[1]  # uneven shards: one rank runs idle micro-batches while the other trains
    dist = launch(tmp_path, SETTINGS)
    assert dist["sharded"]  # FSDP: the trained parameters really were DTensor shards
    assert_same_update(dist, SETTINGS)


@pytest.mark.slow
def test_two_process_fsdp_lora_update_equals_one_process(tmp_path):
    settings = {**SETTINGS, "policy": {**SETTINGS["policy"], "lora": {"r": 4}}}
    dist = launch(tmp_path, settings)
    assert dist["sharded"]
    assert_same_update(dist, settings)


@pytest.mark.slow
def test_two_process_ddp_update_equals_one_process(tmp_path):
    settings = {**SETTINGS, "trainer": {**SETTINGS["trainer"], "distributed": {"strategy": "ddp"}}}
    dist = launch(tmp_path, settings)
    assert not dist["sharded"]
    assert_same_update(dist, settings)


def test_shards_balance_tokens_and_keep_every_sample():
    samples = batch(9)
    shards = shard_samples(samples, 2)
    assert sorted(id(s) for sh in shards for s in sh) == sorted(id(s) for s in samples)
    loads = [sum(len(s.input_ids) for s in sh) for sh in shards]
    assert abs(loads[0] - loads[1]) <= max(len(s.input_ids) for s in samples)
    assert shard_samples(samples, 2) == shards  # deterministic


def launched(monkeypatch, world: int) -> None:
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("RANK", "0")


def test_world_size_not_dividing_the_batch_names_the_key(monkeypatch):
    launched(monkeypatch, 2)
    cfg = load_config(None, None, trainer={"tasks_per_step": 3}, rollout={"group_size": 1})
    with pytest.raises(ConfigError, match=r"^trainer\.tasks_per_step: 3 tasks x rollout\.group_size 1 = 3 episodes"):
        check_launch(cfg)
    launched(monkeypatch, 4)
    cfg = load_config(None, None, trainer={"tasks_per_step": 3}, rollout={"group_size": 2})
    with pytest.raises(ConfigError, match="multiple of 4"):
        check_launch(cfg)
    cfg = load_config(None, None, trainer={"tasks_per_step": 2}, rollout={"group_size": 2})
    assert check_launch(cfg) == 4


def test_expected_world_size_must_match_the_launch(monkeypatch):
    cfg = load_config(None, None, trainer={"distributed": {"world_size": 2}})
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ConfigError, match=r"^trainer\.distributed\.world_size: 2 processes expected but 1 was "
                                          r"launched; launch it with `torchrun --nproc_per_node 2"):
        check_launch(cfg)
    launched(monkeypatch, 4)
    with pytest.raises(ConfigError, match="2 processes expected but 4 were launched"):
        check_launch(cfg)


@pytest.mark.parametrize("section, message", [
    ({"strategy": "zero3"}, "trainer.distributed.strategy"),
    ({"world_size": 0}, "trainer.distributed.world_size"),
    ({"timeout_s": 0}, "trainer.distributed.timeout_s"),
    ({"backend": "nccl"}, "unknown config key 'trainer.distributed.backend'"),
])
def test_bad_distributed_section_names_the_key(section, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(None, None, trainer={"distributed": section})


def test_train_refuses_a_bad_launch_before_any_work(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from agentgym.cli import app

    run_dir = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text(f"run_dir: {run_dir}\npolicy: {{model: tiny}}\ntrainer: {{tasks_per_step: 3}}\n")
    launched(monkeypatch, 2)
    result = CliRunner().invoke(app, ["train", str(config)])
    assert result.exit_code == 2
    assert "trainer.tasks_per_step" in result.output and "2 launched processes" in result.output
    assert not run_dir.exists()  # nothing was started or written


def train(run_dir: Path, steps: int, nproc: int) -> None:
    cfg = {"run_dir": str(run_dir), "seed": 5, "env": {"id": "agentgym/TestLetterE-v0"},
           "policy": {"model": "tiny", "device": "cpu"}, "rollout": {"group_size": 2, "deterministic": True},
           "trainer": {"steps": steps, "tasks_per_step": 2, "lr": 1e-2, "checkpoint_every": 1},
           "logging": {"tensorboard": False, "progress": False}}
    script = [str(HERE / "dist_train_worker.py"), json.dumps(cfg)]
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
                "--master_port", str(free_port())] if nproc > 1 else []
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    proc = subprocess.run([sys.executable, *launcher, *script], env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_checkpoints_move_between_world_sizes_with_one_writer(tmp_path):
    """2 processes (FSDP) write steps 1-2, one process resumes for step 3, 2 processes again for step 4:
    every tree is stored once, every step logged once, and Adam's state survives each change of world size."""
    from agentgym.store import TrajectoryStore
    from agentgym.trainers.checkpoint import CheckpointManager

    run = tmp_path / "run"
    train(run, 2, nproc=2)
    train(run, 3, nproc=1)
    train(run, 4, nproc=2)
    ids = [t.id for t in TrajectoryStore(run / "trajectories.jsonl").read()]
    assert sorted(ids) == [f"train-{s:06d}-{i:04d}" for s in range(4) for i in range(2)]
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]
    latest = CheckpointManager(run).latest()
    assert latest.name == "step-000004"
    optimizer = torch.load(latest / "trainer.pt", weights_only=False)["optimizer"]
    adam_steps = {float(s["step"]) for s in optimizer["state"].values()}
    assert adam_steps == {4.0}  # restored at steps 2 and 3, not restarted


@pytest.mark.parametrize("command", ["sft", "eval", "demo"])
def test_one_process_commands_refuse_a_launcher(tmp_path, monkeypatch, command):
    from typer.testing import CliRunner

    from agentgym.cli import app

    config = tmp_path / "c.yaml"
    config.write_text(f"run_dir: {tmp_path / 'run'}\npolicy: {{model: tiny}}\nsft: {{}}\n")
    launched(monkeypatch, 2)
    args = [command] + (["--config", str(config)] if command == "demo" else [str(config)])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"`agentgym {command}` runs in one process, but 2 were launched" in result.output
    assert not (tmp_path / "run").exists()
