"""The agent turn: Converse tool use against Stubber, MCP discovery over real loopback HTTP."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import boto3
import jwt
import pytest
import urllib3
from botocore.stub import ANY, Stubber

from agent.contract import GroupModels, Settings
from agent.loop import STOPPED_ANSWER, run_turn
from agent.mcp_client import McpClient
from agent.memory import SessionMemory
from agent.server import Agent, handler_class
from shared.aws_errors import Kind, UpstreamError
from shared.contract import SettingsError
from shared.headers import AGENT_SESSION_HEADER as SESSION_HEADER
from shared.tokens import GROUP_CLAIM
from tests.lambdas.loopback import QuietHandler, loopback

MODEL = "amazon.nova-pro-v1:0"
FALLBACK = "amazon.nova-lite-v1:0"
SESSION = "session-0123456789abcdef0123456789abcdef"
TOOLS = [
    {
        "name": "orders___find_orders",
        "description": "Orders of a customer",
        "inputSchema": {
            "type": "object",
            "properties": {"customer_email": {"type": "string"}},
            "required": ["customer_email"],
        },
    },
    {
        "name": "knowledge___knowledge_search",
        "description": "Search documents",
        "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}}},
    },
]


class FakeGateway:
    """Loopback MCP server: records the caller's token on every request; failures can be set."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None, str | None]] = []
        self.results: dict[str, Any] = {}
        self.sse = False
        self.failure: tuple[int, bytes] | None = None  # (HTTP status, body) for every request

    def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["method"] == "tools/list":
            return {"jsonrpc": "2.0", "id": request["id"], "result": {"tools": TOOLS}}
        name = request["params"]["name"]
        if name not in self.results:
            return {
                "jsonrpc": "2.0",
                "id": request["id"],
                "error": {"code": -32001, "message": f"tool {name} is not available to this caller"},
            }
        text = json.dumps(self.results[name])
        return {
            "jsonrpc": "2.0",
            "id": request["id"],
            "result": {"content": [{"type": "text", "text": text}], "isError": "error" in self.results[name]},
        }


@pytest.fixture
def gateway() -> Iterator[tuple[str, FakeGateway]]:
    fake = FakeGateway()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.seen.append(
                (request["method"], self.headers.get("Authorization"), self.headers.get("MCP-Protocol-Version"))
            )
            body = json.dumps(fake.answer(request))
            data = f"event: message\ndata: {body}\n\n".encode() if fake.sse else body.encode()
            status = 200
            if fake.failure:
                status, data = fake.failure
            self.send_response(status)
            self.send_header("Content-Type", "text/event-stream" if fake.sse else "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with loopback(Handler) as url:
        yield f"{url}/mcp", fake


def converse(
    stubber: Stubber,
    content: list[dict[str, Any]],
    stop: str,
    expected_messages: Any = ANY,
    *,
    model: str = MODEL,
    system: Any = ANY,
    **extra: Any,
) -> None:
    stubber.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120},
            "metrics": {"latencyMs": 10},
        },
        {
            "modelId": model,
            "system": system,
            "messages": expected_messages,
            "requestMetadata": {"session_id": SESSION},
            "toolConfig": ANY,
            **extra,
        },
    )


def tool_use(name: str, arguments: dict[str, Any], use_id: str = "t1") -> dict[str, Any]:
    return {"toolUse": {"toolUseId": use_id, "name": name, "input": arguments}}


def after_tool_result(result: dict[str, Any], status: str) -> list[Any]:
    """The conversation the model sees next: the question, its tool use, and the tool's result."""
    content = [{"toolResult": {"toolUseId": "t1", "content": [{"json": result}], "status": status}}]
    return [ANY, ANY, {"role": "user", "content": content}]


def ask(client: Any, tools: McpClient, **kwargs: Any) -> Any:
    messages = [{"role": "user", "content": [{"text": "Where is my last order? I am ada@example.com"}]}]
    kwargs.setdefault("models", [MODEL])
    kwargs.setdefault("max_iterations", Settings.model_fields["max_iterations"].default)
    return run_turn(client, tools, system="You help customers.", messages=messages, session_id=SESSION, **kwargs)


