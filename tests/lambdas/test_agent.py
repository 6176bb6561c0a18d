"""The agent end to end: BedrockAgentCoreApp over loopback HTTP, the tools gateway a real MCP
server on loopback, Cognito's keys on loopback, Bedrock and AgentCore Memory stubbed (Stubber)."""

from __future__ import annotations

import datetime as dt
import inspect
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest
import urllib3
from botocore.stub import ANY, Stubber
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.app import GatewayTools, Service, create_app
from agent.contract import AgentGroups, GroupModels, Settings
from agent.memory import SessionMemory
from agent.turn import LAST_ITERATION_RESULT, STOPPED_ANSWER, TOOL_BUDGET_RESULT, TurnBounds
from shared.contract import SettingsError
from shared.headers import (
    AGENT_SESSION_HEADER as SESSION_HEADER,
    CALLER_TOKEN_HEADER,
    CONVERSATION_HEADER,
    PASSAGE_HEADER,
    TOOLS_PASSAGE_HEADER,
)
from shared.runtime_config import ConfigLocation, DocumentReader
from shared.telemetry import CONVERSATION
from tests.lambdas.bedrock_fakes import converse_answer, tool_use
from tests.lambdas.cognito_fixtures import CLIENT_ID, pool_verifier, sign
from tests.lambdas.loopback import serve_asgi
from tests.lambdas.tools_gateway_fake import FakeToolsGateway, tools_gateway

MODEL = "amazon.nova-pro-v1:0"
FALLBACK = "amazon.nova-lite-v1:0"
SESSION = "session-0123456789abcdef0123456789abcdef"
FIND_ORDERS = "orders___find_orders"
SEARCH = "knowledge___knowledge_search"
MEMORY_ID = "genai_agents-AbCdEf0123"
GROUPS = {
    "customer-gold": GroupModels(allowed=(MODEL, FALLBACK), default=MODEL),
    "platform-admins": GroupModels(allowed=(MODEL,), default=MODEL),
}
# The agents' groups document (AppConfig, environment "agents"): this agent's entry, and another's.
AGENT = "support"
DOCUMENT = AgentGroups(
    agents={AGENT: GROUPS, "report_writer": {"customer-basic": GroupModels(allowed=(FALLBACK,), default=FALLBACK)}},
    prompts={AGENT: "You help customers.", "report_writer": "You write reports."},
)
LOCATION = ConfigLocation(application="app1", environment="env1", profile="prof1", environment_name="agents")
NAMESPACES = ("/actors/{actorId}/facts", "/actors/{actorId}/sessions/{sessionId}/summary")
ACTOR = "customer-gold/user-1"


class Captured:
    """Matches anything in a Stubber's expected params, and keeps what it was compared with."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __eq__(self, other: object) -> bool:
        self.values.append(other)
        return True

    __hash__ = None  # type: ignore[assignment]


def converse(
    stubber: Stubber,
    content: list[dict[str, Any]],
    stop: str,
    *,
    model: str = MODEL,
    messages: Any = ANY,
    system: Any = ANY,
    tools: Any = ANY,
    **extra: Any,
) -> None:
    stubber.add_response(
        "converse",
        converse_answer(content, stop),
        {
            "modelId": model,
            "system": system,
            "messages": messages,
            "requestMetadata": {"session_id": SESSION},
            "toolConfig": tools,
            "inferenceConfig": ANY,
            **extra,
        },
    )


@dataclass
class Clock:
    """The agent's clock: still, until the test moves it."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Documents:
    """The AppConfig store as the agent's DocumentReader fetches from it: the deployed document,
    or nothing readable (``None``)."""

    def __init__(self, document: AgentGroups | None = DOCUMENT) -> None:
        self.document = document
        self.fetched: list[ConfigLocation] = []

    def fetch(self, location: ConfigLocation) -> str:
        self.fetched.append(location)
        if self.document is None:
            raise ConnectionError("appconfigdata unreachable")
        return self.document.model_dump_json()

    def reader(self) -> DocumentReader[AgentGroups]:
        return DocumentReader(LOCATION, AgentGroups, fetch=self.fetch, refused=lambda *_: None)


