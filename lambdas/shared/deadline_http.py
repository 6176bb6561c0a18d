"""HTTP answers read within their exchange's deadline, status line and headers included.

http.client reads the status line and headers a line at a time, each line with as many socket
reads as the server takes to send it; a per-read timeout alone lets a server that drips its
headers (a byte every few seconds) hold a call for as long as it likes. A pool from
``pool_manager`` reads every answer opened inside ``reads_within(left)`` through a socket whose
timeout before each read is ``left()``: what is left of the exchange's deadline, or a
TimeoutError (urllib3's ReadTimeoutError) when nothing is; an HTTPS connection's TLS handshake
waits at most ``left()`` too. Used by the legacy API client, the token verifier's key fetch (JWKS)
and the web fetcher (its pools, pinned to a checked address, are ``HTTPPool``/``HTTPSPool``).
"""

from __future__ import annotations

import http.client
import io
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import urllib3
import urllib3.connection
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

# What is left of the exchange whose answer is being opened: seconds, or TimeoutError when none.
_LEFT: ContextVar[Callable[[], float] | None] = ContextVar("deadline_http_left", default=None)


@contextmanager
def reads_within(left: Callable[[], float]) -> Iterator[None]:
    """Answers opened inside are read (headers and body) with each socket wait bounded by
    ``left()``, which raises TimeoutError once the deadline has passed."""
    token = _LEFT.set(left)
    try:
        yield
    finally:
        _LEFT.reset(token)


class _DeadlineReader(io.RawIOBase):
    """An answer's socket, each read bounded by what is left of its exchange's deadline."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, left: Callable[[], float]) -> None:
        super().__init__()
        self._raw, self._sock, self._left = raw, sock, left

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._left())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        self._raw.close()  # the socket's own reader: lets the connection close the socket
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's answer, read through a _DeadlineReader when an exchange set its deadline."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        left = _LEFT.get()
        if left is not None and isinstance(self.fp, io.BufferedReader):
            self.fp = io.BufferedReader(_DeadlineReader(self.fp.detach(), sock, left))


def _connected(conn: urllib3.connection.HTTPConnection, left: Callable[[], float]) -> socket.socket:
    """urllib3's create_connection, but the host's addresses share the exchange's deadline: urllib3
    gives each address the whole connect timeout, so a name with several unreachable addresses (a
    load balancer's, say) would hold the exchange for as many timeouts. Each address is tried with
    what is left (TimeoutError once nothing is)."""
    host = conn._dns_host.strip("[]")
    failure: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, conn.port, allowed_gai_family(), socket.SOCK_STREAM
    ):
        wait = left()
        sock = socket.socket(family, kind, proto)
        try:
            for level, option, value in conn.socket_options or ():
                sock.setsockopt(level, option, value)
            sock.settimeout(wait)
            if conn.source_address:
                sock.bind(conn.source_address)
            sock.connect(address)
        except OSError as error:
            sock.close()
            failure = error
            continue
        return sock
    raise failure or OSError("getaddrinfo returned no address")


class _DeadlineConnect(urllib3.connection.HTTPConnection):
    response_class = _DeadlineResponse

    def _new_conn(self) -> socket.socket:
        """Inside ``reads_within``: connected within the deadline (_connected), with urllib3's errors."""
        left = _LEFT.get()
        if left is None:
            return super()._new_conn()
        try:
            return _connected(self, left)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        except TimeoutError as error:
            raise ConnectTimeoutError(self, f"Connection to {self.host} timed out (its deadline)") from error
        except OSError as error:
            raise NewConnectionError(self, f"Failed to establish a new connection: {error}") from error


class _HTTPConnection(_DeadlineConnect):
    pass


class _HTTPSConnection(_DeadlineConnect, urllib3.connection.HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        # The TLS handshake runs on the connected socket's timeout, set for the connect: it may
        # wait only what is left once the connection is made.
        sock = super()._new_conn()
        left = _LEFT.get()
        if left is not None:
            try:
                sock.settimeout(left())
            except BaseException:
                sock.close()
                raise
        return sock


class HTTPPool(urllib3.HTTPConnectionPool):
    """A pool whose answers opened inside ``reads_within`` are read within its deadline."""

    ConnectionCls = _HTTPConnection


class HTTPSPool(urllib3.HTTPSConnectionPool):
    """As HTTPPool, and the TLS handshake waits at most what is left too."""

    ConnectionCls = _HTTPSConnection


def pool_manager() -> urllib3.PoolManager:
    """A pool (no retries) whose answers are read within their exchange's deadline, headers included."""
    manager = urllib3.PoolManager(retries=False)
    manager.pool_classes_by_scheme = {"http": HTTPPool, "https": HTTPSPool}
    return manager
