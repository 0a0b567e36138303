"""Append-only trajectory store: one tree per line, safe against ``kill -9`` mid-write.

Each line is ``<length>\\t<crc32>\\t<json>\\n`` where length and crc32 cover the JSON bytes. A record is
written with a single ``write`` on an ``O_APPEND`` descriptor under an exclusive ``flock``, so concurrent
writers never interleave. A process killed mid-write leaves a torn last line with no newline or a wrong
length or checksum: readers detect and skip it (with a warning), and the next writer starts on a fresh
line, so earlier records are never rewritten and the torn bytes are never decoded as a record.
Rollout ids are idempotency keys: appending a tree whose id is already stored is a no-op. Observation
images never go into a line: they are written (fsynced, renamed) to ``images/<sha256>.png`` beside the
file before the line that references them (`agentgym.images`).

Every reader goes through `scan_lines` (line framing, torn tail, checksum, a cap on a line's length) and
`decode_record` (a JSON object, nothing else), so the store, the viewer and the tools agree on what a
record is. A checksummed line is still untrusted input: a JSON list, 100,000 nested brackets, a
5,000-digit integer, a tree whose parents form a cycle, or a line longer than `max_record_bytes` (read
past in chunks, never held whole) is skipped with a `StoreWarning` like a torn one.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from agentgym.images import ImageStore, externalize_tree, has_inline_images
from agentgym.jsonl import bounded_lines
from agentgym.trajectory import SCHEMA_VERSION, TrajectoryTree


class StoreWarning(UserWarning):
    """A record was skipped because it is torn, corrupt or from another schema version."""


class TrajectoryFileError(ValueError):
    """The file is not a trajectory store at all."""


class BadRecord(ValueError):
    """An intact (checksummed) line whose content is not a readable record; the message says why."""


DEFAULT_MAX_RECORD_BYTES = 256 << 20  # a tree is typically 10-100 kB; this only stops a runaway line
_FRAMING = 32  # "<length>\t<crc32>\t" and the newline around the JSON

LineKind = Literal["record", "blank", "torn", "corrupt", "too_long", "plain"]


@dataclass(frozen=True, slots=True)
class StoreLine:
    """One line of a store file as found on disk, with where it is."""

    kind: LineKind  # record: intact, `payload` set; torn: no newline yet (the file's end, maybe being written)
    line: int  # 1-based
    offset: int  # byte offset of the line's first byte
    length: int  # bytes including the newline (for a torn tail: up to the end of the file)
    payload: bytes | None = None  # the JSON bytes of an intact record

    def problem(self, name: str) -> str:
        why = {"torn": "torn last record (no newline) skipped",
               "corrupt": "corrupt record (length/checksum mismatch) skipped",
               "too_long": f"record of {self.length} bytes is over the size limit; skipped",
               "plain": "not a trajectory store (plain JSON lines)"}
        return f"{name}:{self.line}: {why.get(self.kind, self.kind)}"


def scan_lines(f: Any, start: int = 0, first_line: int = 1,
               max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> Iterator[StoreLine]:
    """Every line of the binary file `f` from byte `start` (line number `first_line`), classified.

    A line longer than `max_record_bytes` is read past in 1 MiB chunks and never held whole. A torn tail
    is reported and ends the scan (it is not consumed: a writer may still complete it). If the first line
    of the file looks like plain JSON, that is reported as `plain` and the scan ends."""
    f.seek(start)
    offset, lineno = start, first_line
    for length, raw in bounded_lines(f, max_record_bytes + _FRAMING):
        if raw is None:
            f.seek(-1, os.SEEK_CUR)
            if f.read(1) != b"\n":  # an over-long tail still being written
                yield StoreLine("torn", lineno, offset, length)
                return
            yield StoreLine("too_long", lineno, offset, length)
        elif not raw.endswith(b"\n"):
            yield StoreLine("torn", lineno, offset, length)
            return
        elif raw == b"\n":
            yield StoreLine("blank", lineno, offset, length)
        else:
            payload = decode_line(raw[:-1])
            if payload is not None:
                yield StoreLine("record", lineno, offset, length, payload)
            elif offset == 0 and raw.lstrip().startswith(b"{"):
                yield StoreLine("plain", lineno, offset, length)
                return
            else:
                yield StoreLine("corrupt", lineno, offset, length)
        offset += length
        lineno += 1


def decode_record(payload: bytes) -> dict[str, Any]:
    """The JSON object of an intact record; `BadRecord` for anything else (not JSON, not UTF-8, a list,
    nesting or integers beyond what the decoder accepts)."""
    try:
        rec = json.loads(payload)
    except RecursionError:
        raise BadRecord("record is nested too deeply") from None
    except ValueError as e:  # not JSON or not UTF-8; an integer over the interpreter's digit limit
        raise BadRecord(f"undecodable record ({str(e)[:80]})") from None
    if not isinstance(rec, dict):
        raise BadRecord(f"record is a JSON {type(rec).__name__}, not an object")
    return rec


def tree_from_record(rec: dict[str, Any]) -> TrajectoryTree:
    """The validated tree of a decoded record; `BadRecord` for another schema version or a bad tree."""
    version = rec.get("schema_version")
    if version != SCHEMA_VERSION:
        raise BadRecord(f"record {str(rec.get('id'))[:64]!r} has schema version {str(version)[:16]}, "
                        f"this agentgym reads version {SCHEMA_VERSION}")
    try:
        return TrajectoryTree.model_validate(rec)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise BadRecord(f"record {str(rec.get('id'))[:64]!r} does not match the schema ({e.error_count()} errors; "
                        f"{where + ': ' if where else ''}{first['msg'][:120]})") from None
    except RecursionError:
        raise BadRecord("record is nested too deeply") from None


def encode_record(payload: bytes) -> bytes:
    return b"%d\t%08x\t%s\n" % (len(payload), zlib.crc32(payload), payload)


def decode_line(line: bytes) -> bytes | None:
    """The JSON payload of a complete, intact line (without its newline), else None."""
    parts = line.split(b"\t", 2)
    if len(parts) != 3:
        return None
    length, crc, payload = parts
    try:
        if int(length) != len(payload) or int(crc, 16) != zlib.crc32(payload):
            return None
    except ValueError:
        return None
    return payload


_LEADING_ID = re.compile(rb'^\{"schema_version":\d+,"id":"([^"\\]*)"')


def _record_id(payload: bytes) -> str | None:
    """The rollout id of a record; read from the head of the JSON without parsing the whole tree."""
    m = _LEADING_ID.match(payload)
    if m:
        return m.group(1).decode()
    try:
        value = decode_record(payload).get("id")
    except BadRecord:
        return None
    return value if isinstance(value, str) else None


class TrajectoryStore:
    """Append trees to, and read them back from, one JSONL file."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        self.path = Path(path)
        self.fsync = fsync
        self.max_record_bytes = max_record_bytes
        self._ids: set[str] = set()
        self._scanned = 0  # bytes of the file whose ids are already in self._ids
        self.images = ImageStore.beside(self.path, fsync=fsync)  # screenshots, content-addressed (`agentgym.images`)

    # ---- writing ----------------------------------------------------------------------------------
    def append(self, tree: TrajectoryTree) -> bool:
        """Store `tree` durably. Returns False (and writes nothing) if its id is already stored."""
        return self.append_many([tree]) == 1

    def append_many(self, trees: Iterable[TrajectoryTree]) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        written = 0
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            ids = self._stored_ids()  # re-read under the lock: another writer may have appended
            if self._ends_torn(fd):
                os.write(fd, b"\n")  # isolate a torn tail so the next record starts on its own line
            for tree in trees:
                if tree.id in ids:
                    continue
                if has_inline_images(tree):  # image files first, durably: no line may point to a missing one
                    tree = externalize_tree(tree, self.images)
                payload = tree.model_dump_json().encode()
                if len(payload) > self.max_record_bytes:  # readers would skip it: refuse it now, loudly
                    raise ValueError(f"tree {tree.id} is {len(payload)} bytes as JSON, over the store's "
                                     f"max_record_bytes={self.max_record_bytes}")
                os.write(fd, encode_record(payload))
                ids.add(tree.id)
                written += 1
            if self.fsync and written:
                os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        return written

    def _ends_torn(self, fd: int) -> bool:
        size = os.fstat(fd).st_size
        if size == 0:
            return False
        return os.pread(fd, 1, size - 1) != b"\n"

    def _stored_ids(self) -> set[str]:
        """Ids in the file, scanning only what was appended since the last call (by any writer)."""
        if not self.path.exists() or self.path.stat().st_size < self._scanned:
            self._ids, self._scanned = set(), 0  # file replaced or truncated by someone: rescan
        if not self.path.exists():
            return self._ids
        with open(self.path, "rb") as f:
            for line in scan_lines(f, self._scanned, max_record_bytes=self.max_record_bytes):
                if line.kind in ("torn", "plain"):
                    break  # torn tail: rescanned once a writer isolates it with a newline
                self._scanned = line.offset + line.length
                if line.payload is not None:
                    rollout_id = _record_id(line.payload)
                    if rollout_id is not None:
                        self._ids.add(rollout_id)
        return self._ids

    def __contains__(self, rollout_id: str) -> bool:
        return rollout_id in self._stored_ids()

    # ---- reading ----------------------------------------------------------------------------------
    def lines(self) -> Iterator[StoreLine]:
        """Every line of the file, classified, with its byte offset (see `scan_lines`)."""
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            yield from scan_lines(f, max_record_bytes=self.max_record_bytes)

    def _iter_payload_dicts(self, quiet: bool = False) -> Iterator[tuple[StoreLine, dict[str, Any]]]:
        for line in self.lines():
            if line.kind == "plain":
                raise TrajectoryFileError(f"{self.path} is plain JSONL, not an agentgym trajectory store")
            if line.kind == "record":
                assert line.payload is not None
                try:
                    yield line, decode_record(line.payload)
                except BadRecord as e:
                    if not quiet:
                        warnings.warn(f"{self.path}:{line.line}: {e}; skipped", StoreWarning)
            elif line.kind != "blank" and not quiet:
                warnings.warn(line.problem(str(self.path)), StoreWarning)

    def records(self) -> Iterator[tuple[StoreLine, TrajectoryTree]]:
        """Every readable tree once (the first record with an id wins), in write order, with the line it
        came from. Bad records are skipped with a `StoreWarning`."""
        seen: set[str] = set()
        for line, rec in self._iter_payload_dicts():
            try:
                tree = tree_from_record(rec)
            except BadRecord as e:
                warnings.warn(f"{self.path}:{line.line}: {e}; skipped", StoreWarning)
                continue
            if tree.id in seen:
                continue
            seen.add(tree.id)
            yield line, tree

    def __iter__(self) -> Iterator[TrajectoryTree]:
        return self.read()

    def read(self) -> Iterator[TrajectoryTree]:
        """Every intact record once, in write order. Bad records are skipped with a `StoreWarning`."""
        return (tree for _, tree in self.records())

    def read_all(self) -> list[TrajectoryTree]:
        return list(self.read())

    def __len__(self) -> int:
        return sum(1 for _ in self._iter_payload_dicts(quiet=True))