@dataclass
class Runtime:
    base: str
    model_client: Any
    model: Stubber
    tools: FakeToolsGateway
    memory: Stubber
    clock: Clock
    token: Callable[..., str]
    documents: Documents

    def caller(self, **claims: Any) -> dict[str, str]:
        return {CALLER_TOKEN_HEADER: self.token(**claims), PASSAGE_HEADER: "p" * 43, SESSION_HEADER: SESSION}

    def post(self, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = urllib3.PoolManager().request(
            "POST",
            f"{self.base}/invocations",
            body=raw,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        return response.status, json.loads(response.data)


@pytest.fixture
def agentcore() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    with Stubber(client) as stubber:  # the agent never writes memory: no create_event is queued
        yield client, stubber
        stubber.assert_no_pending_responses()


def settings_for(tools_url: str, issuer: str, **overrides: Any) -> Settings:
    return Settings(
        agent_name=AGENT,
        tools_gateway_url=tools_url,
        token_issuer=issuer,
        token_client_id=CLIENT_ID,
        groups=LOCATION,
        memory_id=MEMORY_ID,
        memory_namespaces=NAMESPACES,
        memory_history_turns=2,
        memory_recall_records=2,
        **overrides,
    )


@pytest.fixture
def runtime(
    request: pytest.FixtureRequest,
    bedrock: tuple[Any, Stubber],
    agentcore: tuple[Any, Stubber],
    cognito: tuple[str, list[str]],
    signing_key: rsa.RSAPrivateKey,
) -> Iterator[Runtime]:
    client, stubber = bedrock
    memory_client, memory_stubber = agentcore
    issuer = cognito[0]
    overrides = getattr(request, "param", {})
    clock = Clock()
    documents = Documents()
    with tools_gateway() as (tools_url, fake):
        settings = settings_for(tools_url, issuer, **overrides)
        service = Service(
            settings,
            client,
            pool_verifier(issuer),
            GatewayTools(tools_url),
            documents.reader(),
            SessionMemory(memory_client, MEMORY_ID, NAMESPACES, history_turns=2, recall_records=2),
            clock=clock,
        )
        with serve_asgi(create_app(lambda: service)) as base:

            def token(**claims: Any) -> str:
                return sign(signing_key, issuer, **claims)

            yield Runtime(base, client, stubber, fake, memory_stubber, clock, token, documents)


def memory_is_empty(memory: Stubber, *, question: str = "hi") -> None:
    memory.add_response(
        "list_events",
        {"events": []},
        {"memoryId": MEMORY_ID, "actorId": ACTOR, "sessionId": SESSION, "includePayloads": True, "maxResults": 2},
    )
    for template in NAMESPACES:
        memory.add_response(
            "retrieve_memory_records",
            {"memoryRecordSummaries": []},
            {
                "memoryId": MEMORY_ID,
                "namespace": template.format(actorId=ACTOR, sessionId=SESSION),
                "searchCriteria": {"searchQuery": question, "topK": 2},
                "maxResults": 2,
            },
        )


def tool_names(config: dict[str, Any]) -> set[str]:
    return {tool["toolSpec"]["name"] for tool in config["tools"]}


# --- the runtime contract ------------------------------------------------------------------------


def test_ping_reports_healthy(runtime: Runtime) -> None:
    response = urllib3.PoolManager().request("GET", f"{runtime.base}/ping")
    assert (response.status, json.loads(response.data)["status"]) == (200, "Healthy")


def test_a_multi_tool_turn_runs_as_the_caller_with_only_the_callers_tools(runtime: Runtime) -> None:
    runtime.tools.results[FIND_ORDERS] = {"records": [{"order_id": "O-1", "status": "shipped"}]}
    runtime.tools.results[SEARCH] = {"passages": [{"text": "Shipping takes two days."}]}
    memory_is_empty(runtime.memory, question="Where is my order?")
    offered = Captured()
    converse(
        runtime.model,
        [
            tool_use(FIND_ORDERS, {"customer_email": "ada@example.com"}),
            tool_use(SEARCH, {"query": "shipping time"}, "t2"),
        ],
        "tool_use",
        tools=offered,
    )
    seen = Captured()
    converse(runtime.model, [{"text": "It has shipped; two days."}], "end_turn", messages=seen)
    headers = runtime.caller()
    status, answer = runtime.post({"prompt": "Where is my order?"}, headers)
    assert status == 200
    assert (answer["agent"], answer["session_id"], answer["answer"], answer["stop"], answer["model"]) == (
        "support",
        SESSION,
        "It has shipped; two days.",
        "end_turn",
        MODEL,
    )
    assert [(c["name"], c["arguments"], c["ok"], c["error_kind"]) for c in answer["tool_calls"]] == [
        (FIND_ORDERS, {"customer_email": "ada@example.com"}, True, None),
        (SEARCH, {"query": "shipping time"}, True, None),
    ]
    assert (answer["iterations"], answer["usage"]) == (2, {"input_tokens": 200, "output_tokens": 40})
    # The model was offered the caller's group's tools, and no other.
    assert tool_names(offered.values[0]) == {FIND_ORDERS, SEARCH}
    # Both tool results went back to the model.
    results = [block["toolResult"] for block in seen.values[0][-1]["content"]]
    assert [json.loads(r["content"][0]["text"]) for r in results] == [
        runtime.tools.results[FIND_ORDERS],
        runtime.tools.results[SEARCH],
    ]
    # The tools gateway saw the caller's own token, the gateway's passage for it, and the
    # conversation, on every request.
    assert {h["authorization"] for _, h in runtime.tools.seen} == {f"Bearer {headers[CALLER_TOKEN_HEADER]}"}
    assert {h[TOOLS_PASSAGE_HEADER.lower()] for _, h in runtime.tools.seen} == {headers[PASSAGE_HEADER]}
    assert {h[CONVERSATION_HEADER.lower()] for _, h in runtime.tools.seen} == {SESSION}
    assert runtime.tools.calls().count("tools/call") == 2


def test_another_groups_caller_is_offered_that_groups_tools(runtime: Runtime) -> None:
    offered = Captured()
    converse(runtime.model, [{"text": "Report ready."}], "end_turn", tools=offered)
    runtime.memory.add_response("list_events", {"events": []}, None)
    for _ in NAMESPACES:
        runtime.memory.add_response("retrieve_memory_records", {"memoryRecordSummaries": []}, None)
    status, _ = runtime.post({"prompt": "hi"}, runtime.caller(gateway_group="platform-admins"))
    assert status == 200
    assert tool_names(offered.values[0]) == {"reports___admin_report"}


def test_a_tool_outside_the_callers_list_is_never_called(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    converse(runtime.model, [tool_use("reports___admin_report", {})], "tool_use")
    seen = Captured()
    converse(runtime.model, [{"text": "I cannot."}], "end_turn", messages=seen)
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert status == 200
    assert [(c["ok"], c["error_kind"]) for c in answer["tool_calls"]] == [(False, "forbidden")]
    assert "tools/call" not in runtime.tools.calls()  # the agent does not even ask the gateway
    assert seen.values[0][-1]["content"][0]["toolResult"]["content"] == [
        {"text": "Unknown tool: reports___admin_report"}
    ]


def test_a_tool_error_from_the_gateway_keeps_its_kind(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    runtime.tools.results[FIND_ORDERS] = {"error": {"kind": "upstream_unavailable", "message": "legacy API down"}}
    converse(runtime.model, [tool_use(FIND_ORDERS, {"customer_email": "a@example.com"})], "tool_use")
    converse(runtime.model, [{"text": "Try later."}], "end_turn")
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert status == 200
    assert [(c["ok"], c["error_kind"]) for c in answer["tool_calls"]] == [(False, "upstream_unavailable")]


def test_a_throttled_model_hands_the_rest_of_the_turn_to_the_next(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    runtime.model.add_client_error("converse", "ThrottlingException", http_status_code=429)
    converse(runtime.model, [tool_use(FIND_ORDERS, {"customer_email": "a@example.com"})], "tool_use", model=FALLBACK)
    converse(runtime.model, [{"text": "Done."}], "end_turn", model=FALLBACK)  # not the failed model again
    status, answer = runtime.post({"prompt": "hi", "models": [MODEL, FALLBACK]}, runtime.caller())
    assert (status, answer["model"], answer["answer"]) == (200, FALLBACK, "Done.")


def test_an_answer_cut_at_max_tokens_is_answered_with_its_text_not_a_500(runtime: Runtime) -> None:
    """Strands raises when the model stops at max_tokens (keeping the partial message): the turn
    answers with what the model wrote, its stop max_tokens, as the gateway's model path does."""
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "The refund policy allows"}], "max_tokens")
    status, answer = runtime.post({"prompt": "hi", "max_tokens": 5}, runtime.caller())
    assert (status, answer["answer"], answer["stop"], answer["tool_calls"]) == (
        200,
        "The refund policy allows",
        "max_tokens",
        [],
    )
    assert answer["usage"]["output_tokens"] > 0


def test_a_conversation_too_long_for_the_model_is_a_400_not_a_500(runtime: Runtime) -> None:
    """Bedrock's "Input is too long" is a ValidationException Strands reads as a context window
    overflow (not a ClientError): the conversation itself, as any other rejected one."""
    memory_is_empty(runtime.memory)
    runtime.model.add_client_error(
        "converse", "ValidationException", "Input is too long for requested model.", http_status_code=400
    )
    assert runtime.post({"prompt": "hi", "models": [MODEL, FALLBACK]}, runtime.caller()) == (
        400,
        {
            "error": "model_rejected",
            "message": "bedrock-runtime failed with ValidationException",
            "session_id": SESSION,
        },
    )


def models_asked(runtime: Runtime) -> list[str]:
    """The model ids the agent sends Converse requests for, in order (failed requests included)."""
    asked: list[str] = []
    runtime.model_client.meta.events.register(
        "provide-client-params.bedrock-runtime.Converse", lambda params, **_: asked.append(params["modelId"])
    )
    return asked


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ModelErrorException", 424),  # the model failed on this request (Bedrock sends a 424)
        ("InternalServerException", 500),
        ("ServiceUnavailableException", 503),
        ("ModelNotReadyException", 429),  # a server error whatever its status, not throttling
    ],
)
def test_a_model_that_fails_on_the_server_side_hands_the_rest_of_the_turn_to_the_next(
    code: str, status: int, runtime: Runtime
) -> None:
    memory_is_empty(runtime.memory)
    asked = models_asked(runtime)
    runtime.tools.results[FIND_ORDERS] = {"records": [{"order_id": "O-1", "status": "shipped"}]}
    runtime.model.add_client_error("converse", code, http_status_code=status)
    converse(runtime.model, [tool_use(FIND_ORDERS, {"customer_email": "a@example.com"})], "tool_use", model=FALLBACK)
    converse(runtime.model, [{"text": "Shipped."}], "end_turn", model=FALLBACK)
    answered, answer = runtime.post({"prompt": "hi", "models": [MODEL, FALLBACK]}, runtime.caller())
    assert (answered, answer["model"], answer["answer"], answer["stop"]) == (200, FALLBACK, "Shipped.", "end_turn")
    assert [(c["name"], c["ok"]) for c in answer["tool_calls"]] == [(FIND_ORDERS, True)]
    assert asked == [MODEL, FALLBACK, FALLBACK]  # the failed model is not asked again in the turn


