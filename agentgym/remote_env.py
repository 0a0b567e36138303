"""`RemoteEnv`: an env served by `agentgym serve-env`, used like a local one (an ordinary `TextEnv`; the
rollout engine runs its HTTP calls off the event loop like any blocking env).

A 429 is back-pressure, not a failure: opening a session waits for capacity with jittered exponential
backoff for up to `capacity_wait_s` (0 = fail at once), so a rollout with more live paths than the server
has sessions queues instead of crashing. A fork that finds the server full returns None at once (the
engine then replays), because the forking path holds a slot while it waits.

The server's bearer token comes from the `token` argument or the ``AGENTGYM_ENV_TOKEN`` variable.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential, wait_random

from agentgym.env import EnvLimits, TextEnv

TOKEN_ENV_VAR = "AGENTGYM_ENV_TOKEN"


class RemoteEnvError(RuntimeError):
    pass


class ServerAtCapacity(RemoteEnvError):
    """The env server answered 429: every session slot is taken."""


class RemoteEnv(TextEnv):
    """A client for `agentgym.env_server.create_env_app`: looks like the env it serves, one HTTP session
    per episode."""

    def __init__(self, base_url: str, timeout_s: float = 120.0, capacity_wait_s: float = 120.0,
                 token: str | None = None):
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.capacity_wait_s = timeout_s, capacity_wait_s
        self.token = token or os.environ.get(TOKEN_ENV_VAR) or None
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)
        self.session_id: str | None = None
        self._system_prompt: str | None = None
        self._stop_strings: list[str] = []

    def _open(self, path: str, **kw: Any) -> dict[str, Any]:
        """POST that takes a session slot, waiting out a full server for up to `capacity_wait_s`."""
        retrying = Retrying(retry=retry_if_exception_type(ServerAtCapacity), reraise=True,
                            stop=stop_after_delay(self.capacity_wait_s),
                            wait=wait_exponential(multiplier=0.05, max=2.0) + wait_random(0, 0.1))
        try:
            return retrying(self._call, "POST", path, **kw)
        except ServerAtCapacity as e:
            raise RemoteEnvError(f"{e} (waited {self.capacity_wait_s:g}s for a free session)") from None

    def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        try:
            response = self.client.request(method, path, **kw)
        except httpx.TransportError as e:
            raise RemoteEnvError(f"env server {self.base_url} unreachable: {type(e).__name__}: {e}") from e
        if response.status_code == 429:
            raise ServerAtCapacity(f"env server {self.base_url} answered 429: {response.text[:300]}")
        if response.status_code == 401:
            hint = "no token given" if not self.token else "the token was refused"
            raise RemoteEnvError(f"env server {self.base_url} answered 401 ({hint}): pass RemoteEnv(token=...) or "
                                 f"set {TOKEN_ENV_VAR} to the token `agentgym serve-env` printed")
        if response.status_code >= 400:
            raise RemoteEnvError(f"env server {self.base_url} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def system_prompt(self) -> str | None:
        return self._system_prompt

    def stop_strings(self) -> list[str]:
        return self._stop_strings

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._end_session()
        data = self._open("/sessions", json={"seed": seed, "options": options})
        self.session_id = data["session_id"]
        self._system_prompt, self._stop_strings = data["system_prompt"], data["stop_strings"]
        if data.get("limits"):
            self.limits = EnvLimits(**data["limits"])
        return data["observation"], data["info"]

    def step(self, action: str | bytes):
        if self.session_id is None:
            raise RuntimeError("step() before reset()")
        body = {"action_b64": base64.b64encode(action).decode()} if isinstance(action, (bytes, bytearray)) \
            else {"action": action}
        d = self._call("POST", f"/sessions/{self.session_id}/step", json=body)
        return d["observation"], d["reward"], d["terminated"], d["truncated"], d["info"]

    can_fork = True  # the server forks the session (or this returns None and the engine replays)

    def fork(self) -> RemoteEnv | None:
        if self.session_id is None:
            return None
        try:
            # One try, no waiting: the caller holds a session while it forks, so waiting here could
            # deadlock a full server; on None the engine replays the actions in a fresh env instead,
            # whose reset waits for capacity without holding a slot.
            data = self._call("POST", f"/sessions/{self.session_id}/fork")
        except RemoteEnvError:
            return None
        copy = RemoteEnv(self.base_url, self.timeout_s, self.capacity_wait_s, token=self.token)
        copy.session_id, copy.limits = data["session_id"], self.limits
        copy._system_prompt, copy._stop_strings = self._system_prompt, self._stop_strings
        return copy

    def _end_session(self) -> None:
        if self.session_id is not None:
            try:
                self._call("DELETE", f"/sessions/{self.session_id}")
            except RemoteEnvError:
                pass  # the server may have reaped it or gone away; nothing left to free here
            self.session_id = None

    def close(self) -> None:
        self._end_session()
        self.client.close()
