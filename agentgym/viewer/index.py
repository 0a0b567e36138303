"""The viewer's index of a run: every readable tree as a compact summary, parsed once; full trees on demand.

Each record is summarised straight from its JSON text (see `scan`), and the list keeps its byte offset,
so opening a tree re-reads and validates just that record. The text-search index (task, actions,
observations) is built by a background thread after the list is ready, so the first page never waits
for it. Stores are append-only, so `refresh` (called as the pages are used) reads only what was appended
since: a run that is still training shows its new trees without a restart.

Lines are read by the store's own reader (`agentgym.store.scan_lines`: framing, torn tails, checksums,
the record size cap) and records the fast path cannot read are decoded by the store's `decode_record`,
so the list holds exactly the records `TrajectoryStore.records()` yields (a test checks both on hostile
files), with one exception: a record whose only fault lies deep inside a node (a field of the wrong type)
is listed, since the list reads only what it shows, and opening it answers the schema error. Bad input becomes messages for the page instead of Python warnings, and a bad file never hides
good ones. A torn last line is reported while it is torn and read again when a writer completes it.
"""

from __future__ import annotations

import gc
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentgym.store import (DEFAULT_MAX_RECORD_BYTES, BadRecord, TrajectoryFileError, decode_line, decode_record,
                            scan_lines, tree_from_record)
from agentgym.trajectory import SCHEMA_VERSION, TrajectoryTree
from agentgym.viewer.metrics import METRICS_FILE
from agentgym.viewer.scan import scan_record, search_text, summarise_dict

MAX_MESSAGES_PER_FILE = 20  # one bad file must not bury the banner


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
    """One store file of the run and how far it has been read."""

    name: str
    path: Path
    trees: int = 0
    scanned: int = 0  # bytes read up to the end of the last complete line
    lines: int = 0
    problems: list[str] = field(default_factory=list)
    torn: str | None = None  # the torn tail, reported until a writer completes the line
    plain: bool = False  # not a store at all
    seen: set[str] = field(default_factory=set)

    @property
    def messages(self) -> list[str]:
        out = self.problems[:MAX_MESSAGES_PER_FILE]
        if len(self.problems) > MAX_MESSAGES_PER_FILE:
            out.append(f"{self.name}: … and {len(self.problems) - MAX_MESSAGES_PER_FILE} more problems")
        if self.scanned == 0 and self.torn is None and not self.plain and self.path.exists() \
                and self.path.stat().st_size == 0:
            out.append(f"{self.name}: empty file (no trees yet)")
        return out + ([self.torn] if self.torn else [])


