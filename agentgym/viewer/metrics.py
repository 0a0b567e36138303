"""Reading a run's ``metrics.jsonl``: one JSON object per training step, any numeric keys.

The trainer decides which keys exist (``reward``, ``accuracy``, ``entropy``, ``time_update_s``, ... and
more may appear), so nothing here names them: every numeric value becomes a series against ``step``
(or the row number when a row has no step). Nested objects are flattened one level deep as
``outer/inner``. Bad lines are skipped and reported, like torn records in a trajectory store.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.jsonl import bounded_lines

METRICS_FILE = "metrics.jsonl"
MAX_LINE_BYTES = 1 << 20  # a metrics row is a few hundred bytes
TIME_PREFIX = "time_"  # keys like time_generation_s: stacked in the time breakdown


@dataclass
class Metrics:
    path: Path | None
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # key -> [(step, value)]
    rows: int = 0
    messages: list[str] = field(default_factory=list)

    def keys(self) -> list[str]:
        """Series names, the common training signals first."""
        order = ("reward", "accuracy", "entropy", "tool_calls", "tokens_per_s")
        return sorted(self.series, key=lambda k: (order.index(k) if k in order else len(order), k))

    def summary(self, key: str) -> dict[str, float]:
        values = [v for _, v in self.series[key]]
        return {"first": values[0], "last": values[-1], "min": min(values), "max": max(values),
                "mean": sum(values) / len(values), "points": len(values)}

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "rows": self.rows, "keys": self.keys(),
                "series": {k: self.series[k] for k in self.keys()}, "messages": self.messages}


def _numbers(row: dict[str, Any], prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in row.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            continue  # True/False are ints to Python but not curves to a person
        if isinstance(value, (int, float)):
            try:
                number = float(value)  # an integer beyond the float range raises
            except OverflowError:
                continue
            if math.isfinite(number):
                out[name] = number
        elif isinstance(value, dict) and not prefix:
            out.update(_numbers(value, f"{name}/"))
    return out


def read_metrics(run_dir: str | Path) -> Metrics:
    """The metrics of a run directory (or of the directory holding a store file); empty if absent."""
    run_dir = Path(run_dir)
    path = run_dir / METRICS_FILE if run_dir.is_dir() else run_dir.parent / METRICS_FILE
    metrics = Metrics(path if path.is_file() else None)
    if metrics.path is None:
        return metrics
    with open(path, "rb") as f:
        for lineno, (length, raw) in enumerate(bounded_lines(f, MAX_LINE_BYTES), 1):
            if raw is None:
                metrics.messages.append(f"{path.name}:{lineno}: line of {length} bytes is over the limit; skipped")
                continue
            if not raw.strip():
                continue
            if not raw.endswith(b"\n"):
                metrics.messages.append(f"{path.name}:{lineno}: torn last line (no newline) skipped")
                continue
            try:
                row = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, or nested / numbered beyond what the decoder takes
                metrics.messages.append(f"{path.name}:{lineno}: not JSON; skipped")
                continue
            if not isinstance(row, dict):
                metrics.messages.append(f"{path.name}:{lineno}: not a JSON object; skipped")
                continue
            values = _numbers(row)
            x = values.pop("step", float(metrics.rows))
            for key, value in values.items():
                metrics.series.setdefault(key, []).append((x, value))
            metrics.rows += 1
    if len(metrics.messages) > 20:
        metrics.messages[20:] = [f"{path.name}: … and {len(metrics.messages) - 20} more bad lines"]
    return metrics
