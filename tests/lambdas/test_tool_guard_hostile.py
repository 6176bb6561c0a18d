"""The tools gateway's interceptor against hostile bodies and headers (issue 14).

Every body the MCP versions the gateway speaks can carry (a JSON-RPC batch, an SSE-framed answer,
any result shape) is either handled as the single message would be or refused; methods are
matched exactly; header values are matched whole. Then properties over arbitrary bodies and
headers: the output is always a valid interceptor output, a tools/call reaches a target only if it
names a tool of the caller's group, and a tools/list answer never shows a tool outside it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given, settings, strategies as st

from shared.headers import CONVERSATION_HEADER
from shared.runtime_config import DocumentReader
from shared.tokens import InvalidToken, bearer
from tests.lambdas.cognito_fixtures import pool_verifier, sign
from tests.lambdas.conftest import FakeContext
from tests.lambdas.strategies import json_values
from tests.lambdas.test_tool_binding import BINDINGS, CLASSIFICATIONS, SEARCH, TOOLS, mcp_event
from tool_guard import handler as guard
from tool_guard.contract import SERVICE, Metric, ToolBindings

SHADOW = "shadow___exfiltrate"  # a tool no group has: must never be shown, whatever the answer's shape
GROUP = next(g for g, tools in sorted(BINDINGS.items()) if SEARCH in tools and len(tools) > 1)
OWN = sorted(BINDINGS[GROUP])
OTHER = next(tool for tool in OWN if tool != SEARCH)
FOREIGN = sorted(set(TOOLS) - set(OWN))
TOKENS: dict[str, str] = {}  # group -> a valid token of it, signed once for the module


@pytest.fixture(scope="module", autouse=True)
def interceptor(signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    document = DocumentReader.static(ToolBindings(tool_bindings=BINDINGS, data_classifications=CLASSIFICATIONS))
    patch.setattr(guard, "bindings", lambda: document)
    guard.allowed_tools_view.cache_clear()
    verifier = pool_verifier(cognito[0])
    patch.setattr(guard, "verifier", lambda: verifier)
    TOKENS.update({group: sign(signing_key, cognito[0], gateway_group=group) for group in BINDINGS})
    yield
    patch.undo()
    guard.allowed_tools_view.cache_clear()


def auth(group: str = GROUP) -> str:
    return f"Bearer {TOKENS[group]}"


def call(tool: Any, arguments: Any = None, *, id: Any = 7, method: Any = "tools/call") -> dict[str, Any]:
    params: dict[str, Any] = {"name": tool}
    if arguments is not None:
        params["arguments"] = arguments
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params}


def request(body: Any, headers: Any = None) -> dict[str, Any]:
    event = mcp_event({}, None)
    event["mcp"]["gatewayRequest"]["headers"] = {"Authorization": auth()} if headers is None else headers
    event["mcp"]["gatewayRequest"]["body"] = body
    return guard.intercept(event)


def answer(request_body: Any, response_body: Any, headers: Any = None) -> Any:
    event = mcp_event({}, None, {"statusCode": 200, "body": response_body})
    event["mcp"]["gatewayRequest"]["headers"] = {"Authorization": auth()} if headers is None else headers
    event["mcp"]["gatewayRequest"]["body"] = request_body
    output = guard.intercept(event)
    assert_valid(output)
    return output["mcp"]["transformedGatewayResponse"]["body"]


def forwarded(output: dict[str, Any]) -> Any:
    assert_valid(output)
    assert "transformedGatewayResponse" not in output["mcp"], output
    return output["mcp"]["transformedGatewayRequest"]["body"]


def refused(output: dict[str, Any]) -> Any:
    """The error(s) the gateway answers in the caller's place; the request reaches no target."""
    assert_valid(output)
    assert set(output["mcp"]) == {"transformedGatewayResponse"}, output
    body = output["mcp"]["transformedGatewayResponse"]["body"]
    assert all(
        "error" in message and "result" not in message for message in (body if isinstance(body, list) else [body])
    )
    return body


def assert_valid(output: Any) -> None:
    """What the gateway takes from an interceptor: version 1.0 and one transformed request or response."""
    assert isinstance(output, dict)
    assert set(output) == {"interceptorOutputVersion", "mcp"}
    assert output["interceptorOutputVersion"] == "1.0"
    (kind,) = output["mcp"]
    assert kind in ("transformedGatewayRequest", "transformedGatewayResponse")
    transformed = output["mcp"][kind]
    if kind == "transformedGatewayRequest":
        assert set(transformed) == {"body"}
        body = transformed["body"]
        assert isinstance(body, dict) or (isinstance(body, list) and body and all(isinstance(m, dict) for m in body))
    else:
        assert set(transformed) == {"statusCode", "body"}
        assert type(transformed["statusCode"]) is int
        assert 100 <= transformed["statusCode"] <= 599
    json.dumps(output)  # (infinities pass as they came: the gateway sends none)


def listing_answer(tools: list[Any], answer_id: Any = 3, **result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": answer_id, "result": {"tools": tools, **result}}


def entries(*names: str) -> list[dict[str, Any]]:
    """Listed tools, each as the interceptor shows it (a schema with properties, none of them the gateway's)."""
    return [{"name": name, "description": "…", "inputSchema": {"type": "object", "properties": {}}} for name in names]


LIST = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
EVERYTHING = [*TOOLS, SHADOW]


# Batches


def test_a_harmless_batch_passes_each_message_as_it_would_alone() -> None:
    batch = [
        LIST,
        call(OTHER, {"customer_id": "C-1"}, id=1),
        call(SEARCH, {"query": "pricing", "data_classifications": ["secret"]}, id=2),
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]
    passed = forwarded(request(batch))
    assert passed == [
        *batch[:2],
        call(SEARCH, {"query": "pricing", "data_classifications": CLASSIFICATIONS[GROUP]}, id=2),
        batch[3],
    ]


@pytest.mark.parametrize(
    "hostile",
    [
        call(FOREIGN[0], id=2) if FOREIGN else call(SHADOW, id=2),
        call(SHADOW, id=2),
        call(OTHER, ["not", "an", "object"], id=2),
        [call(SHADOW, id=2)],  # a batch in a batch
        "tools/call",
        {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "file:///etc/passwd"}},
    ],
)
def test_a_batch_holding_one_message_not_allowed_is_refused_whole(hostile: Any) -> None:
    batch = [call(OTHER, id=1), hostile, LIST]
    errors = refused(request(batch))
    assert [error["id"] for error in errors] == [1, 2 if isinstance(hostile, dict) else None, 3]
    assert errors[0]["error"]["message"].startswith("batch refused")


