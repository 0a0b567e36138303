"""Environment speed in one run: steps/s of every built-in env, ScienceWorld through our env against the
package's own step, and the cost of screenshots in the GUI envs.

Every env is timed the same way: its scripted expert (``env.expert``) plays episodes through the rollout
engine once, then those exact actions are replayed on fresh envs and only ``env.step`` is timed (so the
figures are the env's, not the policy's or the engine's). Envs whose backend is missing (Java, Chromium)
print why they were skipped. Sections:

- steps/s: Calculator, Python (sandboxed), WebSearch, DeepResearch, ScienceWorld, Android, MiniWoB.
- ScienceWorld: the same gold action sequence stepped through the package's `ScienceWorldEnv.step` (which
  computes look, inventory and the valid-action list every step) and through our env (which computes them
  only on request), in JVMs started with the same options; the results must be identical and the ratio is
  the speed-up (goal >= 5x). Also a world with random actors (bees), where our env replays the package's
  random draws, and the hints mode that lists valid actions every step.
- Android: the expert's actions replayed text-only vs with screenshots (540x1200 and 1080x2400 PNGs).
- MiniWoB++: text-only vs with screenshots, and a same-task reset reusing the loaded page vs reloading it.

Usage: python bench/bench_envs.py [--quick] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections.abc import Callable
from typing import Any

from agentgym.check import engine_episodes, load_expert
from agentgym.registry import make

Episode = tuple[int, dict, list[str]]  # seed, task, the expert's actions


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, mean {statistics.mean(values) * 1000:.1f} ms"


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] * 1000


# ---- every env: the expert's actions replayed ----------------------------------------------------------
def expert_episodes(env_id: str, seeds: range) -> list[Episode]:
    """The expert's episodes of `env_id`, recorded once through the rollout engine (as `agentgym run`)."""
    probe = make(env_id)
    try:
        target = probe.unwrapped.expert
    finally:
        probe.close()
    # 8 episodes at a time: 40 concurrent episodes of a browser env open 40 Chromium contexts at once, which
    # on 2 cores miss the env's 10 s page timeout (every reset failed; the engine ran no expert step)
    trees = engine_episodes(env_id, load_expert(target), tuple(seeds), concurrency=8)
    failed = [f for t in trees for f in t.meta.get("failed_paths", [])]
    if failed:
        raise RuntimeError(f"{env_id}: {len(failed)} expert episodes failed, first: {failed[0]['error']}")
    episodes = []
    for tree in trees:
        for leaf in tree.leaves():
            actions = [node.action_text for node in tree.path(leaf) if node.observation is not None]
            episodes.append((tree.seed, dict(tree.task or {}), actions))
    return episodes


def replay(env: Any, episodes: list[Episode], resets: list[float] | None = None) -> list[float]:
    """Step times of `episodes` replayed on `env` (reset with each episode's seed and task, as the stored
    trajectories are replayed); same-task reset times go to `resets` when given."""
    times, previous = [], None
    for seed, task, actions in episodes:
        t = time.perf_counter()
        env.reset(seed=seed, options={"task": task} if task else None)
        if resets is not None and task == previous:
            resets.append(time.perf_counter() - t)
        previous = task
        for action in actions:
            t = time.perf_counter()
            _, _, terminated, truncated, _ = env.step(action)
            times.append(time.perf_counter() - t)
            if terminated or truncated:
                break
    return times


def _steps_line(label: str, times: list[float]) -> str:
    return (f"  {label:<24} {len(times) / sum(times):8.1f} steps/s   step p50 {_pct(times, 0.5):8.2f} ms  "
            f"p99 {_pct(times, 0.99):8.2f} ms  ({len(times)} steps)")


