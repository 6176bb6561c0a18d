"""The AI gateway routing output types to agents: InvokeAgentRuntime signed with the gateway's own
credentials and carrying the caller's token, over real loopback HTTP standing in for the AgentCore
data plane (runtimes and memory); guardrails, metering and the memory of guarded turns stay in the
gateway."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import quote

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from ai_gateway import agents, handler
from ai_gateway.agents import AgentClient, runtime_session_id
from ai_gateway.contract import GENERATION_MARGIN_SECONDS
from ai_gateway.flow import Clock, Flow
from ai_gateway.request import NOT_ALONE
from evaluation.evaluator import load_golden_set
from shared.aws_errors import UpstreamError
from shared.headers import AGENT_SESSION_HEADER as SESSION_HEADER, CALLER_TOKEN_HEADER, PASSAGE_HEADER
from shared.passage import PassageChecker, PassageIssuer
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
from tests.lambdas.passage_fixtures import hmac_key

RUNTIMES = {
    "support_assistant": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/genai_support_assistant-AbC123",
    "report_writer": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/genai_report_writer-DeF456",
}
MEMORY = "genai_agents-Mem0123456"
GOLDEN = {case.id: case.prompt for case in load_golden_set()}  # the prompts an evaluation case replays
TOKEN = "eyJraWQiOiJrMSJ9.eyJzdWIiOiJ1c2VyLTEifQ.c2ln"  # the gateway forwards it as it came
CALLER = {"Authorization": f"Bearer {TOKEN}"}
# The gateway function's role credentials (fake): what signs its calls to AgentCore.
GATEWAY_KEY, GATEWAY_SECRET = "AKIDGATEWAYFUNCTION", "gateway-function-secret"
SIGNATURE = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request, "
    r"SignedHeaders=(?P<signed>[^,]+), Signature=(?P<signature>[0-9a-f]{64})$"
)


@dataclass
class FakeAgentCore:
    """AgentCore's data plane: InvokeAgentRuntime answered like an agent (lambdas/agent) behind
    its runtime, and CreateEvent of AgentCore Memory."""

    seen: list[dict[str, Any]] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)
    memory_answer: tuple[int, dict[str, str], bytes] | None = None  # None: the event, as created
    hold: bool = False  # never answer an invocation (until the test ends)
    released: threading.Event = field(default_factory=threading.Event)

    def reply(
        self, answer: str, *, model: str = "amazon.nova-pro-v1:0", calls: list[dict[str, Any]] | None = None
    ) -> None:
        body = {
            "agent": "a",
            "session_id": "s",
            "answer": answer,
            "model": model,
            "stop": "end_turn",
            "iterations": 2,
            "tool_calls": [{"name": "t", "arguments": {}, "ok": True, "error_kind": None, "latency_ms": 40.0}]
            if calls is None
            else calls,
            "usage": {"input_tokens": 900, "output_tokens": 120},
        }
        self.answers.append((200, {}, json.dumps(body).encode()))


@pytest.fixture
def agentcore() -> Iterator[tuple[str, FakeAgentCore]]:
    fake = FakeAgentCore()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            request = {"path": self.path, "headers": dict(self.headers.items()), "raw": raw, "body": json.loads(raw)}
            if self.path.startswith("/memories/"):
                fake.memory.append(request)
                event = {"event": {**request["body"], "memoryId": MEMORY, "eventId": "0000001"}}
                self.answer(fake.memory_answer or (201, {}, json.dumps(event).encode()))
                return
            fake.seen.append(request)
            if fake.hold:  # no answer: the client's read timeout fires; the thread ends with the test
                fake.released.wait(60)
                return
            self.answer(fake.answers.pop(0))

        def answer(self, answer: tuple[int, dict[str, str], bytes]) -> None:
            status, headers, data = answer
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with loopback(Handler) as url:
        yield url, fake
        fake.released.set()


@pytest.fixture
def routed(
    gateway: Gateway, agentcore: tuple[str, FakeAgentCore], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, FakeAgentCore]]:
    """The gateway with its test config's routes (chat -> support_assistant, report ->
    report_writer), the agents' memory, and its own role's credentials."""
    endpoint, fake = agentcore
    with pytest.MonkeyPatch.context() as credentials:  # undone before the gateway's AWS mock ends
        credentials.setenv("AWS_ACCESS_KEY_ID", GATEWAY_KEY)
        credentials.setenv("AWS_SECRET_ACCESS_KEY", GATEWAY_SECRET)
        credentials.delenv("AWS_SESSION_TOKEN", raising=False)
        credentials.setattr(boto3, "DEFAULT_SESSION", None)  # a session that reads them
        kms = boto3.client("kms", region_name="us-east-1")  # the gateway's AWS mock's
        passage = PassageIssuer(lambda: kms, hmac_key(kms))
        with_agents(monkeypatch, AgentClient(endpoint, RUNTIMES, memory_id=MEMORY, passage=passage))
        yield gateway, fake


def with_agents(monkeypatch: pytest.MonkeyPatch, client: AgentClient) -> None:
    deps = handler.dependencies()
    monkeypatch.setattr(handler, "dependencies", lambda: handler.Dependencies(
        ledger=deps.ledger, guard=deps.guard, bedrock=deps.bedrock, agents=client
    ))  # fmt: skip
    monkeypatch.setattr(handler, "policy", lambda: AGENT_POLICY)


def call(event: dict[str, Any]) -> HttpResult:
    return http_result(handler.lambda_handler(event, FakeContext()))


def chat(text: str = "Where is my order?", **body: Any) -> dict[str, Any]:
    return rest_event("POST", "/v1/chat", {"messages": [{"role": "user", "content": text}], **body}, headers=CALLER)


def used(output_type: str) -> int:
    usage = call(rest_event("GET", "/v1/usage")).body
    units: int = next(q["used"] for q in usage["quotas"] if q["output_type"] == output_type)
    return units


def signed_by_the_gateway(request: dict[str, Any], endpoint: str) -> list[str]:
    """The headers the gateway's SigV4 signature covers, once the signature checks out with its
    secret over the request as it arrived."""
    headers = request["headers"]
    signature = SIGNATURE.match(headers["Authorization"])
    assert signature is not None, headers["Authorization"]
    assert (signature["key"], signature["region"], signature["service"]) == (
        GATEWAY_KEY,
        "us-east-1",
        "bedrock-agentcore",
    )
    signed = signature["signed"].split(";")
    arrived = AWSRequest(
        method="POST",
        url=endpoint + request["path"],
        data=request["raw"],
        headers={name: value for name, value in headers.items() if name.lower() in signed},
    )
    arrived.context["timestamp"] = headers["X-Amz-Date"]
    signer = SigV4Auth(Credentials(GATEWAY_KEY, GATEWAY_SECRET), "bedrock-agentcore", "us-east-1")
    expected = signer.signature(signer.string_to_sign(arrived, signer.canonical_request(arrived)), arrived)
    assert signature["signature"] == expected
    return signed


def test_chat_goes_to_its_agent_signed_by_the_gateway_for_the_caller_guarded_metered_and_remembered(
    routed: tuple[Gateway, FakeAgentCore], agentcore: tuple[str, FakeAgentCore]
) -> None:
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
    session = runtime_session_id("customer-gold", "user-1", "support-chat-42")
    assert request["path"] == f"/runtimes/{quote(RUNTIMES['support_assistant'], safe='')}/invocations?qualifier=DEFAULT"
    # The gateway's identity signs; the caller's token rides in AgentCore's custom header, signed too.
    signed = signed_by_the_gateway(request, agentcore[0])
    assert {CALLER_TOKEN_HEADER.lower(), PASSAGE_HEADER.lower(), SESSION_HEADER.lower()} <= set(signed)
    assert request["headers"][CALLER_TOKEN_HEADER] == TOKEN
    assert TOKEN not in request["headers"]["Authorization"]
    # Beside it, the gateway's passage for that token, which the tools gateway's interceptor checks.
    kms = boto3.client("kms", region_name="us-east-1")
    (key,) = kms.list_keys()["Keys"]
    check = PassageChecker(lambda: kms, key["KeyArn"])
    assert check(TOKEN, request["headers"][PASSAGE_HEADER])
    assert not check(TOKEN + "x", request["headers"][PASSAGE_HEADER])
    assert request["headers"][SESSION_HEADER] == session
    body = request["body"]
    # The agent sees the anonymized turn, the output type's instructions and the group's models.
    assert body["messages"] == [{"role": "user", "content": "Where is my order? {EMAIL}"}]
    assert body["instructions"] == AGENT_POLICY.outputs["chat"].instructions
    assert body["models"] == ["amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"]
    assert body["max_tokens"] == AGENT_POLICY.outputs["chat"].max_tokens
    assert 0 < body["turn_seconds"] < 30
    assert not {"temperature", "top_p", "stop_sequences"} & set(body)  # none chosen: the models' defaults
    item = gateway.ledger.record("api-req-1", group="customer-gold", user="user-1") or {}
    assert (item["status"]["S"], item["model"]["S"], item["input_tokens"]["N"], item["output_tokens"]["N"]) == (
        "delivered",
        "amazon.nova-pro-v1:0",
        "900",
        "120",
    )
    assert used("chat") == 1
    # Memory gets the turn as guarded: the masked question and the masked answer, never the raw text.
    (remembered,) = agent.memory
    assert remembered["path"] == f"/memories/{MEMORY}/events"
    assert CALLER_TOKEN_HEADER not in remembered["headers"]  # the token is for the agent only
    assert PASSAGE_HEADER not in remembered["headers"]
    signed_by_the_gateway(remembered, agentcore[0])
    event = remembered["body"]
    assert (event["actorId"], event["sessionId"]) == ("customer-gold/user-1", session)
    assert event["payload"] == [
        {"conversational": {"role": "USER", "content": {"text": "Where is my order? {EMAIL}"}}},
        {"conversational": {"role": "ASSISTANT", "content": {"text": "Order O-1 shipped to {EMAIL}."}}},
    ]
    assert "ada@example.com" not in remembered["raw"].decode()
    written = dt.datetime.fromtimestamp(event["eventTimestamp"], dt.UTC)
    assert abs(written - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)


def test_an_openai_clients_sampling_settings_reach_the_agents_model_calls(
    routed: tuple[Gateway, FakeAgentCore],
) -> None:
    """temperature, top_p and stop were accepted and dropped when an agent produced the answer
    (the sample config's chat): they are passed on, for every model call of the turn."""
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Where is my order?"])
    agent.reply("Order O-1 shipped.")
    guard_output(gateway.bedrock, "Order O-1 shipped.")
    body = {
        "messages": [{"role": "user", "content": "Where is my order?"}],
        "temperature": 0.2,
        "top_p": 0.9,
        "stop": "END",
    }
    result = call(rest_event("POST", "/v1/chat/completions", body, headers=CALLER))
    assert result.status == 200, result.body
    (request,) = agent.seen
    sent = {name: request["body"].get(name) for name in ("temperature", "top_p", "stop_sequences")}
    assert sent == {"temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END"]}


