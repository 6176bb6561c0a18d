"""Hostile upstreams (issue 14): a legacy API that answers too much, too slowly, malformed, with a
redirect, or with values meant to steer the next request. Every outcome is a result or an error
from the taxonomy, within the configured bytes and deadline, and no error or log shows a credential.

Time is the test's: the client's deadline runs on an injected clock, so no test depends on how
fast the machine is.
"""

from __future__ import annotations

import base64
import codecs
import gc
import json
import logging
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import urllib3
from hypothesis import HealthCheck, given, settings, strategies as st

from legacy_tools import handler
from legacy_tools.adapters import TOOLS, Shape
from shared.legacy_client import MAX_JSON_DEPTH, ClientSettings, Credentials, LegacyClient, decode_json
from shared.tool_errors import ToolError
from shared.tools import JSON_MEMORY_FACTOR
from tests.lambdas.conftest import FakeClientContext, FakeContext
from tests.lambdas.legacy_api import (
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER_EMAIL,
    CUSTOMER_ID,
    FIELDS,
    Answer,
    LegacyApi,
    serve,
)
from tests.lambdas.loopback import QuietHandler, loopback
from tests.lambdas.strategies import json_values
from tests.lambdas.test_legacy_tools import configure

SHAPE = Shape(top_k=20, byte_budget=4000, fields=FIELDS)
CAP = 1 << 20
CUSTOMERS = "/v2/customers"
T = TypeVar("T")


class TickingClock:
    """A clock that moves ``tick`` seconds each time it is read: a read loop reads it once per chunk."""

    def __init__(self, tick: float = 0.0) -> None:
        self.now, self.tick = 1000.0, tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


class DripClock(TickingClock):
    """A TickingClock that stands still until the hostile answer starts (the server has sent a
    byte of it): the exchanges before it (the token's) cost no time, however many socket reads
    the machine's timing splits them into."""

    def __init__(self, api: LegacyApi, tick: float) -> None:
        super().__init__(tick)
        self.api = api

    def __call__(self) -> float:
        return super().__call__() if self.api.sent_bytes else self.now


def make_client(
    api: LegacyApi,
    *,
    clock: TickingClock | None = None,
    timeout: float = 10,
    attempts: int = 1,
    secret: str = CLIENT_SECRET,
) -> LegacyClient:
    settings = ClientSettings(
        base_url=api.url, timeout_seconds=timeout, max_attempts=attempts, backoff_seconds=0, max_response_bytes=CAP
    )
    return LegacyClient(
        settings, lambda: Credentials(CLIENT_ID, secret), clock=clock or TickingClock(), sleep=lambda _: None
    )


@pytest.fixture
def api() -> Iterator[LegacyApi]:
    with serve() as running:
        yield running


def find_orders(client: LegacyClient) -> dict[str, Any]:
    return TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL})


def refusal(client: LegacyClient) -> ToolError:
    with pytest.raises(ToolError) as failure:
        find_orders(client)
    return failure.value


# 1. Bounded memory and time.


