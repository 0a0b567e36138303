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
    # Also report the N most likely tokens at each position (Generation.meta["top_logprobs"]: per sampled
    # token, a list of (token id, log-prob) under the same temperature-scaled distribution). 0: none.
    top_logprobs: int = 0


@dataclass
class GenerationRequest:
    prompt_ids: list[int]
    params: SamplingParams = field(default_factory=SamplingParams)
    # The images of the context, in the order their image tokens appear in `prompt_ids` (base64 strings;
    # only for a policy with image_input="vision", whose renderer placed those tokens).
    images: list[Any] = field(default_factory=list)
    # The same context as OpenAI chat messages (images as image_url parts), for a policy that declares
    # `wants_messages` (an OpenAI-compatible server of a vision model, reached on its chat route).
    messages: list[dict[str, Any]] | None = None


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
    # How observation images reach this policy (`agentgym.rendering`): "none" refuses them with a one-line
    # error, "text" renders each as a line of text (an opt-in fallback), "vision" puts them into the model's
    # input (then `processor` is the model's transformers processor).
    image_input: str = "none"
    processor: Any = None
    wants_messages: bool = False  # True: requests also carry the context as chat messages (`messages`)
    # True if `generate(requests, cancel=event)` checks `event` (a threading.Event) at every token and
    # raises `GenerationCancelled` once it is set: a server can then stop work nobody waits for.
    supports_cancel: bool = False
    # True for in-process models, where one batched forward serves many paths: the rollout engine then
    # gathers the paths' requests into batches. A server backend (which batches on its side) sets False and
    # each path's request is sent as soon as the path is ready.
    prefers_batching: bool = True

    @abstractmethod
    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Sample one continuation per request (batched where the backend can)."""

    async def agenerate(self, requests: list[GenerationRequest]) -> list[Generation]:
        """Async twin; the default runs the blocking `generate` in a worker thread."""
        return await asyncio.to_thread(self.generate, requests)

    def score(self, context_ids: list[list[int]], target_ids: list[list[int]],
              temperature: float = 1.0) -> list[list[float]]:
        """Teacher forcing: for each pair i, the log-prob of every token of `target_ids[i]` given
        `context_ids[i]` and the targets before it, under softmax(logits / temperature) (no top-p: the
        full distribution). temperature=1.0 (default) is the model's own distribution; pass the sampling
        temperature to get the log-probs `generate` reports at that temperature. Pairs may differ in length.
        Returns one list per pair, as long as its target. Backends that cannot score raise NotImplementedError.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot score given tokens (no model to teacher-force); "
                                  "use a Hugging Face or OpenAI-compatible policy")

    async def ascore(self, context_ids: list[list[int]], target_ids: list[list[int]],
                     temperature: float = 1.0) -> list[list[float]]:
        """Async twin of `score`; the default runs it in a worker thread."""
        return await asyncio.to_thread(self.score, context_ids, target_ids, temperature)

    # True if `load_weights` works: a sampler outside the trainer's module (a vLLM engine, a server) that
    # the trainer pushes its weights to after every update, so sampler and trainer stay on one policy.
    supports_weight_sync: bool = False

    def load_weights(self, named_tensors: Any, version: int) -> None:
        """Weight sync: replace the sampler's weights with `named_tensors` (an iterable of (name, tensor)
        pairs named as in the trainer's `model.named_parameters()` / `state_dict()`, LoRA merged) and set
        `self.version = version`. Called by the trainer after each optimizer step when the sampler is not the
        trainer's own module. Backends without a way to receive weights raise NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} cannot receive weights from the trainer")

    def release(self, prefix_ids: list[int]) -> None:
        """A hint: every path whose context starts with `prefix_ids` has ended (the rollout engine calls it when
        a task's group of paths is done), so state kept for them, e.g. the HF backend's KV cache, may go."""

    @property
    def eos_token_id(self) -> int | None:
        return getattr(self.tokenizer, "eos_token_id", None)

    def close(self) -> None:
        """Release servers, sessions or devices."""


def check_score_inputs(context_ids: list[list[int]], target_ids: list[list[int]], temperature: float,
                       vocab_size: int | None = None) -> None:
    """The one-line ValueError `Policy.score` gives for input it cannot score."""
    if len(context_ids) != len(target_ids):
        raise ValueError(f"score: {len(context_ids)} contexts for {len(target_ids)} targets (one context per target)")
    if not temperature > 0:
        raise ValueError(f"score: temperature must be > 0, got {temperature}")
    for i, (context, target) in enumerate(zip(context_ids, target_ids)):
        if target and not context:
            raise ValueError(f"score: context {i} is empty (the first target token needs a context to be predicted from)")
        for ids, what in ((context, "context"), (target, "target")):
            bad = next((t for t in ids if not isinstance(t, int) or isinstance(t, bool) or t < 0
                        or (vocab_size is not None and t >= vocab_size)), None)
            if bad is not None:
                raise ValueError(f"score: {what} {i} holds {bad!r}, not a token id of this vocabulary"
                                 + (f" (0..{vocab_size - 1})" if vocab_size else ""))


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