@pytest.mark.parametrize("body", [None, "", '{"jsonrpc": "2.0", "method": "tools/call"}', 42, [], {}, True])
def test_bodies_that_are_not_requests_are_refused(body: Any) -> None:
    refused(request(body))


def test_a_batch_answer_to_a_batch_is_filtered_per_answer() -> None:
    batch = [call(OTHER, id=1), LIST]
    call_result = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "ok"}]}}
    filtered = answer(batch, [call_result, listing_answer(entries(*EVERYTHING))])
    assert filtered[0] == call_result
    assert [tool["name"] for tool in filtered[1]["result"]["tools"]] == OWN


def test_an_answer_a_batch_of_calls_did_not_ask_for_is_filtered_when_it_shares_an_id_with_a_listing() -> None:
    batch = [call(OTHER, id=3), LIST]  # the same id twice: read every answer with it as a listing
    filtered = answer(batch, [listing_answer(entries(*EVERYTHING)), listing_answer(entries(*EVERYTHING))])
    assert all([tool["name"] for tool in message["result"]["tools"]] == OWN for message in filtered)


# SSE-framed and string answers


def test_an_sse_framed_tools_list_is_filtered_per_event() -> None:
    events = (
        "event: message\nid: 1\ndata: " + json.dumps(listing_answer(entries(*EVERYTHING))) + "\n\n"
        ": a comment\r\nevent: message\r\ndata: " + json.dumps([listing_answer(entries(SHADOW, OTHER), 4)]) + "\r\n\r\n"
    )
    filtered = answer(LIST, events)
    assert isinstance(filtered, str)
    assert SHADOW not in filtered
    assert all(tool not in filtered for tool in FOREIGN)
    first, second = filtered.split("\n\n")[:2]
    assert first.startswith("event: message\nid: 1\ndata: ")
    assert [t["name"] for t in json.loads(first.split("data: ", 1)[1])["result"]["tools"]] == OWN
    assert [t["name"] for t in json.loads(second.split("data: ", 1)[1])[0]["result"]["tools"]] == [OTHER]


def test_an_sse_event_split_over_data_lines_is_read_whole() -> None:
    text = json.dumps(listing_answer(entries(*EVERYTHING)), indent=1)
    framed = "event: message\n" + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n"
    (event,) = parse_sse(answer(LIST, framed))
    assert [t["name"] for t in event["result"]["tools"]] == OWN


@pytest.mark.parametrize(
    "text", ["event: message\ndata: {not json\n\n", "data: " + "[" * 100_000 + "\n\n", "no events at all", ""]
)
def test_an_sse_answer_that_cannot_be_read_is_refused(text: str) -> None:
    filtered = answer(LIST, text)
    messages = parse_sse(filtered) if isinstance(filtered, str) else [filtered]
    assert messages
    assert all("error" in message for message in messages)


@pytest.mark.parametrize("request_", [pytest.param(LIST, id="to a listing"), pytest.param(None, id="to a call")])
def test_a_json_message_followed_by_events_is_read_as_the_events_an_sse_reader_sees(request_: Any) -> None:
    """Not JSON whole (a JSON reader reads nothing), but an SSE reader skips the first line (a
    field it does not know) and reads the event's data: a tools list there is filtered like any
    event's, whatever the request was."""
    own_answer = {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}
    text = json.dumps(own_answer) + "\n\ndata: " + json.dumps(listing_answer(entries(*EVERYTHING), 7)) + "\n\n"
    filtered = answer(request_ if request_ is not None else call(OTHER, id=7), text)
    assert isinstance(filtered, str)
    assert SHADOW not in filtered
    assert all(tool not in filtered for tool in FOREIGN)
    (event,) = parse_sse(filtered)
    assert [t["name"] for t in event["result"]["tools"]] == OWN


def test_a_string_answer_of_plain_json_is_filtered() -> None:
    filtered = answer(LIST, json.dumps(listing_answer(entries(*EVERYTHING))))
    assert [t["name"] for t in json.loads(filtered)["result"]["tools"]] == OWN


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda message: "\r\n  " + json.dumps(message), id="after whitespace"),
        pytest.param(lambda message: json.dumps([message]), id="a batch"),
        pytest.param(lambda message: " " + json.dumps([message]), id="a batch after whitespace"),
        # A byte order mark: JSON readers may skip it, SSE readers do.
        pytest.param(lambda message: "\ufeff" + json.dumps(message), id="after a byte order mark"),
        pytest.param(lambda message: "\ufeffdata: " + json.dumps(message) + "\n\n", id="an SSE event after a BOM"),
    ],
)
def test_a_string_answer_to_a_call_carrying_a_tools_list_is_filtered_however_the_json_is_written(
    write: Any,
) -> None:
    """JSON may open with whitespace and may be a batch: a client reads the tools list either way."""
    smuggled = {"jsonrpc": "2.0", "id": 5, "result": {"content": [], "tools": entries(*EVERYTHING)}}
    filtered = answer(call(OTHER, id=5), write(smuggled))
    (message,) = messages_in(filtered)
    assert [t["name"] for t in message["result"]["tools"]] == OWN


def test_a_string_answer_naming_a_member_twice_is_refused_whatever_it_carries() -> None:
    """Readers differ on which of two members of one name counts: a client keeping the first
    "result" would read a tools list this reader (keeping the last) never saw."""
    tools = json.dumps({"content": [], "tools": entries(*EVERYTHING)})
    for text in (
        f'{{"jsonrpc": "2.0", "id": 5, "result": {tools}, "result": {{"content": []}}}}',
        '{"jsonrpc": "2.0", "id": 5, "result": {"content": [], "content": []}}',
    ):
        body = answer(call(OTHER, id=5), text)
        (message,) = messages_in(body)
        assert message["error"] == {"code": -32603, "message": "the tools list could not be read"}


