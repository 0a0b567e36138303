"""Hugging Face transformers backend: batched sampling with per-token log-probs and entropies.

Generation itself is ``model.generate`` (its sampling, KV cache and stop strings). A logits processor at
the head of the chain sees each step's raw logits; it records the entropy of the temperature-scaled
distribution and, one step later when the sampled token is known, that token's log-prob. Only one step's
distribution is kept in memory, never ``steps x batch x vocab``.

``score`` is teacher forcing: contexts and targets are concatenated and right-padded (positions stay
0..n-1, so no position ids are needed), and only the positions that predict a target token go through
the LM head. Log-probs are taken under softmax(logits / temperature), the distribution `generate`
samples from at that temperature (default 1.0: the model's own distribution).

Multi-turn paths: each turn's prompt extends an earlier turn's prompt + action, so the past keys/values of
those tokens are kept (`agentgym.policies.kv_cache`) and a turn encodes only its new tokens. Threads:
`agentgym.policies.models.set_torch_threads` (default: the usable cores minus one).
"""

from __future__ import annotations

import logging
from typing import Any

from agentgym.policies.base import (Generation, GenerationCancelled, GenerationRequest, Policy, SamplingParams,
                                   check_score_inputs, cut_at_stop)
from agentgym.policies.kv_cache import PrefixKVCache, batch_inputs, generate_cache_name, harvest
from agentgym.policies.kv_cache import supported as kv_cache_supported

log = logging.getLogger(__name__)


class _TokenStatsRecorder:
    """LogitsProcessor that records log-prob and entropy of every sampled token (see module docstring)."""

    def __init__(self, temperature: float, prompt_len: int, top_k: int = 0):
        self.temperature = temperature if temperature > 0 else 1.0
        self.prompt_len = prompt_len
        self.top_k = top_k  # also keep each step's top-k (log-prob, id): cheap next to the forward pass
        self.top: list[Any] = []
        self.prev_logp = None
        self.logprobs: list[Any] = []
        self.entropies: list[Any] = []

    def collect(self, sampled) -> None:
        if self.prev_logp is not None:
            self.logprobs.append(self.prev_logp.gather(1, sampled[:, None]).squeeze(1))
            self.prev_logp = None

    def __call__(self, input_ids, scores):
        import torch

        if input_ids.shape[1] > self.prompt_len:
            self.collect(input_ids[:, -1])
        logp = torch.log_softmax(scores.float() / self.temperature, dim=-1)
        self.entropies.append(-(logp.exp() * logp).sum(-1))
        if self.top_k:
            self.top.append(logp.topk(min(self.top_k, logp.shape[-1]), dim=-1))
        self.prev_logp = logp
        return scores


