"""Tools: typed, documented Python functions the agent can call.

``@tool`` turns a function with type hints and a Google-style docstring into a `Tool` whose JSON schema
comes from ``transformers.utils.get_json_schema`` (we do not write our own schema generator). Arguments are
validated by pydantic against the signature before the function runs. Every failure — unknown tool, bad
arguments, an exception, a timeout — becomes a `ToolCallRecord` with an error message the model can read;
nothing raises out of `ToolSet.call`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pydantic

from agentgym.parsing import ToolCall
from agentgym.trajectory import ToolCallRecord

MAX_TOOL_OUTPUT_CHARS = 16_000


class ToolError(Exception):
    """Raise from a tool to report an error to the model with a chosen `error_type`."""

    def __init__(self, message: str, error_type: str = "tool_error"):
        super().__init__(message)
        self.error_type = error_type


@dataclass
class ToolResult:
    """What a tool may return instead of a plain string: the text the model sees and structured `data`
    (JSON-serialisable) kept in the call's record, e.g. which pages a search returned, for rewards."""

    text: str
    data: dict[str, Any] = field(default_factory=dict)


class Tool:
    """A callable plus its JSON schema. Create with the `@tool` decorator."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, timeout_s: float | None = None):
        from transformers.utils import get_json_schema  # heavy import, only when a tool is defined

        self.fn = fn
        self.schema = get_json_schema(fn)
        if name:
            self.schema["function"]["name"] = name
        self.name: str = self.schema["function"]["name"]
        self.timeout_s = timeout_s
        self.is_async = inspect.iscoroutinefunction(fn)
        self.params = list(inspect.signature(fn).parameters)
        self._validated = pydantic.validate_call(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def bind_arguments(self, arguments: dict[str, Any] | str) -> dict[str, Any]:
        """A raw XML body goes to the first parameter; a dict must name parameters exactly."""
        if isinstance(arguments, str):
            if not self.params:
                raise ToolError(f"{self.name} takes no arguments.", "bad_arguments")
            return {self.params[0]: arguments.strip("\n")}
        unknown = sorted(set(arguments) - set(self.params))
        if unknown:
            raise ToolError(
                f"{self.name} got unknown argument(s) {unknown}; it accepts {self.params}.", "bad_arguments"
            )
        return arguments

    def __repr__(self) -> str:
        return f"Tool({self.name})"


def tool(fn: Callable[..., Any] | None = None, *, name: str | None = None, timeout_s: float | None = None):
    """Decorator: ``@tool`` or ``@tool(name="calc", timeout_s=5)``."""

    def wrap(f: Callable[..., Any]) -> Tool:
        return Tool(f, name=name, timeout_s=timeout_s)

    return wrap(fn) if fn is not None else wrap


def _describe_validation_error(tool: Tool, err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "arguments"
        parts.append(f"{loc}: {e['msg']}")
    return f"Bad arguments for {tool.name}: " + "; ".join(parts) + f". Parameters: {tool.params}."


class ToolSet:
    """The tools an environment offers, executed with per-call timeouts."""

    _lock = threading.Lock()

    def __init__(self, tools: list[Tool], default_timeout_s: float = 30.0, max_output_chars: int = MAX_TOOL_OUTPUT_CHARS):
        self.tools = {t.name: t for t in tools}
        self.default_timeout_s = default_timeout_s
        self.max_output_chars = max_output_chars

    def schemas(self) -> list[dict]:
        return [t.schema for t in self.tools.values()]

    def names(self) -> list[str]:
        return list(self.tools)

    def call(self, call: ToolCall) -> ToolCallRecord:
        start = time.perf_counter()
        record = ToolCallRecord(name=call.name, arguments=call.arguments if isinstance(call.arguments, dict) else {})
        tool_ = self.tools.get(call.name)
        try:
            if tool_ is None:
                raise ToolError(f"Unknown tool {call.name!r}. Available tools: {self.names()}.", "unknown_tool")
            kwargs = tool_.bind_arguments(call.arguments)
            record.arguments = kwargs
            timeout = tool_.timeout_s or self.default_timeout_s
            output = self._run(tool_, kwargs, timeout)
            if isinstance(output, ToolResult):
                output, record.data = output.text, dict(output.data)
            record.output = self._cap(output)
        except ToolError as e:
            record.error_type, record.error = e.error_type, str(e)  # type: ignore[assignment]
        except pydantic.ValidationError as e:
            record.error_type, record.error = "bad_arguments", _describe_validation_error(tool_, e)  # type: ignore[arg-type]
        except TimeoutError:
            record.error_type = "timeout"
            record.error = f"{call.name} did not finish within {timeout:g} s and was cancelled."
        except Exception as e:  # a tool bug must not kill the rollout: show it to the model
            record.error_type, record.error = "tool_error", f"{type(e).__name__}: {e}"
        if record.error:
            record.output = f"Error: {record.error}"
        record.latency_s = time.perf_counter() - start
        return record

    def _run(self, tool_: Tool, kwargs: dict[str, Any], timeout: float) -> str | ToolResult:
        if tool_.is_async:
            fut = asyncio.run_coroutine_threadsafe(tool_._validated(**kwargs), _background_loop())
        else:
            fut = _run_in_daemon_thread(tool_._validated, kwargs)
        try:
            result = fut.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError from None
        if isinstance(result, (str, ToolResult)):
            return result
        return repr(result) if result is not None else ""

    def _cap(self, text: str) -> str:
        if len(text) <= self.max_output_chars:
            return text
        dropped = len(text) - self.max_output_chars
        return text[: self.max_output_chars] + f"\n[truncated {dropped} chars]"


def _run_in_daemon_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> concurrent.futures.Future:
    """Run a blocking tool in its own daemon thread: a hung tool is abandoned at its timeout without
    holding a pool slot or blocking interpreter exit (sandbox tools kill their own processes)."""
    fut: concurrent.futures.Future = concurrent.futures.Future()

    def target() -> None:
        if not fut.set_running_or_notify_cancel():
            return
        try:
            fut.set_result(fn(**kwargs))
        except BaseException as e:  # delivered to the caller, which turns it into an observation
            fut.set_exception(e)

    threading.Thread(target=target, daemon=True, name="agentgym-tool").start()
    return fut


_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    """One event loop in a daemon thread for async tools called from synchronous `step`."""
    global _loop
    with ToolSet._lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, daemon=True, name="agentgym-async-tools").start()
    return _loop