@pytest.mark.parametrize(
    "frame",
    [pytest.param(lambda text: text, id="JSON"), pytest.param(lambda text: f"data: {text}\n\n", id="an SSE event")],
)
@pytest.mark.parametrize(
    "extra",
    [
        pytest.param('"n": ' + "9" * 5_000, id="a number past Python's digit limit"),
        pytest.param('"n": ' + "[" * 1_500 + "]" * 1_500, id="nesting past Python's recursion limit"),
    ],
)
def test_a_string_answer_only_another_reader_can_read_is_refused_whatever_it_carries(
    frame: Callable[[str], str], extra: str
) -> None:
    """JavaScript's JSON.parse reads both (the number as Infinity): a client could find the tools
    list that this reader could not, so it is not passed on as carrying nothing."""
    tools = json.dumps({"content": [], "tools": entries(*EVERYTHING)})
    body = answer(call(OTHER, id=5), frame(f'{{"jsonrpc": "2.0", "id": 5, "result": {tools}, {extra}}}'))
    (message,) = messages_in(body)
    assert message["error"] == {"code": -32603, "message": "the tools list could not be read"}


# Unexpected result shapes


@pytest.mark.parametrize(
    "result",
    [
        {"tools": {name: {"name": name} for name in EVERYTHING}},  # tools not a list
        {"tools": None},
        {"items": entries(*EVERYTHING)},
        entries(*EVERYTHING),  # result not an object
        None,
        "tools",
    ],
)
def test_a_listing_of_an_unexpected_shape_is_refused(result: Any) -> None:
    body = answer(LIST, {"jsonrpc": "2.0", "id": 3, "result": result})
    assert body == {"jsonrpc": "2.0", "id": 3, "error": {"code": -32603, "message": "the tools list could not be read"}}


@pytest.mark.parametrize(
    "response_body",
    [None, 42, True, {"jsonrpc": "2.0", "id": 3}, {"jsonrpc": "2.0", "id": 3, "result": {"tools": []}, "error": {}}],
)
def test_an_answer_neither_result_nor_error_is_refused(response_body: Any) -> None:
    body = answer(LIST, response_body)
    assert "error" in body
    assert "result" not in body


def test_listed_entries_that_are_not_tools_of_the_caller_are_dropped() -> None:
    tools = [
        *entries(*EVERYTHING),
        {"name": [OTHER]},
        {"name": None},
        {"title": OTHER},
        OTHER,
        [OTHER],
        7,
        None,
        {"name": OTHER + " "},
    ]
    body = answer(LIST, listing_answer(tools))
    assert [tool["name"] for tool in body["result"]["tools"]] == OWN


def test_a_page_keeps_its_cursor_and_drops_everything_else() -> None:
    page = listing_answer(
        entries(*EVERYTHING), nextCursor="page-2", _meta={"hidden": entries(SHADOW)}, more=entries(SHADOW)
    )
    body = answer({**LIST, "params": {"cursor": "page-1"}}, page)
    assert body == {"jsonrpc": "2.0", "id": 3, "result": {"tools": body["result"]["tools"], "nextCursor": "page-2"}}
    assert [tool["name"] for tool in body["result"]["tools"]] == OWN


def test_an_error_answer_keeps_only_code_and_message() -> None:
    error = {"code": -32000, "message": "busy", "data": {"tools": entries(SHADOW)}}
    assert answer(LIST, {"jsonrpc": "2.0", "id": 3, "error": error}) == {
        "jsonrpc": "2.0",
        "id": 3,
        "error": {"code": -32000, "message": "busy"},
    }


@pytest.mark.parametrize(
    "schema", [None, [], "object", {"properties": ["data_classifications"]}, {"required": "data_classifications"}]
)
def test_the_search_tool_of_any_schema_shape_is_listed_without_gateway_arguments(schema: Any) -> None:
    body = answer(LIST, listing_answer([{"name": SEARCH, "inputSchema": schema}]))
    (tool,) = body["result"]["tools"]
    assert "data_classifications" not in json.dumps(tool)


def test_an_answer_to_an_unrecognised_request_is_read_as_a_listing() -> None:
    # The request was refused; if anything answers it anyway, it is filtered, never passed.
    body = answer({"jsonrpc": "2.0", "id": 3, "method": "Tools/List"}, listing_answer(entries(*EVERYTHING)))
    assert [tool["name"] for tool in body["result"]["tools"]] == OWN


def test_an_answer_to_a_tool_call_passes_unchanged() -> None:
    result = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "ok"}]}}
    assert answer(call(OTHER), result) == result


# Methods matched exactly


@pytest.mark.parametrize(
    "method",
    [
        "tools/call ",
        " tools/call",
        "Tools/Call",
        "TOOLS/CALL",
        "tools/call\u0000",
        "tools/call\n",
        "tools\\/call",
        "tools/call/",
        "tools/list ",
        "Initialize",
        ["tools/call"],
        {"name": "tools/call"},
        None,
        1,
        "resources/read",
        "resources/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "sampling/createMessage",
        "notifications/tools/call",
        "notifications/",
        "rpc.discover",
    ],
)
def test_methods_not_on_the_allow_list_are_refused(method: Any) -> None:
    for tool in (OTHER, SHADOW):
        error = refused(request(call(tool, {"customer_id": "C-1"}, method=method)))
        assert error["id"] == 7
        assert error["error"]["code"] in (-32600, -32601)


