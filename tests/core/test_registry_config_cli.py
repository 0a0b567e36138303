"""Registry (incl. entry-point plugins), typed config, and the CLI."""

import os
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

import agentgym
from agentgym.cli import app
from agentgym.config import ConfigError, load_config

runner = CliRunner()


def test_unknown_env_id_suggests_close_ids():
    with pytest.raises(agentgym.UnknownEnvError, match="Did you mean agentgym/Calculator-v0"):
        agentgym.make("agentgym/Calculater-v0")


def test_env_that_fails_to_import_is_reported_with_id_and_cause():
    agentgym.register("agentgym/Broken-v0", "no_such_module_xyz:Env")
    with pytest.raises(agentgym.EnvImportError, match="agentgym/Broken-v0.*No module named 'no_such_module_xyz'"):
        agentgym.make("agentgym/Broken-v0")


def _fake_distribution(root, plugin_body: str) -> None:
    dist = root / "myplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[agentgym.envs]\nmine = myplugin:register_envs\n")
    (root / "myplugin.py").write_text(textwrap.dedent(plugin_body))


def _run(root, code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_entry_point_plugin_registers_in_any_process(tmp_path):
    _fake_distribution(tmp_path, """
        import agentgym
        from agentgym.envs.calculator import CalculatorEnv

        class MyEnv(CalculatorEnv):
            pass

        def register_envs():
            agentgym.register("agentgym/Mine-v0", "myplugin:MyEnv")
    """)
    out = _run(tmp_path, "import agentgym; print(agentgym.list_envs()); e = agentgym.make('agentgym/Mine-v0'); print(type(e).__name__)")
    assert out.returncode == 0, out.stderr
    assert "agentgym/Mine-v0" in out.stdout and "MyEnv" in out.stdout


def test_broken_plugin_is_reported_by_name_and_other_envs_keep_working(tmp_path):
    _fake_distribution(tmp_path, "raise ImportError('plugin dependency missing')\n")
    out = _run(tmp_path, "import agentgym, gymnasium; print(agentgym.plugin_errors()[0]); "
                         "gymnasium.make('agentgym/Calculator-v0'); print(agentgym.list_envs())")
    assert out.returncode == 0, out.stderr
    message = "env plugin 'mine' (myplugin:register_envs) failed to load: ImportError: plugin dependency missing"
    assert message in out.stdout and message in out.stderr  # returned, and warned once on stderr
    assert "agentgym/Calculator-v0" in out.stdout
    cli = "from agentgym.cli import main; main()"
    listing = subprocess.run([sys.executable, "-c", cli, "envs", "list"], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(tmp_path), COLUMNS="200"), timeout=120)
    assert listing.returncode == 0 and "agentgym/Calculator-v0" in listing.stdout
    assert "broken plugin" in listing.stdout and "'mine'" in listing.stdout
    unknown = subprocess.run([sys.executable, "-c", cli, "run", "mine/Game-v0"], capture_output=True, text=True,
                             env=dict(os.environ, PYTHONPATH=str(tmp_path)), timeout=120)
    assert unknown.returncode == 2 and "env plugin 'mine'" in unknown.stdout  # the likely cause is named
    assert "Traceback" not in unknown.stdout + unknown.stderr


def test_config_rejects_unknown_keys_naming_the_nearest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trainer:\n  lr: 1.0e-5\n  stpes: 3\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'trainer.stpes'; did you mean 'trainer.steps'"):
        load_config(path)
    with pytest.raises(ConfigError, match="unknown config key 'rolout'; did you mean 'rollout'"):
        load_config(overrides=["rolout.group_size=4"])


def test_config_values_are_typed_and_overrides_apply(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("rollout:\n  group_size: 4\n")
    cfg = load_config(path, overrides=["trainer.lr=3e-6", "env.kwargs={split: test}"])
    assert cfg.rollout.group_size == 4 and cfg.trainer.lr == 3e-6 and cfg.env.kwargs == {"split": "test"}
    with pytest.raises(ConfigError, match="rollout.group_size"):
        load_config(overrides=["rollout.group_size=zero"])
    path.write_text("rollout: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_cli_help_on_every_command():
    def walk(group, prefix):
        for name, cmd in getattr(group, "commands", {}).items():
            yield prefix + [name], cmd
            yield from walk(cmd, prefix + [name])

    import typer.main

    root = typer.main.get_command(app)
    commands = list(walk(root, []))
    assert len(commands) >= 5
    for args, _ in commands:
        result = runner.invoke(app, args + ["--help"])
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_cli_envs_list_and_check_env():
    result = runner.invoke(app, ["envs", "list"])
    assert result.exit_code == 0 and "agentgym/Calculator-v0" in result.output
    result = runner.invoke(app, ["check-env", "agentgym/Calculator-v0"])
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output
    result = runner.invoke(app, ["check-env", "agentgym/Nope-v0"])
    assert result.exit_code == 2 and "unknown env id" in result.output


def test_cli_run_writes_trajectories_and_summary(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "agentgym/Calculator-v0", "--policy",
                                 "scripted:agentgym.envs.calculator.expert:calculator_expert",
                                 "--episodes", "5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "accuracy" in result.output and "100.0%" in result.output
    from agentgym.store import TrajectoryStore

    assert len(TrajectoryStore(out / "trajectories.jsonl").read_all()) == 5


def test_cli_run_bad_inputs(tmp_path):
    result = runner.invoke(app, ["run", "agentgym/Nope-v0", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown env id" in result.output
    result = runner.invoke(app, ["run", "agentgym/Calculator-v0", "--policy", "hf:/no/such/model", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "does not exist" in result.output
    result = runner.invoke(app, ["run", "agentgym/Calculator-v0", "--policy", "nonsense", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown policy spec" in result.output
    result = runner.invoke(app, ["run", "agentgym/Calculator-v0", "--env-kwarg", "split=validation", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "split" in result.output
