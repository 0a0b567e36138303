"""`agentgym report RUN`: PNG plots of the training curves and a markdown summary (``report.md``).

Plots every numeric series of ``metrics.jsonl`` (whatever the trainer logged), a breakdown of where the
time of a step went (the ``time_*`` keys), and per-step aggregates of the stored trees. matplotlib is
imported only here, lazily, with the Agg backend (no display needed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentgym.viewer.index import RunIndex
from agentgym.viewer.metrics import TIME_PREFIX, Metrics, read_metrics


@dataclass
class ReportResult:
    markdown: Path
    images: list[Path] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid_plot(series: dict[str, list[tuple[float, float]]], path: Path, title: str) -> Path:
    plt = _pyplot()
    keys = list(series)
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False,
                             layout="constrained")  # constrained layout leaves room for the suptitle
    for ax, key in zip(axes.flat, keys):
        xs, ys = zip(*series[key])
        ax.plot(xs, ys, lw=1.4, color="#2457c5")
        if len(xs) >= 10:  # a moving average makes a noisy RL curve readable
            k = max(3, len(xs) // 15)
            smooth = [sum(ys[max(0, i - k + 1):i + 1]) / len(ys[max(0, i - k + 1):i + 1]) for i in range(len(ys))]
            ax.plot(xs, smooth, lw=2.0, color="#e0662b", alpha=0.9)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.get_major_locator().set_params(integer=True)  # steps are whole numbers
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _time_plot(metrics: Metrics, path: Path) -> Path | None:
    keys = [k for k in metrics.keys() if k.startswith(TIME_PREFIX)]
    if not keys:
        return None
    steps = sorted({x for k in keys for x, _ in metrics.series[k]})
    lookup = {k: dict(metrics.series[k]) for k in keys}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.stackplot(steps, [[lookup[k].get(s, 0.0) for s in steps] for k in keys], labels=keys, alpha=0.85)
    ax.set_xlabel("step")
    ax.set_ylabel("seconds")
    ax.set_title("time per step")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _metrics_table(metrics: Metrics) -> list[str]:
    lines = ["| metric | first | last | min | max | mean | points |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key in metrics.keys():
        s = metrics.summary(key)
        lines.append(f"| {key} | {s['first']:.4g} | {s['last']:.4g} | {s['min']:.4g} | {s['max']:.4g} | "
                     f"{s['mean']:.4g} | {s['points']} |")
    return lines


def _time_shares(metrics: Metrics) -> list[str]:
    totals = {k: sum(v for _, v in metrics.series[k]) for k in metrics.keys() if k.startswith(TIME_PREFIX)}
    grand = sum(totals.values())
    if not grand:
        return []
    return ["", "Where the time went (sum over steps):", ""] + [
        f"- `{k}`: {v:.1f} s ({v / grand:.0%})" for k, v in sorted(totals.items(), key=lambda kv: -kv[1])]


def _trajectory_section(index: RunIndex) -> list[str]:
    lines = ["| file | trees | trajectories | mean reward | success rate | longest path (turns) | branches | "
             "tool calls | tool errors |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for src in index.sources:
        rows = [s for s in index.summaries if s.source == src.name]
        trajs = sum(s.trajectories for s in rows)
        if not rows or not trajs:
            lines.append(f"| {src.name} | {len(rows)} | {trajs} | – | – | – | – | – | – |")
            continue
        reward = sum(s.mean_reward * s.trajectories for s in rows) / trajs
        success = sum(s.successes for s in rows) / trajs
        lines.append(f"| {src.name} | {len(rows)} | {trajs} | {reward:.3f} | {success:.1%} | "
                     f"{sum(s.max_turns for s in rows) / len(rows):.2f} | {sum(s.branches for s in rows)} | "
                     f"{sum(s.tool_calls for s in rows)} | {sum(s.errors for s in rows)} |")
    return lines


def write_report(run: str | Path, out_dir: str | Path | None = None) -> ReportResult:
    """Write ``report.md`` and its PNGs into `out_dir` (default ``RUN/report``)."""
    run = Path(run)
    if not run.exists():
        raise FileNotFoundError(f"{run}: no such run directory or file")
    out = Path(out_dir) if out_dir else (run if run.is_dir() else run.parent) / "report"
    out.mkdir(parents=True, exist_ok=True)
    metrics = read_metrics(run)
    index = RunIndex(run, search=False)
    result = ReportResult(out / "report.md", messages=index.messages + metrics.messages)
    md = [f"# Run report: `{run}`", "", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `agentgym report`.", ""]
    md += ["## Training curves", ""]
    if metrics.series:
        result.images.append(_grid_plot({k: metrics.series[k] for k in metrics.keys()}, out / "training_curves.png",
                                        f"{run.name}: metrics.jsonl ({metrics.rows} steps)"))
        md += ["![training curves](training_curves.png)", ""] + _metrics_table(metrics) + _time_shares(metrics)
        if (time_png := _time_plot(metrics, out / "time_per_step.png")) is not None:
            result.images.append(time_png)
            md += ["", "![time per step](time_per_step.png)"]
    else:
        md.append("No `metrics.jsonl` in this run." if metrics.path is None else "`metrics.jsonl` has no numeric values.")
    md += ["", "## Trajectories", ""]
    if index.summaries:
        md += _trajectory_section(index)
        stats = index.step_stats()
        if len(stats) > 1:
            series = {k: [(r["step"], r[k]) for r in stats] for k in stats[0] if k != "step"}
            result.images.append(_grid_plot(series, out / "trajectories_per_step.png", "from the stored trees, per step"))
            md += ["", "![trajectories per step](trajectories_per_step.png)"]
    else:
        md.append("No readable trajectory trees.")
    if result.messages:
        md += ["", "## Problems reading the run", ""] + [f"- {m}" for m in result.messages]
    result.markdown.write_text("\n".join(md) + "\n")
    return result