def test_a_model_failing_mid_turn_hands_the_conversation_so_far_to_the_next(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    asked = models_asked(runtime)
    runtime.tools.results[FIND_ORDERS] = {"records": [{"order_id": "O-1", "status": "shipped"}]}
    converse(runtime.model, [tool_use(FIND_ORDERS, {"customer_email": "a@example.com"})], "tool_use")
    runtime.model.add_client_error("converse", "ServiceUnavailableException", http_status_code=503)
    seen = Captured()
    converse(runtime.model, [{"text": "Shipped."}], "end_turn", model=FALLBACK, messages=seen)
    status, answer = runtime.post({"prompt": "hi", "models": [MODEL, FALLBACK]}, runtime.caller())
    assert (status, answer["model"], answer["answer"], answer["iterations"]) == (200, FALLBACK, "Shipped.", 2)
    assert asked == [MODEL, MODEL, FALLBACK]
    # The next model continues the turn: it gets the tool call and its result, not a fresh start.
    result = seen.values[0][-1]["content"][0]["toolResult"]
    assert json.loads(result["content"][0]["text"]) == runtime.tools.results[FIND_ORDERS]
    assert runtime.tools.calls().count("tools/call") == 1


@pytest.mark.parametrize(
    ("code", "status", "answer", "error"),
    [
        ("TooManyRequestsException", 429, 429, "model_unavailable"),
        ("InternalFailure", 500, 502, "model_unavailable"),
        ("ValidationException", 400, 400, "model_rejected"),
    ],
)
def test_a_model_failure_no_model_can_get_past_is_a_json_error_the_gateway_can_classify(
    code: str, status: int, answer: int, error: str, runtime: Runtime
) -> None:
    memory_is_empty(runtime.memory)
    runtime.model.add_client_error("converse", code, http_status_code=status)  # the group's one default model
    assert runtime.post({"prompt": "hi"}, runtime.caller()) == (
        answer,
        {"error": error, "message": f"bedrock-runtime failed with {code}", "session_id": SESSION},
    )


@pytest.mark.parametrize(
    ("code", "status", "answer", "error"),
    [
        ("ThrottlingException", 429, 429, "model_unavailable"),
        ("ServiceUnavailableException", 503, 502, "model_unavailable"),
        ("ValidationException", 400, 400, "model_rejected"),
    ],
)
def test_a_model_failure_after_a_tool_call_is_the_same_json_error_as_on_the_first_call(
    code: str, status: int, answer: int, error: str, runtime: Runtime
) -> None:
    # Strands wraps a failure in the turn's second cycle in an EventLoopException: still the model's.
    memory_is_empty(runtime.memory)
    runtime.tools.results[FIND_ORDERS] = {"records": []}
    converse(runtime.model, [tool_use(FIND_ORDERS, {"customer_email": "a@example.com"})], "tool_use")
    runtime.model.add_client_error("converse", code, http_status_code=status)
    assert runtime.post({"prompt": "hi"}, runtime.caller()) == (
        answer,
        {"error": error, "message": f"bedrock-runtime failed with {code}", "session_id": SESSION},
    )


@pytest.mark.parametrize(
    ("code", "status", "answer", "error"),
    [
        ("ValidationException", 400, 400, "model_rejected"),  # the conversation itself: malformed, too long
        # The platform's set-up, as on the gateway's own model path (UpstreamError.as_platforms): a 502.
        ("AccessDeniedException", 403, 502, "model_unavailable"),  # the agent's role may not use the model
        ("ResourceNotFoundException", 404, 502, "model_unavailable"),  # a model the region does not serve
    ],
)
def test_a_rejected_request_is_not_retried_on_another_model(
    code: str, status: int, answer: int, error: str, runtime: Runtime
) -> None:
    memory_is_empty(runtime.memory)
    asked = models_asked(runtime)
    runtime.model.add_client_error("converse", code, http_status_code=status)
    answered = runtime.post({"prompt": "hi", "models": [MODEL, FALLBACK]}, runtime.caller())
    assert answered == (
        answer,
        {"error": error, "message": f"bedrock-runtime failed with {code}", "session_id": SESSION},
    )
    assert asked == [MODEL]  # FALLBACK was never asked
    assert runtime.tools.calls().count("tools/call") == 0


def test_the_deadline_cancels_the_turn_before_the_next_tool_and_model_call(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    converse(runtime.model, [tool_use(FIND_ORDERS, {"customer_email": "a@example.com"})], "tool_use")
    # The first model call takes the turn past its deadline.
    runtime.model_client.meta.events.register(
        "after-call.bedrock-runtime.Converse", lambda **_: runtime.clock.advance(10_000.0)
    )
    status, answer = runtime.post({"prompt": "hi", "turn_seconds": 30}, runtime.caller())
    assert (status, answer["stop"], answer["answer"]) == (200, "deadline", STOPPED_ANSWER)
    # Whether the turn answers from its poll of the clock or after the agent's own tool hook ran is a
    # race between two threads (both at the deadline); either way the tool was never called and is
    # never reported as called. The hook's own record is pinned below, without threads.
    calls = [(c["name"], c["ok"], c["error_kind"]) for c in answer["tool_calls"]]
    assert calls in ([], [(FIND_ORDERS, False, "deadline")])
    assert "tools/call" not in runtime.tools.calls()


def test_past_the_deadline_the_hooks_cancel_the_model_call_and_the_tool_call_and_record_the_tool() -> None:
    bounds = TurnBounds(deadline=30.0, clock=lambda: 30.0)
    model_call = SimpleNamespace(cancel=False)
    tool_call = SimpleNamespace(tool_use={"name": FIND_ORDERS, "toolUseId": "t1", "input": {"a": 1}}, cancel_tool=False)
    bounds._before_model(cast(Any, model_call))
    bounds._before_tool(cast(Any, tool_call))
    assert model_call.cancel == STOPPED_ANSWER  # the call is never sent; the turn's answer is this
    assert tool_call.cancel_tool == "out of time"
    assert [(c.name, c.arguments, c.ok, c.error_kind) for c in bounds.calls] == [
        (FIND_ORDERS, {"a": 1}, False, "deadline")
    ]
    assert bounds.out_of_time


def test_before_the_deadline_the_hooks_let_the_calls_run() -> None:
    bounds = TurnBounds(deadline=30.0, clock=lambda: 29.9)
    model_call = SimpleNamespace(cancel=False)
    tool_call = SimpleNamespace(tool_use={"name": FIND_ORDERS, "toolUseId": "t1", "input": {}}, cancel_tool=False)
    bounds._before_model(cast(Any, model_call))
    bounds._before_tool(cast(Any, tool_call))
    assert (model_call.cancel, tool_call.cancel_tool, bounds.calls, bounds.out_of_time) == (False, False, [], False)


def test_a_call_still_running_at_the_deadline_is_recorded_as_the_turns_failed_by_the_deadline() -> None:
    """The tools gateway took the call: the answer's record of tool calls names it (it was left out)."""
    now = [10.0]
    bounds = TurnBounds(deadline=30.0, clock=lambda: now[0])
    running = SimpleNamespace(tool_use={"name": FIND_ORDERS, "toolUseId": "t1", "input": {"a": 1}}, cancel_tool=False)
    bounds._before_tool(cast(Any, running))
    now[0] = 31.5
    assert bounds.calls == []
    assert [(c.name, c.arguments, c.ok, c.error_kind, c.latency_ms) for c in bounds.abandoned()] == [
        (FIND_ORDERS, {"a": 1}, False, "deadline", 21500.0)
    ]


@pytest.mark.parametrize("given", ["abc", 5, ["ab"], True, None])
def test_a_tool_use_whose_input_is_not_an_object_is_recorded_with_no_arguments(given: Any) -> None:
    """A model may write any JSON as a tool's input: recorded as none (["ab"] read as {"a": "b"} before,
    and "abc" raised inside the hook, leaving the call out of the record)."""
    bounds = TurnBounds(deadline=30.0, clock=lambda: 30.0)
    call = SimpleNamespace(tool_use={"name": FIND_ORDERS, "toolUseId": "t1", "input": given}, cancel_tool=False)
    bounds._before_tool(cast(Any, call))
    assert [(c.name, c.arguments) for c in bounds.calls] == [(FIND_ORDERS, {})]


def test_an_answer_holding_a_lone_surrogate_is_answered_with_a_replacement_character(runtime: Runtime) -> None:
    """JSON can carry half a surrogate pair; UTF-8 cannot: the SDK's encoding failed into a 500 quoting it."""
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "ok \ud800 done"}], "end_turn")
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert (status, answer["answer"]) == (200, "ok \ufffd done")


