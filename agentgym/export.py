"""Export trajectory trees to Parquet or a Hugging Face `datasets.Dataset`: one row per training segment of
every trajectory (leaf), so each row is one training sequence.

A path is cut into segments by `agentgym.trajectory.path_segments` (the segmentation training uses): one
segment per path, or one per round for envs that rebuild their context. Rows carry the segment's exact
token ids, loss mask and sampling log-probs (so SFT or offline RL can train without re-tokenising), its
index (``segment`` of ``num_segments``), and the trajectory's readable turns, rewards and branch points,
repeated on each of its segments. `segments_from_rows` rebuilds each path's segments from the rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentgym.trajectory import TrajectoryTree, path_segments


def trajectory_rows(trees: Iterable[TrajectoryTree]) -> list[dict[str, Any]]:
    rows = []
    for tree in trees:
        for leaf in tree.leaves():
            path = tree.path(leaf)
            segments = path_segments(tree, leaf)
            trajectory = {
                "tree_id": tree.id,
                "leaf_id": leaf,
                "env_id": tree.env_id,
                "seed": tree.seed,
                "step": tree.step,
                "task": json.dumps(tree.task, default=str),
                "reward": tree.leaf_reward(leaf),
                "turn_rewards": [n.reward for n in path],
                "credit_rewards": [n.credit_reward for n in path],
                "advantages": [n.advantage for n in path],
                "num_turns": len(path),
                "num_tool_calls": sum(len(n.tool_calls) for n in path),
                "branch_nodes": [n.id for n in path if n.branch_entropy is not None],
                "actions": [n.action_text for n in path],
                "observations": [n.observation.text if n.observation else "" for n in path],
                "num_segments": len(segments),
                "policy_version": path[-1].policy_version,
            }
            for i, seg in enumerate(segments):
                rows.append({**trajectory, "segment": i, "input_ids": seg.input_ids, "loss_mask": seg.loss_mask,
                             "sampling_logprobs": seg.logprobs})
    return rows


def segments_from_rows(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """(tree id, leaf id) -> that trajectory's segments in order, from exported rows."""
    out: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["tree_id"], r["leaf_id"], r["segment"])):
        out.setdefault((row["tree_id"], row["leaf_id"]), []).append(
            {k: row[k] for k in ("input_ids", "loss_mask", "sampling_logprobs")})
    return out


def to_parquet(trees: Iterable[TrajectoryTree], path: str | Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    pq.write_table(pa.Table.from_pylist(trajectory_rows(trees)), tmp)
    tmp.replace(path)  # never leave a half-written Parquet file under the final name
    return path


def to_hf_dataset(trees: Iterable[TrajectoryTree]) -> Any:
    from datasets import Dataset

    return Dataset.from_list(trajectory_rows(trees))
