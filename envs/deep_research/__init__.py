"""IterResearch's deep-research workspace (Markovian report memory) and its mono-context ReAct twin."""

from agentgym.envs.deep_research.env import DeepResearchEnv, DeepResearchReActEnv

__all__ = ["DeepResearchEnv", "DeepResearchReActEnv"]
