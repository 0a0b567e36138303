"""A policy backed by any OpenAI-compatible completions server (vLLM, SGLang, `agentgym serve`).

Token-in/token-out: prompts are sent as token ids and the server is asked to return sampled tokens as ids
(vLLM's ``return_tokens_as_token_ids``). Per-token entropies come from the server when it reports them
(`agentgym serve` does), else are estimated from the top-k log-probs it returns. Network failures and
5xx/429 answers are retried with exponential backoff (tenacity); a server that is down, too slow, or
answers garbage produces a `PolicyServerError` that says which of those happened.
"""

from __future__ import annotations

import math
import os
from typing import Any

import httpx
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams


class PolicyServerError(RuntimeError):
    """The model server could not produce a usable answer."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code in (429, 500, 502, 503, 504)


class OpenAICompatPolicy(Policy):
    def __init__(self, base_url: str, model: str | None = None, tokenizer: Any = "embedded",
                 timeout_s: float = 120.0, max_attempts: int = 4, api_key: str | None = None, top_logprobs: int = 10):
        from agentgym.policies.models import load_tokenizer

        self.base_url = base_url.rstrip("/")
        self.tokenizer = load_tokenizer(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.model = model or "default"
        self.top_logprobs = top_logprobs
        self.version = 0
        api_key = api_key or os.environ.get("AGENTGYM_SERVE_TOKEN")  # `agentgym serve --token`'s variable
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout_s, headers=headers)
        self._post = retry(retry=retry_if_exception(_retryable), stop=stop_after_attempt(max_attempts),
                           wait=wait_exponential(multiplier=0.2, max=5), reraise=True)(self._post_once)
        self.timeout_s = timeout_s

    def close(self) -> None:
        self.client.close()

    def _post_once(self, body: dict[str, Any]) -> httpx.Response:
        response = self.client.post("/v1/completions", json=body)
        response.raise_for_status()
        return response

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        groups: dict[tuple, list[int]] = {}
        for i, r in enumerate(requests):
            p = r.params
            groups.setdefault((p.max_new_tokens, p.temperature, p.top_p, p.stop), []).append(i)
        for idxs in groups.values():
            for i, gen in zip(idxs, self._complete([requests[i].prompt_ids for i in idxs], requests[idxs[0]].params)):
                out[i] = gen
        return out  # type: ignore[return-value]

    def _complete(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        body = {
            "model": self.model, "prompt": prompts, "max_tokens": params.max_new_tokens,
            "temperature": params.temperature, "top_p": params.top_p, "stop": list(params.stop) or None,
            "logprobs": self.top_logprobs, "return_tokens_as_token_ids": True,
            "include_stop_str_in_output": True, "skip_special_tokens": False,
        }
        try:
            response = self._post(body)
        except httpx.TimeoutException as e:
            raise PolicyServerError(f"model server {self.base_url} did not answer within {self.timeout_s:g} s") from e
        except httpx.TransportError as e:
            raise PolicyServerError(f"model server {self.base_url} is unreachable: {type(e).__name__}: {e}") from e
        except httpx.HTTPStatusError as e:
            raise PolicyServerError(f"model server {self.base_url} answered HTTP {e.response.status_code}: "
                                    f"{e.response.text[:200]}") from e
        try:
            choices = sorted(response.json()["choices"], key=lambda c: c.get("index", 0))
            if len(choices) != len(prompts):
                raise ValueError(f"{len(choices)} choices for {len(prompts)} prompts")
            return [self._parse_choice(c) for c in choices]
        except (ValueError, KeyError, TypeError) as e:
            raise PolicyServerError(f"model server {self.base_url} returned an invalid completion "
                                    f"({type(e).__name__}: {e}); body starts {response.text[:120]!r}") from e

    def _parse_choice(self, choice: dict[str, Any]) -> Generation:
        text = choice["text"]
        lp = choice.get("logprobs") or {}
        tokens = lp.get("tokens")
        exact = bool(tokens) and all(isinstance(t, str) and t.startswith("token_id:") for t in tokens)
        if exact:
            ids = [int(t.split(":", 1)[1]) for t in tokens]
        else:  # the server gave text only: ids re-derived, flagged so the engine refuses to train on them
            ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        logprobs = [float(x) if x is not None else 0.0 for x in (lp.get("token_logprobs") or [0.0] * len(ids))]
        if len(logprobs) != len(ids):
            raise ValueError(f"{len(logprobs)} log-probs for {len(ids)} tokens")
        entropies = lp.get("entropies") or [_topk_entropy(d) for d in (lp.get("top_logprobs") or [{}] * len(ids))]
        finish = choice.get("finish_reason") or "length"
        stop_string = choice.get("stop_reason") if isinstance(choice.get("stop_reason"), str) else None
        if finish == "stop" and stop_string is None and ids and ids[-1] == self.eos_token_id:
            finish = "eos"
        return Generation(token_ids=ids, logprobs=logprobs, entropies=[float(e) for e in entropies], text=text,
                          finish_reason=finish, stop_string=stop_string, token_exact=exact)


def _topk_entropy(top: dict[str, float] | None) -> float:
    """Entropy estimate from the top-k log-probs (renormalised), as ARPO's reference code does."""
    if not top:
        return 0.0
    probs = [math.exp(v) for v in top.values()]
    z = sum(probs)
    return -sum(p / z * math.log(p / z) for p in probs if p > 0)
