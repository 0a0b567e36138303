"""docker/env-server.Dockerfile: build it, run an env server in it, drive it with RemoteEnv over loopback.
Skipped with the reason where no Docker engine answers (the CLI alone is not enough)."""

import json
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "agentgym-env-server:test"


def engine_or_skip() -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI on PATH")
    probe = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                           timeout=30)
    if probe.returncode != 0:
        pytest.skip(f"no Docker engine answers: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _docker(*args: str, timeout: float = 60) -> str:
    return subprocess.run(["docker", *args], check=True, capture_output=True, text=True, timeout=timeout).stdout.strip()


@pytest.mark.docker
def test_env_server_image_serves_an_env_as_a_non_root_user_with_a_health_check():
    engine_or_skip()
    from agentgym.env_server import RemoteEnv, RemoteEnvError

    _docker("build", "-f", "docker/env-server.Dockerfile", "-t", IMAGE, str(ROOT), timeout=900)
    token, port = secrets.token_hex(16), _free_port()
    name = f"agentgym-env-test-{port}"
    _docker("run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{port}:8100", "-e", f"AGENTGYM_ENV_TOKEN={token}",
            "-e", "ENV_ID=agentgym/Calculator-v0", IMAGE, "--max-sessions", "2")
    try:
        for _ in range(120):  # the image's HEALTHCHECK (on /health) reports healthy within its start period
            state = json.loads(_docker("inspect", "--format", "{{json .State.Health}}", name))
            if state and state.get("Status") == "healthy":
                break
            time.sleep(1)
        assert state["Status"] == "healthy", state
        assert _docker("exec", name, "id", "-u") != "0"
        modes = _docker("exec", name, "stat", "-c", "%a %U", "/home/agentgym/.cache/agentgym")
        assert modes == "755 agentgym"
        env = RemoteEnv(f"http://127.0.0.1:{port}", token=token, timeout_s=30, capacity_wait_s=0)
        obs, _ = env.reset(seed=0)
        assert obs
        env.step("<answer>0</answer>")
        env.close()
        with pytest.raises(RemoteEnvError):
            RemoteEnv(f"http://127.0.0.1:{port}", token="wrong", timeout_s=30, capacity_wait_s=0).reset(seed=0)
    finally:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)

