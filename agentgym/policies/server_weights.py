"""`POST /v1/weights?version=N` of `agentgym serve`: the trainer pushes its weights after each update.

The body is one safetensors file (``application/octet-stream``) with every parameter of the served model,
named as in the trainer's ``model.named_parameters()`` (LoRA merged). Why a payload and not a path to a
checkpoint: it needs no filesystem shared between trainer and server (a server in a container or on another
machine works the same), and safetensors holds no code, so the server parses it without trusting the sender.
The route's body cap is the model's own size in float32 (plus a header), not ``--max-body-mb``.

Authenticated: weight updates are on only when the server runs with a bearer token (`--token`), so no
other local process can swap the model; the token check itself is `agentgym.http_guard`'s, as for every
route. The payload is decoded and checked (names, shapes, finite floats) before the swap; a payload that
does not fit is a 400 and the old weights keep serving. The swap runs under the generation gate, i.e.
between generations, never during one; the server's policy version becomes N and ``GET /v1/models``
reports it (``policy_version``) along with ``weight_sync`` (whether this server accepts pushes).
"""

# No `from __future__ import annotations`: FastAPI reads the route signature (see server.py).
import asyncio
from typing import Any

from agentgym.policies.base import Policy
from agentgym.policies.server_errors import OpenAIError
from agentgym.policies.weights import WeightsError, decode

WEIGHTS_PATH = "/v1/weights"


def add_weight_route(app: Any, policy: Policy, gate: Any, enabled: bool) -> None:
    from fastapi import Request

    @app.post(WEIGHTS_PATH)
    async def push_weights(request: Request) -> dict[str, Any]:
        if not enabled:
            raise OpenAIError(403, "weight updates are off: start `agentgym serve` with --token (weight pushes "
                              "must be authenticated)", "permission_error", code="weight_sync_disabled")
        raw = request.query_params.get("version", "")
        if not raw.isdigit() or len(raw) > 18:
            raise OpenAIError(400, f"version: a non-negative integer is required, got {raw[:30]!r}", param="version")
        version = int(raw)
        body = await request.body()
        try:
            tensors = await asyncio.to_thread(decode, body)
        except WeightsError as e:
            raise OpenAIError(400, f"weights: {e}", param="body", code="invalid_weights") from None

        def swap(cancel: Any) -> int:
            policy.load_weights(tensors.items(), version)
            return len(tensors)

        async def stays() -> bool:  # a push is not abandoned half-way when its client goes
            return False

        try:
            count = await gate.run_job(swap, stays)
        except WeightsError as e:
            raise OpenAIError(400, f"weights: {e}", param="body", code="invalid_weights") from None
        return {"object": "weights", "version": policy.version, "tensors": count}
