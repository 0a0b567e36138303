"""Where a model-chosen url may lead: the egress guard of the remote engine.

`open(url)` fetches whatever address the model writes, and a page (or a prompt injection in one) can steer
the model toward the machine's own services: loopback admin ports, the cluster's private network, a cloud
metadata endpoint (169.254.169.254). The guard runs as an httpx request hook, so it sees every request,
redirects included, and:

- lets requests to the configured engine's own origin through unchanged (the user chose that address);
- strips the API key header from every other request (the key belongs to the engine, not to the pages);
- resolves every other host and refuses it unless *all* its addresses are public (or the host is allowed
  by name), then pins the request to the checked address, so a second DNS answer (rebinding) cannot swap a
  private address in between the check and the connection. TLS still verifies the original name (SNI).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

import httpx

from agentgym.tools import ToolError

Resolver = Callable[[str, int], list[str]]


class EgressRefused(ToolError):
    """The url leads to an address the model may not reach."""

    def __init__(self, message: str):
        super().__init__(message, "tool_error")
        self.retryable, self.wait_s = False, 0.0


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise EgressRefused(f"Cannot open a page on {host[:100]!r}: the name does not resolve ({e})") from None
    return sorted({info[4][0] for info in infos})


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    port = url.port or {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host.lower(), port


class EgressGuard:
    """An httpx request hook (see the module docstring). `allow_hosts` are names or literal addresses that
    may be private (an intranet wiki, a test server on loopback)."""

    def __init__(self, engine_url: str, key_header: str, allow_hosts: Iterable[str] = (),
                 resolver: Resolver = system_resolver):
        self.engine_origin = origin(httpx.URL(engine_url))
        self.key_header = key_header
        self.allow_hosts = {h.lower().strip("[]") for h in allow_hosts}
        self.resolver = resolver

    def __call__(self, request: httpx.Request) -> None:
        if origin(request.url) == self.engine_origin:
            return
        request.headers.pop(self.key_header, None)
        host = request.url.host.lower()
        if host in self.allow_hosts:
            return
        port = origin(request.url)[2] or 80
        addresses = self.resolver(host, port)
        private = [a for a in addresses if not is_public(a)]
        if not addresses or private:
            shown = ", ".join(private[:3]) or "no address"
            raise EgressRefused(f"Cannot open {host[:100]!r}: it leads to a non-public address ({shown}); "
                                "only public web pages can be opened.")
        if host != addresses[0]:
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=addresses[0])  # the Host header keeps the name