class _CancelCheck:
    """StoppingCriteria: ends `model.generate` at the next token once the event is set."""

    def __init__(self, event: Any):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class HFPolicy(Policy):
    """A transformers causal LM. The same model object can be shared with the trainer (weights update in place;
    call `bump_version()` after each optimiser step)."""

    supports_cancel = True

    def __init__(self, model: Any, tokenizer: Any, max_batch_size: int = 32, max_batch_tokens: int = 16384,
                 kv_cache_mb: float = 1024, threads: int | None = None, images: str = "none"):
        """`kv_cache_mb`: memory for keys/values kept across turns (0: re-encode every prompt in full).
        `threads`: torch threads (None: the usable cores minus one; 0: leave torch's setting alone).
        `images`: "text" opts into the text fallback for screenshots (agentgym.rendering)."""
        from agentgym.policies.models import kv_bytes_per_token, set_torch_threads

        if images not in ("none", "text"):
            raise ValueError(f"images must be none or text for a text-only model, got {images!r} (a "
                             "vision-language model is loaded as HFVisionPolicy)")
        self.image_input = images
        set_torch_threads(threads)
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        # Rows x (longest prompt + new tokens) per generate call: bounds the attention buffers of a padded
        # batch (memory grows with rows x length^2) and keeps rows of similar length together.
        self.max_batch_tokens = max_batch_tokens
        self.max_score_logits = 2**27  # logits one `score` forward may hold (512 MB of float32)
        self.version = 0
        per_token = kv_bytes_per_token(model)
        reuse = kv_cache_mb > 0 and per_token and kv_cache_supported(model.config)
        if kv_cache_mb > 0 and not reuse:
            log.warning("KV reuse across turns is off for this model: it needs full-length per-layer caches and a "
                        "transformers release whose generate takes a DynamicCache; every turn re-encodes its context")
        self.kv_cache = PrefixKVCache(int(kv_cache_mb * 2**20 // per_token)) if reuse else None
        self._cache_name = generate_cache_name()  # generate's keyword for the cache: cache or past_key_values
        self.prompt_tokens_encoded = 0  # prompt tokens that went through the model (the rest came from the cache)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    @classmethod
    def from_pretrained(cls, name_or_path: str = "embedded", device: str | None = None, dtype: Any = None,
                        **kwargs: Any) -> HFPolicy:
        from agentgym.policies.models import default_device, load_model

        model, tok = load_model(name_or_path, dtype=dtype, device=device or default_device())
        model.eval()
        return cls(model, tok, **kwargs)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def bump_version(self) -> None:
        self.version += 1
        if self.kv_cache is not None:  # keys/values of the old weights
            self.kv_cache.clear()

    def _weights_stamp(self) -> tuple[int, int]:
        """The policy version and the sum of the parameters' in-place write counters (torch bumps a tensor's
        `_version` on every in-place write: an optimizer step, `load_state_dict`, a weight push). Cached keys and
        values are only reused under the stamp that computed them, so weights changed without `bump_version`
        (a user reloading a state dict) never meet stale keys/values. Summing ~300 counters costs microseconds."""
        return self.version, sum(p._version for p in self.model.parameters())

    def release(self, prefix_ids: list[int]) -> None:
        if self.kv_cache is not None:
            self.kv_cache.release(prefix_ids)

    supports_weight_sync = True

    def load_weights(self, named_tensors: Any, version: int) -> None:
        """Copy the trainer's weights in (checked first: a payload that does not fit changes nothing)."""
        from agentgym.policies.weights import load_into

        load_into(self.model, dict(named_tensors))
        self.version = version
        if self.kv_cache is not None:  # new weights, whatever the version number says (a push may repeat one)
            self.kv_cache.clear()

    def generate(self, requests: list[GenerationRequest], cancel: Any = None) -> list[Generation]:
        """`cancel`: a threading.Event checked at every token; once set, `GenerationCancelled` is raised."""
        out: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):  # one generate() call per distinct sampling setting
            p = r.params
            groups.setdefault((p.temperature, p.top_p, p.stop, p.max_new_tokens, p.top_logprobs), []).append(i)
        for idxs in groups.values():
            for chunk in self._chunks(sorted(idxs, key=lambda i: len(requests[i].prompt_ids)), requests):
                for i, g in zip(chunk, self._generate_batch([requests[i] for i in chunk], cancel)):
                    out[i] = g
        return out  # type: ignore[return-value]

    def _chunks(self, ordered: list[int], requests: list[GenerationRequest]) -> list[list[int]]:
        """Split length-sorted requests into batches within `max_batch_size` and `max_batch_tokens`."""
        return self._batches(ordered, lambda i: len(requests[i].prompt_ids) + requests[i].params.max_new_tokens,
                             self.max_batch_tokens)

    def _batches(self, ordered: list[int], width: Any, max_tokens: int) -> list[list[int]]:
        """Split items sorted by `width(i)` (ascending) into padded batches of at most `max_batch_size` rows
        and `max_tokens` padded tokens."""
        chunks: list[list[int]] = []
        current: list[int] = []
        for i in ordered:  # width(i) is the longest so far: the padded width of the batch
            if current and (len(current) >= self.max_batch_size or (len(current) + 1) * width(i) > max_tokens):
                chunks.append(current)
                current = []
            current.append(i)
        return chunks + ([current] if current else [])

    def _generate_batch(self, requests: list[GenerationRequest], cancel: Any = None) -> list[Generation]:
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        if cancel is not None and cancel.is_set():
            raise GenerationCancelled(0)
        params: SamplingParams = requests[0].params
        pad = self.tokenizer.pad_token_id
        prompts = [r.prompt_ids for r in requests]
        if self.kv_cache is not None:
            stamp = self._weights_stamp()
            if self.kv_cache.version != stamp:  # weights changed: a bump, a resume, or any in-place write
                self.kv_cache.clear()
                self.kv_cache.version = stamp
        matches = [self.kv_cache.match(p) for p in prompts] if self.kv_cache is not None else [(0, None)] * len(prompts)
        ids, mask, cache, width = batch_inputs(prompts, matches, pad, self.model.config)
        self.prompt_tokens_encoded += sum(len(p) - n for p, (n, _) in zip(prompts, matches))
        recorder = _TokenStatsRecorder(params.temperature, width, params.top_logprobs)
        sample = params.temperature > 0
        gen_kwargs: dict[str, Any] = dict(
            max_new_tokens=params.max_new_tokens, do_sample=sample, pad_token_id=pad,
            logits_processor=LogitsProcessorList([recorder]), return_dict_in_generate=True,
        )
        if sample:
            gen_kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        if params.stop:
            gen_kwargs.update(stop_strings=list(params.stop), tokenizer=self.tokenizer)
        if cache is not None:
            gen_kwargs[self._cache_name] = cache
        if cancel is not None:
            gen_kwargs.update(stopping_criteria=StoppingCriteriaList([_CancelCheck(cancel)]))
        with torch.no_grad():
            result = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                         **self._extra_inputs(requests), **gen_kwargs)
        seqs = result.sequences[:, width:].cpu()
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled(seqs.shape[1])
        if seqs.shape[1] > len(recorder.logprobs):  # the last sampled token: its log-prob is still pending
            recorder.collect(seqs[:, len(recorder.logprobs)].to(recorder.prev_logp.device))
        logprobs = torch.stack(recorder.logprobs, 1).cpu() if recorder.logprobs else torch.zeros(len(requests), 0)
        entropies = torch.stack(recorder.entropies, 1).cpu() if recorder.entropies else torch.zeros(len(requests), 0)
        gens = []
        kept: list[list[int]] = []
        for row in range(len(requests)):
            tokens = seqs[row].tolist()
            n, finish, stop = cut_at_stop(self.tokenizer, tokens, params.stop, self.eos_token_id)
            tokens = tokens[:n]
            kept.append(prompts[row] + tokens)
            meta: dict[str, Any] = {"temperature": params.temperature}
            if recorder.top:
                meta["top_logprobs"] = [list(zip(ix[row].tolist(), v[row].tolist())) for v, ix in recorder.top[:n]]
            gens.append(Generation(
                token_ids=tokens,
                logprobs=logprobs[row, :n].tolist(),
                entropies=entropies[row, :n].tolist(),
                text=self.tokenizer.decode(tokens, skip_special_tokens=False),
                finish_reason=finish,
                stop_string=stop,
                meta=meta,
            ))
        returned = getattr(result, self._cache_name, None) if self.kv_cache is not None else None
        if returned is not None:
            for tokens, layers in harvest(returned, mask, seqs.shape[1], kept):
                self.kv_cache.add(tokens, layers)
        return gens

    def _extra_inputs(self, requests: list[GenerationRequest]) -> dict[str, Any]:
        """Model inputs beside the token ids (a vision-language subclass adds the pixel values)."""
        return {}

    def score(self, context_ids: list[list[int]], target_ids: list[list[int]],
              temperature: float = 1.0) -> list[list[float]]:
        check_score_inputs(context_ids, target_ids, temperature, self.model.config.vocab_size)
        out: list[list[float]] = [[] for _ in target_ids]
        width = {i: len(context_ids[i]) + len(target_ids[i]) for i, t in enumerate(target_ids) if t}
        # A forward pass holds [rows x kept positions x vocabulary] logits: bound that, not only the tokens.
        max_tokens = min(self.max_batch_tokens, max(1, self.max_score_logits // self.model.config.vocab_size))
        for chunk in self._batches(sorted(width, key=width.__getitem__), width.__getitem__, max_tokens):
            scored = self._score_batch([context_ids[i] for i in chunk], [target_ids[i] for i in chunk], temperature)
            for i, logprobs in zip(chunk, scored):
                out[i] = logprobs
        return out

    def _score_batch(self, contexts: list[list[int]], targets: list[list[int]], temperature: float) -> list[list[float]]:
        import torch

        seqs = [c + t for c, t in zip(contexts, targets)]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, s in enumerate(seqs):
            ids[row, : len(s)] = torch.tensor(s)
            mask[row, : len(s)] = 1
        first = min(len(c) for c in contexts)  # logits at positions first-1 .. width-2 predict every target
        with torch.no_grad():
            logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                logits_to_keep=width - first + 1).logits[:, :-1]
        logp = torch.log_softmax(logits.float() / temperature, dim=-1)
        picked = logp.gather(-1, ids[:, first:, None].to(logp.device)).squeeze(-1).cpu()
        return [picked[row, len(c) - first : len(c) - first + len(t)].tolist()
                for row, (c, t) in enumerate(zip(contexts, targets))]
