"""The streaming route over the wire: the bytes ai_gateway.stream_runtime writes, read as API Gateway
reads them, reach the real ``openai`` SDK.

The openai tests (test_openai_compat.py, test_openai_clients.py) call ``stream_handler`` directly
from their loopback API Gateway; here every hop between the SDK and the function is real HTTP:

    openai SDK ─HTTP─▶ stand-in API Gateway (REST, stage ``live``)
        builds the proxy event (openai_server.api_event, as the openai tests' loopback does) and
        hands it to ─HTTP─▶ a fake Lambda Runtime API, whose ``invocation/next`` the runtime loop
        (stream_runtime.serve, one invocation, in a thread of its own, the handler loaded by its
        default name as the wrapper loads it) is waiting on; the loop POSTs the response
        (``Lambda-Runtime-Function-Response-Mode: streaming``, chunked) and the fake records its
        bytes exactly as they came (chunk framing checked strictly, trailers kept)
    stand-in API Gateway ◀─ parses the recorded bytes as the STREAM integration format (a JSON
        prelude up to eight NUL bytes, then the body) and answers the SDK with the prelude's
        status and headers and the body, chunked.

The stand-in relays a response once the runtime has posted all of it: which bytes reach the
client is what these tests check, not when (test_stream_runtime.py checks that each chunk is sent
as it is produced). AWS is the gateway tests' (gateway_fixtures: a moto ledger, Bedrock stubbed for
ApplyGuardrail and ConverseStream); every stubbed call must be used.
"""

from __future__ import annotations

import io
import json
import queue
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, cast

import openai
import pytest
from botocore.stub import ANY

from ai_gateway import handler, stream_runtime
from tests.lambdas.bedrock_fakes import FakeEventStream, delta, stream_error
from tests.lambdas.gateway_fixtures import (
    BLOCKED_TOPIC,
    GOLD,
    PRO,
    Gateway,
    exhaust_daily_chat_quota,
    guard_input,
    guard_output,
    stopped_clock,
)
from tests.lambdas.loopback import QuietHandler, loopback
from tests.lambdas.openai_server import STAGE, api_event
from tests.lambdas.test_openai_compat import NOW, record, streams

WAIT = 10.0  # seconds: a bound on a hop that never answers, never a pause
TOKEN = "gold-token"
RUNTIME = "/2018-06-01/runtime"
REQUEST_ID = "lambda-req-0001"  # the invocation's (Lambda-Runtime-Aws-Request-Id)
API_REQUEST_ID = "api-req-0001"  # API Gateway's (the event's requestContext.requestId)
NULS = b"\x00" * 8  # the STREAM integration format's delimiter, by its documentation
HEX = re.compile(rb"[0-9A-Fa-f]+")
MAX_LINE = 65_536
# What API Gateway sets itself: a function's own value of these is not passed on.
HOP_BY_HOP = frozenset({"content-length", "transfer-encoding", "connection"})


# --- the fake Lambda Runtime API ------------------------------------------------------------------


class WireError(ValueError):
    """The runtime's bytes are not what the Runtime API or API Gateway can read."""


@dataclass
class Posted:
    """One POST the runtime made, as it came: request line, headers in order, the raw body bytes,
    and the body decoded (the chunks of a chunked body, then its trailers)."""

    path: str
    headers: list[tuple[str, str]]
    raw: bytes = b""
    chunks: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)
    error: str | None = None  # why the body could not be decoded

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


class ChunkedReader:
    """A strict HTTP/1.1 chunked body decoder that keeps every byte it reads."""

    def __init__(self, stream: io.BufferedIOBase) -> None:
        self.stream = stream
        self.raw = bytearray()

    def line(self) -> bytes:
        line = self.stream.readline(MAX_LINE)
        self.raw += line
        if not line.endswith(b"\r\n"):
            raise WireError(f"a line not ended by CRLF: {line[:80]!r}")
        return line[:-2]

    def exactly(self, size: int) -> bytes:
        data = self.stream.read(size)
        self.raw += data
        if len(data) != size:
            raise WireError(f"{size} bytes announced, {len(data)} sent")
        return data

    def chunks(self) -> Iterator[bytes]:
        while True:
            size_line = self.line()
            if not HEX.fullmatch(size_line):  # the runtime sends no chunk extensions
                raise WireError(f"not a chunk size: {size_line[:80]!r}")
            size = int(size_line, 16)
            if size == 0:
                return
            data = self.exactly(size)
            if self.exactly(2) != b"\r\n":
                raise WireError("a chunk's data not followed by CRLF")
            yield data

    def trailers(self) -> dict[str, str]:
        trailers: dict[str, str] = {}
        while line := self.line():
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon or not name.strip():
                raise WireError(f"not a trailer field: {line[:80]!r}")
            trailers[name.strip()] = value.strip()
        return trailers