def traced(call: Callable[[], T]) -> tuple[T, int]:
    """What ``call`` returns, and the most memory Python held while it ran (bytes)."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_answer_larger_than_the_cap_is_refused_while_it_streams(api: LegacyApi) -> None:
    """50 MB with no Content-Length: the client stops counting at the cap, holding about the cap."""
    api.answers[CUSTOMERS] = Answer(body=b" " * 65_536, repeat=800, content_length="none")
    error, peak = traced(lambda: refusal(make_client(api)))
    assert (error.kind, error.message) == ("upstream_unavailable", f"the service's answer is larger than {CAP} bytes")
    assert peak < 3 * CAP, peak


def test_a_listing_of_many_tiny_items_projects_only_the_page_it_returns(api: LegacyApi) -> None:
    """Within the cap, 1 MiB of [0,0,...] is half a million items: each projected was about 145
    times the answer's size in memory (past a 256 MB function at a 2 MiB cap); a page projects top_k,
    and the depth check holds containers only: about 7 times."""
    items = b",".join([b"0"] * ((CAP - 64) // 2))
    body = b'{"data": {"orders": [' + items + b"]}}"
    api.answers[f"/v2/customers/{CUSTOMER_ID}/orders"] = Answer(body=body)
    answer, peak = traced(lambda: find_orders(make_client(api)))
    assert (answer["total"], answer["returned"]) == (items.count(b",") + 1, SHAPE.top_k)
    assert peak < 12 * len(body), f"{peak / 2**20:.0f} MiB for {len(body) / 2**20:.1f} MiB"


# Lists nested as deep as the client reads them inside the answer's three levels ({"data": {"orders": [...]}}).
DEEPEST_ITEM = b"[" * (MAX_JSON_DEPTH - 3) + b"]" * (MAX_JSON_DEPTH - 3)
SHAPES = (b"0", b'"ab"', b"1.5", b"{}", b"[]", b"[0]", b"[[]]", b"[[[]]]", b'{"a":0}', b'{"a":[]}', b'{"a":{}}')
NESTED = (b"[" * 10 + b"]" * 10, b"[" * 20 + b"]" * 20, DEEPEST_ITEM)  # the deepest is the densest
LONE_SURROGATE = b'"\\ud800",'
WIDE = '"\U0001f600",'.encode()  # one character past U+FFFF: Python holds the whole text in 4 bytes a character


def orders_of(item: bytes, extra: bytes = b"") -> bytes:
    """An orders answer within CAP bytes: ``extra``, then ``item`` again and again."""
    return b'{"data": {"orders": [' + extra + b",".join([item] * ((CAP - 64) // (len(item) + 1))) + b"]}}"


@pytest.mark.parametrize(
    ("item", "extra"),
    [
        *((item, extra) for item in SHAPES for extra in (b"", LONE_SURROGATE)),
        *((item, extra) for item in NESTED for extra in (b"", WIDE)),
    ],
    ids=lambda value: f"{value[:1].decode()}x{len(value) // 2}" if len(value) > 20 else value.decode(),
)
def test_a_parsed_answer_of_any_shape_holds_at_most_the_factor_config_sizes_functions_by(
    item: bytes, extra: bytes
) -> None:
    """shared.tools.JSON_MEMORY_FACTOR, by which config refuses a max_response_bytes the function's
    memory cannot parse: 1 MiB of the densest shapes JSON has (empty containers, nested as deep as
    the client reads) as Python objects, the depth check included (it walks one iterator per level,
    never one per item), and the reading of a lone surrogate escape (in place, never a second copy
    of the answer)."""
    body = orders_of(item, extra)
    _, peak = traced(lambda: decode_json(body))
    assert peak < JSON_MEMORY_FACTOR * len(body), f"{peak / len(body):.1f} times the answer"


def test_the_client_holds_no_copy_of_an_answer_s_bytes_while_it_parses_them(api: LegacyApi) -> None:
    """The factor counts the parsed objects and their text: read as a list of chunks, joined, and
    kept beside the text while it was parsed, the bytes were a copy more (the densest answer's
    parse held 44 times its size, and the client's get 45)."""
    body = orders_of(DEEPEST_ITEM)
    api.answers.update({CUSTOMERS: Answer(body=body), "/warm-up": Answer(body=b"{}")})
    client = make_client(api)
    client.get("/warm-up")  # the token and the code's first run, not counted
    (_, size), through_client = traced(lambda: client.get(CUSTOMERS))
    _, parsed_alone = traced(lambda: decode_json(body))
    assert size == len(body)
    assert through_client < parsed_alone + len(body) // 4, f"{(through_client - parsed_alone) / len(body):.2f}"


def test_a_declared_length_over_the_cap_is_refused_before_any_body_is_read(api: LegacyApi) -> None:
    """The server then sends nothing: a client that waited for the body would time out instead
    (after the 10 s a socket wait may take: no short real bound for a busy machine to miss)."""
    api.answers[CUSTOMERS] = Answer(content_length=50 * CAP, hold=True)
    error = refusal(make_client(api))
    assert error.message == f"the service's answer is larger than {CAP} bytes"


def test_the_token_endpoint_is_capped_too(api: LegacyApi) -> None:
    api.answers["/oauth/token"] = Answer(body=b" " * 65_536, repeat=800, content_length="none")
    assert refusal(make_client(api)).message == f"the service's answer is larger than {CAP} bytes"


@pytest.mark.parametrize("path", [CUSTOMERS, "/oauth/token"])
def test_a_server_that_drips_is_cut_off_at_the_deadline(api: LegacyApi, path: str) -> None:
    """A valid answer, one byte every 50 ms (about a minute in all): the clock passes 1 s per read,
    the deadline is 5 s, so the client gives up after a few reads instead of waiting it out."""
    answer = {"access_token": "t" * 100, "expires_in": 3600, "data": {"items": []}, "pad": "x" * 1000}
    valid = json.dumps(answer).encode()
    api.answers[path] = Answer(body=valid, piece_bytes=1, pause_seconds=0.05)
    error = refusal(make_client(api, clock=DripClock(api, tick=1.0), timeout=5))
    assert error.kind == "upstream_unavailable"
    assert error.message.endswith("did not answer in time"), error.message
    assert api.sent_bytes < len(valid)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        (CUSTOMERS, "the service did not answer in time"),
        ("/oauth/token", "the service's token endpoint did not answer in time"),
    ],
)
def test_a_server_that_drips_its_headers_is_cut_off_at_the_deadline(api: LegacyApi, path: str, message: str) -> None:
    """A status line and 4 KB of headers, one byte every 10 ms (40 s in all), each byte well inside
    the socket's timeout: the clock passes 1 s per read and the deadline is 5 s, so the client gives
    up a few bytes in, never having seen a whole header (how many bytes are out by then is the
    machine's speed: 40 s of drip is the margin)."""
    api.answers[path] = Answer(body=b"{}", head_padding=4096, piece_bytes=1, pause_seconds=0.01)
    error = refusal(make_client(api, clock=DripClock(api, tick=1.0), timeout=5))
    assert (error.kind, error.message) == ("upstream_unavailable", message)
    assert api.sent_bytes < 4096, api.sent_bytes


