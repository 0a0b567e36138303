"""The trajectory store: crash safety, idempotency, token-exactness, bad files, export."""

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

from agentgym.store import StoreWarning, TrajectoryFileError, TrajectoryStore, encode_record
from agentgym.trajectory import Observation, TrajectoryTree, Turn, trajectory_tokens


def make_tree(i: int, size: int = 10) -> TrajectoryTree:
    tree = TrajectoryTree(id=f"rollout-{i:05d}", env_id="test/Env-v0", seed=i, task={"q": i})
    root = tree.add(Turn(id=0, prefix_ids=list(range(size)), action_ids=[i] * size, logprobs=[-0.5] * size,
                         entropies=[1.0] * size, action_text="a" * size, observation=Observation(text="obs")))
    tree.add(Turn(id=0, parent=root.id, prefix_ids=[1, 2], action_ids=[3, 4], logprobs=[-1.0, -2.0],
                  reward=1.0, terminated=True))
    tree.final_rewards[1] = 1.0
    return tree


def test_roundtrip_and_idempotent_ids(tmp_path):
    store = TrajectoryStore(tmp_path / "t.jsonl")
    trees = [make_tree(i) for i in range(5)]
    assert store.append_many(trees) == 5
    assert store.append(trees[2]) is False  # same rollout id: no second copy
    back = store.read_all()
    assert [t.id for t in back] == [t.id for t in trees]
    assert back[3] == trees[3]


