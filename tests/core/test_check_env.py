"""`check-env` checks what `run` does: the expert must score, rendered exactly as the rollout engine renders."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

import agentgym
from agentgym.check import check_env_id
from agentgym.cli import app

DOOR = '''
from agentgym.env import EnvLimits, TextEnv

class Door(TextEnv):
    """Open the door, then go through it."""

    def __init__(self, expert="doorgame:reads_last_message", render_mode=None):
        super().__init__(limits=EnvLimits(max_turns=4), render_mode=render_mode)
        self.expert = expert

    def _reset(self, options):
        self.opened = False
        return "You face a closed door.", {}

    def _step(self, action):
        if action == "open door":
            self.opened = True
            return "The door opens.", 0.0, False, {}
        if action == "go through" and self.opened:
            return "You are outside.", 1.0, True, {}
        return "Nothing happens.", 0.0, False, {}

def reads_last_message(context):
    """Reads the conversation the way the engine renders it: the env's answer is the last user message."""
    last = context.rsplit("<|im_start|>user\\n", 1)[-1]
    return "go through" if "door opens" in last else "open door"

def expects_inline_observations(context):
    """Written against a different rendering: expects the env's answer inside its own assistant turn."""
    turn = context.rsplit("<|im_start|>assistant\\n", 1)[-1]
    return "go through" if "door opens" in turn else "open door"

class NoisyDoor(Door):
    def _reset(self, options):
        import warnings
        warnings.warn("the door squeaks (a warning check_env records)")
        return super()._reset(options)

def never_scores(context):
    return "wait"

class ColouredDoor(Door):
    """Samples a door colour, then paints the hall from the same generator: handed back the task it
    reported (as replay does), it skips the colour draw and paints another hall."""

    def _reset(self, options):
        super()._reset(options)
        task = (options or {}).get("task") or {"colour": ["red", "blue", "green"][int(self.np_random.integers(3))]}
        hall = int(self.np_random.integers(1000))
        return f"You face a closed {task['colour']} door in hall {hall}.", {"task": task}
'''


@pytest.fixture(scope="module")
def door_envs(tmp_path_factory):
    root = tmp_path_factory.mktemp("doorgame")
    (root / "doorgame.py").write_text(textwrap.dedent(DOOR))
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(root))
    for name, expert in [("Good", "reads_last_message"), ("Inline", "expects_inline_observations"),
                         ("Zero", "never_scores")]:
        agentgym.register(f"doortest/{name}-v0", "doorgame:Door", expert=f"doorgame:{expert}")
    agentgym.register("doortest/Noisy-v0", "doorgame:NoisyDoor")
    agentgym.register("doortest/Coloured-v0", "doorgame:ColouredDoor", expert="doorgame:reads_last_message")
    yield
    mp.undo()


def _scripted(env_id):
    return next(r for r in check_env_id(env_id, seeds=(0, 1)) if r.name == "scripted agent")


def test_expert_that_solves_the_engines_rendering_passes(door_envs):
    result = _scripted("doortest/Good-v0")
    assert result.ok and "return 2 over 2 episodes" in result.detail


def test_expert_that_scores_zero_fails_with_its_return(door_envs):
    result = _scripted("doortest/Zero-v0")
    assert not result.ok
    assert "scored return 0 over 2 episodes" in result.detail and "agentgym run doortest/Zero-v0" in result.fix


def test_expert_written_for_another_rendering_fails(door_envs):
    result = _scripted("doortest/Inline-v0")
    assert not result.ok and "scored return 0" in result.detail


def test_cli_shows_fix_and_warnings_with_v(door_envs):
    runner = CliRunner()
    result = runner.invoke(app, ["check-env", "doortest/Zero-v0", "-v"], env={"COLUMNS": "250"})
    assert result.exit_code == 1
    assert "fix:" in result.output and "the expert must solve the task as `agentgym run` renders it" in result.output
    result = runner.invoke(app, ["check-env", "doortest/Noisy-v0"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "warnings (-v shows them)" in result.output and "squeaks" not in result.output
    result = runner.invoke(app, ["check-env", "doortest/Noisy-v0", "-v"], env={"COLUMNS": "250"})
    assert "warning (gymnasium check_env): UserWarning: the door squeaks" in result.output
    result = runner.invoke(app, ["check-env", "--all", "--namespace", "nosuchns"])
    assert result.exit_code == 2 and "no envs in namespace 'nosuchns'" in result.output


def test_replay_check_catches_an_env_that_poses_another_episode_when_given_its_task(door_envs):
    """The class of bug `replay --reexecute` hit on the Android env: the random stream depends on whether
    the task was sampled or handed back."""
    good = {r.name: r for r in check_env_id("doortest/Good-v0", seeds=(0, 1))}
    assert good["replay --reexecute reproduces episodes"].ok
    assert "4 episodes" in good["replay --reexecute reproduces episodes"].detail
    results = {r.name: r for r in check_env_id("doortest/Coloured-v0", seeds=(0, 1))}
    assert results["deterministic under seed"].ok and results["scripted agent"].ok  # the older checks miss it
    replay = results["replay --reexecute reproduces episodes"]
    assert not replay.ok and "reset observation" in replay.detail and "observation.text differs" in replay.detail
    assert "options={'task'" in replay.fix
