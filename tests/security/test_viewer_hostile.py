"""Issue 9 item 6 (viewer) and issue 11 item 8: the viewer reads stores with the store's own reader, its
fast list path agrees with that reader on hostile files (torn tails included), bad trees are reported
rather than hanging a request, and metrics beyond the float range do not stop it from starting."""

import http.client
import json
import warnings

import pytest
from hostile_records import hostile_lines, layout, trees, write_hostile_store

from agentgym.store import StoreWarning, TrajectoryStore, encode_record
from agentgym.viewer.index import RunIndex
from agentgym.viewer.server import ViewerServer


def get(server, path):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # a hang fails the test
    conn.request("GET", path, headers={"Host": f"127.0.0.1:{server.port}"})
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body)


def reader_view(path, max_record_bytes=None):
    kwargs = {"max_record_bytes": max_record_bytes} if max_record_bytes else {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = [(line.offset, line.length, line.line, tree.id) for line, tree in TrajectoryStore(path, **kwargs).records()]
    return rows, [str(w.message) for w in caught if issubclass(w.category, StoreWarning)]


def index_view(path, **kwargs):
    index = RunIndex(path, search=False, **kwargs)
    rows = [(s.offset, s.length, s.line, s.id) for s in index.summaries]
    return rows, index.messages


def test_the_fast_list_agrees_with_the_store_reader_on_hostile_files(tmp_path):
    good = trees(5)
    path = tmp_path / "trajectories.jsonl"
    names = write_hostile_store(path, good)
    with open(path, "ab") as f:  # isolate the torn tail, then an over-long line and one more good record
        f.write(b"\n" + b"y" * (3 << 20) + b"\n" + encode_record(trees(6)[5].model_dump_json().encode()))
        f.write(encode_record(good[4].model_copy(update={"id": "torn2"}).model_dump_json().encode())[:-9])
    reader_rows, reader_messages = reader_view(path, 1 << 20)
    index_rows, index_messages = index_view(path, max_record_bytes=1 << 20)
    assert index_rows == reader_rows
    assert [r[3] for r in reader_rows] == [t.id for t in good] + [trees(6)[5].id]
    assert len(index_messages) == len(reader_messages) == len(names) + 4  # + corrupt, isolated torn, over-long, torn
    assert sum("torn" in m for m in index_messages) == 1  # the isolated first tail is now a corrupt line
    assert sum("over the size limit" in m for m in index_messages) == 1


def test_the_fast_list_agrees_with_the_reader_when_the_tail_is_completed(tmp_path):
    good = trees(3)
    path = tmp_path / "trajectories.jsonl"
    line = encode_record(good[2].model_dump_json().encode())
    path.write_bytes(b"".join(encode_record(t.model_dump_json().encode()) for t in good[:2]) + line[:100])
    index = RunIndex(path, search=False)
    assert len(index.summaries) == 2 and any("torn" in m for m in index.messages)
    with open(path, "ab") as f:
        f.write(line[100:])
    assert index.refresh() == 1
    assert [(s.offset, s.id) for s in index.summaries] == [(r[0], r[3]) for r in reader_view(path)[0]]


@pytest.fixture
def hostile_run(tmp_path):
    good = trees(3)
    path = tmp_path / "trajectories.jsonl"
    write_hostile_store(path, good)
    (tmp_path / "metrics.jsonl").write_text(
        '{"step": 1, "reward": 0.5, "loss": ' + "9" * 400 + '}\n{"step": 2, "reward": 1e999, "x": -1e999}\n'
        '{"step": 3, "reward": ' + "1" * 5000 + '}\n' + "[" * 100_000 + "\n")
    with ViewerServer(tmp_path) as server:
        yield server, good


def test_a_cyclic_tree_is_reported_not_hung(hostile_run):
    server, good = hostile_run
    status, run = get(server, "/api/run")
    assert status == 200 and run["trees"] == len(good)
    text = "\n".join(run["messages"])
    assert "cycle" in text and "outside" in text and "not an object" in text
    status, listing = get(server, "/api/trees")
    assert [item["id"] for item in listing["items"]] == [t.id for t in good]
    for n in range(len(good)):
        status, tree = get(server, f"/api/tree/{n}")
        assert status == 200, tree


def test_metrics_beyond_the_float_range_do_not_stop_the_viewer(hostile_run):
    server, _ = hostile_run
    status, metrics = get(server, "/api/metrics")
    assert status == 200
    assert [x for x, _ in metrics["series"]["reward"]] == [1.0]  # the finite one only
    assert "loss" not in metrics["series"]
    assert len(metrics["messages"]) == 2  # the 5,000-digit integer and the deep nesting


def test_a_tree_that_passes_the_list_but_not_the_schema_is_an_error_on_open(tmp_path):
    """The list reads only what it shows; opening a tree validates all of it and answers an error."""
    good = trees(2)
    rec = json.loads(good[1].model_dump_json())
    rec["nodes"][0]["reward"] = "lots"
    (tmp_path / "trajectories.jsonl").write_bytes(encode_record(good[0].model_dump_json().encode())
                                                  + encode_record(layout(rec)))
    with ViewerServer(tmp_path) as server:
        status, body = get(server, "/api/tree/1")
        assert status == 422 and "reward" in body["error"]
        assert get(server, "/api/tree/0")[0] == 200


def test_a_non_finite_reward_does_not_break_the_list(tmp_path):
    tree = trees(1)[0]
    rec = json.loads(tree.model_dump_json())
    leaf = next(iter(rec["final_rewards"]))
    payload = layout(rec).replace(f'"final_rewards":{{"{leaf}":'.encode(), f'"final_rewards":{{"{leaf}":1e999,"x":'.encode(), 1)
    rec2 = json.loads(payload)
    rec2["final_rewards"].pop("x")
    (tmp_path / "trajectories.jsonl").write_bytes(encode_record(layout(rec2)))
    with ViewerServer(tmp_path) as server:
        assert get(server, "/api/trees")[0] == 200
        assert get(server, "/api/tree/0")[0] == 200


def test_cycle_in_a_record_without_the_writer_layout(tmp_path):
    tree = trees(1)[0]
    line = hostile_lines(tree)["reordered cycle"]
    (tmp_path / "trajectories.jsonl").write_bytes(line + encode_record(trees(2)[1].model_dump_json().encode()))
    rows, messages = index_view(tmp_path / "trajectories.jsonl")
    assert len(rows) == 1 and any("cycle" in m for m in messages)
    assert rows == [r for r in reader_view(tmp_path / "trajectories.jsonl")[0]]
