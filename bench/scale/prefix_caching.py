"""ARPO rollouts on in-process vLLM with vs without automatic prefix caching.

ARPO branches paths at high-entropy turns: each branch re-sends its parent's whole context, and every turn
re-sends the episode so far. With prefix caching those prefixes' KV blocks are reused instead of
recomputed. Same engine settings and seeds otherwise (embedded model, agentgym/Python-v0, temperature 1.0,
N=2 roots and up to M=6 leaves per task, the ARPO entropy-branching strategy); the trees may differ in
shape because sampling is stochastic, so the rate is per generated token and the prompt tokens served
from the cache are printed beside it.
"""

from __future__ import annotations

from scale._vllm_common import release, rollout, vllm_skip_line


def run(quick: bool) -> None:
    skip = vllm_skip_line()
    if skip:
        print(skip)
        return
    from agentgym.config import RolloutConfig
    from agentgym.policies.vllm_engine import VLLMPolicy
    from agentgym.trainers.arpo import ARPOConfig, EntropyBranching

    tasks = 2 if quick else 4
    seeds = list(range(tasks))
    config = RolloutConfig(group_size=2, max_trajectories=6, supplement=True, temperature=1.0)
    results = {}
    for name, caching in (("cache off", False), ("cache on", True)):
        policy = VLLMPolicy("embedded", enable_prefix_caching=caching)
        strategy = EntropyBranching(ARPOConfig(), vocab_size=len(policy.tokenizer), seed=0)
        s = results[name] = rollout(policy, seeds, config, strategy)
        hit = policy.cached_prompt_tokens / max(policy.prompt_tokens, 1)
        release(policy)
        print(f"{name:9s} {s['generated_tokens']:6.0f} tokens, {s['leaves']:3d} leaves in {s['wall_s']:6.1f} s  "
              f"{s['tokens_per_s']:6.1f} tok/s  (prompt tokens from cache: {hit:.0%})", flush=True)
    ratio = results["cache on"]["tokens_per_s"] / results["cache off"]["tokens_per_s"]
    print(f"prefix caching on / off, ARPO rollout tokens/s: {ratio:.2f}x")
