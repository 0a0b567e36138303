"""The env server's session table: capacity that cannot be overshot, one request per session at a time,
and sessions that end (idle timeout, maximum lifetime) whatever their clients do.

Capacity is reserved before the work: opening or forking a session first takes a slot (live sessions +
reservations never exceed `max_sessions`), then builds the env, which can take seconds (a sandbox to
start or fork), then fills the slot. A failure releases the slot. Checking capacity and registering
later, as a plain check-then-add does, lets concurrent requests all pass the check.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


class AtCapacity(Exception):
    """Every session slot is live or reserved."""


class NoSession(LookupError):
    """Unknown, closed or expired session id; the message says which."""


class SessionBusy(Exception):
    """Another request kept this session longer than `busy_wait_s`."""


@dataclass
class Session:
    env: Any
    created: float
    seen: float  # end of the last request (or its start while one runs)
    lock: threading.Lock = field(default_factory=threading.Lock)  # held while a request uses the env


class Slot:
    """A reserved place in the table; `fill` registers the env and returns its session id."""

    def __init__(self, table: SessionTable):
        self.table, self.session_id = table, None

    def fill(self, env: Any) -> str:
        sid, now = uuid.uuid4().hex, self.table.clock()
        with self.table.lock:
            self.table.sessions[sid] = Session(env, now, now)
            self.table.reserved -= 1
        self.session_id = sid
        return sid


class SessionTable:
    def __init__(self, max_sessions: int, idle_timeout_s: float, max_lifetime_s: float,
                 clock: Callable[[], float] = time.monotonic, busy_wait_s: float = 120.0):
        self.max_sessions, self.idle_timeout_s, self.max_lifetime_s = max_sessions, idle_timeout_s, max_lifetime_s
        self.busy_wait_s = busy_wait_s
        self.clock = clock
        self.sessions: dict[str, Session] = {}
        self.reserved = 0
        self.lock = threading.Lock()
        self.ended: OrderedDict[str, str] = OrderedDict()  # recent session ids -> why they ended (for 404s)

    def _ended(self, sid: str, reason: str) -> None:
        """Remember why `sid` ended (call with `self.lock` held); the oldest of 4096 are forgotten."""
        self.ended[sid] = reason
        while len(self.ended) > 4096:
            self.ended.popitem(last=False)

    def _expiry(self, s: Session, now: float) -> str | None:
        if now - s.created > self.max_lifetime_s:
            return f"reached the maximum lifetime of {self.max_lifetime_s:g} s"
        if not s.lock.locked() and now - s.seen > self.idle_timeout_s:
            return f"was idle for more than {self.idle_timeout_s:g} s"
        return None

    @contextmanager
    def reserve(self) -> Iterator[Slot]:
        """Take a slot for the duration of the block; raise `AtCapacity` at once if there is none."""
        with self.lock:
            if len(self.sessions) + self.reserved >= self.max_sessions:
                raise AtCapacity(f"server at capacity ({self.max_sessions} sessions)")
            self.reserved += 1
        slot = Slot(self)
        try:
            yield slot
        finally:
            if slot.session_id is None:
                with self.lock:
                    self.reserved -= 1

    @contextmanager
    def use(self, sid: str) -> Iterator[Session]:
        """The session, held by this request alone (requests to one session run one after another); an
        expired one is closed and reported as gone."""
        now = self.clock()
        with self.lock:
            s = self.sessions.get(sid)
            reason = self._expiry(s, now) if s is not None else None
            if reason is not None and s is not None:
                del self.sessions[sid]
                self._ended(sid, reason)
            gone = self.ended.get(sid)
        if s is None:
            raise NoSession(f"session {sid!r} was closed: it {gone}" if gone else f"no session {sid!r}")
        if reason is not None:
            self._close(s)
            raise NoSession(f"session {sid!r} was closed: it {reason}")
        if not s.lock.acquire(timeout=self.busy_wait_s):
            raise SessionBusy(f"session {sid!r} stayed busy with another request for {self.busy_wait_s:g} s")
        try:
            s.seen = self.clock()
            yield s
        finally:
            s.seen = self.clock()
            s.lock.release()

    def close(self, sid: str) -> bool:
        with self.lock:
            s = self.sessions.pop(sid, None)
            if s is not None:
                self._ended(sid, "was closed by its client")
        if s is not None:
            self._close(s)
        return s is not None

    def reap(self) -> int:
        """Close every expired session that no request is using; the count closed."""
        now = self.clock()
        with self.lock:
            stale = {sid: why for sid, s in self.sessions.items()
                     if (why := self._expiry(s, now)) and not s.lock.locked()}
            gone = [self.sessions.pop(sid) for sid in stale]
            for sid, why in stale.items():
                self._ended(sid, why)
        for s in gone:
            self._close(s)
        return len(gone)

    def close_all(self) -> None:
        with self.lock:
            gone = list(self.sessions.values())
            self.sessions.clear()
        for s in gone:
            self._close(s)

    def stats(self) -> dict[str, int]:
        now = self.clock()
        with self.lock:
            live = list(self.sessions.values())
            reserved = self.reserved
        return {"sessions": len(live), "reserved": reserved, "busy": sum(s.lock.locked() for s in live),
                "reclaimable": sum(self._expiry(s, now) is not None for s in live)}

    @staticmethod
    def _close(s: Session) -> None:
        with s.lock:  # wait for a request still using it (a lifetime-expired session mid-step)
            try:
                s.env.close()
            except Exception:  # noqa: BLE001 - an env that fails to close must not break the table
                pass
