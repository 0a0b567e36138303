"""`agentgym serve`: a small OpenAI-compatible server over any agentgym `Policy`, for machines without vLLM.

``/v1/completions`` and ``/v1/chat/completions`` (messages rendered with the model's chat template), with
``n``, ``seed`` (torch seeded right before the request's generation: same request, same samples), ``echo``,
``usage``, ``logprobs``/``top_logprobs`` (the top-N alternatives of each sampled token, at the sampling
temperature), stop strings cut from the text and ``stream=true``. Streaming sends the *finished*
generation as server-sent events in OpenAI's chunk format, one chunk per sampled token, ending with
``data: [DONE]``: the HF backend generates a batch in one ``model.generate`` call, so the first chunk comes
when the generation is done (a client sees the format, not lower latency). Field semantics and the text /
token-id rules are in `agentgym.policies.server_api`; any field it does not declare is a 400 naming it.

In vLLM's dialect: prompts may be token ids, sampled tokens come back as ``token_id:<n>`` strings with
their log-probs, plus the per-token ``entropies`` (an agentgym extension; clients fall back to top-k
estimates when a server lacks it). One generation runs at a time; the requests of a batch arrive together
as a list of prompts. ``GET /v1/models`` reports ``max_model_len`` and ``vocab_size``.

What a stranger meets (README, Security): the Host/Origin check and body cap of `agentgym.http_guard`, an
optional bearer token (required to listen beyond loopback), requests checked before they wait for the
model (empty prompts, token ids outside the vocabulary, prompt + max_tokens beyond the context: 400, as
vLLM answers), a deadline per request, generation stopped when its client disconnects or the server gets
SIGTERM (agentgym.policies.generation_gate), and every error in OpenAI's format (server_errors).

Prompt log-probs (teacher forcing, what `Policy.score` over HTTP uses) follow vLLM: ``echo=true`` puts the
prompt's tokens and log-probs (``None`` for the first token) before the generated ones, ``max_tokens=0``
with echo generates nothing, and ``prompt_logprobs=N`` adds vLLM's per-choice list
``[None, {"<token id>": {"logprob", "rank", "decoded_token"}}, ...]``. Only each prompt token's own
log-prob is reported (no top-N alternatives: rank is null). They are computed at the request's temperature
(1.0 when it is 0), which the choice reports as ``prompt_logprobs_temperature``; vLLM uses raw logits.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, whose `Request` is imported
# inside create_app (fastapi stays an optional, lazily imported dependency).
import time
import uuid
from typing import Any

from agentgym.http_guard import GuardMiddleware, HostCheck, check_bind
from agentgym.policies.base import Generation, GenerationRequest, Policy, SamplingParams
from agentgym.policies.generation_gate import GenerationGate
from agentgym.policies.server_api import Answers, ChatRequest, CompletionRequest, usage
from agentgym.policies.server_errors import OpenAIError, error_json, install_error_handlers, model_limits, prompt_ids
from agentgym.images import ImageError, image_bytes, sniff_mime

TOKEN_ENV_VAR = "AGENTGYM_SERVE_TOKEN"


def create_app(policy: Policy, model_name: str = "default", *, token: str | None = None,
               bind_host: str = "127.0.0.1", allowed_hosts: tuple[str, ...] = (), max_body_bytes: int = 32 * 2**20,
               request_timeout_s: float = 300.0, max_model_len: int | None = None) -> Any:
    """The server as an ASGI app (`.app` is the FastAPI app; `.app.state.gate` its generation gate)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import StreamingResponse

    from agentgym.rendering import ChatRenderer

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
        return {"object": "list", "data": [{"id": model_name, "object": "model", "owned_by": "agentgym",
                                            "max_model_len": context, "vocab_size": vocab_size,
                                            # log-probs of the temperature-scaled distribution (vLLM's
                                            # --logprobs-mode processed_logprobs), as the HF backend's
                                            "logprobs_mode": "processed"}]}

    async def sample(prompts: list[list[int]], req: Any, max_tokens: int, top: int, request: Any,
                     scores_at: float | None = None, images: list[Any] = ()) -> tuple[Any, list[Generation]]:
        """`req.n` samples per prompt (choice index = prompt * n + sample, as vLLM orders them), under the
        gate; `req.seed` seeds torch right before generating, so a request with a seed is reproducible."""
        params = SamplingParams(max_new_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p,
                                stop=req.stops(), top_logprobs=top)

        def job(cancel: Any) -> tuple[Any, list[Generation]]:
            scores = score_prompts(prompts, scores_at) if scores_at is not None else None
            if max_tokens == 0:
                return scores, [_NOTHING] * len(prompts)
            if req.seed is not None:
                import torch

                torch.manual_seed(req.seed)
            requests = [GenerationRequest(ids, params, images=list(images)) for ids in prompts for _ in range(req.n)]
            gens = policy.generate(requests, cancel=cancel) if policy.supports_cancel else policy.generate(requests)  # type: ignore[call-arg]
            return scores, gens

        return await gate.run_job(job, request.is_disconnected)

    def respond(answers: Answers, choices: list[dict[str, Any]], gens: list[Generation], use: dict[str, int]) -> Any:
        if not answers.req.stream:
            return answers.whole(choices, use)
        return StreamingResponse(answers.chunks(choices, gens, use), media_type="text/event-stream")

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request) -> Any:
        prompts = prompt_ids(req.prompt, policy.tokenizer, vocab_size, context, req.max_tokens)
        wants_scores = req.echo or req.prompt_logprobs is not None
        temperature = req.temperature if req.temperature > 0 else 1.0
        scores, gens = await sample(prompts, req, req.max_tokens, req.logprobs or 0, request,
                                    temperature if wants_scores else None)
        answers = Answers(policy.tokenizer, req, chat=False)
        choices = [answers.choice(i, g, req.logprobs, req.logprobs is not None or wants_scores)
                   for i, g in enumerate(gens)]
        if scores is not None:
            add_prompt_logprobs(choices, prompts, scores, temperature, echo=req.echo,
                                listed=req.prompt_logprobs is not None, skip_special=req.skip_special_tokens)
        return respond(answers, choices, gens, usage(prompts, gens))

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatRequest, request: Request) -> Any:
        messages, images = chat_inputs(req.messages, policy.image_input == "vision", model_name)
        try:
            ids = ChatRenderer.for_policy(policy).prompt_ids(messages, images)
        except Exception as e:  # a template that rejects the conversation (roles out of order, ...)
            raise OpenAIError(400, f"messages: the chat template rejected them: {e}", param="messages") from None
        room = context - len(ids) if context else None
        max_tokens = req.new_tokens(room)
        prompts = prompt_ids([ids], policy.tokenizer, vocab_size, context, max_tokens)
        _, gens = await sample(prompts, req, max_tokens, req.top_logprobs or 0, request, images=images)
        answers = Answers(policy.tokenizer, req, chat=True)
        choices = [answers.choice(i, g, req.top_logprobs, req.logprobs) for i, g in enumerate(gens)]
        if req.return_token_ids and not req.stream:  # vLLM's fields: what the model was fed and sampled
            for choice, g in zip(choices, gens):
                choice["token_ids"] = list(g.token_ids)
            return {**answers.whole(choices, usage(prompts, gens)), "prompt_token_ids": ids}
        return respond(answers, choices, gens, usage(prompts, gens))

    def score_prompts(prompts: list[list[int]], temperature: float) -> list[list[float | None]]:
        """Each prompt's per-token log-probs by teacher forcing (None for its first token)."""
        try:
            scores = policy.score([p[:1] for p in prompts], [p[1:] for p in prompts], temperature)
        except (NotImplementedError, ValueError) as e:
            raise OpenAIError(400, str(e), param="echo") from None
        return [[None, *s] for s in scores]

    def add_prompt_logprobs(choices: list[dict[str, Any]], prompts: list[list[int]], scores: list[list[float | None]],
                            temperature: float, echo: bool, listed: bool, skip_special: bool = True) -> None:
        for choice, prompt, score in zip(choices, prompts, scores):
            choice["prompt_logprobs_temperature"] = temperature
            if listed:
                choice["prompt_logprobs"] = [None if v is None else {str(t): {
                    "logprob": v, "rank": None, "decoded_token": policy.tokenizer.decode([t])}}
                    for t, v in zip(prompt, score)]
            if echo:
                lp = choice["logprobs"]
                choice["text"] = policy.tokenizer.decode(prompt, skip_special_tokens=skip_special) + choice["text"]
                if lp is None:
                    continue
                lp["tokens"] = [f"token_id:{t}" for t in prompt] + lp["tokens"]
                lp["token_logprobs"] = score + lp["token_logprobs"]
                lp["entropies"] = [None] * len(prompt) + lp["entropies"]

    return GuardMiddleware(app, HostCheck(bind_host, allowed_hosts), token or None, max_body_bytes,
                           error_body=error_json)


