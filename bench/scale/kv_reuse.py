"""The embedded HF backend with vs without per-path KV cache reuse, on 10-turn episodes.

Same episodes, same model (SmolLM2-135M-Instruct, shared by both policies), greedy decoding, batched by
the rollout engine in deterministic order, so both sides sample the same tokens (checked and printed).
Without reuse every turn re-encodes the path's whole context; with it a turn feeds only its new tokens
(the last action token + the observation + the next assistant header). Tokens fed to the model are
counted by a forward pre-hook on the model itself, decoding steps included.
"""

from __future__ import annotations

import time

from agentgym.env import EnvLimits, TextEnv
from agentgym.rollout import RolloutConfig, RolloutEngine

TURNS = 10


class LogEnv(TextEnv):
    """Answers each action with a tool-style log of 40-80 tokens, as an agent's tool results look."""

    def _reset(self, options):
        n = int(self.np_random.integers(100, 999))
        return (f"You are debugging service #{n}. Inspect the logs with short commands, one per turn, and "
                "report the root cause when you are sure."), {}

    def _step(self, action):
        k = int(self.np_random.integers(1, 4))
        lines = [f"[{self.turn:02d}:{i:02d}] worker-{i} status=ok latency={17 * i + self.turn}ms queue={i * 3}"
                 for i in range(k + 1)]
        return "\n".join(lines), 0.0, False, {}


def rollout(policy, episodes: int, tokens_per_turn: int) -> tuple[list, float, int]:
    fed = []
    hook = policy.model.register_forward_pre_hook(lambda m, a, kw: fed.append(kw["input_ids"].numel()), with_kwargs=True)
    engine = RolloutEngine(policy, lambda: LogEnv(limits=EnvLimits(max_turns=TURNS, max_tokens_per_turn=tokens_per_turn,
                                                                   max_tokens_per_episode=10_000)),
                           env_id="bench/Log", config=RolloutConfig(temperature=0.0, deterministic=True))
    try:
        start = time.perf_counter()
        trees = engine.run(range(episodes))
        wall = time.perf_counter() - start
    finally:
        hook.remove()
    return trees, wall, sum(fed)


def run(quick: bool) -> None:
    from agentgym.policies.hf import HFPolicy
    from agentgym.policies.models import load_model

    model, tokenizer = load_model("embedded")
    model.eval()
    episodes, tokens_per_turn = (2, 8) if quick else (4, 12)
    plain = HFPolicy(model, tokenizer, kv_cache_mb=0)
    reuse = HFPolicy(model, tokenizer)  # default: 1 GiB of keys/values
    import torch

    print(f"embedded HF backend, {episodes} episodes x {TURNS} turns, <= {tokens_per_turn} tokens/turn, greedy, "
          f"torch threads {torch.get_num_threads()}")
    rollout(reuse, 1, 2)  # warm-up (allocations, first-call costs); then the cache is emptied by the group's end
    rows = {}
    for name, policy in (("without KV reuse", plain), ("with KV reuse", reuse)):
        trees, wall, fed = rollout(policy, episodes, tokens_per_turn)
        generated = sum(len(n.action_ids) for t in trees for n in t.nodes)
        context = sum(len(t.context_ids(leaf)) + len(t.nodes[leaf].action_ids) for t in trees for leaf in t.leaves())
        rows[name] = (trees, wall, fed, generated)
        print(f"{name:17s}: {generated} tokens in {wall:6.1f} s = {generated / wall:6.1f} tokens/s; "
              f"tokens fed to the model {fed:7d} ({fed / context:4.1f}x the {context} tokens of the final contexts)",
              flush=True)
    (ta, wa, fa, ga), (tb, wb, fb, gb) = rows["without KV reuse"], rows["with KV reuse"]
    same = all(x.action_ids == y.action_ids for a, b in zip(ta, tb) for x, y in zip(a.nodes, b.nodes))
    print(f"KV reuse / no reuse: throughput {(gb / wb) / (ga / wa):.2f}x, tokens fed {fb / fa:.3f}x "
          f"({fa / fb:.1f}x fewer); same sampled tokens: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    import sys

    run(quick="--quick" in sys.argv)
