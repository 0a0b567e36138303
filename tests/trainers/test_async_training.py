"""Asynchronous one-step-off-policy training (trainer.max_staleness) on the tiny model: 0 is the synchronous
loop unchanged; 1 trains on batches sampled one version back, TIS-corrected; staler trees are dropped and
counted; a crash after a checkpoint resumes onto the very batch the uninterrupted run trained on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import agentgym
from agentgym.config import ConfigError, load_config
from agentgym.store import TrajectoryStore
from agentgym.trainers.async_loop import drop_stale
from agentgym.trainers.rl import RLRun
from agentgym.trajectory import TrajectoryTree, Turn

sys.path.insert(0, str(Path(__file__).parent))
agentgym.register("agentgym/TestLetterE-v0", "toy_envs:LetterE")


def cfg(run_dir, steps=3, **trainer):
    return load_config(**{
        "run_dir": str(run_dir), "seed": 11, "env": {"id": "agentgym/TestLetterE-v0"}, "policy": {"model": "tiny"},
        "rollout": {"group_size": 4, "temperature": 1.0, "deterministic": True},
        "trainer": {"steps": steps, "tasks_per_step": 2, "lr": 1e-2, **trainer},
        "logging": {"tensorboard": False, "progress": False}})


def stored(run_dir):
    return TrajectoryStore(Path(run_dir) / "trajectories.jsonl").read_all()


def versions(run_dir):
    return sorted({(t.step, n.policy_version) for t in stored(run_dir) for n in t.nodes if n.action_ids})


def params(run):
    return {k: v.detach().clone() for k, v in run.session.model.state_dict().items()}


@pytest.mark.slow(ci=True)
def test_staleness_zero_is_the_synchronous_loop(tmp_path):
    default = RLRun(cfg(tmp_path / "default", steps=2), quiet=True)
    explicit = RLRun(cfg(tmp_path / "zero", steps=2, max_staleness=0), quiet=True)
    assert default.sampler is None and explicit.sampler is None  # rollouts on the trainer's own module
    a, b = default.train(), explicit.train()
    assert versions(tmp_path / "default") == [(0, 0), (1, 1)]  # on-policy: step k sampled by version k
    assert [n.action_ids for t in stored(tmp_path / "default") for n in t.nodes] == \
        [n.action_ids for t in stored(tmp_path / "zero") for n in t.nodes]
    for k, v in params(default).items():
        torch.testing.assert_close(v, params(explicit)[k])
    assert all("stale_dropped" not in m and m["mismatch_abs_logp"] < 1e-3 for m in a + b)


@pytest.mark.slow(ci=True)
def test_one_step_off_policy_trains_on_the_previous_version_with_tis(tmp_path):
    run = RLRun(cfg(tmp_path, steps=3, max_staleness=1), quiet=True)
    assert run.sampler is not None and run.sampler.model is not run.session.model  # its own weights
    history = run.train()
    # batch 0 comes from the initial weights; batch k+1 was generated while step k updated: version k
    assert versions(tmp_path) == [(0, 0), (1, 0), (2, 1)]
    assert [m["stale_dropped"] for m in history] == [0, 0, 0]
    assert [m["staleness"] for m in history] == [0, 1, 1]
    assert history[0]["mismatch_abs_logp"] < 1e-3
    assert history[1]["mismatch_abs_logp"] > 1e-2 and history[2]["mismatch_abs_logp"] > 1e-2  # off-policy...
    assert all(m["tis_weight"] > 0 for m in history)  # ...and importance-weighted
    assert run.sampler.version == 3  # the sampler holds the final weights
    for name, p in run.session.model.named_parameters():
        torch.testing.assert_close(p, dict(run.sampler.model.named_parameters())[name])


def test_trees_beyond_the_bound_are_dropped_and_counted():
    def tree(*versions):
        t = TrajectoryTree(env_id="x")
        parent = None
        for v in versions:
            parent = t.add(Turn(id=0, parent=parent, action_ids=[1], logprobs=[0.0], entropies=[0.0],
                                policy_version=v)).id
        return t

    trees = [tree(5, 5), tree(4, 5), tree(3, 4), tree(1)]
    kept, dropped, mean = drop_stale(trees, version=5, bound=1)
    assert kept == trees[:2] and dropped == 2 and mean == (0 + 1 + 2 + 4) / 4
    assert [t.meta["staleness"] for t in trees] == [0, 1, 2, 4]
    assert [t.meta.get("stale_dropped", False) for t in trees] == [False, False, True, True]


def test_async_needs_weight_sync():
    with pytest.raises(ConfigError, match="trainer.max_staleness > 0 needs policy.weight_sync"):
        load_config(None, ["trainer.max_staleness=1", "policy.sampler=vllm", "policy.weight_sync=false"])
    with pytest.raises(ConfigError, match="trainer.max_staleness"):
        load_config(None, ["trainer.max_staleness=-1"])


@pytest.mark.slow(ci=True)
def test_async_crash_after_a_checkpoint_resumes_onto_the_same_batch(tmp_path, monkeypatch):
    straight = RLRun(cfg(tmp_path / "a", steps=3, max_staleness=1, checkpoint_every=1), quiet=True)
    straight.train()

    crashing = RLRun(cfg(tmp_path / "b", steps=3, max_staleness=1, checkpoint_every=1), quiet=True)
    learn = crashing.learn

    def crash_at_step_2(step, batch, extra=None):
        if step == 2:
            raise KeyboardInterrupt("killed during step 2")
        return learn(step, batch, extra)

    monkeypatch.setattr(crashing, "learn", crash_at_step_2)
    with pytest.raises(KeyboardInterrupt):
        crashing.train()
    resumed = RLRun(cfg(tmp_path / "b", steps=3, max_staleness=1, checkpoint_every=1), resume=True, quiet=True)
    assert resumed.start_step == 2 and resumed.pending is not None  # batch 2, sampled by version 1, saved
    resumed.train()
    assert versions(tmp_path / "b") == versions(tmp_path / "a") == [(0, 0), (1, 0), (2, 1)]
    tokens = lambda run: [n.action_ids for t in stored(run) for n in t.nodes]  # noqa: E731
    assert tokens(tmp_path / "b") == tokens(tmp_path / "a")
    for k, v in params(straight).items():
        torch.testing.assert_close(v, params(resumed)[k], rtol=1e-5, atol=1e-6)
