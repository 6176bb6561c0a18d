"""One request traced end to end: the AI gateway, the agent (stubbed model) behind a loopback
AgentCore, the tools gateway's interceptor and knowledge_search (stubbed retrieval). Every log
line, stage metric and span carries the same conversation id and the right stage; the seeded
personal data reaches none of them."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.stub import ANY, Stubber
from cryptography.hazmat.primitives.asymmetric import rsa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent.app import GatewayTools, Service
from agent.contract import AgentGroups, GroupModels, Settings as AgentSettings
from ai_gateway import handler as gateway_handler
from ai_gateway.agents import AgentClient, runtime_session_id
from ai_gateway.telemetry import Telemetry
from knowledge_search import handler as knowledge
from shared.headers import AGENT_SESSION_HEADER, CALLER_TOKEN_HEADER
from shared.runtime_config import ConfigLocation, DocumentReader
from shared.telemetry import CONVERSATION, MAX_VALUES, STAGES, STAGES_MESSAGE, TRACE, Recorder
from stacks.production.tool_binding import bindings, classifications
from tests.lambdas.bedrock_fakes import converse_answer
from tests.lambdas.cognito_fixtures import CLIENT_ID, pool_verifier, sign
from tests.lambdas.conftest import SPANS, FakeContext, http_result
from tests.lambdas.gateway_fixtures import (
    AGENT_POLICY,
    CONFIG,
    Gateway,
    anonymized,
    guard_input,
    guard_output,
    rest_event,
)
from tests.lambdas.loopback import QuietHandler, loopback
from tool_guard import handler as guard
from tool_guard.contract import ToolBindings

SEARCH = "knowledge___knowledge_search"
RUNTIME = "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/genai_support_assistant-AbC123"
SEEDED = "ada.lovelace@example.com"
INITIALIZED = {
    "protocolVersion": "2025-06-18",
    "capabilities": {"tools": {"listChanged": False}},
    "serverInfo": {"name": "tools-gateway", "version": "1.0"},
}


@pytest.fixture(autouse=True)
def tracer_provider(spans: InMemorySpanExporter) -> None:
    """The session's span capture (SPANS, tests/lambdas/conftest.py) is installed."""


def answer(stubber: Stubber, content: list[dict[str, Any]], stop: str) -> None:
    stubber.add_response(
        "converse",
        converse_answer(content, stop, input_tokens=300, output_tokens=40),
        {
            "modelId": "amazon.nova-pro-v1:0",
            "system": ANY,
            "messages": ANY,
            "requestMetadata": ANY,
            "toolConfig": ANY,
            "inferenceConfig": ANY,
        },
    )