def test_the_model_picks_a_tool_the_gateway_listed_and_answers_from_its_result(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, fake = gateway
    fake.results["orders___find_orders"] = {"records": [{"order_id": "O-00149", "status": "shipped"}], "total": 150}
    converse(stubber, [tool_use("orders___find_orders", {"customer_email": "ada@example.com"})], "tool_use")
    after_tool = after_tool_result(fake.results["orders___find_orders"], "success")
    converse(stubber, [{"text": "Order O-00149 has shipped."}], "end_turn", after_tool)
    turn = ask(client, McpClient(url, token="caller-token"))
    assert (turn.answer, turn.stop, turn.iterations) == ("Order O-00149 has shipped.", "end_turn", 2)
    assert [(c.name, c.arguments, c.ok) for c in turn.tool_calls] == [
        ("orders___find_orders", {"customer_email": "ada@example.com"}, True)
    ]
    assert (turn.input_tokens, turn.output_tokens) == (200, 40)
    # Discovery and the call went to the gateway as the caller.
    assert fake.seen == [
        ("tools/list", "Bearer caller-token", "2025-06-18"),
        ("tools/call", "Bearer caller-token", "2025-06-18"),
    ]


def test_a_tool_error_is_surfaced_to_the_model_and_recorded(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, fake = gateway
    fake.results["orders___find_orders"] = {
        "error": {"kind": "not_found", "message": "no customer has that e-mail address"}
    }
    converse(stubber, [tool_use("orders___find_orders", {"customer_email": "x@example.com"})], "tool_use")
    surfaced = after_tool_result(fake.results["orders___find_orders"], "error")
    converse(stubber, [{"text": "I can't find that customer."}], "end_turn", surfaced)
    turn = ask(client, McpClient(url, token="t"))
    assert [(c.ok, c.error_kind) for c in turn.tool_calls] == [(False, "not_found")]


def test_a_tool_the_gateway_refuses_comes_back_as_forbidden(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, _ = gateway  # no results: every call is refused with the interceptor's MCP error
    converse(stubber, [tool_use("customers___get_customer", {"customer_id": "C-1"})], "tool_use")
    converse(stubber, [{"text": "I may not look that up."}], "end_turn")
    turn = ask(client, McpClient(url, token="t"))
    assert [(c.ok, c.error_kind) for c in turn.tool_calls] == [(False, "forbidden")]


def test_iterations_are_bounded(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, fake = gateway
    fake.results["knowledge___knowledge_search"] = {"passages": [], "returned": 0}
    for number in range(3):
        converse(stubber, [tool_use("knowledge___knowledge_search", {"query": "again"}, f"t{number}")], "tool_use")
    turn = ask(client, McpClient(url, token="t"), max_iterations=3)
    assert (turn.stop, turn.iterations, turn.answer, len(turn.tool_calls)) == ("max_iterations", 3, STOPPED_ANSWER, 3)


def test_the_deadline_stops_the_turn_before_another_model_call(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, fake = gateway
    fake.results["knowledge___knowledge_search"] = {"passages": [], "returned": 0}
    converse(stubber, [tool_use("knowledge___knowledge_search", {"query": "q"})], "tool_use")
    times = iter([0.0, 0.0, 100.0])  # before the first model call, before its tool call, then late
    turn = ask(client, McpClient(url, token="t"), deadline=50.0, clock=lambda: next(times))
    assert (turn.stop, turn.iterations) == ("deadline", 1)


def test_server_sent_events_are_read_too(gateway: Any) -> None:
    url, fake = gateway
    fake.sse = True
    fake.results["knowledge___knowledge_search"] = {"passages": [], "returned": 0}
    client = McpClient(url, token="t")
    assert [t["name"] for t in client.list_tools()] == [t["name"] for t in TOOLS]
    assert client.call_tool("knowledge___knowledge_search", {"query": "q"}) == {"passages": [], "returned": 0}


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        ((429, b'{"message": "Too Many Requests"}'), "upstream_unavailable"),
        ((503, b"<html>Service Unavailable</html>"), "upstream_unavailable"),
        ((401, b'{"message": "Unauthorized"}'), "forbidden"),
        ((200, b"not json"), "upstream_unavailable"),
    ],
)
def test_gateway_failures_become_tool_errors_never_empty_successes(
    failure: tuple[int, bytes], kind: str, gateway: Any
) -> None:
    url, fake = gateway
    fake.failure = failure
    result = McpClient(url, token="t").call_tool("knowledge___knowledge_search", {"query": "q"})
    assert result["error"]["kind"] == kind


def test_a_throttled_model_hands_the_rest_of_the_turn_to_the_next(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, fake = gateway
    fake.results["knowledge___knowledge_search"] = {"passages": [], "returned": 0}
    stubber.add_client_error("converse", "ThrottlingException", http_status_code=429)
    converse(stubber, [tool_use("knowledge___knowledge_search", {"query": "q"})], "tool_use", model=FALLBACK)
    converse(stubber, [{"text": "Nothing on that."}], "end_turn", model=FALLBACK)
    turn = ask(client, McpClient(url, token="t"), models=[MODEL, FALLBACK])
    assert (turn.model, turn.answer, turn.iterations) == (FALLBACK, "Nothing on that.", 2)


def test_a_failure_no_other_model_can_help_with_is_raised(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, _ = gateway
    stubber.add_client_error("converse", "ValidationException", http_status_code=400)
    with pytest.raises(UpstreamError) as raised:
        ask(client, McpClient(url, token="t"), models=[MODEL, FALLBACK])
    assert (raised.value.code, raised.value.kind) == ("ValidationException", Kind.REJECTED)


# (error code, HTTP status) after which the next model may answer: every throttling code, a plain 5xx.
FALLS_BACK = [
    ("ThrottlingException", 429),
    ("TooManyRequestsException", 429),
    ("ServiceQuotaExceededException", 400),
    ("InternalFailure", 500),
    ("ServiceUnavailable", 503),
]


@pytest.mark.parametrize(("code", "status"), FALLS_BACK)
def test_the_turn_falls_back_on_each_throttling_code_and_a_plain_5xx(
    code: str, status: int, bedrock: Any, gateway: Any
) -> None:
    client, stubber = bedrock
    url, _ = gateway
    stubber.add_client_error("converse", code, http_status_code=status)
    converse(stubber, [{"text": "From the fallback."}], "end_turn", model=FALLBACK)
    turn = ask(client, McpClient(url, token="t"), models=[MODEL, FALLBACK])
    assert (turn.model, turn.answer) == (FALLBACK, "From the fallback.")


def test_no_fallback_is_started_after_the_deadline(bedrock: Any, gateway: Any) -> None:
    client, stubber = bedrock
    url, _ = gateway
    stubber.add_client_error("converse", "ThrottlingException", http_status_code=429)
    times = iter([0.0, 100.0])  # before the model call; when it has failed, past the deadline
    with pytest.raises(UpstreamError) as raised:
        ask(client, McpClient(url, token="t"), models=[MODEL, FALLBACK], deadline=50.0, clock=lambda: next(times))
    assert raised.value.kind is Kind.THROTTLED


# --- the runtime entrypoint (HTTP protocol contract), over real loopback HTTP -------------------

MEMORY_ID = "genai_agents-AbCdEf0123"
GROUPS = {
    "customer-gold": GroupModels(allowed=(MODEL, FALLBACK), default=MODEL),
    "platform-admins": GroupModels(allowed=(MODEL,), default=MODEL),
}
NAMESPACES = ("/actors/{actorId}/facts", "/actors/{actorId}/sessions/{sessionId}/summary")


def token(sub: str = "user-1", group: str | None = "customer-gold") -> str:
    """A Cognito-shaped access token; the runtime's authorizer checked its signature already."""
    claims = {"sub": sub, "token_use": "access", "client_id": "app-client", "exp": 4_102_444_800}
    if group is not None:
        claims[GROUP_CLAIM] = group
    return jwt.encode(claims, "signature-not-checked-by-the-agent-itself", algorithm="HS256")


def caller(sub: str = "user-1", group: str | None = "customer-gold") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, group)}", SESSION_HEADER: SESSION}


@pytest.fixture
def agentcore() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-agentcore", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


@pytest.fixture
def runtime(bedrock: Any, gateway: Any, agentcore: Any) -> Iterator[tuple[str, Stubber, FakeGateway, Stubber]]:
    client, stubber = bedrock
    url, fake = gateway
    memory_client, memory_stubber = agentcore
    settings = Settings(
        agent_name="support",
        system_prompt="You help customers.",
        tools_gateway_url=url,
        group_models=GROUPS,
        memory_id=MEMORY_ID,
        memory_namespaces=NAMESPACES,
        memory_history_turns=2,
        memory_recall_records=2,
    )
    memory = SessionMemory(memory_client, MEMORY_ID, NAMESPACES, history_turns=2, recall_records=2)
    with loopback(handler_class(Agent(settings, client, memory))) as url:
        yield url, stubber, fake, memory_stubber


def post(base: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    http = urllib3.PoolManager()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = http.request(
        "POST", f"{base}/invocations", body=raw, headers={"Content-Type": "application/json", **(headers or {})}
    )
    return response.status, json.loads(response.data)


ACTOR = "customer-gold/user-1"


def memory_is_empty(memory: Stubber, *, events: list[dict[str, Any]] | None = None) -> None:
    memory.add_response(
        "list_events",
        {"events": events or []},
        {"memoryId": MEMORY_ID, "actorId": ACTOR, "sessionId": SESSION, "includePayloads": True, "maxResults": 2},
    )
    for template in NAMESPACES:
        memory.add_response(
            "retrieve_memory_records",
            {"memoryRecordSummaries": []},
            {
                "memoryId": MEMORY_ID,
                "namespace": template.format(actorId=ACTOR, sessionId=SESSION),
                "searchCriteria": {"searchQuery": ANY, "topK": 2},
                "maxResults": 2,
            },
        )


def remembers(memory: Stubber, question: str, answer: str) -> None:
    memory.add_response(
        "create_event",
        {
            "event": {
                "memoryId": MEMORY_ID,
                "actorId": ACTOR,
                "sessionId": SESSION,
                "eventId": "e-1",
                "eventTimestamp": dt.datetime(2026, 11, 29, tzinfo=dt.UTC),
                "payload": [],
            }
        },
        {
            "memoryId": MEMORY_ID,
            "actorId": ACTOR,
            "sessionId": SESSION,
            "eventTimestamp": ANY,
            "payload": [
                {"conversational": {"role": "USER", "content": {"text": question}}},
                {"conversational": {"role": "ASSISTANT", "content": {"text": answer}}},
            ],
        },
    )


def test_ping_reports_healthy(runtime: Any) -> None:
    base = runtime[0]
    response = urllib3.PoolManager().request("GET", f"{base}/ping")
    assert (response.status, json.loads(response.data)) == (200, {"status": "Healthy"})


def test_an_invocation_runs_a_turn_as_the_caller_in_the_callers_session(runtime: Any) -> None:
    base, stubber, fake, memory = runtime
    fake.results["orders___find_orders"] = {"records": [{"order_id": "O-1", "status": "shipped"}]}
    memory_is_empty(memory)
    converse(stubber, [tool_use("orders___find_orders", {"customer_email": "ada@example.com"})], "tool_use")
    converse(stubber, [{"text": "It has shipped."}], "end_turn")
    remembers(memory, "Where is my order?", "It has shipped.")
    status, answer = post(base, {"prompt": "Where is my order?"}, caller())
    assert status == 200
    assert (answer["agent"], answer["session_id"], answer["answer"], answer["stop"], answer["model"]) == (
        "support",
        SESSION,
        "It has shipped.",
        "end_turn",
        MODEL,
    )
    assert answer["tool_calls"] == [
        {
            "name": "orders___find_orders",
            "arguments": {"customer_email": "ada@example.com"},
            "ok": True,
            "error_kind": None,
        }
    ]
    # The tools gateway saw the caller's own token on discovery and on the call.
    assert {auth for _, auth, _ in fake.seen} == {caller()["Authorization"]}


def test_memory_brings_back_the_sessions_turns_and_what_is_known_of_the_caller(runtime: Any) -> None:
    base, stubber, _, memory = runtime
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
    memory.add_response("list_events", {"events": earlier}, {"memoryId": MEMORY_ID, "actorId": ACTOR, **SESSION_EVENTS})
    memory.add_response(
        "retrieve_memory_records",
        {"memoryRecordSummaries": [record("prefers e-mail", 0.4), record("ships to Lisbon", 0.9)]},
        {"memoryId": MEMORY_ID, "namespace": f"/actors/{ACTOR}/facts", "searchCriteria": ANY, "maxResults": 2},
    )
    memory.add_client_error("retrieve_memory_records", "ThrottlingException", http_status_code=429)
    history = [
        {"role": role, "content": [{"text": f"{kind} {n}"}]}
        for n in (2, 3)
        for role, kind in (("user", "question"), ("assistant", "answer"))
    ]
    asked = {"role": "user", "content": [{"text": "And the next one?"}]}
    system = [{"text": "You help customers.\n\nPlan a reply.\n\n" + REMEMBERED + "- ships to Lisbon\n- prefers e-mail"}]
    converse(stubber, [{"text": "Also shipped."}], "end_turn", [*history, asked], system=system)
    remembers(memory, "And the next one?", "Also shipped.")
    status, answer = post(base, {"prompt": "And the next one?", "instructions": "Plan a reply."}, caller())
    assert (status, answer["answer"]) == (200, "Also shipped.")


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


def test_a_caller_sending_the_whole_conversation_gets_no_second_copy_from_memory(runtime: Any) -> None:
    base, stubber, _, memory = runtime
    for _ in NAMESPACES:  # no list_events: the history came with the request
        memory.add_response("retrieve_memory_records", {"memoryRecordSummaries": []}, None)
    sent = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    expected = [{"role": m["role"], "content": [{"text": m["content"]}]} for m in sent]
    converse(stubber, [{"text": "Goodbye."}], "end_turn", expected, inferenceConfig={"maxTokens": 300})
    remembers(memory, "bye", "Goodbye.")
    assert post(base, {"messages": sent, "max_tokens": 300}, caller())[0] == 200


def test_the_session_is_bound_to_its_first_callers_user_and_group(runtime: Any) -> None:
    base, stubber, _, memory = runtime
    memory_is_empty(memory)
    converse(stubber, [{"text": "Hello."}], "end_turn")
    remembers(memory, "hi", "Hello.")
    assert post(base, {"prompt": "hi"}, caller())[0] == 200
    for other in (caller(sub="user-2"), caller(group="platform-admins")):
        status, answer = post(base, {"prompt": "hi"}, other)
        assert (status, answer["error"], answer["session_id"]) == (409, "session_bound", SESSION)


def test_the_caller_may_pick_only_its_groups_models(runtime: Any) -> None:
    base, stubber, _, memory = runtime
    status, answer = post(base, {"prompt": "hi", "models": ["amazon.nova-micro-v1:0"]}, caller())
    assert (status, answer["error"]) == (403, "model_forbidden")
    memory_is_empty(memory)
    converse(stubber, [{"text": "Hello."}], "end_turn", model=FALLBACK)
    remembers(memory, "hi", "Hello.")
    status, answer = post(base, {"prompt": "hi", "models": [FALLBACK]}, caller())
    assert (status, answer["model"]) == (200, FALLBACK)


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        ({"prompt": "hi"}, {}, 401, "unauthorized"),
        ({"prompt": "hi"}, {"Authorization": "Bearer not.a.jwt"}, 401, "unauthorized"),
        ({"prompt": "hi"}, {"Authorization": f"Bearer {token(group=None)}"}, 403, "forbidden"),
        ({"prompt": "hi"}, {"Authorization": f"Bearer {token(group='customer-basic')}"}, 403, "forbidden"),
        ({"prompt": ""}, caller(), 400, "invalid_request"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, caller(), 400, "invalid_request"),
        ({"prompt": "hi", "max_tokens": 0}, caller(), 400, "invalid_request"),
        ({"prompt": "hi", "instructions": 7}, caller(), 400, "invalid_request"),
        ({"prompt": "hi", "turn_seconds": -1}, caller(), 400, "invalid_request"),
        (b"{nope", caller(), 400, "invalid_request"),
        ([1, 2], caller(), 400, "invalid_request"),
    ],
)
def test_bad_invocations_get_a_json_4xx(
    body: Any, headers: dict[str, str], status: int, error: str, runtime: Any
) -> None:
    base = runtime[0]
    assert post(base, body, headers)[0] == status
    assert post(base, body, headers)[1]["error"] == error


@pytest.mark.parametrize(
    ("code", "status", "answer", "error"),
    [
        ("TooManyRequestsException", 429, 429, "model_unavailable"),
        ("InternalFailure", 500, 502, "model_unavailable"),
        ("ValidationException", 400, 400, "model_rejected"),
    ],
)
def test_a_model_failure_is_a_json_error_the_gateway_can_classify(
    code: str, status: int, answer: int, error: str, runtime: Any
) -> None:
    base, stubber, _, memory = runtime
    memory_is_empty(memory)
    stubber.add_client_error("converse", code, http_status_code=status)  # the group's one default model
    assert post(base, {"prompt": "hi"}, caller()) == (
        answer,
        {"error": error, "message": f"bedrock-runtime failed with {code}", "session_id": SESSION},
    )


def test_a_tools_gateway_failure_is_a_502_with_the_session(runtime: Any) -> None:
    base, _, fake, memory = runtime
    memory_is_empty(memory)
    fake.failure = (503, b"unavailable")
    status, answer = post(base, {"prompt": "hi"}, caller())
    assert (status, answer["error"], answer["session_id"]) == (502, "tools_unavailable", SESSION)


def test_memory_failures_do_not_fail_the_turn(runtime: Any) -> None:
    base, stubber, _, memory = runtime
    memory.add_client_error("list_events", "ServiceUnavailableException", http_status_code=503)
    for _ in NAMESPACES:
        memory.add_client_error("retrieve_memory_records", "AccessDeniedException", http_status_code=403)
    converse(stubber, [{"text": "Hello."}], "end_turn", [{"role": "user", "content": [{"text": "hi"}]}])
    memory.add_client_error("create_event", "ThrottlingException", http_status_code=429)
    assert post(base, {"prompt": "hi"}, caller())[0] == 200


def test_the_settings_are_read_from_the_environment_the_runtime_is_given() -> None:
    environment = {
        "AGENT_NAME": "support",
        "SYSTEM_PROMPT": "You help customers.",
        "TOOLS_GATEWAY_URL": "https://gw.example.com/mcp",
        "GROUP_MODELS": json.dumps({"customer-gold": {"allowed": [MODEL, FALLBACK], "default": MODEL}}),
        "TURN_SECONDS": "90",
        "MEMORY_ID": MEMORY_ID,
        "MEMORY_NAMESPACES": json.dumps(list(NAMESPACES)),
        "MEMORY_HISTORY_TURNS": "2",
    }
    settings = Settings.from_environ(environment)
    assert settings.group_models == {"customer-gold": GROUPS["customer-gold"]}
    assert (settings.turn_seconds, settings.memory_namespaces, settings.memory_history_turns) == (90.0, NAMESPACES, 2)
    assert (settings.max_iterations, settings.memory_recall_records) == (6, 5)  # the model's defaults
    assert Settings.from_environ(settings.environment()) == settings
    with pytest.raises(SettingsError, match="GROUP_MODELS"):
        Settings.from_environ({k: v for k, v in environment.items() if k != "GROUP_MODELS"})
