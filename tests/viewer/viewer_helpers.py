"""Helpers for the viewer, replay and report tests: synthetic trees, a real calculator episode tree, and
writers of deliberately broken store files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import agentgym
from agentgym.env import observation_from
from agentgym.store import TrajectoryStore, encode_record
from agentgym.trajectory import TrajectoryTree, Turn
from agentgym.viewer.synthetic import synthetic_tree

CALC = "agentgym/Calculator-v0"
CALC_TASK = {"kind": "multiply", "question": "What is 17*23?", "answer": 391, "expression": "17*23"}


def small_trees(n: int, seed: int = 0) -> list[TrajectoryTree]:
    rng = random.Random(seed)
    return [synthetic_tree(i, random.Random(rng.getrandbits(32))) for i in range(n)]


def drive_calculator(paths: list[list[str]], seed: int = 7, task: dict | None = None) -> TrajectoryTree:
    """A tree made by actually stepping Calculator-v0 with scripted actions. `paths[0]` is the first
    episode; each later path shares the first `len(path) - 1` actions of paths[0] and re-samples its last
    action there, as an ARPO branch would (a path of one action is a new episode)."""
    task = task or CALC_TASK
    env = agentgym.make(CALC)
    obs, info = env.reset(seed=seed, options={"task": task})
    tree = TrajectoryTree(env_id=CALC, seed=seed, task=task, initial_observation=observation_from(obs, info))
    first_ids: list[int] = []
    for k, actions in enumerate(paths):
        env.reset(seed=seed, options={"task": task})
        parent = None
        for depth, action in enumerate(actions):
            shared = k > 0 and depth < len(actions) - 1
            if shared:
                env.step(action)
                parent = first_ids[depth]
                continue
            o, r, term, trunc, inf = env.step(action)
            n_tokens = len(action) // 3  # stand-in ids: re-execution compares text, not tokens
            node = tree.add(Turn(id=0, parent=parent, action_text=action, action_ids=list(range(100, 100 + n_tokens)),
                                 entropies=[0.1] * n_tokens, logprobs=[-0.1] * n_tokens,
                                 observation=observation_from(o, inf), reward=r, terminated=term, truncated=trunc,
                                 tool_calls=inf.get("tool_calls", [])))
            if k > 0 and depth == len(actions) - 1 and depth > 0:
                node.branch_entropy, node.branched_from = 1.5, first_ids[depth]
            if k == 0:
                first_ids.append(node.id)
            parent = node.id
        tree.final_rewards[parent] = sum(n.reward for n in tree.path(parent))
    env.close()
    return tree


def rewrite_record(path: Path, edit) -> None:
    """Apply `edit(dict)` to the first record of a store and re-encode it with a valid checksum: a
    tampered file the store itself cannot detect."""
    lines = path.read_bytes().splitlines(keepends=True)
    payload = lines[0].split(b"\t", 2)[2].rstrip(b"\n")
    rec = json.loads(payload)
    edit(rec)
    lines[0] = encode_record(json.dumps(rec, separators=(",", ":")).encode())
    path.write_bytes(b"".join(lines))


def write_bad_run(root: Path) -> Path:
    """A run directory with one good store holding a torn last line, a wrong-version record and a corrupt
    record; a plain JSONL file that is not a store; an empty store; and metrics with a bad line."""
    root.mkdir(parents=True, exist_ok=True)
    trees = small_trees(6, seed=3)
    store = root / "trajectories.jsonl"
    TrajectoryStore(store, fsync=False).append_many(trees[:4])
    old = trees[4].model_dump(mode="json")
    old["schema_version"] = 99
    with open(store, "ab") as f:
        f.write(encode_record(json.dumps(old).encode()))
        f.write(b"12\tdeadbeef\t{\"broken\":1}\n")  # corrupt: wrong length and checksum
        f.write(encode_record(trees[5].model_dump_json().encode())[:200])  # torn: killed mid-write
    (root / "notes.jsonl").write_text('{"this": "is not a store"}\n')
    (root / "eval_empty.jsonl").write_bytes(b"")
    (root / "metrics.jsonl").write_text('{"step": 0, "reward": 0.1}\nnot json\n{"step": 1, "reward": 0.2}\n')
    return root
