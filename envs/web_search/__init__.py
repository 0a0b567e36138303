"""Web search over a local index (a generated knowledge world, Wikipedia extracts, user corpora) or a
remote engine, with multi-hop questions, gold evidence chains and Search-R1-style rewards."""

from agentgym.envs.web_search.env import WebSearchEnv

__all__ = ["WebSearchEnv"]
