"""Code-execution isolation: `Sandbox` sessions with typed results. The local tier (bubblewrap) is the default."""

from agentgym.sandboxes.base import ExecResult, Sandbox, SandboxLimits, ToolArgumentError, validate_tool_arguments
from agentgym.sandboxes.local import LocalSandbox

__all__ = ["ExecResult", "Sandbox", "SandboxLimits", "LocalSandbox", "ToolArgumentError", "validate_tool_arguments"]
