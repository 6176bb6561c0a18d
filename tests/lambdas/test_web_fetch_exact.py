"""web_fetch's page fetcher (web_mcp.fetch), value by value: the exact refusal (kind, reason and
message) of each check and each bad answer, the exact page it returns, the exact request the site
sees, the hop it checks (host, port, pinned address, request target), where it resolves and how
long it waits (a connect that never completes, a resolver that never answers, headers that drip),
what it logs, and how much memory a compressed or chunked body may take before it is refused.

The site is real HTTP(S) on loopback; the clocks are the tests'. A wait on the real clock is only
ever the bound of a server or resolver that never answers, on the path where the test would fail.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import random
import socket
import ssl
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.lambdas.loopback import QuietHandler, loopback
from tests.lambdas.web_fakes import FakeClock
from tests.lambdas.web_site import resolver, self_signed, site_policy
from web_mcp.contract import MAX_URL, GroupWeb, Settings
from web_mcp.errors import WebError
from web_mcp.fetch import Checker, Deadline, Fetcher, Page, Target, content_type, system_resolver

MAX_BYTES = 1_000
TIMEOUT = 5.0
LOCATION = {"application": "app", "environment": "env", "profile": "web-policy", "environment_name": "tools"}
HTML = b"<p>exact</p>"
SITE = ipaddress.ip_address("127.0.0.1")
LATE_LIMIT = 1_000_000  # the page limit of the late bomb's test
HUGE_CHUNK = 200_000_000  # a chunk size a site declares, never sends


def settings(**more: Any) -> Settings:
    return Settings.model_validate(
        {
            "guardrail_id": "gr-1",
            "guardrail_version": "1",
            "policy": LOCATION,
            "https_only": False,
            "max_bytes": MAX_BYTES,
            "max_redirects": 2,
            "timeout_seconds": TIMEOUT,
            **more,
        }
    )


def still(seconds: float = 100.0) -> Callable[[], float]:
    """A clock that never moves: the deadline never passes."""
    return lambda: seconds


@dataclass
class Answer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""


def page(body: bytes, *headers: tuple[str, str], kind: str = "text/html") -> Answer:
    return Answer(200, [("Content-Type", kind), ("Content-Length", str(len(body))), *headers], body)


def redirect(location: str | None) -> Answer:
    return Answer(302, [("Location", location)] if location is not None else [])


@cache
def bomb(head: int) -> Answer:
    """``head`` random bytes, then 40 MB of zeros, as gzip with no Content-Length: every 8 KiB of
    the zeros' gzip inflates to some 8 MB, so a chunk inflated without a bound on its output takes
    megabytes however small the page limit."""
    body = gzip.compress(random.Random(7).randbytes(head) + bytes(40_000_000))
    return Answer(200, [("Content-Type", "text/html"), ("Content-Encoding", "gzip")], body)


def long_location(port: int) -> str:
    """A Location that makes the next hop's URL exactly MAX_URL characters long."""
    return "/long?" + "a" * (MAX_URL - len(f"http://site.test:{port}/long?"))


