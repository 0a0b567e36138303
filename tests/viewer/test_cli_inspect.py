"""`agentgym replay | report | view` through the CLI: readable output, exit codes, and bad input turned into
clear messages (torn, wrong version, not a store, empty, missing) while readable trees are still shown."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from agentgym.cli_inspect import app, register
from agentgym.store import TrajectoryStore, encode_record
from viewer_helpers import rewrite_record, small_trees, write_bad_run

runner = CliRunner(env={"COLUMNS": "200"})


def run(*args: str):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def calc_store(tmp_path, calc_tree):
    path = tmp_path / "trajectories.jsonl"
    TrajectoryStore(path, fsync=False).append(calc_tree)
    return path


def test_replay_draws_the_tree(calc_store, calc_tree):
    result = run("replay", calc_store, "--tree", calc_tree.id[:8])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "<calculator>17*23</calculator>" in out and "tool calculator" in out and "→ 391" in out
    assert "⋔ branch from #1 (entropy 1.500)" in out and "final reward 1" in out and "final reward 0" in out


def test_replay_rescore_reexecute_export(calc_store, tmp_path):
    result = run("replay", calc_store, "--rescore", "--reexecute", "--export-sft", tmp_path / "sft",
                 "--out", tmp_path / "rescored.jsonl")
    assert result.exit_code == 0, result.output
    assert "3 leaves: 0 changed" in result.output and "reproduced" in result.output
    assert "exported 2 trajectories" in result.output
    assert TrajectoryStore(tmp_path / "rescored.jsonl").read_all()[0].meta["rescored"]["by"] == "env"
    rewrite_record(calc_store, lambda rec: rec["nodes"][0]["observation"].update(text="<result>\n9\n</result>"))
    result = run("replay", calc_store, "--reexecute")
    assert result.exit_code == 1 and "DIVERGED" in result.output and "node 0" in result.output
    assert "expected: '<result>\\n9\\n</result>'" in result.output


def test_replay_bad_input(tmp_path):
    bad = write_bad_run(tmp_path / "bad")
    result = run("replay", bad / "trajectories.jsonl")  # torn + corrupt + wrong version: warned, rest shown
    assert result.exit_code == 0
    for text in ("torn last record", "schema version 99", "corrupt record", "4 trees"):
        assert text in result.output, text
    for path, code, text in [(bad / "notes.jsonl", 2, "plain JSONL, not an agentgym trajectory store"),
                             (bad / "eval_empty.jsonl", 1, "no readable trajectory trees (empty file)"),
                             (tmp_path / "missing.jsonl", 2, "no such file or directory"),
                             (tmp_path, 2, "has no trajectories.jsonl")]:
        result = run("replay", path)
        assert result.exit_code == code and text in result.output, (path, result.output)
    only_old = tmp_path / "old.jsonl"
    rec = small_trees(1)[0].model_dump(mode="json")
    rec["schema_version"] = 0
    only_old.write_bytes(encode_record(json.dumps(rec).encode()))
    result = run("replay", only_old)
    assert result.exit_code == 1 and "schema version 0" in result.output and "no readable" in result.output
    assert run("replay", bad / "trajectories.jsonl", "--tree", "zzz").exit_code == 2
    assert "judge" not in run("replay", bad / "trajectories.jsonl", "--rescore", "--scorer", "x").output
    assert "needs 'module:function'" in run("replay", bad / "trajectories.jsonl", "--rescore", "--scorer", "x").output


def test_report_writes_pngs_and_markdown(run_1k, tmp_path):
    from PIL import Image

    result = run("report", run_1k, "--out", tmp_path / "rep")
    assert result.exit_code == 0, result.output
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "![training curves](training_curves.png)" in md and "| reward |" in md and "| trajectories.jsonl | 1000 |" in md
    assert "time_generation_s" in md
    for name in ("training_curves.png", "time_per_step.png", "trajectories_per_step.png"):
        pixels = np.asarray(Image.open(tmp_path / "rep" / name).convert("L"), dtype=float)
        assert pixels.std() > 10, name  # a plot, not a blank canvas


def test_report_bad_and_sparse_runs(tmp_path):
    bad = write_bad_run(tmp_path / "bad")
    result = run("report", bad)
    assert result.exit_code == 0 and "torn last record" in result.output
    md = (bad / "report" / "report.md").read_text()
    assert "## Problems reading the run" in md and "| trajectories.jsonl | 4 |" in md
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run("report", empty).exit_code == 0
    assert "No `metrics.jsonl`" in (empty / "report" / "report.md").read_text()
    assert run("report", tmp_path / "missing").exit_code == 2


def test_view_refuses_bad_paths_clearly(tmp_path):
    result = run("view", tmp_path / "missing")
    assert result.exit_code == 2 and "no such file or directory" in result.output
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"a": 1}\n')
    result = run("view", plain)
    assert result.exit_code == 2 and "is not an agentgym trajectory store" in result.output
    assert run("view").exit_code == 2


def test_register_mounts_the_commands_on_another_app():
    main = typer.Typer()
    register(main)
    assert {c.name for c in main.registered_commands} == {"view", "replay", "report"}


def test_view_serves_on_the_given_port_and_imports_no_torch(run_1k, communicate_or_dump, interruptible):
    import os
    import subprocess
    import sys
    import time
    import urllib.request

    from agentgym.launch import free_port

    port = free_port()
    code = ("import sys; from agentgym.cli_inspect import app; sys.argv = ['agentgym', 'view', sys.argv[1], '--port', "
            "sys.argv[2]]\nimport threading, os\n"
            "t = threading.Timer(240, lambda: os._exit(3)); t.daemon = True; t.start()  # never outlive the test\n"
            "try:\n    app()\nfinally:\n    print('torch' in sys.modules, 'matplotlib' in sys.modules, flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_1k), str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"},
                            preexec_fn=interruptible)
    try:
        deadline = time.time() + 60  # generous: CI machines are shared and slow
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/run", timeout=2) as r:
                    assert json.load(r)["trees"] == 1000
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, proc.stdout.read() if proc.poll() is not None else ""
                time.sleep(0.1)
        proc.send_signal(2)  # Ctrl-C: the command stops cleanly
        out, _ = communicate_or_dump(proc, 60)  # bounded, not timed: shared CI machines are slow
    finally:
        if proc.poll() is None:
            proc.kill()
    assert f"http://127.0.0.1:{port}/" in out and "1,000 trees" in out
    assert out.strip().splitlines()[-1] == "False False"  # neither torch nor matplotlib was imported