def test_a_refusal_after_a_turn_names_no_conversation_but_its_own(
    runtime: Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    """The logger's conversation key was global: a refusal (or another request's lines) carried the
    previous turn's conversation id."""
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "Hello."}], "end_turn")
    assert runtime.post({"prompt": "hi"}, runtime.caller())[0] == 200
    capsys.readouterr()
    other = "session-other-0000000000000000000"
    status, _ = runtime.post({"prompt": "hi"}, {CALLER_TOKEN_HEADER: "forged", SESSION_HEADER: other})
    assert status == 401
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    # This request's refusal (a line another test's server writes meanwhile is not this one's).
    refused = [line for line in lines if line.get("message") == "refused" and line.get("session_id") == other]
    assert len(refused) == 1
    assert refused[0].get(CONVERSATION) in (None, other)


def test_the_turn_answers_by_its_deadline_while_a_model_call_hangs(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "Too late."}], "end_turn")
    release = threading.Event()
    hung: list[bool] = []

    def hang(**_: Any) -> None:  # Bedrock not answering (until the test ends) while the time runs out
        hung.append(True)
        runtime.clock.advance(10_000.0)
        release.wait(30)

    runtime.model_client.meta.events.register("before-parameter-build.bedrock-runtime.Converse", hang)
    try:
        status, answer = runtime.post({"prompt": "hi", "turn_seconds": 30}, runtime.caller())
    finally:
        release.set()
    assert hung == [True]
    assert (status, answer["stop"], answer["answer"]) == (200, "deadline", STOPPED_ANSWER)