@pytest.fixture
def chain(
    gateway: Gateway, cognito: tuple[str, list[str]], signing_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Gateway, Stubber, Stubber, str]]:
    document = DocumentReader.static(
        ToolBindings(tool_bindings=bindings(CONFIG), data_classifications=classifications(CONFIG))
    )
    monkeypatch.setattr(guard, "bindings", lambda: document)
    guard.allowed_tools_view.cache_clear()
    verifier = pool_verifier(cognito[0])
    monkeypatch.setattr(guard, "verifier", lambda: verifier)
    retrieval = boto3.client("bedrock-agent-runtime", region_name="us-east-1")
    model = boto3.client("bedrock-runtime", region_name="us-east-1")
    tools = [{"name": SEARCH, "description": "Search", "inputSchema": {"type": "object"}}]

    class ToolsGateway(QuietHandler):
        """The AgentCore Gateway's part: the REQUEST interceptor, the target, the RESPONSE interceptor."""

        def do_POST(self) -> None:
            rpc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if rpc.get("method") == "initialize":  # the MCP session's start (the gateway answers it itself)
                return self._send({"jsonrpc": "2.0", "id": rpc["id"], "result": INITIALIZED})
            if rpc.get("method") == "server/discover":  # newer than the gateway's MCP versions
                return self._send({"jsonrpc": "2.0", "id": rpc["id"], "error": {"code": -32601, "message": "no"}})
            if "id" not in rpc:  # a notification
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            request = {"headers": dict(self.headers.items()), "body": rpc}
            passed = guard.intercept({"interceptorInputVersion": "1.0", "mcp": {"gatewayRequest": request}})["mcp"]
            if "transformedGatewayResponse" in passed:
                return self._send(passed["transformedGatewayResponse"]["body"])
            body = passed["transformedGatewayRequest"]["body"]
            if body["method"] == "tools/list":
                result: dict[str, Any] = {"tools": tools}
            else:
                found = knowledge.search(retrieval, "KB12345678", body["params"]["arguments"])
                result = {"content": [{"type": "text", "text": json.dumps(found)}]}
            response = {"statusCode": 200, "body": {"jsonrpc": "2.0", "id": rpc["id"], "result": result}}
            event = {"mcp": {"gatewayRequest": request, "gatewayResponse": response}}
            self._send(guard.intercept(event)["mcp"]["transformedGatewayResponse"]["body"])

        def _send(self, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with loopback(ToolsGateway) as tools_url, Stubber(model) as model_stub, Stubber(retrieval) as retrieval_stub:
        groups = AgentGroups(
            agents={
                "support_assistant": {
                    "customer-gold": GroupModels(
                        allowed=("amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"), default="amazon.nova-pro-v1:0"
                    )
                }
            },
            prompts={"support_assistant": "Help."},
        )
        location = ConfigLocation(application="a", environment="e", profile="p", environment_name="agents")
        settings = AgentSettings(
            agent_name="support_assistant",
            tools_gateway_url=tools_url,
            token_issuer=cognito[0],
            token_client_id=CLIENT_ID,
            groups=location,
        )
        agent = Service(
            settings,
            model,
            pool_verifier(cognito[0]),
            GatewayTools(tools_url),
            DocumentReader(location, AgentGroups, fetch=lambda _: groups.model_dump_json()),
            clock=lambda: 1_000.0,  # stopped: the turn never runs out of time on a busy machine
        )

        class AgentCore(QuietHandler):
            """AgentCore Runtime's part: authorize the gateway (SigV4, done), pass the allowlisted
            header and the session to the agent."""

            def do_POST(self) -> None:
                assert unquote(self.path.split("/")[2]) == RUNTIME
                assert self.headers["Authorization"].startswith("AWS4-HMAC-SHA256")
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                forwarded = {CALLER_TOKEN_HEADER: self.headers[CALLER_TOKEN_HEADER]}
                status, answered = agent.invoke(body, forwarded, self.headers[AGENT_SESSION_HEADER])
                data = json.dumps(answered).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        with loopback(AgentCore) as agentcore_url:
            deps = gateway_handler.dependencies()
            monkeypatch.setattr(gateway_handler, "dependencies", lambda: gateway_handler.Dependencies(
                ledger=deps.ledger, guard=deps.guard, bedrock=deps.bedrock,
                agents=AgentClient(agentcore_url, {"support_assistant": RUNTIME}),
            ))  # fmt: skip
            monkeypatch.setattr(gateway_handler, "policy", lambda: AGENT_POLICY)
            token = sign(signing_key, cognito[0], sub="user-1")
            yield gateway, model_stub, retrieval_stub, token
    guard.allowed_tools_view.cache_clear()


def test_one_conversation_id_in_every_log_line_metric_and_span_with_its_stage(
    chain: tuple[Gateway, Stubber, Stubber, str], capsys: pytest.CaptureFixture[str]
) -> None:
    gateway, model, retrieval, token = chain
    SPANS.clear()
    question = f"What is the refund window? Reply to {SEEDED}"
    guard_input(gateway.bedrock, [question], anonymized("What is the refund window? Reply to {EMAIL}"))
    tool_use = {"toolUse": {"toolUseId": "t1", "name": SEARCH, "input": {"query": "refund window"}}}
    answer(model, [tool_use], "tool_use")
    retrieval.add_response(
        "retrieve",
        {"retrievalResults": [{"content": {"text": "Thirty days."}, "location": {"type": "S3"}, "score": 0.9}]},
        {"knowledgeBaseId": "KB12345678", "retrievalQuery": {"text": "refund window"}, "retrievalConfiguration": ANY},
    )
    answer(model, [{"text": "You have thirty days."}], "end_turn")
    guard_output(gateway.bedrock, "You have thirty days.")
    event = rest_event(
        "POST",
        "/v1/chat",
        {"messages": [{"role": "user", "content": question}], "session_id": "chat-0001"},
        headers={"Authorization": f"Bearer {token}"},
    )
    result = http_result(gateway_handler.lambda_handler(event, FakeContext()))
    assert (result.status, result.body["output"]) == (200, "You have thirty days.")
    conversation = runtime_session_id("customer-gold", "user-1", "chat-0001")

    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    logs = [line for line in lines if "_aws" not in line]
    emf = [line for line in lines if "_aws" in line]
    # Each function's stages: one log record ("stages", in the first of its stage documents),
    # each stage's attributes, outcome and latency in it (the agent's tool calls: below).
    records = [line for line in emf if line.get("message") == STAGES_MESSAGE]
    assert len(records) == 2  # the gateway's request, knowledge_search's retrieval
    stage_logs = [stage for record in records for stage in record["stages"]]
    assert sorted(stage["stage"] for stage in stage_logs) == [
        "generation",
        "guardrail",
        "guardrail",
        "retrieval",
        "usage",
    ]
    assert all(isinstance(stage["latency_ms"], float) and stage["latency_ms"] >= 0 for stage in stage_logs)
    # The admission runs beside the input check (Flow.screen_and_admit): whichever ends first is
    # recorded first; generation and the output check come after both.
    request_stages = [(s["stage"], s["outcome"]) for s in records[1]["stages"]]
    assert sorted(request_stages[:2]) == [
        ("guardrail", "intervened"),  # the e-mail address anonymized
        ("usage", "ok"),
    ]
    assert request_stages[2:] == [("generation", "ok"), ("guardrail", "ok")]
    (checked,) = [s for s in records[1]["stages"][:2] if s["stage"] == "guardrail"]
    assert checked["gen_ai.operation.name"] == "apply_guardrail"
    assert all(record[CONVERSATION] == conversation for record in records)
    # Every log line of the request, from every component, carries it (the gateway's too).
    request_logs = [line for line in logs if line.get("message") in ("output delivered", "agent turn", "turn finished")]
    assert request_logs
    assert all(line.get(CONVERSATION) == conversation for line in request_logs)
    staged = [m for m in emf if "Stage" in m]
    assert all(m["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Stage"]] for m in staged)  # alarmable as is
    assert all(len(m["StageRequests"]) == len(m["StageErrors"]) == len(m["StageLatency"]) for m in staged)
    counted = {m["Stage"]: (sum(m["StageRequests"]), sum(m["StageErrors"])) for m in staged}
    assert len(staged) == len(counted)  # one document per stage of a request
    assert counted == {
        "guardrail": (2.0, 0.0),  # input and output, one document
        "usage": (1.0, 0.0),
        "generation": (1.0, 0.0),
        "tool": (1.0, 0.0),
        "retrieval": (1.0, 0.0),
    }
    assert set(counted) <= set(STAGES)
    assert all(m[CONVERSATION] == conversation for m in staged)
    gateway_emf = [m for m in emf if "Outputs" in m]
    assert [m[CONVERSATION] for m in gateway_emf] == [conversation]

    spans = [dict(span.attributes or {}) for span in SPANS.get_finished_spans()]
    staged_spans = [span for span in spans if "stage" in span]
    assert {span["stage"] for span in staged_spans} == {"guardrail", "usage", "generation", "retrieval"}
    assert all(span[CONVERSATION] == conversation for span in staged_spans)
    # The agent's own spans (Strands): the turn under the same conversation, its model and tool calls.
    (agent,) = [s for s in spans if s.get("gen_ai.operation.name") == "invoke_agent" and "stage" not in s]
    assert (agent[CONVERSATION], agent["session.id"]) == (conversation, conversation)
    generation = [s for s in spans if s.get("gen_ai.operation.name") == "chat"]
    assert [s["gen_ai.usage.input_tokens"] for s in generation] == [300, 300]
    tool = next(s for s in spans if str(s.get("gen_ai.tool.name")) == SEARCH and "gen_ai.tool.status" in s)
    assert tool["gen_ai.tool.status"] == "success"

    sinks = json.dumps(lines) + json.dumps(spans)
    assert SEEDED not in sinks


