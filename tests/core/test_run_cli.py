"""`agentgym run` as an env author meets it: loud failures, run.json, reproducible replays, Ctrl-C, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from typer.testing import CliRunner

from agentgym.cli import app
from agentgym.store import TrajectoryStore

runner = CliRunner()
EXPERT = "scripted:agentgym.envs.calculator.expert:calculator_expert"
CLI = "import testenvs; from agentgym.cli import main; main()"

TEST_ENVS = '''
import threading, time
import agentgym
from agentgym.env import EnvLimits, TextEnv

class ResetFails(TextEnv):
    def _reset(self, options):
        raise FileNotFoundError("game file zork1.z5 not found")

    def _step(self, action):
        return "", 0.0, True, {}

class SlowAfterFirst(TextEnv):
    """Seed 0 finishes at once; every other episode hangs in its first step."""

    def __init__(self):
        super().__init__(limits=EnvLimits(max_turns=2))

    def _reset(self, options):
        return "start", {}

    def _step(self, action):
        if self._np_random_seed != 0:
            threading.Event().wait(120)
        return "done", 1.0, True, {}

agentgym.register("test/ResetFails-v0", "testenvs:ResetFails")
agentgym.register("test/SlowAfterFirst-v0", "testenvs:SlowAfterFirst")
'''


@pytest.fixture
def test_envs(tmp_path):
    (tmp_path / "testenvs.py").write_text(textwrap.dedent(TEST_ENVS))
    return dict(os.environ, PYTHONPATH=str(tmp_path), COLUMNS="200")


def _cli(env, *args, timeout=120):
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_run_whose_resets_all_fail_exits_nonzero_naming_the_error(test_envs, tmp_path):
    out = _cli(test_envs, "run", "test/ResetFails-v0", "--policy", EXPERT, "--episodes", "4", "--out", str(tmp_path / "r"))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "4 episode(s) failed to start" in out.stdout
    assert "FileNotFoundError: game file zork1.z5 not found" in out.stdout
    assert "reset infra_error: 4" in out.stdout  # the summary counts failed paths by error type
    trees = TrajectoryStore(tmp_path / "r" / "trajectories.jsonl").read_all()
    assert len(trees) == 4 and all(t.meta["failed_paths"][0]["stage"] == "reset" for t in trees)


def test_run_writes_run_json_and_replay_reexecute_reproduces_env_kwargs(tmp_path):
    run_dir = tmp_path / "run"
    result = runner.invoke(app, ["run", "agentgym/Calculator-v0", "--policy", EXPERT, "--episodes", "2",
                                 "--out", str(run_dir), "--env-kwarg", "limits={max_turns: 1}"])
    assert result.exit_code == 0, result.output
    info = json.loads((run_dir / "run.json").read_text())
    assert info["env_id"] == "agentgym/Calculator-v0" and info["env_kwargs"] == {"limits": {"max_turns": 1}}
    assert info["seeds"] == [0, 1] and info["tokenizer"] == "embedded" and info["policy"] == EXPERT
    assert {"agentgym", "gymnasium", "python"} <= set(info["versions"])
    assert all(t.nodes[-1].truncated for t in TrajectoryStore(run_dir / "trajectories.jsonl").read_all())
    from agentgym.viewer.tokens import choose_tokenizer

    assert choose_tokenizer(run_dir).exact  # the viewer decodes the run's tokens with the recorded tokenizer

    result = runner.invoke(app, ["replay", str(run_dir), "--reexecute"])
    assert result.exit_code == 0, result.output
    assert result.output.count("reproduced tree") == 2

    (run_dir / "run.json").unlink()  # without the recorded kwargs the env truncates differently
    result = runner.invoke(app, ["replay", str(run_dir), "--reexecute"])
    assert result.exit_code == 1 and "DIVERGED" in result.output
    result = runner.invoke(app, ["replay", str(run_dir), "--reexecute", "--env-kwarg", "limits={max_turns: 1}"])
    assert result.exit_code == 0 and result.output.count("reproduced tree") == 2  # an override works too


@pytest.mark.parametrize("args,message", [
    (["--policy", "scripted:agentgym.envs.calculator.expert:nope"],
     "scripted policy 'agentgym.envs.calculator.expert:nope': agentgym.envs.calculator.expert has no function 'nope'"),
    (["--policy", "scripted:no_such_module_q:f"], "cannot import 'no_such_module_q'"),
    (["--env-kwarg", "splt=test"], "env 'agentgym/Calculator-v0' has no argument 'splt'; did you mean 'split'?"),
    (["--env-kwarg", "split"], "--env-kwarg 'split' must look like key=value"),
])
def test_run_bad_input_is_a_one_line_error(args, message, tmp_path):
    result = runner.invoke(app, ["run", "agentgym/Calculator-v0", "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output and result.output.count("\n") == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_train_with_a_bad_env_kwarg_is_a_one_line_config_error(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("env:\n  id: agentgym/Calculator-v0\n  kwargs: {splt: test}\npolicy:\n  model: tiny\n"
                      f"run_dir: {tmp_path / 'run'}\n")
    result = subprocess.run([sys.executable, "-m", "agentgym.cli", "train", str(config)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "env.kwargs: env 'agentgym/Calculator-v0' has no argument 'splt'; did you mean 'split'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigint_stops_run_within_seconds_keeping_finished_trees(test_envs, tmp_path, communicate_or_dump,
                                                                  interruptible):
    store = tmp_path / "r" / "trajectories.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", CLI, "run", "test/SlowAfterFirst-v0", "--policy", EXPERT,
                             "--episodes", "4", "--out", str(tmp_path / "r")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**test_envs, "PYTHONFAULTHANDLER": "1"}, preexec_fn=interruptible)
    try:
        deadline = time.monotonic() + 120
        while not (store.is_file() and store.stat().st_size) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.is_file(), "the first task's tree should be stored as soon as it finishes"
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, err = communicate_or_dump(proc, timeout=120)  # generous: shared CI machines; waited is checked below
        waited = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert waited < 5.0, f"Ctrl-C took {waited:.1f} s"
    assert "kept 1 finished tree(s)" in out
    (tree,) = TrajectoryStore(store).read_all()
    assert tree.seed == 0 and tree.leaf_reward(tree.leaves()[0]) == 1.0
