"""The policy contract: token ids in, token ids out, with the log-prob and entropy of every sampled token.

The trainer trains on exactly the tokens a policy returned, so a backend must report the ids it sampled
(never text to be re-tokenised). Backends: Hugging Face transformers (`HFPolicy`), any OpenAI-compatible
server (`OpenAICompatPolicy`, e.g. vLLM), and `ScriptedPolicy` for tests and expert data.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SamplingParams:
    """How to sample one action."""

    max_new_tokens: int = 256
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # generation ends right after any of these strings (included in the output)


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)


@dataclass
class Generation:
    """One sampled continuation."""

    token_ids: list[int]
    logprobs: list[float]  # log-prob of each sampled token under the (temperature-scaled) sampling distribution
    entropies: list[float]  # entropy of that distribution at each position (nats)
    text: str
    finish_reason: str  # "eos" | "stop" (a stop string) | "length"
    stop_string: str | None = None
    token_exact: bool = True  # False if the backend gave text only and ids were re-derived (not trainable)
    meta: dict[str, Any] = field(default_factory=dict)


class GenerationCancelled(RuntimeError):
    """`generate` stopped early because its `cancel` event was set (client gone, deadline, shutdown)."""

    def __init__(self, steps: int):
        super().__init__(f"generation cancelled after {steps} decoding steps")
        self.steps = steps


class Policy(ABC):
    """A text-generation backend. `tokenizer` is a Hugging Face tokenizer for the model's vocabulary."""

    tokenizer: Any
    version: int = 0  # bumped on every weight update, stored in each turn
    # True if `generate(requests, cancel=event)` checks `event` (a threading.Event) at every token and
    # raises `GenerationCancelled` once it is set: a server can then stop work nobody waits for.
    supports_cancel: bool = False

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Sample one continuation per request (batched where the backend can)."""

    async def agenerate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Async twin; the default runs the blocking `generate` in a worker thread."""
        return await asyncio.to_thread(self.generate, requests)

    @property
    def eos_token_id(self) -> int | None:
        return getattr(self.tokenizer, "eos_token_id", None)

    def close(self) -> None:
        """Release servers, sessions or devices."""


def find_stop(text: str, stops: tuple[str, ...] | list[str]) -> tuple[int, str] | None:
    """(end offset, stop string) of the earliest stop string in `text`, or None."""
    best: tuple[int, str] | None = None
    for s in stops:
        i = text.find(s)
        if i >= 0 and (best is None or i + len(s) < best[0]):
            best = (i + len(s), s)
    return best


def cut_at_stop(tokenizer: Any, ids: list[int], stops: tuple[str, ...], eos_id: int | None) -> tuple[int, str, str | None]:
    """How many of `ids` belong to the action: up to and including the first EOS or the token that
    completes the first stop string. Returns (count, finish_reason, stop_string)."""
    n = len(ids)
    eos_at = ids.index(eos_id) if eos_id is not None and eos_id in ids else None
    limit = eos_at + 1 if eos_at is not None else n
    if stops:
        hit = find_stop(tokenizer.decode(ids[:limit], skip_special_tokens=False), stops)
        if hit is not None:
            lo, hi = 1, limit  # smallest prefix whose text contains the stop string
            while lo < hi:
                mid = (lo + hi) // 2
                if find_stop(tokenizer.decode(ids[:mid], skip_special_tokens=False), stops):
                    hi = mid
                else:
                    lo = mid + 1
            return lo, "stop", find_stop(tokenizer.decode(ids[:lo], skip_special_tokens=False), stops)[1]  # type: ignore[index]
    if eos_at is not None:
        return eos_at + 1, "eos", None
    return n, "length", None
