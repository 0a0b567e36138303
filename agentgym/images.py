"""Image bytes kept out of the trajectory lines: content-addressed files beside the store.

An env puts screenshots in ``Observation.images`` as base64 strings (what travels over HTTP and what a
model backend is given). When a tree is stored, `ImageStore.externalize` writes each image once as
``<store dir>/images/<sha256>.<ext>`` and the line holds only an `ImageRef` (hash, MIME type, size).
Identical screenshots (an unchanged screen, a branch sharing its prefix) are one file.

Crash safety follows the store's: an image is written to a temporary file, fsynced, renamed into place
and the directory fsynced *before* the line that references it is written, so a ``kill -9`` at any point
leaves either no line or a line whose images all exist whole. Leftover temporary files are never
referenced. A hash read from a line or a URL is untrusted input: only 64 lower-case hex digits name a
file (`valid_hash`), so no reference can reach outside the images directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

IMAGES_DIR = "images"
_HASH = re.compile(r"[0-9a-f]{64}")
# Magic bytes of the formats screenshots come in; anything else is refused (it could not be shown or decoded).
_MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png", "png"), (b"\xff\xd8\xff", "image/jpeg", "jpg"),
          (b"GIF87a", "image/gif", "gif"), (b"GIF89a", "image/gif", "gif"))
_EXT = {mime: ext for _, mime, ext in _MAGIC} | {"image/webp": "webp"}


class ImageError(ValueError):
    """An image that cannot be stored or found; the message says which and why."""


class ImageRef(BaseModel):
    """A stored image, as it appears in a JSONL line instead of its bytes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the image bytes: its file name.")
    mime: str = Field(description="image/png, image/jpeg, image/gif or image/webp.")
    size: int = Field(ge=0, description="Bytes.")

    @property
    def filename(self) -> str:
        return f"{self.sha256}.{_EXT.get(self.mime, 'bin')}"


def valid_hash(value: Any) -> bool:
    return isinstance(value, str) and _HASH.fullmatch(value) is not None


def sniff_mime(data: bytes) -> str:
    """The MIME type from the image's first bytes; `ImageError` for anything that is not an image."""
    for magic, mime, _ in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    raise ImageError(f"not a PNG, JPEG, GIF or WebP image (starts with {data[:8]!r})")


def image_bytes(image: str | bytes) -> bytes:
    """Raw bytes of an observation image given as base64 (optionally a ``data:`` URL) or bytes."""
    if isinstance(image, bytes):
        return image
    if image.startswith("data:"):
        image = image.partition(",")[2]
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError(f"observation image is not valid base64 (starts with {image[:16]!r})") from None


def data_url(data: bytes) -> str:
    """A ``data:`` URL of the image (what OpenAI-compatible chat APIs take as ``image_url``)."""
    return f"data:{sniff_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


class ImageStore:
    """The images directory of one store file: ``<dir of the store>/images``."""

    def __init__(self, directory: str | os.PathLike, fsync: bool = True):
        self.dir = Path(directory)
        self.fsync = fsync  # False only where the store itself does not fsync (tests, throwaway runs)

    @classmethod
    def beside(cls, store_path: str | os.PathLike, fsync: bool = True) -> ImageStore:
        return cls(Path(store_path).parent / IMAGES_DIR, fsync)

    def path(self, ref: ImageRef) -> Path:
        return self.dir / ref.filename

    def find(self, sha256: str) -> Path | None:
        """The file of a hash (any extension), or None; None too for anything that is not a valid hash."""
        if not valid_hash(sha256) or not self.dir.is_dir():
            return None
        for ext in dict.fromkeys(_EXT.values()):
            candidate = self.dir / f"{sha256}.{ext}"
            if candidate.is_file():
                return candidate
        return None

    def put(self, data: bytes) -> ImageRef:
        """Store `data` durably (once per distinct content) and return its reference."""
        ref = ImageRef(sha256=hashlib.sha256(data).hexdigest(), mime=sniff_mime(data), size=len(data))
        target = self.path(ref)
        if target.is_file() and target.stat().st_size == ref.size:
            return ref  # content-addressed: the same bytes are already there
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{ref.sha256[:16]}-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if self.fsync:
            dir_fd = os.open(self.dir, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself must survive a crash before the line is written
            finally:
                os.close(dir_fd)
        return ref

    def read(self, ref: ImageRef | dict[str, Any]) -> bytes:
        """The bytes of a stored image, checked against its hash."""
        ref = ImageRef.model_validate(ref)
        path = self.find(ref.sha256)
        if path is None:
            raise ImageError(f"image {ref.sha256[:12]}… is missing from {self.dir}")
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise ImageError(f"image file {path} does not match its hash (corrupt)")
        return data

    def externalize(self, images: list[Any]) -> list[Any]:
        """`images` with every inline (base64) image written here and replaced by its `ImageRef`."""
        return [self.put(image_bytes(im)) if isinstance(im, (str, bytes)) else im for im in images]


def image_hashes(images: list[Any]) -> list[str]:
    """The sha256 of each image, inline (base64) or stored (a reference): equal contents, equal hashes."""
    out = []
    for im in images:
        if isinstance(im, (str, bytes)):
            out.append(hashlib.sha256(image_bytes(im)).hexdigest())
        else:
            out.append(ImageRef.model_validate(im).sha256)
    return out


def has_inline_images(tree: Any) -> bool:
    observations = [tree.initial_observation] + [n.observation for n in tree.nodes]
    return any(isinstance(im, str) for obs in observations if obs is not None for im in obs.images)


def externalize_tree(tree: Any, images: ImageStore) -> Any:
    """A copy of `tree` whose observations hold `ImageRef`s instead of base64 images (the images written
    to `images` first); the tree itself is left as it is (callers may still render from it)."""
    def obs_copy(obs: Any) -> Any:
        if obs is None or not obs.images:
            return obs
        return obs.model_copy(update={"images": images.externalize(obs.images)})

    nodes = [n.model_copy(update={"observation": obs_copy(n.observation)}) if n.observation is not None else n
             for n in tree.nodes]
    return tree.model_copy(update={"initial_observation": obs_copy(tree.initial_observation), "nodes": nodes})


def context_images(tree: Any, node_id: int) -> list[Any]:
    """The images whose tokens are in ``tree.context_ids(node_id)``, in order, for a tree sampled by a
    vision policy: the first observation's, then each observation along the path, restarting (empty) where
    the context was rebuilt from text messages (not where a chat-route server re-rendered the same
    conversation: ``info["prompt_from_server"]``). A trainer scoring that context passes these as pixels."""
    images: list[Any] = []
    for turn in tree.path(node_id):
        if turn.rebuild_context and not turn.info.get("prompt_from_server"):  # the server's re-render keeps them
            first = tree.initial_observation
            images = list(first.images) if turn.parent is None and first is not None else []
        if turn.id != node_id and turn.observation is not None:
            images += turn.observation.images
    return images
