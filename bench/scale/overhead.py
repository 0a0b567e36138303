"""The rollout engine's own cost per env step, with a no-op env and an instant policy, at 1, 64 and 1,024
concurrent episodes.

Both sides do the same work per step: one `env.step` of a no-op env and one call of a policy that returns
a fixed 4-token action at once. "raw" is those calls in a plain Python loop; "engine" is `RolloutEngine.run`
over the same episodes (batching, trees, token-exactness checks, env-call bounds). The engine's overhead
per step is the difference (goal: <= 100 us). The policy's `agenerate` answers inline: a thread hop to a
model is the backend's cost (the HF backend has one per *batch*), not the engine's.
"""

from __future__ import annotations

import time

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


def raw_per_step(tokenizer, episodes: int, turns: int) -> float:
    """The same env and policy calls (and the prompt the policy would get) in a plain loop, in microseconds."""
    policy, renderer = InstantPolicy(tokenizer), ChatRenderer(tokenizer)
    envs = [NoOpEnv(limits=EnvLimits(max_turns=turns)) for _ in range(episodes)]
    start = time.perf_counter()
    steps = 0
    for seed, env in enumerate(envs):
        obs, _ = env.reset(seed=seed)
        context = renderer.initial_prompt_ids(None, obs)
        done = False
        while not done:
            (gen,) = policy.generate([GenerationRequest(context, SamplingParams(max_new_tokens=4))])
            _, _, terminated, truncated, _ = env.step(gen.text)
            steps += 1
            done = terminated or truncated
    return (time.perf_counter() - start) / steps * 1e6


def engine_per_step(tokenizer, episodes: int, turns: int) -> float:
    engine = RolloutEngine(InstantPolicy(tokenizer), lambda: NoOpEnv(limits=EnvLimits(max_turns=turns)),
                           env_id="bench/NoOp", config=RolloutConfig(temperature=0.0, max_batch_size=1024))
    engine.run(range(min(episodes, 8)))  # warm-up
    start = time.perf_counter()
    trees = engine.run(range(episodes))
    wall = time.perf_counter() - start
    return wall / sum(len(t.nodes) for t in trees) * 1e6


def run(quick: bool) -> None:
    from agentgym.policies.models import load_tokenizer

    tokenizer = load_tokenizer("embedded")
    # (concurrent episodes, turns each): about the same number of steps per row
    rows = [(1, 200), (64, 20), (1024, 4)] if quick else [(1, 1000), (64, 50), (1024, 10)]
    print("engine overhead per env step (no-op env, instant policy); raw = the same calls in a plain loop")
    for episodes, turns in rows:
        raw = raw_per_step(tokenizer, episodes, turns)
        eng = engine_per_step(tokenizer, episodes, turns)
        print(f"{episodes:5d} concurrent episodes x {turns:4d} turns: engine {eng:7.1f} us/step   raw {raw:6.1f} us/step   "
              f"overhead {eng - raw:7.1f} us/step (goal <= 100)   engine/raw {eng / raw:5.1f}x", flush=True)


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
