"""Append-only trajectory store: one tree per line, safe against ``kill -9`` mid-write.

Each line is ``<length>\\t<crc32>\\t<json>\\n`` where length and crc32 cover the JSON bytes. A record is
written with a single ``write`` on an ``O_APPEND`` descriptor under an exclusive ``flock``, so concurrent
writers never interleave. A process killed mid-write leaves a torn last line with no newline or a wrong
length or checksum: readers detect and skip it (with a warning), and the next writer starts on a fresh
line, so earlier records are never rewritten and the torn bytes are never decoded as a record.
Rollout ids are idempotency keys: appending a tree whose id is already stored is a no-op.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import warnings
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agentgym.trajectory import SCHEMA_VERSION, TrajectoryTree


class StoreWarning(UserWarning):
    """A record was skipped because it is torn, corrupt or from another schema version."""


class TrajectoryFileError(ValueError):
    """The file is not a trajectory store at all."""


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
        value = json.loads(payload).get("id")
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


class TrajectoryStore:
    """Append trees to, and read them back from, one JSONL file."""

    def __init__(self, path: str | os.PathLike, fsync: bool = True):
        self.path = Path(path)
        self.fsync = fsync
        self._ids: set[str] = set()
        self._scanned = 0  # bytes of the file whose ids are already in self._ids

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
                os.write(fd, encode_record(tree.model_dump_json().encode()))
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
            f.seek(self._scanned)
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # torn tail: rescanned once a writer isolates it with a newline
                self._scanned += len(raw)
                payload = decode_line(raw[:-1])
                if payload is not None:
                    rollout_id = _record_id(payload)
                    if rollout_id is not None:
                        self._ids.add(rollout_id)
        return self._ids

    def __contains__(self, rollout_id: str) -> bool:
        return rollout_id in self._stored_ids()

    # ---- reading ----------------------------------------------------------------------------------
    def _iter_lines(self) -> Iterator[tuple[int, bytes]]:
        if not self.path.exists():
            return
        with open(self.path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                yield lineno, raw

    def _iter_payload_dicts(self, quiet: bool = False) -> Iterator[dict[str, Any]]:
        for lineno, raw in self._iter_lines():
            if not raw.endswith(b"\n"):
                if not quiet:
                    warnings.warn(f"{self.path}:{lineno}: torn last record (no newline) skipped", StoreWarning)
                continue
            if raw == b"\n":
                continue
            payload = decode_line(raw[:-1])
            if payload is None:
                if lineno == 1 and raw.lstrip().startswith(b"{"):
                    raise TrajectoryFileError(f"{self.path} is plain JSONL, not an agentgym trajectory store")
                if not quiet:
                    warnings.warn(f"{self.path}:{lineno}: corrupt record (length/checksum mismatch) skipped", StoreWarning)
                continue
            try:
                yield json.loads(payload)
            except json.JSONDecodeError:
                if not quiet:
                    warnings.warn(f"{self.path}:{lineno}: undecodable record skipped", StoreWarning)

    def __iter__(self) -> Iterator[TrajectoryTree]:
        return self.read()

    def read(self) -> Iterator[TrajectoryTree]:
        """Every intact record once, in write order. Bad records are skipped with a `StoreWarning`."""
        seen: set[str] = set()
        for rec in self._iter_payload_dicts():
            version = rec.get("schema_version")
            if version != SCHEMA_VERSION:
                warnings.warn(f"{self.path}: record {rec.get('id')!r} has schema version {version}, "
                              f"this agentgym reads version {SCHEMA_VERSION}; skipped", StoreWarning)
                continue
            try:
                tree = TrajectoryTree.model_validate(rec)
            except ValidationError as e:
                warnings.warn(f"{self.path}: record {rec.get('id')!r} does not match the schema "
                              f"({e.error_count()} errors); skipped", StoreWarning)
                continue
            if tree.id in seen:
                continue
            seen.add(tree.id)
            yield tree

    def read_all(self) -> list[TrajectoryTree]:
        return list(self.read())

    def __len__(self) -> int:
        return sum(1 for _ in self._iter_payload_dicts(quiet=True))


def write_trees(path: str | os.PathLike, trees: Iterable[TrajectoryTree]) -> int:
    return TrajectoryStore(path).append_many(trees)


def read_trees(path: str | os.PathLike) -> list[TrajectoryTree]:
    return TrajectoryStore(path).read_all()