def test_a_wait_on_an_answer_that_ends_at_close_is_bounded_by_the_deadline_too(api: LegacyApi) -> None:
    """An answer without a length (it ends when the server closes: http.client then hands its socket
    to the response) sends a first piece and stalls 30 s. The clock reaches 10 ms before the deadline
    once that piece is out, so the next wait may last 10 ms, not the request's 60 s read timeout: the
    call ends as a timeout instead of waiting out the stall and reading the rest. (The stall is
    shorter than the read timeout, so a client that waited it out would succeed; 30 s is the margin
    a busy machine has to end the call.)"""
    valid = json.dumps({"data": {"items": []}}).encode()
    api.answers[CUSTOMERS] = Answer(body=valid, piece_bytes=4, pause_seconds=30.0, content_length="none")
    timeout = 60.0

    def clock() -> float:
        return timeout - 0.01 if api.sent_bytes else 0.0

    settings = ClientSettings(base_url=api.url, timeout_seconds=timeout, max_attempts=1, backoff_seconds=0)
    client = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=clock, sleep=lambda _: None)
    error = refusal(client)
    assert (error.kind, error.message) == ("upstream_unavailable", "the service did not answer in time")
    assert api.sent_bytes < len(valid)


def test_a_deadline_counts_every_attempt_on_the_injected_clock(api: LegacyApi) -> None:
    """Retries after a deadline are bounded by max_attempts, and backoff goes through the injected sleep."""
    slept: list[float] = []
    api.answers[CUSTOMERS] = Answer(body=b"{}" * 200, piece_bytes=1, pause_seconds=0.05)
    settings = ClientSettings(base_url=api.url, timeout_seconds=5, max_attempts=3, backoff_seconds=1)
    client = LegacyClient(
        settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=DripClock(api, 1.0), sleep=slept.append
    )
    assert refusal(client).message == "the service did not answer in time"
    assert len(slept) == 2
    assert api.requests == [CUSTOMERS] * 3


# 2. Malformed answers become taxonomy errors.

