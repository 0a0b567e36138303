"""Checksummed but hostile store lines, shared by the store and viewer security tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

from agentgym.store import encode_record
from agentgym.trajectory import TrajectoryTree
from agentgym.viewer.synthetic import synthetic_tree


def trees(n: int, seed: int = 0) -> list[TrajectoryTree]:
    rng = random.Random(seed)
    return [synthetic_tree(i, random.Random(rng.getrandbits(32))) for i in range(n)]


def layout(rec: dict) -> bytes:
    """JSON in the writer's own layout (compact, field order kept), so the viewer's fast path reads it."""
    return json.dumps(rec, separators=(",", ":")).encode()


def with_parents(tree: TrajectoryTree, parents: dict[int, int | None]) -> bytes:
    rec = json.loads(tree.model_dump_json())
    for node_id, parent in parents.items():
        rec["nodes"][node_id]["parent"] = parent
    return encode_record(layout(rec))


def hostile_lines(tree: TrajectoryTree) -> dict[str, bytes]:
    """Name -> one checksummed line that no reader may accept (nor choke on)."""
    assert len(tree.nodes) >= 3
    return {
        "json list": encode_record(b"[1, 2, 3]"),
        "nested brackets": encode_record(b"[" * 100_000 + b"]" * 100_000),
        "nested objects": encode_record(b'{"a":' * 100_000 + b"1" + b"}" * 100_000),
        "5000-digit integer": encode_record(b'{"schema_version":1,"id":"big","seed":' + b"7" * 5000 + b"}"),
        "not utf-8": encode_record(b'{"id":"\xff\xfe"}'),
        "cycle": with_parents(tree.model_copy(update={"id": "cycle"}), {0: 1, 1: 0}),
        "self parent": with_parents(tree.model_copy(update={"id": "self"}), {2: 2}),
        "parent out of range": with_parents(tree.model_copy(update={"id": "far"}), {1: 10**6}),
        "negative parent": with_parents(tree.model_copy(update={"id": "neg"}), {1: -1}),
        "reordered cycle": encode_record(json.dumps(dict(reversed(list(
            json.loads(with_parents(tree.model_copy(update={"id": "rcycle"}), {0: 2, 2: 0}).split(b"\t", 2)[2])
            .items())))).encode()),
    }


def write_hostile_store(path: Path, good: list[TrajectoryTree], torn_tail: bool = True) -> list[str]:
    """good[0], every hostile line, good[1:]... and a torn tail; returns the hostile names."""
    lines = hostile_lines(good[0])
    with open(path, "wb") as f:
        f.write(encode_record(good[0].model_dump_json().encode()))
        for line in lines.values():
            f.write(line)
        f.write(b"12\t00000000\t{\"corrupt\":1}\n")  # wrong length and checksum
        for tree in good[1:]:
            f.write(encode_record(tree.model_dump_json().encode()))
        f.write(encode_record(good[0].model_dump_json().encode()))  # a duplicate id: the first one wins
        if torn_tail:
            f.write(encode_record(good[-1].model_copy(update={"id": "torn"}).model_dump_json().encode())[:-40])
    return list(lines)
