"""The agent turn: Converse tool use against Stubber, MCP discovery over real loopback HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
import urllib3
from botocore.stub import ANY, Stubber

from agent.loop import STOPPED_ANSWER, run_turn
from agent.mcp_client import McpClient
from agent.server import SESSION_HEADER, AgentSettings, serve

MODEL = "amazon.nova-pro-v1:0"
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

    class Handler(BaseHTTPRequestHandler):
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

        def log_message(self, *args: Any) -> None: ...

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/mcp", fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def converse(stubber: Stubber, content: list[dict[str, Any]], stop: str, expected_messages: Any = ANY) -> None:
    stubber.add_response(
        "converse",
        {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop,
            "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120},
            "metrics": {"latencyMs": 10},
        },
        {
            "modelId": MODEL,
            "system": ANY,
            "messages": expected_messages,
            "requestMetadata": {"session_id": SESSION},
            "toolConfig": ANY,
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
    return run_turn(
        client, tools, model_id=MODEL, system="You help customers.", messages=messages, session_id=SESSION, **kwargs
    )


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


# --- the runtime entrypoint (HTTP protocol contract), over real loopback HTTP -------------------


@pytest.fixture
def runtime(bedrock: Any, gateway: Any) -> Iterator[tuple[str, Stubber, FakeGateway]]:
    client, stubber = bedrock
    url, fake = gateway
    settings = AgentSettings(name="support", model_id=MODEL, system_prompt="You help customers.", gateway_url=url)
    server = serve(settings, client, port=0)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", stubber, fake
    server.shutdown()
    server.server_close()


def post(base: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    http = urllib3.PoolManager()
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = http.request(
        "POST", f"{base}/invocations", body=raw, headers={"Content-Type": "application/json", **(headers or {})}
    )
    return response.status, json.loads(response.data)


def test_ping_reports_healthy(runtime: Any) -> None:
    base, _, _ = runtime
    response = urllib3.PoolManager().request("GET", f"{base}/ping")
    assert (response.status, json.loads(response.data)) == (200, {"status": "Healthy"})


def test_an_invocation_runs_a_turn_as_the_caller_in_the_callers_session(runtime: Any) -> None:
    base, stubber, fake = runtime
    fake.results["orders___find_orders"] = {"records": [{"order_id": "O-1", "status": "shipped"}]}
    converse(stubber, [tool_use("orders___find_orders", {"customer_email": "ada@example.com"})], "tool_use")
    converse(stubber, [{"text": "It has shipped."}], "end_turn")
    status, answer = post(
        base, {"prompt": "Where is my order?"}, {"Authorization": "Bearer caller-token", SESSION_HEADER: SESSION}
    )
    assert status == 200
    assert (answer["agent"], answer["session_id"], answer["answer"], answer["stop"]) == (
        "support",
        SESSION,
        "It has shipped.",
        "end_turn",
    )
    assert answer["tool_calls"] == [
        {
            "name": "orders___find_orders",
            "arguments": {"customer_email": "ada@example.com"},
            "ok": True,
            "error_kind": None,
        }
    ]
    assert {auth for _, auth, _ in fake.seen} == {"Bearer caller-token"}


@pytest.mark.parametrize(
    ("body", "headers", "status", "error"),
    [
        ({"prompt": "hi"}, {}, 401, "unauthorized"),
        ({"prompt": ""}, {"Authorization": "Bearer t"}, 400, "invalid_request"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, {"Authorization": "Bearer t"}, 400, "invalid_request"),
        (b"{nope", {"Authorization": "Bearer t"}, 400, "invalid_request"),
        ([1, 2], {"Authorization": "Bearer t"}, 400, "invalid_request"),
    ],
)
def test_bad_invocations_get_a_json_4xx(
    body: Any, headers: dict[str, str], status: int, error: str, runtime: Any
) -> None:
    base, _, _ = runtime
    assert post(base, body, headers)[0] == status
    assert post(base, body, headers)[1]["error"] == error


def test_a_tools_gateway_failure_is_a_502_with_the_session(runtime: Any) -> None:
    base, _, fake = runtime
    fake.failure = (503, b"unavailable")
    status, answer = post(base, {"prompt": "hi"}, {"Authorization": "Bearer t", SESSION_HEADER: SESSION})
    assert (status, answer["error"], answer["session_id"]) == (502, "tools_unavailable", SESSION)
