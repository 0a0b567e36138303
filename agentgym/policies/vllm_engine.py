"""In-process vLLM backend: token ids in, sampled ids + log-probs + exact entropies out, weights synced live.

Conventions, the same as the HF backend's (`agentgym.policies.hf`):
- log-probs are of the temperature-scaled distribution the token was sampled from: the engine runs with
  ``logprobs_mode="processed_logprobs"`` (vLLM's default, ``raw_logprobs``, ignores the temperature);
- entropies are exact, of softmax(logits / T) over the whole vocabulary (T = 1 for greedy), recorded by a
  vLLM logits processor (`_EntropyRecorder`) at every decoding step, not estimated from the top-k;
- `score` is teacher forcing through vLLM's prompt log-probs. vLLM computes those from the raw logits, so
  at a temperature other than 1 the whole distribution is requested per position and rescaled exactly
  (log_softmax(l / T) from log_softmax(l): the same up to a constant per position), which costs a
  vocabulary-sized answer per target token: fine for checks, slow for long targets.

The engine core runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): the entropy recorder writes to
memory this process reads, and `load_weights` hands tensors to the model runner without copying them
through a socket. Automatic prefix caching is on by default, so ARPO branches and repeated contexts reuse
their prefixes' KV blocks; it is reset after every weight sync (cached blocks belong to the old weights).

vLLM's CPU attention supports head sizes of 32 and up; ``model="tiny"`` is therefore the tiny random model
with 2 heads of 32 (`models.tiny_model_dir`), not the HF test fixture's 4 heads of 16.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from typing import Any

from agentgym.policies.base import (Generation, GenerationRequest, Policy, SamplingParams, check_score_inputs,
                                    cut_at_stop)

_ENTROPY_KEY = "agentgym_entropy_id"
# Entropies recorded by `_EntropyRecorder`, by request key, then by output position. The engine runs in this
# process, so the processor (built by vLLM) and the policy share this dict; each generate call pops its keys.
_ENTROPIES: dict[str, dict[int, float]] = {}


def vllm_missing_reason() -> str | None:
    """Why vLLM cannot be used here, or None if it imports."""
    try:
        import vllm  # noqa: F401
    except Exception as e:  # ImportError, or vLLM's own import-time failures (a torchvision beside it...)
        return (f"vllm is not importable ({type(e).__name__}: {str(e)[:160]}); install it with "
                "scripts/setup-vllm.sh (CPU) or `pip install vllm` (GPU)")
    return None


def _make_entropy_recorder() -> type:
    """The logits-processor class (built lazily: its base class lives in vllm)."""
    import torch
    from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor
    from vllm.v1.sample.logits_processor.builtin import process_dict_updates

    class _EntropyRecorder(LogitsProcessor):
        """Records, for every request carrying an ``agentgym_entropy_id`` extra arg, the entropy of
        softmax(logits / T) at each step, keyed by the number of tokens already generated (the position of
        the token about to be sampled). It runs among the processors applied before sampling to every row,
        greedy ones included, and changes no logit. A step that vLLM discards (a partial prefill chunk)
        writes position 0 and is overwritten by the real first step."""

        def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool):
            self.rows: dict[int, tuple[str, float, list[int]]] = {}

        def is_argmax_invariant(self) -> bool:
            return False  # "invariant" processors are skipped for greedy rows; entropies are wanted there too

        def update_state(self, batch_update: BatchUpdate | None) -> None:
            def state(params: Any, _prompt: Any, output: list[int]) -> Any:
                key = (params.extra_args or {}).get(_ENTROPY_KEY)
                temperature = params.temperature if params.temperature and params.temperature > 1e-5 else 1.0
                return None if key is None else (key, temperature, output)

            process_dict_updates(self.rows, batch_update, state)

        def apply(self, logits: torch.Tensor) -> torch.Tensor:
            rows = [i for i in self.rows if i < logits.shape[0]]
            if not rows:
                return logits
            temps = torch.tensor([self.rows[i][1] for i in rows], dtype=torch.float32, device=logits.device)
            logp = torch.log_softmax(logits[rows].float() / temps[:, None], dim=-1)
            entropies = (-(logp.exp() * logp).sum(-1)).tolist()
            for i, h in zip(rows, entropies):
                key, _, output = self.rows[i]
                _ENTROPIES.setdefault(key, {})[len(output)] = h
            return logits

    return _EntropyRecorder


def resolve_model_dir(model: str) -> str:
    """A directory vLLM can load: ``embedded`` (the safetensors cache of SmolLM2-135M-Instruct), ``tiny``
    (the vLLM-compatible tiny random model), or a local model directory / hub id."""
    from agentgym.policies import models

    if model == "tiny":
        return str(models.tiny_model_dir())
    where, extra = models.resolve(model)
    if extra:
        raise ValueError(f"vllm: {model!r} is a GGUF file; give a transformers model directory (or 'embedded')")
    return where


class VLLMPolicy(Policy):
    """A `vllm.LLM` in this process. ``VLLMPolicy("embedded" | "tiny" | path, **engine_kwargs)``; engine
    kwargs go to `vllm.LLM` (e.g. ``enable_prefix_caching=False``, ``max_model_len=4096``)."""

    supports_weight_sync = True
    prefers_batching = True  # one engine step serves every path in the batch

    def __init__(self, model: str = "embedded", **engine_kwargs: Any):
        reason = vllm_missing_reason()
        if reason:
            raise ImportError(reason)
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"  # engine core here: entropies + direct weight loads
        import vllm

        from agentgym.policies.models import load_tokenizer

        path = resolve_model_dir(model)
        self.model_name = model
        self.tokenizer = load_tokenizer("tiny" if model == "tiny" else model)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        settings: dict[str, Any] = dict(
            model=path, dtype="float32", seed=0, enable_prefix_caching=True,
            # A fixed KV-cache budget rather than vLLM's default share of the machine's memory (92 %), which a
            # shared machine rarely has free: 1 GiB holds ~23k tokens of the embedded model in float32.
            kv_cache_memory_bytes=1 << 30,
            logprobs_mode="processed_logprobs", max_logprobs=-1,  # -1: `score` may ask for the whole vocabulary
            logits_processors=[_make_entropy_recorder()],
        )
        settings.update(engine_kwargs)
        if settings["logprobs_mode"] != "processed_logprobs":
            raise ValueError("vllm: logprobs_mode must be processed_logprobs (log-probs of the temperature-scaled "
                             "distribution, as the trainer scores them)")
        self.llm = vllm.LLM(**settings)
        self.prefix_caching = bool(settings["enable_prefix_caching"])
        self.version = 0
        self.prompt_tokens = self.cached_prompt_tokens = 0  # totals over `generate` calls (cache hit rate)
        self._ids = itertools.count()
        self._lock = threading.Lock()  # vllm.LLM is not re-entrant; agenerate runs generate in threads

    # ---- sampling ---------------------------------------------------------------------------------
    def _sampling_params(self, params: SamplingParams, key: str) -> Any:
        import vllm

        return vllm.SamplingParams(
            n=1, temperature=params.temperature, top_p=params.top_p, max_tokens=params.max_new_tokens,
            stop=list(params.stop) or None, include_stop_str_in_output=True, skip_special_tokens=False,
            logprobs=params.top_logprobs, extra_args={_ENTROPY_KEY: key},
        )

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        if not requests:
            return []
        keys = [f"g{next(self._ids)}" for _ in requests]
        prompts = [{"prompt_token_ids": list(r.prompt_ids)} for r in requests]
        params = [self._sampling_params(r.params, k) for r, k in zip(requests, keys)]
        with self._lock:
            try:
                outputs = self.llm.generate(prompts, params, use_tqdm=False)
            finally:
                recorded = [_ENTROPIES.pop(k, {}) for k in keys]
        gens = [self._generation(r.params, o.outputs[0], h) for r, o, h in zip(requests, outputs, recorded)]
        for g, o in zip(gens, outputs):  # prompt tokens served from the prefix cache (0 when it is off)
            g.meta["cached_tokens"] = int(o.num_cached_tokens or 0)
            self.cached_prompt_tokens += g.meta["cached_tokens"]
            self.prompt_tokens += len(o.prompt_token_ids or ())
        return gens

    def _generation(self, params: SamplingParams, out: Any, recorded: dict[int, float]) -> Generation:
        tokens = list(out.token_ids)
        n, finish, stop = cut_at_stop(self.tokenizer, tokens, params.stop, self.eos_token_id)
        tokens = tokens[:n]
        steps = (out.logprobs or [])[:n]
        logprobs = [float(step[t].logprob) for step, t in zip(steps, tokens)]
        if len(logprobs) != n or any(i not in recorded for i in range(n)):
            raise RuntimeError(f"vllm returned {len(logprobs)} log-probs and {len(recorded)} entropies for {n} tokens")
        meta: dict[str, Any] = {"temperature": params.temperature}
        if params.top_logprobs:
            meta["top_logprobs"] = [
                [(tid, float(lp.logprob)) for tid, lp in sorted(step.items(), key=lambda kv: kv[1].rank)
                 if lp.rank is not None and lp.rank <= params.top_logprobs]
                for step in steps]
        return Generation(token_ids=tokens, logprobs=logprobs, entropies=[recorded[i] for i in range(n)],
                          text=self.tokenizer.decode(tokens, skip_special_tokens=False),
                          finish_reason=finish, stop_string=stop, meta=meta)

    # ---- teacher forcing --------------------------------------------------------------------------
    def score(self, context_ids: list[list[int]], target_ids: list[list[int]],
              temperature: float = 1.0) -> list[list[float]]:
        import vllm

        check_score_inputs(context_ids, target_ids, temperature, self._vocab_size())
        todo = [i for i, t in enumerate(target_ids) if t]
        out: list[list[float]] = [[] for _ in target_ids]
        if not todo:
            return out
        scaled = abs(temperature - 1.0) > 1e-9
        # prompt_logprobs=-1: every token's log-prob, to rescale by 1/T; 0: only the prompt's own tokens
        params = vllm.SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=-1 if scaled else 0,
                                     detokenize=False)
        prompts = [{"prompt_token_ids": list(context_ids[i]) + list(target_ids[i])} for i in todo]
        with self._lock:
            outputs = self.llm.generate(prompts, params, use_tqdm=False)
        for i, o in zip(todo, outputs):  # prompt_logprobs[j]: log-probs at position j (None at 0)
            start = len(context_ids[i])
            out[i] = [_scaled_logprob(entry, tok, temperature) if scaled else float(entry[tok].logprob)
                      for entry, tok in zip(o.prompt_logprobs[start:], target_ids[i])]
        return out

    def _vocab_size(self) -> int:
        return int(self.llm.llm_engine.model_config.get_vocab_size())

    # ---- weight sync ------------------------------------------------------------------------------
    def load_weights(self, named_tensors: Any, version: int) -> None:
        """Load the trainer's weights into the running engine (`_load_into_worker`: the model's own
        `load_weights`, which maps checkpoint names onto vLLM's fused layers), then drop the prefix cache:
        its KV blocks were computed with the old weights."""
        items = named_tensors.items() if isinstance(named_tensors, dict) else named_tensors
        weights = [(name, tensor.detach()) for name, tensor in items]
        with self._lock:
            self.llm.collective_rpc(_load_into_worker, args=(weights,))
            if self.prefix_caching and not self.llm.reset_prefix_cache():
                raise RuntimeError("vllm: the prefix cache could not be reset after a weight sync")
        self.version = version

    def close(self) -> None:
        with self._lock:
            engine = getattr(self, "llm", None)
            if engine is not None:  # stop the engine core now rather than whenever the object is collected
                engine.llm_engine.engine_core.shutdown()
                del self.llm
                # the in-process engine set up torch.distributed groups: free them, so another engine can
                # start in this process (a benchmark comparing two settings does)
                from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

                cleanup_dist_env_and_memory()


def _load_into_worker(worker: Any, weights: list) -> None:
    """Runs on the engine's worker. On CPU, vLLM hands each linear layer's weight to a packed GEMM after
    loading and drops the weight itself (`dispatch_cpu_unquantized_gemm`), so neither the model's
    `load_weights` nor vLLM's in-place reload (which here restores stale packed weights: checked by the
    weight-sync test) can update it. So: give each such layer a fresh weight, load the checkpoint-named
    tensors through the model's own loader (fused q/k/v and gate/up included), then redo every layer's
    after-load step, which packs the new weights (and, for a tied LM head, the new embedding)."""
    import torch
    from vllm.model_executor.layers.linear import WEIGHT_LOADER_V2_SUPPORTED, LinearBase

    model = worker.model_runner.get_model()
    with torch.no_grad():
        for layer in model.modules():
            if isinstance(layer, LinearBase) and layer.weight.numel() == 0:
                method = layer.quant_method
                v2 = type(method).__name__ in WEIGHT_LOADER_V2_SUPPORTED
                method.create_weights(layer, layer.input_size_per_partition, layer.output_partition_sizes,
                                      layer.input_size, layer.output_size, layer.params_dtype,
                                      weight_loader=layer.weight_loader_v2 if v2 else layer.weight_loader)
        model.load_weights(weights=iter(weights))
        for layer in model.modules():
            method = getattr(layer, "quant_method", None)
            if method is not None and hasattr(layer, "cpu_linear"):
                method.process_weights_after_loading(layer)


def _scaled_logprob(entry: dict[int, Any], token: int, temperature: float) -> float:
    """log softmax(l / T)[token] from the whole raw distribution log softmax(l) (equal to l up to a constant)."""
    values = [lp.logprob / temperature for lp in entry.values()]
    top = max(values)
    return entry[token].logprob / temperature - (top + math.log(sum(math.exp(v - top) for v in values)))
