"""A simulated Android phone (and a real one over adb) as an AndroidWorld-style agent environment:
apps with real state behind a uiautomator-like view tree, JSON actions, seeded tasks with state checks."""

from agentgym.envs.android.env import AndroidEnv
from agentgym.envs.android.tasks import TEMPLATES

__all__ = ["AndroidEnv", "TEMPLATES"]