DEEP = b"[" * 10_000 + b"]" * 10_000
UNUSABLE = "the service's answer is unusable: "
CHANGED = "the service's answer has changed: "
MALFORMED = {
    "not json": (b"<html>maintenance</html>", f"{UNUSABLE}not JSON"),
    "empty": (b"", f"{UNUSABLE}not JSON"),
    "deep arrays": (DEEP, f"{UNUSABLE}nested too deeply"),
    "deep but parseable": (b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1), f"{UNUSABLE}nested too deeply"),
    "infinite float": (b'{"data": {"items": [{"customerId": 1e999}]}}', f"{UNUSABLE}not JSON"),
    "NaN": (b'{"data": NaN}', f"{UNUSABLE}not JSON"),
    "huge int": (b'{"data": ' + b"9" * 5000 + b"}", f"{UNUSABLE}not JSON"),
    "invalid utf-8": (b'{"data": "\xff\xfe"}', f"{UNUSABLE}not UTF-8"),
    "utf-16 with BOM": ('{"data": {}}'.encode("utf-16"), f"{UNUSABLE}not UTF-8"),
    "utf-8 BOM": (codecs.BOM_UTF8 + b'{"data": {}}', f"{UNUSABLE}a byte order mark before the JSON"),
    "a list": (b"[]", f"{CHANGED}the answer is not an object"),
    "data a list": (b'{"data": []}', f"{CHANGED}data is not an object"),
    "items an object": (b'{"data": {"items": {}}}', f"{CHANGED}data.items is not a list"),
    "item a number": (b'{"data": {"items": [7]}}', f"{CHANGED}data.items[0] is not an object"),
    "no id": (b'{"data": {"items": [{"email": "ada@example.com"}]}}', f"{CHANGED}customerId is not an identifier"),
    "id an object": (
        b'{"data": {"items": [{"customerId": {"a": 1}, "email": "ada@example.com"}]}}',
        f"{CHANGED}customerId is not an identifier",
    ),
    "id a boolean": (
        b'{"data": {"items": [{"customerId": true, "email": "ada@example.com"}]}}',
        f"{CHANGED}customerId is not an identifier",
    ),
    "id a dot segment": (
        b'{"data": {"items": [{"customerId": "..", "email": "ada@example.com"}]}}',
        f"{CHANGED}customerId is not an identifier",
    ),
}


