"""The Python interpreter environment (sandboxed, stateful) with generated or user-supplied tasks."""

from agentgym.envs.python.env import PythonEnv

__all__ = ["PythonEnv"]