class ExactHandler(QuietHandler):
    """Answers from ``ANSWERS`` (status, exactly the headers listed, body) or ``BOMBS``, records
    every request's headers, and has a few answers of its own: a redirect to a URL of MAX_URL
    characters (and the page there), one that hangs up, one that drips its headers, one that
    declares a huge chunk."""

    protocol_version = "HTTP/1.1"
    ANSWERS: ClassVar[dict[str, Answer]] = {
        "/page": page(HTML, kind="text/html; charset=ISO-8859-1"),
        "/plain": page(b"plain words", kind="Text/Plain; Charset=X-SJIS"),
        "/x-gzip": page(gzip.compress(HTML), ("Content-Encoding", "x-gzip")),
        "/gzip-of-zlib": page(zlib.compress(HTML), ("Content-Encoding", "gzip")),
        "/blank-encoding": page(HTML, ("Content-Encoding", "")),
        "/br": page(HTML, ("Content-Encoding", "br")),
        "/no-location": redirect(None),
        "/malformed-location": redirect("http://[::1"),
        "/hop/0": page(HTML),
        "/hop/1": redirect("/hop/0"),
        "/hop/2": redirect("/hop/1"),
        "/hop/3": redirect("/hop/2"),
        "/404": Answer(404, [("Content-Length", "0")]),
        "/410": Answer(410, [("Content-Length", "0")]),
        "/405": Answer(405, [("Content-Length", "0")]),
        "/411": Answer(411, [("Content-Length", "0")]),
        "/500": Answer(500, [("Content-Length", "0")]),
        "/no-type": Answer(200, [("Content-Length", "2")], b"hi"),
        "/pdf": page(b"%PDF-1.7", kind="application/pdf"),
        "/length-not-digits": Answer(200, [("Content-Type", "text/html"), ("Content-Length", "12x")], b"hi"),
        "/at-limit": page(b"a" * MAX_BYTES),
        "/over-limit-declared": page(b"a" * (MAX_BYTES + 1)),
        "/at-limit-streamed": Answer(200, [("Content-Type", "text/html")], b"a" * MAX_BYTES),
        "/over-limit-streamed": Answer(200, [("Content-Type", "text/html")], b"a" * (MAX_BYTES + 1)),
        "/gzip-at-limit": page(gzip.compress(b"g" * MAX_BYTES), ("Content-Encoding", "gzip")),
        "/gzip-over-limit": page(gzip.compress(b"g" * (MAX_BYTES + 1)), ("Content-Encoding", "gzip")),
    }
    BOMBS: ClassVar[dict[str, Callable[[], Answer]]] = {
        "/bomb": lambda: bomb(0),
        "/late-bomb": lambda: bomb(LATE_LIMIT - 100),  # the limit all but reached, then the zeros
    }
    requests: ClassVar[list[dict[str, str]]] = []
    stopped: ClassVar[threading.Event] = threading.Event()

    def do_GET(self) -> None:
        type(self).requests.append({name.lower(): value for name, value in self.headers.items()})
        own = {"/hang-up": self._hang_up, "/drip-headers": self._drip_headers, "/huge-chunk": self._huge_chunk}
        if self.path in own:
            own[self.path]()
            return
        if self.path == "/to-long":
            answer = redirect(long_location(self.connection.getsockname()[1]))
        elif self.path.startswith("/long?"):
            answer = page(HTML)
        else:
            answer = self.ANSWERS[self.path] if self.path in self.ANSWERS else self.BOMBS[self.path]()
        self.send_response(answer.status)
        for name, value in [*answer.headers, ("Connection", "close")]:
            self.send_header(name, value)
        self.end_headers()
        with suppress(OSError):  # the client hung up (a refused page)
            self.wfile.write(answer.body)
        self.close_connection = True

    def _hang_up(self) -> None:
        """No answer at all: the connection is closed."""
        self.close_connection = True

    def _drip_headers(self) -> None:
        """A status line, then a header a byte at a time until the client hangs up or the site stops."""
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Slow: ")
        with suppress(OSError):
            while not type(self).stopped.wait(0.005):
                self.wfile.write(b"a")
                self.wfile.flush()
        self.close_connection = True

    def _huge_chunk(self) -> None:
        """A chunked body whose first chunk declares 200 MB and holds a few bytes."""
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        with suppress(OSError):
            self.wfile.write(head + b"%x\r\n" % HUGE_CHUNK + b"a" * 100)
        self.close_connection = True


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    ExactHandler.stopped = threading.Event()
    try:
        with loopback(ExactHandler) as url:
            yield int(url.rsplit(":", 1)[1])
    finally:
        ExactHandler.stopped.set()


@pytest.fixture
def site(port: int) -> str:
    ExactHandler.requests = []
    return f"http://site.test:{port}"