class RuntimeApiHandler(QuietHandler):
    """The fake Runtime API's side of one connection (its state: the class's ``fake``)."""

    protocol_version = "HTTP/1.1"
    fake: FakeRuntimeApi  # set on the subclass FakeRuntimeApi.handler makes

    def do_GET(self) -> None:
        self.fake.log.append(f"GET {self.path}")
        if self.path != f"{RUNTIME}/invocation/next":
            self._answer(404, b"{}")
            return
        try:  # the loop waits here until API Gateway invokes the function (or the test ends)
            event = self.fake.invocations.get(timeout=WAIT)
        except queue.Empty:
            event = None
        if event is None:
            self._answer(500, b'{"errorType":"NoInvocation"}')  # the loop raises: nothing to serve
            return
        body = json.dumps(event).encode()
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", REQUEST_ID)
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(NOW.timestamp() * 1000) + 30_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:1:function:gw-stream")
        self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Sampled=1")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.fake.log.append(f"POST {self.path}")
        posted = Posted(self.path, list(self.headers.items()))
        try:
            self._read(posted)
        except WireError as error:
            posted.error = str(error)
        # 202 accepted; a body the Runtime API cannot read is refused (the loop logs it).
        self._answer(202 if posted.error is None else 400, b'{"status":"OK"}')
        if posted.error is not None:
            self.close_connection = True
        self.fake.posted.put(posted)

    def _read(self, posted: Posted) -> None:
        if (posted.header("Transfer-Encoding") or "").lower() != "chunked":
            posted.raw = self.rfile.read(int(posted.header("Content-Length") or 0))
            return
        reader = ChunkedReader(self.rfile)
        try:
            posted.chunks = list(reader.chunks())
            posted.trailers = reader.trailers()
        finally:
            posted.raw = bytes(reader.raw)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeRuntimeApi:
    """Answers ``invocation/next`` with the next event put on ``invocations`` (a None, or none
    within WAIT: a 500, which ends the loop) and puts each POST on ``posted`` once answered."""

    def __init__(self) -> None:
        self.invocations: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.posted: queue.Queue[Posted] = queue.Queue()
        self.log: list[str] = []  # every request's method and path, in order

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return type("RuntimeApi", (RuntimeApiHandler,), {"fake": self})


# --- API Gateway's side: the STREAM integration format, relayed to the client ---------------------


@dataclass
class IntegrationResponse:
    """What API Gateway reads from a streamed Lambda response."""

    prelude: dict[str, Any]
    body: list[bytes]  # the body's pieces, as they came after the delimiter

    @property
    def status(self) -> int:
        status = self.prelude.get("statusCode")
        if not isinstance(status, int) or isinstance(status, bool):
            raise WireError(f"the prelude's statusCode is not an integer: {status!r}")
        return status

    def headers(self) -> list[tuple[str, str]]:
        """The prelude's headers as API Gateway merges them: multiValueHeaders' values, then any
        ``headers`` entry not named there, then each cookie as a Set-Cookie."""
        multi: dict[str, list[str]] = self.prelude.get("multiValueHeaders") or {}
        merged = [(name, value) for name, values in multi.items() for value in values]
        named = {name.lower() for name in multi}
        single: dict[str, str] = self.prelude.get("headers") or {}
        merged += [(name, value) for name, value in single.items() if name.lower() not in named]
        merged += [("Set-Cookie", cookie) for cookie in self.prelude.get("cookies") or []]
        return merged

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers() if key.lower() == name.lower()), None)


