"""The AI gateway routing output types to agents: InvokeAgentRuntime as the caller, over real
loopback HTTP standing in for the AgentCore data plane; guardrails and metering stay in the gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from ai_gateway import handler
from ai_gateway.agents import AgentClient, runtime_session_id
from shared.headers import AGENT_SESSION_HEADER as SESSION_HEADER
from tests.lambdas.conftest import FakeContext, HttpResult, http_result
from tests.lambdas.gateway_fixtures import (
    AGENT_POLICY,
    BLOCKED_TOPIC,
    Gateway,
    anonymized,
    converse_ok,
    guard_input,
    guard_output,
    rest_event,
)
from tests.lambdas.loopback import QuietHandler, loopback

RUNTIMES = {
    "support_assistant": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/genai_support_assistant-AbC123",
    "report_writer": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/genai_report_writer-DeF456",
}
TOKEN = "eyJraWQiOiJrMSJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2ln"  # the gateway forwards it as it came
CALLER = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class FakeAgentCore:
    """Answers InvokeAgentRuntime like an agent (lambdas/agent/server.py) behind the runtime."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    delay: float = 0.0

    def reply(self, answer: str, *, model: str = "amazon.nova-pro-v1:0", ok_calls: int = 1, failed: int = 0) -> None:
        calls = [{"name": "t", "arguments": {}, "ok": True}] * ok_calls + [{"name": "t", "arguments": {}, "ok": False}]
        body = {
            "agent": "a",
            "session_id": "s",
            "answer": answer,
            "model": model,
            "stop": "end_turn",
            "iterations": 2,
            "tool_calls": calls[: ok_calls + failed],
            "usage": {"input_tokens": 900, "output_tokens": 120},
        }
        self.answers.append((200, {}, json.dumps(body).encode()))


@pytest.fixture
def agentcore() -> Iterator[tuple[str, FakeAgentCore]]:
    fake = FakeAgentCore()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.seen.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            if fake.delay:
                threading.Event().wait(fake.delay)
            status, headers, data = fake.answers.pop(0)
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with loopback(Handler) as url:
        yield url, fake


@pytest.fixture
def routed(
    gateway: Gateway, agentcore: tuple[str, FakeAgentCore], monkeypatch: pytest.MonkeyPatch
) -> tuple[Gateway, FakeAgentCore]:
    """The gateway with its test config's routes: chat -> support_assistant, report -> report_writer."""
    endpoint, fake = agentcore
    deps = handler.dependencies()
    monkeypatch.setattr(handler, "dependencies", lambda: handler.Dependencies(
        ledger=deps.ledger, guard=deps.guard, bedrock=deps.bedrock, agents=AgentClient(endpoint, RUNTIMES)
    ))  # fmt: skip
    monkeypatch.setattr(handler, "policy", lambda: AGENT_POLICY)
    return gateway, fake


def call(event: dict[str, Any]) -> HttpResult:
    return http_result(handler.lambda_handler(event, FakeContext()))


def chat(text: str = "Where is my order?", **body: Any) -> dict[str, Any]:
    return rest_event("POST", "/v1/chat", {"messages": [{"role": "user", "content": text}], **body}, headers=CALLER)


def used(output_type: str) -> int:
    usage = call(rest_event("GET", "/v1/usage")).body
    units: int = next(q["used"] for q in usage["quotas"] if q["output_type"] == output_type)
    return units


