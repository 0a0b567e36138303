"""The host's side of the reply channel: it trusts nothing the sandbox writes on it.

The cell runs inside the driver's own interpreter, so whatever the driver can reach the cell can reach
too: the reply descriptor (``os.write(fd, ...)``, found through ``/proc/self/fd``), any key or nonce the
driver keeps (frames, ``gc.get_objects()``, ``/proc/self/mem``), the driver's ``send`` function itself. A
forked supervisor inside the sandbox would only move the problem to its own pipe from the cell's
process. So, as nsjail and gVisor treat their supervisor channel, the trusted end is the host, and it
enforces the protocol:

* every request carries a fresh random nonce and the one reply of that call must echo it, so a frame
  written in an earlier call, or any frame beyond the first, can never be taken for another call's reply;
* bytes waiting on the channel before a request is sent (a forged frame, the genuine reply that followed
  one, a flood) are a violation;
* the length header is checked against a cap derived from the limits before a byte of the body is read,
  and the body is read into a buffer of exactly that size (no appending chunk by chunk);
* the body must parse as exactly the reply schema (strict types, no other keys).

Any violation kills the sandbox; the next call starts a fresh one and reports ``state_lost``. What a cell
can still do is write its *own* call's reply (it could equally print, raise or return anything it likes):
it can fool only its own session, never the host or another call.
"""

from __future__ import annotations

import os
import secrets
import select
import struct

from pydantic import BaseModel, ConfigDict, ValidationError

HEADER = struct.Struct(">I")


class ProtocolViolation(Exception):
    """The sandbox broke the reply protocol; the message says how."""


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    nonce: str
    value: str | None
    exception: str | None
    traceback: str | None
    oom: bool
    stdio: bool
    cut: int


def new_nonce() -> str:
    return secrets.token_hex(16)


def reply_cap(max_chars: int) -> int:
    """The largest reply body a well-behaved driver can send: three text fields of `max_chars` characters,
    each at most 8 bytes once escaped (a control character is 6, a lone surrogate's escape 7), plus keys."""
    return 3 * 8 * max_chars + 4096


def assert_quiet(fd: int) -> None:
    """Raise if anything is waiting on the reply channel between calls."""
    poller = select.poll()  # not select.select: it fails on descriptors >= 1024 (hundreds of sandboxes)
    poller.register(fd, select.POLLIN)
    if poller.poll(0):
        raise ProtocolViolation("the sandbox wrote to its reply channel outside a call")


class ReplyReader:
    """Reads one framed reply from a non-blocking descriptor, a piece at a time as the selector reports it."""

    def __init__(self, fd: int, nonce: str, cap: int):
        self.fd, self.nonce, self.cap = fd, nonce, cap
        self.header = bytearray()
        self.buffer = bytearray()
        self.body: memoryview | None = None  # a view of `buffer`, read into in place
        self.filled = 0

    def feed(self) -> Reply | None:
        """Read what is available. The reply once complete, None while incomplete; EOFError when the driver
        closed the channel; ProtocolViolation for anything that is not exactly one valid reply."""
        if self.body is None:
            chunk = os.read(self.fd, HEADER.size - len(self.header))
            if not chunk:
                raise EOFError
            self.header += chunk
            if len(self.header) < HEADER.size:
                return None
            (size,) = HEADER.unpack(self.header)
            if size > self.cap:
                raise ProtocolViolation(f"a reply of {size} bytes was announced (the limit is {self.cap})")
            self.buffer = bytearray(size)
            self.body = memoryview(self.buffer)
        if self.filled < len(self.body):
            n = os.readv(self.fd, [self.body[self.filled:]])
            if n == 0:
                raise EOFError
            self.filled += n
            if self.filled < len(self.body):
                return None
        try:
            reply = Reply.model_validate_json(self.buffer)
        except ValidationError as e:
            raise ProtocolViolation(f"malformed reply ({e.error_count()} schema errors)") from None
        if not secrets.compare_digest(reply.nonce.encode(), self.nonce.encode()):
            raise ProtocolViolation("a reply for another call arrived")
        return reply
