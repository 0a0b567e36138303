"""Environments over HTTP: serve any registered env from another process (or a Docker container), and
use it through `RemoteEnv` (agentgym.remote_env, re-exported here).

What a stranger meets (see the README's Security section): every route but ``/health`` needs the bearer
token (generated and printed at start-up unless given); requests whose Host or Origin is not this
machine's loopback are refused (DNS rebinding); bodies over the cap get 413; binding beyond loopback
without a token is refused (agentgym.http_guard).

Sessions (agentgym.env_sessions) are created per episode; capacity is reserved before an env is built or
forked, so concurrent requests cannot overshoot `max_sessions`; a full server answers 429 at once. A
session ends when idle for `idle_timeout_s` or, whatever its client does, after `max_lifetime_s`; a
background task reaps them. Env work runs in worker threads, never on the event loop, and ``/health`` is
answered on the loop itself, so it answers while every worker is busy. Client mistakes (bad base64, a
negative seed, ill-typed options, a busy session) get a 4xx with a message; an env that fails answers 500
with the error, never taking the server down.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from agentgym.env_sessions import AtCapacity, NoSession, SessionBusy, SessionTable
from agentgym.http_guard import GuardMiddleware, HostCheck, check_bind, resolve_token
from agentgym.registry import make
from agentgym.remote_env import TOKEN_ENV_VAR, RemoteEnv, RemoteEnvError, ServerAtCapacity

__all__ = ["RemoteEnv", "RemoteEnvError", "ServerAtCapacity", "create_env_app", "serve_env", "TOKEN_ENV_VAR"]

# Errors an env raises when the seed or options it was given are wrong: the client's mistake (400).
CLIENT_ERRORS = (ValueError, TypeError, KeyError, LookupError)


class NewSession(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: StrictInt | None = Field(default=None, ge=0, le=2**64 - 1)  # numpy seeds are unsigned
    options: dict[str, Any] | None = None


class StepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: StrictStr | None = None
    action_b64: StrictStr | None = None  # raw bytes (e.g. invalid UTF-8) travel base64-encoded


def create_env_app(env_id: str, env_kwargs: dict[str, Any] | None = None, max_sessions: int = 64,
                   idle_timeout_s: float = 600.0, max_lifetime_s: float = 3600.0, *, token: str | None,
                   bind_host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] = (),
                   max_body_bytes: int = 8 * 2**20, body_timeout_s: float = 30.0) -> Any:
    """The env server as an ASGI app. `token=None` disables the token (loopback-only use, e.g. inside a
    container whose port is not published); `serve_env` always has one."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse

    kwargs = dict(env_kwargs or {})
    probe = make(env_id, **kwargs)  # fail at start-up, not on the first request
    # An env whose instances share unsafe state (contract: thread_safe=False) gets one call at a time.
    env_calls = nullcontext() if getattr(probe.unwrapped, "thread_safe", True) else threading.Lock()
    probe.close()
    sessions = SessionTable(max_sessions, idle_timeout_s, max_lifetime_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        import anyio.to_thread

        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = max(limiter.total_tokens, max_sessions + 8)  # a step per session can run
        reaper = asyncio.create_task(_reap_forever(sessions, min(idle_timeout_s, max_lifetime_s)))
        try:
            yield
        finally:
            reaper.cancel()
            await asyncio.to_thread(sessions.close_all)  # no sandbox outlives the server

    app = FastAPI(title=f"agentgym env server: {env_id}", lifespan=lifespan)
    app.state.sessions = sessions

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}: {exc}"[:2000]}, status_code=500)

    def describe(env: Any) -> dict[str, Any]:
        return {"system_prompt": env.system_prompt() if hasattr(env, "system_prompt") else None,
                "stop_strings": list(env.stop_strings()) if hasattr(env, "stop_strings") else [],
                "limits": env.limits.model_dump() if hasattr(env, "limits") else None}

    @app.get("/health")
    async def health() -> dict[str, Any]:  # on the event loop: answers while every worker thread is busy
        return {"status": "ok", "env_id": env_id, **sessions.stats(), "max_sessions": max_sessions,
                "idle_timeout_s": idle_timeout_s, "max_lifetime_s": max_lifetime_s}

    @app.post("/sessions")
    def create(req: NewSession) -> dict[str, Any]:
        sessions.reap()
        with _http_errors(), sessions.reserve() as slot:
            env = make(env_id, **kwargs)
            try:
                with env_calls:
                    obs, info = env.reset(seed=req.seed, options=req.options)
            except CLIENT_ERRORS as e:
                env.close()
                raise HTTPException(400, f"reset rejected seed={req.seed!r} / options: {type(e).__name__}: {e}"[:2000]) \
                    from None
            except Exception as e:
                env.close()
                raise HTTPException(500, f"reset failed: {type(e).__name__}: {e}"[:2000]) from None
            return {"session_id": slot.fill(env), "observation": obs, "info": info, **describe(env)}

    @app.post("/sessions/{sid}/step")
    def step(sid: str, req: StepRequest) -> dict[str, Any]:
        action = _action(req)
        with _http_errors(), sessions.use(sid) as s:
            if getattr(s.env, "_done", False):
                raise HTTPException(409, "the episode has ended; open a new session (POST /sessions)")
            try:
                with env_calls:
                    obs, reward, terminated, truncated, info = s.env.step(action)
            except Exception as e:
                raise HTTPException(500, f"step failed: {type(e).__name__}: {e}"[:2000]) from None
        return {"observation": obs, "reward": reward, "terminated": terminated, "truncated": truncated, "info": info}

    @app.post("/sessions/{sid}/fork")
    def fork(sid: str) -> dict[str, Any]:
        with _http_errors(), sessions.reserve() as slot, sessions.use(sid) as s:
            with env_calls:
                copy = s.env.fork() if hasattr(s.env, "fork") else None
            if copy is None:
                raise HTTPException(409, f"{env_id} cannot fork; replay the actions in a new session instead")
            return {"session_id": slot.fill(copy)}

    @app.delete("/sessions/{sid}")
    def close(sid: str) -> dict[str, Any]:
        return {"closed": sessions.close(sid)}

    return GuardMiddleware(app, HostCheck(bind_host, allowed_hosts), token, max_body_bytes,
                           body_timeout_s=body_timeout_s)