def chat_inputs(messages: list[Any], vision: bool, model_name: str) -> tuple[list[dict[str, Any]], list[str]]:
    """The messages as the renderer takes them, and their images (base64, in order). Image parts must be
    ``data:`` URLs (nothing is fetched) and need a vision-language model; text parts of a text model are
    joined into a plain string."""
    out: list[dict[str, Any]] = []
    images: list[str] = []
    for i, m in enumerate(messages):
        msg = m.model_dump(exclude_none=True)
        if isinstance(m.content, list):
            parts: list[dict[str, Any]] = []
            for part in m.content:
                if part.type == "text":
                    parts.append({"type": "text", "text": part.text})
                    continue
                if not vision:
                    raise OpenAIError(400, f"messages[{i}]: model {model_name!r} takes no images (text-only)",
                                      param="messages")
                url = part.image_url.url
                if not url.startswith("data:image/") or ";base64," not in url:
                    raise OpenAIError(400, f"messages[{i}]: image_url must be a data:image/...;base64 URL "
                                      "(this server fetches nothing)", param="messages")
                try:
                    sniff_mime(image_bytes(url))  # decodes and checks it is an image
                except ImageError as e:
                    raise OpenAIError(400, f"messages[{i}]: {str(e)[:200]}", param="messages") from None
                images.append(url.partition(",")[2])
                parts.append({"type": "image"})
            msg["content"] = parts if vision else "".join(p["text"] for p in parts)
        out.append(msg)
    return out, images


_NOTHING = Generation(token_ids=[], logprobs=[], entropies=[], text="", finish_reason="length")  # max_tokens=0


def serve(model: str = "embedded", host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          allowed_hosts: tuple[str, ...] = (), max_body_bytes: int = 32 * 2**20, request_timeout_s: float = 300.0,
          max_model_len: int | None = None, announce: Any = print) -> None:
    """Load `model` (``embedded``, ``tiny``, a path or hub id) and serve it until SIGINT/SIGTERM, which stop
    a running generation at its next token."""
    import uvicorn

    from agentgym.policies.hf import HFPolicy

    check_bind(host, token, "agentgym serve")
    if model == "tiny-vlm" or model.startswith("hf-vision:"):  # an image-text-to-text model: chat takes images
        from agentgym.policies.hf_vision import HFVisionPolicy

        policy: HFPolicy = HFVisionPolicy.from_pretrained(model.removeprefix("hf-vision:"))
    else:
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
