"""`agentgym replay --reexecute/--rescore` of a run directory whose run.json is missing, unreadable, names an
env that is not registered or kwargs the env rejects: a one-line error before any replay (a warning when
the file is simply missing, since library-written stores have none), and nothing is lost."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from agentgym.cli import app

runner = CliRunner()
EXPERT = "scripted:agentgym.envs.calculator.expert:calculator_expert"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "run"
    result = runner.invoke(app, ["run", "agentgym/Calculator-v0", "--policy", EXPERT, "--episodes", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def with_run_json(run_dir, tmp_path, text: str | None):
    """A copy of the run whose run.json holds `text` (None: no run.json)."""
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "trajectories.jsonl").write_bytes((run_dir / "trajectories.jsonl").read_bytes())
    if text is not None:
        (copy / "run.json").write_text(text)
    return copy


def recorded(run_dir, **changes) -> str:
    return json.dumps({**json.loads((run_dir / "run.json").read_text()), **changes})


@pytest.mark.parametrize("make_text,message", [
    (lambda d: recorded(d, env_id="agentgym/Calculatr-v0"),
     "unknown env id 'agentgym/Calculatr-v0'. Did you mean agentgym/Calculator-v0"),
    (lambda d: recorded(d, env_kwargs={"splt": "test"}), "env 'agentgym/Calculator-v0' has no argument 'splt'"),
    (lambda d: "{not json", "is not a valid run.json: Invalid JSON"),
    (lambda d: recorded(d, env_id=None), "is not a valid run.json: env_id: Input should be a valid string"),
])
@pytest.mark.parametrize("mode", [["--reexecute"], ["--rescore"]])
def test_a_bad_run_json_is_a_one_line_error(run_dir, tmp_path, make_text, message, mode):
    copy = with_run_json(run_dir, tmp_path, make_text(run_dir))
    store = copy / "trajectories.jsonl"
    before = store.read_bytes()
    result = runner.invoke(app, ["replay", str(copy), *mode])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and result.output.count("\n") == 1, result.output
    assert message in result.output and str(copy / "run.json") in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert store.read_bytes() == before  # nothing is lost
    # showing the trees needs no env: a bad run.json does not stop it
    assert runner.invoke(app, ["replay", str(copy)]).exit_code == 0


def test_a_missing_run_json_is_a_warning_and_the_env_defaults_are_used(run_dir, tmp_path):
    copy = with_run_json(run_dir, tmp_path, None)
    result = runner.invoke(app, ["replay", str(copy), "--reexecute"])
    assert f"warning: no run.json in {copy}: envs are made with their registered defaults" in \
        result.output.replace("\n", "")
    assert result.exit_code == 0 and result.output.count("reproduced tree") == 2, result.output


def test_a_run_json_for_another_env_is_a_warning(run_dir, tmp_path):
    copy = with_run_json(run_dir, tmp_path, recorded(run_dir, env_id="agentgym/CalculatorHermes-v0", env_kwargs={}))
    result = runner.invoke(app, ["replay", str(copy), "--reexecute"])
    assert "is for env 'agentgym/CalculatorHermes-v0', not 'agentgym/Calculator-v0'" in result.output.replace("\n", "")
    assert result.exit_code == 0 and result.output.count("reproduced tree") == 2, result.output
