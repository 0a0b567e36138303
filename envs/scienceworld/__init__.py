"""ScienceWorld (the `scienceworld` package's 30 elementary-science tasks) as agentgym text envs, with a
fast step path and JVMs shared between envs."""

from agentgym.envs.scienceworld.env import SciWorldEnv, task_names
from agentgym.envs.scienceworld.jvm import JavaNotFoundError, JVMConfig, JVMDiedError, ScienceWorldError
from agentgym.envs.scienceworld.simulator import Simulator, StepResult

__all__ = ["SciWorldEnv", "task_names", "JVMConfig", "JVMDiedError", "JavaNotFoundError", "ScienceWorldError",
           "Simulator", "StepResult"]
