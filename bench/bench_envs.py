"""Environment speed: steps/s of each env, and for ScienceWorld our step path against the package's own.

One function per env (`BENCHES`); each prints its own lines and skips with the reason when its backend is
missing. ScienceWorld: the same gold action sequence is stepped through the package's `ScienceWorldEnv.step`
(which computes look, inventory and the valid-action list every step) and through our env (which computes
them only on request), in JVMs started with the same options; the results must be identical and the ratio
is the speed-up (goal >= 5x). Usage: python bench/bench_envs.py [--quick] [--only scienceworld]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections.abc import Callable


def _ms(values: list[float]) -> str:
    return f"median {statistics.median(values) * 1000:.1f} ms, mean {statistics.mean(values) * 1000:.1f} ms"


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
    from agentgym.envs.scienceworld import JVMConfig, SciWorldEnv

    config = JVMConfig(envs_per_jvm=1)
    pkg = _package_env(config)
    ours = SciWorldEnv(task=task, variation=variation, jvm=config, limits={"max_turns": 10**6})
    try:
        pkg.load(task, variation, "", generateGoldPath=True)
        gold = pkg.get_gold_action_sequence()
        pkg_times, our_times, identical, score = [], [], True, 0
        for repeat in range(repeats + 1):  # the first pass warms both JVMs up (JIT) and is not timed
            pkg.load(task, variation, "")  # the package's reset reloads the task it was loaded with
            pkg.reset()
            ours.reset(seed=0)
            for command in gold:
                t = time.perf_counter()
                obs_p, _, done_p, info_p = pkg.step(command)
                t_pkg = time.perf_counter() - t
                t = time.perf_counter()
                obs_o, _, done_o, _, info_o = ours.step(command)
                if repeat:
                    pkg_times.append(t_pkg)
                    our_times.append(time.perf_counter() - t)
                identical &= (obs_p.strip(), info_p["score"], done_p) == (obs_o, info_o["score"], done_o)
                score = info_o["score"]
                if done_p or done_o:
                    break
    finally:
        pkg.close()
        ours.close()
    n = len(our_times)
    print(f"scienceworld {task} v{variation} gold sequence ({len(gold)} actions, {n} steps timed, final score {score}):")
    print(f"  package ScienceWorldEnv.step: {_ms(pkg_times)}")
    print(f"  agentgym SciWorldEnv.step:    {_ms(our_times)}")
    print(f"  results identical: {identical}; ours is {statistics.mean(pkg_times) / statistics.mean(our_times):.1f}x "
          "faster (mean step time; goal >= 5x)")


def _scienceworld_throughput(tasks: list[str], envs_per_jvm: int, hints: bool = False) -> None:
    from agentgym.envs.scienceworld import SciWorldEnv

    env = SciWorldEnv(jvm={"envs_per_jvm": envs_per_jvm}, hints=hints, limits={"max_turns": 10**6})
    steps, step_time, t0 = 0, 0.0, time.perf_counter()
    try:
        for name in tasks:
            env.reset(seed=0, options={"task": {"name": name, "variation": 0}})
            for command in env.gold_actions():
                t = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(command)
                step_time += time.perf_counter() - t
                steps += 1
                if terminated or truncated:
                    break
    finally:
        env.close()
    wall = time.perf_counter() - t0
    label = "with valid actions every step (hints=True)" if hints else "fast path"
    print(f"scienceworld env steps/s, {label}: {steps / step_time:.0f} steps/s stepping, "
          f"{steps / wall:.1f} steps/s including resets and gold paths ({steps} steps, {len(tasks)} tasks)")


def bench_scienceworld(quick: bool) -> None:
    try:
        import scienceworld  # noqa: F401
    except ImportError:
        print("scienceworld: skipped (pip install 'agentgym[scienceworld]')")
        return
    if shutil.which("java") is None:
        print("scienceworld: skipped (no java: apt-get install openjdk-17-jre-headless)")
        return
    _scienceworld_same_sequence("boil", 0, repeats=1 if quick else 3)
    tasks = ["find-living-thing", "use-thermometer"] if quick else \
        ["find-living-thing", "use-thermometer", "boil", "power-component", "chemistry-mix", "lifespan-longest-lived"]
    _scienceworld_throughput(tasks, envs_per_jvm=4)
    _scienceworld_throughput(tasks[:2], envs_per_jvm=4, hints=True)


BENCHES: dict[str, Callable[[bool], None]] = {"scienceworld": bench_scienceworld}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and tasks")
    ap.add_argument("--only", choices=sorted(BENCHES), action="append", help="run only these envs")
    args = ap.parse_args()
    for name, bench in BENCHES.items():
        if not args.only or name in args.only:
            bench(args.quick)


if __name__ == "__main__":
    main()
