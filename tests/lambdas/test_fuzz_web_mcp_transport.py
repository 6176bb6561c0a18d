"""Property: the web MCP server's HTTP transport (streamable HTTP at /mcp, stateless, served by
uvicorn on loopback as AgentCore Runtime runs it) answers every request, whatever its body, headers,
method or path, with a JSON-RPC answer or an HTTP 4xx within a bound, never a 5xx or a stack trace,
and keeps serving: a valid ``tools/list`` after each one is answered. A body past the server's cap
is refused with a 413 before it is read into memory, declared or chunked.

The tools are a fake that counts its calls (the tools' own refusals are test_fuzz_web_mcp.py's):
a call reaches them only as a well-formed ``tools/call`` of a known tool with valid arguments.
"""

from __future__ import annotations

import json
import threading
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from tests.lambdas.loopback import serve_asgi
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written
from web_mcp.server import MAX_BODY_BYTES, PATH, create_app

SETTINGS: dict[str, Any] = dict(
    max_examples=60,
    deadline=None,
    # capfd is read (and so emptied) at the start of each example that looks at the logs.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ANSWER_SECONDS = 10.0  # every request is answered within this (the tools answer at once)
ACCEPT = "application/json, text/event-stream"
HEADERS = {"Accept": ACCEPT, "Content-Type": "application/json"}
LIST = {"jsonrpc": "2.0", "id": "follow-up", "method": "tools/list", "params": {}}
MARKER = "caller-secret-7f3a"  # what a caller sends that no answer to someone else or log line carries


class FakeTools:
    """WebTools as server.call uses it: counts calls and answers with a small page."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._lock = threading.Lock()

    def _page(self, name: str, arguments: Any) -> dict[str, Any]:
        with self._lock:
            self.calls.append(name)
        return {"url": str(arguments.url), "title": "t", "text": "page", "external": True, "truncated": False}

    def web_fetch(self, arguments: Any) -> dict[str, Any]:
        return self._page("web_fetch", arguments)

    def web_browse(self, arguments: Any) -> dict[str, Any]:
        return self._page("web_browse", arguments)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, FakeTools]]:
    tools = FakeTools()
    with serve_asgi(create_app(tools)) as base:  # type: ignore[arg-type]
        yield base, tools


def _messages(response: httpx.Response) -> list[Any]:
    """The JSON-RPC messages of an answer: a JSON body or an event stream's data lines."""
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        lines = response.text.replace("\r\n", "\n").split("\n")  # not splitlines(): a JSON string may hold U+0085
        return [json.loads(line[5:]) for line in lines if line.startswith("data:")]
    if kind.startswith("application/json") and response.content:
        return [response.json()]
    return []


def answered(response: httpx.Response) -> list[Any]:
    """The answer's messages, after checking what every answer must be."""
    assert response.status_code < 500, (response.status_code, response.text[:500])
    assert response.status_code not in (301, 302, 303, 307, 308), response.headers  # no redirect to a Host's choice
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    messages = _messages(response)
    for message in messages:
        assert isinstance(message, dict), message
        assert message.get("jsonrpc") == "2.0", message
        assert ("result" in message) != ("error" in message), message
        if "error" in message:
            assert isinstance(message["error"].get("code"), int), message
            assert isinstance(message["error"].get("message"), str), message
    kind = response.headers.get("content-type", "")
    if response.status_code >= 400 and kind.startswith("application/json") and response.content:
        assert messages, response.text[:500]
        assert "error" in messages[0], response.text[:500]
    return messages


def still_serving(base: str) -> None:
    response = httpx.post(f"{base}{PATH}", json=LIST, headers=HEADERS, timeout=ANSWER_SECONDS)
    assert response.status_code == 200, response.text[:500]
    (message,) = _messages(response)
    assert message["id"] == "follow-up"
    assert [tool["name"] for tool in message["result"]["tools"]] == ["web_fetch", "web_browse"]


def send(base: str, method: str, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    """One request; a transport error or no answer within ANSWER_SECONDS fails the test."""
    return httpx.request(method, f"{base}{path}", content=body, headers=headers, timeout=ANSWER_SECONDS)


# Bodies


ids = st.one_of(st.integers(), st.text(max_size=20), st.none(), st.booleans(), st.floats(allow_nan=False), json_values)
methods = st.one_of(
    st.sampled_from(
        [
            "tools/list",
            "tools/call",
            "initialize",
            "ping",
            "resources/list",
            "prompts/get",
            "notifications/initialized",
            "logging/setLevel",
            "completion/complete",
            "",
            "tools/",
            "TOOLS/LIST",
        ]
    ),
    hostile_text(20),
)
params = st.one_of(
    st.just({}),
    json_values,
    st.fixed_dictionaries(
        {"name": st.one_of(st.sampled_from(["web_fetch", "web_browse"]), hostile_text(20), json_values)},
        optional={"arguments": json_values, "_meta": json_values},
    ),
)
requests = st.builds(
    lambda jsonrpc, id_, method, params_, drop: {
        k: v for k, v in {"jsonrpc": jsonrpc, "id": id_, "method": method, "params": params_}.items() if k not in drop
    },
    st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2, None]),
    ids,
    methods,
    params,
    st.sets(st.sampled_from(["jsonrpc", "id", "method", "params"]), max_size=2),
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(lambda value: json.dumps(value).encode(), json_values),
    st.builds(lambda message: json.dumps(message).encode(), requests),
    st.builds(lambda batch: json.dumps(batch).encode(), st.lists(requests, max_size=5)),
    st.sampled_from(
        [
            b"",
            b"[]",
            b"{}",
            b"null",
            b'"\\ud800"',
            b"[" * 50_000 + b"]" * 50_000,
            b'{"jsonrpc":"2.0","id":' + b"9" * 5_000 + b',"method":"tools/list"}',
            b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}\x00',
            b'\xef\xbb\xbf{"jsonrpc":"2.0","id":1,"method":"tools/list"}',
            b"\xff\xfe{}",
        ]
    ),
)
content_types = st.sampled_from(
    [
        None,
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "",
        "application/json\x7f",
        "APPLICATION/JSON",
    ]
)
accepts = st.sampled_from(
    [None, ACCEPT, "application/json", "text/event-stream", "*/*", "text/html", "", "application/json;q=0"]
)
versions = st.sampled_from([None, "2025-03-26", "2025-06-18", "2025-11-25", "1999-01-01", "latest", "\x01"])
session_ids = st.one_of(st.none(), st.sampled_from(["forged", "a" * 2000, "../../etc", ""]))