def emf_valid(document: dict[str, Any]) -> bool:
    """Every directive's dimensions and metrics are members of the document (EMF's rule)."""
    directives = document["_aws"]["CloudWatchMetrics"]
    return all(
        all(key in document for keys in d["Dimensions"] for key in keys)
        and all(isinstance(document.get(m["Name"]), list) for m in d["Metrics"])
        for d in directives
    )


def test_a_requests_own_metrics_carry_service_group_and_output_type_and_each_request_starts_empty(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The gateway's own metrics, held by its Telemetry and written with its stages' documents,
    are dimensioned as Powertools would (service, Group, OutputType), bounded per metric like
    Powertools (100 values, then written), and their dimensions reset per invocation."""
    metrics = Metrics(namespace="ns", service="ai_gateway")
    telemetry = Telemetry(metrics, Logger(service="ai_gateway", stream=io.StringIO()))
    capsys.readouterr()

    def written() -> list[dict[str, Any]]:
        documents = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert all(emf_valid(document) for document in documents)
        return documents

    telemetry.request("customer-gold")
    telemetry.output_type("chat")
    telemetry.input_characters(12)
    telemetry.input_characters(float("nan"))  # type: ignore[arg-type]  # EMF cannot carry it: dropped
    metrics.flush_metrics()  # the handler's log_metrics, at the end of the invocation
    (document,) = written()
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "ns"
    assert sorted(directive["Dimensions"][0]) == ["Group", "OutputType", "service"]
    assert (document["service"], document["Group"], document["OutputType"]) == ("ai_gateway", "customer-gold", "chat")
    assert (document["Requests"], document["GuardrailInputCharacters"]) == ([1.0], [12.0])

    telemetry.start()  # the next invocation: its own dimensions only
    telemetry.request("platform-admins")
    for _ in range(MAX_VALUES + 1):
        telemetry.input_characters(1)
    metrics.flush_metrics()
    documents = written()
    assert [len(d["GuardrailInputCharacters"]) for d in documents] == [MAX_VALUES, 1]
    assert [(d["Group"], "OutputType" in d) for d in documents] == [("platform-admins", False)] * 2

    metrics.flush_metrics()  # nothing held: nothing written
    assert capsys.readouterr().out == ""


def test_a_recorders_documents_carry_each_requests_own_values_whatever_layouts_came_before(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documents' layout is rendered once per shape and reused: each request's lines still
    carry its own values, ids and dimension values (escaped), whether its shape is new or not."""
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-abc-def;Parent=1;Sampled=1")
    logger = Logger(service="svc", stream=io.StringIO())
    recorder = Recorder(logger, namespace="ns")
    capsys.readouterr()

    def request(conversation: str, latencies: list[float], model: str, tokens: float) -> list[dict[str, Any]]:
        logger.set_correlation_id(f"req-{conversation}")
        recorder.correlate(conversation)
        recorder.stage_metrics("guardrail", latencies[0], failed=False)
        recorder.stage_metrics("usage", latencies[1], failed=True)
        recorder.stage_metrics("guardrail", latencies[2], failed=False)
        recorder.add("ModelInputTokens", "Count", tokens, {"Model": model})
        with recorder.stage("generation", conversation=conversation, **{"gen_ai.request.model": model}):
            pass
        recorder.flush()
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    first = request("c-1", [1.5, 2.25, 3.0], "m-1", 10)
    second = request("c-2", [4.0, 5.0, 6.125], "m-1", 20)  # the same shape: the cached layout
    odd = 'm-2 "50% off" \\ é'
    third = request("c-3", [7.0, 8.0, 9.0], odd, 30)  # a new dimension value: a new layout
    for lines, conversation, latencies, model, tokens in (
        (first, "c-1", [1.5, 2.25, 3.0], "m-1", 10.0),
        (second, "c-2", [4.0, 5.0, 6.125], "m-1", 20.0),
        (third, "c-3", [7.0, 8.0, 9.0], odd, 30.0),
    ):
        assert all(emf_valid(line) for line in lines)
        assert all((line[CONVERSATION], line[TRACE]) == (conversation, "1-abc-def") for line in lines)
        assert all(d["Namespace"] == "ns" for line in lines for d in line["_aws"]["CloudWatchMetrics"])
        by_stage = {line["Stage"]: line for line in lines}
        assert (by_stage["guardrail"]["StageLatency"], by_stage["guardrail"]["StageErrors"]) == (
            [latencies[0], latencies[2]],
            [0.0, 0.0],
        )
        assert (by_stage["usage"]["StageLatency"], by_stage["usage"]["StageErrors"]) == ([latencies[1]], [1.0])
        assert by_stage["generation"]["StageRequests"] == [1.0]
        (modelled,) = [line for line in lines if "Model" in line]
        assert (modelled["Model"], modelled["ModelInputTokens"]) == (model, [tokens])
        (record,) = [line for line in lines if line.get("message") == STAGES_MESSAGE]
        assert (record["service"], record["correlation_id"]) == ("svc", f"req-{conversation}")
        assert [(s["stage"], s["gen_ai.request.model"]) for s in record["stages"]] == [("generation", model)]