def integration_response(posted: Posted) -> IntegrationResponse:
    """The STREAM integration format of a streamed response's chunks: the prelude is the JSON
    before the first eight NUL bytes of the byte stream (wherever the chunks are cut), the body
    every byte after them."""
    if posted.error is not None or posted.path != f"{RUNTIME}/invocation/{REQUEST_ID}/response":
        raise WireError(f"not a readable response: {posted.path} ({posted.error})")
    pieces = iter(posted.chunks)
    head = b""
    for chunk in pieces:
        head += chunk
        if NULS in head:
            break
    else:
        raise WireError("no eight NUL bytes end a prelude")
    prelude_bytes, _, first = head.partition(NULS)
    try:
        prelude = json.loads(prelude_bytes)
    except ValueError as error:
        raise WireError(f"the prelude is not JSON: {prelude_bytes[:80]!r}") from error
    if not isinstance(prelude, dict) or not set(prelude) <= {"statusCode", "headers", "multiValueHeaders", "cookies"}:
        raise WireError(f"not a prelude: {prelude!r}")
    return IntegrationResponse(prelude, [first, *pieces] if first else list(pieces))


@dataclass
class Site:
    runtime_api: FakeRuntimeApi
    events: list[dict[str, Any]] = field(default_factory=list)  # every event API Gateway sent
    posted: list[Posted] = field(default_factory=list)  # what the runtime answered each with


class ApiGatewayHandler(QuietHandler):
    """The stand-in API Gateway: the stage's POST /v1/chat/completions, its integration the
    streaming function (through the Runtime API); the caller is GOLD when the token is TOKEN."""

    protocol_version = "HTTP/1.1"
    site: Site  # set on the subclass the fixture makes

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != f"/{STAGE}/v1/chat/completions":
            self._answer(403, b'{"message":"Missing Authentication Token"}')
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._answer(401, b'{"message":"Unauthorized"}')
            return
        event = api_event(
            "POST",
            self.path,
            list(self.headers.items()),
            body,
            resource="/v1/chat/completions",
            path_parameters=None,
            authorizer=GOLD,
            request_id=API_REQUEST_ID,
        )
        self.site.events.append(event)
        self.site.runtime_api.invocations.put(event)
        try:
            posted = self.site.runtime_api.posted.get(timeout=WAIT)
        except queue.Empty:
            self._answer(504, b'{"message":"Endpoint request timed out"}')
            return
        self.site.posted.append(posted)
        try:
            self._relay(integration_response(posted), trailers=posted.trailers)
        except WireError as error:  # API Gateway answers a response it cannot read with a 502
            # (API Gateway's names no reason; this one does, for the failing test's message)
            self._answer(502, json.dumps({"message": f"Internal server error: {error}"}).encode())

    def _relay(self, response: IntegrationResponse, *, trailers: dict[str, str]) -> None:
        """The prelude's status and headers, then the body chunked; a function error after the
        first byte (the error trailers) cuts the response short, without its last chunk."""
        status = response.status
        self.send_response(status)
        for name, value in response.headers():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("x-amzn-RequestId", API_REQUEST_ID)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for piece in response.body:
            if piece:
                self.wfile.write(b"%x\r\n" % len(piece) + piece + b"\r\n")
        if trailers:
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-RequestId", API_REQUEST_ID)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --- the runtime loop and the whole path ----------------------------------------------------------


@dataclass
class Wire:
    url: str  # the stage's URL: the SDK's base_url is f"{url}/v1"
    site: Site
    loop: threading.Thread
    failures: list[BaseException]  # what the loop raised, if anything
    environ: dict[str, str]  # the loop's environment
    clients: list[openai.OpenAI] = field(default_factory=list)  # closed when the test ends

    def sdk(self) -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=f"{self.url}/v1",
            api_key=TOKEN,
            max_retries=0,
            timeout=3 * WAIT,  # longer than any hop's own bound: a hop that hangs answers first
            http_client=openai.DefaultHttpxClient(trust_env=False),  # straight to the loopback server
        )
        self.clients.append(client)
        return client

    def served(self) -> Posted:
        """The one response the loop posted, once the loop has returned after its one invocation."""
        self.loop.join(WAIT)
        assert not self.loop.is_alive(), "the runtime loop did not return after its one invocation"
        assert self.failures == []
        assert self.site.runtime_api.log == [
            f"GET {RUNTIME}/invocation/next",
            f"POST {RUNTIME}/invocation/{REQUEST_ID}/response",
        ]
        (posted,) = self.site.posted
        assert posted.error is None, posted.error
        return posted