def bench_steps(env_id: str, seeds: range, modes: dict[str, dict] | None = None) -> dict[str, list[float]]:
    """Steps/s of `env_id` for each mode (env kwargs) on the same expert actions; prints one line per mode."""
    episodes = expert_episodes(env_id, seeds)
    results = {}
    print(f"{env_id}: the expert's {len(episodes)} episodes replayed")
    for label, kwargs in (modes or {"steps/s": {}}).items():
        env = make(env_id, **kwargs)
        try:
            results[label] = replay(env, episodes)
        finally:
            env.close()
        print(_steps_line(label, results[label]))
    return results


def _missing_backend(name: str) -> str | None:
    """Why `name`'s backend cannot run here (None when it can)."""
    if name == "scienceworld":
        try:
            import scienceworld  # noqa: F401
        except ImportError:
            return "pip install 'agentgym[scienceworld]'"
        return None if shutil.which("java") else "no java: apt-get install openjdk-17-jre-headless"
    if name == "miniwob":
        from agentgym.envs.browser.session import missing_requirements

        return missing_requirements() or None
    return None


def bench_text_envs(quick: bool) -> None:
    seeds = range(3 if quick else 10)
    for env_id in ("agentgym/Calculator-v0", "agentgym/Python-v0", "agentgym/WebSearch-v0",
                   "agentgym/DeepResearch-v0"):
        bench_steps(env_id, seeds)


# ---- ScienceWorld ------------------------------------------------------------------------------------
def _package_env(config):
    import scienceworld

    saved = os.environ.get("JAVA_TOOL_OPTIONS")
    os.environ["JAVA_TOOL_OPTIONS"] = " ".join(config.java_options())  # the same JVM options as ours
    try:
        return scienceworld.ScienceWorldEnv("", envStepLimit=10**6)
    finally:
        if saved is None:
            os.environ.pop("JAVA_TOOL_OPTIONS", None)
        else:
            os.environ["JAVA_TOOL_OPTIONS"] = saved


def _scienceworld_same_sequence(task: str, variation: int, repeats: int) -> None:
    """The package's step vs ours on one gold sequence. Ours three ways: interleaved with the package's (our
    deferred random draws overlap the package's step, as they overlap an agent's generation in a rollout),
    back-to-back (each step first waits for the previous step's draws), and without the draws."""
    from agentgym.envs.scienceworld import JVMConfig, SciWorldEnv

    config = JVMConfig(envs_per_jvm=1)
    pkg = _package_env(config)
    ours = SciWorldEnv(task=task, variation=variation, jvm=config, limits={"max_turns": 10**6})
    no_draws = SciWorldEnv(task=task, variation=variation, jvm=config, package_random=False,
                           limits={"max_turns": 10**6})
    times: dict[str, list[float]] = {"package": [], "interleaved": [], "back-to-back": [], "no draws": []}
    identical, score, expected = True, 0, []
    try:
        pkg.load(task, variation, "", generateGoldPath=True)
        gold = pkg.get_gold_action_sequence()
        for repeat in range(repeats + 1):  # the first pass warms the JVMs up (JIT) and is not timed
            pkg.load(task, variation, "")  # the package's reset reloads the task it was loaded with
            pkg.reset()
            ours.reset(seed=0)
            expected = []
            for command in gold:
                t = time.perf_counter()
                obs_p, _, done_p, info_p = pkg.step(command)
                t_pkg = time.perf_counter() - t
                t = time.perf_counter()
                obs_o, _, done_o, _, info_o = ours.step(command)
                if repeat:
                    times["package"].append(t_pkg)
                    times["interleaved"].append(time.perf_counter() - t)
                expected.append((obs_p.strip(), info_p["score"], done_p))
                identical &= expected[-1] == (obs_o, info_o["score"], done_o)
                score = info_o["score"]
                if done_p or done_o:
                    break
            for env, label in ((ours, "back-to-back"), (no_draws, "no draws")):
                env.reset(seed=0)
                got = []
                for command in gold[:len(expected)]:
                    t = time.perf_counter()
                    obs, _, done, _, info = env.step(command)
                    if repeat:
                        times[label].append(time.perf_counter() - t)
                    got.append((obs, info["score"], done))
                if label == "back-to-back":
                    identical &= got == expected
    finally:
        pkg.close()
        ours.close()
        no_draws.close()
    base = statistics.mean(times["package"])
    print(f"scienceworld {task} v{variation} gold sequence ({len(gold)} actions, {len(times['package'])} steps "
          f"timed, final score {score}):")
    print(f"  package ScienceWorldEnv.step:                       {_ms(times['package'])}")
    for label, text in (("interleaved", "agentgym, draws overlapping the next action:"),
                        ("back-to-back", "agentgym, back-to-back (waits for the draws):"),
                        ("no draws", "agentgym, package_random=False:")):
        print(f"  {text:<51}{_ms(times[label])}  -> {base / statistics.mean(times[label]):.1f}x")
    print(f"  results identical to the package (interleaved and back-to-back): {identical}; goal >= 5x "
          "(mean step time)")


