"""The OpenAI request fields `agentgym serve` accepts, and the answers it builds from `Generation`s.

Every field a client may send is declared: an unknown or unsupported one (``best_of``, ``suffix``,
``tools``, a non-zero ``presence_penalty``...) is a 400 naming it, never silently ignored.

Text follows OpenAI/vLLM: a stop string ends the text and is not part of it (vLLM's
``include_stop_str_in_output=true`` keeps it), and special tokens such as ``<|im_end|>`` are left out of
the text unless ``skip_special_tokens=false``. The token list is always exactly what was sampled — the stop
string's tokens and the EOS token included — so a token-exact client (agentgym's ``openai:`` policy) never
re-tokenises text. Tokens are reported as ``token_id:<n>`` (vLLM's ``return_tokens_as_token_ids``, on by
default here since this server exists for token-exact RL; ``false`` gives decoded token strings).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentgym.policies.base import Generation


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = "default"
    max_tokens: int | None = Field(default=None, ge=0, le=32768)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    n: int = Field(default=1, ge=1, le=16)
    seed: int | None = None
    stop: list[str] | str | None = None
    stream: bool = False
    stream_options: dict[str, bool] | None = None
    user: str | None = None
    presence_penalty: float = Field(default=0.0)
    frequency_penalty: float = Field(default=0.0)
    logit_bias: dict[str, float] | None = None
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    return_tokens_as_token_ids: bool = True

    @model_validator(mode="after")
    def _unsupported_values(self) -> _Sampling:
        for name in ("presence_penalty", "frequency_penalty"):
            if getattr(self, name):
                raise ValueError(f"{name} is not supported by agentgym serve (only 0)")
        if self.logit_bias:
            raise ValueError("logit_bias is not supported by agentgym serve")
        unknown = sorted(set(self.stream_options or {}) - {"include_usage"})
        if unknown:
            raise ValueError(f"stream_options: {unknown} not supported by agentgym serve (only include_usage)")
        return self

    def stops(self) -> tuple[str, ...]:
        return tuple([self.stop] if isinstance(self.stop, str) else (self.stop or []))


class CompletionRequest(_Sampling):
    prompt: list[list[int]] | list[int] | str | list[str]
    max_tokens: int = Field(default=16, ge=0, le=32768)  # 0 only with echo: score the prompt, generate nothing
    logprobs: int | None = Field(default=None, ge=0, le=20)
    echo: bool = False
    prompt_logprobs: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _generation_or_echo(self) -> CompletionRequest:
        if self.max_tokens == 0 and not self.echo:
            raise ValueError("max_tokens=0 needs echo=true (it returns the prompt's log-probs only)")
        if self.stream and (self.echo or self.prompt_logprobs is not None):
            raise ValueError("echo and prompt_logprobs are not supported with stream=true")
        return self


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["text"]
    text: str


class ImageURL(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="A data: URL (base64); the server fetches nothing.")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["image_url"]
    image_url: ImageURL


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[TextPart | ImagePart]
    name: str | None = None


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    return_token_ids: bool = False  # vLLM: also answer the prompt's token ids (`prompt_token_ids`)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)

    @model_validator(mode="after")
    def _top_needs_logprobs(self) -> ChatRequest:
        if self.top_logprobs and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=true")
        return self

    def new_tokens(self, room: int | None) -> int:
        """max_completion_tokens, else max_tokens, else what the context leaves (OpenAI's default)."""
        return self.max_completion_tokens or self.max_tokens or min(room or 4096, 4096)


def answer_text(tokenizer: Any, g: Generation, skip_special: bool, keep_stop: bool) -> str:
    """The text OpenAI returns for a generation: special tokens dropped unless asked, the stop string cut."""
    text = tokenizer.decode(g.token_ids, skip_special_tokens=skip_special)
    if g.finish_reason == "stop" and g.stop_string and not keep_stop:
        at = text.rfind(g.stop_string)
        if at >= 0:
            text = text[:at]
    return text


def finish_reason(g: Generation) -> str:
    return "length" if g.finish_reason == "length" else "stop"


def usage(prompts: list[list[int]], gens: list[Generation]) -> dict[str, int]:
    """Each prompt counted once (as vLLM does with n > 1), every sampled token counted."""
    p, c = sum(len(x) for x in prompts), sum(len(g.token_ids) for g in gens)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


class Answers:
    """Builds completion / chat answers (whole or as stream chunks) for one request."""

    def __init__(self, tokenizer: Any, req: _Sampling, chat: bool):
        self.tok, self.req, self.chat = tokenizer, req, chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def token_name(self, t: int) -> str:
        return f"token_id:{t}" if self.req.return_tokens_as_token_ids else self.tok.decode([t])

    def top(self, g: Generation, want: int | None) -> list[list[tuple[int, float]]] | None:
        return [alts[:want] for alts in g.meta.get("top_logprobs", [])] if want else None

    def completion_logprobs(self, g: Generation, want: int | None) -> dict[str, Any] | None:
        top = self.top(g, want)
        return {"tokens": [self.token_name(t) for t in g.token_ids], "token_logprobs": list(g.logprobs),
                "entropies": list(g.entropies),
                "top_logprobs": [{self.token_name(t): v for t, v in alts} for alts in top] if top else None}

    def chat_logprobs(self, g: Generation, want: int | None) -> dict[str, Any]:
        top = self.top(g, want) or [[] for _ in g.token_ids]

        def entry(t: int, v: float) -> dict[str, Any]:
            name = self.token_name(t)
            return {"token": name, "logprob": v, "bytes": list(self.tok.decode([t]).encode())}

        return {"content": [{**entry(t, v), "top_logprobs": [entry(a, b) for a, b in alts]}
                            for t, v, alts in zip(g.token_ids, g.logprobs, top)]}

    def choice(self, i: int, g: Generation, want_top: int | None, logprobs: bool) -> dict[str, Any]:
        text = answer_text(self.tok, g, self.req.skip_special_tokens, self.req.include_stop_str_in_output)
        base = {"index": i, "finish_reason": finish_reason(g), "stop_reason": g.stop_string}
        if self.chat:
            return {**base, "message": {"role": "assistant", "content": text},
                    "logprobs": self.chat_logprobs(g, want_top) if logprobs else None}
        return {**base, "text": text, "logprobs": self.completion_logprobs(g, want_top) if logprobs else None}

    def whole(self, choices: list[dict[str, Any]], use: dict[str, int]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created, "model": self.req.model, "choices": choices, "usage": use}

    def chunks(self, choices: list[dict[str, Any]], gens: list[Generation], use: dict[str, int]) -> Any:
        """Server-sent events of finished generations: one chunk per sampled token (its text delta and
        log-prob), a last chunk per choice with the finish reason, the usage chunk when
        ``stream_options.include_usage``, then ``data: [DONE]``."""
        kind = "chat.completion.chunk" if self.chat else "text_completion"

        def event(choice_list: list[dict[str, Any]], **extra: Any) -> str:
            body = {"id": self.id, "object": kind, "created": self.created, "model": self.req.model,
                    "choices": choice_list, **extra}
            return f"data: {json.dumps(body)}\n\n"

        for choice, g in zip(choices, gens):
            i = choice["index"]
            text = choice["message"]["content"] if self.chat else choice["text"]
            if self.chat:
                yield event([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                              "finish_reason": None}])
            for k, delta in enumerate(text_deltas(self.tok, g.token_ids, text, self.req.skip_special_tokens)):
                one = Generation([g.token_ids[k]], [g.logprobs[k]], [g.entropies[k]], delta, g.finish_reason,
                                 meta={"top_logprobs": g.meta.get("top_logprobs", [])[k : k + 1]})
                lp = choice["logprobs"]
                want = len(g.meta.get("top_logprobs", [[]])[0]) if lp and g.meta.get("top_logprobs") else None
                if self.chat:
                    yield event([{"index": i, "delta": {"content": delta}, "finish_reason": None,
                                  "logprobs": self.chat_logprobs(one, want) if lp else None}])
                else:
                    yield event([{"index": i, "text": delta, "finish_reason": None,
                                  "logprobs": self.completion_logprobs(one, want) if lp else None}])
            last = {"index": i, "finish_reason": choice["finish_reason"], "stop_reason": choice["stop_reason"]}
            yield event([{**last, "delta": {}} if self.chat else {**last, "text": ""}])
        if (self.req.stream_options or {}).get("include_usage"):
            yield event([], usage=use)
        yield "data: [DONE]\n\n"


def text_deltas(tokenizer: Any, ids: list[int], text: str, skip_special: bool) -> list[str]:
    """One text piece per token whose concatenation is exactly `text` (the answer's text, stop string
    possibly cut): each token's piece is what its prefix's decoding adds, held back while a multi-byte
    character is incomplete and clipped to `text`."""
    pieces, emitted = [], 0
    for k in range(len(ids)):
        prefix = tokenizer.decode(ids[: k + 1], skip_special_tokens=skip_special)
        common = len(os.path.commonprefix([prefix.rstrip("\ufffd"), text]))
        end = max(emitted, common)
        pieces.append(text[emitted:end])
        emitted = end
    if pieces:
        pieces[-1] += text[emitted:]
    return pieces
