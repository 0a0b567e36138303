"""A tool task: look a term up with the `define` tool and say how many words its definition has."""

from __future__ import annotations

import re
from typing import Any

from agentgym import EnvLimits, ToolEnv, ToolError, tool

GLOSSARY = {
    "entropy": "the expected surprise of a random outcome",
    "policy": "a rule that maps what an agent sees to what it does",
    "reward": "a number that says how good an outcome was",
    "episode": "one run of an agent from reset to the end",
    "trajectory": "the sequence of observations and actions of an episode",
    "branch": "a second continuation sampled from the same prefix",
}


@tool
def define(term: str) -> str:
    """Look a term up in the glossary.

    Args:
        term: The term to define, e.g. "entropy".
    """
    key = term.strip().lower()
    if key not in GLOSSARY:
        raise ToolError(f"No entry for {term!r}. Known terms: {', '.join(sorted(GLOSSARY))}.")
    return GLOSSARY[key]


class GlossaryEnv(ToolEnv):
    instructions = "Answer the question. Use the define tool to read definitions; do not guess them."

    def __init__(self, tool_format: str = "xml", limits: EnvLimits | dict | None = None,
                 render_mode: str | None = None):
        super().__init__([define], tool_format=tool_format, limits=limits or EnvLimits(max_turns=4),
                         render_mode=render_mode)

    @property
    def expert(self) -> str | None:
        return "agentgym_example_envs.glossary:look_up_then_count" if self.tool_format == "xml" else None

    def sample_task(self, options: dict[str, Any] | None) -> dict[str, Any]:
        term = sorted(GLOSSARY)[int(self.np_random.integers(len(GLOSSARY)))]
        return {"term": term, "question": f"How many words are in the glossary's definition of '{term}'?",
                "answer": len(GLOSSARY[term].split())}

    def score(self, answer: str) -> float:
        return 1.0 if answer.strip() == str(self.task["answer"]) else 0.0


def look_up_then_count(context: str) -> str:
    """The expert: call `define` on the term in the question, then count the words of the result."""
    turn = context.rsplit("<|im_start|>assistant", 1)[-1]
    result = re.search(r"<result>\n?(.*?)\n?</result>", turn, re.S)
    if result:
        return f"<answer>{len(result.group(1).split())}</answer>"
    term = re.search(r"definition of '([^']+)'", context)
    return f"<define>{term.group(1) if term else 'entropy'}</define>"
