"""Evaluation on held-out tasks: greedy by default, fixed seeds, figures printed with the number of tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from agentgym.config import Config
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.store import TrajectoryStore
from agentgym.stats import rollout_metrics
from agentgym.trajectory import TrajectoryTree


def evaluate(policy: Any, env_factory: Any, cfg: Config, tag: str, run_dir: Path | None = None,
             progress: bool = True) -> tuple[list[TrajectoryTree], dict[str, float]]:
    e = cfg.eval
    if e.temperature > 0:  # sampled evaluation: the same weights give the same episodes (paired comparisons)
        import torch

        torch.manual_seed(cfg.seed * 1_000_003 + e.seed_offset)
    engine = RolloutEngine(policy, env_factory, env_id=cfg.env.id, progress=progress and cfg.logging.progress,
                           config=RolloutConfig(temperature=e.temperature, group_size=e.samples,
                                                 max_batch_size=cfg.rollout.max_batch_size,
                                                 batch_wait_s=cfg.rollout.batch_wait_s,
                                                 deterministic=cfg.rollout.deterministic))
    trees = engine.run([e.seed_offset + i for i in range(e.tasks)])
    for i, tree in enumerate(trees):
        tree.id = f"eval-{tag}-{i:05d}"
        tree.meta["eval"] = tag
    if run_dir is not None:
        TrajectoryStore(Path(run_dir) / f"eval_{tag}.jsonl").append_many(trees)
    metrics = rollout_metrics(trees)
    metrics["tasks"] = float(len(trees))
    metrics["wall_s"] = engine.stats["wall_s"]
    return trees, metrics


def comparison_table(rows: dict[str, dict[str, float]], title: str) -> Table:
    table = Table("model", "tasks", "accuracy", "mean reward", "tool calls / episode", "turns / episode", title=title)
    for name, m in rows.items():
        table.add_row(name, f"{m['tasks']:.0f}", f"{m['accuracy']:.1%}", f"{m['reward']:.3f}",
                      f"{m['tool_calls']:.2f}", f"{m['turns']:.2f}")
    return table
