"""Every call the rollout engine makes into an env, bounded and isolated.

The engine runs many episodes at once and an env is third-party code: its factory, ``reset``, ``step``,
``fork``, the prefix replay that stands in for a fork, and ``close`` may raise or hang. Each call here runs
in a worker thread under a timeout; a call that fails raises `EnvCallFailed` carrying a typed
`PathFailure`, which the engine records and which ends only the path that made the call. A hung call is
abandoned (its thread cannot be killed), and the env it hangs in is never touched again.

Concurrency rule (see `agentgym.contract`): envs are called from worker threads, one call at a time per env
instance, several instances at once. An env class that sets ``thread_safe = False`` (because it shares
module-level state, e.g. a parser or a JVM gateway, across instances) gets every call of every instance
of that class serialised here, including its factory once the engine has seen that the factory makes such
envs; calls queued behind a hung one time out rather than run late.

Inline calls: a thread hop plus a timer costs tens of microseconds per call, more than a whole step of a
pure in-memory env. An env class that declares ``nonblocking = True`` (`agentgym.contract`) is called on
the event loop itself (its factory too, once the engine has seen that the factory makes such envs). Its
timeout is then enforced after the fact: a call that took longer than its limit fails its path as a
timeout all the same, and a class whose calls run slower than `INLINE_BUDGET_S` `INLINE_STRIKES` times
goes back to worker threads for the rest of the run (a wrong declaration costs a few slow calls, not a
stalled engine at every step; a few strikes, not one, because a loaded machine preempts any call now and
then). What
inline calls cannot bound is a call that never returns: that is what the declaration promises against.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Stage = Literal["factory", "reset", "step", "fork", "replay", "close"]
FailureType = Literal["timeout", "infra_error"]
INLINE_BUDGET_S = 0.05  # inline calls slower than this, INLINE_STRIKES times, send their class to worker threads
INLINE_STRIKES = 3

log = logging.getLogger(__name__)


class PathFailure(BaseModel):
    """Why a path (an episode or a branch) ended early because of its env. Stored in
    ``tree.meta["failed_paths"]``; a step failure is also on the node as a ``(env.step)`` tool-call record."""

    model_config = ConfigDict(extra="forbid")

    stage: Stage = Field(description="Which env call failed.")
    error_type: FailureType = Field(description="timeout: the call hung past its limit; infra_error: it raised.")
    error: str = Field(description="What happened, e.g. 'reset exceeded 5 s' or 'ValueError: bad seed'.")
    path: int | None = Field(default=None, description="Serial of the path in its group (roots then branches).")
    node: int | None = Field(default=None, description="Tree node the path had reached, if any.")


class EnvCallFailed(Exception):
    def __init__(self, failure: PathFailure):
        super().__init__(failure.error)
        self.failure = failure


def is_thread_safe(env_or_class: Any) -> bool:
    """What an env declares (`agentgym.contract`): ``thread_safe = False`` asks for serialised calls."""
    return bool(getattr(env_or_class, "thread_safe", True))


class EnvCaller:
    """Runs env calls in worker threads under timeouts; serialises calls into non-thread-safe env classes."""

    def __init__(self, timeout_s: float, step_timeout_s: float):
        self.timeout_s = timeout_s  # factory, reset, fork, close, and each call of a prefix replay
        self.step_timeout_s = step_timeout_s
        self._class_locks: dict[type, threading.Lock] = {}
        self._factory_lock: threading.Lock | None = None  # set once the factory made a non-thread-safe env
        self._guard = threading.Lock()
        self._inline: dict[type, bool] = {}  # env class -> called inline (declared nonblocking, not demoted)
        self._inline_factory = False  # the factory makes inline envs: call it inline too
        self._strikes: dict[type | None, int] = {}  # inline calls over INLINE_BUDGET_S, per class
        self._first_env: asyncio.Future | None = None  # done once the factory has made its first env

    def inline(self, env: Any) -> bool:
        cls = type(env)
        if cls not in self._inline:
            self._inline[cls] = bool(getattr(env, "nonblocking", False))
        return self._inline[cls]

    def _lock_for(self, env: Any) -> threading.Lock | None:
        if is_thread_safe(env):
            return None
        cls = type(env)
        with self._guard:
            if cls not in self._class_locks:
                self._class_locks[cls] = threading.Lock()
            if self._factory_lock is None:  # such envs may not even be constructed concurrently
                self._factory_lock = self._class_locks[cls]
            return self._class_locks[cls]

    async def call(self, stage: Stage, fn: Callable[..., Any], *args: Any, env: Any = None,
                   timeout_s: float | None = None, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread, serialised on `env`'s class lock if it is not thread
        safe. Raises `EnvCallFailed` on a timeout or an exception."""
        limit = timeout_s if timeout_s is not None else (self.step_timeout_s if stage == "step" else self.timeout_s)
        lock = self._factory_lock if stage == "factory" else (self._lock_for(env) if env is not None else None)
        if self._inline_factory if stage == "factory" else (env is not None and self.inline(env)):
            return self._call_inline(stage, fn, args, kwargs, env, lock, limit)
        abandoned = threading.Event()

        def run() -> Any:
            if lock is None:
                return fn(*args, **kwargs)
            with lock:
                if abandoned.is_set():  # timed out while queued behind another call: never run it late
                    return None
                return fn(*args, **kwargs)

        try:
            return await asyncio.wait_for(asyncio.to_thread(run), timeout=limit)
        except asyncio.TimeoutError:
            abandoned.set()
            raise EnvCallFailed(PathFailure(stage=stage, error_type="timeout",
                                            error=f"env {stage} exceeded {limit:g} s")) from None
        except EnvCallFailed:
            raise
        except Exception as e:
            raise EnvCallFailed(PathFailure(stage=stage, error_type="infra_error",
                                            error=f"env {stage} raised {type(e).__name__}: {e}")) from e

    def _call_inline(self, stage: Stage, fn: Callable[..., Any], args: tuple, kwargs: dict, env: Any,
                     lock: threading.Lock | None, limit: float) -> Any:
        """A nonblocking env's call on the event loop, its limit checked once it returns (module docstring)."""
        start = time.perf_counter()
        try:
            if lock is None:
                result = fn(*args, **kwargs)
            else:  # a demoted call of the same class may hold it in a worker thread
                if not lock.acquire(timeout=limit):
                    raise EnvCallFailed(PathFailure(stage=stage, error_type="timeout",
                                                    error=f"env {stage} exceeded {limit:g} s"))
                try:
                    result = fn(*args, **kwargs)
                finally:
                    lock.release()
        except EnvCallFailed:
            raise
        except Exception as e:
            raise EnvCallFailed(PathFailure(stage=stage, error_type="infra_error",
                                            error=f"env {stage} raised {type(e).__name__}: {e}")) from e
        elapsed = time.perf_counter() - start
        if elapsed > INLINE_BUDGET_S:
            cls = type(env) if env is not None else None
            self._strikes[cls] = strikes = self._strikes.get(cls, 0) + 1
            if strikes >= INLINE_STRIKES:
                log.warning("env %s declares nonblocking but %d calls took over %g s (the last, %s, %.3f s): calling "
                            "it from worker threads from now on", cls.__name__ if cls else "factory", strikes,
                            INLINE_BUDGET_S, stage, elapsed)
                if cls is not None:
                    self._inline[cls] = False
                self._inline_factory = False
        if elapsed > limit:
            raise EnvCallFailed(PathFailure(stage=stage, error_type="timeout",
                                            error=f"env {stage} exceeded {limit:g} s (took {elapsed:.3g} s inline)"))
        return result

    async def call_async(self, stage: Stage, awaitable: Any) -> Any:
        """An env's own async twin (an env over HTTP), under the same timeout and error typing."""
        limit = self.step_timeout_s if stage == "step" else self.timeout_s
        try:
            return await asyncio.wait_for(awaitable, timeout=limit)
        except asyncio.TimeoutError:
            raise EnvCallFailed(PathFailure(stage=stage, error_type="timeout",
                                            error=f"env {stage} exceeded {limit:g} s")) from None
        except Exception as e:
            raise EnvCallFailed(PathFailure(stage=stage, error_type="infra_error",
                                            error=f"env {stage} raised {type(e).__name__}: {e}")) from e

    async def make(self, factory: Callable[[], Any]) -> Any:
        # The factory's first env says what it makes (serialised? inline?): concurrent episodes wait for it
        # rather than all start in worker threads (or all at once into a non-thread-safe class).
        if self._first_env is None:
            self._first_env = asyncio.get_running_loop().create_future()
            try:
                env = await self.call("factory", factory)
                self._learn(env)
            finally:
                if not self._first_env.done():
                    self._first_env.set_result(None)
            return env
        await asyncio.shield(self._first_env)
        env = await self.call("factory", factory)
        self._learn(env)
        return env

    def _learn(self, env: Any) -> None:
        self._lock_for(env)  # registers the class (and the factory lock) before the env's first call
        if env is not None and self.inline(env) and type(env) not in self._strikes:
            self._inline_factory = True

    async def close(self, env: Any) -> None:
        """Best effort: a close that raises or hangs is not the path's outcome (that is already recorded)."""
        if env is None:
            return
        try:
            await self.call("close", env.close, env=env)
        except EnvCallFailed:
            pass
