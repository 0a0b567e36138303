"""Android env step latency: text-only observations vs with screenshots (540x1200 and 1080x2400 PNGs).

Replays the scripted expert's episodes over every task template (the same action sequences in each
mode, side by side in one run) and prints step latency p50/p99, steps/s, and the cost of screenshots as
a ratio to text-only. `bench_android()` is the function to call from `bench/bench_envs.py`.
Usage: python bench/bench_android.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

from agentgym.envs.android import TEMPLATES, AndroidEnv
from agentgym.envs.android.expert import android_expert


def expert_episodes(seeds: range) -> list[tuple[str, int, list[str]]]:
    """(task, seed, actions) of the expert solving each template, recorded once."""
    episodes = []
    for name in TEMPLATES:
        for seed in seeds:
            env = AndroidEnv(task=name)
            obs, _ = env.reset(seed=seed)
            context, actions = f"{env.system_prompt()}\n{obs}", []
            while True:
                action = android_expert(context)
                actions.append(action)
                obs, _, terminated, truncated, _ = env.step(action)
                context += action + obs
                if terminated or truncated:
                    break
            episodes.append((name, seed, actions))
    return episodes


def step_times(episodes: list[tuple[str, int, list[str]]], **env_kwargs) -> list[float]:
    times = []
    for name, seed, actions in episodes:
        env = AndroidEnv(task=name, **env_kwargs)
        env.reset(seed=seed)
        for action in actions:
            t = time.perf_counter()
            env.step(action)
            times.append(time.perf_counter() - t)
    return times


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


def bench_android(quick: bool = False) -> dict[str, float]:
    episodes = expert_episodes(range(1 if quick else 4))
    modes = {"text-only": {}, "screenshots 540x1200": {"screenshots": True},
             "screenshots 1080x2400": {"screenshots": True, "screenshot_scale": 1.0}}
    results = {}
    steps = sum(len(a) for _, _, a in episodes)
    print(f"Android env: {len(episodes)} expert episodes, {steps} steps per mode")
    for label, kwargs in modes.items():
        times = step_times(episodes, **kwargs)
        total = sum(times)
        results[label] = statistics.median(times)
        print(f"  {label:<22} step p50 {pct(times, 0.5):7.2f} ms  p99 {pct(times, 0.99):7.2f} ms  "
              f"{len(times) / total:8.1f} steps/s")
    base = results["text-only"]
    for label in list(modes)[1:]:
        print(f"  {label} / text-only step time (p50): {results[label] / base:.1f}x")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one seed per template instead of four")
    bench_android(parser.parse_args().quick)