def fetcher(clock: Callable[[], float] | None = None, **more: Any) -> Fetcher:
    checker = Checker(settings(**more), resolver=resolver, address_policy=site_policy)
    return Fetcher(checker, clock=clock or still())


def refusal(call: Callable[[], object]) -> tuple[str, str, str]:
    with pytest.raises(WebError) as refused:
        call()
    return refused.value.kind, refused.value.reason, str(refused.value)


def printed(capsys: pytest.CaptureFixture[str], message: str) -> list[dict[str, Any]]:
    """The log lines printed since the last read that say ``message``."""
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


# Refusals, each exactly


@pytest.mark.parametrize(
    ("path", "kind", "reason", "message"),
    [
        (
            "/gzip-of-zlib",
            "upstream_unavailable",
            "bad_encoding",
            "the site site.test sent a body that is not gzip data",
        ),
        ("/br", "forbidden", "encoding_not_allowed", "the content encoding br is not supported"),
        ("/no-location", "upstream_unavailable", "bad_redirect", "the site site.test redirected without a Location"),
        (
            "/malformed-location",
            "upstream_unavailable",
            "bad_redirect",
            "the site site.test redirected to a malformed Location",
        ),
        ("/404", "not_found", "http_status", "the site site.test answered HTTP 404"),
        ("/410", "not_found", "http_status", "the site site.test answered HTTP 410"),
        ("/405", "upstream_unavailable", "http_status", "the site site.test answered HTTP 405"),
        ("/411", "upstream_unavailable", "http_status", "the site site.test answered HTTP 411"),
        ("/500", "upstream_unavailable", "http_status", "the site site.test answered HTTP 500"),
        ("/no-type", "forbidden", "content_type_not_allowed", "the content type (none) is not allowed"),
        ("/pdf", "forbidden", "content_type_not_allowed", "the content type application/pdf is not allowed"),
        (
            "/length-not-digits",
            "upstream_unavailable",
            "bad_length",
            "the site site.test sent an invalid Content-Length",
        ),
        ("/over-limit-declared", "forbidden", "too_large", f"the page is larger than {MAX_BYTES} bytes"),
        ("/over-limit-streamed", "forbidden", "too_large", f"the page is larger than {MAX_BYTES} bytes"),
        ("/gzip-over-limit", "forbidden", "too_large", f"the page is larger than {MAX_BYTES} bytes"),
        ("/hop/3", "forbidden", "too_many_redirects", "more than 2 redirects"),
        ("/hang-up", "upstream_unavailable", "unreachable", "the site site.test could not be reached"),
    ],
)
def test_each_bad_answer_is_refused_with_its_exact_kind_reason_and_message(
    site: str, path: str, kind: str, reason: str, message: str
) -> None:
    assert refusal(lambda: fetcher().fetch(site + path, GroupWeb())) == (kind, reason, message)


def test_a_site_that_hangs_up_is_asked_once_never_again(site: str, port: int) -> None:
    """No retries: a GET the site hung up on is not sent again."""
    assert refusal(lambda: fetcher().fetch(site + "/hang-up", GroupWeb()))[1] == "unreachable"
    assert [request["host"] for request in ExactHandler.requests] == [f"site.test:{port}"]


# Pages, each exactly


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/page", Page(url="/page", content_type="text/html", charset="iso-8859-1", body=HTML)),
        ("/plain", Page(url="/plain", content_type="text/plain", charset="x-sjis", body=b"plain words")),
        ("/x-gzip", Page(url="/x-gzip", content_type="text/html", charset=None, body=HTML)),
        ("/blank-encoding", Page(url="/blank-encoding", content_type="text/html", charset=None, body=HTML)),
        ("/at-limit", Page(url="/at-limit", content_type="text/html", charset=None, body=b"a" * MAX_BYTES)),
        ("/at-limit-streamed", Page("/at-limit-streamed", "text/html", None, b"a" * MAX_BYTES)),
        ("/gzip-at-limit", Page(url="/gzip-at-limit", content_type="text/html", charset=None, body=b"g" * MAX_BYTES)),
        ("/hop/2", Page(url="/hop/0", content_type="text/html", charset=None, body=HTML)),
    ],
)
def test_each_good_answer_is_its_exact_page(site: str, path: str, expected: Page) -> None:
    """x-gzip is gzip; a blank Content-Encoding is none; a page of exactly max_bytes (declared,
    streamed or inflated) is read whole; max_redirects redirects are followed."""
    got = fetcher().fetch(site + path, GroupWeb())
    assert got == Page(site + expected.url, expected.content_type, expected.charset, expected.body)
    assert (got.content_type, got.charset) == (expected.content_type, expected.charset)


