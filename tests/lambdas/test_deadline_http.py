"""shared.deadline_http: a pool whose answers are read within their exchange's deadline when one is
set (the legacy client's and the key fetch's drip tests show the deadline cutting reads off), and
as any pool's otherwise."""

from __future__ import annotations

import http.client
import socket

import pytest
import urllib3

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


def test_a_passed_deadline_ends_the_exchange_before_its_first_read() -> None:
    def none_left() -> float:
        raise TimeoutError

    with loopback(Hello) as url, reads_within(none_left), pytest.raises(Exception, match="Read timed out"):
        pool_manager().request("GET", f"{url}/")


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
