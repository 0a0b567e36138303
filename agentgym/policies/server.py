"""`agentgym serve`: an OpenAI-compatible completions server over any agentgym `Policy`.

It speaks the subset of the API that token-exact RL needs, in vLLM's dialect: prompts as token ids, sampled
tokens returned as ``token_id:<n>`` strings with their log-probs, plus the per-token ``entropies`` (an
agentgym extension; clients fall back to top-k estimates when a server lacks it). One generation runs at a
time; the requests of a batch arrive together as a list of prompts.

What a stranger meets (README, Security): the Host/Origin check and body cap of `agentgym.http_guard`, an
optional bearer token (required to listen beyond loopback), requests checked before they wait for the
model (empty prompts, token ids outside the vocabulary, prompt + max_tokens beyond the context: 400, as
vLLM answers), a deadline per request, generation stopped when its client disconnects or the server gets
SIGTERM (agentgym.policies.generation_gate), and every error in OpenAI's format (server_errors).
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose `Request` is imported
# inside create_app (fastapi stays an optional, lazily imported dependency).
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agentgym.http_guard import GuardMiddleware, HostCheck, check_bind
from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams
from agentgym.policies.generation_gate import GenerationGate
from agentgym.policies.server_errors import error_json, install_error_handlers, model_limits, prompt_ids

TOKEN_ENV_VAR = "AGENTGYM_SERVE_TOKEN"


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # clients send many optional OpenAI fields

    model: str = "default"
    prompt: list[list[int]] | list[int] | str | list[str]
    max_tokens: int = Field(default=16, ge=1, le=32768)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    stop: list[str] | str | None = None
    logprobs: int | None = None


def completion_choice(i: int, g: Generation) -> dict[str, Any]:
    return {
        "index": i, "text": g.text,
        "finish_reason": "length" if g.finish_reason == "length" else "stop",
        "stop_reason": g.stop_string,
        "logprobs": {"tokens": [f"token_id:{t}" for t in g.token_ids], "token_logprobs": g.logprobs,
                     "entropies": g.entropies, "top_logprobs": None},
    }


def create_app(policy: Policy, model_name: str = "default", *, token: str | None = None,
               bind_host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] = (), max_body_bytes: int = 32 * 2**20,
               request_timeout_s: float = 300.0, max_model_len: int | None = None) -> Any:
    """The server as an ASGI app (`.app` is the FastAPI app; `.app.state.gate` its generation gate)."""
    from fastapi import FastAPI, Request

    app = FastAPI(title="agentgym policy server")
    install_error_handlers(app)
    gate = GenerationGate(policy, request_timeout_s)
    app.state.gate = gate
    vocab_size, context = model_limits(policy, max_model_len)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", **gate.stats()}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_name, "object": "model", "max_model_len": context}]}

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request) -> dict[str, Any]:
        stops = tuple([req.stop] if isinstance(req.stop, str) else (req.stop or []))
        params = SamplingParams(max_new_tokens=req.max_tokens, temperature=req.temperature, top_p=req.top_p, stop=stops)
        prompts = prompt_ids(req.prompt, policy.tokenizer, vocab_size, context, req.max_tokens)
        gens = await gate.run([GenerationRequest(ids, params) for ids in prompts], request.is_disconnected)
        return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
                "model": req.model, "choices": [completion_choice(i, g) for i, g in enumerate(gens)]}

    return GuardMiddleware(app, HostCheck(bind_host, allowed_hosts), token or None, max_body_bytes,
                           error_body=error_json)


def serve(model: str = "embedded", host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          allowed_hosts: tuple[str, ...] = (), max_body_bytes: int = 32 * 2**20, request_timeout_s: float = 300.0,
          max_model_len: int | None = None, announce: Any = print) -> None:
    """Load `model` (``embedded``, ``tiny``, a path or hub id) and serve it until SIGINT/SIGTERM, which stop
    a running generation at its next token."""
    import uvicorn

    from agentgym.policies.hf import HFPolicy

    check_bind(host, token, "agentgym serve")
    policy = HFPolicy.from_pretrained(model)
    guarded = create_app(policy, model_name=model, token=token, bind_host=host, allowed_hosts=allowed_hosts,
                         max_body_bytes=max_body_bytes, request_timeout_s=request_timeout_s, max_model_len=max_model_len)
    gate: GenerationGate = guarded.app.state.gate

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            gate.cancel_all()  # a running generation stops at its next token, so shutdown is not blocked by it
            super().handle_exit(sig, frame)

    config = uvicorn.Config(guarded, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
    announce(f"serving {model} on http://{host if ':' not in host else f'[{host}]'}:{port}/v1"
             + (" (bearer token required)" if token else ""))
    Server(config).run()
