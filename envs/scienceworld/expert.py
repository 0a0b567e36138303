"""A scripted expert for ScienceWorld: plays the package's gold action sequence, reading only the
conversation (context text -> next action), so it runs through the rollout engine like a model.

The env's first observation names the episode ("ScienceWorld task boil, variation 3 (simplifications:
none)"); the expert computes that episode's gold path once (in a simulator of its own, cached) and
returns the step after the actions it finds in the context. Used by `agentgym check-env`, tests and as
demonstration data.
"""

from __future__ import annotations

import re
import threading

HEADER = re.compile(r"ScienceWorld task (\S+), variation (\d+) \(simplifications: ([^)]*)\)")
_cache: dict[tuple[str, int, str], list[str]] = {}
_lock = threading.Lock()


def header(name: str, variation: int, simplifications: str) -> str:
    return f"ScienceWorld task {name}, variation {variation} (simplifications: {simplifications or 'none'})"


def gold_path(name: str, variation: int, simplifications: str = "", jvm: object = None) -> list[str]:
    """The package's gold action sequence of an episode (cached per process)."""
    from agentgym.envs.scienceworld.simulator import Simulator

    key = (name, variation, simplifications)
    with _lock:
        if key in _cache:
            return list(_cache[key])
    helper = Simulator(jvm)  # type: ignore[arg-type]
    try:
        helper.load(name, variation, simplifications, gold=True, package_random=False)
        actions = helper.gold_actions()
    finally:
        helper.close()
    with _lock:
        _cache[key] = actions
    return list(actions)


def gold_expert(context: str) -> str:
    """Next gold action for the conversation so far, in the env's tool format (read from its prompt)."""
    m = HEADER.search(context)
    if m is None:
        return "look around"
    simplifications = "" if m.group(3) == "none" else m.group(3)
    plan = gold_path(m.group(1), int(m.group(2)), simplifications)
    prompt, _, conversation = context.partition("<|im_start|>assistant")
    if "<act></act>" in prompt:  # xml: results continue the assistant's message, one <act> per command
        done = conversation.count("</act>")
        fmt = "<act>{}</act>"
    else:  # one command per assistant message
        done = conversation.count("<|im_start|>assistant")
        fmt = ('<tool_call>{{"name": "act", "arguments": {{"command": "{}"}}}}</tool_call>'
               if '"name": "act"' in prompt else "{}")
    command = plan[done] if done < len(plan) else "look around"
    return fmt.format(command)
