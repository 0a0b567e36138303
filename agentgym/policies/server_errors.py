"""Errors and request checks of `agentgym serve`, in OpenAI's error format.

Every refusal is ``{"error": {"message", "type", "param", "code"}}`` with a 4xx status, as OpenAI and
vLLM answer: the official clients turn it into a readable exception instead of a dropped connection.
The checks run before a request waits for the model, so a request that cannot succeed never holds it.
"""

from __future__ import annotations

import json
from typing import Any


class OpenAIError(Exception):
    """An error answer: HTTP status plus OpenAI's error fields."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_json(status: int, message: str, code: str) -> bytes:
    """The body `agentgym.http_guard.GuardMiddleware` sends for its refusals (403/401/413)."""
    kind = {401: "authentication_error", 403: "permission_error"}.get(status, "invalid_request_error")
    return json.dumps(OpenAIError(status, message, kind, None, code).body()).encode()


def install_error_handlers(app: Any) -> None:
    """Answer validation errors, HTTP errors and crashes of a FastAPI app in OpenAI's format."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException

    def answer(e: OpenAIError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Any, exc: OpenAIError) -> JSONResponse:
        return answer(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Any, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            reason = (first.get("ctx") or {}).get("error", "")
            return answer(OpenAIError(400, f"the body is not valid JSON: {reason}", code="invalid_json"))
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        message = f"{'.'.join(loc) or 'body'}: {first.get('msg', 'invalid request')}"
        return answer(OpenAIError(400, message, param=loc[0] if loc else None, code="invalid_value"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Any, exc: HTTPException) -> JSONResponse:
        return answer(OpenAIError(exc.status_code, str(exc.detail), code=None))

    @app.exception_handler(Exception)
    async def crashed(request: Any, exc: Exception) -> JSONResponse:
        return answer(OpenAIError(500, f"internal error: {type(exc).__name__}: {exc}"[:2000], "server_error"))


def model_limits(policy: Any, max_model_len: int | None = None) -> tuple[int, int | None]:
    """(vocabulary size, context length) of a policy's model: the embedding rows and the position limit."""
    config = getattr(getattr(policy, "model", None), "config", None)
    vocab = getattr(config, "vocab_size", None) or len(policy.tokenizer)
    context = max_model_len or getattr(config, "max_position_embeddings", None)
    return int(vocab), (int(context) if context else None)


def prompt_ids(prompt: Any, tokenizer: Any, vocab_size: int, context: int | None, max_tokens: int) -> list[list[int]]:
    """The request's prompts as token ids, each checked: not empty, ids in the vocabulary, and room in the
    context for the prompt plus `max_tokens` (vLLM's rule and message)."""
    if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and isinstance(prompt[0], int)):
        prompt = [prompt]
    if not prompt:
        raise OpenAIError(400, "prompt is empty", param="prompt", code="invalid_value")
    out = []
    for i, p in enumerate(prompt):
        ids = list(tokenizer.encode(p, add_special_tokens=False)) if isinstance(p, str) else list(p)
        where = f"prompt[{i}]" if len(prompt) > 1 else "prompt"
        if not ids:
            raise OpenAIError(400, f"{where} is empty", param="prompt", code="invalid_value")
        bad = next((t for t in ids if not 0 <= t < vocab_size), None)
        if bad is not None:
            raise OpenAIError(400, f"{where} has token id {bad}, outside the vocabulary [0, {vocab_size})",
                              param="prompt", code="invalid_value")
        if context is not None and len(ids) + max_tokens > context:
            raise OpenAIError(400, f"This model's maximum context length is {context} tokens. However, you requested "
                              f"{len(ids) + max_tokens} tokens ({len(ids)} in the prompt, {max_tokens} in the "
                              "completion). Please reduce the length of the prompt or completion.",
                              param="prompt", code="context_length_exceeded")
        out.append(ids)
    return out
