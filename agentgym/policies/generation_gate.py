"""One generation at a time, and none that nobody waits for.

`GenerationGate.run` waits for the model (one generation at a time: the model is not re-entrant), runs
the policy in a worker thread, and watches the request meanwhile. When the client disconnects, the
request's deadline passes, or the server shuts down, it sets the request's cancel event: a waiting
request leaves the queue, a running one stops at its next token (`Policy.supports_cancel`; the HF
backend checks the event in a stopping criterion) and the model is free for the next request at once.
The lock is released only when the worker thread has really finished, so two generations never overlap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from agentgym.policies.base import Generation, GenerationCancelled, GenerationRequest, Policy
from agentgym.policies.server_errors import OpenAIError


class _Cancel:
    """A request's cancel event, readable from the worker thread and awaitable on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.event, self.tripped = loop, threading.Event(), asyncio.Event()
        self.error: OpenAIError | None = None

    def trip(self, error: OpenAIError) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()
            self.loop.call_soon_threadsafe(self.tripped.set)  # safe from a signal handler or another thread


class GenerationGate:
    def __init__(self, policy: Policy, deadline_s: float, poll_s: float = 0.1):
        self.policy, self.deadline_s, self.poll_s = policy, deadline_s, poll_s
        self.lock = asyncio.Lock()
        self.active: set[_Cancel] = set()
        self.generating = False
        self.waiting = 0
        self.cancelled = 0
        self.closing = False

    def stats(self) -> dict[str, Any]:
        return {"generating": self.generating, "waiting": self.waiting, "cancelled": self.cancelled}

    def cancel_all(self) -> None:
        """Server shutdown: refuse new requests and stop every waiting or running one."""
        self.closing = True
        for c in list(self.active):
            c.trip(OpenAIError(503, "the server is shutting down", "server_error", code="shutting_down"))

    async def run(self, requests: list[GenerationRequest],
                  is_disconnected: Callable[[], Awaitable[bool]]) -> list[Generation]:
        if self.closing:
            raise OpenAIError(503, "the server is shutting down", "server_error", code="shutting_down")
        cancel = _Cancel(asyncio.get_running_loop())
        self.active.add(cancel)
        watcher = asyncio.create_task(self._watch(cancel, is_disconnected))
        try:
            await self._acquire(cancel)
            try:
                return await self._generate(requests, cancel)
            finally:
                self.lock.release()
        finally:
            watcher.cancel()
            self.active.discard(cancel)

    async def _acquire(self, cancel: _Cancel) -> None:
        self.waiting += 1
        try:
            acquire = asyncio.ensure_future(self.lock.acquire())
            tripped = asyncio.ensure_future(cancel.tripped.wait())
            await asyncio.wait({acquire, tripped}, return_when=asyncio.FIRST_COMPLETED)
            tripped.cancel()
            if not acquire.done():
                acquire.cancel()
                try:
                    await acquire
                except asyncio.CancelledError:
                    pass
            got = acquire.done() and not acquire.cancelled()
            if cancel.event.is_set():
                if got:
                    self.lock.release()
                raise cancel.error  # type: ignore[misc]
        finally:
            self.waiting -= 1

    async def _generate(self, requests: list[GenerationRequest], cancel: _Cancel) -> list[Generation]:
        def work() -> list[Generation]:
            if self.policy.supports_cancel:
                return self.policy.generate(requests, cancel=cancel.event)  # type: ignore[call-arg]
            return self.policy.generate(requests)

        self.generating = True
        thread = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            gens = await asyncio.shield(thread)
        except asyncio.CancelledError:  # our task was cancelled: stop the thread before freeing the model
            cancel.trip(OpenAIError(503, "request cancelled", "server_error", code="cancelled"))
            await asyncio.wait({thread})
            raise
        except GenerationCancelled as e:
            self.cancelled += 1
            assert cancel.error is not None
            raise OpenAIError(cancel.error.status, f"{cancel.error.message}; generation stopped after {e.steps} "
                              "tokens", cancel.error.type, None, cancel.error.code) from None
        finally:
            self.generating = False  # the thread has finished on every path here
        if cancel.event.is_set():  # a backend that cannot stop early finished anyway
            self.cancelled += 1
            raise cancel.error  # type: ignore[misc]
        return gens

    async def _watch(self, cancel: _Cancel, is_disconnected: Callable[[], Awaitable[bool]]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.deadline_s
        while not cancel.event.is_set():
            if await is_disconnected():
                cancel.trip(OpenAIError(499, "the client disconnected", code="client_disconnected"))
            elif loop.time() >= deadline:
                cancel.trip(OpenAIError(504, f"the request exceeded the server's deadline of {self.deadline_s:g} s "
                                        "(--request-timeout)", "timeout_error", code="deadline_exceeded"))
            else:
                await asyncio.sleep(self.poll_s)
