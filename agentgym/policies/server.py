"""`agentgym serve`: an OpenAI-compatible completions server over any agentgym `Policy`.

It speaks the subset of the API that token-exact RL needs, in vLLM's dialect: prompts as token ids, sampled
tokens returned as ``token_id:<n>`` strings with their log-probs, plus the per-token ``entropies`` (an
agentgym extension; clients fall back to top-k estimates when a server lacks it). One generation runs at a
time; the requests of a batch arrive together as a list of prompts.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentgym.policies.base import GenerationRequest, Policy, SamplingParams


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send many optional OpenAI fields we need not use

    model: str = "default"
    prompt: list[list[int]] | list[int] | str | list[str]
    max_tokens: int = Field(default=16, ge=1, le=32768)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] | str | None = None
    logprobs: int | None = None


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
        requests = [GenerationRequest(ids, params) for ids in to_ids(req.prompt)]
        async with lock:
            gens = await asyncio.to_thread(policy.generate, requests)
        choices = []
        for i, g in enumerate(gens):
            choices.append({
                "index": i, "text": g.text,
                "finish_reason": "length" if g.finish_reason == "length" else "stop",
                "stop_reason": g.stop_string,
                "logprobs": {"tokens": [f"token_id:{t}" for t in g.token_ids], "token_logprobs": g.logprobs,
                             "entropies": g.entropies, "top_logprobs": None},
            })
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": req.model, "choices": choices}

    return app


def serve(model: str = "embedded", host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    from agentgym.policies.hf import HFPolicy

    policy = HFPolicy.from_pretrained(model)
    uvicorn.run(create_app(policy, model_name=model), host=host, port=port, log_level="warning")
