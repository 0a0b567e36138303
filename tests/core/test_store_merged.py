"""MergedStore: a run's own store and its Ray workers' files read as one (first id wins, torn tails skipped)."""

import pytest

from agentgym.store import MergedStore, StoreWarning, TrajectoryStore
from agentgym.trajectory import TrajectoryTree, Turn


def tree(tree_id: str, reward: float) -> TrajectoryTree:
    t = TrajectoryTree(id=tree_id, env_id="test/Env-v0")
    t.add(Turn(id=0, prefix_ids=[1, 2], action_ids=[3], logprobs=[-0.5], reward=reward, terminated=True))
    t.final_rewards[0] = reward
    return t


def test_run_files_merge_first_id_wins_in_worker_order(tmp_path):
    TrajectoryStore(tmp_path / "trajectories.jsonl").append_many([tree("a", 1.0)])
    TrajectoryStore(tmp_path / "trajectories-w10.jsonl").append_many([tree("d", 0.0)])
    TrajectoryStore(tmp_path / "trajectories-w2.jsonl").append_many([tree("a", 0.0), tree("b", 0.0)])
    TrajectoryStore(tmp_path / "trajectories-w0.jsonl").append_many([tree("c", 0.0), tree("b", 1.0)])
    (tmp_path / "trajectories-wx.jsonl").write_text("not a worker file\n")  # not matched: not read
    with open(tmp_path / "trajectories-w2.jsonl", "ab") as f:
        f.write(b"99\t00000000\t{\"schema_ver")  # a worker killed mid-write
    with pytest.warns(StoreWarning, match="torn"):
        got = [(t.id, t.final_rewards[0]) for t in MergedStore.of_run(tmp_path)]
    # the run's own file first, then workers 0, 2, 10 (numeric order); an id seen once is not read again
    assert got == [("a", 1.0), ("c", 0.0), ("b", 1.0), ("d", 0.0)]


def test_a_ray_run_without_its_own_file_reads_the_workers(tmp_path):
    TrajectoryStore(tmp_path / "trajectories-w1.jsonl").append_many([tree("x", 1.0)])
    assert [t.id for t in MergedStore.of_run(tmp_path).read_all()] == ["x"]
    assert MergedStore.of_run(tmp_path / "missing").read_all() == []