@pytest.mark.parametrize("runtime", [{"max_iterations": 2}], indirect=True)
def test_iterations_are_bounded_and_the_last_ones_tool_calls_are_never_made(runtime: Runtime) -> None:
    """No model call reads what the last one's tool calls would answer: they were made all the same,
    through the tools gateway as the caller."""
    memory_is_empty(runtime.memory)
    runtime.tools.results[FIND_ORDERS] = {"records": []}
    converse(runtime.model, [tool_use(FIND_ORDERS, {"customer_email": "a@example.com"}, "t1")], "tool_use")
    last = [tool_use(FIND_ORDERS, {"customer_email": f"{n}@example.com"}, f"t2-{n}") for n in range(3)]
    converse(runtime.model, last, "tool_use")
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert (status, answer["stop"], answer["iterations"], answer["answer"]) == (
        200,
        "max_iterations",
        2,
        STOPPED_ANSWER,
    )
    assert runtime.tools.calls().count("tools/call") == 1
    assert [(c["ok"], c["error_kind"], c["latency_ms"]) for c in answer["tool_calls"]] == [
        (True, None, ANY),
        *[(False, "max_iterations", None)] * 3,
    ]


def test_one_answer_asking_for_many_tool_calls_gets_the_turns_budget_and_the_model_is_told_why(
    runtime: Runtime,
) -> None:
    """A model answer may ask for any number of tool calls (a retrieved document's text can ask for
    hundreds): 60 were all made through the tools gateway, as the caller."""
    memory_is_empty(runtime.memory)
    budget = Settings.model_fields["max_tool_calls"].default
    runtime.tools.results[FIND_ORDERS] = {"records": []}
    asked = [tool_use(FIND_ORDERS, {"customer_email": f"{n}@example.com"}, f"t{n}") for n in range(60)]
    converse(runtime.model, asked, "tool_use")
    fed_back = Captured()
    converse(runtime.model, [{"text": "Done."}], "end_turn", messages=fed_back)
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert (status, answer["stop"], answer["answer"]) == (200, "end_turn", "Done.")
    assert runtime.tools.calls().count("tools/call") == budget == 20
    assert sorted((c["ok"], c["error_kind"] or "") for c in answer["tool_calls"]) == sorted(
        [(True, "")] * budget + [(False, "max_tool_calls")] * (60 - budget)
    )
    (messages,) = fed_back.values
    texts = [block["toolResult"]["content"][0].get("text") for block in messages[-1]["content"]]
    assert len(texts) == 60
    assert texts.count(TOOL_BUDGET_RESULT.format(budget)) == 60 - budget


def test_the_tool_call_budget_counts_the_calls_made_not_those_refused() -> None:
    agent = SimpleNamespace(event_loop_metrics=SimpleNamespace(latest_agent_invocation=SimpleNamespace(cycles=[1])))
    bounds = TurnBounds(deadline=30.0, clock=lambda: 10.0, max_iterations=3, max_tool_calls=2)

    def asked(n: int) -> Any:
        use = {"name": FIND_ORDERS, "toolUseId": f"t{n}", "input": {}}
        event = SimpleNamespace(agent=agent, tool_use=use, cancel_tool=False)
        bounds._before_tool(cast(Any, event))
        return event.cancel_tool

    assert [asked(n) for n in range(4)] == [False, False, *[TOOL_BUDGET_RESULT.format(2)] * 2]
    assert [c.error_kind for c in bounds.calls] == ["max_tool_calls"] * 2
    agent.event_loop_metrics.latest_agent_invocation.cycles = [1, 2, 3]  # the last model call's
    bounds = TurnBounds(deadline=30.0, clock=lambda: 10.0, max_iterations=3, max_tool_calls=2)
    assert asked(5) == LAST_ITERATION_RESULT
    assert [c.error_kind for c in bounds.calls] == ["max_iterations"]


