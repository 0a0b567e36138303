"""Faults at the env server, each with a bounded outcome: the server killed mid-step, a half-open client,
more sessions than capacity (the 429 case is tests/core/test_env_server.py::test_full_server_answers_429_not_a_hang)."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

uvicorn = pytest.importorskip("uvicorn")
from agentgym.launch import ServerStartError, free_port, serving_in_thread, wait_healthy  # noqa: E402
from agentgym.env_server import RemoteEnv, RemoteEnvError, create_env_app  # noqa: E402

HERE = Path(__file__).parent
TOKEN = secrets.token_hex(16)
SERVE = """
import sys
sys.path.insert(0, {here!r})
import agentgym
from agentgym.env_server import serve_env
agentgym.register("agentgym/TestSlowCounter-v0", "ray_helpers:SlowCounter", step_s=30.0)
serve_env("agentgym/TestSlowCounter-v0", port={port}, token={token!r}, announce=lambda *a: None)
"""


def _start_server(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SERVE.format(here=str(HERE), port=port, token=TOKEN)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout_s=60, proc=proc)
    except ServerStartError:
        proc.kill()
        raise
    return proc


def test_server_killed_mid_step_is_a_typed_error_and_a_new_server_serves(tmp_path):
    port = free_port()
    server = _start_server(port)
    try:
        env = RemoteEnv(f"http://127.0.0.1:{port}", token=TOKEN, timeout_s=60, capacity_wait_s=0)
        env.reset(seed=0)
        errors = []

        def step():
            try:
                env.step("ok")  # the env's step takes 30 s: the kill lands mid-step
            except RemoteEnvError as e:
                errors.append(e)

        stepping = threading.Thread(target=step)
        stepping.start()
        time.sleep(1.0)
        os.killpg(server.pid, signal.SIGKILL)
        stepping.join(timeout=30)  # the connection drops with the process: no waiting for timeout_s
        assert not stepping.is_alive()
        assert len(errors) == 1, "the step must fail with RemoteEnvError, not hang or raise something else"
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    server = _start_server(port)  # a new server on the same address: a fresh env works, the old session is gone
    try:
        fresh = RemoteEnv(f"http://127.0.0.1:{port}", token=TOKEN, timeout_s=60, capacity_wait_s=0)
        obs, _ = fresh.reset(seed=1)
        assert obs == "Count."
        with pytest.raises(RemoteEnvError):
            env.step("ok")  # the dead server's session id means nothing to the new one
        fresh.close()
        assert httpx.get(f"http://127.0.0.1:{port}/health").json()["sessions"] == 0
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


@pytest.fixture
def calc_server():
    app = create_env_app("agentgym/Calculator-v0", max_sessions=2, token=TOKEN, body_timeout_s=1.0)
    with serving_in_thread(app) as url:
        yield url, int(url.rsplit(":", 1)[1])


def test_half_open_client_does_not_block_others_and_is_timed_out(calc_server):
    url, port = calc_server
    stalled = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        # the head and half of a session request, then silence (a client that hung or vanished without a FIN)
        stalled.sendall(b"POST /sessions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + TOKEN.encode()
                        + b"\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"seed\": ")
        env = RemoteEnv(url, token=TOKEN, timeout_s=30, capacity_wait_s=0)
        for seed in range(3):  # other sessions are served meanwhile, at full capacity (2 slots)
            env.reset(seed=seed)
            env.step("<answer>0</answer>")
        second = RemoteEnv(url, token=TOKEN, timeout_s=30, capacity_wait_s=0)
        second.reset(seed=9)
        reply = stalled.recv(4096)  # the server gives up on the body after body_timeout_s
        assert reply.startswith(b"HTTP/1.1 408"), reply[:80]
        env.close()
        second.close()
    finally:
        stalled.close()
    health = httpx.get(f"{url}/health").json()
    assert health["sessions"] == 0  # the stalled request never held a session


def test_more_sessions_than_capacity_get_429_and_leak_nothing(calc_server):
    url, _ = calc_server
    envs = [RemoteEnv(url, token=TOKEN, timeout_s=30, capacity_wait_s=0) for _ in range(6)]
    outcomes = []

    def reset(env):
        try:
            env.reset(seed=0)
            outcomes.append("ok")
        except RemoteEnvError as e:
            outcomes.append("429" if "429" in str(e) else str(e))

    threads = [threading.Thread(target=reset, args=(e,)) for e in envs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["429"] * 4 + ["ok"] * 2
    assert httpx.get(f"{url}/health").json()["sessions"] == 2
    for env in envs:
        env.close()
    assert httpx.get(f"{url}/health").json()["sessions"] == 0
    again = RemoteEnv(url, token=TOKEN, timeout_s=30, capacity_wait_s=0)
    again.reset(seed=1)  # the refused requests reserved nothing
    again.close()
