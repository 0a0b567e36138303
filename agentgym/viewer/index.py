"""The viewer's index of a run: every readable tree as a compact summary, parsed once; full trees on demand.

A 10,000-tree store is ~150 MB of JSON, mostly token ids, log-probs and entropies. Decoding all of it
into Python objects takes seconds, so the list is built by a *scanner* that reads only what a list row
needs straight from each record's text: the head and tail fields (whose order the store's writer fixes),
counts of a few node fields. A record in any other layout (another writer, reordered keys) is parsed in
full instead, so layout only changes speed, never results. The text-search index (task, actions,
observations) is built by a background thread after the list is ready, so the first page is not kept
waiting for it. The list keeps each record's byte offset; opening a tree re-reads and validates that one.

Bad input follows the store's rules (torn, corrupt and other-version records are skipped) but is
reported as messages for the page instead of Python warnings, and a bad file never hides good ones.
"""

from __future__ import annotations

import gc
import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentgym.store import TrajectoryFileError, decode_line
from agentgym.trajectory import SCHEMA_VERSION, TrajectoryTree
from agentgym.viewer.metrics import METRICS_FILE

_DECODER = json.JSONDecoder()
_STR = r'"((?:[^"\\]|\\.)*)"'
_HEAD = re.compile(r'\{"schema_version":(-?\d+),"id":' + _STR + r',"env_id":' + _STR + r',"seed":(null|-?\d+),"task":')
_TAIL = re.compile(r'\],"final_rewards":(\{[^{}]*\}),"policy_version":(-?\d+),"step":(null|-?\d+),"created_at":')
_NODE = re.compile(r'"parent":(null|\d+),"depth":(\d+),"rebuild_context":')
_CALL = re.compile(r'"latency_s":[-\d.eE+]+,"error_type":(.)')
_TEXT_KEYS = ('"action_text":', '"observation":{"text":')


@dataclass(slots=True)
class TreeSummary:
    """One row of the trajectory list."""

    n: int  # position in the run's list; the tree's address in the viewer
    source: str  # store file name within the run
    line: int
    offset: int
    length: int
    id: str
    env_id: str
    seed: int | None
    step: int | None
    policy_version: int
    question: str
    trajectories: int
    turns: int  # nodes in the tree
    max_turns: int  # turns on its longest path: the "length" filter
    tokens: int  # sampled tokens over all nodes
    branches: int
    mean_reward: float
    successes: int  # trajectories with final reward > 0
    min_reward: float
    max_reward: float
    tool_calls: int
    errors: int
    has_memory: bool
    has_images: bool

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        del d["offset"], d["length"]
        return d


@dataclass
class SourceInfo:
    name: str
    path: Path
    trees: int = 0
    bytes: int = 0
    messages: list[str] = field(default_factory=list)


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
    tail = _TAIL.search(text, pos)
    if tail is None or not isinstance(task, dict):
        return None
    nodes = _NODE.findall(text, pos, tail.start() + 1)
    parents = {p for p, _ in nodes if p != "null"}
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
        "max_turns": max((int(d) for _, d in nodes), default=-1) + 1, "tokens": tokens,
        "branches": len(nodes) - text.count('"branch_entropy":null', pos, tail.start()), **rewards,
        "tool_calls": len(calls), "errors": sum(1 for c in calls if c == '"'),
        "has_memory": '"memory":"' in text, "has_images": '"images":["' in text,
    }
    return int(head.group(1)), fields