def test_the_session_is_bound_to_its_first_callers_user_and_group(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "Hello."}], "end_turn")
    assert runtime.post({"prompt": "hi"}, runtime.caller())[0] == 200
    for other in (runtime.caller(sub="user-2"), runtime.caller(gateway_group="platform-admins")):
        status, answer = runtime.post({"prompt": "hi"}, other)
        assert (status, answer["error"], answer["session_id"]) == (409, "session_bound", SESSION)


def test_the_caller_may_pick_only_its_groups_models(runtime: Runtime) -> None:
    status, answer = runtime.post({"prompt": "hi", "models": ["amazon.nova-micro-v1:0"]}, runtime.caller())
    assert (status, answer["error"]) == (403, "model_forbidden")
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "Hello."}], "end_turn", model=FALLBACK)
    status, answer = runtime.post({"prompt": "hi", "models": [FALLBACK]}, runtime.caller())
    assert (status, answer["model"]) == (200, FALLBACK)


# --- the trust boundary: only a token the gateway forwards, verified here, gets anything --------


def test_a_direct_call_with_a_valid_user_token_gets_no_turn_and_no_tools(runtime: Runtime) -> None:
    # What a user holding a valid token could send if the runtime were reachable: no forwarded token.
    status, answer = runtime.post(
        {"prompt": "hi"}, {"Authorization": f"Bearer {runtime.token()}", SESSION_HEADER: SESSION}
    )
    assert (status, answer["error"]) == (401, "unauthorized")
    assert runtime.tools.seen == []


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({"exp": int(time.time()) - 3600}, id="expired"),
        pytest.param({"iss": "https://cognito-idp.us-east-1.amazonaws.com/other_pool"}, id="another-issuer"),
        pytest.param({"client_id": "another-client"}, id="another-client"),
        pytest.param({"token_use": "id"}, id="an-id-token"),
    ],
)
def test_a_forged_or_expired_forwarded_token_gets_no_tools(runtime: Runtime, forged: dict[str, Any]) -> None:
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller(**forged))
    assert (status, answer["error"]) == (401, "unauthorized")
    assert runtime.tools.seen == []


def test_a_token_signed_by_another_key_gets_no_tools(runtime: Runtime, cognito: tuple[str, list[str]]) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    headers = {CALLER_TOKEN_HEADER: sign(other, cognito[0]), SESSION_HEADER: SESSION}
    status, answer = runtime.post({"prompt": "hi"}, headers)
    assert (status, answer["error"]) == (401, "unauthorized")
    assert runtime.tools.seen == []


@pytest.mark.parametrize(
    ("body", "claims", "status", "error"),
    [
        ({"prompt": "hi"}, {"gateway_group": None}, 403, "forbidden"),
        ({"prompt": "hi"}, {"gateway_group": "customer-basic"}, 403, "forbidden"),
        ({"prompt": ""}, {}, 400, "invalid_request"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, {}, 400, "invalid_request"),
        ({"prompt": "hi", "max_tokens": 0}, {}, 400, "invalid_request"),
        ({"prompt": "hi", "max_tokens": True}, {}, 400, "invalid_request"),
        ({"prompt": "hi", "instructions": 7}, {}, 400, "invalid_request"),
        ({"prompt": "hi", "turn_seconds": -1}, {}, 400, "invalid_request"),
        ([1, 2], {}, 400, "invalid_request"),
    ],
)
def test_bad_invocations_get_a_json_4xx(
    body: Any, claims: dict[str, Any], status: int, error: str, runtime: Runtime
) -> None:
    assert runtime.post(body, runtime.caller(**claims))[0] == status
    assert runtime.post(body, runtime.caller(**claims))[1]["error"] == error


def test_a_body_that_is_not_json_gets_a_400(runtime: Runtime) -> None:
    status, _ = runtime.post(b"{nope", runtime.caller())
    assert status == 400


# --- the groups it serves: its entry in the groups document -----------------------------------


def test_a_group_outside_the_agents_entry_is_refused_even_if_another_agent_serves_it(runtime: Runtime) -> None:
    # customer-basic is in the document, under another agent: not this one's.
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller(gateway_group="customer-basic"))
    assert (status, answer["error"], answer["session_id"]) == (403, "forbidden", SESSION)
    assert "customer-gold" not in answer["message"]  # the groups it does serve are not named
    assert runtime.tools.seen == []
    assert runtime.documents.fetched == [LOCATION]


def test_an_agent_with_no_entry_serves_no_group(runtime: Runtime) -> None:
    runtime.documents.document = AgentGroups(agents={"report_writer": DOCUMENT.agents["report_writer"]})
    for group in ("customer-gold", "platform-admins", "customer-basic"):
        status, answer = runtime.post({"prompt": "hi"}, runtime.caller(gateway_group=group))
        assert (status, answer["error"]) == (403, "forbidden")
    assert runtime.tools.seen == []


def test_a_group_taken_off_the_agent_is_refused_at_the_next_read(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "Hello."}], "end_turn")
    assert runtime.post({"prompt": "hi"}, runtime.caller())[0] == 200
    runtime.documents.document = AgentGroups(agents={AGENT: {"platform-admins": GROUPS["platform-admins"]}})
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert (status, answer["error"]) == (403, "forbidden")


def test_no_readable_document_is_a_json_503_and_no_turn(runtime: Runtime) -> None:
    runtime.documents.document = None  # never deployed yet, or the store unreachable at start-up
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert (status, answer) == (
        503,
        {
            "error": "config_unavailable",
            "message": "the agent's configuration is not available yet; retry",
            "session_id": SESSION,
        },
    )
    assert runtime.tools.seen == []


def test_once_read_the_document_outlives_an_unreachable_store(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "Hello."}], "end_turn")
    assert runtime.post({"prompt": "hi"}, runtime.caller())[0] == 200
    runtime.documents.document = None
    memory_is_empty(runtime.memory)
    converse(runtime.model, [{"text": "Hello again."}], "end_turn")
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert (status, answer["answer"]) == (200, "Hello again.")


