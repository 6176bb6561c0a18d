"""The spans of one agent turn, captured in memory: one trace under the conversation id, gen-AI
attributes on the model and tool spans (what AgentCore's tool evaluators read), and no message
text where content capture is off: not the seeded personal data from the caller or from a tool."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from botocore.stub import Stubber
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent.app import GatewayTools
from agent.contract import span_environment
from agent.turn import run_turn
from shared.telemetry import CONVERSATION
from tests.lambdas.bedrock_fakes import agent_reply, tool_use
from tests.lambdas.tools_gateway_fake import tools_gateway

MODEL = "amazon.nova-pro-v1:0"
SESSION = "s" + "0" * 64
FIND_ORDERS = "orders___find_orders"
ASKED = "Where is the order of ada.lovelace@example.com?"  # the caller's text, as guarded upstream
FROM_TOOL = "+44 20 7946 0000"  # personal data only a tool's answer carries
ANSWERED = f"It has shipped; the courier calls {FROM_TOOL}."  # the model's answer, not guarded yet


def reply(stubber: Stubber, content: list[dict[str, Any]], stop: str) -> None:
    agent_reply(stubber, content, stop, model=MODEL, session=SESSION)


@dataclass
class Sinks:
    """Where one turn's text went: its spans, the model requests (what Bedrock's model invocation
    logs record), and the agent's own log lines."""

    spans: list[ReadableSpan]
    model_requests: list[str]
    logs: str