@pytest.mark.parametrize(("body", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_answer_is_a_taxonomy_error(api: LegacyApi, body: bytes, message: str) -> None:
    api.answers[CUSTOMERS] = Answer(body=body)
    error = refusal(make_client(api))
    assert (error.kind, error.message, error.retry_after) == ("upstream_unavailable", message, 30)


def test_with_one_attempt_a_token_revoked_early_fails_one_call_and_the_next_gets_a_fresh_one(api: LegacyApi) -> None:
    """The refresh after a 401 is an attempt (longest_call_seconds counts them): with one, the call
    says so, and the next call fetches a fresh token rather than sending the refused one again."""
    client = make_client(api, attempts=1)
    find_orders(client)
    api.revoke_tokens()
    error = refusal(client)
    assert (error.kind, error.message) == (
        "upstream_unavailable",
        "the service refused the token; no attempt was left to retry with a fresh one",
    )
    assert find_orders(client)["records"]
    assert api.token_requests == 2


def test_a_header_section_urllib3_cannot_parse_logs_neither_the_arguments_nor_the_upstreams_text(
    api: LegacyApi, caplog: pytest.LogCaptureFixture
) -> None:
    """urllib3 warns of a header line without a colon with the request's URL (the query holds the
    caller's e-mail) and the line itself; the runtime writes every logger's warnings."""
    line = "this line has no colon UPSTREAM-CHOSEN-TEXT\r\nX-Later"  # a name that ends one line early
    api.answers[CUSTOMERS] = Answer(body=json.dumps({"data": {"items": []}}).encode(), headers={line: "1"})
    caplog.set_level(logging.DEBUG)  # the root logger takes everything: only urllib3's own level holds it
    with pytest.raises(ToolError, match=r"^no customer has that e-mail address$"):  # the answer was read
        find_orders(make_client(api))
    logged = caplog.text
    assert "UPSTREAM-CHOSEN-TEXT" not in logged
    assert quote(CUSTOMER_EMAIL, safe="") not in logged
    assert CUSTOMER_EMAIL not in logged


@pytest.mark.parametrize(
    ("header", "seconds"), [("9" * 18, 3600), ("-5", 1), ("0", 1), ("soon", 30), ("", 30), ("120", 120)]
)
def test_a_retry_after_is_passed_on_within_bounds(api: LegacyApi, header: str, seconds: int) -> None:
    api.answers[CUSTOMERS] = Answer(body=b"{}", status=503, headers={"Retry-After": header})
    error = refusal(make_client(api))
    assert (error.kind, error.result()["error"]["retry_after"]) == ("upstream_unavailable", seconds)


# Digits str.isdigit() takes and int() does not ("²"), and more digits than int() converts.
@pytest.mark.parametrize(
    "length", ["\u00b2", "1" * 5000, "0x10", "+5", "1_000"], ids=["superscript", "5000 digits", "hex", "sign", "_"]
)
def test_a_content_length_that_is_not_a_byte_count_is_a_taxonomy_error(api: LegacyApi, length: str) -> None:
    body = b'{"data": {"items": []}}'
    api.answers[CUSTOMERS] = Answer(body=body, headers={"Content-Length": length}, content_length="none")
    error = refusal(make_client(api))
    assert (error.kind, error.message) == (
        "upstream_unavailable",
        "the service's answer is unusable: Content-Length is not a number",
    )


NO_TOKEN = "the token endpoint's answer holds no usable access_token"
NO_EXPIRY = "the token endpoint's answer holds no usable expires_in"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "the token endpoint's answer is not an object"),
        (b"{}", NO_TOKEN),
        (b'{"access_token": 42, "expires_in": 3600}', NO_TOKEN),
        (b'{"access_token": "", "expires_in": 3600}', NO_TOKEN),
        (b'{"access_token": "has space", "expires_in": 60}', NO_TOKEN),
        (b'{"access_token": "' + b"t" * 4097 + b'", "expires_in": 60}', NO_TOKEN),
        # Padding counts too: half a megabyte of it would go out in every request's header.
        (b'{"access_token": "' + b"t" * 16 + b"=" * 500_000 + b'", "expires_in": 60}', NO_TOKEN),
        (b'{"access_token": "ok", "expires_in": "soon"}', NO_EXPIRY),
        (b'{"access_token": "ok", "expires_in": -5}', NO_EXPIRY),
        (b'{"access_token": "ok", "expires_in": 0}', NO_EXPIRY),
        (b'{"access_token": "ok", "expires_in": null}', NO_EXPIRY),
        (b'{"access_token": "ok", "expires_in": true}', NO_EXPIRY),
        (b'{"access_token": "ok", "expires_in": 1e999}', "the service's answer is unusable: not JSON"),
        (DEEP, "the service's answer is unusable: nested too deeply"),
        (b"\xff", "the service's answer is unusable: not UTF-8"),
    ],
)
def test_a_token_answer_without_a_usable_token_or_expiry_is_a_taxonomy_error(
    api: LegacyApi, body: bytes, message: str
) -> None:
    # DEEP decodes to the interpreter's recursion limit: a garbage collection there would run
    # earlier tests' finalizers with no stack left (pytest reports them as unraisable), so the
    # garbage is collected first.
    gc.collect()
    api.answers["/oauth/token"] = Answer(body=body)
    error = refusal(make_client(api))
    assert (error.kind, error.message, error.retry_after) == ("upstream_unavailable", message, 30)
    assert api.requests == []  # no resource request went out with a bad token


