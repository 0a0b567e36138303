"""Generation batching for the rollout engine: live paths submit requests, one batched call serves them.

A batch goes out when every live path is waiting for the model (nothing more can join), or after
`wait_s` when some paths are still in env steps; `deterministic` waits for all of them and orders the rows
by a stable key, so seeded runs sample the same tokens whatever order the envs finished in. A policy that
batches on its own side (a server: ``prefers_batching = False``) gets each request at once.
"""

from __future__ import annotations

import asyncio
import time

from agentgym.policies.base import Generation, GenerationRequest, Policy


class GenerationBatcher:
    """Collects generation requests from live paths and serves them in batched `agenerate` calls."""

    def __init__(self, policy: Policy, max_batch: int, wait_s: float, deterministic: bool = False):
        self.policy, self.max_batch, self.wait_s = policy, max_batch, wait_s
        self.deterministic = deterministic
        self.queue: list[tuple[GenerationRequest, asyncio.Future, tuple]] = []
        self.live_paths = 0
        self.wakeup = asyncio.Event()
        self.full = asyncio.Event()
        self.gen_time = 0.0
        self.gen_tokens = 0

    async def submit(self, req: GenerationRequest, key: tuple = ()) -> Generation:
        if not getattr(self.policy, "prefers_batching", True):  # a server batches itself: no barrier here
            start = time.perf_counter()
            (gen,) = await self.policy.agenerate([req])
            self.gen_time += time.perf_counter() - start  # summed over concurrent requests
            self.gen_tokens += len(gen.token_ids)
            return gen
        fut = asyncio.get_running_loop().create_future()
        self.queue.append((req, fut, key))
        self.wakeup.set()
        self.check_full()
        return await fut

    def check_full(self) -> None:
        """Signal when every live path is waiting for the model: no reason to wait for more."""
        if self.queue and len(self.queue) >= min(self.live_paths, self.max_batch):
            self.full.set()

    async def serve(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            if not self.queue:
                continue
            if not self.full.is_set():  # some paths are still in env steps: give them a moment to join
                try:
                    await asyncio.wait_for(self.full.wait(), None if self.deterministic else self.wait_s)
                except asyncio.TimeoutError:
                    pass
            self.full.clear()
            if self.deterministic:  # the same requests in the same rows, whatever order envs finished in
                self.queue.sort(key=lambda item: item[2])
            batch, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
            if self.queue:
                self.wakeup.set()
                self.check_full()
            start = time.perf_counter()
            try:
                gens = await self.policy.agenerate([r for r, _, _ in batch])
            except Exception as e:  # the model backend failed: every waiting path gets the error
                for _, fut, _ in batch:
                    if not fut.done():
                        fut.set_exception(e)
                continue
            self.gen_time += time.perf_counter() - start
            for (_, fut, _), gen in zip(batch, gens):
                self.gen_tokens += len(gen.token_ids)
                if not fut.done():
                    fut.set_result(gen)
