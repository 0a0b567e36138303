"""The example third-party env package (examples/agentgym-example-envs), installed the way a user would.

It is installed as a distribution on a temporary ``sys.path`` entry: its modules plus a ``.dist-info``
whose ``entry_points.txt`` is generated from the package's own ``pyproject.toml``, which is what
``pip install`` produces, without needing a wheel build (and network for build isolation) on CI. Every
command then runs in a fresh process, as a user's shell would run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "examples" / "agentgym-example-envs"
CLI = "from agentgym.cli import main; main()"


def install_distribution(package: Path, site: Path) -> None:
    """What ``pip install package`` leaves in site-packages: the modules and a dist-info with entry points."""
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    for module in (package / "src").iterdir():
        if module.is_dir():
            shutil.copytree(module, site / module.name, ignore=shutil.ignore_patterns("__pycache__"))
    dist = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n")
    lines = []
    for group, entries in project.get("entry-points", {}).items():
        lines.append(f"[{group}]")
        lines += [f"{name} = {target}" for name, target in entries.items()]
    (dist / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site-packages")
    install_distribution(PACKAGE, site)
    return dict(os.environ, PYTHONPATH=str(site), COLUMNS="200")


def _run(env, *args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=PACKAGE)


def test_envs_list_shows_the_plugin_envs(site):
    out = _run(site, "-c", CLI, "envs", "list")
    assert out.returncode == 0, out.stdout + out.stderr
    for env_id in ("example/GuessNumber-v0", "example/Glossary-v0", "agentgym/Python-v0"):
        assert env_id in out.stdout
    assert "example " in out.stdout.replace("│", " ")  # registered by the package's entry point
    only = _run(site, "-c", CLI, "envs", "list", "--namespace", "example")
    assert "example/Glossary-v0" in only.stdout and "agentgym/Python-v0" not in only.stdout


def test_gymnasium_make_works_after_import_agentgym_in_a_fresh_process(site):
    code = ("import agentgym, gymnasium; gymnasium.make('agentgym/Python-v0').close(); "
            "e = gymnasium.make('example/GuessNumber-v0'); print(e.reset(seed=0)[0])")
    out = _run(site, "-c", code)
    assert out.returncode == 0, out.stderr
    assert "between 1 and 100" in out.stdout


def test_the_packages_own_tests_pass(site):
    out = _run(site, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PACKAGE / "tests"))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "5 passed" in out.stdout


@pytest.mark.slow(ci=True)
def test_check_env_all_checks_the_plugin_envs(site):
    out = _run(site, "-c", CLI, "check-env", "--all", "--namespace", "example", timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "example/GuessNumber-v0" in out.stdout and "example/Glossary-v0" in out.stdout
    assert "all checks passed for 2 env(s)" in out.stdout


@pytest.mark.slow
def test_check_env_all_without_namespace_includes_the_plugin_envs(site):
    out = _run(site, "-c", CLI, "check-env", "--all", timeout=1200)
    assert "example/GuessNumber-v0" in out.stdout and "agentgym/Calculator-v0" in out.stdout
    assert out.returncode == 0, out.stdout[-4000:]
