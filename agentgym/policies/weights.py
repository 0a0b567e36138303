"""Weight sync payloads: named tensors to safetensors bytes and back, and the checked in-place load.

The trainer pushes its weights to a sampler (`Policy.load_weights`) after every update. Over HTTP the
payload is one safetensors file in the request body: a format with no code in it (unlike pickle), readable
without trusting the sender, that works across machines (no shared filesystem between trainer and server).

`load_into` checks the whole payload against the model before touching a weight — the same names, every
shape, floating-point values — so a wrong payload is refused and the model keeps serving its old weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class WeightsError(ValueError):
    """A weight payload that does not fit the model (names, shapes, dtype, or not safetensors)."""


def encode(named_tensors: Iterable[tuple[str, Any]]) -> bytes:
    """One safetensors file holding the tensors (detached, on CPU, contiguous)."""
    from safetensors.torch import save

    return save({name: t.detach().to("cpu").contiguous() for name, t in named_tensors})


def decode(payload: bytes) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(payload)
    except (SafetensorError, ValueError, RuntimeError) as e:
        raise WeightsError(f"the payload is not a safetensors file ({str(e)[:160]})") from None


def sync_parameters(model: Any) -> dict[str, Any]:
    """The parameters a push must carry: each stored tensor once (tied weights are one parameter)."""
    return dict(model.named_parameters())


def payload_bytes_cap(model: Any) -> int:
    """The largest payload worth reading for `model`: every parameter in float32, plus room for the header."""
    return sum(p.numel() for p in model.parameters()) * 4 + (1 << 20)


def load_into(model: Any, tensors: dict[str, Any]) -> None:
    """Copy `tensors` into `model`'s parameters in place, after checking every one of them."""
    import torch

    params = sync_parameters(model)
    missing, unexpected = sorted(set(params) - set(tensors)), sorted(set(tensors) - set(params))
    if unexpected:
        raise WeightsError(f"{len(unexpected)} tensors the model does not have, e.g. {unexpected[0]!r}")
    if missing:
        raise WeightsError(f"{len(missing)} of the model's {len(params)} parameters missing, e.g. {missing[0]!r}")
    for name, t in tensors.items():
        if tuple(t.shape) != tuple(params[name].shape):
            raise WeightsError(f"{name!r} has shape {list(t.shape)}, the model's is {list(params[name].shape)}")
        if not t.is_floating_point():
            raise WeightsError(f"{name!r} is {t.dtype}, not a floating-point tensor")
        if not bool(torch.isfinite(t).all()):
            raise WeightsError(f"{name!r} holds NaN or infinite values")
    with torch.no_grad():
        for name, t in tensors.items():
            params[name].copy_(t)
