"""MiniWoB++ browser env: step latency text-only vs with screenshots, and reset latency (page reused vs reloaded).

Records the scripted expert's episodes over the default task set once, then replays the same action
sequences in each mode side by side in one run (one shared Chromium, a context per env) and prints step
latency p50/p99, steps/s, reset latency p50/p99, the cost of screenshots as a ratio to text-only, and the
cold start (the first reset of a process launches Chromium). `bench_browser()` is the function to call
from a combined env benchmark (``bench/bench_envs.py``); this file stands alone.
Usage: python bench/bench_browser.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

from agentgym.envs.browser import DEFAULT_TASKS, MiniWoBEnv
from agentgym.envs.browser.expert import miniwob_expert


def expert_episodes(env: MiniWoBEnv, seeds: range) -> list[tuple[str, int, list[str]]]:
    """(task, seed, actions) of the expert solving each default task, recorded once."""
    episodes = []
    for name in DEFAULT_TASKS:
        for seed in seeds:
            obs, _ = env.reset(seed=seed, options={"task": name})
            context, actions = obs, []
            while True:
                action = miniwob_expert(context)
                actions.append(action)
                obs, reward, terminated, truncated, _ = env.step(action)
                context += action + obs
                if terminated or truncated:
                    break
            assert reward == 1.0, (name, seed, actions)
            episodes.append((name, seed, actions))
    return episodes


def replay_times(env: MiniWoBEnv, episodes: list[tuple[str, int, list[str]]]) -> tuple[list[float], list[float]]:
    """Step times, and reset times of the resets that start the same task again (the first reset of each
    task loads its page in every mode)."""
    resets, steps, previous = [], [], None
    for name, seed, actions in episodes:
        t = time.perf_counter()
        env.reset(seed=seed, options={"task": name})
        if name == previous:
            resets.append(time.perf_counter() - t)
        previous = name
        for action in actions:
            t = time.perf_counter()
            env.step(action)
            steps.append(time.perf_counter() - t)
    return resets, steps


def pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


def bench_browser(quick: bool = False) -> dict[str, float]:
    t = time.perf_counter()
    keeper = MiniWoBEnv()  # holds the shared browser for the whole run, so no mode pays a relaunch
    keeper.reset(seed=0, options={"task": "click-button"})
    cold = time.perf_counter() - t
    try:
        episodes = expert_episodes(keeper, range(2 if quick else 5))
        steps = sum(len(a) for _, _, a in episodes)
        print(f"MiniWoB++ browser env: {len(episodes)} expert episodes over {len(DEFAULT_TASKS)} tasks, "
              f"{steps} steps per mode (headless Chromium, one context per env)")
        print(f"  cold start (first reset, launches Chromium): {cold * 1000:.0f} ms")
        results = {}
        modes = {"text-only": {}, "screenshots": {"screenshots": True}, "reload pages": {"reload": True}}
        for label, kwargs in modes.items():
            env = MiniWoBEnv(**kwargs)
            try:
                resets, times = replay_times(env, episodes)
            finally:
                env.close()
            results[label] = statistics.median(times)
            results[f"{label} reset"] = statistics.median(resets)
            print(f"  {label:<13} step p50 {pct(times, 0.5):7.2f} ms  p99 {pct(times, 0.99):7.2f} ms  "
                  f"{len(times) / sum(times):6.1f} steps/s   same-task reset p50 {pct(resets, 0.5):7.2f} ms  "
                  f"p99 {pct(resets, 0.99):7.2f} ms")
        print(f"  screenshots / text-only step time (p50): {results['screenshots'] / results['text-only']:.2f}x")
        print(f"  reset loading the page every time / reusing the loaded task page (p50): "
              f"{results['reload pages reset'] / results['text-only reset']:.2f}x")
        results["cold start"] = cold
        return results
    finally:
        keeper.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two seeds per task instead of five")
    bench_browser(parser.parse_args().quick)
