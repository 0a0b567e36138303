"""Reading a list row straight from a stored record's JSON text, without decoding the whole tree.

A 10,000-tree store is ~150 MB of JSON, mostly token ids, log-probs and entropies; decoding all of it
into Python objects takes seconds. `scan_record` reads only what a list row needs: the head and tail
fields (whose order the store's writer fixes), and counts of a few node fields found by patterns that
include their neighbouring keys, so a user dict that happens to have a key of the same name does not
match. A record in any other layout (another writer, reordered keys) makes `scan_record` return None and
is parsed in full by `summarise_dict` instead: layout changes speed, never results (a test checks that
both agree on every field).
"""

from __future__ import annotations

import json
import re
from typing import Any

from agentgym.store import BadRecord
from agentgym.trajectory import structure_problem

_DECODER = json.JSONDecoder()
_STR = r'"((?:[^"\\]|\\.)*)"'
_HEAD = re.compile(r'\{"schema_version":(-?\d+),"id":' + _STR + r',"env_id":' + _STR + r',"seed":(null|-?\d+),"task":')
_TAIL = re.compile(r'\],"final_rewards":(\{[^{}]*\}),"policy_version":(-?\d+),"step":(null|-?\d+),"created_at":')
_NODE = re.compile(r'\{"id":(-?\d+),"parent":(null|-?\d+),"depth":(-?\d+),"rebuild_context":')
_CALL = re.compile(r'"latency_s":[-\d.eE+]+,"error_type":(.)')
_TEXT_KEYS = ('"action_text":', '"observation":{"text":')


def _check_structure(ids: list[Any], parents: list[Any]) -> None:
    """The tree check the schema makes on load (see TrajectoryTree), so the list never shows a tree that
    cannot be opened: a cycle or a parent out of range is reported as a bad record."""
    problem = structure_problem(ids, parents)
    if problem:
        raise BadRecord(f"bad tree structure: {problem}")


def _question(task: dict[str, Any], first_obs: dict[str, Any] | None) -> str:
    for key in ("question", "prompt", "instruction", "goal"):
        if isinstance(task.get(key), str):
            return task[key][:300]
    if first_obs and first_obs.get("text"):
        return str(first_obs["text"])[:300]
    return json.dumps(task)[:300] if task else ""


def _leaf_rewards(final_rewards: dict[str, float], leaves: int) -> dict[str, Any]:
    values = [float(v) for v in final_rewards.values()]
    values += [0.0] * max(0, leaves - len(values))  # a leaf without a stored reward counts as 0, as in the tree
    if not values:
        return {"mean_reward": 0.0, "successes": 0, "min_reward": 0.0, "max_reward": 0.0}
    return {"mean_reward": sum(values) / len(values), "successes": sum(1 for v in values if v > 0),
            "min_reward": min(values), "max_reward": max(values)}


def _strings_after(text: str, key: str, out: list[str]) -> None:
    """Append every JSON string value that follows `key` (scanned with the C JSON scanner, not a regex)."""
    pos = text.find(key)
    while pos != -1:
        start = pos + len(key)
        if text.startswith('"', start):
            try:
                value, _ = _DECODER.raw_decode(text, start)
                out.append(value)
            except ValueError:
                pass
        pos = text.find(key, start)


def search_text(text: str) -> str:
    """What the list's text search looks at: task, actions and observations, lower-cased."""
    head = _HEAD.match(text)
    if head is None:
        try:
            return summarise_dict(json.loads(text))[1]
        except (ValueError, AttributeError):
            return ""
    texts = [text[head.end():head.end() + 2000]]  # the task row (question, answer, ...)
    for key in _TEXT_KEYS:
        _strings_after(text, key, texts)
    return "\n".join(texts).lower()


