"""The spans of one turn as the runtime serves it: ``create_app`` over loopback HTTP, with the
OpenTelemetry instrumentations ADOT's ``opentelemetry-instrument`` turns on in production (every
installed one that agent.contract.DISABLED_INSTRUMENTATIONS leaves on), memory on (AgentCore Memory
stubbed), a tool-using turn (Bedrock stubbed, the tools gateway a real MCP server on loopback).

What production's traces rest on: the request's span, its memory reads (botocore's ListEvents and
RetrieveMemoryRecords), tool discovery, and Strands' agent, cycle, model and tool spans are one
trace, one tree under the request's span (or under the caller's span when the request carries a
trace context); the agent's span names the request's session; and with content capture off no span
holds the personal data the caller, memory or a tool put into the turn, nor the caller's token.

The only span of the loopback world outside that trace is the stand-in gateway's own: the MCP SDK's
server, handed a tools/call, lists its own tools to check the call's parameter headers, and starts
that tools/list span with no parent. It is the gateway's (AgentCore Gateway's, in production), not
the runtime's. Tool discovery is not outside: the runtime opens the tools session inside the request,
and Strands' MCPClient runs it on a thread with the request's context (docs/agents.md calls it a
trace of its own; that holds only for a session opened outside any span, as test_agent_spans.py's).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.instrumentation.starlette import StarletteInstrumentor
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agent.app import GatewayTools, Service, create_app
from agent.contract import DISABLED_INSTRUMENTATIONS, span_environment
from agent.memory import SessionMemory
from shared.headers import AGENT_SESSION_HEADER, CALLER_TOKEN_HEADER
from shared.telemetry import CONVERSATION
from tests.lambdas.bedrock_fakes import agent_reply, tool_use
from tests.lambdas.cognito_fixtures import pool_verifier, sign
from tests.lambdas.loopback import serve_asgi
from tests.lambdas.test_agent import ACTOR, AGENT, MEMORY_ID, MODEL, NAMESPACES, Documents, record, settings_for
from tests.lambdas.tools_gateway_fake import tools_gateway

SESSION = "session-served-spans-0123456789abcdef0123"  # this file's own: no other test's spans carry it
FIND_ORDERS = "orders___find_orders"
# Personal data each source puts into the turn: the caller (as the gateway's input guardrail passed
# it), the session's earlier turn and a long-term record (memory), and a tool's answer.
ASKED = "Where is the order of ada.lovelace@example.com?"
EARLIER_ASKED = "Did my parcel to 221B Baker Street leave?"
EARLIER_ANSWERED = "Yes: card ending 4242 was charged."
RECORDED = "lives at 12 Rue de Rivoli, Paris"
FROM_TOOL = "+44 20 7946 0000"
ANSWERED = f"It has shipped; the courier calls {FROM_TOOL}."  # the model's answer
SYSTEM = "You help customers."  # the agent's prompt (test_agent's DOCUMENT)
SEEDED = (ASKED, "ada.lovelace@example.com", EARLIER_ASKED, EARLIER_ANSWERED, RECORDED, FROM_TOOL, ANSWERED, SYSTEM)
# A caller's W3C trace context, as AgentCore Runtime passes the gateway's on.
CALLER_TRACE = 0x0AF7651916CD43DD8448EB211C80319C
CALLER_SPAN = 0xB7AD6B7169203331
REQUEST_SPAN = "POST /invocations"
GATEWAY_SCOPE = "mcp-python-sdk"  # the MCP SDK's spans: the client's (runtime) and the server's (stand-in gateway)
# Instrumentations production turns on that make no spans: log correlation only.
SPANLESS = {"logging"}


@dataclass(frozen=True)
class Ask:
    """What the caller sends besides its token and prompt."""

    session: str | None = SESSION  # the runtime's session header; None: the runtime names the session
    traceparent: str | None = None  # the caller's trace context


@dataclass
class Served:
    status: int
    answer: dict[str, Any]
    spans: list[ReadableSpan]  # every span that ended from just before the request until the servers stopped
    model_requests: list[dict[str, Any]]  # what Bedrock was sent
    token: str  # the caller's
    installed: set[str]  # the OpenTelemetry instrumentations installed here (their entry points' names)
    asked: Ask


@contextmanager
def production_instrumentation() -> Iterator[tuple[Callable[[Any], None], set[str]]]:
    """The instrumentations ``opentelemetry-instrument`` loads in production (every installed one
    the runtime's environment does not disable), on in-process for the test, on the session's tracer
    provider (conftest's ``spans``), and off again after it. Yields what instruments the runtime's
    app, and the names of the instrumentations installed. ADOT's own patches to them (attributes
    added; global and irreversible) are not applied."""
    disabled = set(DISABLED_INSTRUMENTATIONS.split(","))
    installed = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor")}
    enabled = {name: ep for name, ep in installed.items() if name not in disabled}
    assert "starlette" in enabled  # the request's span, which every assertion here starts from
    started: list[Any] = []  # BaseInstrumentors
    apps: list[Any] = []
    try:
        for name, ep in sorted(enabled.items()):
            # Starlette: ADOT swaps in an instrumented Starlette before the agent is imported, so
            # BedrockAgentCoreApp subclasses it; here the app is already a subclass of the plain
            # one, and instrument_app adds the same middleware to it.
            if name in SPANLESS or name == "starlette":
                continue
            instrumentor = ep.load()()
            if instrumentor.is_instrumented_by_opentelemetry:
                continue  # someone else's: left as it is
            instrumentor.instrument()
            assert instrumentor.is_instrumented_by_opentelemetry, name
            started.append(instrumentor)

        def instrument_app(app: Any) -> None:
            StarletteInstrumentor.instrument_app(app)
            apps.append(app)

        yield instrument_app, set(installed)
    finally:
        for app in apps:
            StarletteInstrumentor.uninstrument_app(app)
        for instrumentor in reversed(started):
            instrumentor.uninstrument()


def remembers(memory: Stubber, session: Any) -> None:
    """Memory's answers: the session's earlier turn, a record in the first namespace, none in the second."""
    earlier = {
        "memoryId": MEMORY_ID,
        "actorId": ACTOR,
        "sessionId": SESSION,
        "eventId": "e-1",
        "eventTimestamp": dt.datetime(2026, 11, 29, 10, 1, tzinfo=dt.UTC),
        "payload": [
            {"conversational": {"role": "USER", "content": {"text": EARLIER_ASKED}}},
            {"conversational": {"role": "ASSISTANT", "content": {"text": EARLIER_ANSWERED}}},
        ],
    }
    memory.add_response(
        "list_events",
        {"events": [earlier]},
        {"memoryId": MEMORY_ID, "actorId": ACTOR, "sessionId": session, "includePayloads": True, "maxResults": 2},
    )
    for template, found in zip(NAMESPACES, ([record(RECORDED, 0.9)], []), strict=True):
        memory.add_response(
            "retrieve_memory_records",
            {"memoryRecordSummaries": found},
            {
                "memoryId": MEMORY_ID,
                "namespace": template.format(actorId=ACTOR, sessionId=session) if session is not ANY else ANY,
                "searchCriteria": {"searchQuery": ASKED, "topK": 2},
                "maxResults": 2,
            },
        )


def post(base: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """POST /invocations with http.client, which no instrumentation traces: the request's span is
    the runtime's, not a test client's."""
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)
    try:
        connection.request("POST", "/invocations", json.dumps(body), {"Content-Type": "application/json", **headers})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@pytest.fixture
def memory() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def served(
    request: pytest.FixtureRequest,
    spans: InMemorySpanExporter,
    bedrock: tuple[Any, Stubber],
    memory: tuple[Any, Stubber],
    cognito: tuple[str, list[str]],
    signing_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> Served:
    """One tool-using turn served through create_app, content capture off (an agent serving a
    customer group), and every span it made."""
    import strands.telemetry.tracer

    ask: Ask = getattr(request, "param", Ask())
    for name, value in span_environment(capture_content=False).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(strands.telemetry.tracer, "_tracer_instance", None)  # reads them when it starts
    model_client, model = bedrock
    memory_client, memory_stubber = memory
    issuer = cognito[0]
    sent: list[dict[str, Any]] = []
    model_client.meta.events.register(
        "before-parameter-build.bedrock-runtime.Converse", lambda params, **_: sent.append(params)
    )
    token = sign(signing_key, issuer)
    headers = {CALLER_TOKEN_HEADER: token}
    if ask.session:
        headers[AGENT_SESSION_HEADER] = ask.session
    if ask.traceparent:
        headers["traceparent"] = ask.traceparent
    with production_instrumentation() as (instrument_app, installed), tools_gateway() as (tools_url, fake):
        session: Any = ask.session or ANY  # the runtime names it when the request does not
        remembers(memory_stubber, session)
        asks_for_the_tool = [tool_use(FIND_ORDERS, {"customer_email": "{EMAIL}"})]
        agent_reply(model, asks_for_the_tool, "tool_use", model=MODEL, session=session)
        agent_reply(model, [{"text": ANSWERED}], "end_turn", model=MODEL, session=session)
        fake.results[FIND_ORDERS] = {"records": [{"order_id": "O-1", "courier_phone": FROM_TOOL}]}
        service = Service(
            settings_for(tools_url, issuer),
            model_client,
            pool_verifier(issuer),
            GatewayTools(tools_url),
            Documents().reader(),
            SessionMemory(memory_client, MEMORY_ID, NAMESPACES, history_turns=2, recall_records=2),
            clock=lambda: 1000.0,  # still: the turn's deadline never comes
        )
        app = create_app(lambda: service)
        instrument_app(app)
        with serve_asgi(app) as base:
            spans.clear()
            status, answer = post(base, {"prompt": ASKED}, headers)
    # Both servers have stopped, and uvicorn waits for its requests' tasks: every span has ended.
    return Served(status, answer, list(spans.get_finished_spans()), sent, token, installed, ask)


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def scope(span: ReadableSpan) -> str:
    return span.instrumentation_scope.name if span.instrumentation_scope else ""


def attribute(span: ReadableSpan, key: str) -> Any:
    return (span.attributes or {}).get(key)


def the_turns_trace(served: Served) -> tuple[ReadableSpan, list[ReadableSpan]]:
    """The request's span and the spans of its trace, after checking that every other span is the
    stand-in gateway's parameter-header check of the tool call."""
    assert served.status == 200, served.answer
    assert served.answer["answer"] == ANSWERED
    (request,) = [span for span in named(served.spans, REQUEST_SPAN) if span.kind is SpanKind.SERVER]
    trace = [span for span in served.spans if span.context.trace_id == request.context.trace_id]
    (call,) = [span for span in named(trace, f"tools/call {FIND_ORDERS}") if span.kind is SpanKind.SERVER]
    outside = [span for span in served.spans if span not in trace]
    check = ("tools/list", SpanKind.SERVER, GATEWAY_SCOPE, None, attribute(call, "jsonrpc.request.id"))
    assert [(s.name, s.kind, scope(s), s.parent, attribute(s, "jsonrpc.request.id")) for s in outside] == [check]
    return request, trace


def test_the_served_turn_is_one_trace_one_tree_under_the_requests_span(served: Served) -> None:
    request, trace = the_turns_trace(served)
    assert request.parent is None  # no trace context came with the request: the runtime's span starts it
    # One tree: every span but the request's has its parent in the trace.
    ids = {span.context.span_id for span in trace}
    assert [span for span in trace if span.parent is None or span.parent.span_id not in ids] == [request]
    # Under the request's span: tool discovery (the MCP client's session start) and the agent
    # (the memory reads: test_the_aws_calls_...).
    under_request = [span.name for span in trace if span.parent and span.parent.span_id == request.context.span_id]
    for name in ("MCP send server/discover", "MCP send tools/list", f"invoke_agent {AGENT}"):
        assert under_request.count(name) == 1, name
    # Under the agent's: its cycles, model calls and tool call, with the tools gateway's handling
    # of that call (its trace context went with the MCP request).
    names = [span.name for span in trace]
    assert names.count("execute_event_loop_cycle") == names.count("chat") == 2
    assert names.count(f"execute_tool {FIND_ORDERS}") == names.count(f"tools/call {FIND_ORDERS}") == 1


@pytest.mark.parametrize(
    "served", [Ask(traceparent=f"00-{CALLER_TRACE:032x}-{CALLER_SPAN:016x}-01")], ids=["caller-trace"], indirect=True
)
def test_a_callers_trace_context_is_continued_by_the_whole_turn(served: Served) -> None:
    request, trace = the_turns_trace(served)
    assert request.context.trace_id == CALLER_TRACE
    assert request.parent is not None
    assert (request.parent.trace_id, request.parent.span_id, request.parent.is_remote) == (
        CALLER_TRACE,
        CALLER_SPAN,
        True,
    )
    ids = {span.context.span_id for span in trace}
    assert [span for span in trace if span.parent is None or span.parent.span_id not in ids] == [request]
    assert len(named(trace, f"invoke_agent {AGENT}")) == 1


def test_the_aws_calls_memory_reads_and_model_calls_are_spans_of_the_turn(served: Served) -> None:
    """botocore's spans, as ADOT's botocore instrumentation makes them."""
    if "botocore" not in served.installed:
        pytest.skip("opentelemetry-instrumentation-botocore is not installed here: no AWS call spans to check")
    assert "botocore" not in DISABLED_INSTRUMENTATIONS.split(",")  # production makes them
    request, trace = the_turns_trace(served)
    reads = [span for span in trace if attribute(span, "rpc.service") == "Bedrock AgentCore"]
    assert sorted(str(attribute(span, "rpc.method")) for span in reads) == [
        "ListEvents",
        "RetrieveMemoryRecords",
        "RetrieveMemoryRecords",
    ]
    for read in reads:
        assert read.kind is SpanKind.CLIENT
        assert read.parent is not None
        assert read.parent.span_id == request.context.span_id
    # Each Converse call is a span under Strands' model span.
    chats = {span.context.span_id for span in named(trace, "chat")}
    converse = named(trace, f"chat {MODEL}")
    assert len(converse) == 2
    assert all(span.parent is not None and span.parent.span_id in chats for span in converse)
    # The reads were answered and used: the earlier turn and the record reached the model.
    first = served.model_requests[0]
    assert [m["content"][0]["text"] for m in first["messages"]] == [EARLIER_ASKED, EARLIER_ANSWERED, ASKED]
    assert RECORDED in first["system"][0]["text"]


@pytest.mark.parametrize("served", [Ask(), Ask(session=None)], ids=["named-session", "runtime-session"], indirect=True)
def test_the_agents_span_names_the_requests_session(served: Served) -> None:
    request, trace = the_turns_trace(served)
    session = served.answer["session_id"]
    if served.asked.session is None:  # named by the runtime (agent.app._session)
        assert re.fullmatch(r"session-[0-9a-f]{32}", session)
    else:
        assert session == served.asked.session
    (agent,) = named(trace, f"invoke_agent {AGENT}")
    assert agent.parent is not None
    assert agent.parent.span_id == request.context.span_id
    assert (attribute(agent, "session.id"), attribute(agent, CONVERSATION)) == (session, session)
    assert attribute(agent, "gen_ai.agent.name") == AGENT
    # The same session as the model was asked under (Bedrock's request metadata).
    assert {r["requestMetadata"]["session_id"] for r in served.model_requests} == {session}


def everything_in(span: ReadableSpan) -> str:
    """A span's name, status, attributes, events and links, as text."""
    events = [(event.name, dict(event.attributes or {})) for event in span.events]
    links = [dict(link.attributes or {}) for link in span.links]
    parts = [span.name, span.status.description, dict(span.attributes or {}), events, links]
    return json.dumps(parts, default=str, ensure_ascii=False)


def test_with_capture_off_no_span_holds_the_turns_personal_data_or_the_callers_token(served: Served) -> None:
    request, _ = the_turns_trace(served)
    # The data was in the turn: the caller's text, memory's, and the tool's answer went to the model.
    second = json.dumps(served.model_requests[1], ensure_ascii=False)
    assert all(seeded in second for seeded in (ASKED, EARLIER_ASKED, EARLIER_ANSWERED, RECORDED, FROM_TOOL))
    assert served.answer["answer"] == ANSWERED
    text = "\n".join(everything_in(span) for span in served.spans)
    assert attribute(request, "http.route") == "/invocations"  # (the text is the spans': routes, tool names)
    assert f"execute_tool {FIND_ORDERS}" in text
    assert [seeded for seeded in SEEDED if seeded in text] == []
    assert served.token not in text
    assert served.token.split(".")[2] not in text  # not even its signature
