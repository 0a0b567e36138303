"""The Docker tier runs only where a Docker engine answers (these machines have only the client)."""

import subprocess
import sys

import pytest

from agentgym.sandboxes.docker_tier import DockerUnavailable, docker_client


def engine_or_skip():
    try:
        return docker_client()
    except DockerUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.docker
def test_docker_sandbox_is_stateful_isolated_and_limited():
    client = engine_or_skip()
    from agentgym.sandboxes.docker_tier import DockerSandbox
    from agentgym.sandboxes import SandboxLimits

    with DockerSandbox(SandboxLimits(wall_timeout_s=5), client) as sb:
        assert sb.run("x = 41").error_type is None
        assert sb.run("x + 1").value == "42"
        assert sb.run("import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)").exception
        assert sb.run("while True: pass").error_type == "timeout"
        fork = sb.fork()
        assert fork.run("x").value == "41"
        fork.close()


def test_replay_mode_of_the_driver_runs_history_then_the_cell():
    """The one-shot protocol the Docker tier uses, exercised with the local interpreter."""
    import json

    from agentgym.sandboxes.docker_tier import _parse_replay
    from agentgym.sandboxes import SandboxLimits
    from agentgym.sandboxes.isolation import DRIVER

    payload = json.dumps({"history": ["x = 40", "print('not shown')"], "code": "print('hi')\nx + 2", "nonce": "abc"})
    out = subprocess.run([sys.executable, "-I", "-S", str(DRIVER), "--replay", payload], capture_output=True, timeout=30)
    result = _parse_replay(out.stdout, out.stderr, out.returncode, SandboxLimits(), "abc")
    assert result.value == "42" and result.stdout.strip() == "hi" and "not shown" not in result.stdout
