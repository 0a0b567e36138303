"""Scale-out figures in one run, each pair side by side with its ratio.

Parts (one small module each under bench/scale/, run in this order):
  hf_vs_vllm        HF vs in-process vLLM rollout tokens/s at equal settings
  kv_reuse          embedded HF backend with vs without per-path KV reuse on 10-turn episodes
  prefix_caching    ARPO rollouts on vLLM with vs without prefix caching
  engine_vs_server  rollout tokens/s through the engine vs the same server's raw throughput, same prompts
  sync_vs_async     synchronous vs one-step-off-policy asynchronous training step time
  ray_workers       1 vs 2 Ray env workers on an env with 50 ms steps
  overhead          the engine's own overhead per env step (no-op env, instant policy) at 1, 64, 1024 episodes

A part whose optional dependency (vllm, ray) is missing prints one line saying so and the run goes on.

Usage: python bench/bench_scale.py [--quick] [--only PART ...]
"""

from __future__ import annotations

import argparse
import importlib
import time

PARTS = ("hf_vs_vllm", "kv_reuse", "prefix_caching", "engine_vs_server", "sync_vs_async", "ray_workers", "overhead")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small budgets (minutes)")
    ap.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    args = ap.parse_args()
    for name in args.only or PARTS:
        print(f"\n== {name} ==", flush=True)
        try:
            part = importlib.import_module(f"scale.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("scale."):
                print(f"skipped: part {name} is not written yet")
                continue
            raise
        t0 = time.perf_counter()
        part.run(quick=args.quick)  # prints its own rows; missing optional deps print a skip line
        print(f"({name}: {time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
