"""Replay against the real Calculator-v0 env: re-execution reproduces a stored episode and finds the first
divergence in a tampered file; re-scoring; SFT export with exact tokens."""

from __future__ import annotations

import json
import sys

import pytest

from agentgym import replay as rp
from agentgym.store import TrajectoryStore
from agentgym.trajectory import trajectory_tokens
from viewer_helpers import drive_calculator, rewrite_record


def stored(tmp_path, tree):
    path = tmp_path / "trajectories.jsonl"
    TrajectoryStore(path, fsync=False).append(tree)
    return path


def test_reexecute_reproduces_every_observation(tmp_path, calc_tree):
    tree = TrajectoryStore(stored(tmp_path, calc_tree)).read_all()[0]
    report = rp.reexecute(tree)
    assert report.ok and report.paths == 3 and report.nodes_checked == len(tree.nodes) == 4
    assert tree.nodes[0].observation.text == "<result>\n391\n</result>"


def test_tampered_observation_is_reported_at_the_first_divergence(tmp_path, calc_tree):
    path = stored(tmp_path, calc_tree)

    def edit(rec):
        rec["nodes"][0]["observation"]["text"] = "<result>\n392\n</result>"

    rewrite_record(path, edit)
    tree = TrajectoryStore(path).read_all()[0]  # checksum is valid: the store cannot tell
    report = rp.reexecute(tree)
    assert not report.ok
    first = report.first
    assert (first.node_id, first.field) == (0, "observation.text")
    assert (first.expected, first.got) == ("<result>\n392\n</result>", "<result>\n391\n</result>")
    assert len(report.divergences) == 1  # paths below the diverged node are not reported again
    assert "node 0" in first.describe() and "392" in first.describe()


def test_tampered_action_and_deeper_divergences(tmp_path):
    tree = drive_calculator([["<calculator>17*23</calculator>", "<calculator>2+2</calculator>", "<answer>391</answer>"]])
    path = stored(tmp_path, tree)
    rewrite_record(path, lambda rec: rec["nodes"][1].update(action_text="<calculator>2+3</calculator>"))
    report = rp.reexecute(TrajectoryStore(path).read_all()[0])
    assert (report.first.node_id, report.first.field) == (1, "observation.text")
    assert report.first.expected == "<result>\n4\n</result>" and report.first.got == "<result>\n5\n</result>"
    assert report.nodes_checked == 1  # node 0 matched before the divergence

    rewrite_record(path, lambda rec: rec["nodes"][1].update(action_text="<calculator>2+2</calculator>")
                   or rec["nodes"][2].update(reward=0.0))
    report = rp.reexecute(TrajectoryStore(path).read_all()[0])
    assert (report.first.node_id, report.first.field, report.first.expected, report.first.got) == (2, "reward", 0.0, 1.0)

    rewrite_record(path, lambda rec: rec["initial_observation"].update(text="What is 17*24?"))
    report = rp.reexecute(TrajectoryStore(path).read_all()[0])
    assert report.first.node_id is None and "reset observation" in report.first.describe()


def test_reexecute_unknown_env_is_an_error_not_a_crash(calc_tree):
    calc_tree.env_id = "agentgym/NoSuchEnv-v0"
    report = rp.reexecute(calc_tree)
    assert not report.ok and "NoSuchEnv" in report.errors[0]


def test_rescore_with_the_env_and_with_a_function(calc_tree, tmp_path, monkeypatch):
    scores = rp.rescore([calc_tree])
    assert [(s.leaf_id, s.stored, s.rescored) for s in scores] == [(1, 1.0, 1.0), (2, 0.0, 0.0), (3, 1.0, 1.0)]
    assert not any(s.changed for s in scores)

    module = tmp_path / "my_judge.py"
    module.write_text("def strict(tree, leaf):\n"
                      "    if leaf == 3: raise RuntimeError('judge offline')\n"
                      "    used_tool = any(n.tool_calls for n in tree.path(leaf))\n"
                      "    return tree.leaf_reward(leaf) if used_tool else -1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    scores = rp.rescore([calc_tree], rp.load_scorer("my_judge:strict"))
    assert [(s.rescored, s.error) for s in scores] == [(1.0, None), (0.0, None), (None, "RuntimeError: judge offline")]
    new = rp.apply_scores(calc_tree, scores, "my_judge:strict")
    assert new.meta["rescored"]["by"] == "my_judge:strict" and new.final_rewards == calc_tree.final_rewards
    for bad, match in [("nocolon", "needs 'module:function'"), ("no_such_module_xyz:f", "cannot import"),
                       ("json:nope", "no function")]:
        with pytest.raises(ValueError, match=match):
            rp.load_scorer(bad)
    sys.modules.pop("my_judge", None)


def test_export_sft(calc_tree, tmp_path):
    result = rp.export_sft([calc_tree], tmp_path / "sft")
    assert (result.exported, result.skipped) == (2, 1)
    rows = [json.loads(line) for line in result.messages_path.read_text().splitlines()]
    first = rows[0]["messages"]
    assert first[0]["role"] == "system" and "calculator" in first[0]["content"]
    assert first[1:] == [{"role": "user", "content": "What is 17*23?"},
                         {"role": "assistant",
                          "content": "<calculator>17*23</calculator><result>\n391\n</result><answer>391</answer>"}]
    tokens = [json.loads(line) for line in result.tokens_path.read_text().splitlines()]
    for row in tokens:
        expected = trajectory_tokens(calc_tree, row["leaf_id"])
        assert [(s["input_ids"], s["loss_mask"]) for s in row["segments"]] == [(ids, mask) for ids, mask, _ in expected]
        assert all(len(s["input_ids"]) == len(s["loss_mask"]) for s in row["segments"])
    assert {r["leaf_id"] for r in tokens} == {1, 3}