def test_torn_tail_is_skipped_and_next_append_starts_clean(tmp_path):
    path = tmp_path / "t.jsonl"
    store = TrajectoryStore(path)
    store.append_many([make_tree(i) for i in range(3)])
    data = path.read_bytes()
    record = encode_record(make_tree(99).model_dump_json().encode())
    for cut in (1, 10, len(record) // 2, len(record) - 1):  # every kind of torn last line
        path.write_bytes(data + record[:cut])
        with pytest.warns(StoreWarning, match="torn"):
            assert [t.id for t in TrajectoryStore(path).read_all()] == [f"rollout-{i:05d}" for i in range(3)]
    path.write_bytes(data + record[: len(record) // 2])
    TrajectoryStore(path).append(make_tree(4))  # resumes after the torn bytes without rewriting them
    assert path.read_bytes().startswith(data + record[: len(record) // 2])
    with pytest.warns(StoreWarning, match="checksum"):  # the torn half, now on its own line, is skipped
        assert [t.id for t in TrajectoryStore(path).read_all()] == [f"rollout-{i:05d}" for i in (0, 1, 2, 4)]


def test_flipped_byte_is_detected_not_decoded(tmp_path):
    path = tmp_path / "t.jsonl"
    TrajectoryStore(path).append_many([make_tree(i) for i in range(3)])
    raw = bytearray(path.read_bytes())
    pos = raw.index(b'"seed":1') + 7
    raw[pos] = ord("7")  # a valid-looking JSON edit: only the checksum catches it
    path.write_bytes(bytes(raw))
    with pytest.warns(StoreWarning, match="checksum"):
        ids = [t.id for t in TrajectoryStore(path).read_all()]
    assert ids == ["rollout-00000", "rollout-00002"]


def test_wrong_schema_version_is_reported(tmp_path):
    path = tmp_path / "t.jsonl"
    tree = make_tree(0)
    payload = json.loads(tree.model_dump_json())
    payload["schema_version"] = 999
    path.write_bytes(encode_record(json.dumps(payload).encode()))
    with pytest.warns(StoreWarning, match="schema version 999"):
        assert TrajectoryStore(path).read_all() == []


def test_plain_jsonl_is_not_a_store(tmp_path):
    path = tmp_path / "plain.jsonl"
    path.write_text('{"a": 1}\n')
    with pytest.raises(TrajectoryFileError, match="not an agentgym trajectory store"):
        TrajectoryStore(path).read_all()


def test_concurrent_writers_never_interleave(tmp_path):
    path = tmp_path / "t.jsonl"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_store import make_tree
        from agentgym.store import TrajectoryStore
        store = TrajectoryStore({str(path)!r}, fsync=False)
        base = int(sys.argv[1])
        for i in range(40):
            store.append(make_tree(base + i, size=2000))
            store.append(make_tree(i, size=2000))  # ids 0..39 are written by every worker: stored once
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(1000 * (w + 1))]) for w in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torn or corrupt line may exist
        ids = [t.id for t in TrajectoryStore(path).read_all()]
    assert len(ids) == len(set(ids)) == 4 * 40 + 40


WRITER = textwrap.dedent("""
    import sys
    from agentgym.store import TrajectoryStore
    from agentgym.trajectory import TrajectoryTree, Turn
    store = TrajectoryStore(sys.argv[1])
    start = int(sys.argv[2])
    for i in range(start, start + 100000):
        tree = TrajectoryTree(id=f"r{i:07d}", seed=i)
        tree.add(Turn(id=0, action_ids=list(range(i % 7, 20000)), logprobs=[-0.25] * (20000 - i % 7)))
        store.append(tree)
        print(tree.id, flush=True)  # printed only after the append returned: a completed record
""")


def test_sigkill_during_appends_50_times(tmp_path):
    """SIGKILL the writer at 50 random moments: completed records read back exactly once, none torn."""
    path = tmp_path / "t.jsonl"
    rng = random.Random(1234)
    completed: list[str] = []
    next_id = 0
    for _ in range(50):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(next_id)],
                                stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline().strip()  # the writer is now inside its append loop
        time.sleep(rng.random() * 0.03)  # a random moment: between, or in the middle of, appends
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        done = [first] + out.split()
        completed += done
        next_id += len(done) + 1  # the id being written when killed is never reused
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        trees = TrajectoryStore(path).read_all()
    ids = [t.id for t in trees]
    assert len(ids) == len(set(ids))
    assert set(completed) <= set(ids)  # every completed record survived
    for t in trees:  # and nothing read back is a partial record
        i = int(t.id[1:])
        assert t.nodes[0].action_ids == list(range(i % 7, 20000))
    assert len(completed) >= 50


def test_store_keeps_sampled_ids_where_retokenising_differs(tmp_path, tokenizer):
    # A policy may sample "hel" + "lo" as two pieces; decoding and re-tokenising gives different ids.
    sampled = tokenizer.encode("hel", add_special_tokens=False) + tokenizer.encode("lo world", add_special_tokens=False)
    text = tokenizer.decode(sampled)
    retokenised = tokenizer.encode(text, add_special_tokens=False)
    assert retokenised != sampled, "the premise of the test: re-tokenising must change the ids"
    tree = TrajectoryTree()
    tree.add(Turn(id=0, prefix_ids=[1], action_ids=sampled, logprobs=[-1.0] * len(sampled), action_text=text))
    TrajectoryStore(tmp_path / "t.jsonl").append(tree)
    back = TrajectoryStore(tmp_path / "t.jsonl").read_all()[0]
    assert back.nodes[0].action_ids == sampled
    ids, mask, _ = trajectory_tokens(back, 0)[0]
    assert ids == [1] + sampled and mask == [0] + [1] * len(sampled)


def test_export_parquet_and_datasets(tmp_path):
    pytest.importorskip("pyarrow")
    from agentgym.export import to_hf_dataset, to_parquet

    trees = [make_tree(i) for i in range(3)]
    path = to_parquet(trees, tmp_path / "t.parquet")
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    assert table.num_rows == 3 and table.column("reward").to_pylist() == [1.0] * 3
    ds = to_hf_dataset(trees)
    assert len(ds) == 3 and ds[0]["input_ids"][:10] == list(range(10)) and ds[0]["loss_mask"][10] == 1
