"""Run logging: metrics JSONL (what `agentgym view` and `agentgym report` read), TensorBoard, optional
Weights & Biases (offline-capable, only if installed), and a rich summary line per step."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rich.console import Console


console = Console()


class RunLogger:
    def __init__(self, run_dir: str | Path, tensorboard: bool = True, wandb: bool = False, quiet: bool = False,
                 config: dict[str, Any] | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.quiet = quiet
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / "tensorboard"))
        self.wandb = None
        if wandb:
            try:
                import wandb as wandb_lib
            except ImportError:
                console.print("[yellow]logging.wandb is on but wandb is not installed; skipping it[/]")
            else:
                os.environ.setdefault("WANDB_MODE", "offline")
                self.wandb = wandb_lib.init(dir=str(run_dir), config=config or {})

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: v for k, v in metrics.items() if isinstance(v, (int, float, str))}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        for key, value in record.items():
            if self.tb is not None and isinstance(value, (int, float)) and key != "step":
                self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(record, step=step)
        if not self.quiet:
            console.print(
                f"step {step:>4}  reward {record.get('reward', 0):.3f}  acc {record.get('accuracy', 0):.2f}  "
                f"H {record.get('entropy', 0):.2f}  tools/traj {record.get('tool_calls', 0):.2f}  "
                f"trajs {record.get('n_trajectories', 0):.0f} (branches {record.get('branches', 0):.0f})  " +
                (f"loss {record['loss']:+.4f}  " if "loss" in record else "no update (zero advantages)  ") +
                f"{record.get('tokens_per_s', 0):.0f} tok/s  "
                f"gen {record.get('time_generation_s', 0):.1f}s env {record.get('time_env_s', 0):.1f}s "
                f"update {record.get('time_update_s', 0):.1f}s"
            )

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
