"""Turning messages and observations into the exact tokens the policy is fed.

The rollout engine never re-tokenises what the model wrote: the context grows by appending the sampled
ids and then the ids of whatever the environment answered, rendered here with the model's chat template.
Two shapes of observation:

- ``role="inline"`` (ARPO/IterResearch XML tools): the text continues the assistant's own message, e.g.
  ``<python>…</python>`` is followed by ``<result>…</result>`` and the model keeps writing;
- any chat role (``user``, ``tool``): the assistant message is closed (unless the model already sampled
  its end-of-turn token), the message is rendered by the chat template, and a new assistant turn opens.

Images (screenshots in ``Observation.images``) are rendered as the policy declares (``Policy.image_input``):

- ``"vision"``: a vision-language model. The message gets one image content part per image, the
  processor's chat template places its image marker, and the processor expands each marker into the
  model's image tokens (e.g. Idefics3/SmolVLM: ``<fake_token_around_image><global-img><image>…``). Those
  ids are part of ``prefix_ids``: context, loss mask 0, never trained on; the images go with the request
  (`GenerationRequest.images`) and are found again for any node by `context_images`.
- ``"text"``: the documented fallback a user opts into for a text-only model: each image becomes one line
  ``[image 1/2: image/png, 12345 bytes, sha256 0123456789ab]`` before the text (deterministic, so replays
  and re-execution agree).
- ``"none"`` (the default of a text-only policy): an observation with images is refused with
  `ImageInputError`, one line saying what to do; images are never dropped silently.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agentgym.images import ImageRef, data_url, image_bytes, sniff_mime
from agentgym.trajectory import Observation

INLINE = "inline"
IMAGE_INPUTS = ("none", "text", "vision")


class ImageInputError(ValueError):
    """An observation carries images the policy cannot take."""


_PROBE = "\x00agentgym-probe\x00"  # a string no template alters, to find where an assistant message ends
_MEMO_CHARS, _MEMO_ENTRIES = 2048, 4096  # observation ids memo: texts up to this long, this many of them


class ChatRenderer:
    def __init__(self, tokenizer: Any, image_input: str = "none", processor: Any = None, policy_name: str = "the policy"):
        if image_input not in IMAGE_INPUTS:
            raise ValueError(f"image_input must be one of {', '.join(IMAGE_INPUTS)}, got {image_input!r}")
        if image_input == "vision" and processor is None:
            raise ValueError("image_input='vision' needs the model's processor (transformers AutoProcessor)")
        self.tokenizer = tokenizer
        self.image_input, self.processor, self.policy_name = image_input, processor, policy_name
        self._delta_cache: dict[tuple[str, bool, int], tuple[str, str]] = {}
        # Observation ids by (role, text, after_eos): envs repeat many observations ("ok", tool errors, a
        # fixed prompt), and a tokenizer call costs ~50-100 us, the largest part of the engine's own cost
        # per step. Exact (same input, same ids); bounded; only short texts without images.
        self._observation_cache: dict[tuple[str, str, bool], tuple[int, ...]] = {}

    @classmethod
    def for_policy(cls, policy: Any) -> ChatRenderer:
        return cls(policy.tokenizer, getattr(policy, "image_input", "none"), getattr(policy, "processor", None),
                   type(policy).__name__)

    def _template(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        owner = self.processor if self.image_input == "vision" else self.tokenizer
        return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

    def encode(self, text: str, images: list[Any] = ()) -> list[int]:
        if not images:
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        # The processor expands each image marker into the image's tokens (how many depends on the image).
        out = self.processor(text=[text], images=[[load_image(im) for im in images]], add_special_tokens=False)
        return [int(i) for i in out["input_ids"][0]]

    def _content(self, text: str, images: list[Any]) -> Any:
        """A message's content: plain text, or (vision) image parts then the text part."""
        if self.image_input != "vision":
            return text
        return [{"type": "image"} for _ in images] + [{"type": "text", "text": text}]

    def _check_images(self, obs: Observation) -> str:
        """The text to render for `obs`: its own, with the text fallback's image lines if chosen."""
        if not obs.images or self.image_input == "vision":
            return obs.text
        if self.image_input == "none":
            raise ImageInputError(
                f"{self.policy_name} is text-only and the observation carries {len(obs.images)} image(s): use a "
                "vision-language policy (an hf: image-text-to-text model, or an openai: server of one), opt into the "
                "text fallback (images='text'), or make the env without screenshots")
        lines = [image_line(im, i, len(obs.images)) for i, im in enumerate(obs.images)]
        return "\n".join(lines + [obs.text])

    def prompt_ids(self, messages: list[dict[str, Any]], images: list[Any] = ()) -> list[int]:
        """A fresh context: the chat template with the assistant's turn opened. `images` are those of the
        messages' image parts, in order (vision only)."""
        return self.encode(self._template(messages, add_generation_prompt=True), images)

    def chat_message(self, obs: Observation, role: str | None = None) -> dict[str, Any]:
        """`obs` as an OpenAI chat message (what a chat route is sent): images as ``image_url`` parts with
        ``data:`` URLs, before the text, in the order the renderer places their tokens."""
        text = self._check_images(obs)
        role = role or ("user" if obs.role == INLINE else obs.role)
        if self.image_input != "vision" or not obs.images:
            return {"role": role, "content": text}
        parts: list[dict[str, Any]] = [{"type": "image_url", "image_url": {"url": data_url(image_bytes(im))}}
                                       for im in obs.images]
        return {"role": role, "content": parts + [{"type": "text", "text": text}]}

    def initial_prompt_ids(self, system: str | None, first_observation: str | Observation) -> list[int]:
        obs = first_observation if isinstance(first_observation, Observation) else Observation(text=first_observation)
        if obs.images:
            return self._initial_prompt_ids(system, obs)
        key = ("\x00initial", (system or "") + "\x00" + obs.text, system is None)
        ids = self._observation_cache.get(key)  # the episodes of a group (one task) share their first prompt
        if ids is None:
            ids = tuple(self._initial_prompt_ids(system, obs))
            self._remember(key, ids, len(key[1]))
        return list(ids)

    def _initial_prompt_ids(self, system: str | None, obs: Observation) -> list[int]:
        text = self._check_images(obs)
        images = obs.images if self.image_input == "vision" else []
        messages = ([{"role": "system", "content": self._content(system, [])}] if system else []) + [
            {"role": "user", "content": self._content(text, images)}
        ]
        return self.encode(self._template(messages, add_generation_prompt=True), images)

    def observation_ids(self, obs: Observation, after_eos: bool) -> list[int]:
        """Tokens to append after an action so the model sees `obs` and can continue."""
        if obs.images:
            return self._observation_ids(obs, after_eos)
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
        text = self._check_images(obs)
        images = obs.images if self.image_input == "vision" else []
        if obs.role == INLINE and not after_eos and not images:
            return self.encode(text) if text else []
        role = "user" if obs.role == INLINE else obs.role
        return self.encode(self._message_delta(role, text, after_eos, len(images)), images)

    def _message_delta(self, role: str, text: str, after_eos: bool, n_images: int = 0) -> str:
        """Template text between the end of the assistant's content and the start of its next turn."""
        key = (role, after_eos, n_images)
        if key not in self._delta_cache:  # rendering the template costs ~100 us: do it once per role
            head, tail = self._render_delta(role, _PROBE, after_eos, n_images).split(_PROBE)
            if self._render_delta(role, "x y\n z", after_eos, n_images) != head + "x y\n z" + tail:
                raise ValueError("chat template alters message content; cannot render observations incrementally")
            self._delta_cache[key] = (head, tail)
        head, tail = self._delta_cache[key]
        return head + text + tail

    def _render_delta(self, role: str, text: str, after_eos: bool, n_images: int = 0) -> str:
        base = [{"role": "user", "content": self._content("q", [])},
                {"role": "assistant", "content": self._content(_PROBE, [])}]
        closed = self._template(base, add_generation_prompt=False)
        full = self._template(base + [{"role": role, "content": self._content(text, [None] * n_images)}],
                              add_generation_prompt=True)
        if not full.startswith(closed):
            raise ValueError("chat template is not prefix-preserving; multi-turn token-exact rollout needs one")
        end_of_assistant = closed[closed.index(_PROBE) + len(_PROBE) :]
        eos = self.tokenizer.eos_token or ""
        if after_eos and eos and end_of_assistant.startswith(eos):
            end_of_assistant = end_of_assistant[len(eos) :]  # the model already sampled it
        return end_of_assistant + full[len(closed) :]


def image_line(image: Any, index: int, count: int) -> str:
    """The text fallback's line for one image (the same for the inline and the stored form of an image)."""
    if isinstance(image, str):
        data = image_bytes(image)
        mime, size, digest = sniff_mime(data), len(data), hashlib.sha256(data).hexdigest()
    else:
        ref = ImageRef.model_validate(image)
        mime, size, digest = ref.mime, ref.size, ref.sha256
    return f"[image {index + 1}/{count}: {mime}, {size} bytes, sha256 {digest[:12]}]"


def load_image(image: Any) -> Any:
    """A PIL image from an observation image (base64 or PIL already)."""
    if hasattr(image, "convert"):
        return image.convert("RGB")
    import io

    from PIL import Image

    return Image.open(io.BytesIO(image_bytes(image))).convert("RGB")
