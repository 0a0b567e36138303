"""HF vs in-process vLLM rollout tokens/s at equal settings.

Both run the embedded model (SmolLM2-135M-Instruct, float32) through the rollout engine on
agentgym/Python-v0 (sandboxed Python tool calls), the same seeds, temperature 1.0, 3 turns of at most 64
tokens, one torch thread each (vLLM's CPU worker drops to one thread for serving; HF is held to the same).
Rates are generated tokens per second of rollout wall time, engine start-up and one warm-up task excluded.
"""

from __future__ import annotations

from scale._vllm_common import release, rollout, vllm_skip_line


def run(quick: bool) -> None:
    skip = vllm_skip_line()
    if skip:
        print(skip)
        return
    import torch

    from agentgym.config import RolloutConfig
    from agentgym.policies.hf import HFPolicy
    from agentgym.policies.vllm_engine import VLLMPolicy

    torch.set_num_threads(1)
    tasks = 2 if quick else 6
    seeds = list(range(tasks))
    config = RolloutConfig(group_size=2, temperature=1.0)
    results = {}
    for name, build in (("hf", lambda: HFPolicy.from_pretrained("embedded")),
                        ("vllm", lambda: VLLMPolicy("embedded"))):
        policy = build()
        results[name] = rollout(policy, seeds, config)
        release(policy)
        s = results[name]
        print(f"{name:5s} {s['generated_tokens']:6.0f} tokens in {s['wall_s']:6.1f} s  "
              f"{s['tokens_per_s']:6.1f} tok/s  (generation {s['generation_s']:.1f} s, {tasks} tasks x 2)", flush=True)
    ratio = results["vllm"]["tokens_per_s"] / results["hf"]["tokens_per_s"]
    print(f"vllm / hf rollout tokens/s: {ratio:.2f}x")