def test_a_redirect_to_a_url_of_exactly_the_longest_a_caller_may_send_is_followed(site: str, port: int) -> None:
    got = fetcher().fetch(site + "/to-long", GroupWeb())
    assert len(got.url) == MAX_URL
    assert got == Page(site + long_location(port), "text/html", None, HTML)


def test_the_page_carries_the_calls_deadline_still_running(site: str) -> None:
    got = fetcher(clock=still()).fetch(site + "/page", GroupWeb())
    assert isinstance(got.deadline, Deadline)
    assert got.deadline.remaining() == TIMEOUT


def test_the_site_sees_exactly_the_request_headers_the_fetcher_sends(site: str, port: int) -> None:
    fetcher(content_types=("text/html", "text/plain")).fetch(site + "/page", GroupWeb())
    assert ExactHandler.requests == [
        {
            "host": f"site.test:{port}",
            "user-agent": "web-mcp/1.0 (+AgentCore tools gateway)",
            "accept": "text/html, text/plain",
            "accept-encoding": "gzip, deflate, identity",
        }
    ]


# What is logged


def test_each_hop_is_logged_with_its_host_and_number(site: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    fetcher().fetch(site + "/hop/1", GroupWeb())
    hops = [(line["host"], line["hop"]) for line in printed(capsys, "fetching")]
    assert hops == [("site.test", 0), ("site.test", 1)]


# Memory: compressed and chunked bodies


def peak_of(call: Callable[[], object]) -> int:
    """The most memory ``call`` held (the site's answers are built before: the test asks once first)."""
    tracemalloc.start()
    try:
        with suppress(WebError):
            call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_gzip_bomb_inflates_no_chunk_past_the_room_left(site: str) -> None:
    """Each chunk inflates to at most what is left of max_bytes plus one: a few KiB here, where
    one chunk of the bomb holds megabytes."""
    assert refusal(lambda: fetcher().fetch(site + "/bomb", GroupWeb()))[1] == "too_large"
    peak = peak_of(lambda: fetcher().fetch(site + "/bomb", GroupWeb()))
    assert peak < 2_000_000, f"{peak / 2**20:.1f} MiB"


def test_no_chunk_inflates_more_than_one_byte_past_the_limit_however_much_was_read(site: str) -> None:
    """The room a chunk may inflate into is what is left of max_bytes (plus the byte that tells
    the page is too large), not max_bytes again: with the limit all but reached, the zeros add a
    byte, not megabytes (about the 1 MB page itself is held at the peak)."""
    assert refusal(lambda: fetcher(max_bytes=LATE_LIMIT).fetch(site + "/late-bomb", GroupWeb())) == (
        "forbidden",
        "too_large",
        f"the page is larger than {LATE_LIMIT} bytes",
    )
    peak = peak_of(lambda: fetcher(max_bytes=LATE_LIMIT).fetch(site + "/late-bomb", GroupWeb()))
    assert peak < 2.5 * LATE_LIMIT, f"{peak / 2**20:.1f} MiB"


def test_a_huge_declared_chunk_is_read_a_bounded_piece_at_a_time(site: str) -> None:
    """A read asks for at most CHUNK bytes: asking for "whatever comes" sizes the read by the
    chunk the site declares (200 MB here) before a byte of it arrives."""
    peak = peak_of(lambda: fetcher().fetch(site + "/huge-chunk", GroupWeb()))
    assert peak < HUGE_CHUNK // 20, f"{peak / 2**20:.1f} MiB"


# The hop: what the checks give, and what they refuse


@dataclass
class Recording:
    """A resolver that records each (host, port) it is asked and answers as the test resolver."""

    calls: list[tuple[str, int]] = field(default_factory=list)

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return resolver(host, port)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://site.test", Target("http://site.test", "http", "site.test", 80, SITE, "/")),
        (
            "HTTPS://Site.Test/a b?q=1",
            Target("HTTPS://Site.Test/a b?q=1", "https", "site.test", 443, SITE, "/a%20b?q=1"),
        ),
        ("http://site.test:8080/x", Target("http://site.test:8080/x", "http", "site.test", 8080, SITE, "/x")),
        (
            "https://[2606:4700:0::1111]:8443/",
            Target(
                "https://[2606:4700:0::1111]:8443/",
                "https",
                "2606:4700::1111",
                8443,
                ipaddress.ip_address("2606:4700::1111"),
                "/",
            ),
        ),
    ],
)
@pytest.mark.parametrize("deadline", [None, Deadline(still(), TIMEOUT)])
def test_a_checked_hop_is_exactly_its_scheme_host_port_address_and_target(
    url: str, expected: Target, deadline: Deadline | None
) -> None:
    """The port is the URL's or the scheme's default, and it is the port the resolver is asked
    for, with or without a deadline (the resolution runs on a worker then)."""
    recording = Recording()
    checker = Checker(settings(), resolver=recording, address_policy=lambda address: None)
    assert checker.check(url, GroupWeb(), deadline) == expected
    assert recording.calls == [(expected.host, expected.port)]


