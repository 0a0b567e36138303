"""Calculator: the small built-in tool env (arithmetic and unit conversion with verifiable answers)."""

from agentgym.envs.calculator.env import CalculatorEnv

__all__ = ["CalculatorEnv"]
