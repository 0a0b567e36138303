"""The scripted expert for the deep-research workspace: the web-search expert's chain-following, with its
progress kept where the workspace keeps memory — in the report. Each round it reads only the latest
workspace (question, report, last observation), folds the observation into the facts stored in the
report, and writes the updated report and one action."""

from __future__ import annotations

import json
import re

from agentgym.envs.deep_research.workspace import split_workspace
from agentgym.envs.web_search.expert import decide, new_facts, update, xml_action

_FACTS = re.compile(r"^facts: (\{.*\})$", re.M)


def report_text(facts: dict) -> str:
    if facts["start"] is None:
        progress = f"Looking for the start entity; searches so far: {facts['searches']}; ruled out: {facts['tried']}."
    else:
        chain = " -> ".join([facts["start"][1]] + [f"{rel}: {name} ({ident})" for rel, ident, name in facts["hops"]])
        progress = f"Chain so far: {chain}."
    pages = "\n".join(f"- {a}" for a in facts["opened"]) or "- none"
    return f"Progress: {progress}\nPages read:\n{pages}\nfacts: {json.dumps(facts, separators=(',', ':'))}"


def deep_research_expert(context: str) -> str:
    ws = split_workspace(context)
    if ws is None:
        return "<report>No workspace found.</report><answer>unknown</answer>"
    m = _FACTS.search(ws["report"])
    facts = json.loads(m.group(1)) if m else new_facts()
    if ws["observation"] != "(none yet)":
        facts = update(facts, ws["question"], ws["observation"])
    tool, argument = decide(facts, ws["question"].strip())
    thought = f"<think>Next: {tool} {argument[:80]}</think>"
    return f"{thought}\n<report>{report_text(facts)}</report>\n{xml_action(tool, argument)}"