@pytest.mark.parametrize(
    ("target", "header"),
    [
        (Target("", "https", "site.test", 443, SITE, "/"), "site.test"),
        (Target("", "http", "site.test", 80, SITE, "/"), "site.test"),
        (Target("", "http", "site.test", 443, SITE, "/"), "site.test:443"),
        (Target("", "https", "::1", 8443, SITE, "/"), "[::1]:8443"),
    ],
)
def test_the_host_header_names_the_port_only_when_it_is_not_the_schemes(target: Target, header: str) -> None:
    assert target.host_header == header


def failing(error: Exception) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        raise error

    return resolve


@pytest.mark.parametrize(
    ("url", "group", "answer", "kind", "reason", "message"),
    [
        ("http://me@site.test/", GroupWeb(), resolver, "invalid_argument", "userinfo", "url: user names and passwords in URLs are not allowed"),
        ("http://semi;colon.example/", GroupWeb(), resolver, "invalid_argument", "invalid_url", "url: the host is not a valid domain name"),
        ("https://[fe80::1%25eth0]/", GroupWeb(), resolver, "invalid_argument", "invalid_url", "url: an IPv6 address with a zone is not a web address"),
        ("http://site.test/", GroupWeb(deny=("site.test",)), resolver, "forbidden", "domain_not_allowed", "the domain site.test is denied to this group"),
        ("http://gone.test/", GroupWeb(), failing(OSError("no such host")), "not_found", "unresolvable", "the host gone.test could not be resolved"),
        ("http://gone.test/", GroupWeb(), failing(UnicodeError("label too long")), "not_found", "unresolvable", "the host gone.test could not be resolved"),
        ("http://gone.test/", GroupWeb(), lambda host, port: ["not an address"], "not_found", "unresolvable", "the host gone.test could not be resolved"),
        ("http://empty.test/", GroupWeb(), lambda host, port: [], "not_found", "unresolvable", "the host empty.test could not be resolved"),
        ("http://mixed.test/", GroupWeb(), resolver, "forbidden", "address_not_allowed", "the address of host mixed.test is private (192.168.1.20)"),
    ],
)  # fmt: skip
def test_each_refused_hop_is_refused_exactly(
    url: str, group: GroupWeb, answer: Callable[[str, int], list[str]], kind: str, reason: str, message: str
) -> None:
    checker = Checker(settings(), resolver=answer, address_policy=site_policy)
    assert refusal(lambda: checker.check(url, group)) == (kind, reason, message)
    assert refusal(lambda: checker.check(url, group, Deadline(still(), TIMEOUT))) == (kind, reason, message)


