"""`agentgym run` then `agentgym replay --reexecute` on the simulated phone: every task template, text and
screenshot variants, reproduces every stored observation (text, images by hash), reward and ending.

The engine stores the task the env reports (``info["task"]``) and replay hands it back as
``options["task"]``, so an env must pose the same episode whether it sampled the task from the seed or
was given it. These tests drive the real CLI and the library functions behind it."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import agentgym
from agentgym import replay as rp
from agentgym.cli import app
from agentgym.envs.android import TEMPLATES, AndroidEnv
from agentgym.images import image_hashes
from agentgym.policies import ScriptedPolicy
from agentgym.rollout import RolloutEngine, Task
from agentgym.store import TrajectoryStore

runner = CliRunner()
EXPERT = "scripted:agentgym.envs.android.expert:android_expert"
VARIANTS = ["agentgym/Android-v0", "agentgym/AndroidScreenshots-v0"]


def seed_per_template(limit: int = 2000) -> dict[str, int]:
    """The first seed on which a plain reset samples each template."""
    env, found = AndroidEnv(), {}
    for seed in range(limit):
        found.setdefault(env.reset(seed=seed)[1]["task"]["name"], seed)
        if len(found) == len(TEMPLATES):
            return found
    raise AssertionError(f"seeds 0..{limit - 1} never sample {sorted(set(TEMPLATES) - set(found))}")


def run_then_reexecute(tmp_path, env_id: str, episodes: int, seed: int = 0) -> list:
    out = tmp_path / env_id.replace("/", "_")
    result = runner.invoke(app, ["run", env_id, "--policy", EXPERT, "--episodes", str(episodes),
                                 "--seed", str(seed), "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["replay", str(out), "--reexecute"])
    assert "DIVERGED" not in result.output, result.output
    assert result.exit_code == 0 and result.output.count("reproduced tree") == episodes, result.output
    return TrajectoryStore(out / "trajectories.jsonl").read_all()


@pytest.mark.parametrize("env_id", VARIANTS)
def test_run_then_replay_reexecute_reproduces_the_first_episodes(tmp_path, env_id):
    trees = run_then_reexecute(tmp_path, env_id, episodes=2)
    assert all(t.leaf_reward(t.leaves()[0]) == 1.0 for t in trees)
    if "Screenshots" in env_id:  # the images were compared too: the stored trees reference screenshots
        assert all(t.initial_observation.images and all(n.observation.images for n in t.nodes) for t in trees)


@pytest.mark.parametrize("env_id", VARIANTS)
def test_the_reported_task_given_back_poses_the_same_episode_for_every_template(env_id):
    """What replay does at reset, for every template: the reset observation (text and screenshot) and the
    reported task are the same when the task is sampled from the seed and when it is handed back."""
    seeds = seed_per_template()
    sampled, given = agentgym.make(env_id), agentgym.make(env_id)
    for name, seed in seeds.items():
        obs, info = sampled.reset(seed=seed)
        obs2, info2 = given.reset(seed=seed, options={"task": info["task"]})
        assert (obs2, info2["task"]) == (obs, info["task"]), name
        assert image_hashes(info2["observation"]["images"]) == image_hashes(info["observation"]["images"]), name
        # a bare template name and the constructor's task= pose it the same way as well
        assert given.reset(seed=seed, options={"task": name})[0] == obs, name
        assert agentgym.make(env_id, task=name).reset(seed=seed)[0] == obs, name


def random_json_action(context: str) -> str:
    """A reproducible random phone action, drawn from a generator seeded by the context."""
    rng = np.random.default_rng(len(context) * 7919 + context.count("["))
    kind = ["click", "long_press", "scroll", "swipe", "navigate_back", "input_text", "open_app", "keyboard_enter"]
    action = kind[int(rng.integers(len(kind)))]
    if action in ("click", "long_press"):
        return f'{{"action_type": "{action}", "index": {int(rng.integers(0, 14))}}}'
    if action in ("scroll", "swipe"):
        return f'{{"action_type": "{action}", "direction": "{["up", "down", "left", "right"][int(rng.integers(4))]}"}}'
    if action == "input_text":
        return '{"action_type": "input_text", "text": "Bob 555"}'
    if action == "open_app":
        apps = ["Contacts", "Messages", "Calendar", "Clock", "Settings", "Files", "Notes"]
        return f'{{"action_type": "open_app", "app_name": "{apps[int(rng.integers(len(apps)))]}"}}'
    return f'{{"action_type": "{action}"}}'


@pytest.mark.slow
@pytest.mark.parametrize("env_id", VARIANTS)
def test_every_template_replays_identically_through_the_cli(tmp_path, env_id):
    """`agentgym run` over enough seeds to sample every template, then `replay --reexecute`."""
    seeds = seed_per_template()
    episodes = max(seeds.values()) + 1
    trees = run_then_reexecute(tmp_path, env_id, episodes=episodes)
    assert {t.task["name"] for t in trees} == set(TEMPLATES)


@pytest.mark.slow
@pytest.mark.parametrize("env_id", VARIANTS)
def test_every_template_replays_identically_under_random_actions(env_id, tokenizer):
    """Random actions reach screens and errors the expert never does; every path re-executes exactly."""
    seeds = seed_per_template()
    engine = RolloutEngine(ScriptedPolicy(random_json_action, tokenizer),
                           lambda: agentgym.make(env_id, limits={"max_turns": 8}), env_id=env_id)
    trees = engine.run([Task(seed=s) for s in seeds.values()])
    assert {t.task["name"] for t in trees} == set(TEMPLATES)
    for tree in trees:
        report = rp.reexecute(tree, env_factory=lambda i: agentgym.make(i, limits={"max_turns": 8}))
        assert report.ok, report.first.describe() if report.first else report.errors
        assert report.nodes_checked == len(tree.nodes) == 8
