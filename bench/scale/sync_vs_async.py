"""Synchronous vs asynchronous (one-step-off-policy) training step time, same config otherwise.

Both runs train GRPO on a one-turn env (reward = share of the letter e, up to 48 tokens per action) with
the same seeds and budgets; the asynchronous run (``trainer.max_staleness: 1``) generates step k+1's
rollouts on its sampler copy while step k updates. Quick: the tiny random model (update cheap next to
generation); full: the embedded SmolLM2-135M-Instruct, where the update is a real share of a step.
Wall time per step includes everything (rollout, credit, update, weight push, the final checkpoint).
"""

from __future__ import annotations

import tempfile
import time

import agentgym
from agentgym.env import EnvLimits, TextEnv

ENV_ID = "agentgym/BenchLetterE-v0"


class LongLetterE(TextEnv):
    """One action of up to 48 tokens; reward = the share of the letter e in it."""

    def __init__(self, limits=None, split: str = "train", tokens: int = 48):
        super().__init__(limits=limits or EnvLimits(max_turns=1, max_tokens_per_turn=tokens, max_tokens_per_episode=tokens))

    def _reset(self, options):
        return f"Write a sentence full of the letter e. ({int(self.np_random.integers(1000))})", {}

    def _step(self, action):
        letters = [c for c in action.lower() if c.isalpha()]
        return "", sum(c == "e" for c in letters) / max(len(letters), 1), True, {}


def train_once(model: str, staleness: int, steps: int, tasks: int, run_dir: str) -> tuple[float, list[dict]]:
    from agentgym.config import load_config
    from agentgym.trainers.rl import RLRun

    cfg = load_config(run_dir=run_dir, seed=1, env={"id": ENV_ID}, policy={"model": model},
                      rollout={"group_size": 4, "temperature": 1.0},
                      trainer={"steps": steps, "tasks_per_step": tasks, "lr": 1e-5, "max_staleness": staleness},
                      logging={"tensorboard": False, "progress": False})
    run = RLRun(cfg, quiet=True)
    t0 = time.perf_counter()
    history = run.train()
    return time.perf_counter() - t0, history


def run(quick: bool) -> None:
    agentgym.register(ENV_ID, "scale.sync_vs_async:LongLetterE")
    model, steps, tasks = ("tiny", 4, 4) if quick else ("embedded", 4, 4)
    print(f"model {model}, {steps} steps x {tasks} tasks x 4 episodes, <= 48 tokens per action")
    print(f"{'mode':<28}{'s/step':>9}{'rollout s':>11}{'update s':>10}{'tokens':>8}")
    per_step = {}
    for name, staleness in (("synchronous", 0), ("async (max_staleness=1)", 1)):
        with tempfile.TemporaryDirectory() as tmp:
            wall, history = train_once(model, staleness, steps, tasks, tmp)
        per_step[name] = wall / steps
        rollout = sum(m["time_rollout_s"] for m in history) / steps
        update = sum(m["time_update_s"] for m in history) / steps
        tokens = sum(m["tokens_per_trajectory"] * m["n_trajectories"] for m in history)
        print(f"{name:<28}{per_step[name]:>9.2f}{rollout:>11.2f}{update:>10.2f}{tokens:>8.0f}", flush=True)
    sync, asyn = per_step["synchronous"], per_step["async (max_staleness=1)"]
    print(f"step time async / sync = {asyn / sync:.2f}  (speed-up {sync / asyn:.2f}x)")
