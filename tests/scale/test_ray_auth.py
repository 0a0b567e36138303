"""Joining a Ray cluster whose head requires token authentication (Ray >= 2.59 heads do by default) without
setting the mode: the error must say what to set. Skipped without Ray."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'agentgym[ray]')")

from agentgym.launch import free_port  # noqa: E402


@pytest.mark.slow
def test_joining_a_token_auth_head_without_the_mode_names_ray_auth_mode(tmp_path):
    ray_cli = shutil.which("ray") or str(Path(sys.executable).parent / "ray")
    port = free_port()
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's Unix sockets live under it (107 chars)
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "a" * 32, "RAY_memory_monitor_refresh_ms": "0"}
    subprocess.run([ray_cli, "start", "--head", "--port", str(port), "--num-cpus", "1", "--include-dashboard",
                    "false", "--temp-dir", str(temp)], env=env, check=True, capture_output=True, timeout=120)
    try:
        code = ("from agentgym.config import RayConfig; from agentgym.ray_workers import RolloutFleet, EnvSpec\n"
                f"RolloutFleet(RayConfig(address='127.0.0.1:{port}'), lambda: None, "
                "EnvSpec('agentgym/Calculator-v0', 'agentgym.envs.calculator:CalculatorEnv', {}), '.')\n")
        client_env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
        done = subprocess.run([sys.executable, "-c", code], env=client_env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode != 0
        assert "RayRolloutError" in done.stderr and "RAY_AUTH_MODE=token" in done.stderr, done.stderr[-2000:]
    finally:  # only this head's processes (`ray stop` would stop every cluster on the machine)
        subprocess.run(["pkill", "-9", "-f", str(temp)], capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)
