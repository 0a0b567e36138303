"""The local process tier: a persistent, isolated Python interpreter per session (the default sandbox).

The interpreter is `driver.py` under bubblewrap (see isolation.py), spoken to over two pipes; its stdout and
stderr are drained by the host with a cap, so a flood never grows host memory. Limits are enforced from the
host side: a wall-clock deadline per call (the whole sandbox is killed when it passes), a per-call CPU
budget (RLIMIT_CPU, renewed by the driver), memory (RLIMIT_AS and the memory cgroup), processes (the pids
cgroup). After every call, processes the cell left behind are killed. When the interpreter dies, the
result is typed (timeout, oom, crash with the signal, output_limit) and the next call starts a fresh
interpreter and reports ``state_lost``. `fork()` replays the cell history into a new sandbox, so the two
copies share nothing afterwards (not even /tmp).
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import selectors
import signal
import struct
import subprocess
import threading
import time
from typing import Any

from agentgym.sandboxes.base import ExecResult, Sandbox, SandboxLimits, check_code
from agentgym.sandboxes.channel import ProtocolViolation, ReplyReader, assert_quiet, new_nonce, reply_cap
from agentgym.sandboxes.isolation import NOBODY, SAFE_ENV, Cgroup, command, default_python, describe, rlimits_preexec

_READ = 65536
_SPAWNER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="agentgym-sandbox-spawner")


class LocalSandbox(Sandbox):
    def __init__(self, limits: SandboxLimits | None = None, python: str | None = None):
        self.limits = limits or SandboxLimits()
        self.python = python or default_python()
        self._lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._cgroup: Cgroup | None = None
        self._req_w = self._rep_r = -1
        self._history: list[str] = []  # cells that ran, replayed by fork()
        self._state_lost = False
        self._keep: set[int] = set()
        self.closed = False

    # ---- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self.closed:
                raise RuntimeError("sandbox is closed")
            if self._proc is not None and self._proc.poll() is not None and self._history:
                self._history = []  # it died between calls: say so on the next result
                self._state_lost = True
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()

    def _spawn(self) -> None:
        self._teardown()
        req_r, self._req_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        root = os.geteuid() == 0
        self._cgroup = Cgroup(self.limits) if root else None
        cmd = command(self.limits, self.python) + [str(req_r), str(rep_w)]
        popen = functools.partial(
            subprocess.Popen, cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            pass_fds=(req_r, rep_w), env=dict(SAFE_ENV), cwd="/", user=NOBODY if root else None,
            group=NOBODY if root else None, extra_groups=[] if root else None,
            preexec_fn=rlimits_preexec(self.limits, self._cgroup))
        # bwrap --die-with-parent ties the sandbox's life to the *thread* that started it (PR_SET_PDEATHSIG):
        # start every sandbox from one long-lived thread, never from a short-lived tool or worker thread.
        self._proc = _SPAWNER.submit(popen).result()
        os.close(req_r)
        os.close(rep_w)
        for stream in (self._proc.stdout, self._proc.stderr):
            os.set_blocking(stream.fileno(), False)
        self._keep = set()

    def reset(self) -> None:
        with self._lock:
            self._history = []
            self._state_lost = False
            self._spawn()

    def fork(self) -> LocalSandbox:
        with self._lock:
            copy = LocalSandbox(self.limits, self.python)
            copy.start()
            for cell in self._history:
                copy.run(cell)
            copy._state_lost = self._state_lost
            return copy

    def close(self) -> None:
        with self._lock:
            self.closed = True
            self._teardown()

    def _teardown(self) -> None:
        proc, self._proc = self._proc, None
        for fd in (self._req_w, self._rep_r):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._req_w = self._rep_r = -1
        if proc is not None:
            _kill_group(proc)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        if self._cgroup is not None:
            self._cgroup.remove()
            self._cgroup = None

    def info(self) -> dict[str, Any]:
        return describe(self.limits)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # ---- running ----------------------------------------------------------------------------------
    def run(self, code: str | bytes, timeout: float | None = None) -> ExecResult:
        code, problem = check_code(code, self.limits)
        if problem is not None:
            return problem
        assert code is not None
        wall = min(timeout, self.limits.wall_timeout_s) if timeout else self.limits.wall_timeout_s
        with self._lock:
            start = time.perf_counter()
            try:
                self.start()
            except OSError as e:
                return ExecResult(error_type="infra_error", error=f"could not start the sandbox: {e}")
            try:
                assert_quiet(self._rep_r)
            except ProtocolViolation:  # e.g. the genuine reply after a frame the last cell forged: start afresh
                self.reset()
                self._state_lost = True
            lost, self._state_lost = self._state_lost, False
            result = self._call(code, wall)
            result.duration_s = time.perf_counter() - start
            result.state_lost = lost or result.state_lost
            if result.error_type in (None, "oom") and result.exit_status is None:
                self._history.append(code)
                self._reap_leftovers()
            else:  # the interpreter is gone: the next call starts fresh and says so
                self._history = []
                self._state_lost = True
                self._teardown()
            return result

    def _call(self, code: str, wall: float) -> ExecResult:
        proc = self._proc
        assert proc is not None
        nonce = new_nonce()
        max_chars = self.limits.max_output_bytes
        payload = json.dumps({"code": code, "cpu_s": self.limits.cpu_s, "nonce": nonce, "max_chars": max_chars}).encode()
        try:
            os.write(self._req_w, struct.pack(">I", len(payload)) + payload)
        except (BrokenPipeError, OSError):
            return self._died(proc, ExecResult(), "the interpreter was not running")
        out, err = _Capture(self.limits.max_output_bytes), _Capture(self.limits.max_output_bytes)
        reader = ReplyReader(self._rep_r, nonce, reply_cap(max_chars))
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, out)
        sel.register(proc.stderr, selectors.EVENT_READ, err)
        sel.register(self._rep_r, selectors.EVENT_READ, None)
        deadline = time.monotonic() + wall
        result = ExecResult()
        reply = None
        try:
            while reply is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    _kill_group(proc)
                    result = ExecResult(error_type="timeout", error=f"the code ran longer than {wall:g} s and was stopped")
                    break
                for key, _ in sel.select(min(remaining, 0.5)):
                    if key.data is None:
                        try:
                            reply = reader.feed()
                        except EOFError:
                            return self._died(proc, ExecResult(stdout=out.text(), stderr=err.text()), None)
                        except ProtocolViolation as e:
                            return self._violation(proc, ExecResult(stdout=out.text(), stderr=err.text()), str(e))
                    else:
                        chunk = key.fileobj.read(_READ)  # type: ignore[union-attr]
                        if chunk:
                            key.data.add(chunk)
                if out.total + err.total > self.limits.kill_output_bytes:
                    _kill_group(proc)
                    result = ExecResult(error_type="output_limit",
                                        error=f"the code wrote over {self.limits.kill_output_bytes} bytes and was stopped")
                    break
            if reply is not None:
                result = ExecResult(value=reply.value, exception=reply.exception, traceback=reply.traceback)
                if reply.oom:
                    result.error_type, result.error = "oom", "the memory limit was reached (MemoryError)"
            for stream, capture in ((proc.stdout, out), (proc.stderr, err)):  # what is already in the pipes
                try:
                    while chunk := stream.read(_READ):  # type: ignore[union-attr]
                        capture.add(chunk)
                except (OSError, ValueError):
                    pass
        finally:
            sel.close()
        result.stdout, result.stderr = out.text(), err.text()
        result.truncated_bytes = out.dropped + err.dropped + (reply.cut if reply is not None else 0)
        if reply is not None and not reply.stdio:
            return self._violation(proc, result, "the code closed or replaced its standard output or error "
                                                 "(fd 1/2, sys.stdout/sys.stderr), so later output would be lost")
        if result.error_type in ("timeout", "output_limit"):
            result.exit_status = _reap(proc)
            if result.error_type == "timeout" and self._cgroup is not None and self._cgroup.oom_killed():
                result.error_type, result.error = "oom", "the sandbox ran out of memory and was killed"
        return result

    def _violation(self, proc: subprocess.Popen, partial: ExecResult, why: str) -> ExecResult:
        """The sandbox broke the reply protocol: kill it; `run` starts a fresh one next and says state was lost."""
        _kill_group(proc)
        partial.error_type = "crash"
        partial.error = f"{why}; the sandbox was restarted and its state (variables, imports, files) was lost"
        return partial

    def _died(self, proc: subprocess.Popen, partial: ExecResult, why: str | None) -> ExecResult:
        status = _reap(proc)
        partial.exit_status = status
        if self._cgroup is not None and self._cgroup.oom_killed():
            partial.error_type, partial.error = "oom", "the sandbox ran out of memory and was killed"
        elif status is not None and (status < 0 or 128 < status < 128 + 65):
            sig = -status if status < 0 else status - 128  # bwrap reports its child's signal as 128 + n
            if sig == signal.SIGXCPU:
                partial.error_type, partial.error = "timeout", f"the CPU limit of {self.limits.cpu_s:g} s was reached"
            else:
                partial.error_type = "crash"
                partial.error = f"the interpreter was killed by signal {sig} ({signal.Signals(sig).name})"
        else:
            partial.error_type = "crash"
            partial.error = why or f"the interpreter exited with status {status}"
        return partial

    def _reap_leftovers(self) -> None:
        """Kill processes a cell left running (daemons, `setsid sleep &`, a backgrounded fork bomb): each call
        ends with none. Repeated until none remain, since survivors may still be forking."""
        if self._cgroup is None or self._proc is None:
            return
        for _ in range(100):
            pids = self._cgroup.processes()
            if not self._keep:
                self._keep = set(_ancestry(self._proc.pid, pids))
            extra = [pid for pid in pids if pid not in self._keep]
            if not extra:
                return
            for pid in extra:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.002)


class _Capture:
    """Keeps the first `cap` bytes of a stream and counts the rest."""

    def __init__(self, cap: int):
        self.cap, self.buf, self.total = cap, bytearray(), 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += chunk[:room]

    @property
    def dropped(self) -> int:
        return self.total - len(self.buf)

    def text(self) -> str:
        return bytes(self.buf).decode("utf-8", "replace").replace("\x00", "\ufffd")


def _ancestry(root: int, pids: list[int]) -> list[int]:
    """`root` and the chain of its first descendants: bwrap, bwrap's init, the driver."""
    keep = [root]
    parents = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                parents[pid] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    while True:
        children = sorted(p for p, ppid in parents.items() if ppid == keep[-1])
        if not children or len(keep) >= 3:
            return keep
        keep.append(children[0])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the session started in preexec: the whole tree
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass
    _reap(proc)


def _reap(proc: subprocess.Popen, timeout: float = 5.0) -> int | None:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