def test_a_redirect_is_not_followed_to_another_host(api: LegacyApi) -> None:
    stolen: list[str] = []

    class Elsewhere(QuietHandler):
        def do_GET(self) -> None:
            stolen.append(self.headers.get("Authorization", ""))
            self.send_response(200)
            self.end_headers()

    with loopback(Elsewhere) as elsewhere:
        api.answers[CUSTOMERS] = Answer(status=302, headers={"Location": f"{elsewhere}/steal"}, body=b"{}")
        error = refusal(make_client(api))
        # A pool that would follow redirects (urllib3's default) is told not to, per request.
        follower = LegacyClient(
            ClientSettings(base_url=api.url, max_attempts=1),
            lambda: Credentials(CLIENT_ID, CLIENT_SECRET),
            http=urllib3.PoolManager(),
            clock=TickingClock(),
        )
        assert refusal(follower).message == error.message
        api.answers.clear()
        api.answers["/oauth/token"] = Answer(status=307, headers={"Location": f"{elsewhere}/oauth/token"})
        token_error = refusal(make_client(api))
    assert stolen == []
    assert (error.kind, error.message) == (
        "upstream_unavailable",
        "the service answered a redirect (302); redirects are not followed",
    )
    assert (token_error.kind, token_error.message) == ("upstream_unavailable", "the token endpoint answered 307")


# 3. What one answer hands the next request stays one path segment.


@pytest.mark.parametrize("hostile", ["../admin", "x?y=1", "a/b", "%2e%2e", "a#b", "..%2Fadmin", "C-1001/../../admin"])
def test_an_upstream_value_cannot_steer_the_chained_request(api: LegacyApi, hostile: str) -> None:
    api.answers[CUSTOMERS] = Answer(
        body=json.dumps({"data": {"items": [{"customerId": hostile, "email": CUSTOMER_EMAIL}]}}).encode()
    )
    error = refusal(make_client(api))
    assert error.kind == "not_found"  # one unknown customer's orders: nothing else was asked for
    chained = api.requests[-1]
    assert chained == f"/v2/customers/{quote(hostile, safe='')}/orders"
    assert chained.count("/") == 4
    assert "?" not in chained
    assert "#" not in chained


def test_an_id_holding_half_a_surrogate_pair_is_read_as_a_replacement_character_in_one_segment(
    api: LegacyApi,
) -> None:
    """JSON may escape half a surrogate pair, which no UTF-8 (so no URL) holds: the client reads it
    as U+FFFD, so the chained request is one encoded segment (an unknown customer's orders)."""
    api.answers[CUSTOMERS] = Answer(
        body=b'{"data": {"items": [{"customerId": "\\ud800x", "email": "ada@example.com"}]}}'
    )
    assert refusal(make_client(api)).kind == "not_found"
    assert api.requests[-1] == f"/v2/customers/{quote(chr(0xFFFD) + 'x', safe='')}/orders"


# 4. No credential in any error text or log.

HOSTILE_TOKENS = ["tok\r\nX-Injected: yes", "tok\nSet-Cookie: a=b", "tok en", "tök", "tok\x00"]


@pytest.mark.parametrize("token", HOSTILE_TOKENS)
def test_a_malformed_token_never_reaches_a_header_or_an_error(
    api: LegacyApi,
    token: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    api.answers["/oauth/token"] = Answer(body=json.dumps({"access_token": token, "expires_in": 3600}).encode())
    client = make_client(api)
    error = refusal(client)
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch)
    context = FakeContext(client_context=FakeClientContext({"bedrockAgentCoreToolName": "orders___find_orders"}))
    result = handler.lambda_handler({"customer_email": CUSTOMER_EMAIL}, context)
    assert result["error"]["kind"] == "upstream_unavailable"
    seen = "\n".join(
        [str(error), repr(error), json.dumps(result), capsys.readouterr().out, capsys.readouterr().err, caplog.text]
    )
    basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for secret in (token, token.split("\n")[0][:6] + "\n", CLIENT_SECRET, basic, "X-Injected", "Set-Cookie"):
        assert secret not in seen
    assert api.requests == []


def test_a_credentials_repr_hides_the_secret() -> None:
    assert CLIENT_SECRET not in repr(Credentials(CLIENT_ID, CLIENT_SECRET))


def test_a_secret_utf_8_cannot_encode_is_refused_without_it() -> None:
    """Secrets Manager's JSON can escape half a surrogate pair: encoding the Basic header would raise
    an error whose text holds the pair id:secret."""
    client = LegacyClient(
        ClientSettings(base_url="http://127.0.0.1:9", max_attempts=1),
        lambda: Credentials("id", "s3cr3t-\ud800-value"),
        sleep=lambda _: None,
    )
    with pytest.raises(ToolError) as failure:
        client.get("/v2/customers")
    assert (failure.value.kind, failure.value.message) == ("forbidden", "the client credentials are not UTF-8 text")
    assert failure.value.__suppress_context__
    assert "s3cr3t" not in repr(failure.value)


