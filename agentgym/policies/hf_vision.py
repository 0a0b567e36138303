"""Hugging Face vision-language backend: transformers' image-text-to-text models (SmolVLM, Idefics3, ...).

`HFVisionPolicy` is `HFPolicy` with images: the renderer (``image_input = "vision"``) has already placed
each image's tokens in the prompt ids through the model's processor, and every request carries its
context's images in the same order; here they become the processor's pixel values, passed to
``model.generate`` beside the ids. So the sampled tokens, log-probs and entropies are reported exactly as
for a text model, and the stored context (image tokens included, as prefix: loss mask 0) is what the model
saw. Requests are batched only with others holding the same number of images (the processor pads images
per row, not missing ones).

Loaded with ``AutoModelForImageTextToText`` + ``AutoProcessor`` (``hf-vision:<path>``). Tests use
`tiny_random_vlm`: an Idefics3 (SmolVLM) architecture with tiny sizes and the project's tokenizer, built
offline from a config (no download).
"""

from __future__ import annotations

from typing import Any

from agentgym.policies.base import Generation, GenerationRequest
from agentgym.policies.hf import HFPolicy
from agentgym.rendering import load_image

# ChatML (the project tokenizer's format) with image parts: each image is the processor's <image> marker.
CHATML_WITH_IMAGES = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<image>' -}}{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


class HFVisionPolicy(HFPolicy):
    """A transformers image-text-to-text model and its processor."""

    def __init__(self, model: Any, processor: Any, **kwargs: Any):
        # No KV reuse across turns: a cached prefix is keyed by token ids, and image tokens are placeholders
        # whose keys/values depend on the pixels, so two contexts with equal ids can differ.
        kwargs["kv_cache_mb"] = 0
        super().__init__(model, processor.tokenizer, **kwargs)
        self.processor = processor
        self.image_input = "vision"

    @classmethod
    def from_pretrained(cls, name_or_path: str = "tiny-vlm", device: str | None = None, dtype: Any = None,
                        **kwargs: Any) -> HFVisionPolicy:
        from agentgym.policies.models import default_device

        if name_or_path == "tiny-vlm":
            model, processor = tiny_random_vlm()
        else:
            model, processor = load_vision_model(name_or_path, dtype=dtype)
        model.to(device or default_device())
        model.eval()
        return cls(model, processor, **kwargs)

    def generate(self, requests: list[GenerationRequest], cancel: Any = None) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        by_count: dict[int, list[int]] = {}
        for i, r in enumerate(requests):
            by_count.setdefault(len(r.images), []).append(i)
        for idxs in by_count.values():
            for i, gen in zip(idxs, super().generate([requests[i] for i in idxs], cancel)):
                out[i] = gen
        return out  # type: ignore[return-value]

    def _extra_inputs(self, requests: list[GenerationRequest]) -> dict[str, Any]:
        return pixel_inputs(self.processor, self.model, [r.images for r in requests])

    def score(self, context_ids: list[list[int]], target_ids: list[list[int]], temperature: float = 1.0) -> list[list[float]]:
        if any(self.processor.image_token_id in c for c in context_ids):
            raise NotImplementedError("HFVisionPolicy.score: contexts with image tokens need their images; "
                                      "scoring them as text would be silently wrong")
        return super().score(context_ids, target_ids, temperature)


# What an image-text-to-text model takes beside the token ids (Idefics3/SmolVLM: the first two; Qwen2-VL: the
# grid of each image). Other processor outputs (sizes, row/column counts) are the processor's own bookkeeping.
PIXEL_KEYS = ("pixel_values", "pixel_attention_mask", "image_grid_thw")


def pixel_inputs(processor: Any, model: Any, rows: list[list[Any]]) -> dict[str, Any]:
    """The model's pixel inputs for a batch whose row i holds the images `rows[i]` (base64, bytes or PIL, in
    the order their tokens appear), on the model's device and dtype; {} when no row has images. The one image
    path of both sampling (`HFVisionPolicy`) and training (`agentgym.trainers.vision`), so the trainer's
    forward sees exactly the pixels the sampler saw."""
    if not any(rows):
        return {}
    pixels = processor.image_processor([[load_image(im) for im in row] for row in rows], return_tensors="pt")
    param = next(model.parameters())
    return {k: (v.to(param.device, param.dtype) if v.is_floating_point() else v.to(param.device))
            for k, v in pixels.items() if k in PIXEL_KEYS}


def is_vision_model(name: str) -> bool:
    """`policy.model` names an image-text-to-text model: ``tiny-vlm`` or ``hf-vision:<name-or-path>``."""
    return name == "tiny-vlm" or name.startswith("hf-vision:")


def load_vision(name: str, device: str | None = None) -> tuple[Any, Any]:
    """(model, processor) of a `policy.model` value for which `is_vision_model` holds, on `device`, in eval mode."""
    from agentgym.policies.models import default_device

    model, processor = tiny_random_vlm() if name == "tiny-vlm" else load_vision_model(name.removeprefix("hf-vision:"))
    model.to(device or default_device())
    return model.eval(), processor


def load_vision_model(name_or_path: str, dtype: Any = None) -> tuple[Any, Any]:
    """(model, processor) of a local or cached image-text-to-text model."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from agentgym.policies.models import resolve

    where, kwargs = resolve(name_or_path)
    model = AutoModelForImageTextToText.from_pretrained(where, dtype=dtype or torch.float32, **kwargs)
    return model, AutoProcessor.from_pretrained(where)


_PATCH, _SCALE = 16, 2


def tiny_vlm_processor(image_size: int = 32) -> Any:
    """The tiny VLM's processor: Idefics3's, on the project's tokenizer (plus the image marker tokens)."""
    from transformers import Idefics3Processor
    from transformers.models.idefics3 import Idefics3ImageProcessorPil

    from agentgym.policies.models import load_tokenizer

    tok = load_tokenizer("tiny")
    tok.add_special_tokens({"additional_special_tokens": ["<global-img>"]}, replace_extra_special_tokens=False)
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": image_size},
                                       max_image_size={"longest_edge": image_size})
    seq_len = (image_size // _PATCH) ** 2 // _SCALE**2
    return Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=seq_len,
                             chat_template=CHATML_WITH_IMAGES)


def tiny_random_vlm(seed: int = 0, hidden_size: int = 64, num_layers: int = 2, image_size: int = 32) -> tuple[Any, Any]:
    """A randomly initialised Idefics3 (SmolVLM's architecture) with the project's tokenizer, small enough for
    tests: each image becomes 32x32 pixels, 4 patches, 1 image token (+3 marker tokens)."""
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, LlamaConfig

    processor = tiny_vlm_processor(image_size)
    tok, patch, scale = processor.tokenizer, _PATCH, _SCALE
    text = LlamaConfig(vocab_size=len(tok), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                       num_hidden_layers=num_layers, num_attention_heads=4, num_key_value_heads=2,
                       max_position_embeddings=4096, tie_word_embeddings=True, bos_token_id=tok.bos_token_id,
                       eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                  image_size=image_size, patch_size=patch)
    config = Idefics3Config(text_config=text.to_dict(), vision_config=vision, image_token_id=processor.image_token_id,
                            scale_factor=scale, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return Idefics3ForConditionalGeneration(config).eval(), processor
