"""Issue 9 item 6 (store): checksummed records that are not trees, over-long lines and bad tree shapes are
skipped with a StoreWarning, and every good record after them is read."""

import tracemalloc
import warnings

import pytest
from hostile_records import hostile_lines, trees, write_hostile_store

from agentgym.store import StoreWarning, TrajectoryStore, encode_record
from agentgym.trajectory import TrajectoryTree


def read_with_warnings(store):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = store.read_all()
    return got, [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]


def test_bad_but_checksummed_records_are_skipped_and_later_records_kept(tmp_path):
    good = trees(4)
    names = write_hostile_store(tmp_path / "t.jsonl", good)
    got, messages = read_with_warnings(TrajectoryStore(tmp_path / "t.jsonl"))
    assert [t.id for t in got] == [t.id for t in good]
    assert got == good
    # one warning per hostile line, the corrupt one and the torn tail
    assert len(messages) == len(names) + 2, messages
    assert any("cycle" in m for m in messages) and any("outside" in m for m in messages)
    assert any("torn" in m for m in messages) and any("not an object" in m for m in messages)
    assert all(len(m) < 400 for m in messages)  # a 100,000-bracket line is not echoed back
    len(TrajectoryStore(tmp_path / "t.jsonl"))  # counting decodable records must not raise either


@pytest.mark.parametrize("name", list(hostile_lines(trees(1)[0])))
def test_each_hostile_record_alone(tmp_path, name):
    good = trees(2)
    line = hostile_lines(good[0])[name]
    path = tmp_path / "t.jsonl"
    path.write_bytes(encode_record(good[0].model_dump_json().encode()) + line
                     + encode_record(good[1].model_dump_json().encode()))
    store = TrajectoryStore(path)
    got, messages = read_with_warnings(store)
    assert [t.id for t in got] == [good[0].id, good[1].id]
    assert len(messages) == 1
    assert good[1].id in store and len(store) >= 2  # the writer's id scan survives it too
    store.append(trees(3, seed=5)[2])
    assert len(store.read_all()) == 3


def test_an_over_long_line_is_streamed_past_not_held(tmp_path):
    good = trees(2)
    path = tmp_path / "t.jsonl"
    with open(path, "wb") as f:
        f.write(encode_record(good[0].model_dump_json().encode()))
        f.write(b"x" * (64 << 20) + b"\n")  # 64 MB on one line
        f.write(encode_record(good[1].model_dump_json().encode()))
    store = TrajectoryStore(path, max_record_bytes=1 << 20)
    tracemalloc.start()
    try:
        got, messages = read_with_warnings(store)
        assert good[1].id in store
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [t.id for t in got] == [good[0].id, good[1].id]
    assert len(messages) == 1 and "over the size limit" in messages[0]
    assert peak < 16 << 20, f"peak {peak >> 20} MB"


def test_a_huge_file_without_newlines_is_not_read_whole(tmp_path):
    path = tmp_path / "t.jsonl"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GB of zero bytes, no newline (sparse: cheap to make)
    store = TrajectoryStore(path, max_record_bytes=1 << 20)
    tracemalloc.start()
    try:
        got, messages = read_with_warnings(store)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == [] and len(messages) == 1 and "torn" in messages[0]
    assert peak < 16 << 20, f"peak {peak >> 20} MB"


def test_the_writer_refuses_a_record_over_the_limit(tmp_path):
    store = TrajectoryStore(tmp_path / "t.jsonl", max_record_bytes=1000)
    tree = trees(1)[0]
    with pytest.raises(ValueError, match="max_record_bytes"):
        store.append(tree)


@pytest.mark.parametrize("parents, match", [
    ({0: 1, 1: 0}, "cycle"), ({1: 1}, "cycle"), ({1: 99}, "outside"), ({1: -1}, "outside")])
def test_tree_structure_is_validated_on_load(parents, match):
    rec = trees(1)[0].model_dump()
    for node_id, parent in parents.items():
        rec["nodes"][node_id]["parent"] = parent
    with pytest.raises(ValueError, match=match):
        TrajectoryTree.model_validate(rec)
    rec = trees(1)[0].model_dump()
    rec["nodes"][1]["id"] = 5
    with pytest.raises(ValueError, match="has id 5"):
        TrajectoryTree.model_validate(rec)
