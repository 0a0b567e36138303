"""A scripted expert that follows a question's evidence chain with the tools, reading only what a model
would see (the question and the tool results), never the hidden answer or gold chain.

It parses the nested question into its start descriptor and relations, searches for the start entity,
opens same-named candidates until one matches the descriptor's details, then for each relation finds the
supporting sentence on the current page (paging through long pages), follows the linked page id, and
answers with the last entity's name, citing the pages it opened. Its progress is a small dict of facts
folded over observations: the web-search env rebuilds it from the whole transcript, the deep-research
env's expert keeps it in its report (the only memory that survives a round).
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentgym.envs.web_search.questions import parse_question
from agentgym.envs.web_search.world import RELATIONS

QUESTION = re.compile(r"What is [^?]+\?")
_RESULT = re.compile(r"<result>\n?(.*?)\n?</result>", re.S)
_PAGE = re.compile(r"^Title: (.*)\nURL: (\S+)\nPage (\d+) of (\d+)\n\n(.*)", re.S)
_HIT = re.compile(r"^\[\d+\] (.*)\n    url: (\S+)(?:\n    id: (\S+))?", re.M)
_DETAIL_NOISE = {"born", "founded", "city"}


def new_facts() -> dict[str, Any]:
    return {"searches": 0, "candidates": [], "tried": [], "start": None, "hops": [], "next_page": None, "opened": []}


def parse_descriptor(descriptor: str) -> tuple[str, list[str]]:
    m = re.fullmatch(r"(.+?) \((.+)\)", descriptor.strip())
    if not m:
        return descriptor.strip(), []
    return m.group(1), [w for w in re.findall(r"\w+", m.group(2)) if w.lower() not in _DETAIL_NOISE]


def _page_id(address: str) -> str:
    return address.rstrip("/").rsplit("/", 1)[-1]


def _statement(relation: str, subject: str, text: str) -> tuple[str, str] | None:
    """(object name, object id) from the sentence stating `relation` of `subject` in `text`."""
    template = RELATIONS[relation][2]
    pattern = re.escape(template.format(s=subject, o="\x00")).replace("\x00", r"(.+?) \(([\w-]+)\)")
    m = re.search(r"(?:^|(?<=[.!?] ))" + pattern, text)
    return (m.group(1), m.group(2)) if m else None


def update(facts: dict[str, Any], question: str, observation: str) -> dict[str, Any]:
    """Fold one tool result into the facts."""
    parsed = parse_question(question)
    if parsed is None:
        return facts
    descriptor, relations = parsed
    name, details = parse_descriptor(descriptor)
    if m := _PAGE.match(observation.strip()):
        title, address, page, pages, text = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), m.group(5)
        page_id = _page_id(address)
        if address not in facts["opened"]:
            facts["opened"].append(address)
        facts["next_page"] = None
        if facts["start"] is None:
            lead = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
            if not (title == name and all(d in lead for d in details)):
                if page_id not in facts["tried"]:
                    facts["tried"].append(page_id)
                return facts
            facts["start"] = [page_id, title]  # and read its first hop from the same page, below
        hops = facts["hops"]
        current_id, current_name = (facts["start"] if not hops else hops[-1][1:])
        if page_id != current_id or len(hops) >= len(relations):
            return facts
        found = _statement(relations[len(hops)], current_name, text)
        if found:
            hops.append([relations[len(hops)], found[1], found[0]])
        elif page < pages:
            facts["next_page"] = [page_id, page + 1]
        return facts
    hits = [(title, ident or url) for title, url, ident in _HIT.findall(observation)]
    if observation.lstrip().startswith(("Results for", "No results for")) or hits:
        facts["searches"] += 1
        for title, ident in hits:
            if title == name and ident not in facts["candidates"] and _page_id(ident) not in facts["tried"]:
                facts["candidates"].append(ident)
    return facts


def decide(facts: dict[str, Any], question: str) -> tuple[str, str]:
    """(tool name or "answer", argument): the next action given the facts."""
    parsed = parse_question(question)
    if parsed is None:
        return "answer", "unknown"
    descriptor, relations = parsed
    name, details = parse_descriptor(descriptor)
    if facts["start"] is None:
        for cand in facts["candidates"]:
            if _page_id(cand) not in facts["tried"]:
                return "open", cand
        if facts["searches"] >= 3:
            return "answer", "unknown"
        query, k = " ".join([name, *details]), 5 * (facts["searches"] + 1)
        return "search", json.dumps({"query": query, "k": k}) if k != 5 else query
    hops = facts["hops"]
    if len(hops) == len(relations):
        cites = " ".join(f"[[{i}]({a})]" for i, a in enumerate(facts["opened"][-len(relations):], 1))
        return "answer", f"{hops[-1][2]} {cites}".strip()
    if facts["next_page"]:
        page_id, page = facts["next_page"]
        return "open", json.dumps({"url": page_id, "page": page})
    current_id = facts["start"][0] if not hops else hops[-1][1]
    return "open", current_id


def xml_action(tool: str, argument: str) -> str:
    return f"<{tool}>{argument}</{tool}>"


def web_search_expert(context: str) -> str:
    """Next action given the conversation so far (XML tool format)."""
    m = QUESTION.search(context)
    if not m:
        return "<answer>unknown</answer>"
    question = m.group(0)
    facts = new_facts()
    for obs in _RESULT.findall(context):
        facts = update(facts, question, obs)
    return xml_action(*decide(facts, question))
