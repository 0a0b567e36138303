"""What every agentgym HTTP server checks before a request reaches its routes (Jupyter's model).

- **Host / Origin.** A server bound to loopback answers only requests whose ``Host`` names a loopback
  address (``localhost``, ``127.0.0.0/8``, ``::1``) or a host the operator allowed: a web page that
  rebinds its own DNS name to 127.0.0.1 still sends its own name as Host, and is refused. A browser's
  ``Origin`` header, when present, must pass the same test, so a foreign page cannot post to the server.
  A server bound beyond loopback accepts any Host (the machine's names are not knowable) and relies on
- **a bearer token**, compared in constant time, required on every route except the health check. A
  server that is reachable from other machines must have one: binding beyond loopback without a token is
  refused (`InsecureBindError`).
- **Body cap.** A body over the cap gets 413 before the application sees a byte of it; a body without a
  ``Content-Length`` is counted as it arrives and refused once over the cap, so memory stays bounded.

`GuardMiddleware` is plain ASGI (no framework import); the viewer, which runs on the standard library's
HTTP server, uses `HostCheck` directly.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


class InsecureBindError(ValueError):
    """A server was asked to listen beyond loopback without a token."""


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (IPv6 with or without brackets)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The host name of a ``Host`` header or of an ``Origin`` URL, without port or brackets."""
    target = header if "://" in header else f"//{header}"
    try:
        return (urlsplit(target).hostname or "").lower()
    except ValueError:  # e.g. an unbalanced IPv6 bracket
        return ""


class HostCheck:
    """Which ``Host``/``Origin`` values a server answers (see the module docstring).

    `allowed` adds names (a reverse proxy's public name, say); ``"*"`` allows any host.
    """

    def __init__(self, bind_host: str, allowed: Iterable[str] = ()):
        self.allowed = {a.strip().lower().strip("[]") for a in allowed if a.strip()}
        self.any_host = "*" in self.allowed or not is_loopback(bind_host)

    def host_ok(self, header: str | None) -> bool:
        if self.any_host:
            return True
        name = host_name(header or "")
        return bool(name) and (is_loopback(name) or name in self.allowed)

    def origin_ok(self, origin: str | None) -> bool:
        """No Origin (a non-browser client) is fine; a browser page must come from an allowed host."""
        if origin is None:
            return True
        if "*" in self.allowed:
            return True
        name = host_name(origin)
        return bool(name) and (is_loopback(name) or name in self.allowed)


def resolve_token(given: str | None, env_var: str) -> tuple[str, bool]:
    """(token, generated): the given token, else the environment variable's, else a fresh random one."""
    token = given if given else os.environ.get(env_var, "")
    if token:
        return token, False
    return secrets.token_urlsafe(32), True


def check_bind(host: str, token: str | None, what: str) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise InsecureBindError(f"{what} will not listen on {host!r} without --token (or bind 127.0.0.1)")


def bearer_matches(authorization: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(value.strip().encode(), token.encode())


ErrorBody = Callable[[int, str, str], bytes]  # (status, message, code) -> JSON body


def detail_error(status: int, message: str, code: str) -> bytes:
    """FastAPI's shape, ``{"detail": message}``: what the env server answers everywhere."""
    return json.dumps({"detail": message, "code": code}).encode()


class GuardMiddleware:
    """ASGI middleware: Host/Origin check (403), bearer token (401), body cap (413), in that order.

    `open_paths` skip the token (never the Host check). `token=None` means no token is required.
    """

    def __init__(self, app: Any, host_check: HostCheck, token: str | None, max_body_bytes: int,
                 open_paths: Iterable[str] = ("/health",), error_body: ErrorBody = detail_error,
                 body_timeout_s: float = 30.0):
        self.app, self.host_check, self.token = app, host_check, token
        self.max_body_bytes, self.open_paths, self.error_body = max_body_bytes, set(open_paths), error_body
        self.body_timeout_s = body_timeout_s  # a half-sent body (a stalled or half-open client) gets 408

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Callable) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not self.host_check.host_ok(headers.get("host")):
            return await self._refuse(send, 403, f"forbidden host {headers.get('host', '')!r}", "forbidden_host")
        if not self.host_check.origin_ok(headers.get("origin")):
            return await self._refuse(send, 403, f"forbidden origin {headers.get('origin')!r}", "forbidden_origin")
        if self.token is not None and scope["path"] not in self.open_paths \
                and not bearer_matches(headers.get("authorization"), self.token):
            return await self._refuse(send, 401, "missing or wrong bearer token (send 'Authorization: Bearer "
                                      "<token>'; the server printed its token at start-up)", "invalid_token")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            if not length.isdigit():
                return await self._refuse(send, 400, f"bad Content-Length {length[:40]!r}", "bad_request")
            return await self._too_large(send)
        try:
            body = await asyncio.wait_for(self._read_body(receive), self.body_timeout_s)
        except asyncio.TimeoutError:
            return await self._refuse(send, 408, f"request body not received within {self.body_timeout_s:g} s",
                                      "request_timeout")
        if body is None:
            return await self._too_large(send)
        await self.app(scope, _replay(body, receive), send)

    async def _read_body(self, receive: Callable[[], Awaitable[dict]]) -> list[dict] | None:
        """The request's body messages, or None once they pass the cap (read no further)."""
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _too_large(self, send: Callable) -> None:
        await self._refuse(send, 413, f"request body over the server's cap of {self.max_body_bytes} bytes",
                           "body_too_large")

    async def _refuse(self, send: Callable, status: int, message: str, code: str) -> None:
        body = self.error_body(status, message, code)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[dict], receive: Callable[[], Awaitable[dict]]) -> Callable[[], Awaitable[dict]]:
    """A `receive` that hands out the already-read body, then the live channel (for disconnects)."""
    pending = list(messages)

    async def replay() -> dict:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
