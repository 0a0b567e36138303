"""A `python` tool backed by one sandbox session per episode (`agentgym.sandboxes`), started lazily on
the first call, forked with the env and closed with it."""

from __future__ import annotations

from agentgym.sandboxes import LocalSandbox, Sandbox, SandboxLimits
from agentgym.tools import Tool, ToolError


class SandboxedPython:
    def __init__(self, limits: SandboxLimits | dict | None = None):
        self.limits = limits if isinstance(limits, SandboxLimits) else SandboxLimits(**(limits or {}))
        self.sandbox: Sandbox | None = None

    def tool(self) -> Tool:
        owner = self

        def python(code: str) -> str:
            """Run Python code in a sandboxed interpreter (state persists within the episode) and return what it printed.

            Args:
                code: Python source; print() what you want to see.
            """
            return owner.run(code)

        return Tool(python)

    def run(self, code: str) -> str:
        if self.sandbox is None:
            self.sandbox = LocalSandbox(self.limits)
        result = self.sandbox.run(code)
        if result.error_type == "infra_error":
            raise ToolError(result.error or "the sandbox failed", "infra_error")
        return result.to_observation()

    def fork(self) -> SandboxedPython:
        clone = SandboxedPython(self.limits)
        clone.sandbox = self.sandbox.fork() if self.sandbox is not None else None
        return clone

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