def test_chat_goes_to_its_agent_as_the_caller_guarded_and_metered(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Where is my order? ada@example.com"], anonymized("Where is my order? {EMAIL}"))
    agent.reply("Order O-1 shipped to ada@example.com.")
    guard_output(gateway.bedrock, "Order O-1 shipped to ada@example.com.", anonymized("Order O-1 shipped to {EMAIL}."))
    result = call(chat("Where is my order? ada@example.com", session_id="support-chat-42"))
    assert result.status == 200
    assert (result.body["agent"], result.body["session_id"], result.body["output"]) == (
        "support_assistant",
        "support-chat-42",
        "Order O-1 shipped to {EMAIL}.",
    )
    (request,) = agent.seen
    assert request["path"] == f"/runtimes/{quote(RUNTIMES['support_assistant'], safe='')}/invocations?qualifier=DEFAULT"
    assert request["headers"]["Authorization"] == CALLER["Authorization"]
    assert request["headers"][SESSION_HEADER] == runtime_session_id("customer-gold", "user-1", "support-chat-42")
    body = request["body"]
    # The agent sees the anonymized turn, the output type's instructions and the group's models.
    assert body["messages"] == [{"role": "user", "content": "Where is my order? {EMAIL}"}]
    assert body["instructions"] == AGENT_POLICY.outputs["chat"].instructions
    assert body["models"] == ["amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"]
    assert body["max_tokens"] == AGENT_POLICY.outputs["chat"].max_tokens
    assert 0 < body["turn_seconds"] < 30
    item = gateway.ledger.record("api-req-1", group="customer-gold", user="user-1") or {}
    assert (item["status"]["S"], item["model"]["S"], item["input_tokens"]["N"], item["output_tokens"]["N"]) == (
        "delivered",
        "amazon.nova-pro-v1:0",
        "900",
        "120",
    )
    assert used("chat") == 1


def test_a_session_is_the_callers_own(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    for user, request_id in (("user-1", "r-1"), ("user-1", "r-2"), ("user-2", "r-3")):
        guard_input(gateway.bedrock, ["Hi"])
        agent.reply("Hello.")
        guard_output(gateway.bedrock, "Hello.")
        event = chat("Hi", session_id="same-session")
        event["requestContext"].update(requestId=request_id, authorizer={"user": user, "group": "customer-gold"})
        assert call(event).status == 200
    first, again, other = (seen["headers"][SESSION_HEADER] for seen in agent.seen)
    assert first == again != other
    assert len(first) >= 33  # AgentCore's minimum session id length


def test_without_a_session_id_each_chat_starts_one_named_after_the_request(
    routed: tuple[Gateway, FakeAgentCore],
) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Hi"])
    agent.reply("Hello.")
    guard_output(gateway.bedrock, "Hello.")
    result = call(chat("Hi"))
    assert result.body["session_id"] == "api-req-1"
    assert agent.seen[0]["headers"][SESSION_HEADER] == runtime_session_id("customer-gold", "user-1", "api-req-1")


def test_a_report_goes_to_the_report_writer_and_is_grounded_on_the_material(
    routed: tuple[Gateway, FakeAgentCore],
) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Q3 numbers"])
    agent.reply("Revenue rose.")
    guard_output(gateway.bedrock, "Revenue rose.", grounding=("Q3 numbers", "Produce the report."))
    result = call(rest_event("POST", "/v1/outputs/report", {"material": "Q3 numbers"}, headers=CALLER))
    assert (result.status, result.body["agent"], result.body["output"]) == (200, "report_writer", "Revenue rose.")
    assert RUNTIMES["report_writer"].replace(":", "%3A").replace("/", "%2F") in agent.seen[0]["path"]
    assert "<material>\nQ3 numbers\n</material>" in agent.seen[0]["body"]["messages"][0]["content"]


def test_a_summary_still_goes_to_a_model(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Long text"])
    converse_ok(gateway.bedrock, "amazon.nova-pro-v1:0", "Short.")
    guard_output(gateway.bedrock, "Short.", grounding=("Long text", "Produce the summary."))
    result = call(rest_event("POST", "/v1/outputs/summary", {"material": "Long text"}, headers=CALLER))
    assert (result.status, "agent" in result.body, agent.seen) == (200, False, [])


def test_a_blocked_input_never_reaches_the_agent(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Which stocks should I buy?"], BLOCKED_TOPIC)
    result = call(chat("Which stocks should I buy?"))
    assert (result.status, result.body["error"], agent.seen) == (400, "guardrail_blocked", [])


@pytest.mark.parametrize(
    ("answer", "status", "error"),
    [
        ((429, {"x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/"}, b"{}"), 429, "throttled"),
        ((429, {}, b'{"error": "model_unavailable"}'), 429, "throttled"),
        ((502, {}, b'{"error": "tools_unavailable", "message": "..."}'), 502, "upstream_error"),
        ((500, {"x-amzn-ErrorType": "RuntimeClientError"}, b"{}"), 502, "upstream_error"),
        ((503, {}, b"<html>unavailable</html>"), 502, "upstream_error"),
        ((400, {}, b'{"error": "model_rejected", "message": "..."}'), 400, "upstream_rejected"),
        (
            (400, {"x-amzn-ErrorType": "ValidationException:http://internal.amazon.com/"}, b"{}"),
            400,
            "upstream_rejected",
        ),
        ((200, {}, b'{"answer": "no model named"}'), 502, "upstream_error"),
        ((200, {}, b"<html>"), 502, "upstream_error"),
    ],
)
def test_an_agent_failure_is_a_json_error_and_gives_the_units_back(
    answer: tuple[int, dict[str, str], bytes], status: int, error: str, routed: tuple[Gateway, FakeAgentCore]
) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Hi"])
    agent.answers.append(answer)
    result = call(chat("Hi"))
    assert (result.status, result.body["error"]) == (status, error)
    assert ("Retry-After" in result.headers) == (status == 429)
    assert used("chat") == 0


def test_an_agent_that_does_not_answer_in_time_is_a_502(
    routed: tuple[Gateway, FakeAgentCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, agent = routed
    monkeypatch.setattr(FakeContext, "get_remaining_time_in_millis", lambda self: 6_000)  # 1 s for the agent
    agent.delay = 1.5
    agent.reply("Too late.")
    guard_input(gateway.bedrock, ["Hi"])
    result = call(chat("Hi"))
    assert (result.status, result.body["message"]) == (502, "agent support_assistant failed with Timeout")
    assert used("chat") == 0


def test_no_bearer_token_is_a_401_not_a_crash(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Hi"])
    result = call(rest_event("POST", "/v1/chat", {"messages": [{"role": "user", "content": "Hi"}]}))
    assert (result.status, result.body["error"], agent.seen) == (401, "unauthorized", [])
    assert used("chat") == 0


def test_the_tool_call_trace_is_logged_with_arguments_only_for_an_internal_evaluation_case(
    routed: tuple[Gateway, FakeAgentCore], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, agent = routed
    call_with_email = {"name": "orders___find_orders", "arguments": {"customer_email": "ada@example.com"}, "ok": True}
    for group, request_id in (("customer-gold", "r-customer"), ("platform-admins", "r-internal")):
        guard_input(gateway.bedrock, ["Where is my order?"])
        agent.reply("Shipped.")
        answer = json.loads(agent.answers[-1][2])
        answer["tool_calls"] = [call_with_email]
        agent.answers[-1] = (200, {}, json.dumps(answer).encode())
        guard_output(gateway.bedrock, "Shipped.")
        event = chat("Where is my order?")
        event["headers"]["X-Evaluation-Case"] = "orders-latest"
        event["requestContext"].update(requestId=request_id, authorizer={"user": "u-1", "group": group})
        result = call(event)
        assert result.status == 200
        assert ("tool_calls" in result.body) == (group == "platform-admins")
    turns = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"agent turn"' in line]
    customer, internal = turns
    assert customer["tool_calls"] == [{"name": "orders___find_orders", "ok": True}]
    assert "evaluation_case" not in customer
    assert "ada@example.com" not in json.dumps(customer)
    assert internal["evaluation_case"] == "orders-latest"
    assert internal["tool_calls"] == [call_with_email]
