"""Warm sandboxes for new episodes: starting an isolated interpreter costs tens of milliseconds, taking one
from the pool costs none. Released sandboxes are reset (a fresh interpreter: nothing of the previous episode
survives) in a background thread before they are handed out again."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from agentgym.sandboxes.base import Sandbox, SandboxLimits
from agentgym.sandboxes.local import LocalSandbox


class SandboxPool:
    def __init__(self, size: int = 4, limits: SandboxLimits | None = None,
                 factory: Callable[[], Sandbox] | None = None):
        self.size = size
        self.factory = factory or (lambda: LocalSandbox(limits))
        self._ready: queue.Queue[Sandbox] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self._refill(size)

    def _refill(self, n: int) -> None:
        def work() -> None:
            for _ in range(n):
                if self._closed:
                    return
                sandbox = self.factory()
                sandbox.start()
                self._ready.put(sandbox)

        threading.Thread(target=work, daemon=True, name="agentgym-sandbox-pool").start()

    def acquire(self, timeout: float | None = None) -> Sandbox:
        """A started sandbox: warm from the pool, or a new one if the pool is empty."""
        if self._closed:
            raise RuntimeError("pool is closed")
        try:
            sandbox = self._ready.get_nowait()
        except queue.Empty:
            sandbox = self.factory()
            sandbox.start()
        self._refill(1)
        return sandbox

    def release(self, sandbox: Sandbox) -> None:
        """Return a sandbox after an episode: it is closed, never reused with the episode's state."""
        threading.Thread(target=sandbox.close, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._ready.get_nowait().close()
            except queue.Empty:
                return

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
