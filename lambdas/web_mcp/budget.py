"""A site's answer bounded in bytes as they come off the socket, all of it.

The fetcher bounds the body where it reads it (``max_bytes``, as sent and as decompressed), but
http.client reads more than the body, without a limit of its own: interim responses (100
Continue), each with its headers, for as long as the site sends them before its answer, and a
chunked body's trailer lines after its last chunk. A site sending either, each line within
http.client's 64 KiB, was read until the call's deadline (hundreds of megabytes) and refused as a
``timeout``. The pools here count every byte of an answer opened inside ``answers_within(limit)``
(status lines, headers, chunk framing, trailers and body) as its socket gives it, and refuse the
answer as ``too_large`` at the limit: no read asks the socket for more than is left of it.

Built on shared.deadline_http's connections, whose answers are read within the deadline as well.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from shared import deadline_http
from web_mcp.errors import WebError, forbidden

# What an answer may hold beyond its body's max_bytes: its status line, headers (browsers take
# some 256 KiB of them), chunk sizes and trailers. A body of max_bytes sent in chunks of a few
# bytes each would pass it, and be refused: no site sends its pages so.
HEADROOM = 256 * 1024

# The limit of the answer being opened, or None (not counted).
_LIMIT: ContextVar[int | None] = ContextVar("web_mcp_answer_limit", default=None)


@contextmanager
def answers_within(limit: int) -> Iterator[None]:
    """Answers opened inside (by the pools here) read at most ``limit`` bytes from their socket."""
    token = _LIMIT.set(limit)
    try:
        yield
    finally:
        _LIMIT.reset(token)


def too_large(limit: int) -> WebError:
    return forbidden("too_large", f"the site's answer is larger than {limit} bytes, its headers included")


class CountedReader(io.RawIOBase):
    """A raw stream from which at most ``limit`` bytes are read: past them, the too_large refusal."""

    def __init__(self, raw: Any, limit: int) -> None:
        super().__init__()
        self._raw, self._limit = raw, limit
        self.count = 0  # bytes read so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        room = self._limit - self.count
        if room <= 0:
            raise too_large(self._limit)
        view = memoryview(buffer).cast("B")
        # Never more than is left: the answer read whole is the limit at most, not a buffer past it.
        got: int | None = self._raw.readinto(view[:room])
        self.count += got or 0
        return got

    def close(self) -> None:
        self._raw.close()  # the deadline reader under it, which lets the connection close the socket
        super().close()


class _CountedResponse(deadline_http._DeadlineResponse):
    """shared.deadline_http's answer (each socket read within the deadline), counted when opened
    inside ``answers_within``: from its first status line on, so interim responses count too."""

    def __init__(self, sock: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        limit = _LIMIT.get()
        if limit is not None and isinstance(self.fp, io.BufferedReader):
            self.fp = io.BufferedReader(CountedReader(self.fp.detach(), limit))


class _HTTPConnection(deadline_http._HTTPConnection):
    response_class = _CountedResponse


class _HTTPSConnection(deadline_http._HTTPSConnection):
    response_class = _CountedResponse


class CountedHTTPPool(deadline_http.HTTPPool):
    """shared.deadline_http's HTTPPool, its answers counted (``answers_within``)."""

    ConnectionCls = _HTTPConnection


class CountedHTTPSPool(deadline_http.HTTPSPool):
    """shared.deadline_http's HTTPSPool, its answers counted (``answers_within``)."""

    ConnectionCls = _HTTPSConnection