def test_the_caller_token_is_bound_to_its_own_invocation_only(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    for token, request_id in (("token-one.a.b", "r-1"), ("token-two.a.b", "r-2")):
        guard_input(gateway.bedrock, ["Hi"])
        agent.reply("Hello.")
        guard_output(gateway.bedrock, "Hello.")
        event = chat("Hi")
        event["headers"]["Authorization"] = f"Bearer {token}"
        event["requestContext"]["requestId"] = request_id
        assert call(event).status == 200
    assert [seen["headers"][CALLER_TOKEN_HEADER] for seen in agent.seen] == ["token-one.a.b", "token-two.a.b"]
    assert agents._caller_token.get() is None  # nothing left behind for another call


def test_the_time_a_passage_takes_comes_out_of_the_agents_turn(
    routed: tuple[Gateway, FakeAgentCore], agentcore: tuple[str, FakeAgentCore]
) -> None:
    """A slow KMS (the first passage of a token in a container) must not let the turn run past the
    caller's deadline: the agent is given what is left after it."""
    _, agent = routed
    now = [1_000.0]

    def slow_passage(token: str) -> str:
        now[0] += 3.0
        return "p" * 43

    client = AgentClient(agentcore[0], RUNTIMES, passage=slow_passage, clock=lambda: now[0])
    for seconds, given in ((10, 7.0), (2.5, 1)):  # never less than a second: the agent answers at once
        agent.reply("Hello.")
        client.invoke("support_assistant", token=TOKEN, session_id="s" + "0" * 64, payload={"turn_seconds": seconds})
        assert agent.seen[-1]["body"]["turn_seconds"] == given
        assert agent.seen[-1]["headers"][PASSAGE_HEADER] == "p" * 43


def test_two_different_authorization_headers_reach_no_agent(routed: tuple[Gateway, FakeAgentCore]) -> None:
    """The authorizer verified one of them: the agent must not act with whichever API Gateway's
    ``headers`` kept (a caller holding two accounts' tokens would pick the agent's group)."""
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Hi"])
    event = chat("Hi")
    event["multiValueHeaders"] = {"Authorization": [f"Bearer {TOKEN}", "Bearer other-token.a.b"]}
    event["headers"]["Authorization"] = "Bearer other-token.a.b"
    result = call(event)
    assert (result.status, result.body["error"]) == (422, "invalid_request")
    assert "Authorization: sent more than once with different values" in result.body["message"]
    assert agent.seen == []
    # The same token twice is one token.
    agent.reply("Hello.")
    guard_output(gateway.bedrock, "Hello.")
    event = chat("Hi")
    event["multiValueHeaders"] = {"Authorization": [f"Bearer {TOKEN}", f"Bearer {TOKEN}"]}
    event["requestContext"]["requestId"] = "api-req-2"
    assert call(event).status == 200
    assert [seen["headers"][CALLER_TOKEN_HEADER] for seen in agent.seen] == [TOKEN]


def test_a_blocked_output_is_not_remembered(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Which stocks?"])
    agent.reply("Buy ACME.")
    guard_output(gateway.bedrock, "Buy ACME.", BLOCKED_TOPIC)
    result = call(chat("Which stocks?"))
    assert (result.status, result.body["guardrail"], result.body["units"]) == (200, "blocked", 0)
    assert (len(agent.seen), agent.memory) == (1, [])


def test_a_memory_failure_is_logged_and_the_caller_still_gets_the_answer(
    routed: tuple[Gateway, FakeAgentCore], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, agent = routed
    agent.memory_answer = (500, {"x-amzn-ErrorType": "InternalServerException"}, b'{"message": "try later"}')
    guard_input(gateway.bedrock, ["Hi"])
    agent.reply("Hello, Ada.")
    guard_output(gateway.bedrock, "Hello, Ada.")
    result = call(chat("Hi"))
    assert (result.status, result.body["output"]) == (200, "Hello, Ada.")
    assert used("chat") == 1
    assert len(agent.memory) == 1
    (warning,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "not remembered" in line]
    assert (warning["level"], warning["upstream"], warning["code"]) == (
        "WARNING",
        agents.MEMORY_SERVICE,
        "InternalServerException",
    )
    assert "Hello, Ada." not in json.dumps(warning)


def test_without_a_memory_no_turn_is_written(
    routed: tuple[Gateway, FakeAgentCore], agentcore: tuple[str, FakeAgentCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, agent = routed
    with_agents(monkeypatch, AgentClient(agentcore[0], RUNTIMES))
    guard_input(gateway.bedrock, ["Hi"])
    agent.reply("Hello.")
    guard_output(gateway.bedrock, "Hello.")
    assert call(chat("Hi")).status == 200
    assert (len(agent.seen), agent.memory) == (1, [])


def test_each_tool_call_is_a_tool_stage_of_the_conversation(
    routed: tuple[Gateway, FakeAgentCore], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Where is my order?"])
    agent.reply(
        "Shipped.",
        calls=[
            {"name": "orders___find", "arguments": {"email": "ada@example.com"}, "ok": True, "latency_ms": 12.5},
            {"name": "orders___track", "arguments": {"order": "O-1"}, "ok": False, "error_kind": "tool_error",
             "latency_ms": 30},
            # Never made: the agent's turn ran out of time first (no latency).
            {"name": "orders___track", "arguments": {}, "ok": False, "error_kind": "deadline", "latency_ms": None},
        ],
    )  # fmt: skip
    guard_output(gateway.bedrock, "Shipped.")
    assert call(chat("Where is my order?")).status == 200
    out = capsys.readouterr().out
    emf = [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]
    # One document for the request's tool stage, a value per call made, in the order made.
    tools = [m for m in emf if m.get("Stage") == "tool"]
    assert [(m["StageRequests"], m["StageErrors"], m.get("StageLatency")) for m in tools] == [
        ([1.0, 1.0], [0.0, 1.0], [12.5, 30.0]),
    ]
    conversation = runtime_session_id("customer-gold", "user-1", "api-req-1")
    assert all(m["gen_ai.conversation.id"] == conversation for m in tools)
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stage"]] for m in tools)  # alarmable as is
    # No argument value in a log line or metric.
    assert "ada@example.com" not in out
    assert "O-1" not in out


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
    assert [m["body"]["sessionId"] for m in agent.memory] == [first, again, other]  # memory's session is the runtime's


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
    prompt = agent.seen[0]["body"]["messages"][0]["content"]
    assert "<material>\nQ3 numbers\n</material>" in prompt
    assert agent.memory[0]["body"]["payload"][0]["conversational"]["content"]["text"] == prompt


def test_a_summary_still_goes_to_a_model(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Long text"])
    converse_ok(gateway.bedrock, "amazon.nova-pro-v1:0", "Short.")
    guard_output(gateway.bedrock, "Short.", grounding=("Long text", "Produce the summary."))
    result = call(rest_event("POST", "/v1/outputs/summary", {"material": "Long text"}, headers=CALLER))
    assert (result.status, "agent" in result.body, agent.seen, agent.memory) == (200, False, [], [])


def test_a_blocked_input_never_reaches_the_agent(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Which stocks should I buy?"], BLOCKED_TOPIC)
    result = call(chat("Which stocks should I buy?"))
    assert (result.status, result.body["error"], agent.seen, agent.memory) == (400, "guardrail_blocked", [], [])


AWS_ERROR = "x-amzn-ErrorType"


@pytest.mark.parametrize(
    ("answer", "status", "error", "message"),
    [
        # AgentCore's own errors, named by x-amzn-ErrorType.
        ((429, {AWS_ERROR: "ThrottlingException:http://internal.amazon.com/"}, b"{}"), 429, "throttled", None),
        ((500, {AWS_ERROR: "InternalServerException"}, b"{}"), 502, "upstream_error", "InternalServerException"),
        ((400, {AWS_ERROR: "ValidationException:http://x/"}, b"{}"), 400, "upstream_rejected", "ValidationException"),
        ((403, {AWS_ERROR: "AccessDeniedException"}, b"{}"), 403, "upstream_rejected", "AccessDeniedException"),
        # The agent's own refusals: its code, with its status.
        ((409, {}, b'{"error": "session_bound", "message": "..."}'), 409, "upstream_rejected", "session_bound"),
        ((403, {}, b'{"error": "model_forbidden", "message": "..."}'), 403, "upstream_rejected", "model_forbidden"),
        ((401, {}, b'{"error": "unauthorized", "message": "..."}'), 401, "upstream_rejected", "unauthorized"),
        ((400, {}, b'{"error": "model_rejected", "message": "..."}'), 400, "upstream_rejected", "model_rejected"),
        ((429, {}, b'{"error": "model_unavailable"}'), 429, "throttled", None),
        ((502, {}, b'{"error": "tools_unavailable", "message": "..."}'), 502, "upstream_error", "tools_unavailable"),
        # A code that is not a code is not repeated: the status names the failure.
        ((409, {}, b'{"error": "you said: ada@example.com"}'), 409, "upstream_rejected", "409"),
        ((503, {}, b"<html>unavailable</html>"), 502, "upstream_error", "503"),
        # A success that is not the agent's answer.
        ((202, {}, b'{"error": "accepted"}'), 502, "upstream_error", "accepted"),
        ((200, {}, b'{"answer": "no model named"}'), 502, "upstream_error", "InvalidResponse"),
        ((200, {}, b"<html>"), 502, "upstream_error", "InvalidResponse"),
    ],
)
def test_an_agent_failure_is_a_json_error_and_gives_the_units_back(
    answer: tuple[int, dict[str, str], bytes],
    status: int,
    error: str,
    message: str | None,
    routed: tuple[Gateway, FakeAgentCore],
) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Hi"])
    agent.answers.append(answer)
    result = call(chat("Hi"))
    assert (result.status, result.body["error"]) == (status, error)
    if message is not None:
        assert result.body["message"].endswith(f" {message}")
    assert "ada@example.com" not in result.body["message"]
    assert ("Retry-After" in result.headers) == (status == 429)
    assert (len(agent.seen), agent.memory) == (1, [])  # one attempt; nothing remembered
    assert used("chat") == 0


def test_an_answer_is_read_up_to_its_bound_and_no_further(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    for padding, request_id in ((0, "r-at-bound"), (1, "r-over-bound")):
        guard_input(gateway.bedrock, ["Hi"])
        agent.reply("Hello.")
        status, headers, data = agent.answers[-1]
        agent.answers[-1] = (status, headers, data + b" " * (agents.MAX_ANSWER_BYTES - len(data) + padding))
        if not padding:
            guard_output(gateway.bedrock, "Hello.")
        event = chat("Hi")
        event["requestContext"]["requestId"] = request_id
        result = call(event)
        if padding:  # valid JSON, but over the bound: not read, not parsed
            assert (result.status, result.body["message"]) == (
                502,
                "agent support_assistant failed with InvalidResponse",
            )
        else:
            assert (result.status, result.body["output"]) == (200, "Hello.")


def test_an_agent_that_does_not_answer_before_the_read_timeout_is_a_502(
    routed: tuple[Gateway, FakeAgentCore], agentcore: tuple[str, FakeAgentCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, agent = routed
    with_agents(monkeypatch, AgentClient(agentcore[0], RUNTIMES, read_seconds=0.2, memory_id=MEMORY))
    agent.hold = True  # it never answers
    guard_input(gateway.bedrock, ["Hi"])
    result = call(chat("Hi"))
    assert (result.status, result.body["message"]) == (502, "agent support_assistant failed with Timeout")
    assert (len(agent.seen), agent.memory) == (1, [])  # one attempt: a turn is not idempotent
    assert used("chat") == 0


def test_an_unreachable_agentcore_is_a_502(
    routed: tuple[Gateway, FakeAgentCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, _ = routed
    with_agents(monkeypatch, AgentClient("http://127.0.0.1:9", RUNTIMES))  # nothing listens there
    guard_input(gateway.bedrock, ["Hi"])
    result = call(chat("Hi"))
    assert (result.status, result.body["message"]) == (502, "agent support_assistant failed with ConnectionError")
    assert used("chat") == 0


def test_the_trace_header_is_botocores_own_in_lambda(
    routed: tuple[Gateway, FakeAgentCore], monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway, agent = routed
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "gateway")
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    guard_input(gateway.bedrock, ["Hi"])
    agent.reply("Hello.")
    guard_output(gateway.bedrock, "Hello.")
    assert call(chat("Hi")).status == 200
    assert agent.seen[0]["headers"]["X-Amzn-Trace-Id"] == (
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    )


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
        guard_input(gateway.bedrock, [GOLDEN["orders-latest"]])
        agent.reply("Shipped.", calls=[call_with_email])
        guard_output(gateway.bedrock, "Shipped.")
        event = chat(GOLDEN["orders-latest"])
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


@pytest.mark.parametrize(
    "asked",
    [
        "Where is my order? I'm grace@example.com.",  # another prompt under a golden case's name
        GOLDEN["orders-latest"] + " ",  # not the prompt itself
        GOLDEN["orders-shipped"],  # another case's prompt
    ],
)
def test_an_evaluation_case_names_only_its_own_golden_prompt(
    routed: tuple[Gateway, FakeAgentCore], capsys: pytest.CaptureFixture[str], asked: str
) -> None:
    """The header would have a turn's tool arguments logged: an internal caller may not put it on
    a prompt of its own (a customer's address looked up, say), only on the golden case's prompt."""
    _, agent = routed
    event = chat(asked)
    event["headers"]["X-Evaluation-Case"] = "orders-latest"
    event["requestContext"].update(authorizer={"user": "u-1", "group": "platform-admins"})
    capsys.readouterr()
    result = call(event)
    assert (result.status, result.body["error"]) == (422, "invalid_request")
    assert result.body["message"] == "X-Evaluation-Case: the request does not ask a golden case's prompt"
    assert agent.seen == []
    assert "grace@example.com" not in capsys.readouterr().out


OWN = "Find the orders of grace@example.com."


def replayed(path: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An internal caller's request replaying the golden case orders-latest."""
    event = rest_event("POST", path, body, headers={**CALLER, **(headers or {}), "X-Evaluation-Case": "orders-latest"})
    event["requestContext"].update(authorizer={"user": "u-1", "group": "platform-admins"})
    return event


@pytest.fixture
def replaying(
    routed: tuple[Gateway, FakeAgentCore], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[Gateway, FakeAgentCore]:
    """The routed gateway whose internal group may also order reports (an agent's output type,
    with instructions), the log read so far dropped."""
    admins = AGENT_POLICY.groups["platform-admins"]
    quotas = {**admins.quotas, "report": AGENT_POLICY.groups["customer-gold"].quotas["report"]}
    groups = {**AGENT_POLICY.groups, "platform-admins": admins.model_copy(update={"quotas": quotas})}
    monkeypatch.setattr(handler, "policy", lambda: AGENT_POLICY.model_copy(update={"groups": groups}))
    capsys.readouterr()
    return routed


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/v1/chat", {"messages": [
            {"role": "user", "content": OWN}, {"role": "assistant", "content": "OK."},
            {"role": "user", "content": GOLDEN["orders-latest"]},
        ]}, {}),
        ("/v1/chat", {"messages": [{"role": "user", "content": GOLDEN["orders-latest"]}], "session_id": "s-1234567890"}, {}),
        ("/v1/chat/completions", {"messages": [
            {"role": "system", "content": OWN}, {"role": "user", "content": GOLDEN["orders-latest"]},
        ]}, {}),
        ("/v1/chat/completions", {"messages": [
            {"role": "developer", "content": OWN}, {"role": "user", "content": GOLDEN["orders-latest"]},
        ]}, {}),
        ("/v1/chat/completions", {"messages": [
            {"role": "user", "content": OWN}, {"role": "user", "content": GOLDEN["orders-latest"]},
        ]}, {}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": GOLDEN["orders-latest"]}]},
         {"X-Session-Id": "s-1234567890"}),
        ("/v1/outputs/report", {"material": GOLDEN["orders-latest"], "instructions": OWN}, {}),
    ],
    ids=["chat-history", "chat-session", "system", "developer", "two-user-messages", "completions-session",
         "output-instructions"],
)  # fmt: skip
def test_an_evaluation_case_carries_no_text_of_the_callers_beside_its_golden_prompt(
    replaying: tuple[Gateway, FakeAgentCore], capsys: pytest.CaptureFixture[str], path: str, body: Any, headers: Any
) -> None:
    """The agent would get the caller's own text beside the golden prompt (merged into its
    message, added to its instructions, recalled from a session's memory) and the turn's tool
    arguments, which an evaluation case logs, would be the caller's: refused before anything runs."""
    _, agent = replaying
    result = call(replayed(path, body, headers))
    if path == "/v1/chat/completions":  # OpenAI's shape: a 400 invalid_request_error
        assert (result.status, result.body["error"]["type"]) == (400, "invalid_request_error"), result.body
        message = result.body["error"]["message"]
    else:
        assert (result.status, result.body["error"]) == (422, "invalid_request"), result.body
        message = result.body["message"]
    assert message == f"X-Evaluation-Case: {NOT_ALONE}"
    assert (agent.seen, used("chat")) == ([], 0)
    assert "grace@example.com" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": GOLDEN["orders-latest"]}]}),
        # A blank system message is no text: nothing of it reaches the agent.
        ("/v1/chat/completions", {"messages": [
            {"role": "system", "content": " "}, {"role": "user", "content": GOLDEN["orders-latest"]},
        ]}),
        ("/v1/outputs/report", {"material": GOLDEN["orders-latest"]}),
    ],
    ids=["completion", "blank-system", "output"],
)  # fmt: skip
def test_an_evaluation_case_replayed_alone_is_logged_on_every_route(
    replaying: tuple[Gateway, FakeAgentCore], capsys: pytest.CaptureFixture[str], path: str, body: dict[str, Any]
) -> None:
    gateway, agent = replaying
    golden = GOLDEN["orders-latest"]
    guard_input(gateway.bedrock, [golden])
    found = {"name": "orders___find_orders", "arguments": {"customer_email": "ada@example.com"}, "ok": True}
    agent.reply("Shipped.", calls=[found])
    grounding = (golden, "Produce the report.") if "report" in path else None
    guard_output(gateway.bedrock, "Shipped.", grounding=grounding)
    capsys.readouterr()
    result = call(replayed(path, body))
    assert result.status == 200, result.body
    (turn,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"agent turn"' in line]
    assert (turn["evaluation_case"], turn["tool_calls"]) == ("orders-latest", [found])
    # Memory is neither read nor written: a session the caller names by its Idempotency-Key, or
    # what is remembered of the caller from any session, would put the caller's text in the logged
    # arguments, and the golden turn in the caller's memory.
    (invocation,) = agent.seen
    assert (invocation["body"]["memory"], agent.memory) == (False, [])


def test_a_callers_own_agent_turn_reads_and_writes_memory(routed: tuple[Gateway, FakeAgentCore]) -> None:
    gateway, agent = routed
    guard_input(gateway.bedrock, ["Where is my order?"])
    agent.reply("Shipped.")
    guard_output(gateway.bedrock, "Shipped.")
    assert call(chat()).status == 200
    (invocation,) = agent.seen
    assert ("memory" not in invocation["body"], len(agent.memory)) == (True, 1)


class Remembered:
    """The agent client's memory side and the flow's telemetry, recording what they are asked."""

    def __init__(self) -> None:
        self.turns: list[dict[str, Any]] = []
        self.failures: list[str] = []

    def remember(self, **turn: Any) -> None:
        self.turns.append(turn)

    def memory_failed(self, error: UpstreamError) -> None:
        self.failures.append(error.code)


@pytest.mark.parametrize(("left", "written"), [(GENERATION_MARGIN_SECONDS + 0.5, True), (3.9, False)])
def test_no_memory_write_when_it_could_outlast_the_function(left: float, written: bool) -> None:
    """The function ends GENERATION_MARGIN_SECONDS after the generation's deadline: a write whose
    worst case (agents.MEMORY_WORST_SECONDS) does not fit in what is left is not started."""
    recorder = Remembered()
    now = 1000.0
    flow = Flow(
        ledger=cast(Any, None),
        guard=cast(Any, None),
        models=cast(Any, None),
        agents=cast(Any, recorder),
        telemetry=cast(Any, recorder),
        clock=Clock(monotonic=lambda: now),
    )
    request = SimpleNamespace(
        messages=[{"role": "user", "content": [{"text": "Hi"}]}],
        caller=SimpleNamespace(group="customer-gold", user="user-1"),
        conversation="s" * 65,
        deadline=now + left - GENERATION_MARGIN_SECONDS,
    )
    flow._remember(cast(Any, request), cast(Any, SimpleNamespace(text=lambda: "Hello.")))
    assert (len(recorder.turns), recorder.failures) == ((1, []) if written else (0, ["NoTimeLeft"]))
