"""A scripted policy: a Python function writes each action; the tokenizer turns it into token ids.

Used for tests, conformance checks, expert demonstrations (SFT data) and controlled experiments (for
example ARPO branching with chosen entropies). Stop strings and token budgets are honoured exactly as a
model's would be, so scripted runs exercise the same rollout paths.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from agentgym.policies.base import Generation, GenerationRequest, Policy, find_stop

ActionFn = Callable[[str], str]
EntropyFn = Callable[[str, str], "float | list[float]"]


def load_function(target: str, what: str = "function") -> Callable[..., Any]:
    """``"package.module:function"`` -> the function, or a one-line ValueError saying what is wrong."""
    module, _, name = target.partition(":")
    if not module or not name:
        raise ValueError(f"{what} needs 'module:function', got {target!r}")
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ValueError(f"{what} {target!r}: cannot import {module!r} ({type(e).__name__}: {e})") from e
    fn = getattr(mod, name, None)
    if not callable(fn):
        public = [n for n, v in vars(mod).items() if callable(v) and not n.startswith("_")
                  and getattr(v, "__module__", None) == mod.__name__]
        raise ValueError(f"{what} {target!r}: {module} has no function {name!r}"
                         + (f" (it has: {', '.join(sorted(public)[:8])})" if public else ""))
    return fn


class ScriptedPolicy(Policy):
    """`action_fn(context_text) -> action_text`; `entropy_fn(context_text, action_text)` sets the reported
    per-token entropies (a float for all tokens, or a list), default 0."""

    image_input = "text"  # a script reads the context as text: screenshots appear as their text lines

    def __init__(self, action_fn: ActionFn, tokenizer: Any = None, entropy_fn: EntropyFn | None = None,
                 append_eos: bool = True):
        if tokenizer is None:
            from agentgym.policies.models import load_tokenizer

            tokenizer = load_tokenizer("embedded")
        self.tokenizer = tokenizer
        self.action_fn = action_fn
        self.entropy_fn = entropy_fn
        self.append_eos = append_eos
        self.calls = 0

    @classmethod
    def from_spec(cls, target: str, **kwargs: Any) -> ScriptedPolicy:
        return cls(load_function(target, "scripted policy"), **kwargs)

    def generate(self, requests: list[GenerationRequest]) -> list[Generation]:
        return [self._one(r) for r in requests]

    def _one(self, req: GenerationRequest) -> Generation:
        self.calls += 1
        context = self.tokenizer.decode(req.prompt_ids, skip_special_tokens=False)
        text = self.action_fn(context)
        finish, stop = "eos", None
        hit = find_stop(text, req.params.stop)
        if hit is not None:
            text, stop, finish = text[: hit[0]], hit[1], "stop"
        ids = list(self.tokenizer.encode(text, add_special_tokens=False))
        if finish == "eos" and self.append_eos and self.eos_token_id is not None:
            ids.append(self.eos_token_id)
        if len(ids) > req.params.max_new_tokens:
            ids, finish, stop = ids[: req.params.max_new_tokens], "length", None
        ent = self.entropy_fn(context, text) if self.entropy_fn else 0.0
        entropies = [float(ent)] * len(ids) if isinstance(ent, (int, float)) else [float(x) for x in ent][: len(ids)]
        entropies += [0.0] * (len(ids) - len(entropies))
        return Generation(
            token_ids=ids,
            logprobs=[0.0] * len(ids),  # a script is deterministic: probability 1
            entropies=entropies,
            text=self.tokenizer.decode(ids, skip_special_tokens=False),
            finish_reason=finish,
            stop_string=stop,
        )