def summarise_dict(rec: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The same summary from a fully parsed record (any key order)."""
    nodes = rec.get("nodes") or []
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


class RunIndex:
    """Summaries of every readable tree under a run directory (or in one store file), and its metrics."""

    def __init__(self, path: str | Path, search: bool = True):
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file or directory")
        self.root = self.path if self.path.is_dir() else self.path.parent
        self.sources: list[SourceInfo] = []
        self.messages: list[str] = []  # problems the page shows in its banner
        self.summaries: list[TreeSummary] = []
        self._search: list[str] = []
        self._search_ready = threading.Event()
        start = time.perf_counter()
        gc_was_enabled = gc.isenabled()
        gc.disable()  # hundreds of thousands of small objects: the cyclic GC only slows the scan down
        try:
            for store_path in self._store_paths():
                self._scan_file(store_path)
        finally:
            if gc_was_enabled:
                gc.enable()
        self.load_s = time.perf_counter() - start
        self._search_started = False
        self._search_lock = threading.Lock()
        if search:
            self._start_search()

    def _start_search(self) -> None:
        self._search_started = True
        threading.Thread(target=self._build_search, name="agentgym-viewer-search", daemon=True).start()

    def _build_search(self) -> None:
        texts: list[str] = []
        try:
            for src in self.sources:
                with open(src.path, "rb") as f:
                    for s in self.summaries:
                        if s.source == src.name:
                            f.seek(s.offset)
                            payload = decode_line(f.read(s.length).rstrip(b"\n"))
                            texts.append(search_text(payload.decode("utf-8", "replace")) if payload else "")
        except OSError as e:
            self.messages.append(f"text search unavailable: {e}")
        self._search = texts + [""] * (len(self.summaries) - len(texts))
        self._search_ready.set()

    def _store_paths(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        paths = sorted(p for p in self.path.glob("*.jsonl") if p.name != METRICS_FILE and p.is_file())
        paths.sort(key=lambda p: p.name != "trajectories.jsonl")  # the training store first
        if not paths:
            self.messages.append(f"{self.path}: no trajectory stores (*.jsonl) in this directory")
        return paths

    def _scan_file(self, path: Path) -> None:
        info = SourceInfo(name=str(path.relative_to(self.root)), path=path, bytes=path.stat().st_size)
        if info.bytes == 0:
            info.messages.append(f"{info.name}: empty file (no trees yet)")
        seen: set[str] = set()
        found: list[TreeSummary] = []
        offset = 0
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                start, offset = offset, offset + len(raw)
                if not raw.endswith(b"\n"):
                    info.messages.append(f"{info.name}:{lineno}: torn last record (no newline) skipped")
                    continue
                if raw == b"\n":
                    continue
                payload = decode_line(raw[:-1])
                if payload is None:
                    if lineno == 1 and raw.lstrip().startswith(b"{"):
                        info.messages.append(f"{info.name}: not a trajectory store (plain JSON lines); ignored")
                        self._add_source(info, [])
                        return
                    info.messages.append(f"{info.name}:{lineno}: corrupt record (length/checksum mismatch) skipped")
                    continue
                fields = self._summarise(info, lineno, payload)
                if fields is None:
                    continue
                if fields["id"] in seen:
                    continue  # the store's idempotency rule: the first record with an id wins
                seen.add(fields["id"])
                found.append(TreeSummary(n=0, source=info.name, line=lineno, offset=start, length=len(raw), **fields))
        self._add_source(info, found)

    def _summarise(self, info: SourceInfo, lineno: int, payload: bytes) -> dict[str, Any] | None:
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            info.messages.append(f"{info.name}:{lineno}: record is not UTF-8; skipped")
            return None
        scanned = scan_record(text)
        if scanned is not None:
            version, fields = scanned
        else:
            try:
                rec = json.loads(text)
            except json.JSONDecodeError:
                info.messages.append(f"{info.name}:{lineno}: undecodable record skipped")
                return None
            if not isinstance(rec, dict):
                info.messages.append(f"{info.name}:{lineno}: record is not a JSON object; skipped")
                return None
            version = rec.get("schema_version")
            if version == SCHEMA_VERSION:
                try:
                    fields = summarise_dict(rec)[0]
                except (AttributeError, TypeError, ValueError) as e:  # e.g. nodes that are not objects
                    info.messages.append(f"{info.name}:{lineno}: record does not match the schema ({e}); skipped")
                    return None
        if version != SCHEMA_VERSION:
            info.messages.append(f"{info.name}:{lineno}: schema version {version}, this agentgym reads version "
                                 f"{SCHEMA_VERSION}; skipped")
            return None
        return fields

    def _add_source(self, info: SourceInfo, found: list[TreeSummary]) -> None:
        for s in found:
            s.n = len(self.summaries)
            self.summaries.append(s)
        info.trees = len(found)
        self.sources.append(info)
        if len(info.messages) > 20:  # one bad file must not bury the banner
            info.messages[20:] = [f"{info.name}: … and {len(info.messages) - 20} more problems"]
        self.messages += info.messages

    # ---- queries ----------------------------------------------------------------------------------
    def query(self, env: str = "", source: str = "", rmin: float | None = None, rmax: float | None = None,
              lmin: int | None = None, lmax: int | None = None, errors: str = "", smin: int | None = None,
              smax: int | None = None, q: str = "", branched: str = "", sort: str = "n") -> list[TreeSummary]:
        """Summaries matching every given filter (reward = the tree's mean leaf reward, length = turns on
        its longest path, errors = 'yes'/'no', q = case-insensitive text search)."""
        needle = q.strip().lower()
        if needle and not self._search_ready.is_set():
            with self._search_lock:
                if not self._search_started:  # built on demand when the index was made without it
                    self._start_search()
            self._search_ready.wait()
        out = []
        for s, hay in zip(self.summaries, self._search if needle else [""] * len(self.summaries)):
            if (env and s.env_id != env) or (source and s.source != source):
                continue
            if (rmin is not None and s.mean_reward < rmin) or (rmax is not None and s.mean_reward > rmax):
                continue
            if (lmin is not None and s.max_turns < lmin) or (lmax is not None and s.max_turns > lmax):
                continue
            if (errors == "yes" and not s.errors) or (errors == "no" and s.errors):
                continue
            if (branched == "yes" and not s.branches) or (branched == "no" and s.branches):
                continue
            if smin is not None and (s.step is None or s.step < smin):
                continue
            if smax is not None and (s.step is None or s.step > smax):
                continue
            if needle and needle not in hay:
                continue
            out.append(s)
        key, _, direction = sort.partition(":")
        if key != "n" and key in TreeSummary.__slots__:
            known = [s for s in out if getattr(s, key) is not None]
            known.sort(key=lambda s: getattr(s, key), reverse=direction == "desc")
            out = known + [s for s in out if getattr(s, key) is None]  # trees without the value go last
        elif direction == "desc":
            out.reverse()
        return out

    def load_tree(self, n: int) -> TrajectoryTree:
        """The full tree behind summary `n`, validated against the schema."""
        s = self.summaries[n]
        path = next(src.path for src in self.sources if src.name == s.source)
        with open(path, "rb") as f:
            f.seek(s.offset)
            raw = f.read(s.length)
        payload = decode_line(raw.rstrip(b"\n"))
        if payload is None:
            raise TrajectoryFileError(f"{s.source}:{s.line} changed on disk since the viewer read it; reload")
        return TrajectoryTree.model_validate_json(payload)

    def overview(self) -> dict[str, Any]:
        steps = [s.step for s in self.summaries if s.step is not None]
        return {
            "path": str(self.path), "trees": len(self.summaries),
            "trajectories": sum(s.trajectories for s in self.summaries),
            "sources": [{"name": s.name, "trees": s.trees, "bytes": s.bytes, "messages": s.messages} for s in self.sources],
            "envs": sorted({s.env_id for s in self.summaries}), "steps": [min(steps), max(steps)] if steps else None,
            "max_turns": max((s.max_turns for s in self.summaries), default=0),
            "messages": self.messages, "load_s": round(self.load_s, 3),
        }

    def step_stats(self) -> list[dict[str, Any]]:
        """Per training step, aggregated from the trees: what the dashboard shows without metrics.jsonl."""
        by_step: dict[int, list[TreeSummary]] = {}
        for s in self.summaries:
            if s.step is not None:
                by_step.setdefault(s.step, []).append(s)
        rows = []
        for step in sorted(by_step):
            group = by_step[step]
            n = len(group)
            rows.append({"step": step, "trees": n, "mean_reward": sum(s.mean_reward for s in group) / n,
                         "turns_per_trajectory": sum(s.max_turns for s in group) / n,
                         "branches_per_tree": sum(s.branches for s in group) / n,
                         "tool_errors_per_tree": sum(s.errors for s in group) / n})
        return rows
