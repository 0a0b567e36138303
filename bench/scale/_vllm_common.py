"""What the vLLM parts of bench_scale share: the env, the limits, and building policies one at a time."""

from __future__ import annotations

import gc
import os
import time
from typing import Any

os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep vLLM's start-up log out of the figures (read at import)

ENV = "agentgym/Python-v0"
ENV_KWARGS = {"difficulty": "mixed"}


def limits() -> Any:
    from agentgym.env import EnvLimits

    return EnvLimits(max_turns=3, max_tokens_per_turn=64, max_tokens_per_episode=192)


def vllm_skip_line() -> str | None:
    from agentgym.policies.vllm_engine import vllm_missing_reason

    reason = vllm_missing_reason()
    return f"skipped: {reason}" if reason else None


def rollout(policy: Any, seeds: list[int], config: Any, strategy: Any = None) -> dict[str, float]:
    """One warm-up task (vLLM compiles shapes on first use), then the measured tasks on the same engine."""
    from agentgym.registry import make
    from agentgym.rollout import RolloutEngine

    engine = RolloutEngine(policy, lambda: make(ENV, **ENV_KWARGS), env_id=ENV, config=config,
                           strategy=strategy, limits=limits())
    engine.run([10_000 + seeds[0]])
    start = time.perf_counter()
    trees = engine.run(seeds)
    wall = time.perf_counter() - start
    stats = dict(engine.stats)
    stats["wall_s"] = wall
    stats["tokens_per_s"] = stats["generated_tokens"] / wall
    stats["leaves"] = sum(len(t.leaves()) for t in trees)
    return stats


def release(policy: Any) -> None:
    policy.close()
    del policy
    gc.collect()