def test_a_message_without_a_method_is_refused() -> None:
    refused(request({"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}))
    refused(request({"jsonrpc": "2.0", "id": 1, "params": {"name": OTHER}}))


@pytest.mark.parametrize("method", sorted(guard.PASSING_METHODS))
def test_methods_on_the_allow_list_pass_unchanged_for_anyone(method: str) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": {"name": SHADOW}}
    assert forwarded(request(body, headers={})) == body


@pytest.mark.parametrize(
    "params",
    [
        None,
        [OTHER],
        OTHER,
        {"name": [OTHER]},
        {"name": None},
        {"name": 1},
        {"arguments": {}},
        {"name": OTHER, "arguments": ["customer_id", "C-1"]},
        {"name": OTHER, "arguments": "customer_id=C-1"},
        {"name": OTHER, "arguments": 1},
        {"name": SEARCH, "arguments": [["data_classifications", ["secret"]]]},
        {"name": SEARCH, "arguments": "query"},
    ],
)
def test_a_tool_call_of_the_wrong_shape_is_refused(params: Any) -> None:
    error = refused(request({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params}))
    assert error["error"]["code"] == -32602


def test_a_tool_call_without_arguments_passes() -> None:
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": OTHER}}
    assert forwarded(request(body)) == body


# Headers matched whole


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda t: {"Authorization": f"Bearer {t}\n"}, id="trailing newline"),
        pytest.param(lambda t: {"Authorization": f"Bearer {t}\r\n"}, id="trailing CRLF"),
        pytest.param(lambda t: {"Authorization": f"Bearer {t}=="}, id="padding appended"),
        pytest.param(lambda t: {"Authorization": f"Bearer {t} "}, id="trailing space"),
        pytest.param(lambda t: {"Authorization": f"Bearer  {t}"}, id="two spaces"),
        pytest.param(lambda t: {"Authorization": f"Bearer\t{t}"}, id="tab"),
        pytest.param(lambda t: {"Authorization": f"Bearer {t}, Bearer {t}"}, id="joined duplicate"),
        pytest.param(lambda t: {"Authorization": f"Bearer {t}", "authorization": f"Bearer {t}"}, id="duplicate"),
        pytest.param(
            lambda t: {"authorization": "Bearer x.y.z", "AUTHORIZATION": f"Bearer {t}"}, id="duplicate, first bad"
        ),
        pytest.param(lambda t: {"Authorization": [f"Bearer {t}"]}, id="list"),
        pytest.param(lambda t: {"Authorization": {"Bearer": t}}, id="object"),
        pytest.param(lambda t: [("Authorization", f"Bearer {t}")], id="headers a list"),
        pytest.param(lambda t: f"Authorization: Bearer {t}", id="headers a string"),
    ],
)
def test_header_values_are_matched_whole(headers: Any) -> None:
    hostile = headers(TOKENS[GROUP])
    assert refused(request(call(OTHER), hostile))["error"]["code"] == -32001
    assert answer(LIST, listing_answer(entries(*EVERYTHING)), hostile)["result"]["tools"] == []


def test_the_one_clean_header_in_any_case_is_accepted() -> None:
    assert forwarded(request(call(OTHER), {"aUtHoRiZaTiOn": f"bearer {TOKENS[GROUP]}", "Accept": "x"}))


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "==", " ", "\x00", "\u00a0"])
def test_bearer_takes_only_a_token_of_the_jwt_alphabet(suffix: str) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln-_"
    assert bearer(f"Bearer {token}") == token
    with pytest.raises(InvalidToken):
        bearer(f"Bearer {token}{suffix}")


# Events and failures


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "event",
        {},
        {"mcp": None},
        {"mcp": {"gatewayRequest": "body"}},
        {"mcp": {"gatewayRequest": {}, "gatewayResponse": "x"}},
    ],
)
def test_events_of_any_shape_get_a_refusal(event: Any) -> None:
    refused(guard.intercept(event))