def _headers(content_type: str | None, accept: str | None, version: str | None, session: str | None) -> dict[str, str]:
    headers = {
        "Content-Type": content_type,
        "Accept": accept,
        "MCP-Protocol-Version": version,
        "Mcp-Session-Id": session,
    }
    return {name: value for name, value in headers.items() if value is not None}


@settings(**SETTINGS)
@given(body=bodies, content_type=content_types, accept=accepts, version=versions, session=session_ids)
@example(body=b"nope", content_type="application/json", accept=ACCEPT, version=None, session=None)
@example(
    body=json.dumps([LIST, LIST]).encode(), content_type="application/json", accept=ACCEPT, version=None, session=None
)
@example(
    body=json.dumps({**LIST, "id": None}).encode(),
    content_type="application/json",
    accept=ACCEPT,
    version=None,
    session=None,
)
@example(body=json.dumps(LIST).encode(), content_type="application/json", accept=ACCEPT, version=None, session="forged")
def test_every_post_is_answered_and_the_server_keeps_serving(
    server: tuple[str, FakeTools],
    body: bytes,
    content_type: str | None,
    accept: str | None,
    version: str | None,
    session: str | None,
) -> None:
    base, _ = server
    sent_id = None
    try:
        message = json.loads(body)
        sent_id = message.get("id") if isinstance(message, dict) and "method" in message else None
    except (ValueError, RecursionError):
        pass
    answers = answered(send(base, "POST", PATH, body, _headers(content_type, accept, version, session)))
    for answer in answers:  # an answer to a request names the request's id, or none when it could not be read
        assert answer.get("id") in (sent_id, None), (answer, sent_id)
    still_serving(base)


def _call(id_: Any, name: Any, arguments: Any) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
    ).encode()