@pytest.mark.usefixtures("failed_tools_session")
def test_a_tools_gateway_failure_is_a_502_with_the_session(runtime: Runtime) -> None:
    memory_is_empty(runtime.memory)
    runtime.tools.unavailable = True
    status, answer = runtime.post({"prompt": "hi"}, runtime.caller())
    assert (status, answer["error"], answer["session_id"]) == (502, "tools_unavailable", SESSION)


# --- memory: read per turn, scoped to group and user; written by the gateway, never here --------

SESSION_EVENTS = {"sessionId": SESSION, "includePayloads": True, "maxResults": 2}
REMEMBERED = "What you remember about this user (from earlier sessions):\n"


def record(text: str, score: float) -> dict[str, Any]:
    return {
        "memoryRecordId": f"mem-{score:<040}",
        "content": {"text": text},
        "memoryStrategyId": "facts",
        "namespaces": [f"/actors/{ACTOR}/facts"],
        "createdAt": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        "score": score,
    }


def test_memory_brings_back_the_sessions_turns_and_what_is_known_of_the_caller(runtime: Runtime) -> None:
    earlier = [
        {
            "memoryId": MEMORY_ID,
            "actorId": ACTOR,
            "sessionId": SESSION,
            "eventId": f"e-{n}",
            "eventTimestamp": dt.datetime(2026, 11, 29, 10, n, tzinfo=dt.UTC),
            "payload": [
                {"conversational": {"role": "USER", "content": {"text": f"question {n}"}}},
                {"conversational": {"role": "ASSISTANT", "content": {"text": f"answer {n}"}}},
            ],
        }
        for n in (3, 1, 2)  # out of order: the agent sorts by time and keeps the last two
    ]
    runtime.memory.add_response(
        "list_events", {"events": earlier}, {"memoryId": MEMORY_ID, "actorId": ACTOR, **SESSION_EVENTS}
    )
    runtime.memory.add_response(
        "retrieve_memory_records",
        {"memoryRecordSummaries": [record("prefers e-mail", 0.4), record("ships to Lisbon", 0.9)]},
        {"memoryId": MEMORY_ID, "namespace": f"/actors/{ACTOR}/facts", "searchCriteria": ANY, "maxResults": 2},
    )
    runtime.memory.add_client_error("retrieve_memory_records", "ThrottlingException", http_status_code=429)
    history = [
        {"role": role, "content": [{"text": f"{kind} {n}"}]}
        for n in (2, 3)
        for role, kind in (("user", "question"), ("assistant", "answer"))
    ]
    asked = {"role": "user", "content": [{"text": "And the next one?"}]}
    system = [{"text": "You help customers.\n\nPlan a reply.\n\n" + REMEMBERED + "- ships to Lisbon\n- prefers e-mail"}]
    converse(runtime.model, [{"text": "Also shipped."}], "end_turn", messages=[*history, asked], system=system)
    status, answer = runtime.post({"prompt": "And the next one?", "instructions": "Plan a reply."}, runtime.caller())
    assert (status, answer["answer"]) == (200, "Also shipped.")


def test_a_caller_sending_the_whole_conversation_gets_no_second_copy_from_memory(runtime: Runtime) -> None:
    for _ in NAMESPACES:  # no list_events: the history came with the request
        runtime.memory.add_response("retrieve_memory_records", {"memoryRecordSummaries": []}, None)
    sent = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    expected = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in sent]
    converse(runtime.model, [{"text": "Goodbye."}], "end_turn", messages=expected, inferenceConfig={"maxTokens": 300})
    assert runtime.post({"messages": sent, "max_tokens": 300}, runtime.caller())[0] == 200


def test_a_turn_asked_without_memory_reads_no_history_and_recalls_nothing(runtime: Runtime) -> None:
    """An evaluation case (the gateway sends memory: false): its logged tool arguments must come
    from the golden prompt alone. The memory stub holds no answer: any call to it would fail."""
    asked = [{"role": "user", "content": [{"text": "Which orders shipped?"}]}]
    converse(runtime.model, [{"text": "Two."}], "end_turn", messages=asked, system=[{"text": "You help customers."}])
    status, answer = runtime.post({"prompt": "Which orders shipped?", "memory": False}, runtime.caller())
    assert (status, answer["answer"]) == (200, "Two.")


def test_memory_failures_do_not_fail_the_turn(runtime: Runtime) -> None:
    runtime.memory.add_client_error("list_events", "ServiceUnavailableException", http_status_code=503)
    for _ in NAMESPACES:
        runtime.memory.add_client_error("retrieve_memory_records", "AccessDeniedException", http_status_code=403)
    converse(runtime.model, [{"text": "Hello."}], "end_turn", messages=[{"role": "user", "content": [{"text": "hi"}]}])
    assert runtime.post({"prompt": "hi"}, runtime.caller())[0] == 200


def test_the_settings_are_read_from_the_environment_the_runtime_is_given() -> None:
    environment = {
        "AGENT_NAME": "support",
        "TOOLS_GATEWAY_URL": "https://gw.example.com/mcp",
        "TOKEN_ISSUER": "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool",
        "TOKEN_CLIENT_ID": CLIENT_ID,
        "GROUPS": LOCATION.model_dump_json(),
        "TURN_SECONDS": "90",
        "MEMORY_ID": MEMORY_ID,
        "MEMORY_NAMESPACES": json.dumps(list(NAMESPACES)),
        "MEMORY_HISTORY_TURNS": "2",
    }
    settings = Settings.from_environ(environment)
    assert settings.groups == LOCATION
    assert (settings.turn_seconds, settings.memory_namespaces, settings.memory_history_turns) == (90.0, NAMESPACES, 2)
    assert (settings.max_iterations, settings.memory_recall_records) == (6, 5)  # the model's defaults
    assert Settings.from_environ(settings.environment()) == settings
    for required in ("GROUPS", "TOKEN_ISSUER"):
        with pytest.raises(SettingsError, match=required):
            Settings.from_environ({k: v for k, v in environment.items() if k != required})


