"""Checkpoints that survive crashes (reference/sandbox-and-reliability.md §8D).

A checkpoint is written into a temporary directory inside ``RUN/checkpoints``, every file fsync'ed, a
``COMPLETE`` marker written last, then the directory is renamed to ``step-NNNNNN`` and the parent fsync'ed.
Only then does the ``latest`` pointer (a small file replaced atomically) move. Older checkpoints beyond
`keep` are deleted after that, never the one ``latest`` names. Loading follows ``latest``; a missing or
incomplete target falls back to the newest complete checkpoint, so a kill at any point resumes from the
last complete one. A checkpoint records a fingerprint of the model and tokenizer and refuses to load into a
different model.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

COMPLETE = "COMPLETE"


class CheckpointError(RuntimeError):
    pass


def model_fingerprint(model: torch.nn.Module, tokenizer: Any) -> dict[str, Any]:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    cfg = base.config
    vocab = tokenizer.get_vocab()
    digest = hashlib.sha256(json.dumps(sorted(vocab.items())).encode()).hexdigest()[:16]
    return {"architecture": type(base).__name__, "model_type": getattr(cfg, "model_type", None),
            "hidden_size": getattr(cfg, "hidden_size", None), "num_layers": getattr(cfg, "num_hidden_layers", None),
            "vocab_size": getattr(cfg, "vocab_size", None), "tokenizer_vocab": len(vocab), "tokenizer_sha": digest}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in path.rglob("*"):
        if p.is_file():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
    _fsync_dir(path)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class CheckpointManager:
    def __init__(self, run_dir: str | Path, keep: int = 2):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep

    # ---- saving -----------------------------------------------------------------------------------
    def save(self, step: int, model: torch.nn.Module, tokenizer: Any, trainer_state: dict[str, Any],
             meta: dict[str, Any]) -> Path:
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"step-{step:06d}"
        final = self.dir / name
        tmp = Path(tempfile.mkdtemp(dir=self.dir, prefix=f".tmp-{name}-"))
        try:
            model.save_pretrained(tmp / "model", safe_serialization=True)
            tokenizer.save_pretrained(tmp / "model")
            torch.save(trainer_state, tmp / "trainer.pt")
            torch.save(rng_state(), tmp / "rng.pt")
            (tmp / "meta.json").write_text(json.dumps({"step": step, **meta}, indent=2, default=str))
            _fsync_tree(tmp)
            (tmp / COMPLETE).write_text(name)  # written last: its presence means every file above is durable
            _fsync_tree(tmp)
            if final.exists():  # an older incomplete or superseded copy of the same step
                shutil.rmtree(final)
            os.rename(tmp, final)
            _fsync_dir(self.dir)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._point_latest(name)
        self._prune(keep_name=name)
        return final

    def _point_latest(self, name: str) -> None:
        tmp = self.dir / ".latest.tmp"
        with open(tmp, "w") as f:
            f.write(name)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / "latest")
        _fsync_dir(self.dir)

    def _prune(self, keep_name: str) -> None:
        complete = self.complete_checkpoints()
        for path in complete[: max(0, len(complete) - self.keep)]:
            if path.name != keep_name:
                shutil.rmtree(path, ignore_errors=True)
        for stale in self.dir.glob(".tmp-*"):  # leftovers of saves killed earlier
            shutil.rmtree(stale, ignore_errors=True)

    # ---- loading ----------------------------------------------------------------------------------
    def complete_checkpoints(self) -> list[Path]:
        if not self.dir.exists():
            return []
        return sorted(p for p in self.dir.glob("step-*") if (p / COMPLETE).exists())

    def latest(self) -> Path | None:
        pointer = self.dir / "latest"
        if pointer.exists():
            target = self.dir / pointer.read_text().strip()
            if (target / COMPLETE).exists():
                return target
        complete = self.complete_checkpoints()  # pointer missing or stale: newest complete one
        return complete[-1] if complete else None

    def load_meta(self, path: Path) -> dict[str, Any]:
        return json.loads((path / "meta.json").read_text())

    def check_compatible(self, path: Path, fingerprint: dict[str, Any]) -> None:
        saved = self.load_meta(path).get("fingerprint", {})
        diff = {k: (saved.get(k), v) for k, v in fingerprint.items() if saved.get(k) != v}
        if diff:
            details = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in diff.items())
            raise CheckpointError(f"checkpoint {path} was written for a different model ({details})")