class RunIndex:
    """Summaries of every readable tree under a run directory (or in one store file)."""

    def __init__(self, path: str | Path, search: bool = True, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self.path = Path(path)
        self.max_record_bytes = max_record_bytes
        if not self.path.exists():
            raise FileNotFoundError(f"{self.path}: no such file or directory")
        self.root = self.path if self.path.is_dir() else self.path.parent
        self.sources: list[SourceInfo] = []
        self.run_messages: list[str] = []
        self.summaries: list[TreeSummary] = []
        self._search: list[str] = []
        self._search_ready = threading.Event()
        self._search_started = False
        self._lock = threading.RLock()  # refresh and the search thread both extend the lists
        start = time.perf_counter()
        for store_path in self._store_paths():
            self.sources.append(SourceInfo(name=str(store_path.relative_to(self.root)), path=store_path))
        self.refresh()
        self.load_s = time.perf_counter() - start
        if search:
            self._start_search()

    @property
    def messages(self) -> list[str]:
        """Problems the page shows in its banner."""
        return self.run_messages + [m for src in self.sources for m in src.messages]

    def _store_paths(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        paths = sorted(p for p in self.path.glob("*.jsonl") if p.name != METRICS_FILE and p.is_file())
        paths.sort(key=lambda p: p.name != "trajectories.jsonl")  # the training store first
        if not paths:
            self.run_messages.append(f"{self.path}: no trajectory stores (*.jsonl) in this directory")
        return paths

    # ---- reading ----------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Read what was appended to the stores since the last call; returns the number of new trees."""
        with self._lock:
            before = len(self.summaries)
            gc_was_enabled = gc.isenabled()
            gc.disable()  # hundreds of thousands of small objects: the cyclic GC only slows the scan down
            try:
                for src in self.sources:
                    self._scan(src)
            finally:
                if gc_was_enabled:
                    gc.enable()
            if self._search_ready.is_set() and len(self.summaries) > before:  # else the builder catches up
                self._search += self._search_texts(self.summaries[before:])
            return len(self.summaries) - before

    def _scan(self, src: SourceInfo) -> None:
        if src.plain or not src.path.is_file():
            return
        size = src.path.stat().st_size
        if size < src.scanned:  # replaced or truncated: its old rows may point at other bytes now
            src.problems.append(f"{src.name}: file shrank while being viewed; restart the viewer to re-read it")
            src.plain = True
            return
        if size == src.scanned:
            return
        src.torn = None
        with open(src.path, "rb") as f:
            for line in scan_lines(f, src.scanned, src.lines + 1, self.max_record_bytes):  # the store's own reader
                if line.kind == "torn":  # maybe still being written: not consumed, looked at again later
                    src.torn = line.problem(src.name)
                    break
                if line.kind == "plain":
                    src.problems.append(f"{src.name}: not a trajectory store (plain JSON lines); ignored")
                    src.plain = True
                    return
                src.scanned, src.lines = line.offset + line.length, line.line
                if line.kind != "record":
                    if line.kind != "blank":
                        src.problems.append(line.problem(src.name))
                    continue
                assert line.payload is not None
                fields = self._summarise(src, line.line, line.payload)
                if fields is None or fields["id"] in src.seen:
                    continue  # the store's idempotency rule: the first record with an id wins
                src.seen.add(fields["id"])
                src.trees += 1
                self.summaries.append(TreeSummary(n=len(self.summaries), source=src.name, line=line.line,
                                                  offset=line.offset, length=line.length, **fields))

    def _summarise(self, src: SourceInfo, lineno: int, payload: bytes) -> dict[str, Any] | None:
        """The list row of a record: read straight from its text in the writer's layout (fast), else from
        the decoded record; None (and a message) for a record the store would skip."""
        where = f"{src.name}:{lineno}"
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            src.problems.append(f"{where}: record is not UTF-8; skipped")
            return None
        try:
            scanned = scan_record(text)
            if scanned is None:
                rec = decode_record(payload)
                if rec.get("schema_version") != SCHEMA_VERSION:
                    tree_from_record(rec)  # raises BadRecord with the store's message
                scanned = SCHEMA_VERSION, summarise_dict(rec)[0]
        except BadRecord as e:
            src.problems.append(f"{where}: {e}; skipped")
            return None
        except (AttributeError, TypeError, ValueError, RecursionError, OverflowError) as e:  # e.g. nodes not objects
            src.problems.append(f"{where}: record does not match the schema ({str(e)[:120]}); skipped")
            return None
        version, fields = scanned
        if version != SCHEMA_VERSION:
            src.problems.append(f"{where}: schema version {version}, this agentgym reads version {SCHEMA_VERSION}; "
                                "skipped")
            return None
        return fields

    # ---- text search ------------------------------------------------------------------------------
    def _start_search(self) -> None:
        self._search_started = True
        threading.Thread(target=self._build_search, name="agentgym-viewer-search", daemon=True).start()

    def _build_search(self) -> None:
        with self._lock:
            rows = list(self.summaries)
        texts = self._search_texts(rows)  # the slow part, while pages are served
        with self._lock:  # trees a refresh added meanwhile
            self._search = texts + self._search_texts(self.summaries[len(texts):])
            self._search_ready.set()

    def _search_texts(self, rows: list[TreeSummary]) -> list[str]:
        paths = {src.name: src.path for src in self.sources}
        handles: dict[str, Any] = {}
        texts = []
        try:
            for s in rows:
                f = handles.get(s.source) or handles.setdefault(s.source, open(paths[s.source], "rb"))
                f.seek(s.offset)
                payload = decode_line(f.read(s.length).rstrip(b"\n"))
                texts.append(search_text(payload.decode("utf-8", "replace")) if payload else "")
        except OSError as e:
            self.run_messages.append(f"text search incomplete: {e}")
        finally:
            for f in handles.values():
                f.close()
        return texts + [""] * (len(rows) - len(texts))

    # ---- queries ----------------------------------------------------------------------------------
    def query(self, env: str = "", source: str = "", rmin: float | None = None, rmax: float | None = None,
              lmin: int | None = None, lmax: int | None = None, errors: str = "", smin: int | None = None,
              smax: int | None = None, q: str = "", branched: str = "", sort: str = "n") -> list[TreeSummary]:
        """Summaries matching every given filter (reward = the tree's mean leaf reward, length = turns on
        its longest path, errors = 'yes'/'no', q = case-insensitive text search)."""
        needle = q.strip().lower()
        if needle and not self._search_ready.is_set():
            with self._lock:
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
            "sources": [{"name": s.name, "trees": s.trees, "bytes": s.scanned, "messages": s.messages}
                        for s in self.sources],
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