def bench_scienceworld(quick: bool) -> None:
    _scienceworld_same_sequence("boil", 0, repeats=1 if quick else 3)
    _scienceworld_same_sequence("grow-fruit", 0, repeats=1)
    bench_steps("agentgym/ScienceWorld-v0", range(2 if quick else 6),
                {"fast path": {}, "valid actions every step": {"hints": True}})


# ---- Android -----------------------------------------------------------------------------------------
def bench_android(quick: bool) -> None:
    modes = {"text-only": {}, "screenshots 540x1200": {"screenshots": True},
             "screenshots 1080x2400": {"screenshots": True, "screenshot_scale": 1.0}}
    results = bench_steps("agentgym/Android-v0", range(10 if quick else 40), modes)
    base = statistics.median(results["text-only"])
    for label in list(modes)[1:]:
        print(f"  {label} / text-only step time (p50): {statistics.median(results[label]) / base:.1f}x")


# ---- MiniWoB++ ---------------------------------------------------------------------------------------
def bench_miniwob(quick: bool) -> None:
    from agentgym.envs.browser import MiniWoBEnv

    t = time.perf_counter()
    keeper = MiniWoBEnv()  # holds the shared browser for the whole run, so no mode pays a relaunch
    keeper.reset(seed=0, options={"task": "click-button"})
    cold = time.perf_counter() - t
    try:
        # each episode twice in a row: the second reset starts the same task again (page reuse is measured)
        episodes = [e for e in expert_episodes("agentgym/MiniWoB-v0", range(10 if quick else 40)) for _ in (0, 1)]
        print(f"agentgym/MiniWoB-v0: the expert's {len(episodes)} episodes replayed (headless Chromium, "
              f"one context per env); cold start (first reset launches Chromium) {cold * 1000:.0f} ms")
        steps, resets = {}, {}
        for label, kwargs in {"text-only": {}, "screenshots": {"screenshots": True},
                              "reload pages": {"reload": True}}.items():
            env, resets[label] = MiniWoBEnv(**kwargs), []
            try:
                steps[label] = replay(env, episodes, resets[label])
            finally:
                env.close()
            print(_steps_line(label, steps[label]) + f"   same-task reset p50 {_pct(resets[label], 0.5):7.2f} ms")
        print(f"  screenshots / text-only step time (p50): "
              f"{statistics.median(steps['screenshots']) / statistics.median(steps['text-only']):.2f}x")
        print(f"  reset loading the page every time / reusing the loaded task page (p50): "
              f"{statistics.median(resets['reload pages']) / statistics.median(resets['text-only']):.2f}x")
    finally:
        keeper.close()


BENCHES: dict[str, Callable[[bool], None]] = {"text": bench_text_envs, "scienceworld": bench_scienceworld,
                                              "android": bench_android, "miniwob": bench_miniwob}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer episodes and repeats")
    ap.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only these sections")
    args = ap.parse_args()
    for name, bench in BENCHES.items():
        if args.only and name not in args.only:
            continue
        why = _missing_backend(name)
        if why:
            print(f"{name}: skipped ({why})")
            continue
        bench(args.quick)


if __name__ == "__main__":
    main()