# --- lazy imports: Strands (about a second) is loaded after the first /ping, never before it ----

ROOT = Path(__file__).resolve().parents[2]
# The folder the agent package was imported from: lambdas/ (src/ in a mutation run's copy, whose
# code is the mutated one the probe must run too).
LAMBDAS = Path(inspect.getfile(Service)).parents[1]
FACTS = "FACTS "
# Run in a fresh interpreter, so that no other test's imports are in sys.modules. "ping": the entry
# module as the runtime runs it (its server taken over to serve on loopback), then one /ping while
# the import of Strands is held: a /ping that needed Strands would never be answered. "turn": a
# first turn, with no /ping before it, must load Strands itself.
IMPORT_PROBE = """
import importlib.abc, json, os, runpy, sys, threading
from contextlib import contextmanager

import urllib3

mode = sys.argv[1]
let_go = threading.Event()
importers = []


class HoldStrands(importlib.abc.MetaPathFinder):
    # sys.modules has no "strands" until find_spec returns: while held, Strands is not loaded.
    def find_spec(self, name, path=None, target=None):
        if name == "strands":
            importers.append(threading.current_thread().name)
            if not let_go.wait(30):
                raise ImportError("strands: held too long")
        return None


sys.meta_path.insert(0, HoldStrands())
facts = {}
if mode == "ping":
    from bedrock_agentcore.runtime import BedrockAgentCoreApp

    from tests.lambdas.loopback import serve_asgi

    started = []
    BedrockAgentCoreApp.run = lambda app, port=8080, host=None, **_: started.append((app, port, host))
    os.environ["AGENT_PORT"] = "18080"
    runpy.run_module("agent", run_name="__main__")
    ((app, port, host),) = started
    facts["served_as"] = [port, host]
    facts["after_import"] = "strands" in sys.modules
    with serve_asgi(app) as base:
        try:
            ping = urllib3.PoolManager().request("GET", f"{base}/ping", timeout=10.0, retries=False)
            facts["ping"] = [ping.status, json.loads(ping.data)["status"]]
            facts["after_ping"] = "strands" in sys.modules
        finally:
            let_go.set()
        for thread in threading.enumerate():
            if thread.name == "warm-up":
                thread.join(30)
        facts["after_warm_up"] = "strands" in sys.modules
else:
    let_go.set()
    import boto3
    from botocore.stub import Stubber

    from agent.app import Service, create_app
    from agent.contract import AgentGroups, GroupModels, Settings
    from shared.headers import AGENT_SESSION_HEADER, CALLER_TOKEN_HEADER
    from shared.runtime_config import ConfigLocation, DocumentReader
    from shared.tokens import GROUP_CLAIM
    from tests.lambdas.bedrock_fakes import converse_answer
    from tests.lambdas.loopback import serve_asgi

    facts["after_import"] = "strands" in sys.modules
    model = "amazon.nova-pro-v1:0"
    bedrock = boto3.client("bedrock-runtime", region_name="us-east-1")
    stubber = Stubber(bedrock)
    stubber.add_response("converse", converse_answer([{"text": "Hello."}]))
    stubber.activate()
    location = ConfigLocation(application="a", environment="e", profile="p", environment_name="agents")
    groups = AgentGroups(
        agents={"support": {"customer-gold": GroupModels(allowed=(model,), default=model)}},
        prompts={"support": "You help."},
    )
    settings = Settings(
        agent_name="support", tools_gateway_url="http://127.0.0.1:9/mcp",
        token_issuer="https://issuer.example.com/pool", token_client_id="client", groups=location,
    )

    class Verified:  # the forwarded token taken as verified (verification has its own tests)
        def claims(self, token):
            return {"sub": "user-1", GROUP_CLAIM: "customer-gold"}

    @contextmanager
    def no_tools(token, session_id, seconds_left, passage):
        yield []

    reader = DocumentReader(location, AgentGroups, fetch=lambda _: groups.model_dump_json())
    service = Service(settings, bedrock, Verified(), no_tools, reader)
    with serve_asgi(create_app(lambda: service)) as base:
        facts["after_serving"] = "strands" in sys.modules
        turn = urllib3.PoolManager().request(
            "POST", f"{base}/invocations", body=json.dumps({"prompt": "hi"}).encode(), timeout=30.0,
            headers={"Content-Type": "application/json", CALLER_TOKEN_HEADER: "t", AGENT_SESSION_HEADER: "session-" + "0" * 32},
        )
        facts["turn"] = [turn.status, json.loads(turn.data).get("answer")]
    facts["after_turn"] = "strands" in sys.modules
facts["importers"] = importers
print("FACTS " + json.dumps(facts), flush=True)
"""


def probe_imports(mode: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(LAMBDAS)])}
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE, mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [line for line in done.stdout.splitlines() if line.startswith(FACTS)]
    facts: dict[str, Any] = json.loads(line.removeprefix(FACTS))
    return facts


def test_the_entry_module_answers_its_first_ping_before_strands_is_loaded_and_loads_it_after() -> None:
    facts = probe_imports("ping")
    assert facts["served_as"] == [18080, "0.0.0.0"]  # AGENT_PORT, and the runtime contract's host
    assert facts["after_import"] is False
    assert facts["ping"] == [200, "Healthy"]
    assert facts["after_ping"] is False
    # Loaded off the request path, by the warm-up the first /ping started.
    assert facts["after_warm_up"] is True
    assert facts["importers"] == ["warm-up"]


def test_with_no_ping_before_it_the_first_turn_loads_strands() -> None:
    facts = probe_imports("turn")
    assert facts["after_import"] is False
    assert facts["after_serving"] is False
    assert facts["turn"] == [200, "Hello."]
    assert facts["after_turn"] is True
    assert len(facts["importers"]) == 1
    assert facts["importers"] != ["warm-up"]
