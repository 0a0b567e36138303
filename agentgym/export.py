"""Export trajectory trees to Parquet or a Hugging Face `datasets.Dataset`: one row per trajectory (leaf).

Rows carry the exact token ids and loss mask of the path (so SFT or offline RL can train without
re-tokenising), the readable turns, rewards, and where the path branched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from agentgym.trajectory import TrajectoryTree, trajectory_tokens


def trajectory_rows(trees: Iterable[TrajectoryTree]) -> list[dict[str, Any]]:
    rows = []
    for tree in trees:
        for leaf in tree.leaves():
            path = tree.path(leaf)
            segments = trajectory_tokens(tree, leaf)
            ids, mask = segments[-1][0], segments[-1][1]
            rows.append({
                "tree_id": tree.id,
                "leaf_id": leaf,
                "env_id": tree.env_id,
                "seed": tree.seed,
                "step": tree.step,
                "task": json.dumps(tree.task, default=str),
                "reward": tree.leaf_reward(leaf),
                "turn_rewards": [n.reward for n in path],
                "num_turns": len(path),
                "num_tool_calls": sum(len(n.tool_calls) for n in path),
                "branch_nodes": [n.id for n in path if n.branch_entropy is not None],
                "actions": [n.action_text for n in path],
                "observations": [n.observation.text if n.observation else "" for n in path],
                "input_ids": ids,
                "loss_mask": mask,
                "num_segments": len(segments),
                "policy_version": path[-1].policy_version,
            })
    return rows


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
