"""agentgym: train tool-using LLM agents with reinforcement learning.

Core layer: env contract, tools and tool-call parsing, registry, trajectory tree and store, policies,
rollout engine, config, CLI. Imports no torch at import time.
"""

from agentgym.env import ChatText, EnvLimits, TextEnv
from agentgym.registry import EnvImportError, UnknownEnvError, list_envs, load_plugins, make, plugin_errors, register
from agentgym.tool_env import ToolEnv
from agentgym.tools import Tool, ToolError, tool
from agentgym.trajectory import SCHEMA_VERSION, Observation, ToolCallRecord, TrajectoryTree, Turn

__version__ = "0.1.0"

__all__ = [
    "ChatText", "EnvLimits", "TextEnv", "ToolEnv", "Tool", "ToolError", "tool", "register", "make", "list_envs",
    "EnvImportError", "UnknownEnvError", "TrajectoryTree", "Turn", "Observation", "ToolCallRecord",
    "SCHEMA_VERSION", "plugin_errors",
]

# Like Gymnasium's own packages: importing the library registers its envs and every installed plugin's, so
# `gymnasium.make("agentgym/Python-v0")` works after `import agentgym`. Last, so plugins can import us.
load_plugins()
