"""Issue 9 item 7: hostile or careless config and CLI input ends in one line of error, exit code 2, no
traceback, before any model loads (the configs name a model path that does not exist: reaching the model
would give a different error)."""

import resource
import time

import pytest
from typer.testing import CliRunner

from agentgym.cli import app
from agentgym.config import MAX_CONFIG_BYTES, ConfigError, load_config

runner = CliRunner()
NO_MODEL = "/nonexistent/agentgym-test-model"
BASE = f"env:\n  id: agentgym/Calculator-v0\npolicy:\n  model: {NO_MODEL}\n"
BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
                  f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n" for i in range(8)))


def one_line_error(args, expect):
    result = runner.invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit), result.exception
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error:") and expect in lines[0], lines[0]
    assert NO_MODEL not in lines[0] or expect in lines[0]  # never the model's own not-found error
    return lines[0]


def config_file(tmp_path, body: bytes | str, name="c.yaml"):
    path = tmp_path / name
    path.write_bytes(body if isinstance(body, bytes) else body.encode())
    return str(path)


def sft_section(tmp_path) -> str:
    data = tmp_path / "sft-data.jsonl"  # exists, so `sft` gets past its data check to the config checks
    data.write_text("")
    return f"sft:\n  data: {data}\n"


@pytest.fixture(params=["train", "eval", "sft"])
def command(request):
    return request.param


def test_yaml_alias_bomb_in_a_file_fails_fast(tmp_path, command):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    one_line_error([command, config_file(tmp_path, BASE + "env_extra:\n  " + BOMB.replace("\n", "\n  "))], "alias")
    one_line_error([command, config_file(tmp_path, BOMB + BASE)], "alias")
    assert time.monotonic() - start < 60  # generous: the unbounded load did not finish in minutes
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 512 << 10  # KB: not the GB expansion


def test_yaml_alias_bomb_in_set_fails_fast(tmp_path):
    value = "{" + BOMB.replace("\n", ", ").rstrip(", ") + "}"
    one_line_error(["train", config_file(tmp_path, BASE), "--set", f"env.kwargs={value}"], "alias")


def test_a_document_over_the_size_cap_is_refused(tmp_path):
    one_line_error(["train", config_file(tmp_path, BASE + "#" * MAX_CONFIG_BYTES + "\n")], "bytes")


@pytest.mark.parametrize("body, expect", [
    ("", "empty"), ("null\n", "empty"), ("~\n", "empty"), ("# only a comment\n", "empty"),
    (b"env:\n  id: agentgym/Calculator-v0\xff\xfe\n", "not UTF-8"),
    ("[1, 2]\n", "mapping"), ("just text\n", "mapping"),
    ("env: {id: [unclosed\n", "not valid YAML"),
    (BASE + "seed: " + "7" * 5000 + "\n", "digits"),
    (BASE + "trainer:\n  lr: .nan\n", "finite"), (BASE + "trainer:\n  lr: .inf\n", "finite"),
    (BASE + "trainer:\n  clip_low: -.inf\n", "finite"),
    (BASE + "trainer:\n  lr: 1" + "0" * 400 + "\n", "trainer.lr"),
    ("[" * 10_000 + "]" * 10_000 + "\n", "nested"),
    (BASE.replace("Calculator-v0\n", "Calculator-v0\n  kwargs: {nope: 1}\n"), "nope"),
    (BASE + "run_dir: [1, 2]\n", "run_dir"),
])
def test_bad_config_files(tmp_path, command, body, expect):
    if command == "sft" and isinstance(body, str) and NO_MODEL in body:
        body += sft_section(tmp_path)
    one_line_error([command, config_file(tmp_path, body)], expect)


def test_a_directory_device_or_missing_file_as_config(tmp_path, command):
    one_line_error([command, str(tmp_path)], "is a directory")
    one_line_error([command, "/dev/zero"], "not a regular file")
    one_line_error([command, str(tmp_path / "missing.yaml")], "does not exist")


@pytest.mark.parametrize("override, expect", [
    ("trainer.lr=[1", "not valid YAML"), ("trainer.lr={a: b", "not valid YAML"), ("trainer.lr=nan", "finite"),
    ("trainer.lr=.inf", "finite"), ("trainer.steps=" + "9" * 5000, "digits"), ("trainer.lr", "section.key=value"),
    ("trainer..lr=1", "section.key"), ("env.kwargs.bogus_key=1", "bogus_key"),
    ("env.kwargs={split: train, kinds: [add], tool_fromat: x}", "tool_fromat"),
    ("sft.lr=.nan", "finite"), ("eval.temperature=-.inf", "finite"), ("rollout.temperature=.nan", "finite"),
    ("rollout.top_p=.nan", "finite"), ("env.id=agentgym/Nope-v0", "unknown env id"),
    ("trainer.steps=" + "9" * 4000, "64-bit"), ("seed=-" + "9" * 30, "64-bit"), ("eval.tasks=1e999", "eval.tasks"),
])
def test_bad_overrides(tmp_path, command, override, expect):
    base = BASE + (sft_section(tmp_path) if command == "sft" else "")
    one_line_error([command, config_file(tmp_path, base), "--set", override], expect)


def test_run_dir_pointing_at_a_file(tmp_path, command):
    target = tmp_path / "a-file"
    target.write_text("x")
    one_line_error([command, config_file(tmp_path, BASE + f"run_dir: {target}\n")], "not a directory")


def test_demo_takes_the_same_checks(tmp_path):
    one_line_error(["demo", "--config", config_file(tmp_path, "")], "empty")
    one_line_error(["demo", "--set", "trainer.lr=.nan"], "finite")
    one_line_error(["demo", "--set", "env.kwargs.bogus=1"], "bogus")
    one_line_error(["demo", "--config", str(tmp_path)], "is a directory")


@pytest.mark.parametrize("extra, expect", [
    (["--env-kwarg", "bogus=1"], "bogus"), (["--env-kwarg", "split=[x"], "not valid YAML"),
    (["--env-kwarg", "kinds=" + "7" * 5000], "digits"),
    (["--env-kwarg", "kinds={" + BOMB.replace("\n", ", ").rstrip(", ") + "}"], "alias"),
])
def test_run_env_kwargs(tmp_path, extra, expect):
    one_line_error(["run", "agentgym/Calculator-v0", "--policy", f"hf:{NO_MODEL}", "--out", str(tmp_path), *extra],
                   expect)


def test_run_out_pointing_at_a_file(tmp_path):
    target = tmp_path / "a-file"
    target.write_text("x")
    one_line_error(["run", "agentgym/Calculator-v0", "--policy", f"hf:{NO_MODEL}", "--out", str(target)],
                   "not a directory")


@pytest.mark.parametrize("command", ["replay", "view", "report"])
def test_inspect_commands_on_bad_paths(tmp_path, command):
    binary = tmp_path / "binary.jsonl"
    binary.write_bytes(b"\xff\xfe\x00" * 100)
    missing = tmp_path / "missing"
    one_line_error([command, str(missing)], "no such")
    if command == "replay":
        result = runner.invoke(app, [command, str(binary)])  # a warning for the bad line, then the error
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
        assert result.output.splitlines()[-1].startswith("error:") and "no readable" in result.output
        one_line_error([command, str(tmp_path)], "no trajectories.jsonl")
        one_line_error([command, "/dev/zero"], "not a regular file")


def test_load_config_api_raises_config_error_only():
    for override in ["a.b=[", "trainer.lr=" + "1" * 5000, "trainer.lr=.nan"]:
        with pytest.raises(ConfigError):
            load_config(None, [override])
