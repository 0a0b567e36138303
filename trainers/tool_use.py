"""How a trajectory used its tools, measured on the tree: the quantities OTC, ASPO and TAPO shape rewards or
advantages with, and that bench/bench_plugins.py reports.

A *trajectory* is the path from a root to a leaf. Counts are over model tokens (loss mask 1: what the
policy sampled), never over prompt or tool-output tokens. `strict_format` is TAPO's format rule for
tag-formatted agents (XML tools, ``<answer>``), on the model's actions only.
"""

from __future__ import annotations

import re

from agentgym.trajectory import TrajectoryTree, Turn


def is_tool_call_turn(turn: Turn) -> bool:
    """The turn invoked a tool: it holds a call record that is not a parse error (a malformed call ran
    nothing). The final answer is not a tool call (the env records no call for it)."""
    return any(call.error_type != "parse_error" for call in turn.tool_calls)


def tool_call_turns(tree: TrajectoryTree, leaf: int) -> int:
    """m: the number of turns of the trajectory that invoked a tool (OTC's tool-call count)."""
    return sum(1 for turn in tree.path(leaf) if is_tool_call_turn(turn))


def model_tokens(tree: TrajectoryTree, leaf: int) -> int:
    """L: the number of tokens the policy sampled along the trajectory (observations excluded)."""
    return sum(len(turn.action_ids) for turn in tree.path(leaf))


def first_tool_call_position(tree: TrajectoryTree, leaf: int) -> int | None:
    """p: the model tokens sampled before the first tool call ran, i.e. through the end of the first turn
    that invoked a tool (an action ends with its call: the stop string is the call's closing tag). None
    when the trajectory called no tool."""
    sampled = 0
    for turn in tree.path(leaf):
        sampled += len(turn.action_ids)
        if is_tool_call_turn(turn):
            return sampled
    return None


_BLOCK = re.compile(r"\s*<(\w+)>(.*?)</\1>\s*", re.S)


def tag_sequence(text: str) -> list[str] | None:
    """The tags of `text` if it is nothing but ``<tag>...</tag>`` blocks separated by whitespace, else None."""
    tags: list[str] = []
    pos = 0
    while pos < len(text):
        block = _BLOCK.match(text, pos)
        if block is None:
            return None
        tags.append(block.group(1).lower())
        pos = block.end()
    return tags


def strict_format(actions: list[str], allowed_tags: list[str]) -> bool:
    """Every action is a sequence of allowed tag blocks, and the trajectory's last block is <answer>."""
    tags: list[str] = []
    for action in actions:
        seq = tag_sequence(action)
        if seq is None:
            return False
        tags += seq
    return bool(tags) and tags[-1] == "answer" and all(t in allowed_tags for t in tags)