def test_a_failure_inside_the_interceptor_is_a_refusal_not_an_exception(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> dict[str, frozenset[str]]:
        raise RuntimeError("bindings unavailable")

    monkeypatch.setattr(guard, "allowed_tools", broken)
    error = refused(guard.lambda_handler(mcp_event(call(OTHER), auth()), FakeContext()))
    assert error["error"]["code"] == -32603


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The handler module imported again as the stack deploys it (POWERTOOLS_SERVICE_NAME is its
    service), with this module's bindings and verifier; the module as it was is restored after."""
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    saved = dict(vars(guard))
    importlib.reload(guard)
    vars(guard).update(bindings=saved["bindings"], verifier=saved["verifier"])
    # Powertools keeps one metric set per process: drop what tests calling intercept() directly
    # (no decorator, so no flush) left in it, as a fresh invocation would have none.
    guard.metrics.clear_metrics()
    try:
        yield
    finally:
        vars(guard).clear()
        vars(guard).update(saved)


def handled(body: Any) -> dict[str, Any]:
    """The deployed entry point (with its decorators) on a request of GROUP's caller."""
    event = mcp_event({}, None)
    event["mcp"]["gatewayRequest"]["headers"] = {"Authorization": auth()}
    event["mcp"]["gatewayRequest"]["body"] = body
    output: dict[str, Any] = guard.lambda_handler(event, FakeContext())
    return output


def emitted(out: str) -> list[dict[str, Any]]:
    """The EMF documents Powertools printed."""
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def deep_list(depth: int) -> list[Any]:
    """Arrays nested ``depth`` levels deep: deeper than json.dumps recurses."""
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def broken() -> dict[str, frozenset[str]]:
    raise RuntimeError("bindings unavailable")


@pytest.mark.parametrize(
    ("body", "metric", "code", "breaks"),
    [
        pytest.param(call(SHADOW), Metric.CALLS_REFUSED, -32001, False, id="a tool not the caller's"),
        pytest.param(call(FOREIGN[0] if FOREIGN else SHADOW), Metric.CALLS_REFUSED, -32001, False, id="foreign"),
        pytest.param(call(OTHER, ["customer_id"]), Metric.CALLS_REFUSED, -32602, False, id="malformed call"),
        pytest.param(
            call(OTHER, {f"k{n}": 0 for n in range(300)}), Metric.CALLS_REFUSED, -32602, False, id="too many keys"
        ),
        pytest.param(
            call(OTHER, {"customer_id": "\ud800"}), Metric.CALLS_REFUSED, -32602, False, id="a lone surrogate"
        ),
        pytest.param(
            call(OTHER, {"customer_id": deep_list(5_000)}), Metric.CALLS_REFUSED, -32602, False, id="nested too deep"
        ),
        pytest.param(call(OTHER), Metric.FAILURES, -32603, True, id="internal failure"),
    ],
)
def test_the_deployed_handler_counts_refusals_and_failures_by_service_alone(
    body: dict[str, Any],
    metric: Metric,
    code: int,
    breaks: bool,
    deployed: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if breaks:
        vars(guard)["allowed_tools"] = broken  # (the fixture restores the module)
    capsys.readouterr()
    error = refused(handled(body))
    assert error["error"]["code"] == code
    (document,) = emitted(capsys.readouterr().out)
    assert document["_aws"]["CloudWatchMetrics"] == [
        {"Namespace": "genai/test", "Dimensions": [["service"]], "Metrics": [{"Name": str(metric), "Unit": "Count"}]}
    ]
    assert document[metric] == [1.0]
    assert document["service"] == SERVICE
    assert not set(document) & {str(m) for m in Metric if m != metric}


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_the_deployed_handler_counts_nothing_for_calls_it_lets_through(
    deployed: None, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    body = [call(OTHER, {"customer_id": "C-1"}, id=1), call(SEARCH, {"query": "q"}, id=2), LIST]
    assert forwarded(handled(body)) == [
        body[0],
        call(SEARCH, {"query": "q", "data_classifications": CLASSIFICATIONS[GROUP]}, id=2),
        LIST,
    ]
    assert emitted(capsys.readouterr().out) == []


def test_each_refused_call_of_a_batch_is_counted(deployed: None, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    batch = [call(SHADOW, id=1), call(OTHER, id=2), call(OTHER, "x", id=3)]
    errors = refused(handled(batch))
    assert [error["error"]["code"] for error in errors] == [-32001, -32600, -32602]
    (document,) = emitted(capsys.readouterr().out)
    assert document[Metric.CALLS_REFUSED] == [1.0, 1.0]
    assert Metric.FAILURES not in document


# Properties


def parse_sse(text: str) -> list[Any]:
    """The data of each event of an SSE stream, read independently of the interceptor's reader."""
    messages = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        data = [line[5:].removeprefix(" ") for line in block.split("\n") if line.startswith("data:")]
        if data:
            messages.append(json.loads("\n".join(data)))
    return messages


def messages_in(body: Any) -> list[Any]:
    if isinstance(body, str):
        try:
            parsed = [json.loads(body)]
        except ValueError:
            parsed = parse_sse(body)
    else:
        parsed = [body]
    return [m for item in parsed for m in (item if isinstance(item, list) else [item])]


def granted(headers: Any) -> frozenset[str]:
    """The tools the headers entitle to, read from the rule: one Authorization header, ``Bearer``
    in any case, one space, and a token exactly as signed."""
    if not isinstance(headers, dict):
        return frozenset()
    values = [v for k, v in headers.items() if isinstance(k, str) and k.lower() == "authorization"]
    if len(values) != 1 or not isinstance(values[0], str):
        return frozenset()
    scheme, _, token = values[0].partition(" ")
    group = next((g for g, t in TOKENS.items() if t == token), None)
    return frozenset(BINDINGS[group]) if scheme.lower() == "bearer" and group else frozenset()


PLAIN = {
    "initialize",
    "ping",
    "notifications/initialized",
    "notifications/cancelled",
    "notifications/progress",
    "notifications/roots/list_changed",
    "tools/call",
}


def could_list(body: Any) -> bool:
    messages = body if isinstance(body, list) else [body]
    return not all(isinstance(m, dict) and isinstance(m.get("method"), str) and m["method"] in PLAIN for m in messages)


token_values = st.one_of(
    st.sampled_from(sorted(BINDINGS)).map(lambda group: ("valid", group)),
    st.tuples(st.just("mutated"), st.sampled_from(sorted(BINDINGS)), st.sampled_from(["\n", "==", " ", "x", "\r\n"])),
    json_values,
)


@st.composite
def headers_strategy(draw: st.DrawFn) -> Any:
    def value(spec: Any) -> Any:
        if isinstance(spec, tuple) and spec[0] == "valid":
            return draw(st.sampled_from(["Bearer ", "bearer ", "BEARER "])) + TOKENS[spec[1]]
        if isinstance(spec, tuple):
            return f"Bearer {TOKENS[spec[1]]}{spec[2]}"
        return spec

    keys = st.sampled_from(
        ["Authorization", "authorization", "AUTHORIZATION", "X-Genai-Conversation-Id", "Accept"]
    ) | st.text(max_size=8)
    pairs = draw(st.lists(st.tuples(keys, token_values), max_size=4))
    headers = {key: value(spec) for key, spec in pairs}
    return draw(st.sampled_from([headers, headers, headers, None])) if pairs else draw(st.just(headers) | json_values)


tool_names = st.sampled_from(EVERYTHING) | st.text(max_size=12) | json_values
methods = (
    st.sampled_from(
        ["tools/call", "tools/list", "initialize", "ping", "notifications/initialized", "Tools/Call", "tools/call "]
    )
    | json_values
)
messages_strategy = st.one_of(
    st.fixed_dictionaries(
        {"jsonrpc": st.just("2.0"), "method": methods},
        optional={
            "id": st.integers() | st.text(max_size=4) | json_values,
            "params": st.fixed_dictionaries(
                {},
                optional={
                    "name": tool_names,
                    "arguments": json_values | st.dictionaries(st.text(max_size=8), json_values, max_size=3),
                    "cursor": json_values,
                },
            )
            | json_values,
        },
    ),
    json_values,
)
request_bodies = messages_strategy | st.lists(messages_strategy, max_size=4)


@settings(max_examples=300, deadline=None)
@given(body=request_bodies, headers=headers_strategy())
def test_property_a_tool_call_reaches_a_target_only_if_it_names_a_tool_of_the_callers_group(
    body: Any, headers: Any
) -> None:
    output = request(body, headers if headers is not None else {})
    assert_valid(output)
    if "transformedGatewayResponse" in output["mcp"]:
        return
    allowed = granted(headers)
    for message in messages_in(output["mcp"]["transformedGatewayRequest"]["body"]):
        assert message["method"] in guard.PASSING_METHODS | {"tools/call"}
        if message["method"] == "tools/call":
            assert message["params"]["name"] in allowed
            assert isinstance(message["params"].get("arguments", {}), dict | None)


tool_entries = st.one_of(
    st.sampled_from(EVERYTHING).map(lambda name: {"name": name, "description": "…"}),
    st.fixed_dictionaries({"name": tool_names}, optional={"inputSchema": json_values, "title": st.text(max_size=5)}),
    st.sampled_from(EVERYTHING),
    json_values,
)
results = st.one_of(
    st.fixed_dictionaries(
        {"tools": st.lists(tool_entries, max_size=6)}, optional={"nextCursor": json_values, "_meta": json_values}
    ),
    st.fixed_dictionaries(
        {"tools": st.dictionaries(st.sampled_from(EVERYTHING), tool_entries, max_size=3) | json_values}
    ),
    json_values,
)
answers = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0")},
    optional={"id": st.sampled_from([3, "3", 1, None]) | json_values, "result": results, "error": json_values},
)
answer_bodies = st.recursive(
    answers | json_values,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, min_size=1, max_size=3).map(
            lambda events: "".join(f"event: message\ndata: {json.dumps(event)}\n\n" for event in events)
        )
        | inner.map(json.dumps)
    ),
    max_leaves=6,
)
listing_requests = st.one_of(
    st.just(LIST),
    st.lists(st.sampled_from([LIST, call(OTHER, id=1), call(SHADOW, id=3)]), min_size=1, max_size=3),
    messages_strategy,
)


@pytest.mark.parametrize(
    "answer",
    [
        {"jsonrpc": "2.0", "id": 1},  # neither a result nor an error
        {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": SHADOW, "description": "x"}]}},
    ],
)
def test_a_malformed_answer_under_a_calls_id_is_read_as_a_listing_not_passed(answer: dict[str, Any]) -> None:
    """Found by the property below: an answer sharing a tools/call's id in a batch with a listing
    passed unchanged even when it was no answer to a call at all."""
    event = mcp_event({}, None, {"statusCode": 200, "body": answer})
    event["mcp"]["gatewayRequest"]["body"] = [LIST, call(OTHER, id=1)]
    body = guard.intercept(event)["mcp"]["transformedGatewayResponse"]["body"]
    assert SHADOW not in json.dumps(body)
    assert ("result" in body) != ("error" in body)


@settings(max_examples=300, deadline=None)
@given(request_body=listing_requests, response_body=answer_bodies, headers=headers_strategy())
def test_property_a_tools_list_answer_never_shows_a_tool_outside_the_callers_group(
    request_body: Any, response_body: Any, headers: Any
) -> None:
    event = mcp_event({}, None, {"statusCode": 200, "body": response_body})
    event["mcp"]["gatewayRequest"]["headers"] = headers
    event["mcp"]["gatewayRequest"]["body"] = request_body
    output = guard.intercept(event)
    assert_valid(output)
    if not could_list(request_body):
        return
    body = output["mcp"]["transformedGatewayResponse"]["body"]
    assert SHADOW not in json.dumps(body)
    allowed = granted(headers)
    for message in messages_in(body):
        assert isinstance(message, dict)
        assert ("result" in message) != ("error" in message)
        if "result" in message:
            assert all(tool["name"] in allowed for tool in message["result"]["tools"])


@settings(max_examples=200, deadline=None)
@given(
    event=json_values
    | st.fixed_dictionaries(
        {"mcp": json_values | st.fixed_dictionaries({"gatewayRequest": json_values, "gatewayResponse": json_values})}
    )
)
def test_property_any_event_gets_a_valid_output(event: Any) -> None:
    assert_valid(guard.intercept(event))


# What callers and operators are told: exact refusals, statuses, log lines


def error(code: int, message: str, answer_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": answer_id, "error": {"code": code, "message": message}}


NOT_A_REQUEST = "not a JSON-RPC request"
UNREADABLE_LIST = "the tools list could not be read"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(None, error(-32600, NOT_A_REQUEST), id="no body"),
        pytest.param({"jsonrpc": "2.0", "id": 5}, error(-32600, NOT_A_REQUEST, 5), id="no method"),
        pytest.param(
            call(OTHER, method="resources/read"),
            error(-32601, "method not available through this gateway", 7),
            id="method not allowed",
        ),
        pytest.param(
            call(OTHER, ["customer_id"]),
            error(-32602, "tools/call needs params with a string name and object arguments", 7),
            id="malformed call",
        ),
        pytest.param(
            [call(OTHER, id=1), "tools/call"],
            [error(-32600, "batch refused: another message in it is not allowed", 1), error(-32600, NOT_A_REQUEST)],
            id="batch",
        ),
    ],
)
def test_a_refused_request_is_answered_with_status_200_and_an_exact_json_rpc_error(body: Any, expected: Any) -> None:
    output = request(body)
    assert output == {
        "interceptorOutputVersion": "1.0",
        "mcp": {"transformedGatewayResponse": {"statusCode": 200, "body": expected}},
    }


def test_an_event_that_is_no_interceptor_event_is_answered_so() -> None:
    assert guard.intercept({"mcp": {}}) == {
        "interceptorOutputVersion": "1.0",
        "mcp": {"transformedGatewayResponse": {"statusCode": 200, "body": error(-32600, "not an interceptor event")}},
    }


@pytest.mark.parametrize(
    ("response", "message"),
    [
        pytest.param("not an object", "the answer could not be read", id="response not an object"),
        pytest.param({"statusCode": 500, "body": 42}, UNREADABLE_LIST, id="body a number"),
        pytest.param({"statusCode": 500, "body": "no events at all"}, UNREADABLE_LIST, id="sse without events"),
        pytest.param({"statusCode": 500, "body": '{"jsonrpc": "2.0", "id": 3'}, UNREADABLE_LIST, id="broken json"),
    ],
)
def test_a_tools_list_answer_that_cannot_be_read_is_refused_whole(response: Any, message: str) -> None:
    event = mcp_event({}, None)
    event["mcp"]["gatewayRequest"].update(headers={"Authorization": auth()}, body=LIST)
    event["mcp"]["gatewayResponse"] = response
    assert guard.intercept(event)["mcp"] == {
        "transformedGatewayResponse": {"statusCode": 200, "body": error(-32603, message)}
    }


def answered(request_body: Any, response: Any) -> dict[str, Any]:
    event = mcp_event({}, None)
    event["mcp"]["gatewayRequest"].update(headers={"Authorization": auth()}, body=request_body)
    event["mcp"]["gatewayResponse"] = response
    output = guard.intercept(event)
    assert_valid(output)
    transformed: dict[str, Any] = output["mcp"]["transformedGatewayResponse"]
    return transformed


@pytest.mark.parametrize(
    ("status", "passed"),
    [
        *[(200, 200), (202, 202), (100, 100), (599, 599), (404, 404)],  # kept
        *[(99, 200), (600, 200), (None, 200), ("404", 200), (True, 200), (404.0, 200)],  # not a status: 200
    ],
)
@pytest.mark.parametrize("listing", [True, False])
def test_the_answers_status_passes_when_it_is_an_http_status(status: Any, passed: int, listing: bool) -> None:
    if listing:
        request_body, body = LIST, listing_answer(entries(OTHER))
    else:
        request_body, body = call(OTHER), {"jsonrpc": "2.0", "id": 7, "result": {"content": []}}
    assert answered(request_body, {"statusCode": status, "body": body}) == {"statusCode": passed, "body": body}


@pytest.mark.parametrize("body", [None, "", {"jsonrpc": "2.0", "id": 9, "result": {"content": []}}])
def test_the_answer_to_requests_that_cannot_list_passes_unchanged_when_it_carries_no_tools_list(body: Any) -> None:
    # A notification's answer carries nothing to filter (the gateway may send no body at all).
    # One that carries a tools list is filtered all the same (test_tool_guard_limits).
    notification = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    assert answered([notification, call(OTHER, id=9)], {"statusCode": 202, "body": body}) == {
        "statusCode": 202,
        "body": body,
    }


def test_a_streamed_answer_to_a_tool_call_passes_byte_for_byte() -> None:
    text = ': keep-alive\n\nevent: message\nid: 9\ndata: {"jsonrpc": "2.0", "id": 7, "result": {}}\n\n'
    assert answered(call(OTHER), {"statusCode": 200, "body": text})["body"] == text


def test_a_call_result_under_an_id_a_listing_shares_is_read_as_a_listing() -> None:
    batch = [call(OTHER, id=3), LIST]
    result = {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "ok"}]}}
    body = answer(batch, [result, listing_answer(entries(*EVERYTHING))])
    assert body[0] == error(-32603, UNREADABLE_LIST, 3)
    assert [tool["name"] for tool in body[1]["result"]["tools"]] == OWN


