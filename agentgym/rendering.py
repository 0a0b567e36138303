"""Turning messages and observations into the exact tokens the policy is fed.

The rollout engine never re-tokenises what the model wrote: the context grows by appending the sampled
ids and then the ids of whatever the environment answered, rendered here with the model's chat template.
Two shapes of observation:

- ``role="inline"`` (ARPO/IterResearch XML tools): the text continues the assistant's own message, e.g.
  ``<python>…</python>`` is followed by ``<result>…</result>`` and the model keeps writing;
- any chat role (``user``, ``tool``): the assistant message is closed (unless the model already sampled
  its end-of-turn token), the message is rendered by the chat template, and a new assistant turn opens.
"""

from __future__ import annotations

from typing import Any

from agentgym.trajectory import Observation

INLINE = "inline"
_PROBE = "\x00agentgym-probe\x00"  # a string no template alters, to find where an assistant message ends
_MEMO_CHARS, _MEMO_ENTRIES = 2048, 4096  # observation ids memo: texts up to this long, this many of them


class ChatRenderer:
    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        self._delta_cache: dict[tuple[str, bool], tuple[str, str]] = {}
        # Observation ids by (role, text, after_eos): envs repeat many observations ("ok", tool errors, a
        # fixed prompt), and a tokenizer call costs ~50-100 us, the largest part of the engine's own cost
        # per step. Exact (same input, same ids); bounded; only short texts.
        self._observation_cache: dict[tuple[str, str, bool], tuple[int, ...]] = {}

    def _template(self, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """A fresh context: the chat template with the assistant's turn opened."""
        return self.encode(self._template(messages, add_generation_prompt=True))

    def initial_prompt_ids(self, system: str | None, first_observation: str) -> list[int]:
        key = ("\x00initial", (system or "") + "\x00" + first_observation, system is None)
        ids = self._observation_cache.get(key)  # the episodes of a group (one task) share their first prompt
        if ids is None:
            ids = tuple(self._initial_prompt_ids(system, first_observation))
            self._remember(key, ids, len(key[1]))
        return list(ids)

    def _initial_prompt_ids(self, system: str | None, first_observation: str) -> list[int]:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": first_observation}
        ]
        return self.prompt_ids(messages)

    def observation_ids(self, obs: Observation, after_eos: bool) -> list[int]:
        """Tokens to append after an action so the model sees `obs` and can continue."""
        key = (obs.role, obs.text, after_eos)
        ids = self._observation_cache.get(key)
        if ids is None:
            ids = tuple(self._observation_ids(obs, after_eos))
            self._remember(key, ids, len(obs.text))
        return list(ids)

    def _remember(self, key: tuple[str, str, bool], ids: tuple[int, ...], chars: int) -> None:
        if chars <= _MEMO_CHARS:
            if len(self._observation_cache) >= _MEMO_ENTRIES:
                self._observation_cache.clear()
            self._observation_cache[key] = ids

    def _observation_ids(self, obs: Observation, after_eos: bool) -> list[int]:
        if obs.role == INLINE and not after_eos:
            return self.encode(obs.text) if obs.text else []
        role = "user" if obs.role == INLINE else obs.role
        return self.encode(self._message_delta(role, obs.text, after_eos))

    def _message_delta(self, role: str, text: str, after_eos: bool) -> str:
        """Template text between the end of the assistant's content and the start of its next turn."""
        key = (role, after_eos)
        if key not in self._delta_cache:  # rendering the template costs ~100 us: do it once per role
            head, tail = self._render_delta(role, _PROBE, after_eos).split(_PROBE)
            if self._render_delta(role, "x y\n z", after_eos) != head + "x y\n z" + tail:
                raise ValueError("chat template alters message content; cannot render observations incrementally")
            self._delta_cache[key] = (head, tail)
        head, tail = self._delta_cache[key]
        return head + text + tail

    def _render_delta(self, role: str, text: str, after_eos: bool) -> str:
        base = [{"role": "user", "content": "q"}, {"role": "assistant", "content": _PROBE}]
        closed = self._template(base, add_generation_prompt=False)
        full = self._template(base + [{"role": role, "content": text}], add_generation_prompt=True)
        if not full.startswith(closed):
            raise ValueError("chat template is not prefix-preserving; multi-turn token-exact rollout needs one")
        end_of_assistant = closed[closed.index(_PROBE) + len(_PROBE) :]
        eos = self.tokenizer.eos_token or ""
        if after_eos and eos and end_of_assistant.startswith(eos):
            end_of_assistant = end_of_assistant[len(eos) :]  # the model already sampled it
        return end_of_assistant + full[len(closed) :]
