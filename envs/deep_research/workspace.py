"""IterResearch's workspace: the prompt rebuilt every round from the question, the evolving report and the
last action with its observation, and the parsing of one round's decision (thinking, report, action).

The section headers are fixed strings so that a reader (the scripted expert, a person in the viewer) can
find the parts of the latest workspace in any context.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

QUESTION_HEADER = "## Question\n"
REPORT_HEADER = "## Report (your only memory: rewrite it completely every round)\n"
ACTION_HEADER = "## Last action\n"
OBSERVATION_HEADER = "## Last observation\n"
ROUND_HEADER = "## Round\n"

_REPORT = re.compile(r"<report>(.*?)</report>", re.S)
_THINK = re.compile(r"<think>.*?</think>", re.S)

INSTRUCTIONS = (
    "You are a deep-research agent. Each round you see only the question, your report and your last action "
    "with its observation; everything else is forgotten. Each round write: your reasoning in <think></think>; "
    "your updated report in <report></report> (all progress, facts with their page urls, and the plan: it is "
    "your only memory); then exactly one action: a tool call, or your final answer (only the name, optionally "
    "citing pages as [[n](url)]) in <answer></answer>. Several entities may share a name: check details.")


@dataclass
class Decision:
    report: str | None  # None: the message had no <report>
    action_text: str  # the message with thinking and report removed: what the tool-call parser reads
    thinking: str


def parse_decision(text: str) -> Decision:
    reports = _REPORT.findall(text)
    thinking = " ".join(m.group(0) for m in _THINK.finditer(text))
    rest = _REPORT.sub("", _THINK.sub("", text))
    return Decision(report=reports[-1].strip() if reports else None, action_text=rest.strip(), thinking=thinking)


def render_workspace(question: str, report: str, last_action: str, observation: str, round_: int, max_rounds: int,
                     notes: list[str]) -> str:
    last = round_ >= max_rounds
    status = (f"Round {round_} of {max_rounds}." +
              (" This is the last round: give your final answer in <answer></answer> now." if last else ""))
    parts = [
        QUESTION_HEADER + question.strip(),
        REPORT_HEADER + (report or "(empty)"),
        ACTION_HEADER + (last_action or "(none yet)"),
        OBSERVATION_HEADER + (observation or "(none yet)") + ("".join(f"\n[{n}]" for n in notes)),
        ROUND_HEADER + status,
    ]
    return "\n\n".join(parts)


def split_workspace(context: str) -> dict[str, str] | None:
    """The sections of the latest workspace in `context` (question, report, action, observation)."""
    if QUESTION_HEADER not in context:
        return None
    ws = context.rsplit(QUESTION_HEADER, 1)[1]
    out = {}
    headers = [("question", REPORT_HEADER), ("report", ACTION_HEADER), ("action", OBSERVATION_HEADER),
               ("observation", ROUND_HEADER)]
    for key, next_header in headers:
        body, sep, ws = ws.partition("\n\n" + next_header)
        if not sep:
            return None
        out[key] = body
    return out