def test_an_error_answer_to_a_call_passes_whole_beside_a_listing() -> None:
    failed = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": "busy", "data": {"retry": 5}}}
    body = answer([call(OTHER, id=1), LIST], [failed, listing_answer(entries(OTHER))])
    assert body == [failed, listing_answer(entries(OTHER))]


@pytest.mark.parametrize("framing", ["\n  ", "\r\n", " \t"])
@pytest.mark.parametrize("batch", [False, True])
def test_a_string_answer_of_json_is_read_as_json_with_any_leading_whitespace(framing: str, batch: bool) -> None:
    listing = listing_answer(entries(*EVERYTHING))
    filtered = answer(LIST, framing + json.dumps([listing] if batch else listing))
    expected = listing_answer(entries(*OWN))
    assert json.loads(filtered) == ([expected] if batch else expected)


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_an_sse_answer_is_rewritten_event_by_event_with_any_line_ending(newline: str) -> None:
    first, second = listing_answer(entries(*EVERYTHING)), listing_answer(entries(SHADOW), 4)
    text = newline.join(
        [
            *[": comment", "event: message", "id: 1", "retry: 10", "data: " + json.dumps(first), ""],
            *["event: message", "data: " + json.dumps(second), "", ""],
        ]
    )
    expected = (
        "event: message\nid: 1\nretry: 10\ndata: "
        + json.dumps(listing_answer(entries(*OWN)))
        + "\n\nevent: message\ndata: "
        + json.dumps(listing_answer([], 4))
        + "\n\n"
    )
    assert answer(LIST, text) == expected


