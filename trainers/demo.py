"""The main job (`agentgym demo`, the README's first command): teach SmolLM2-135M-Instruct to use a tool.

1. evaluate the base model on held-out tasks (greedy, fixed seeds);
2. warm-start with SFT on scripted-expert trajectories of training tasks;
3. train with ARPO (entropy-branching rollouts, group z-score advantages);
4. evaluate again, print a before/after table, save trajectories, metrics and a learning-curve PNG.

Sized to finish within ~15 minutes on 2 CPU cores; a GPU is used when there is one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from agentgym.config import Config, load_config
from agentgym.store import TrajectoryStore
from agentgym.trainers.evaluate import comparison_table, evaluate
from agentgym.trainers.rl import RLRun
from agentgym.trainers.session import open_session
from agentgym.trainers.sft import expert_trees, samples_from_trees, sft_train

console = Console()

DEMO_ENV = "agentgym/Python-v0"
FALLBACK_ENV = "agentgym/Calculator-v0"

DEFAULTS: dict[str, Any] = {
    "run_dir": "runs/demo",
    "seed": 0,
    "env": {"id": DEMO_ENV, "kwargs": {"difficulty": "mixed"}, "limits": {"max_turns": 3, "max_tokens_per_turn": 64,
                                                      "max_tokens_per_episode": 160}},
    "policy": {"model": "embedded", "max_batch_size": 32},
    "rollout": {"group_size": 3, "max_trajectories": 6, "temperature": 1.0, "batch_wait_s": 0.25},
    "algorithm": {"name": "arpo", "attribution": "soft"},
    "trainer": {"steps": 4, "tasks_per_step": 4, "lr": 2e-5, "clip_low": 0.2, "clip_high": 0.28,
                "micro_batch_tokens": 4096, "checkpoint_every": 0, "dynamic_sampling": True},
    "sft": {"expert_tasks": 64, "epochs": 2, "lr": 5e-5, "batch_size": 8, "min_reward": 1.0},
    "eval": {"tasks": 40, "split": "test", "temperature": 0.0},
    "logging": {"tensorboard": True, "progress": True},
}

EXPERTS = {
    "agentgym/Python-v0": "agentgym.envs.python.expert:python_expert",
    "agentgym/Calculator-v0": "agentgym.envs.calculator.expert:calculator_expert",
}


def demo_config(config_path: str | None = None, overrides: list[str] | None = None) -> Config:
    from agentgym.registry import list_envs

    defaults = json.loads(json.dumps(DEFAULTS))
    if DEMO_ENV not in list_envs():
        defaults["env"]["id"] = FALLBACK_ENV
    return load_config(config_path, overrides, **defaults)


def run_demo(cfg: Config) -> dict[str, dict[str, float]]:
    start = time.perf_counter()
    run_dir = Path(cfg.run_dir)
    console.rule(f"agentgym demo — {cfg.policy.model} on {cfg.env.id}")
    session = open_session(cfg)
    test_env = session.env_factory(split=cfg.eval.split)
    rows: dict[str, dict[str, float]] = {}

    console.print(f"[bold]1/4[/] evaluating the base model on {cfg.eval.tasks} held-out tasks")
    _, rows["base model"] = evaluate(session.policy, test_env, cfg, "before", run_dir)

    expert = (cfg.sft.expert if cfg.sft and cfg.sft.expert else EXPERTS.get(cfg.env.id))
    sft_cfg = cfg.sft
    if expert and sft_cfg is not None:
        console.print(f"[bold]2/4[/] SFT warm start on {sft_cfg.expert_tasks} scripted-expert trajectories")
        trees = expert_trees(expert, session.env_factory(split="train"), cfg.env.id, session.tokenizer,
                             [1_000_000 + i for i in range(sft_cfg.expert_tasks)])
        TrajectoryStore(run_dir / "sft_expert.jsonl").append_many(trees)
        samples = samples_from_trees(trees, sft_cfg.min_reward)
        losses = sft_train(session.model, session.tokenizer.pad_token_id, samples, sft_cfg, cfg.trainer, seed=cfg.seed)
        console.print(f"    {len(samples)} samples, loss {losses[0]:.3f} -> {losses[-1]:.3f}")
        session.policy.bump_version()
        _, rows["after SFT"] = evaluate(session.policy, test_env, cfg, "after_sft", run_dir)

    console.print(f"[bold]3/4[/] {cfg.algorithm.name.upper()} training: {cfg.trainer.steps} steps x "
                  f"{cfg.trainer.tasks_per_step} tasks")
    RLRun(cfg, session=session).train()

    console.print(f"[bold]4/4[/] evaluating the trained agent on the same {cfg.eval.tasks} held-out tasks")
    _, rows[f"after SFT + {cfg.algorithm.name.upper()}"] = evaluate(session.policy, test_env, cfg, "after", run_dir)

    console.print(comparison_table(rows, title=f"{cfg.env.id}: held-out split '{cfg.eval.split}', "
                                               f"seeds {cfg.eval.seed_offset}..{cfg.eval.seed_offset + cfg.eval.tasks - 1}, greedy"))
    (run_dir / "demo_results.json").write_text(json.dumps(rows, indent=2))
    _plot(run_dir)
    console.print(f"run directory: {run_dir}  (agentgym view {run_dir})   total {time.perf_counter() - start:.0f} s")
    return rows


def _plot(run_dir: Path) -> None:
    try:
        from agentgym.report import write_report

        write_report(run_dir)
    except ImportError as e:  # matplotlib missing: the run itself is complete
        console.print(f"[yellow]no plots: {e}[/]")
