"""shared.deadline_http: a pool whose answers are read within their exchange's deadline when one is
set (the legacy client's and the key fetch's drip tests show the deadline cutting reads off), and
as any pool's otherwise."""

from __future__ import annotations

import http.client
import socket
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import urllib3
from urllib3.exceptions import ConnectTimeoutError

from shared.deadline_http import pool_manager, reads_within
from tests.lambdas.loopback import QuietHandler, loopback


class Hello(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")


def test_an_answer_opened_without_a_deadline_is_read_as_any_pools() -> None:
    with loopback(Hello) as url:
        response = pool_manager().request("GET", f"{url}/")
    assert (response.status, response.data) == (200, b"hello")


def test_an_answer_opened_with_a_deadline_asks_it_before_each_read() -> None:
    asked: list[float] = []

    def left() -> float:
        asked.append(5.0)
        return 5.0

    with loopback(Hello) as url, reads_within(left):
        response = pool_manager().request("GET", f"{url}/")
    assert (response.status, response.data) == (200, b"hello")
    assert asked  # the status line's read at least


def none_left() -> float:
    raise TimeoutError


def test_a_passed_deadline_ends_the_exchange_before_it_connects() -> None:
    with loopback(Hello) as url, reads_within(none_left), pytest.raises(ConnectTimeoutError, match="its deadline"):
        pool_manager().request("GET", f"{url}/")


class Connects(socket.socket):
    """A socket that records where it connects."""

    tried: ClassVar[list[Any]] = []

    def connect(self, address: Any) -> None:
        Connects.tried.append(address)
        super().connect(address)


@pytest.fixture
def silent() -> Iterator[tuple[str, int]]:
    """An address whose connects are never answered: a listener with a backlog of 0 whose queue
    another connection already fills (Linux then drops the SYNs)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    address = server.getsockname()
    filler = socket.create_connection(address, timeout=5)
    try:
        yield address
    finally:
        filler.close()
        server.close()


def resolving(monkeypatch: pytest.MonkeyPatch, *addresses: tuple[str, int]) -> None:
    """legacy.test resolves to ``addresses`` (as a load balancer's name does to several), and every
    socket records its connects."""
    real = socket.getaddrinfo

    def lookup(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "legacy.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", address) for address in addresses]
        return real(host, port, *args, **kwargs)

    Connects.tried = []
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket, "socket", Connects)


def test_a_hosts_addresses_share_the_exchanges_deadline(
    monkeypatch: pytest.MonkeyPatch, silent: tuple[str, int]
) -> None:
    """urllib3 would give each of them the whole connect timeout: four silent addresses, four
    timeouts. The first one's wait is all that was left here, and the others are not tried."""
    waits = iter([0.05])
    resolving(monkeypatch, *[silent] * 4)
    with reads_within(lambda: next(waits, None) or none_left()), pytest.raises(ConnectTimeoutError):
        pool_manager().request("GET", f"http://legacy.test:{silent[1]}/", timeout=urllib3.Timeout(connect=30))
    assert Connects.tried == [silent]


def test_an_address_that_refuses_is_passed_for_the_next_within_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refusing = closed.getsockname()
    closed.close()  # nothing listens there: connects are refused at once
    with loopback(Hello) as url:
        port = int(url.rsplit(":", 1)[1].rstrip("/"))
        resolving(monkeypatch, refusing, ("127.0.0.1", port))
        with reads_within(lambda: 5.0):
            response = pool_manager().request("GET", f"http://legacy.test:{port}/")
    assert (response.status, response.data, Connects.tried) == (200, b"hello", [refusing, ("127.0.0.1", port)])


@pytest.mark.parametrize("url", ["http://x.test/", "https://x.test/"])
def test_both_schemes_pools_read_through_the_deadline(url: str) -> None:
    """Built, not connected: HTTPS answers are read the same way (the tests' servers are HTTP)."""
    response_class = getattr(pool_manager().connection_from_url(url).ConnectionCls, "response_class", None)
    assert isinstance(response_class, type)
    assert issubclass(response_class, http.client.HTTPResponse)
    assert response_class.__name__ == "_DeadlineResponse"


def test_a_tls_handshake_waits_only_what_is_left() -> None:
    """A server that accepts the connection and never answers the ClientHello: the handshake runs
    on the socket's timeout, which the pool sets from the deadline once connected; with none left,
    the exchange ends there (not after the connect timeout, 30 s here)."""
    asked: list[str] = []

    def none_left() -> float:
        asked.append("asked")
        raise TimeoutError

    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts; nobody speaks
        port = silent.getsockname()[1]
        pool = pool_manager()
        timeout = urllib3.Timeout(connect=30, read=30)
        with reads_within(none_left), pytest.raises((urllib3.exceptions.HTTPError, OSError)):
            pool.request("GET", f"https://127.0.0.1:{port}/", timeout=timeout)
    assert asked == ["asked"]  # once, before the handshake read anything