@pytest.fixture
def wire(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wire]:
    monkeypatch.setattr(handler, "clock", stopped_clock(NOW))
    runtime_api = FakeRuntimeApi()
    site = Site(runtime_api)
    environ = {"AWS_LAMBDA_FUNCTION_NAME": "gwtest-gateway-stream", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024"}
    failures: list[BaseException] = []
    # As the wrapper's main() loads it: by its default name.
    function = stream_runtime.load_handler(stream_runtime.DEFAULT_HANDLER)
    assert cast(object, function) is handler.stream_handler

    with (
        loopback(runtime_api.handler()) as runtime_url,
        loopback(type("ApiGateway", (ApiGatewayHandler,), {"site": site})) as gateway_url,
    ):

        def run() -> None:
            try:  # the Runtime API's clock: the invocation has 30 s left whatever the machine's time
                address = runtime_url.removeprefix("http://")
                stream_runtime.serve(address, function, invocations=1, environ=environ, now=NOW.timestamp)
            except BaseException as error:  # a SystemExit too: the test reports it
                failures.append(error)

        loop = threading.Thread(target=run, name="stream-runtime-loop", daemon=True)
        loop.start()
        wire = Wire(f"{gateway_url}/{STAGE}", site, loop, failures, environ)
        try:
            yield wire
        finally:
            for client in wire.clients:
                client.close()
            runtime_api.invocations.put(None)  # a loop still waiting at invocation/next ends
            loop.join(WAIT)
    assert not loop.is_alive()


def events(body: bytes) -> list[bytes]:
    """The server-sent events of an SSE body, each with its blank line."""
    assert body.endswith(b"\n\n")
    return [event + b"\n\n" for event in body[:-2].split(b"\n\n")]


def assert_streamed_post(posted: Posted) -> None:
    """The response POST as the Runtime API's streaming mode takes it."""
    assert posted.path == f"{RUNTIME}/invocation/{REQUEST_ID}/response"
    assert posted.header("Lambda-Runtime-Function-Response-Mode") == "streaming"
    assert posted.header("Transfer-Encoding") == "chunked"
    assert posted.header("Content-Type") == "application/vnd.awslambda.http-integration-response"
    assert posted.header("Content-Length") is None
    assert posted.raw.endswith(b"\r\n0\r\n\r\n")  # ended by the last chunk, with no trailer fields
    assert posted.trailers == {}


# --- the tests ------------------------------------------------------------------------------------


def test_a_streamed_completion_crosses_the_runtime_api_and_api_gateway_to_the_sdk(gateway: Gateway, wire: Wire) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    streams(gateway, ["Hi there. ", "How can ", "I help?"])
    # The first sentence goes at once; the rest waits for 250 characters or the end.
    guard_output(gateway.bedrock, "Hi there. ")
    guard_output(gateway.bedrock, "How can I help?")
    stream = wire.sdk().chat.completions.create(
        model=PRO,
        messages=[{"role": "user", "content": "Hello?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"Idempotency-Key": "wire-key-0001"},
    )
    assert stream.response.status_code == 200
    assert stream.response.headers["content-type"] == "text/event-stream; charset=utf-8"
    chunks = list(stream)

    assert {(c.id, c.object, c.model, c.created) for c in chunks} == {
        ("chatcmpl-wire-key-0001", "chat.completion.chunk", PRO, int(NOW.timestamp()))
    }
    choices = [c.choices[0] for c in chunks if c.choices]
    assert choices[0].delta.role == "assistant"
    assert [c.delta.content for c in choices if c.delta.content] == ["Hi there. ", "How can I help?"]
    assert "".join(c.delta.content or "" for c in choices) == "Hi there. How can I help?"
    assert [c.finish_reason for c in choices] == [None] * (len(choices) - 1) + ["stop"]
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (50, 400, 450)

    posted = wire.served()
    assert_streamed_post(posted)
    response = integration_response(posted)
    assert response.status == 200
    assert response.header("Content-Type") == "text/event-stream; charset=utf-8"
    assert response.header("Cache-Control") == "no-cache"
    body = b"".join(response.body)
    assert events(body)[-1] == b"data: [DONE]\n\n"
    assert all(event.startswith(b"data: ") for event in events(body))
    # The delivery is recorded before the last chunk is posted: the loop has returned by now.
    item = record(gateway, "wire-key-0001")
    assert (item["status"]["S"], item["output_tokens"]["N"], item["units"]["N"]) == ("delivered", "400", "1")
    (event,) = wire.site.events
    assert (event["resource"], event["requestContext"]["requestId"]) == ("/v1/chat/completions", API_REQUEST_ID)
    assert json.loads(event["body"])["stream"] is True
    assert wire.environ["_X_AMZN_TRACE_ID"].startswith("Root=1-5bef4de7")


@pytest.mark.parametrize("refusal", ["quota", "input guardrail"])
def test_a_refused_stream_is_the_preludes_error_status_and_the_sdks_error_class(
    refusal: str, gateway: Gateway, wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    if refusal == "quota":
        exhaust_daily_chat_quota(monkeypatch)
        guard_input(gateway.bedrock, ["Hello?"])
        expected: type[openai.APIStatusError] = openai.RateLimitError
        status, code = 429, "rate_limit_exceeded"
    else:
        guard_input(gateway.bedrock, ["Hello?"], BLOCKED_TOPIC)
        expected, status, code = openai.BadRequestError, 400, "content_filter"
    with pytest.raises(expected) as refused:
        wire.sdk().chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Hello?"}],
            stream=True,
            extra_headers={"Idempotency-Key": "wire-key-0002"},
        )
    assert (refused.value.status_code, refused.value.code) == (status, code)
    assert refused.value.response.headers["x-amzn-RequestId"] == API_REQUEST_ID

    posted = wire.served()
    assert_streamed_post(posted)
    response = integration_response(posted)
    assert response.status == status
    assert (response.header("Content-Type") or "").startswith("application/json")
    error = json.loads(b"".join(response.body))["error"]
    assert error["code"] == code
    if refusal == "quota":  # until the day's end, carried from the prelude to the SDK
        assert (
            refused.value.response.headers["Retry-After"] == response.header("Retry-After") == str(17 * 3600 + 15 * 60)
        )
    else:
        assert error["message"] == "This request can't be processed under the usage policy."
        # Admitted beside the guardrail's check, then given back.
        assert record(gateway, "wire-key-0002")["status"]["S"] == "released"


def test_a_stream_failing_after_text_was_sent_gives_the_sdk_the_text_then_the_error_event(
    gateway: Gateway, wire: Wire
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    model_events = [{"messageStart": {"role": "assistant"}}, delta("Part one. "), stream_error("throttlingException")]
    expected = {"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    gateway.bedrock.add_response("converse_stream", {"stream": FakeEventStream(model_events, [])}, expected)
    guard_output(gateway.bedrock, "Part one. ")
    received: list[str] = []
    stream = wire.sdk().chat.completions.create(
        model=PRO,
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        extra_headers={"Idempotency-Key": "wire-key-0003"},
    )
    assert stream.response.status_code == 200  # the head went before the failure
    with pytest.raises(openai.APIError) as failed:
        received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "".join(received) == "Part one. "
    assert (failed.value.type, failed.value.code, failed.value.param) == (
        "rate_limit_error",
        "rate_limit_exceeded",
        None,
    )
    assert failed.value.message == "bedrock-runtime is throttling requests; retry later"

    posted = wire.served()
    assert_streamed_post(posted)  # the failure is the body's last event, not the error trailers
    response = integration_response(posted)
    assert response.status == 200
    last = events(b"".join(response.body))[-1]
    assert json.loads(last.removeprefix(b"data: ")) == {
        "error": {
            "message": "bedrock-runtime is throttling requests; retry later",
            "type": "rate_limit_error",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    assert b"[DONE]" not in b"".join(response.body)
    # The caller has part of the output: delivered, not released.
    assert record(gateway, "wire-key-0003")["status"]["S"] == "delivered"
