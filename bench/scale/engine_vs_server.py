"""Rollout tokens/s through the rollout engine vs the same server's raw throughput on the same prompts.

One `agentgym serve tiny` process on loopback (the tiny random model; the server generates one request at a
time, so this measures what the engine adds around the server: env steps, rendering, tree building, the
`openai:` client). Engine: `RolloutEngine` over `OpenAICompatPolicy` on one-turn episodes of `LongLetterE`
(up to 48 tokens, temperature 1). Raw: the prompts the engine sent, posted directly to /v1/completions by
httpx.AsyncClient at the same concurrency with the same sampling fields (token ids in and out, the sampled
token's log-prob). Goal: engine / raw >= 0.9.
"""

from __future__ import annotations

import asyncio
import time

import httpx

from agentgym.launch import serving_agentgym


async def _raw(url: str, prompts: list[list[int]], max_tokens: int, concurrency: int) -> tuple[int, float]:
    slots = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        async def one(ids: list[int]) -> int:
            body = {"model": "tiny", "prompt": [ids], "max_tokens": max_tokens, "temperature": 1.0, "logprobs": 1,
                    "return_tokens_as_token_ids": True, "include_stop_str_in_output": True,
                    "skip_special_tokens": False}
            async with slots:
                r = await client.post("/v1/completions", json=body)
            r.raise_for_status()
            return len(r.json()["choices"][0]["logprobs"]["tokens"])

        start = time.perf_counter()
        counts = await asyncio.gather(*(one(p) for p in prompts))
        return sum(counts), time.perf_counter() - start


def run(quick: bool) -> None:
    import statistics

    from agentgym.policies.openai_compat import OpenAICompatPolicy
    from agentgym.rollout import RolloutConfig, RolloutEngine

    from scale.sync_vs_async import LongLetterE

    episodes, reps, tokens = (8, 3, 48) if quick else (32, 3, 48)
    concurrency = episodes
    rows: dict[str, list[tuple[int, float]]] = {"engine": [], "raw": []}
    with serving_agentgym("serve", "tiny") as url:
        policy = OpenAICompatPolicy(url, tokenizer="tiny", top_logprobs=1, max_concurrency=concurrency)
        engine = RolloutEngine(policy, lambda: LongLetterE(tokens=tokens), env_id="bench/LongLetterE",
                               config=RolloutConfig(temperature=1.0, max_batch_size=concurrency), progress=False)
        engine.run(list(range(100, 100 + episodes)))  # warm-up: server allocations, client, tokenizer
        for rep in range(reps):  # interleaved, so a change in machine load hits both sides alike
            trees = engine.run([rep * episodes + i for i in range(episodes)])
            rows["engine"].append((sum(len(n.action_ids) for t in trees for n in t.nodes), engine.stats["wall_s"]))
            prompts = [t.context_ids(leaf) for t in trees for leaf in t.leaves()]
            rows["raw"].append(asyncio.run(_raw(url, prompts, tokens, concurrency)))
        policy.close()
    rate = {k: statistics.median(n / w for n, w in v) for k, v in rows.items()}
    paired = statistics.median((ne / we) / (nr / wr) for (ne, we), (nr, wr) in zip(rows["engine"], rows["raw"]))
    print(f"agentgym serve tiny on loopback, {episodes} one-turn episodes x {reps} interleaved repetitions, "
          f"<= {tokens} tokens, concurrency {concurrency}; median over repetitions")
    print(f"{'path':<34}{'tokens':>8}{'wall s':>9}{'tokens/s':>10}")
    for key, label in (("engine", "rollout engine (openai: policy)"), ("raw", "raw concurrent /v1/completions")):
        n, w = sum(x for x, _ in rows[key]), sum(y for _, y in rows[key])
        print(f"{label:<34}{n:>8}{w:>9.2f}{rate[key]:>10.1f}")
    print(f"engine / raw tokens/s = {paired:.2f} (median of the {reps} paired repetitions; goal >= 0.9)")
