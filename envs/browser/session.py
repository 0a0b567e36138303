"""One headless Chromium per Python process, shared by every browser env, driven from one private thread.

Playwright binds a browser to the event loop that started it, while the rollout engine calls env methods
from a pool of worker threads. So `BrowserManager` owns a daemon thread running an asyncio loop, starts
Playwright's async API and Chromium on it, and every env submits coroutines to that loop (`run`) and waits
for them with its own timeout. A page stuck in a JavaScript loop therefore blocks only the call waiting on
it: the waiter times out (`BrowserTimeout`), the coroutine is cancelled, and the loop keeps serving the
other envs. Calls from any thread are safe, so browser envs declare ``thread_safe = True``.

The manager is reference counted: the first env's `acquire` starts the thread, Playwright's driver and
Chromium; the last env's `release` stops all three, so no process or thread outlives the envs. A
browser that died (killed, crashed) is detected on the next `acquire` and relaunched; calls made while it
is dead raise `BrowserCrashed`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any

CHROMIUM = os.environ.get("AGENTGYM_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = ["--disable-dev-shm-usage", "--disable-gpu", "--disable-quic", "--no-default-browser-check"]


class BrowserError(RuntimeError):
    """The browser failed (not the agent): the env cannot go on until the next reset."""


class BrowserTimeout(BrowserError):
    """A page did not answer within the call's timeout (a hung script, a page that never loads)."""


class BrowserCrashed(BrowserError):
    """The Chromium process is gone; the next reset launches a new one."""


class BrowserUnavailable(BrowserError):
    """Playwright or the Chromium binary is missing."""


def missing_requirements() -> str | None:
    """Why browser envs cannot run here, or None."""
    for package in ("playwright", "miniwob"):
        try:
            __import__(package)
        except ImportError:
            return f"the Python package {package} is not installed (pip install 'agentgym[browser]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set AGENTGYM_CHROMIUM)"
    return None


class BrowserManager:
    """A lazily started, reference-counted Chromium on a private event-loop thread."""

    def __init__(self, executable: str = CHROMIUM, launch_timeout_s: float = 60.0):
        self.executable = executable
        self.launch_timeout_s = launch_timeout_s
        self._lock = threading.Lock()
        self._users = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._playwright: Any = None
        self.browser: Any = None
        self.generation = 0  # +1 at every launch: contexts of an older generation belong to a dead browser

    # ---- lifetime ---------------------------------------------------------------------------------------
    def acquire(self) -> int:
        """Register a user; (re)launch the browser if it is not running. Returns the browser generation."""
        with self._lock:
            self._users += 1
            try:
                self._ensure_running()
            except BaseException:
                self._users -= 1
                if self._users == 0:
                    self._shutdown()
                raise
            return self.generation

    def release(self) -> None:
        """Unregister a user; the last one stops the browser, Playwright and the thread."""
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                self._shutdown()

    def ensure(self) -> int:
        """Relaunch the browser if it died (for a user that already holds a reference); its generation."""
        with self._lock:
            if self._users == 0:
                raise BrowserError("ensure() without acquire()")
            self._ensure_running()
            return self.generation

    def alive(self) -> bool:
        return self.browser is not None and self.browser.is_connected()

    def _ensure_running(self) -> None:
        if self.alive():
            return
        if why := missing_requirements():
            raise BrowserUnavailable(why)
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="agentgym-browser", daemon=True)
            self._thread.start()
        if self._playwright is not None:  # the old browser died: drop its driver too, then start afresh
            self._call(self._stop_playwright(), 10.0, swallow=True)
        self._call(self._launch(), self.launch_timeout_s)
        self.generation += 1

    async def _launch(self) -> None:
        from playwright.async_api import async_playwright

        self._playwright = await async_playwright().start()
        try:
            self.browser = await self._playwright.chromium.launch(
                executable_path=self.executable, headless=True, args=LAUNCH_ARGS)
        except BaseException:
            await self._stop_playwright()
            raise

    async def _stop_playwright(self) -> None:
        browser, pw = self.browser, self._playwright
        self.browser = self._playwright = None
        try:
            if browser is not None and browser.is_connected():
                await asyncio.wait_for(browser.close(), 10.0)
        except Exception:
            pass
        if pw is not None:
            try:
                await asyncio.wait_for(pw.stop(), 10.0)
            except Exception:
                pass

    def _shutdown(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None:
            return
        self._call(self._stop_playwright(), 20.0, swallow=True)

        async def drain() -> None:  # let cancelled calls of timed-out envs finish before the loop stops
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await loop.shutdown_default_executor()

        self._call(drain(), 10.0, swallow=True)
        loop.call_soon_threadsafe(loop.stop)
        assert thread is not None
        thread.join(10.0)
        if not thread.is_alive():
            loop.close()
        self._loop = self._thread = None

    # ---- calls ------------------------------------------------------------------------------------------
    def run(self, coro: Coroutine[Any, Any, Any], timeout_s: float, what: str) -> Any:
        """Run `coro` on the browser's loop and wait at most `timeout_s`; typed errors for hangs and crashes."""
        if self._loop is None:
            coro.close()
            raise BrowserError(f"{what}: the browser is not running (the env was closed)")
        try:
            return self._call(coro, timeout_s)
        except concurrent.futures.TimeoutError:
            raise BrowserTimeout(f"{what}: the page did not respond within {timeout_s:g} s") from None
        except BrowserError:
            raise
        except Exception as e:
            if not type(e).__module__.startswith("playwright"):
                raise  # the caller's own errors (e.g. an action the page cannot carry out)
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
            if not self.alive():
                raise BrowserCrashed(f"{what}: the browser process is gone ({type(e).__name__}: {first_line})") from e
            if type(e).__name__ == "TimeoutError":
                raise BrowserTimeout(f"{what}: {first_line}") from e
            raise BrowserError(f"{what}: {type(e).__name__}: {first_line}") from e

    def _call(self, coro: Coroutine[Any, Any, Any], timeout_s: float, swallow: bool = False) -> Any:
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()  # cancels the coroutine on the loop; the loop itself stays free for other envs
            if swallow:
                return None
            raise
        except Exception:
            if swallow:
                return None
            raise


MANAGER = BrowserManager()
"""The process's browser manager: every browser env acquires it at its first reset and releases it at close."""
