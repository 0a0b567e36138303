"""The run index: summaries equal what the full trees say, filters and search select the right trees, and
bad input is reported while everything readable is still listed."""

from __future__ import annotations

import json

import pytest

from agentgym.store import TrajectoryStore, encode_record
from agentgym.viewer.index import RunIndex
from agentgym.viewer.scan import scan_record, summarise_dict
from agentgym.viewer.metrics import read_metrics
from viewer_helpers import small_trees, write_bad_run


def expected_row(tree, approx: bool = True) -> dict:
    leaves = tree.leaves()
    rewards = [tree.leaf_reward(i) for i in leaves]
    return {"id": tree.id, "env_id": tree.env_id, "trajectories": len(leaves), "turns": len(tree.nodes),
            "max_turns": max(n.depth for n in tree.nodes) + 1, "tokens": sum(len(n.action_ids) for n in tree.nodes),
            "branches": len(tree.branch_points()),
            "mean_reward": (pytest.approx if approx else float)(sum(rewards) / len(rewards)),
            "successes": sum(r > 0 for r in rewards), "step": tree.step,
            "errors": sum(1 for n in tree.nodes for c in n.tool_calls if c.error_type),
            "tool_calls": sum(len(n.tool_calls) for n in tree.nodes),
            "has_memory": any(n.observation and n.observation.memory for n in tree.nodes),
            "has_images": any(n.observation and n.observation.images for n in tree.nodes)}


def test_summaries_match_the_trees(run_1k, trees_1k):
    index = RunIndex(run_1k)
    assert len(index.summaries) == 1000 and index.messages == []
    for summary, tree in zip(index.summaries, trees_1k):
        row = summary.row()
        assert {k: row[k] for k in expected_row(tree)} == expected_row(tree)
    assert any(s.has_memory for s in index.summaries) and any(s.has_images for s in index.summaries)


def test_fast_scan_and_full_parse_agree_and_other_layouts_are_read(tmp_path):
    trees = small_trees(20, seed=5)
    for tree in trees:
        text = tree.model_dump_json()
        assert scan_record(text)[1] == summarise_dict(json.loads(text))[0]
    # another writer: same data, keys sorted -> the scanner declines, the full parse reads it
    path = tmp_path / "sorted.jsonl"
    with open(path, "wb") as f:
        for tree in trees:
            f.write(encode_record(json.dumps(tree.model_dump(mode="json"), sort_keys=True).encode()))
    assert scan_record(json.dumps(trees[0].model_dump(mode="json"), sort_keys=True)) is None
    index = RunIndex(path)
    assert [s.id for s in index.summaries] == [t.id for t in trees]
    assert [s.branches for s in index.summaries] == [len(t.branch_points()) for t in trees]


def test_filters_and_search(run_1k, trees_1k):
    index = RunIndex(run_1k)
    rows = {t.id: expected_row(t, approx=False) for t in trees_1k}

    def ids(**kw):
        return {s.id for s in index.query(**kw)}

    assert ids(env="agentgym/Phone-v0") == {t.id for t in trees_1k if t.env_id == "agentgym/Phone-v0"}
    assert ids(rmin=0.5, rmax=0.8) == {i for i, r in rows.items() if 0.5 <= r["mean_reward"] <= 0.8}
    assert ids(lmin=4) == {i for i, r in rows.items() if r["max_turns"] >= 4}
    assert ids(errors="yes") == {i for i, r in rows.items() if r["errors"]}
    assert ids(errors="no") == {i for i, r in rows.items() if not r["errors"]}
    assert ids(smin=3, smax=5) == {i for i, r in rows.items() if 3 <= r["step"] <= 5}
    assert ids(branched="yes") == {i for i, r in rows.items() if r["branches"]}
    wanted = {t.id for t in trees_1k if any("division by zero" in (n.observation.text.lower() if n.observation else "")
                                            for n in t.nodes)}
    assert wanted and ids(q="Division BY zero") == wanted
    assert ids(q="What is 12*68?") == {t.id for t in trees_1k if t.task.get("question") == "What is 12*68?"}
    combined = index.query(env="agentgym/Calculator-v0", errors="yes", sort="mean_reward:desc")
    assert [s.mean_reward for s in combined] == sorted((s.mean_reward for s in combined), reverse=True)
    assert index.load_tree(combined[0].n).id == combined[0].id


def test_bad_input_is_reported_and_the_rest_is_listed(tmp_path):
    run = write_bad_run(tmp_path / "bad")
    index = RunIndex(run)
    assert len(index.summaries) == 4  # the four intact records of trajectories.jsonl
    text = "\n".join(index.messages)
    for expected in ("torn last record", "schema version 99", "corrupt record", "notes.jsonl: not a trajectory store",
                     "eval_empty.jsonl: empty file"):
        assert expected in text, expected
    assert {s["name"]: s["trees"] for s in index.overview()["sources"]} == {
        "trajectories.jsonl": 4, "eval_empty.jsonl": 0, "notes.jsonl": 0}
    metrics = read_metrics(run)
    assert metrics.series["reward"] == [(0.0, 0.1), (1.0, 0.2)] and "not JSON" in metrics.messages[0]


def test_missing_path_and_single_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        RunIndex(tmp_path / "nope")
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert RunIndex(empty).summaries == [] and "empty file" in RunIndex(empty).messages[0]
    (tmp_path / "no-stores").mkdir()
    assert "no trajectory stores" in RunIndex(tmp_path / "no-stores").messages[0]
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"a": 1}\n')
    assert "not a trajectory store" in RunIndex(plain).messages[0]


def test_several_stores_in_a_run_directory(tmp_path):
    TrajectoryStore(tmp_path / "trajectories.jsonl", fsync=False).append_many(small_trees(3, seed=1))
    TrajectoryStore(tmp_path / "eval_before.jsonl", fsync=False).append_many(small_trees(2, seed=2))
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "reward": 1.0}\n')
    index = RunIndex(tmp_path)
    assert [s.source for s in index.summaries] == ["trajectories.jsonl"] * 3 + ["eval_before.jsonl"] * 2
    assert [s.n for s in index.summaries] == list(range(5))
    assert {s.id for s in index.query(source="eval_before.jsonl")} == {s.id for s in index.summaries[3:]}
    assert index.load_tree(4).id == index.summaries[4].id


def test_refresh_reads_what_a_live_run_appends(tmp_path):
    trees = small_trees(6, seed=9)
    path = tmp_path / "trajectories.jsonl"
    TrajectoryStore(path, fsync=False).append_many(trees[:3])
    record = encode_record(trees[3].model_dump_json().encode())
    with open(path, "ab") as f:
        f.write(record[:300])  # a writer is in the middle of this record
    index = RunIndex(tmp_path)
    assert len(index.summaries) == 3 and any("torn last record" in m for m in index.messages)
    with open(path, "ab") as f:
        f.write(record[300:])  # ... and finishes it
    TrajectoryStore(path, fsync=False).append_many(trees[4:])
    assert index.refresh() == 3 and index.refresh() == 0
    assert [s.id for s in index.summaries] == [t.id for t in trees] and index.messages == []
    assert index.summaries[5].id in {s.id for s in index.query(q=trees[5].nodes[0].action_text[-30:])}
    assert index.load_tree(5).id == trees[5].id
