"""`agentgym check-env`: the conformance checks every registered env must pass.

Gymnasium's own `check_env`, plus what multi-turn text envs need for RL: determinism under a seed (the
rollout engine replays action prefixes to branch), the engine's stored episodes re-executing exactly (replay
hands the task the env reported back as ``options["task"]``), idempotent reset/close, no leaked threads, child
processes or file descriptors after close, random and scripted agents running without errors, and
malformed actions answered with error observations instead of exceptions.

The random and scripted agents run *through the rollout engine* (a `ScriptedPolicy` with the embedded
tokenizer), so they see each conversation exactly as ``agentgym run`` renders it and their actions reach
the env exactly as a model's would; the scripted expert (``env.expert``) must actually score. Each failing
check says what to fix; warnings (e.g. Gymnasium's) are kept and shown with ``check-env -v``.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
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


REPLAY_FIX = ("the engine stores the task reset reported (info['task']) and replay resets with options={'task': "
              "it}: pose the same episode whether the task is sampled or given, e.g. draw every other random "
              "value from the seed before (or apart from) picking the task; no wall clock, no unseeded RNG")


def _clip(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more characters)"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    fix: str = ""  # what to change when the check fails
    warnings: list[str] = field(default_factory=list)


class CheckFailed(AssertionError):
    """A failed check with what to fix."""

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.fix = fix


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


def load_expert(target: str) -> Callable[[str], str]:
    """The function an env's ``expert`` names (``"module:function"``, context text -> action text)."""
    from agentgym.policies.scripted import load_function

    return load_function(target, "env.expert")


def engine_episodes(env_id: str, act: Callable[[str], str], seeds: tuple[int, ...], tokenizer: Any = None,
                    concurrency: int | None = None) -> list:
    """Episodes of `act` (context text -> action) run by the rollout engine, one tree per seed: the same
    rendering, token budgets, end-of-turn handling and env-call guarding as ``agentgym run`` (at most
    `concurrency` episodes at once)."""
    from agentgym.policies.models import load_tokenizer
    from agentgym.policies.scripted import ScriptedPolicy
    from agentgym.rollout import RolloutConfig, RolloutEngine

    policy = ScriptedPolicy(act, tokenizer if tokenizer is not None else load_tokenizer("embedded"))
    engine = RolloutEngine(policy, lambda: make(env_id), env_id=env_id, config=RolloutConfig(group_size=1, max_concurrent_tasks=concurrency))
    return engine.run(list(seeds))


def _engine_failures(trees: list) -> list[str]:
    return [f"seed {t.seed}: {f['stage']} {f['error_type']}: {f['error']}" for t in trees
            for f in t.meta.get("failed_paths", [])]


def check_env_id(env_id: str, seeds: tuple[int, ...] = (0, 1, 2)) -> list[CheckResult]:
    results: list[CheckResult] = []
    caught_warnings: list[str] = []

    def record(name: str, fn: Callable[[], str | None], fix: str) -> None:
        caught_warnings.clear()
        try:
            detail = fn() or ""
            results.append(CheckResult(name, True, detail, warnings=list(caught_warnings)))
        except Exception as e:
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            results.append(CheckResult(name, False, tb, getattr(e, "fix", "") or fix, list(caught_warnings)))

    # One warm-up episode first: process-wide singletons (an import's helper thread, a sandbox spawner, the
    # tokenizer) are created once per process, not per env; only what grows afterwards is a leak.
    warm = make(env_id)
    try:
        warm.reset(seed=0)
        warm.step("hello")
        expert_target = getattr(warm, "expert", None)
    finally:
        warm.close()
    try:  # the expert's actions reach the parts of the env a bare "hello" does not (e.g. a sandbox)
        warm_act = load_expert(expert_target) if expert_target else (lambda context: "hello")
    except ValueError:
        warm_act = lambda context: "hello"  # noqa: E731 (the scripted-agent check reports the bad expert)
    engine_episodes(env_id, warm_act, seeds[:1])
    baseline = _leaks_baseline()
    engine_trees: list = []  # the agents' episodes, re-executed by the replay check

    def gymnasium_check() -> str:
        from gymnasium.utils.env_checker import check_env

        env = make(env_id)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                check_env(env, skip_render_check=False)
            caught_warnings.extend(f"{w.category.__name__}: {w.message}" for w in caught)
            return f"{len(caught)} warnings (-v shows them)" if caught else ""
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
        space = env.action_space
        env.close()
        space.seed(0)
        trees = engine_episodes(env_id, lambda context: space.sample(), seeds)
        engine_trees.extend(trees)
        if failures := _engine_failures(trees):
            raise CheckFailed(f"random actions crashed or hung the env: {failures[0]}",
                              "any text must get an observation back; catch the error in _step and return it as "
                              "the observation")
        return f"{len(seeds)} episodes through the rollout engine"

    def scripted_agent() -> str:
        if not expert_target:
            return "no scripted expert declared (env.expert); skipped"
        try:
            expert = load_expert(expert_target)
        except ValueError as e:
            raise CheckFailed(str(e), "env.expert must name an importable 'module:function'") from e
        trees = engine_episodes(env_id, expert, seeds)
        engine_trees.extend(trees)
        if failures := _engine_failures(trees):
            raise CheckFailed(f"the expert's episodes failed: {failures[0]}", "fix the env call named above")
        returns = [t.leaf_reward(leaf) for t in trees for leaf in t.leaves()]
        total = sum(returns)
        if not total > 0:
            raise CheckFailed(
                f"the expert ({expert_target}) scored return {total:g} over {len(seeds)} episodes",
                "the expert must solve the task as `agentgym run` renders it: run "
                f"`agentgym run {env_id} --policy scripted:{expert_target} --episodes 1` and read the "
                "conversation with `agentgym replay` (observations are new chat turns, or inline for XML tools)")
        return f"return {total:g} over {len(seeds)} episodes through the rollout engine"

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

    def replays() -> str:
        from agentgym.replay import reexecute

        if not engine_trees:
            raise CheckFailed("no episode ran through the engine, so there is nothing to replay",
                              "fix the random and scripted agent checks first")
        nodes = 0
        for tree in engine_trees:
            report = reexecute(tree)
            if report.errors:
                raise CheckFailed(f"seed {tree.seed}: {report.errors[0]}", "make the env id makeable again")
            if report.first is not None:
                raise CheckFailed(f"seed {tree.seed}: {_clip(report.first.describe())}", REPLAY_FIX)
            nodes += report.nodes_checked
        return f"{len(engine_trees)} episodes, {nodes} steps reproduced"

    def no_leaks() -> str:
        extra = _leaks(baseline)
        if extra:
            raise AssertionError(f"resources left after close: {extra}")
        return ""

    record("gymnasium check_env", gymnasium_check,
           "follow Gymnasium's message: reset/step signatures, spaces, seeding through super().reset(seed=seed)")
    record("deterministic under seed", determinism,
           "draw all randomness from self.np_random (seeded by reset); the engine replays prefixes to branch")
    record("reset/close idempotent", idempotent, "make reset() start over cleanly and close() safe to call twice")
    record("random agent", random_agent, "any text action must get an observation back, never an exception")
    record("scripted agent", scripted_agent, "make env.expert solve the task as the engine renders it")
    record("malformed actions -> error observations", malformed,
           "subclass agentgym.TextEnv (it answers empty, non-UTF-8 and oversized actions) or do the same")
    record("replay --reexecute reproduces episodes", replays, REPLAY_FIX)
    record("no threads/processes/fds leaked", no_leaks, "release threads, processes and files in close()")
    return results
