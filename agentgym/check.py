"""`agentgym check-env`: the conformance checks every registered env must pass.

Gymnasium's own `check_env`, plus what multi-turn text envs need for RL: determinism under a seed (the
rollout engine replays action prefixes to branch), idempotent reset/close, no leaked threads, child
processes or file descriptors after close, random and scripted agents running without errors, and
malformed actions answered with error observations instead of exceptions.
"""

from __future__ import annotations

import gc
import importlib
import os
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentgym.registry import make

MALFORMED_ACTIONS: list[tuple[str, Any]] = [
    ("empty action", ""),
    ("invalid UTF-8", b"\xff\xfe\xfa not utf-8"),
    ("1 MB action", "x" * 1_000_001),
    ("unclosed tag", "<python>print(1)"),
    ("nested tags", "<python><python>1</python></python>"),
    ("bad JSON tool call", '<tool_call>{"name": "python", "arguments": {bad json}</tool_call>'),
    ("unknown tool", '<tool_call>{"name": "no_such_tool", "arguments": {}}</tool_call>'),
]


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""


def _resources() -> dict[str, int]:
    children = 0
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[1] == me and fields[0] != "Z":
                    children += 1
            except (OSError, IndexError):
                continue
    return {"threads": threading.active_count(), "fds": len(os.listdir("/proc/self/fd")), "children": children}


def _leaks_baseline() -> dict[str, int]:
    gc.collect()
    time.sleep(0.05)
    return _resources()


def _leaks(before: dict[str, int], settle_s: float = 3.0) -> dict[str, int]:
    """Resources above the `before` baseline, after giving finished threads and processes time to exit."""
    deadline = time.monotonic() + settle_s
    while True:
        gc.collect()
        now = _resources()
        extra = {k: now[k] - before[k] for k in now if now[k] > before[k]}
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.05)


def _run_episode(env: Any, seed: int, act: Callable[[str, int], Any], max_steps: int = 20) -> list[tuple]:
    obs, _ = env.reset(seed=seed)
    trace: list[tuple] = [("reset", obs)]
    for i in range(max_steps):
        obs, reward, terminated, truncated, info = env.step(act(obs, i))
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            break
    return trace


def _scripted_agent(env: Any) -> Callable[[str, int], str] | None:
    """The env's `expert` ("module:function" mapping a context text to an action), if it names one; or the
    stateful ``(obs, step_index) -> action`` policy its `scripted_agent()` builds (for envs whose expert
    needs the env itself, e.g. ScienceWorld's gold paths)."""
    if callable(getattr(env, "scripted_agent", None)):
        return env.scripted_agent()
    target = getattr(env, "expert", None)
    if not target:
        return None
    module, _, fn = target.partition(":")
    expert = getattr(importlib.import_module(module), fn)
    history: list[str] = []

    def act(obs: str, i: int) -> str:
        if i == 0:
            history.clear()
            history.append(f"<|im_start|>user\n{env.system_prompt() or ''}\n{obs}<|im_end|>\n<|im_start|>assistant\n")
        else:
            history.append(obs)
        action = expert("".join(history))
        history.append(action)
        return action

    return act


def check_env_id(env_id: str, seeds: tuple[int, ...] = (0, 1, 2)) -> list[CheckResult]:
    results: list[CheckResult] = []

    def record(name: str, fn: Callable[[], str | None]) -> None:
        try:
            detail = fn() or ""
            results.append(CheckResult(name, True, detail))
        except Exception as e:
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            results.append(CheckResult(name, False, tb))

    # One warm-up episode first: process-wide singletons (an import's helper thread, a sandbox spawner) are
    # created once per process, not per env; only what grows afterwards is a leak.
    warm = make(env_id)
    try:
        obs, _ = warm.reset(seed=0)
        act = _scripted_agent(warm)
        warm.step(act(obs, 0) if act else "hello")
    finally:
        warm.close()
    baseline = _leaks_baseline()

    def gymnasium_check() -> str:
        from gymnasium.utils.env_checker import check_env

        env = make(env_id)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_env(env, skip_render_check=False)
            return f"{len(caught)} warnings" if caught else ""
        finally:
            env.close()

    def determinism() -> str:
        for seed in seeds:
            traces = []
            for _ in range(2):
                env = make(env_id)
                env.action_space.seed(seed)
                rng_actions = [env.action_space.sample() for _ in range(4)]
                traces.append(_run_episode(env, seed, lambda obs, i, a=rng_actions: a[i % len(a)], max_steps=4))
                env.close()
            if traces[0] != traces[1]:
                raise AssertionError(f"seed {seed}: same seed and actions gave different observations")
        return f"{len(seeds)} seeds"

    def idempotent() -> str:
        env = make(env_id)
        env.reset(seed=0)
        env.reset(seed=0)
        env.close()
        env.close()
        return ""

    def random_agent() -> str:
        env = make(env_id)
        env.action_space.seed(0)
        try:
            for seed in seeds:
                _run_episode(env, seed, lambda obs, i: env.action_space.sample())
        finally:
            env.close()
        return f"{len(seeds)} episodes"

    def scripted_agent() -> str:
        env = make(env_id)
        try:
            act = _scripted_agent(env)
            if act is None:
                return "no scripted expert declared (env.expert); skipped"
            total = 0.0
            for seed in seeds:
                total += sum(step[1] for step in _run_episode(env, seed, act)[1:])
            return f"return {total:g} over {len(seeds)} episodes"
        finally:
            env.close()

    def malformed() -> str:
        env = make(env_id)
        try:
            for label, action in MALFORMED_ACTIONS:
                env.reset(seed=0)
                obs, _, _, _, info = env.step(action)
                if not env.observation_space.contains(obs):
                    raise AssertionError(f"{label}: observation not in observation_space")
                if label in ("empty action", "invalid UTF-8", "1 MB action") and not info.get("action_error"):
                    raise AssertionError(f"{label}: no error observation (info['action_error'] missing)")
        finally:
            env.close()
        return f"{len(MALFORMED_ACTIONS)} malformed actions answered"

    def no_leaks() -> str:
        extra = _leaks(baseline)
        if extra:
            raise AssertionError(f"resources left after close: {extra}")
        return ""

    record("gymnasium check_env", gymnasium_check)
    record("deterministic under seed", determinism)
    record("reset/close idempotent", idempotent)
    record("random agent", random_agent)
    record("scripted agent", scripted_agent)
    record("malformed actions -> error observations", malformed)
    record("no threads/processes/fds leaked", no_leaks)
    return results