@pytest.mark.parametrize(
    ("header", "parsed"),
    [
        ('Text/HTML; Charset="UTF-8"', ("text/html", "utf-8")),
        ("text/html; charset=X-SJIS", ("text/html", "x-sjis")),
        ('text/html; charset="X-MAC-CYRILLIC"', ("text/html", "x-mac-cyrillic")),
        ("text/html; charset=a=b", ("text/html", "a=b")),
        ("text/html; charset=", ("text/html", None)),
        ("text/html; boundary=x", ("text/html", None)),
        ("", ("", None)),
    ],
)
def test_a_content_type_is_its_media_type_and_charset_exactly(header: str, parsed: tuple[str, str | None]) -> None:
    assert content_type(header) == parsed


def test_the_system_resolver_asks_for_stream_addresses_of_the_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[tuple[object, ...], dict[str, object]]] = []

    def getaddrinfo(*args: object, **kwargs: object) -> list[tuple[Any, ...]]:
        asked.append((args, kwargs))
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("52.94.236.248", 443))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    assert system_resolver("docs.example.com", 443) == ["52.94.236.248"]
    assert asked == [(("docs.example.com", 443), {"type": socket.SOCK_STREAM})]


def test_the_system_resolver_gives_the_addresses_of_an_address() -> None:
    assert system_resolver("127.0.0.2", 80) == ["127.0.0.2"]


# The deadline


def test_a_passed_deadline_says_how_long_the_call_had() -> None:
    now = [0.0]
    deadline = Deadline(lambda: now[0], 2.5)
    now[0] = 2.5
    assert refusal(deadline.remaining) == (
        "upstream_unavailable",
        "timeout",
        "the page did not arrive within 2.5 seconds",
    )


def test_a_fetch_stops_waiting_for_a_resolver_that_never_answers(site: str) -> None:
    """The resolution counts against the call's deadline (0.05 s of the test's never-moving clock
    here: the resolver never answers); waited for without it, the call would end only with the
    resolver (10 s, the test's failure)."""
    let_go = threading.Event()

    def never(host: str, port: int) -> list[str]:
        let_go.wait(10)
        return []

    checker = Checker(settings(timeout_seconds=0.05), resolver=never, address_policy=site_policy)
    try:
        assert refusal(lambda: Fetcher(checker, clock=still()).fetch(site + "/page", GroupWeb())) == (
            "upstream_unavailable",
            "timeout",
            "the host site.test did not resolve within the call's time",
        )
    finally:
        let_go.set()


def within(seconds: float, call: Callable[[], object]) -> tuple[str, str, str]:
    """The refusal ``call`` ends with, on a worker: a call still waiting after ``seconds`` (of the
    real clock: only the failure path ever waits that long) fails the test instead of hanging it."""
    outcome: list[tuple[str, str, str] | BaseException] = []

    def run() -> None:
        try:
            outcome.append(refusal(call))
        except BaseException as error:  # handed to the test's thread
            outcome.append(error)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"still waiting after {seconds} s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


