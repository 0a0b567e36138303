"""The README's "Writing an environment" section, followed as written: its Python blocks become `mygame.py`,
its TOML block the package's entry point, and its shell commands are run in a fresh process each."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def section_blocks(title: str) -> dict[str, list[str]]:
    text = README.read_text()
    start = text.index(f"### {title}")
    end = text.find("\n## ", start)
    blocks: dict[str, list[str]] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", text[start:end], re.S):
        blocks.setdefault(lang, []).append(body)
    return blocks


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """mygame.py from the README's Python blocks, installed with the README's entry point."""
    blocks = section_blocks("Writing an environment")
    assert len(blocks["python"]) == 2 and len(blocks["toml"]) == 1 and len(blocks["bash"]) == 1
    site = tmp_path_factory.mktemp("site")
    (site / "mygame.py").write_text("\n\n".join(blocks["python"]))
    entry_points = tomllib.loads(blocks["toml"][0])["project"]["entry-points"]
    dist = site / "mygame-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mygame\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) for group, eps in entry_points.items()))
    work = tmp_path_factory.mktemp("work")
    return site, work, blocks["bash"][0]


def test_readme_envs_work_from_plain_gymnasium(installed):
    site, work, _ = installed
    code = ("import agentgym, gymnasium; e = gymnasium.make('mygame/Key-v0').unwrapped; print(e.reset(seed=1)[0]); "
            "print(agentgym.list_envs('mygame'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work, timeout=120,
                         env=dict(os.environ, PYTHONPATH=str(site)))
    assert out.returncode == 0, out.stderr
    assert "The door is locked." in out.stdout and "'mygame/Dictionary-v0', 'mygame/Key-v0'" in out.stdout


@pytest.mark.slow(ci=True)
def test_readme_commands_run_as_written(installed):
    site, work, script = installed
    commands = [line for line in script.splitlines() if line.startswith("agentgym ")]
    assert len(commands) == 4
    env = dict(os.environ, PYTHONPATH=str(site), COLUMNS="200")
    outputs = []
    for command in commands:
        argv = shlex.split(command)[1:]
        out = subprocess.run([sys.executable, "-c", "from agentgym.cli import main; main()", *argv],
                             capture_output=True, text=True, cwd=work, env=env, timeout=600)
        assert out.returncode == 0, f"{command}\n{out.stdout[-3000:]}\n{out.stderr[-2000:]}"
        outputs.append(out.stdout)
    listing, checks, run, replay = outputs
    assert "mygame/Key-v0" in listing and "mygame/Dictionary-v0" in listing
    assert "all checks passed for 2 env(s)" in checks and "return 3 over 3 episodes" in checks
    assert "100.0%" in run and (work / "runs" / "key" / "run.json").is_file()
    assert replay.count("reproduced tree") == 4