@pytest.mark.parametrize("schema", [None, "object", ["query"]])
def test_a_tool_listed_without_a_schema_object_is_shown_with_an_empty_object_schema(schema: Any) -> None:
    body = answer(LIST, listing_answer([{"name": OTHER, "inputSchema": schema}, {"name": SEARCH}]))
    assert body["result"]["tools"] == [
        {"name": OTHER, "inputSchema": {"type": "object", "properties": {}}},
        {"name": SEARCH, "inputSchema": {"type": "object", "properties": {}}},
    ]


@pytest.mark.parametrize("answer_id", [True, 1.5, [1], {"id": 1}, None])
def test_an_id_that_is_no_json_rpc_id_is_never_echoed(answer_id: Any) -> None:
    hostile = {"jsonrpc": "2.0", "id": answer_id, "method": "resources/read"}
    assert refused(request(hostile))["id"] is None


@pytest.mark.parametrize("answer_id", [7, "7", "", 0, -1])
def test_an_id_that_is_a_json_rpc_id_is_echoed_as_sent(answer_id: Any) -> None:
    hostile = {"jsonrpc": "2.0", "id": answer_id, "method": "resources/read"}
    assert refused(request(hostile))["id"] == answer_id


def test_a_search_gets_the_conversation_id_of_the_callers_header_only() -> None:
    sent = {"query": "q", "conversation_id": "forged", "data_classifications": ["secret"]}
    scoped = {"query": "q", "data_classifications": CLASSIFICATIONS[GROUP]}
    with_header = {"Authorization": auth(), "x-genai-conversation-id": "conv-1"}
    assert forwarded(request(call(SEARCH, sent), with_header))["params"]["arguments"] == {
        **scoped,
        "conversation_id": "conv-1",
    }
    assert forwarded(request(call(SEARCH, sent)))["params"]["arguments"] == scoped
    assert forwarded(request(call(OTHER, sent), with_header))["params"]["arguments"] == {"query": "q"}


def test_one_request_reads_one_version_of_the_bindings(monkeypatch: pytest.MonkeyPatch) -> None:
    # The group is found in, and its tools taken from, the same read (here: the caller's group
    # disappears from the next read of the bindings).
    versions = [{GROUP: guard.Grant(tools=frozenset(OWN), classifications=())}, {}]
    reads: list[int] = []

    def allowed_tools() -> dict[str, guard.Grant]:
        reads.append(1)
        return versions[min(len(reads) - 1, 1)]

    monkeypatch.setattr(guard, "allowed_tools", allowed_tools)
    assert forwarded(request(call(OTHER)))["params"]["name"] == OTHER
    assert len(reads) == 1
    assert refused(request(call(OTHER)))["error"]["code"] == -32001  # the next request sees the new version


