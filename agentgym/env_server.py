"""Environments over HTTP: serve any registered env from another process (or a Docker container), and
use it through `RemoteEnv`, an ordinary `TextEnv` (the rollout engine runs its HTTP calls off the event
loop like any blocking env).

Server (`agentgym serve-env ENV_ID`): sessions are created per episode and reaped when idle; a full server
answers 429 at once instead of hanging; an env that raises answers 500 with the error, never taking the
server down. Steps run in FastAPI's thread pool, so one slow env does not block the others.

Client (`RemoteEnv`): a 429 is back-pressure, not a failure: opening a session waits for capacity with
jittered exponential backoff for up to `capacity_wait_s` (0 = fail at once), so a rollout with more live
paths than the server has sessions queues instead of crashing. A fork that finds the server full returns
None at once (the engine then replays), because the forking path holds a slot while it waits.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_exponential, wait_random

from agentgym.env import EnvLimits, TextEnv
from agentgym.registry import make


class NewSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int | None = None
    options: dict[str, Any] | None = None


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str | None = None
    action_b64: str | None = None  # raw bytes (e.g. invalid UTF-8) travel base64-encoded


class _Sessions:
    def __init__(self, env_id: str, env_kwargs: dict[str, Any], max_sessions: int, idle_timeout_s: float):
        self.env_id, self.env_kwargs = env_id, env_kwargs
        self.max_sessions, self.idle_timeout_s = max_sessions, idle_timeout_s
        self.envs: dict[str, tuple[Any, float]] = {}
        self.lock = threading.Lock()

    def reap(self) -> None:
        now = time.monotonic()
        with self.lock:
            stale = [sid for sid, (_, seen) in self.envs.items() if now - seen > self.idle_timeout_s]
            envs = [self.envs.pop(sid)[0] for sid in stale]
        for env in envs:
            env.close()

    def add(self, env: Any) -> str:
        sid = uuid.uuid4().hex
        with self.lock:
            self.envs[sid] = (env, time.monotonic())
        return sid

    def get(self, sid: str) -> Any:
        with self.lock:
            if sid not in self.envs:
                return None
            env, _ = self.envs[sid]
            self.envs[sid] = (env, time.monotonic())
            return env

    def full(self) -> bool:
        with self.lock:
            return len(self.envs) >= self.max_sessions


def create_env_app(env_id: str, env_kwargs: dict[str, Any] | None = None, max_sessions: int = 64,
                   idle_timeout_s: float = 600.0) -> Any:
    from fastapi import FastAPI, HTTPException

    sessions = _Sessions(env_id, env_kwargs or {}, max_sessions, idle_timeout_s)
    make(env_id, **sessions.env_kwargs).close()  # fail at start-up, not on the first request
    app = FastAPI(title=f"agentgym env server: {env_id}")

    def session(sid: str) -> Any:
        env = sessions.get(sid)
        if env is None:
            raise HTTPException(404, f"no session {sid!r} (closed or reaped after {idle_timeout_s:g} s idle)")
        return env

    def describe(env: Any) -> dict[str, Any]:
        return {"system_prompt": env.system_prompt() if hasattr(env, "system_prompt") else None,
                "stop_strings": list(env.stop_strings()) if hasattr(env, "stop_strings") else [],
                "limits": env.limits.model_dump() if hasattr(env, "limits") else None}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "env_id": env_id, "sessions": len(sessions.envs), "max_sessions": max_sessions}

    @app.post("/sessions")
    def create(req: NewSession) -> dict[str, Any]:
        sessions.reap()
        if sessions.full():
            raise HTTPException(429, f"server at capacity ({max_sessions} sessions)")
        env = make(env_id, **sessions.env_kwargs)
        try:
            obs, info = env.reset(seed=req.seed, options=req.options)
        except Exception as e:
            env.close()
            raise HTTPException(500, f"reset failed: {type(e).__name__}: {e}") from None
        return {"session_id": sessions.add(env), "observation": obs, "info": info, **describe(env)}

    @app.post("/sessions/{sid}/step")
    def step(sid: str, req: StepRequest) -> dict[str, Any]:
        env = session(sid)
        action: str | bytes = base64.b64decode(req.action_b64) if req.action_b64 is not None else (req.action or "")
        try:
            obs, reward, terminated, truncated, info = env.step(action)
        except Exception as e:
            raise HTTPException(500, f"step failed: {type(e).__name__}: {e}") from None
        return {"observation": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info}

    @app.post("/sessions/{sid}/fork")
    def fork(sid: str) -> dict[str, Any]:
        if sessions.full():
            raise HTTPException(429, f"server at capacity ({max_sessions} sessions)")
        copy = session(sid).fork() if hasattr(session(sid), "fork") else None
        if copy is None:
            raise HTTPException(409, f"{env_id} cannot fork; replay the actions in a new session instead")
        return {"session_id": sessions.add(copy)}

    @app.delete("/sessions/{sid}")
    def close(sid: str) -> dict[str, Any]:
        with sessions.lock:
            entry = sessions.envs.pop(sid, None)
        if entry:
            entry[0].close()
        return {"closed": entry is not None}

    return app


class RemoteEnvError(RuntimeError):
    pass


class ServerAtCapacity(RemoteEnvError):
    """The env server answered 429: every session slot is taken."""


class RemoteEnv(TextEnv):
    """A client for `create_env_app`: looks like the env it serves, one HTTP session per episode."""

    def __init__(self, base_url: str, timeout_s: float = 120.0, capacity_wait_s: float = 120.0):
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout_s, self.capacity_wait_s = timeout_s, capacity_wait_s
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout_s)
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
        copy = RemoteEnv(self.base_url, self.timeout_s, self.capacity_wait_s)
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
