"""Real loopback servers for the security tests: uvicorn in a thread, stopped after the test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from agentgym.launch import free_port, serving_in_thread

__all__ = ["free_port", "serving"]


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Run an ASGI app on a free loopback port; yields its base URL (skips where uvicorn is missing)."""
    pytest.importorskip("uvicorn")
    with serving_in_thread(app, timeout_s=60) as url:
        yield url