def test_the_callers_group_is_read_from_the_current_bindings_when_none_are_given() -> None:
    assert guard.caller_group({"Authorization": auth()}) == GROUP
    assert guard.caller_group({"Authorization": auth()}, {}) is None


def rejection(authorization: str) -> str:
    try:
        bearer(authorization)
    except InvalidToken as error:
        return error.reason
    raise AssertionError(f"{authorization!r} was taken as a bearer token")


BASIC = "Basic dXNlcg=="
BASIC_REASON = rejection(BASIC)  # the token reader's own words


def log_records(out: str) -> list[dict[str, Any]]:
    records = []
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "_aws" not in record:
            records.append(record)
    return records


@pytest.mark.parametrize(
    ("kind", "message", "field", "value"),
    [
        ("bad token", "no tools: token rejected", "reason", BASIC_REASON),
        ("foreign tool", "tool call refused", "tool", SHADOW),
        ("long method", "method refused", "method", f"{'m' * 99}…"),
        ("batch", "batch refused", "messages", 2),
        ("oversized batch", "batch refused: too many messages", "messages", guard.MAX_BATCH + 1),
        ("unreadable listing", "tools/list answer refused", "reason", UNREADABLE_LIST),
    ],
)
def test_each_refusal_leaves_one_log_line_naming_what_was_refused(
    kind: str, message: str, field: str, value: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """What an operator reads when a caller is refused (the refusal alarm points to these lines)."""
    capsys.readouterr()
    if kind == "bad token":
        refused(request(call(OTHER), {"Authorization": BASIC}))
    elif kind == "foreign tool":
        refused(request(call(SHADOW)))
    elif kind == "long method":
        refused(request(call(OTHER, method="m" * 300)))
    elif kind == "batch":
        refused(request([call(OTHER, id=1), call(SHADOW, id=2)]))
    elif kind == "oversized batch":
        refused(request([call(OTHER, id=n) for n in range(guard.MAX_BATCH + 1)]))
    else:
        answer(LIST, {"jsonrpc": "2.0", "id": 3, "result": None})
    (record,) = [r for r in log_records(capsys.readouterr().out) if r.get("message") == message]
    assert record["level"] == "INFO"
    assert record[field] == value


@pytest.mark.parametrize(
    ("value", "lengths"),
    [
        pytest.param("", [], id="empty: no conversation, nothing to say"),
        pytest.param("conv 7", [6], id="not of the form"),
        pytest.param("c" * 257, [257], id="too long"),
    ],
)
def test_a_conversation_header_dropped_for_its_form_is_logged_by_length_alone(
    value: str, lengths: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Why a search went without a conversation id, without echoing what the caller chose."""
    capsys.readouterr()
    refused(request(call(SHADOW), {"Authorization": auth(), CONVERSATION_HEADER: value}))
    records = [
        r
        for r in log_records(capsys.readouterr().out)
        if r.get("message") == "conversation id dropped: not of the expected form"
    ]
    assert [record["length"] for record in records] == lengths
    assert all(record["level"] == "INFO" for record in records)


def test_a_caller_of_no_configured_group_is_logged_by_user(
    signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = sign(signing_key, cognito[0], gateway_group="strangers", sub="user-9")
    capsys.readouterr()
    refused(request(call(OTHER), {"Authorization": f"Bearer {stranger}"}))
    (record,) = [r for r in log_records(capsys.readouterr().out) if r.get("message") == "no tools: no configured group"]
    assert record["user"] == "user-9"


class Versions:
    """A bindings reader whose every read is the next version (the last one then stays): a
    background refresh landing between two reads of one request."""

    def __init__(self, *versions: ToolBindings) -> None:
        self.versions = list(versions)
        self.reads = 0

    def get(self) -> ToolBindings:
        self.reads += 1
        return self.versions[min(self.reads, len(self.versions)) - 1]

    def derive(self, build: Callable[[ToolBindings], Any]) -> Callable[[], Any]:
        return lambda: build(self.get())


@pytest.fixture
def rebound(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Versions]]:
    """Bindings of the test's own, in place of the module's until the test ends."""

    def rebind(*versions: ToolBindings) -> Versions:
        reader = Versions(*versions)
        monkeypatch.setattr(guard, "bindings", lambda: reader)
        guard.allowed_tools_view.cache_clear()
        return reader

    yield rebind
    guard.allowed_tools_view.cache_clear()


def test_a_search_is_scoped_by_the_version_of_the_bindings_that_allowed_it(
    rebound: Callable[..., Versions],
) -> None:
    """The tools a call is checked against and the classifications written into it come from one
    read: a refresh between the two could widen the search to a version's classifications whose
    tools no longer include it (issue 14)."""
    allowed = ToolBindings(tool_bindings={GROUP: [SEARCH]}, data_classifications={GROUP: ["public"]})
    widened = ToolBindings(tool_bindings={GROUP: []}, data_classifications={GROUP: ["public", "secret"]})
    reader = rebound(allowed, widened)
    assert forwarded(request(call(SEARCH, {"query": "q"})))["params"]["arguments"] == {
        "query": "q",
        "data_classifications": ["public"],
    }
    assert reader.reads == 1


@pytest.mark.parametrize("tool", ["orders___x___knowledge_search", "other___knowledge_search"])
def test_only_the_knowledge_search_the_gateway_serves_gets_the_callers_classifications(
    rebound: Callable[..., Versions], tool: str
) -> None:
    """Knowledge search is recognised by its exact qualified name, not by how a name ends: another
    target's tool called ..___knowledge_search gets no classifications, and whatever an agent sent
    under that name is dropped (issue 14)."""
    rebound(ToolBindings(tool_bindings={GROUP: [SEARCH, tool]}, data_classifications={GROUP: ["public"]}))
    sent = {"query": "q", "data_classifications": ["secret"]}
    assert forwarded(request(call(tool, sent)))["params"]["arguments"] == {"query": "q"}
    assert forwarded(request(call(SEARCH, sent)))["params"]["arguments"] == {
        "query": "q",
        "data_classifications": ["public"],
    }
