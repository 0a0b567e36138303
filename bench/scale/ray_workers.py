"""1 vs 2 Ray rollout workers on an env whose every step takes 50 ms of CPU.

The env (`BusyStepEnv`, below) burns 50 ms of CPU per step in Python, like a simulator step (ScienceWorld's
JVM, a browser) rather than a sleep: sleeps overlap in one worker's threads and would show no gain from a
second process. The policy is scripted and instant, so the figures measure the env fleet, not the model.
Both fleets run on one local Ray cluster (loopback, 2 CPUs); actor start-up is excluded (a warm-up
episode per worker before timing). On a 2-core machine the ideal ratio is 2.0; other load lowers it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from agentgym.env import EnvLimits, TextEnv

STEP_S, TURNS = 0.05, 4


class BusyStepEnv(TextEnv):
    """Four turns of 50 ms CPU work each; reward 1 at the end."""

    def __init__(self, limits=None):
        super().__init__(limits=limits or EnvLimits(max_turns=TURNS, max_tokens_per_turn=8, max_tokens_per_episode=64))
        self.turn = 0

    def _reset(self, options):
        self.turn = 0
        return "Go.", {}

    def _step(self, action):
        end = time.thread_time() + STEP_S  # this thread's CPU time: work, not wall clock shared with other steps
        while time.thread_time() < end:
            pass
        self.turn += 1
        return f"step {self.turn}", float(self.turn == TURNS), self.turn == TURNS, {}


def instant_policy():
    from agentgym.policies.models import load_tokenizer
    from agentgym.policies.scripted import ScriptedPolicy

    return ScriptedPolicy(lambda context: "ok", tokenizer=load_tokenizer("tiny"))


def run(quick: bool) -> None:
    try:
        import ray
    except ImportError:
        print("skipped: ray is not installed (pip install 'agentgym[ray]')")
        return
    import agentgym
    from agentgym.config import RayConfig, RolloutConfig
    from agentgym.ray_workers import EnvSpec, RolloutFleet

    env_id = "bench/BusyStep-v0"
    agentgym.register(env_id, f"{__name__}:BusyStepEnv")
    episodes = 16 if quick else 64
    bench_dir = str(Path(__file__).resolve().parents[1])  # workers import this module as the driver does
    os.environ.setdefault("RAY_memory_monitor_refresh_ms", "0")  # shared machine: no OOM-killer on workers
    ray.init(address="local", num_cpus=2, _node_ip_address="127.0.0.1", include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": bench_dir}})
    rates = {}
    try:
        for n in (1, 2):
            store = Path(f"/tmp/agentgym-bench-ray-{os.getpid()}-{n}")
            fleet = RolloutFleet(RayConfig(workers=n), instant_policy, EnvSpec.of(env_id), store)
            try:
                fleet.rollout(list(range(n)), [f"warm-{i}" for i in range(n)], RolloutConfig())
                t0 = time.perf_counter()
                trees, _ = fleet.rollout(list(range(episodes)), [f"e-{i}" for i in range(episodes)], RolloutConfig())
                wall = time.perf_counter() - t0
            finally:
                fleet.close()
            assert len(trees) == episodes and all(t.final_rewards for t in trees)
            rates[n] = episodes / wall
            print(f"{n} worker{'s' if n > 1 else ' '}: {episodes} episodes x {TURNS} steps of {STEP_S * 1000:.0f} ms "
                  f"in {wall:6.2f} s = {rates[n]:6.2f} episodes/s", flush=True)
    finally:
        ray.shutdown()
    print(f"2 workers / 1 worker: {rates[2] / rates[1]:.2f}x episodes/s")
