"""Training a vision-language policy: each sample's context images go with its token ids into the forward pass.

A vision policy's context holds image tokens (placeholders the model fills from the pixels), so scoring
those ids without the pixels would give log-probs that differ from the sampler's: the importance ratio and
the token-exact rule would break silently. Here:

- `VisionInputs.attach` gives every training sample the images of its context (`agentgym.images.
  context_images` of the sample's last turn), by reference: each distinct image is written once to the
  run's content-addressed image store (where the trajectory store puts it anyway) and the sample holds its
  `ImageRef` (a hash), never the bytes.
- `VisionInputs.check` makes sure every referenced file is there before a forward pass runs, so a missing
  one fails with its hash and the run dir rather than deep inside torch mid-update.
- `VisionInputs.model_inputs` loads a micro-batch's images when that micro-batch is scored (and drops them
  after) through `agentgym.policies.hf_vision.pixel_inputs`, the processor call the sampler itself uses.

Packing (`agentgym.trainers.core.pack_by_tokens`) puts only samples with the same number of images in one
micro-batch, as the sampler batches its requests: images never move between rows, and the processor never
pads a row with empty images. The token budget counts image tokens (they are in the ids); pixels are extra.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from agentgym.config import Config, ConfigError
from agentgym.images import IMAGES_DIR, ImageError, ImageRef, ImageStore, context_images, image_bytes, image_hashes
from agentgym.trajectory import TrajectoryTree
from agentgym.trainers.samples import Sample


class VisionInputs:
    """The pixels side of a vision-language trainer: its processor and the run's image store."""

    def __init__(self, processor: Any, images: ImageStore, run_dir: str | Path | None = None,
                 sources: list[ImageStore] = ()):
        """`images`: where inline images are written (the run's store). `sources`: further image stores a
        stored reference may be in (SFT data files' own); content-addressed, so any store holding the hash will do."""
        self.processor, self.images = processor, images
        self.stores = [images, *sources]
        self.run_dir = Path(run_dir) if run_dir is not None else images.dir.parent
        self.image_token_id = processor.image_token_id

    def attach(self, samples: list[Sample], trees: list[TrajectoryTree]) -> None:
        """Set each sample's images to those of its context, as references into the run's image store."""
        by_id = {t.id: t for t in trees}
        refs: dict[int, ImageRef] = {}  # id() of a tree's image object -> its ref: each image hashed once
        for s in samples:
            turns = [t for t in s.turn_ids if t >= 0]
            if not turns or s.tree_id not in by_id:
                raise ValueError(f"sample of tree {s.tree_id} leaf {s.leaf}: no turn ids to find its context images")
            items = context_images(by_id[s.tree_id], turns[-1])
            s.images = [self._ref(im, refs) for im in items]
            self._check_tokens(s)

    def _ref(self, image: Any, refs: dict[int, ImageRef]) -> ImageRef:
        if not isinstance(image, (str, bytes)):  # already stored: a reference read back from a store
            return ImageRef.model_validate(image)
        if id(image) not in refs:
            refs[id(image)] = self.images.put(image_bytes(image))
        return refs[id(image)]

    def _check_tokens(self, s: Sample) -> None:
        has_tokens = self.image_token_id in s.input_ids
        if has_tokens != bool(s.images):
            raise ValueError(f"sample of tree {s.tree_id} leaf {s.leaf}: {len(s.images)} context image(s) but "
                             f"{'' if has_tokens else 'no '}image tokens in its ids: the tree was not sampled by "
                             "this vision-language model (its processor places a token per image patch)")

    def check(self, samples: list[Sample]) -> None:
        """Every image the samples reference is in the store; else one error naming the hash and the run."""
        seen: set[str] = set()
        for s in samples:
            for ref in s.images:
                if ref.sha256 in seen:
                    continue
                if self._store_of(ref) is None:
                    raise self._missing(ref, f" (in the context of tree {s.tree_id} leaf {s.leaf})")
                seen.add(ref.sha256)

    def _store_of(self, ref: ImageRef) -> ImageStore | None:
        return next((st for st in self.stores if st.find(ref.sha256) is not None), None)

    def _missing(self, ref: ImageRef, context: str = "") -> ImageError:
        where = ", ".join(str(st.dir) for st in self.stores)
        return ImageError(f"image {ref.sha256}{context} is missing from {where} (run dir {self.run_dir}): the "
                          "trainer needs the pixels of every image token; restore the file or drop that tree")

    def read(self, ref: ImageRef) -> bytes:
        store = self._store_of(ref)
        if store is None:  # removed after `check`
            raise self._missing(ref)
        return store.read(ref)

    def model_inputs(self, rows: list[list[ImageRef]], model: Any) -> dict[str, Any]:
        """The pixel inputs of one micro-batch (row i: the images of its sample i), loaded now."""
        from agentgym.policies.hf_vision import pixel_inputs

        return pixel_inputs(self.processor, model, [[self.read(ref) for ref in row] for row in rows])

    def adopt(self, samples: list[Sample], tokenizer: Any) -> int:
        """For samples read from stores (SFT data): keep the context images the contexts hold as pixels (those
        not rendered as text lines by the text fallback), as references; the others get none. Returns how many
        samples carry images."""
        refs: dict[int, ImageRef] = {}
        pixel = pixel_samples(samples, tokenizer)
        for s in samples:
            s.images = [self._ref(im, refs) for im in s.images] if id(s) in pixel else []
            if s.images:
                self._check_tokens(s)
        return len(pixel)