class _http_errors:
    """Session-table refusals as HTTP answers: full -> 429, gone -> 404, busy -> 409."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        from fastapi import HTTPException

        status = {AtCapacity: 429, NoSession: 404, SessionBusy: 409}.get(type(exc))  # type: ignore[arg-type]
        if status is not None:
            raise HTTPException(status, str(exc)) from None


def _action(req: StepRequest) -> str | bytes:
    from fastapi import HTTPException

    if (req.action is None) == (req.action_b64 is None):
        raise HTTPException(400, "send exactly one of 'action' (text) and 'action_b64' (base64 bytes)")
    if req.action_b64 is None:
        return req.action or ""
    try:
        return base64.b64decode(req.action_b64, validate=True)
    except (binascii.Error, ValueError) as e:
        raise HTTPException(400, f"action_b64 is not valid base64: {e}") from None


async def _reap_forever(sessions: SessionTable, shortest_timeout_s: float) -> None:
    interval = min(30.0, max(0.2, shortest_timeout_s / 4))
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(sessions.reap)


def serve_env(env_id: str, host: str = "127.0.0.1", port: int = 8100, token: str | None = None,
              allowed_hosts: tuple[str, ...] = (), max_sessions: int = 64, idle_timeout_s: float = 600.0,
              max_lifetime_s: float = 3600.0, max_body_bytes: int = 8 * 2**20,
              announce: Any = print) -> None:
    """Run the env server until interrupted. Without a token one is generated and announced (loopback
    only: binding beyond loopback needs a token given on purpose)."""
    import uvicorn

    token, generated = resolve_token(token, TOKEN_ENV_VAR)
    check_bind(host, None if generated else token, "agentgym serve-env")
    app = create_env_app(env_id, max_sessions=max_sessions, idle_timeout_s=idle_timeout_s,
                         max_lifetime_s=max_lifetime_s, token=token, bind_host=host, allowed_hosts=allowed_hosts,
                         max_body_bytes=max_body_bytes)
    shown = host if ":" not in host else f"[{host}]"
    announce(f"env server for {env_id} on http://{shown}:{port}")
    if generated:
        announce(f"token: {token}\n(use RemoteEnv(url, token=...) or export {TOKEN_ENV_VAR}=...; "
                 "pass --token to choose it)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
