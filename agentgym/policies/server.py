"""`agentgym serve`: an OpenAI-compatible completions server over any agentgym `Policy`.

It speaks the subset of the API that token-exact RL needs, in vLLM's dialect: prompts as token ids, sampled
tokens returned as ``token_id:<n>`` strings with their log-probs, plus the per-token ``entropies`` (an
agentgym extension; clients fall back to top-k estimates when a server lacks it). One generation runs at a
time; the requests of a batch arrive together as a list of prompts.

Prompt log-probs (teacher forcing, what `Policy.score` over HTTP uses) follow vLLM: ``echo=true`` puts the
prompt's tokens and log-probs (``None`` for the first token) before the generated ones, ``max_tokens=0``
with echo generates nothing, and ``prompt_logprobs=N`` adds vLLM's per-choice list
``[None, {"<token id>": {"logprob", "rank", "decoded_token"}}, ...]``. Only each prompt token's own
log-prob is reported (no top-N alternatives: rank is null). They are computed at the request's temperature
(1.0 when it is 0), which the choice reports as ``prompt_logprobs_temperature``; vLLM uses raw logits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send many optional OpenAI fields we need not use

    model: str = "default"
    prompt: list[list[int]] | list[int] | str | list[str]
    max_tokens: int = Field(default=16, ge=0, le=32768)  # 0 only with echo: score the prompt, generate nothing
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] | str | None = None
    logprobs: int | None = None
    echo: bool = False
    prompt_logprobs: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _generation_or_echo(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens=0 needs echo=true (it returns the prompt's log-probs only)")
        return self


def create_app(policy: Policy, model_name: str = "default") -> Any:
    from fastapi import FastAPI

    app = FastAPI(title="agentgym policy server")
    lock = asyncio.Lock()

    def to_ids(prompt: Any) -> list[list[int]]:
        if isinstance(prompt, str):
            return [list(policy.tokenizer.encode(prompt, add_special_tokens=False))]
        if prompt and isinstance(prompt[0], int):
            return [list(prompt)]
        return [to_ids(p)[0] for p in prompt]

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model"}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> dict[str, Any]:
        stops = tuple([req.stop] if isinstance(req.stop, str) else (req.stop or []))
        params = SamplingParams(max_new_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p, stop=stops)
        prompts = to_ids(req.prompt)
        requests = [GenerationRequest(ids, params) for ids in prompts]
        async with lock:
            scored = await score_prompts(prompts, req.temperature) if req.echo or req.prompt_logprobs is not None else None
            gens = await asyncio.to_thread(policy.generate, requests) if req.max_tokens > 0 else [_NOTHING] * len(prompts)
        choices = []
        for i, g in enumerate(gens):
            choices.append({
                "index": i, "text": g.text,
                "finish_reason": "length" if g.finish_reason == "length" else "stop",
                "stop_reason": g.stop_string,
                "logprobs": {"tokens": [f"token_id:{t}" for t in g.token_ids], "token_logprobs": g.logprobs,
                             "entropies": g.entropies, "top_logprobs": None},
            })
        if scored is not None:
            add_prompt_logprobs(choices, prompts, *scored, echo=req.echo, listed=req.prompt_logprobs is not None)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": req.model, "choices": choices}

    async def score_prompts(prompts: list[list[int]], temperature: float) -> tuple[list[list[float | None]], float]:
        """Each prompt's per-token log-probs by teacher forcing (None for its first token), and the
        temperature they were taken at."""
        from fastapi import HTTPException

        temperature = temperature if temperature > 0 else 1.0
        try:
            scores = await asyncio.to_thread(policy.score, [p[:1] for p in prompts], [p[1:] for p in prompts], temperature)
        except (NotImplementedError, ValueError) as e:
            raise HTTPException(status_code=400, detail=str(e)) from e
        return [[None, *s] for s in scores], temperature

    def add_prompt_logprobs(choices: list[dict[str, Any]], prompts: list[list[int]], scores: list[list[float | None]],
                            temperature: float, echo: bool, listed: bool) -> None:
        for choice, prompt, score in zip(choices, prompts, scores):
            choice["prompt_logprobs_temperature"] = temperature
            if listed:
                choice["prompt_logprobs"] = [None if v is None else {str(t): {
                    "logprob": v, "rank": None, "decoded_token": policy.tokenizer.decode([t])}}
                    for t, v in zip(prompt, score)]
            if echo:
                lp = choice["logprobs"]
                choice["text"] = policy.tokenizer.decode(prompt, skip_special_tokens=False) + choice["text"]
                lp["tokens"] = [f"token_id:{t}" for t in prompt] + lp["tokens"]
                lp["token_logprobs"] = score + lp["token_logprobs"]
                lp["entropies"] = [None] * len(prompt) + lp["entropies"]

    return app


_NOTHING = Generation(token_ids=[], logprobs=[], entropies=[], text="", finish_reason="length")  # max_tokens=0


def serve(model: str = "embedded", host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from agentgym.policies.hf import HFPolicy

    policy = HFPolicy.from_pretrained(model)
    uvicorn.run(create_app(policy, model_name=model), host=host, port=port, log_level="warning")
