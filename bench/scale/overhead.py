"""The rollout engine's own cost per env step, with a no-op env and an instant policy, at 1, 64 and 1,024
concurrent episodes.

Both sides do the same work per step: one `env.step` of a no-op env and one call of a policy that returns
a fixed 4-token action at once. "raw" is those calls in a plain Python loop; "engine" is `RolloutEngine.run`
over the same episodes (batching, trees, token-exactness checks, env-call bounds). The engine's overhead
per step is the difference (goal: <= 100 us). Each figure is the best of `REPEATS` runs of this process's
CPU time (all threads): on a shared machine, wall time mostly measures the other processes. The policy's `agenerate` answers inline: a thread hop to a
model is the backend's cost (the HF backend has one per *batch*), not the engine's.
"""

from __future__ import annotations

import time

REPEATS = 3

from agentgym.env import EnvLimits, TextEnv
from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams
from agentgym.rendering import ChatRenderer
from agentgym.rollout import RolloutConfig, RolloutEngine


class InstantPolicy(Policy):
    """A fixed 4-token action at no cost."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [Generation([1, 2, 3, 4], [0.0] * 4, [0.0] * 4, "noop", "length") for _ in requests]

    async def agenerate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return self.generate(requests)


class NoOpEnv(TextEnv):
    """Every step answers "ok" at once; declares itself inline-safe (see `agentgym.rollout`)."""

    nonblocking = True

    def _reset(self, options):
        return "go", {}

    def _step(self, action):
        return "ok", 0.0, False, {}


def raw_per_step(tokenizer, episodes: int, turns: int) -> tuple[float, float]:
    """The same env and policy calls (and the prompt the policy would get) in a plain loop: (CPU, wall)
    microseconds per step."""
    policy, renderer = InstantPolicy(tokenizer), ChatRenderer(tokenizer)
    cpu, start = time.process_time(), time.perf_counter()
    steps = 0
    for seed in range(episodes):
        env = NoOpEnv(limits=EnvLimits(max_turns=turns))
        obs, _ = env.reset(seed=seed)
        context = renderer.initial_prompt_ids(None, obs)
        done = False
        while not done:
            (gen,) = policy.generate([GenerationRequest(context, SamplingParams(max_new_tokens=4))])
            _, _, terminated, truncated, _ = env.step(gen.text)
            steps += 1
            done = terminated or truncated
        env.close()
    return (time.process_time() - cpu) / steps * 1e6, (time.perf_counter() - start) / steps * 1e6


def engine_per_step(tokenizer, episodes: int, turns: int) -> tuple[float, float]:
    engine = RolloutEngine(InstantPolicy(tokenizer), lambda: NoOpEnv(limits=EnvLimits(max_turns=turns)),
                           env_id="bench/NoOp", config=RolloutConfig(temperature=0.0, max_batch_size=1024))
    engine.run(range(min(episodes, 8)))  # warm-up
    cpu, start = time.process_time(), time.perf_counter()
    trees = engine.run(range(episodes))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - start
    steps = sum(len(t.nodes) for t in trees)
    return cpu / steps * 1e6, wall / steps * 1e6


def run(quick: bool) -> None:
    from agentgym.policies.models import load_tokenizer

    tokenizer = load_tokenizer("embedded")
    # (concurrent episodes, turns each): about the same number of steps per row
    rows = [(1, 200), (64, 20), (1024, 4)] if quick else [(1, 500), (64, 20), (1024, 5)]
    print("engine overhead per env step (no-op env, instant policy); raw = the same calls in a plain loop; "
          f"CPU time, best of {REPEATS} (wall time in brackets)")
    for episodes, turns in rows:
        raws, engs = [], []
        for _ in range(REPEATS):  # interleaved, so both sides see the same machine load
            raws.append(raw_per_step(tokenizer, episodes, turns))
            engs.append(engine_per_step(tokenizer, episodes, turns))
        raw, eng = min(raws), min(engs)
        print(f"{episodes:5d} concurrent episodes x {turns:4d} turns: engine {eng[0]:6.1f} us/step [{eng[1]:6.1f}]   "
              f"raw {raw[0]:5.1f} us/step [{raw[1]:5.1f}]   overhead {eng[0] - raw[0]:6.1f} us/step (goal <= 100)   "
              f"engine/raw {eng[0] / raw[0]:4.1f}x", flush=True)


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