@settings(**SETTINGS)
@given(
    id_=st.one_of(st.integers(min_value=-(2**53), max_value=2**53), st.text(max_size=20)),
    name=st.one_of(st.sampled_from(["web_fetch", "web_browse"]), hostile_text(40), st.text(min_size=300)),
    arguments=st.one_of(
        json_values,
        st.fixed_dictionaries(
            {"url": st.one_of(st.just("https://example.org/" + MARKER), hostile_text(40), json_values)},
            optional={"caller_group": json_values, "max_chars": json_values, "steps": json_values},
        ),
    ),
)
@example(id_=1, name="web_fetch", arguments={"url": "https://example.org/" + MARKER, "caller_group": "g"})
@example(id_=1, name="n" * 100_000, arguments={})
def test_a_tool_call_of_any_shape_is_a_jsonrpc_answer_to_its_id(
    server: tuple[str, FakeTools],
    id_: Any,
    name: Any,
    arguments: Any,
    capfd: pytest.CaptureFixture[str],
) -> None:
    base, tools = server
    capfd.readouterr()
    before = len(tools.calls)
    response = send(base, "POST", PATH, _call(id_, name, arguments), HEADERS)
    answers = answered(response)
    called = len(tools.calls) - before
    if response.status_code == 200:
        (answer,) = answers
        assert answer["id"] == id_
        if "result" in answer:
            result = answer["result"]
            text = result["content"][0]["text"]
            assert len(text) < 2_000, text[:200]  # a refusal names a caller's tool name only so far
            assert result["isError"] is (called == 0)
            if result["isError"]:
                assert json.loads(text)["error"]["kind"] == "invalid_argument", text
    else:
        assert called == 0
    assert called <= 1
    if called:
        assert name in ("web_fetch", "web_browse")
    logs = "".join(capfd.readouterr())
    assert MARKER not in logs  # a URL's path is the caller's: logs carry hosts only
    assert "Traceback" not in logs
    still_serving(base)


# Methods and paths


@settings(**SETTINGS)
@given(
    method=st.sampled_from(["GET", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "POST", "TRACE"]),
    path=st.one_of(
        st.sampled_from([PATH, f"{PATH}/", "/", "/mcp/x", "/MCP", "/ping", "/invocations", "//mcp", "/mcp?x=1"]),
        st.text(st.characters(codec="ascii", exclude_characters="#?%", categories=["L", "N", "P"]), max_size=20).map(
            lambda text: "/" + text
        ),
    ),
    accept=accepts,
    session=session_ids,
)
@example(method="GET", path=PATH, accept=ACCEPT, session=None)
@example(method="GET", path=PATH, accept="text/event-stream", session=None)
@example(method="GET", path=PATH, accept="text/event-stream", session="forged")
@example(method="POST", path=f"{PATH}/", accept=ACCEPT, session=None)
def test_every_method_and_path_is_answered_within_the_bound(
    server: tuple[str, FakeTools], method: str, path: str, accept: str | None, session: str | None
) -> None:
    base, _ = server
    body = json.dumps(LIST).encode() if method in ("POST", "PUT", "PATCH") else b""
    response = send(base, method, path, body, _headers("application/json", accept, None, session))
    answered(response)
    if not (method == "POST" and path in (PATH, f"{PATH}?x=1")):
        assert 400 <= response.status_code < 500, (method, path, response.status_code)
    still_serving(base)


# Size


def test_a_body_past_the_cap_is_refused_before_it_is_read(server: tuple[str, FakeTools]) -> None:
    base, tools = server
    before = len(tools.calls)
    padding = {"url": "https://example.org/", "caller_group": "g", "pad": "x" * MAX_BODY_BYTES}
    body = _call(1, "web_fetch", padding)
    declared = send(base, "POST", PATH, body, HEADERS)
    assert declared.status_code == 413
    answered(declared)

    # Chunked (no Content-Length): the server stops at the cap; the client's memory is its own.
    chunk = b"x" * (1 << 20)

    def chunks() -> Iterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"pad":"'
        for _ in range(64):  # 64 MiB offered
            yield chunk
        yield b'"}}'

    tracemalloc.start()
    try:
        try:
            streamed = httpx.post(f"{base}{PATH}", content=chunks(), headers=HEADERS, timeout=ANSWER_SECONDS)
            assert streamed.status_code == 413
        except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
            pass  # the server answered and closed while the client was still sending: refused all the same
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MAX_BODY_BYTES, peak  # the cap and a chunk in flight, not the 64 MiB offered
    assert len(tools.calls) == before
    still_serving(base)


def test_a_body_under_the_cap_is_served(server: tuple[str, FakeTools]) -> None:
    base, tools = server
    arguments = {"url": "https://example.org/", "caller_group": "g"}
    body = _call(7, "web_fetch", arguments)
    body = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"  # whitespace up to the cap
    assert len(body) <= MAX_BODY_BYTES
    response = send(base, "POST", PATH, body, HEADERS)
    (answer,) = answered(response)
    assert answer["id"] == 7
    assert answer["result"]["isError"] is False
    assert tools.calls[-1] == "web_fetch"