@contextmanager
def full_listener() -> Iterator[int]:
    """A port whose accept queue is full: a connect to it never completes (the kernel drops the SYN)."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as server:
        filler = socket.create_connection(server.getsockname())
        try:
            yield server.getsockname()[1]
        finally:
            filler.close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_connect_that_never_completes_waits_only_what_is_left(scheme: str) -> None:
    """The connect waits what is left of the deadline (0.2 s: the test's clock never moves, so the
    deadline itself never passes and the site is unreachable), not for as long as the kernel tries."""
    with full_listener() as port:
        call = fetcher(clock=still(), timeout_seconds=0.2).fetch
        assert within(10, lambda: call(f"{scheme}://site.test:{port}/", GroupWeb())) == (
            "upstream_unavailable",
            "unreachable",
            "the site site.test could not be reached",
        )


def test_headers_that_drip_are_cut_off_at_the_deadline(site: str) -> None:
    """Each read of the headers waits what is left, and asks the deadline first: a second per
    reading of the test's clock, the 30 s pass within a few dozen bytes of a header that never ends."""
    clock = FakeClock()
    clock.step = 1.0
    call = fetcher(clock=clock, timeout_seconds=30).fetch
    assert within(10, lambda: call(site + "/drip-headers", GroupWeb())) == (
        "upstream_unavailable",
        "timeout",
        "the page did not arrive within 30 seconds",
    )


class Readings:
    """A clock at 0 that jumps far past any deadline from its ``passes_at``-th reading on."""

    def __init__(self, passes_at: int | None = None) -> None:
        self.count = 0
        self.passes_at = passes_at

    def __call__(self) -> float:
        self.count += 1
        return 1_000.0 if self.passes_at is not None and self.count >= self.passes_at else 0.0


def test_a_failed_connection_is_a_timeout_when_the_deadline_passed_meanwhile_else_unreachable_and_logged(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A port nobody listens on refuses at once. With the deadline still running, the site is
    unreachable (the failure's type is logged); when the deadline passed by the time it failed
    (from the reading after the connection was tried: the last one), the call timed out."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://site.test:{closed.getsockname()[1]}/"
        capsys.readouterr()
        running = Readings()
        assert refusal(lambda: fetcher(clock=running).fetch(url, GroupWeb())) == (
            "upstream_unavailable",
            "unreachable",
            "the site site.test could not be reached",
        )
        failed = [{key: line[key] for key in ("host", "error")} for line in printed(capsys, "fetch failed")]
        assert failed == [{"host": "site.test", "error": "NewConnectionError"}]
        assert refusal(lambda: fetcher(clock=Readings(passes_at=running.count)).fetch(url, GroupWeb())) == (
            "upstream_unavailable",
            "timeout",
            f"the page did not arrive within {TIMEOUT:g} seconds",
        )
        assert printed(capsys, "fetch failed") == []


# HTTPS: pinned, verified, and named


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


def test_https_sends_the_host_name_as_sni_and_reads_the_page(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    server = ThreadingHTTPServer(("127.0.0.1", 0), ExactHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        ExactHandler.requests = []
        https = Fetcher(
            Checker(settings(), resolver=resolver, address_policy=site_policy), clock=still(), ca_certs=str(cert)
        )
        got = https.fetch(f"https://site.test:{server.server_port}/page", GroupWeb())
    finally:
        server.shutdown()
        server.server_close()
    assert got == Page(f"https://site.test:{server.server_port}/page", "text/html", "iso-8859-1", HTML)
    assert names == ["site.test"]
    assert [request["host"] for request in ExactHandler.requests] == [f"site.test:{server.server_port}"]


@pytest.mark.parametrize(
    ("host", "trusted"),
    [("www.site.test", True), ("site.test", False)],  # another name on the address; a CA not in the bundle
)
def test_https_refuses_a_certificate_for_another_name_or_from_an_unknown_ca(
    certificate: tuple[Path, Path], host: str, trusted: bool
) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), ExactHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.handle_error = lambda *args: None  # type: ignore[method-assign]  # refused handshakes are expected
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        ExactHandler.requests = []
        checker = Checker(settings(), resolver=resolver, address_policy=site_policy)
        https = Fetcher(checker, clock=still(), ca_certs=str(cert)) if trusted else Fetcher(checker, clock=still())
        assert refusal(lambda: https.fetch(f"https://{host}:{server.server_port}/page", GroupWeb())) == (
            "upstream_unavailable",
            "unreachable",
            f"the site {host} could not be reached",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert ExactHandler.requests == []