def test_a_secret_that_would_break_a_header_is_sent_encoded_and_never_echoed(api: LegacyApi) -> None:
    hostile = "s3cr3t\r\nX-Injected: yes€"
    error = refusal(make_client(api, secret=hostile))
    assert error.kind == "forbidden"  # the server does not know it: refused, not an exception
    assert "s3cr3t" not in str(error)
    assert "X-Injected" not in str(error)


# 6. Any answer: a result or a taxonomy error, never an exception.


@pytest.fixture(scope="module")
def hostile_api() -> Iterator[LegacyApi]:
    with serve() as running:
        yield running


def answer_or_error(api: LegacyApi, path: str, body: bytes) -> None:
    api.answers.clear()
    api.answers[path] = Answer(body=body)
    outcome: dict[str, Any] | ToolError
    try:
        outcome = find_orders(make_client(api))
    except ToolError as error:
        outcome = error
    if isinstance(outcome, ToolError):
        assert outcome.kind in {"upstream_unavailable", "not_found"}
    else:
        json.dumps(outcome, allow_nan=False)  # what the Lambda answers is JSON


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPERTY
@given(body=st.binary(max_size=512))
def test_any_bytes_as_an_answer_is_a_result_or_a_taxonomy_error(hostile_api: LegacyApi, body: bytes) -> None:
    answer_or_error(hostile_api, CUSTOMERS, body)


@PROPERTY
@given(value=json_values, where=st.sampled_from(["answer", "data", "items", "item", "customerId"]))
def test_any_json_anywhere_in_an_answer_is_a_result_or_a_taxonomy_error(
    hostile_api: LegacyApi, value: Any, where: str
) -> None:
    wrapped = {
        "answer": value,
        "data": {"data": value},
        "items": {"data": {"items": value}},
        "item": {"data": {"items": [value]}},
        "customerId": {"data": {"items": [{"customerId": value, "email": CUSTOMER_EMAIL}]}},
    }[where]
    answer_or_error(hostile_api, CUSTOMERS, json.dumps(wrapped).encode())


@PROPERTY
@given(value=json_values)
def test_any_json_as_the_orders_listing_is_a_result_or_a_taxonomy_error(hostile_api: LegacyApi, value: Any) -> None:
    answer_or_error(
        hostile_api, f"/v2/customers/{CUSTOMER_ID}/orders", json.dumps({"data": {"orders": value}}).encode()
    )


@PROPERTY
@given(value=json_values | st.fixed_dictionaries({"access_token": json_values, "expires_in": json_values}))
def test_any_json_as_a_token_answer_is_a_token_or_a_taxonomy_error(hostile_api: LegacyApi, value: Any) -> None:
    answer_or_error(hostile_api, "/oauth/token", json.dumps(value).encode())


def test_an_exchange_gives_connect_and_the_answers_headers_one_deadline_together() -> None:
    """Without ``total``, urllib3 gives the wait for the headers the whole read timeout again after
    a slow connect: one exchange could take twice its deadline, and a pull run's reserve (which
    counts one deadline per exchange) would not hold."""
    timeouts: list[urllib3.Timeout] = []

    class Recording:
        def request(self, method: str, url: str, **kwargs: Any) -> Any:
            timeouts.append(kwargs["timeout"])
            raise urllib3.exceptions.ConnectTimeoutError(None, url, "slow")

    client = LegacyClient(
        ClientSettings(base_url="https://api.example.com", timeout_seconds=7, max_attempts=1),
        lambda: Credentials(client_id="id", client_secret="secret"),
        http=Recording(),  # type: ignore[arg-type]
        clock=lambda: 100.0,
    )
    with pytest.raises(ToolError):
        client.get("/orders")
    (timeout,) = timeouts  # the token's exchange, refused: nothing after it
    assert timeout.total == 7
    assert timeout.connect_timeout == 7