def scan_record(text: str) -> tuple[int, dict[str, Any]] | None:
    """(schema version, summary fields) read directly from a record in the writer's layout, or None when
    the record has another layout (the caller then parses it in full)."""
    head = _HEAD.match(text)
    if head is None:
        return None
    try:
        task, pos = _DECODER.raw_decode(text, head.end())
        first_obs = None
        if text.startswith(',"initial_observation":', pos):
            first_obs, pos = _DECODER.raw_decode(text, pos + len(',"initial_observation":'))
    except ValueError:
        return None
    # The tail fields close the record: look near the end first (a record is mostly token arrays, so
    # searching all of it costs a full pass), then everywhere, for a record with a large `meta`.
    tail = _TAIL.search(text, max(pos, len(text) - 4096)) or _TAIL.search(text, pos)
    if tail is None or not isinstance(task, dict):
        return None
    nodes = _NODE.findall(text, pos, tail.start() + 1)
    _check_structure([int(i) for i, _, _ in nodes], [None if p == "null" else int(p) for _, p, _ in nodes])
    parents = {p for _, p, _ in nodes if p != "null"}
    calls = _CALL.findall(text, pos, tail.start() + 1)
    tokens = 0
    start = text.find('"action_ids":[', pos)
    while start != -1:
        end = text.index("]", start)
        if end > start + 14:
            tokens += text.count(",", start, end) + 1
        start = text.find('"action_ids":[', end)
    rewards = _leaf_rewards(json.loads(tail.group(1)), len(nodes) - len(parents))
    step = tail.group(3)
    fields = {
        "id": json.loads(f'"{head.group(2)}"'), "env_id": json.loads(f'"{head.group(3)}"'),
        "seed": None if head.group(4) == "null" else int(head.group(4)),
        "step": None if step == "null" else int(step), "policy_version": int(tail.group(2)),
        "question": _question(task, first_obs), "trajectories": len(nodes) - len(parents), "turns": len(nodes),
        "max_turns": max((int(d) for _, _, d in nodes), default=-1) + 1, "tokens": tokens,
        "branches": len(nodes) - text.count('"branch_entropy":null', pos, tail.start()), **rewards,
        "tool_calls": len(calls), "errors": sum(1 for c in calls if c == '"'),
        "has_memory": '"memory":"' in text, "has_images": '"images":[{' in text or '"images":["' in text,
    }
    return int(head.group(1)), fields


def summarise_dict(rec: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The same summary from a fully parsed record (any key order)."""
    nodes = rec.get("nodes") or []
    _check_structure([n.get("id") for n in nodes], [n.get("parent") for n in nodes])
    parents = {n.get("parent") for n in nodes if n.get("parent") is not None}
    calls = [c for n in nodes for c in (n.get("tool_calls") or [])]
    task = rec.get("task") or {}
    rewards = _leaf_rewards({str(k): v for k, v in (rec.get("final_rewards") or {}).items()},
                            len(nodes) - len(parents))
    observations = [n.get("observation") or {} for n in nodes]
    fields = {
        "id": str(rec.get("id", "")), "env_id": str(rec.get("env_id", "")), "seed": rec.get("seed"),
        "step": rec.get("step"), "policy_version": int(rec.get("policy_version") or 0),
        "question": _question(task, rec.get("initial_observation")), "trajectories": len(nodes) - len(parents),
        "turns": len(nodes), "max_turns": max((int(n.get("depth", 0)) for n in nodes), default=-1) + 1,
        "tokens": sum(len(n.get("action_ids") or []) for n in nodes),
        "branches": sum(1 for n in nodes if n.get("branch_entropy") is not None),
        **rewards, "tool_calls": len(calls),
        "errors": sum(1 for c in calls if c.get("error_type")),
        "has_memory": any(o.get("memory") for o in observations), "has_images": any(o.get("images") for o in observations),
    }
    texts = [fields["question"], json.dumps(task)] + [str(n.get("action_text", "")) for n in nodes]
    texts += [str(o.get("text", "")) for o in observations]
    return fields, "\n".join(texts).lower()
