"""The sandbox contract: start, run code, reset, fork, close — and a typed result the model can read.

A sandbox runs model-written Python in a persistent interpreter (state carries across calls like notebook
cells). Every failure is typed from a fixed set, so trainers can tell the model's mistakes (an exception in
its code) from resource limits (timeout, oom, output_limit) and from infrastructure faults (infra_error),
which must not become reward signal.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SandboxErrorType = Literal["timeout", "oom", "crash", "output_limit", "denied", "infra_error"]


class SandboxLimits(BaseModel):
    """Resource limits. They come from configuration only; nothing the model writes can change them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    wall_timeout_s: float = Field(default=10.0, gt=0, description="Wall-clock limit per call, enforced by the host.")
    cpu_s: float = Field(default=10.0, gt=0, description="CPU seconds per call (RLIMIT_CPU, renewed per call).")
    memory_bytes: int = Field(default=1 << 30, ge=64 << 20, description="Address space (RLIMIT_AS) and cgroup memory.")
    max_output_bytes: int = Field(default=64_000, ge=1024, description="Output kept per stream; the rest is counted.")
    kill_output_bytes: int = Field(default=16 << 20, description="Output after which a flooding call is killed.")
    max_processes: int = Field(default=64, ge=1, description="Processes in the sandbox (pids cgroup / RLIMIT_NPROC).")
    max_open_files: int = Field(default=256, ge=16, description="RLIMIT_NOFILE.")
    max_file_bytes: int = Field(default=64 << 20, ge=0, description="Largest file the code may write (RLIMIT_FSIZE).")
    tmpfs_bytes: int = Field(default=128 << 20, description="Size of the private, writable /tmp.")
    max_code_bytes: int = Field(default=1 << 20, description="Longer code is refused before it reaches the interpreter.")
    network: bool = Field(default=False, description="Network access; off by default, and no tier enables it silently.")


class ExecResult(BaseModel):
    """What running one cell produced."""

    stdout: str = Field(default="", description="Captured standard output (capped; invalid UTF-8 replaced).")
    stderr: str = Field(default="", description="Captured standard error (capped).")
    value: str | None = Field(default=None, description="repr() of the cell's last expression, like Jupyter.")
    exception: str | None = Field(default=None, description="'Type: message' of an exception raised by the code.")
    traceback: str | None = Field(default=None, description="Tail of the traceback, cell frames only.")
    exit_status: int | None = Field(default=None, description="Interpreter exit status if it died (negative = signal).")
    duration_s: float = Field(default=0.0, description="Wall-clock time of the call.")
    error_type: SandboxErrorType | None = Field(default=None, description="A limit or fault; None when the cell ran "
                                                "(an exception in the code is reported in `exception`, not here).")
    error: str | None = Field(default=None, description="Human-readable detail of error_type.")
    truncated_bytes: int = Field(default=0, description="Output bytes dropped by the cap.")
    state_lost: bool = Field(default=False, description="The interpreter was restarted: earlier variables are gone.")

    @property
    def ok(self) -> bool:
        return self.error_type is None and self.exception is None

    def to_observation(self, max_chars: int = 8000) -> str:
        """The result as the model should read it: output first (cut to fit), then every marker and error."""
        body = [p.rstrip("\n") for p in (self.stdout, self.stderr) if p]
        if self.value is not None and not self.exception:
            body.append(self.value)
        notes = []
        dropped = self.truncated_bytes
        text = "\n".join(body)
        if self.exception:
            notes.append((self.traceback or self.exception).rstrip("\n"))
        if self.error_type:
            notes.append(f"[{self.error_type}] {self.error or ''}".rstrip())
        if self.state_lost:
            notes.append("[sandbox restarted: previous state (variables, imports, files) was lost]")
        room = max(0, max_chars - sum(len(n) + 1 for n in notes) - 40)
        if len(text) > room:
            dropped += len(text[room:].encode())
            text = text[:room]
        if dropped:
            notes.insert(0, f"[truncated {dropped} bytes]")
        out = "\n".join([text, *notes] if text else notes)
        return out or "(no output)"


class Sandbox(ABC):
    """A persistent code-execution session. Thread-safe: calls are serialised per sandbox."""

    limits: SandboxLimits

    @abstractmethod
    def start(self) -> None:
        """Start the interpreter (idempotent)."""

    @abstractmethod
    def run(self, code: str | bytes, timeout: float | None = None) -> ExecResult:
        """Run one cell. `timeout` may only lower the configured wall limit, never raise it."""

    @abstractmethod
    def reset(self) -> None:
        """Fresh interpreter: no variables, files or processes from earlier calls."""

    @abstractmethod
    def fork(self) -> Sandbox:
        """An independent sandbox in the same state."""

    @abstractmethod
    def close(self) -> None:
        """Stop everything the sandbox started (idempotent)."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Which isolation is in force."""

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def check_code(code: str | bytes, limits: SandboxLimits) -> tuple[str | None, ExecResult | None]:
    """(code as text, None), or (None, an error result) for code that is not UTF-8, empty or too long."""
    if isinstance(code, (bytes, bytearray)):
        try:
            code = bytes(code).decode("utf-8")
        except UnicodeDecodeError as e:
            return None, ExecResult(exception=f"UnicodeDecodeError: the code is not valid UTF-8 (byte {e.start})")
    if not code.strip():
        return None, ExecResult(exception="ValueError: the code is empty; write some Python")
    if len(code.encode("utf-8", "replace")) > limits.max_code_bytes:
        return None, ExecResult(exception=f"ValueError: the code is {len(code)} characters long; the limit is "
                                          f"{limits.max_code_bytes} bytes")
    return code, None


class ToolArgumentError(ValueError):
    pass


def validate_tool_arguments(args: dict[str, Any], allowed: set[str] | frozenset[str] = frozenset({"code"})) -> None:
    """Reject keys a model adds to a code tool call to raise limits or reach another session."""
    extra = sorted(set(args) - set(allowed))
    if extra:
        raise ToolArgumentError(f"unexpected argument(s) {extra}: the tool accepts only {sorted(allowed)}; "
                                "limits and sessions are set by the environment, not by the call")
