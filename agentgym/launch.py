"""Start an HTTP server (`agentgym serve`, `agentgym serve-env`, or an app in this process) and wait until
its ``/health`` answers: what a script driving a sampler or env server, a test and a benchmark all need.

Two ways, one wait:
- ``launched([...command...], url)`` runs a command in its own process group and stops the whole group on
  exit (a server that forks workers leaves none behind); if the process dies while starting, the error
  carries the tail of its stderr.
- ``serving_in_thread(app)`` runs an ASGI app under uvicorn in a daemon thread on a free loopback port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx


class ServerStartError(RuntimeError):
    """The server exited or did not answer ``/health`` in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS reports free right now (another process can still take it before the server binds)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def agentgym_command(*args: str) -> list[str]:
    """The `agentgym` console script of this interpreter's environment (not whichever one is on PATH)."""
    return [str(Path(sys.executable).with_name("agentgym")), *args]


def wait_healthy(url: str, timeout_s: float = 180.0, proc: subprocess.Popen | None = None,
                 stderr_tail: Callable[[], str] | None = None) -> None:
    """Poll ``{url}/health`` until it answers 200; fail early when ``proc`` has exited."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = stderr_tail() if stderr_tail else ""
            raise ServerStartError(f"server exited with code {proc.returncode} while starting{tail}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise ServerStartError(f"{url}/health did not answer within {timeout_s:.0f} s")


@contextmanager
def launched(command: Sequence[str], url: str, timeout_s: float = 180.0,
             env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """Run ``command`` (a server that will listen at ``url``), wait for its health, stop it on exit."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty server never blocks on a full pipe
        proc = subprocess.Popen(list(command), env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)

        def tail() -> str:
            err.seek(0)
            text = err.read().decode(errors="replace")[-800:]
            return f":\n{text}" if text else ""

        try:
            wait_healthy(url, timeout_s, proc, tail)
            yield proc
        finally:
            _stop_group(proc)


def _stop_group(proc: subprocess.Popen, grace_s: float = 20.0) -> None:
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=wait_s)
            return
        except ProcessLookupError:  # the group is gone already
            return
        except subprocess.TimeoutExpired:
            continue  # escalate to SIGKILL


@contextmanager
def serving_agentgym(*args: str, timeout_s: float = 180.0, token: str | None = None) -> Iterator[str]:
    """``agentgym <args> --port P`` on a free loopback port; yields its root URL (no ``/v1``).

    ``token`` is passed as AGENTGYM_SERVE_TOKEN; without it, an inherited token is removed so the server
    stays open on loopback as the command's own defaults say."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "AGENTGYM_SERVE_TOKEN"}
    if token is not None:
        env["AGENTGYM_SERVE_TOKEN"] = token
    url = f"http://127.0.0.1:{port}"
    with launched(agentgym_command(*args, "--port", str(port)), url, timeout_s, env):
        yield url


@contextmanager
def serving_in_thread(app: Any, timeout_s: float = 30.0) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a daemon thread on a free loopback port; yields its root URL."""
    import uvicorn  # the `serve` extra

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServerStartError(f"uvicorn did not start on port {port} within {timeout_s:.0f} s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