def pixel_samples(samples: list[Sample], tokenizer: Any) -> set[int]:
    """id() of each sample whose context images reached its sampler as pixels: not every one of them is in the
    context as the text fallback's line (``[image i/n: mime, size, sha256 <12 hex>]``)."""
    out = set()
    for s in samples:
        if s.images:
            text = tokenizer.decode(s.input_ids)
            if not all(f"sha256 {h[:12]}]" in text for h in image_hashes(s.images)):
                out.add(id(s))
    return out


def sft_vision(samples: list[Sample], session: Any, data: list[Path], run_dir: str | Path) -> VisionInputs | None:
    """The pixel side of SFT on `samples` (their `images` as their trees hold them): None when no context holds
    images as pixels; a config error naming policy.model when some do and the model is text-only."""
    processor = getattr(session.policy, "processor", None)
    if processor is None:
        pixel = pixel_samples(samples, session.tokenizer)
        if pixel:
            raise ConfigError(f"policy.model={session.cfg.policy.model} is a text-only model and the SFT data "
                              f"(sft.data) has {len(pixel)} sample(s) whose contexts hold images as pixels (sampled "
                              "by a vision-language policy): set policy.model to that image-text-to-text model")
        for s in samples:
            s.images = []  # screenshots the contexts show as text lines: the text is what is trained
        return None
    vision = VisionInputs(processor, ImageStore(Path(run_dir) / IMAGES_DIR), run_dir,
                          sources=[ImageStore.beside(p) for p in data])
    return vision if vision.adopt(samples, session.tokenizer) else None


def check_vision_config(cfg: Config) -> None:
    """Before a model loads: a vision model only with what can score its images; a text-only model only on an
    env whose observations carry no images (its first observation is looked at)."""
    from agentgym.policies.hf_vision import is_vision_model

    if is_vision_model(cfg.policy.model):
        if cfg.policy.sampler != "hf":
            raise ConfigError(f"policy.sampler={cfg.policy.sampler}: a vision-language policy.model "
                              f"({cfg.policy.model}) samples in process (policy.sampler=hf): the trainer scores "
                              "image tokens with the pixels the in-process sampler saw")
        if cfg.algorithm.name == "igpo":  # its credit scores contexts through the policy, as token ids only
            raise ConfigError(f"algorithm.name=igpo scores each turn's context with the policy, which a "
                              f"vision-language policy.model ({cfg.policy.model}) cannot do without its images")
        if importlib.util.find_spec("PIL") is None:
            raise ConfigError(f"policy.model={cfg.policy.model} needs Pillow to read images (pip install pillow)")
        return
    if env_observes_images(cfg):
        raise ConfigError(f"policy.model={cfg.policy.model} is a text-only model and env {cfg.env.id} observes "
                          "images (screenshots): set policy.model to an image-text-to-text model (tiny-vlm or "
                          "hf-vision:<name-or-path>), or make the env without screenshots in env.kwargs")


def env_observes_images(cfg: Config) -> bool:
    """The env (made with the config's kwargs, then closed; no episode is started) declares image observations
    (`agentgym.env.TextEnv.observes_images`). An env that does not declare them is not probed: its first image
    still stops a text-only rollout with the renderer's one-line `ImageInputError`."""
    from agentgym.registry import make
    from agentgym.trainers.session import env_kwargs

    env = make(cfg.env.id, **env_kwargs(cfg))  # the kwargs were checked just before (`check_env_kwargs`)
    try:
        return bool(getattr(env.unwrapped, "observes_images", False))
    finally:
        env.close()