@pytest.fixture
def sinks(
    request: pytest.FixtureRequest,
    spans: InMemorySpanExporter,
    bedrock: tuple[Any, Stubber],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> Sinks:
    """One tool-using turn, with the agent's span settings for content capture on or off."""
    import strands.telemetry.tracer

    caplog.set_level(logging.INFO)  # what the runtime's log group receives
    for name, value in span_environment(capture_content=request.param).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(strands.telemetry.tracer, "_tracer_instance", None)  # reads them when it starts
    client, stubber = bedrock
    requests: list[str] = []
    client.meta.events.register(
        "before-parameter-build.bedrock-runtime.Converse", lambda params, **_: requests.append(json.dumps(params))
    )
    token = jwt.encode({"sub": "user-1", "gateway_group": "customer-gold"}, "k", algorithm="HS256")
    with tools_gateway() as (url, fake):
        fake.results[FIND_ORDERS] = {"records": [{"order_id": "O-1", "courier_phone": FROM_TOOL}]}
        reply(stubber, [tool_use(FIND_ORDERS, {"customer_email": "{EMAIL}"})], "tool_use")
        reply(stubber, [{"text": ANSWERED}], "end_turn")
        spans.clear()
        with GatewayTools(url)(token, SESSION, 60) as tools:
            turn = run_turn(
                client,
                tools,
                agent_name="support",
                models=[MODEL],
                system="You help customers.",
                messages=[{"role": "user", "content": [{"text": ASKED}]}],
                session_id=SESSION,
                max_iterations=4,
            )
    assert turn.answer == ANSWERED
    return Sinks(list(spans.get_finished_spans()), requests, capsys.readouterr().out + caplog.text)


@pytest.fixture
def turn_spans(sinks: Sinks) -> list[ReadableSpan]:
    return sinks.spans


def operation(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get("gen_ai.operation.name") == name]


def everything_in(span: ReadableSpan) -> str:
    """Every attribute and event attribute of a span, as text."""
    events = [dict(event.attributes or {}) for event in span.events]
    return json.dumps([dict(span.attributes or {}), events], default=str)


@pytest.mark.parametrize("sinks", [False, True], ids=["capture-off", "capture-on"], indirect=True)
def test_one_trace_under_the_conversation_id_with_gen_ai_model_and_tool_spans(turn_spans: list[ReadableSpan]) -> None:
    all_spans = turn_spans
    (agent,) = operation(all_spans, "invoke_agent")
    # The turn is one trace: the agent's span, its cycles, model and tool calls, and the tools
    # gateway's handling of each call. (Tool discovery is not in it here only because run_turn is
    # called outside any request span: served, it joins the request's trace,
    # tests/lambdas/test_agent_served_spans.py.)
    turn_spans = [span for span in all_spans if span.context.trace_id == agent.context.trace_id]
    discovery = {"server/discover", "MCP send server/discover", "tools/list", "MCP send tools/list"}
    assert {span.name for span in all_spans if span not in turn_spans} <= discovery
    assert any(span.name == f"tools/call {FIND_ORDERS}" for span in turn_spans)  # the gateway's side
    assert agent.attributes is not None
    assert (agent.attributes["session.id"], agent.attributes[CONVERSATION]) == (SESSION, SESSION)
    assert agent.attributes["gen_ai.agent.name"] == "support"
    chats = operation(turn_spans, "chat")
    assert len(chats) == 2
    for chat in chats:
        assert chat.attributes is not None
        assert chat.attributes["gen_ai.request.model"] == MODEL
        assert chat.attributes["gen_ai.usage.input_tokens"] == 100
        assert chat.attributes["gen_ai.usage.output_tokens"] == 20
    (tool,) = [span for span in operation(turn_spans, "execute_tool") if span.name.startswith("execute_tool")]
    assert tool.attributes is not None
    # What the tool selection and parameter evaluators read: the tool, its arguments, its outcome.
    assert tool.attributes["gen_ai.tool.name"] == FIND_ORDERS
    assert json.loads(str(tool.attributes["gen_ai.tool.call.arguments"])) == {"customer_email": "{EMAIL}"}
    assert tool.attributes["gen_ai.tool.status"] == "success"
    # Every span of the turn descends from the agent's.
    ids = {span.context.span_id for span in turn_spans}
    assert all(span.parent is None or span.parent.span_id in ids for span in turn_spans)
    assert [span for span in turn_spans if span.parent is None] == [agent]


@pytest.mark.parametrize("sinks", [False], ids=["capture-off"], indirect=True)
def test_with_capture_off_no_message_text_reaches_a_span(turn_spans: list[ReadableSpan]) -> None:
    text = "".join(everything_in(span) for span in turn_spans)
    for seeded in ("ada.lovelace@example.com", FROM_TOOL, "You help customers."):
        assert seeded not in text


@pytest.mark.parametrize("sinks", [True], ids=["capture-on"], indirect=True)
def test_with_capture_on_the_models_input_is_there_and_its_answers_are_not(
    turn_spans: list[ReadableSpan],
) -> None:
    text = "".join(everything_in(span) for span in turn_spans)
    assert "ada.lovelace@example.com" in text  # the caller's text, as the gateway's input guardrail passed it
    # The tool's answer too, as the model was sent it on its next call: not guarded (docs/agents.md).
    inputs = [
        str(value)
        for span in turn_spans
        for attributes in [dict(span.attributes or {}), *(dict(e.attributes or {}) for e in span.events)]
        for key, value in attributes.items()
        if key == "gen_ai.input.messages"
    ]
    assert any(FROM_TOOL in value for value in inputs)
    # Nothing the model wrote, and no tool result as a tool span's output.
    outputs = [
        str(value)
        for span in turn_spans
        for attributes in [dict(span.attributes or {}), *(dict(e.attributes or {}) for e in span.events)]
        for key, value in attributes.items()
        if key in ("gen_ai.output.messages", "gen_ai.tool.call.result", "gen_ai.system_instructions")
    ]
    assert outputs
    assert all(FROM_TOOL not in output and "It has shipped" not in output for output in outputs)


@pytest.mark.parametrize("sinks", [False], ids=["capture-off"], indirect=True)
def test_seeded_personal_data_from_a_tool_reaches_the_model_and_nothing_the_agent_writes(sinks: Sinks) -> None:
    """The decision (docs/adr/0017): tool results reach the model as the tool answered, so the
    model invocation logs (KMS-encrypted, kept observability.invocation_log_days, readable by the
    tier's operators only) hold them; the agent's spans and logs do not."""
    first, second = sinks.model_requests
    assert FROM_TOOL not in first
    assert FROM_TOOL in second  # the tool's answer, as the model (and its invocation log) sees it
    assert FROM_TOOL not in "".join(everything_in(span) for span in sinks.spans)
    assert "HTTP Request: POST" in sinks.logs  # (the log capture works: the MCP client's lines are here)
    assert FROM_TOOL not in sinks.logs
    assert "ada.lovelace@example.com" not in sinks.logs
