"""Rollout throughput: the async engine vs a sequential generate -> tool -> generate loop, and the engine's
own overhead per env step.

Both approaches run the same episodes with greedy decoding on the embedded model (SmolLM2-135M-Instruct),
so they generate the same tokens; every env step calls a tool that takes 50 ms. Printed side by side with
the ratio. Usage: python bench/bench_rollout.py [--quick] [--model embedded|tiny]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from agentgym.env import EnvLimits, TextEnv
from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams
from agentgym.rendering import ChatRenderer
from agentgym.rollout import RolloutConfig, RolloutEngine
from agentgym.trajectory import Observation

TOOL_LATENCY_S = 0.05


class FiftyMsToolEnv(TextEnv):
    """Every action is answered by a tool that takes 50 ms; the episode lasts `max_turns` actions."""

    def __init__(self, latency_s: float = TOOL_LATENCY_S, turns: int = 3, tokens_per_turn: int = 32):
        super().__init__(limits=EnvLimits(max_turns=turns, max_tokens_per_turn=tokens_per_turn,
                                          max_tokens_per_episode=turns * tokens_per_turn))
        self.latency_s = latency_s

    def _reset(self, options):
        n = int(self.np_random.integers(10, 99))
        return f"Compute {n}*{n + 7} step by step.", {}

    def _step(self, action):
        time.sleep(self.latency_s)  # the tool call
        text = f"Tool result: {len(action)} characters received. Continue."
        return text, 0.0, False, {"observation": Observation(text=text, role="user").model_dump()}


def sequential(policy: Policy, seeds: list[int], env_kwargs: dict) -> tuple[int, float]:
    """The loop most projects start with: one episode at a time, one generate call per turn."""
    renderer = ChatRenderer(policy.tokenizer)
    tokens, start = 0, time.perf_counter()
    for seed in seeds:
        env = FiftyMsToolEnv(**env_kwargs)
        obs, _ = env.reset(seed=seed)
        context = renderer.initial_prompt_ids(None, obs)
        while True:
            params = SamplingParams(max_new_tokens=env.limits.max_tokens_per_turn, temperature=0.0)
            (gen,) = policy.generate([GenerationRequest(context, params)])
            tokens += len(gen.token_ids)
            obs, _, terminated, truncated, info = env.step(gen.text)
            if terminated or truncated:
                break
            context = context + gen.token_ids + renderer.observation_ids(
                Observation.model_validate(info["observation"]), after_eos=gen.finish_reason == "eos")
    return tokens, time.perf_counter() - start


def engine(policy: Policy, seeds: list[int], env_kwargs: dict) -> tuple[int, float]:
    eng = RolloutEngine(policy, lambda: FiftyMsToolEnv(**env_kwargs), env_id="bench/FiftyMsTool",
                        config=RolloutConfig(temperature=0.0))
    start = time.perf_counter()
    trees = eng.run(seeds)
    wall = time.perf_counter() - start
    return sum(len(n.action_ids) for t in trees for n in t.nodes), wall


class InstantPolicy(Policy):
    """Returns a fixed 4-token action at no cost: isolates the engine's own overhead."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.version = 0

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [Generation([1, 2, 3, 4], [0.0] * 4, [0.0] * 4, "noop", "length") for _ in requests]


class NoOpEnv(TextEnv):
    def _reset(self, options):
        return "go", {}

    def _step(self, action):
        return "ok", 0.0, False, {}


def overhead_per_step(tokenizer, episodes: int, turns: int) -> float:
    eng = RolloutEngine(InstantPolicy(tokenizer), lambda: NoOpEnv(limits=EnvLimits(max_turns=turns)),
                        env_id="bench/NoOp", config=RolloutConfig(temperature=0.0))
    eng.run(range(4))  # warm-up
    start = time.perf_counter()
    trees = eng.run(range(episodes))
    wall = time.perf_counter() - start
    steps = sum(len(t.nodes) for t in trees)
    return wall / steps * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer episodes")
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--episodes", type=int, default=None)
    args = ap.parse_args()
    from agentgym.policies.hf import HFPolicy

    policy = HFPolicy.from_pretrained(args.model)
    n = args.episodes or (8 if args.quick else 16)
    seeds = list(range(n))
    env_kwargs = {"turns": 3, "tokens_per_turn": 32}
    sequential(policy, seeds[:1], env_kwargs)  # warm-up (first-call allocations)
    seq_tokens, seq_wall = sequential(policy, seeds, env_kwargs)
    eng_tokens, eng_wall = engine(policy, seeds, env_kwargs)
    print(f"rollout: {n} episodes x {env_kwargs['turns']} turns, tool latency {TOOL_LATENCY_S * 1000:.0f} ms, "
          f"model {args.model}, greedy")
    print(f"sequential generate->tool->generate loop: {seq_tokens} tokens in {seq_wall:.2f} s = {seq_tokens / seq_wall:.1f} tokens/s")
    print(f"agentgym rollout engine:                  {eng_tokens} tokens in {eng_wall:.2f} s = {eng_tokens / eng_wall:.1f} tokens/s")
    print(f"engine / sequential throughput ratio: {(eng_tokens / eng_wall) / (seq_tokens / seq_wall):.2f}x")
    us = overhead_per_step(policy.tokenizer, episodes=50 if args.quick else 200, turns=10)
    print(f"engine overhead per env step (no-op env, instant policy): {us:.0f} us")


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main()
