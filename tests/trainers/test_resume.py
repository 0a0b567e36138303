"""Crash safety of training: resume after SIGKILL equals the uninterrupted run; a kill during a checkpoint
save resumes from the last complete checkpoint; incompatible checkpoints and bad inputs are refused early."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import agentgym

from agentgym.config import ConfigError, load_config
from agentgym.policies.models import ModelNotFoundError, tiny_random_model, load_tokenizer
from agentgym.store import TrajectoryStore
from agentgym.trainers.checkpoint import CheckpointError, CheckpointManager
from agentgym.trainers.rl import RLRun
from agentgym.trainers.session import validate
from agentgym.trainers.sft import DatasetError, load_data

HERE = Path(__file__).parent
agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")


def cfg_dict(run_dir, steps=4, **over):
    d = {"run_dir": str(run_dir), "seed": 5, "env": {"id": "agentgym/TestLetterE-v0"}, "policy": {"model": "tiny"},
         "rollout": {"group_size": 4, "temperature": 1.0, "deterministic": True},
         "trainer": {"steps": steps, "tasks_per_step": 2, "lr": 1e-2, "checkpoint_every": 1, "keep_checkpoints": 2},
         "logging": {"tensorboard": False}}
    d.update(over)
    return d


TRAIN = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {here!r})
    import agentgym
    agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")
    from agentgym.config import load_config
    from agentgym.trainers.rl import RLRun
    RLRun(load_config(**json.loads(sys.argv[1])), resume=True, quiet=True).train()
""").format(here=str(HERE))


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.slow(ci=True)
def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    straight = RLRun(load_config(**cfg_dict(tmp_path / "a")), quiet=True)
    straight.train()

    run_b = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, json.dumps(cfg_dict(run_b))])
    pointer = run_b / "checkpoints" / "latest"
    deadline = time.time() + 300
    while not (pointer.exists() and pointer.read_text().strip() >= "step-000002") and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # killed somewhere in step 3
    proc.wait()
    assert CheckpointManager(run_b).latest().name in ("step-000002", "step-000003")
    resumed = RLRun(load_config(**cfg_dict(run_b)), resume=True, quiet=True)
    assert resumed.start_step >= 2
    resumed.train()

    a, b = params(straight.session.model), params(resumed.session.model)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    order = lambda run: [(t.step, t.seed) for t in TrajectoryStore(run / "trajectories.jsonl").read_all()]  # noqa: E731
    assert order(run_b) == order(tmp_path / "a")  # same data order, each step stored once
    tokens = lambda run: [n.action_ids for t in TrajectoryStore(run / "trajectories.jsonl").read_all() for n in t.nodes]  # noqa: E731
    assert tokens(run_b) == tokens(tmp_path / "a")


SAVER = textwrap.dedent("""
    import sys
    from agentgym.policies.models import load_tokenizer, tiny_random_model
    from agentgym.trainers.checkpoint import CheckpointManager
    model, tok = tiny_random_model(hidden_size=128), load_tokenizer("tiny")
    manager = CheckpointManager(sys.argv[1], keep=2)
    for step in range(int(sys.argv[2]), 10_000):
        model.model.norm.weight.data.fill_(float(step))  # the step is visible in the weights
        manager.save(step, model, tok, {"step": step}, {"fingerprint": {}})
        print(step, flush=True)
""")


def test_kill_during_checkpoint_save_resumes_from_last_complete(tmp_path):
    rng = random.Random(0)
    last_done = -1
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path), str(last_done + 1)],
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # one save finished: now kill at a random point of a later one
        time.sleep(rng.random() * 0.8)
        proc.send_signal(signal.SIGKILL)
        out = first + proc.communicate()[0]
        done = [int(x) for x in out.split()]
        last_done = max(done)
        latest = CheckpointManager(tmp_path).latest()
        assert latest is not None and (latest / "COMPLETE").exists()
        step = int(latest.name.split("-")[1])
        assert step >= last_done  # never older than the last save that returned
        from safetensors.torch import load_file

        weights = load_file(str(latest / "model" / "model.safetensors"))
        assert float(weights["model.norm.weight"][0]) == step  # the files belong to that step, intact
    assert len(CheckpointManager(tmp_path).complete_checkpoints()) <= 3


def test_checkpoint_from_a_different_model_is_refused(tmp_path):
    run = RLRun(load_config(**cfg_dict(tmp_path / "r", steps=1)), quiet=True)
    run.train()
    other = tmp_path / "other-model"
    tiny_random_model(hidden_size=32).save_pretrained(other)
    load_tokenizer("tiny").save_pretrained(other)
    with pytest.raises(CheckpointError, match="different model.*hidden_size"):
        RLRun(load_config(**cfg_dict(tmp_path / "r", steps=2, policy={"model": str(other)})), resume=True, quiet=True)


def test_bad_inputs_fail_before_work(tmp_path):
    with pytest.raises(ConfigError, match="algorithm.name"):
        load_config(**cfg_dict(tmp_path, algorithm={"name": "ppo-magic"}))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        validate(load_config(**cfg_dict(tmp_path, policy={"model": "/no/such/model"})))
    bad = tmp_path / "sft.jsonl"
    bad.write_text(json.dumps({"input_ids": [1, 2, 3]}) + "\n")
    with pytest.raises(DatasetError, match=r"sft.jsonl:1: missing field 'loss_mask'"):
        load_data([bad], min_reward=1.0)
    with pytest.raises(DatasetError, match="does not exist"):
        load_data([tmp_path / "missing.jsonl"], min_reward=1.0)