class MergedStore:
    """Several store files read as one: a run's own store, then one file per Ray rollout worker
    (`agentgym.ray_workers`). Every readable tree once, the first file's record winning for an id; each
    file is read with `TrajectoryStore` (torn tails and bad records skipped with a `StoreWarning`)."""

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]

    @classmethod
    def of_run(cls, run_dir: str | os.PathLike) -> MergedStore:
        """``RUN/trajectories.jsonl`` and the workers' ``RUN/trajectories-w<K>.jsonl`` in worker order."""
        run_dir = Path(run_dir)
        workers = [p for p in run_dir.glob("trajectories-w*.jsonl") if p.stem[len("trajectories-w"):].isdigit()]
        workers.sort(key=lambda p: int(p.stem[len("trajectories-w"):]))
        return cls([run_dir / "trajectories.jsonl", *workers])

    def records(self) -> Iterator[tuple[Path, StoreLine, TrajectoryTree]]:
        seen: set[str] = set()
        for path in self.paths:
            for line, tree in TrajectoryStore(path).records():
                if tree.id not in seen:
                    seen.add(tree.id)
                    yield path, line, tree

    def __iter__(self) -> Iterator[TrajectoryTree]:
        return (tree for _, _, tree in self.records())

    def read_all(self) -> list[TrajectoryTree]:
        return list(self)


def write_trees(path: str | os.PathLike, trees: Iterable[TrajectoryTree]) -> int:
    return TrajectoryStore(path).append_many(trees)


def read_trees(path: str | os.PathLike) -> list[TrajectoryTree]:
    return TrajectoryStore(path).read_all()
