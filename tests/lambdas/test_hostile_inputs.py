"""Hostile input at the client-facing entry points (issue 14): the AI gateway, the prototype query
function and the push connector answer a 4xx JSON error naming the problem, never a 500; what a
model or an agent answers out of range is the upstream's failure (a 502); header values are
matched whole.

AWS is replaced by fakes that always answer, so only the input under test can fail a request.
"""

from __future__ import annotations

import base64
import json
import math
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from ai_gateway import agents, handler, telemetry
from ai_gateway.request import GatewayError, Incoming
from ai_gateway.router import ModelRouter
from connector_push import handler as push
from prototype_query import handler as query
from shared.aws_errors import MAX_REPORTED_COUNT, UpstreamError
from tests.lambdas.conftest import FakeContext, HttpResult, function_url_event, http_result
from tests.lambdas.gateway_fixtures import (
    DEEP,
    HOSTILE_BODIES,
    POLICY,
    AnsweringBedrock,
    environment,
    model_only,
    rest_event,
)
from tests.lambdas.test_fuzz_prototype_query import AnyCall

CHAT = {"messages": [{"role": "user", "content": "Hello"}]}


class Answering(AnsweringBedrock):
    """Bedrock whose Converse answers ``response`` (the guardrail passes everything)."""

    def __init__(self, response: Any = None) -> None:
        self.response = response
        self.calls: list[dict[str, Any]] = []

    def converse(self, **request: Any) -> Any:
        self.calls.append(request)
        return self.response if self.response is not None else super().converse()


@pytest.fixture
def bedrock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Answering]:
    fake = Answering()
    deps = model_only(fake)
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    monkeypatch.setattr(handler, "policy", lambda: POLICY)
    environment(monkeypatch)
    yield fake
    handler.settings.cache_clear()


@pytest.fixture
def prototype(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {"KNOWLEDGE_BASE_ID": "KB1", "GENERATION_MODEL_ARN": "arn:m", "KENDRA_INDEX_ID": "i"}.items():
        monkeypatch.setenv(name, value)
    query.settings.cache_clear()
    fake = AnyCall()
    monkeypatch.setattr(query, "clients", lambda: query.Clients(agent_runtime=fake, kendra=fake, bedrock=fake))
    monkeypatch.setattr(query, "prompt", lambda: "Answer briefly.")  # the workload's, which its layer holds
    yield
    query.settings.cache_clear()


@pytest.fixture
def connector(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("LANDING_BUCKET", "landing")
    monkeypatch.setenv("PUSH_SOURCES", json.dumps({"crm": "public"}))
    monkeypatch.setenv("REGISTRY_TABLE", "registry")
    push.settings.cache_clear()
    yield
    push.settings.cache_clear()


def gateway_call(body: str | None, *, base64_encoded: bool = False, path: str = "/v1/chat", **event: Any) -> HttpResult:
    request = rest_event("POST", path, body, **event)
    request["isBase64Encoded"] = base64_encoded
    return http_result(handler.lambda_handler(request, FakeContext()))


def query_call(body: str | None, *, base64_encoded: bool = False) -> HttpResult:
    request = function_url_event(body)
    request["isBase64Encoded"] = base64_encoded
    return http_result(query.lambda_handler(request, FakeContext()))


def push_call(body: str | None, *, base64_encoded: bool = False) -> HttpResult:
    request = {**rest_event("POST", "/v1/records/crm", body), "resource": "/v1/records/{source}"}
    request["isBase64Encoded"] = base64_encoded
    return http_result(push.lambda_handler(request, FakeContext()))


def assert_refused(result: HttpResult, *words: str) -> None:
    """A 4xx JSON error whose message names the problem."""
    assert 400 <= result.status < 500, (result.status, result.body)
    assert result.body["error"] == "invalid_request", result.body
    assert all(word in result.body["message"] for word in words), result.body
    assert "Traceback" not in result.body["message"]


# --- bodies ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_a_hostile_body_is_a_4xx_with_a_reason_at_the_gateway(body: str, bedrock: Answering) -> None:
    assert_refused(gateway_call(body))


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_a_hostile_body_is_a_4xx_with_a_reason_at_the_prototype_query(body: str, prototype: None) -> None:
    assert_refused(query_call(body))


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_a_hostile_body_is_a_4xx_with_a_reason_at_the_push_connector(body: str, connector: None) -> None:
    assert_refused(push_call(body))


@pytest.mark.parametrize(
    ("body", "reason"),
    [("!!! not base64 @@", "not valid base64"), (base64.b64encode(b'{"question": "\xff\xfe"}').decode(), "UTF-8")],
    ids=["garbage", "invalid UTF-8"],
)
def test_an_undecodable_base64_body_is_a_4xx_naming_it(
    body: str, reason: str, bedrock: Answering, prototype: None, connector: None
) -> None:
    assert_refused(gateway_call(body, base64_encoded=True), reason)
    assert_refused(query_call(body, base64_encoded=True), reason)
    assert_refused(push_call(body, base64_encoded=True), reason)


def test_a_base64_body_is_read_decoded(bedrock: Answering, prototype: None) -> None:
    encoded = base64.b64encode(json.dumps(CHAT).encode()).decode()
    assert gateway_call(encoded, base64_encoded=True).status == 200
    question = base64.b64encode(json.dumps({"question": "What is the refund policy?"}).encode()).decode()
    assert query_call(question, base64_encoded=True).status == 200


def test_a_key_given_twice_is_refused_by_the_push_connector_not_read_as_its_last(connector: None) -> None:
    body = '{"records": [{"id": "a-1", "body": "first"}], "records": [{"id": "b-1", "body": "second"}]}'
    result = push_call(body)
    assert (result.status, result.body["message"]) == (400, "body: the key 'records' is given twice in one object")
    inner = '{"records": [{"id": "a-1", "body": "first", "body": "second"}]}'
    assert push_call(inner).body["message"] == "body: the key 'body' is given twice in one object"


def test_a_misspelt_record_field_is_refused_by_the_push_connector_not_dropped(connector: None) -> None:
    result = push_call(json.dumps({"records": [{"id": "a-1", "body": "Text.", "titel": "T", "ownr": "me"}]}))
    assert result.status == 422, result.body
    assert "records.0.titel: Extra inputs are not permitted" in result.body["message"]
    assert "records.0.ownr: Extra inputs are not permitted" in result.body["message"]


def test_a_record_the_pipeline_would_quarantine_for_its_size_is_refused_at_the_door(
    connector: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_DOCUMENT_BYTES", "4000")
    push.settings.cache_clear()
    fits = {"id": "a-1", "title": "T", "body": "x" * (4000 - len("# T\n\n\n"))}  # its document: 4,000 bytes
    over = {"id": "a-2", "body": "é" * 2000}  # 2,000 characters, 4,001 bytes with its newline
    result = push_call(json.dumps({"records": [fits, over]}))
    assert (result.status, result.body["message"]) == (
        422,
        "records.1: its document takes 4001 bytes; the pipeline takes at most 4000",
    )


def test_nan_and_infinity_are_not_json_to_the_push_connector(connector: None) -> None:
    result = push_call('{"records": [{"id": "a", "body": "b", "title": NaN}]}')
    assert_refused(result, "not JSON")


# --- headers are matched whole -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["client-key-0001\n", "client-key-0001\r\n", "client-key-0001\nX-Injected: 1"])
def test_an_idempotency_key_with_a_trailing_newline_is_refused(key: str, bedrock: Answering) -> None:
    result = gateway_call(json.dumps(CHAT), headers={"Idempotency-Key": key})
    assert result.status == 422
    assert result.body["message"].startswith("Idempotency-Key:")


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        (["client-key-0001", "client-key-0002"], 422),  # which one? `headers` keeps only the last
        (["client-key-0001", "client-key-0001"], 200),  # the same key twice is that key
    ],
)
def test_an_idempotency_key_sent_twice_must_be_one_key(sent: list[str], status: int, bedrock: Answering) -> None:
    request = rest_event("POST", "/v1/chat", json.dumps(CHAT), headers={"idempotency-key": sent[-1]})
    request["multiValueHeaders"] = {"Content-Type": ["application/json"], "idempotency-key": sent}
    result = http_result(handler.lambda_handler(request, FakeContext()))
    assert result.status == status, result.body
    if status == 422:
        assert result.body["message"] == "Idempotency-Key: sent more than once with different values"
        assert bedrock.calls == []


@pytest.mark.parametrize(
    ("path", "header"),
    [
        ("/v1/chat", "Idempotency-Key"),
        ("/v1/chat/completions", "Idempotency-Key"),
        ("/v1/chat/completions", "X-Session-Id"),
        ("/v1/chat/completions", "X-Output-Type"),
    ],
)
def test_a_header_sent_under_two_cases_with_different_values_is_refused(
    path: str, header: str, bedrock: Answering
) -> None:
    """Header names are case-insensitive: API Gateway passes each spelling as sent, and Powertools'
    view of the event folds them into one, keeping the last, so the raw event is what is read."""
    first, second = ("summary", "chat") if header == "X-Output-Type" else ("value-0001", "value-0002")
    request = rest_event("POST", path, json.dumps(CHAT), headers={header.upper(): second})
    request["multiValueHeaders"] = {"Content-Type": ["application/json"], header: [first], header.upper(): [second]}
    result = http_result(handler.lambda_handler(request, FakeContext()))
    openai = path.endswith("/completions")
    assert result.status == (400 if openai else 422), result.body
    message = result.body["error"]["message"] if openai else result.body["message"]
    assert message == f"{header}: sent more than once with different values"
    assert bedrock.calls == []


def test_a_session_id_with_a_trailing_newline_is_refused(bedrock: Answering) -> None:
    result = gateway_call(json.dumps({**CHAT, "session_id": "session-0001\n"}))
    assert result.status == 422
    assert result.body["message"].startswith("session_id:")


@pytest.mark.parametrize(("path", "status"), [("/v1/usage", 200), ("/v1/usage/", 200), ("/v1/usage\n", 404)])
def test_usage_is_served_at_its_path_whole(path: str, status: int, bedrock: Answering) -> None:
    """Powertools' "$" matches before a final newline: the route checks its path itself."""
    assert http_result(handler.lambda_handler(rest_event("GET", path), FakeContext())).status == status


def test_an_output_type_with_a_trailing_newline_is_refused(bedrock: Answering) -> None:
    request = rest_event("POST", "/v1/outputs/summary\n", {"material": "m"})
    result = http_result(handler.lambda_handler(request, FakeContext()))
    assert (result.status, result.body["error"]) == (422, "invalid_request")  # never produced as "summary"


@pytest.mark.parametrize(
    ("messages", "said"),
    [
        ([("assistant", "Hi."), ("user", "Q")], "the first message must be the user's"),
        (
            [("user", "Q1"), ("user", "Q2")],
            "messages must alternate between user and assistant: 1 and 0 are both user's",
        ),
        ([("user", "Q1"), ("assistant", " \n "), ("user", "Q2")], "message 1 is blank"),
        ([("user", "  ")], "message 0 is blank"),
    ],
)
def test_a_chat_whose_turns_converse_would_refuse_is_named_before_anything_is_admitted(
    messages: list[tuple[str, str]], said: str, bedrock: Answering
) -> None:
    body = {"messages": [{"role": role, "content": text} for role, text in messages]}
    result = gateway_call(json.dumps(body))
    assert result.status == 422, result.body
    assert said in result.body["message"]
    assert bedrock.calls == []


def test_an_output_type_with_a_trailing_slash_is_that_output_type(bedrock: Answering) -> None:
    request = rest_event("POST", "/v1/outputs/summary/", {"material": "m"})
    result = http_result(handler.lambda_handler(request, FakeContext()))
    assert (result.status, result.body["output_type"]) == (200, "summary"), result.body


@pytest.mark.parametrize("at", ["/v1/chat", "/v1/chat/completions"])
def test_a_model_name_is_echoed_clipped_and_printable_only(at: str, bedrock: Answering) -> None:
    model = "evil\n\u202e<b>" + "m" * 150
    result = gateway_call(json.dumps({**CHAT, "model": model}), path=at)
    assert result.status in (403, 404), result.body
    message = json.dumps(result.body)  # a newline or U+202E would show as an escape here
    assert "\\n" not in message
    assert "\\u202e" not in message
    assert "evil??<b>" in message
    assert "m" * 60 not in message


def test_an_evaluation_case_with_a_trailing_newline_is_refused() -> None:
    internal = POLICY.groups["platform-admins"]
    event = rest_event("POST", "/v1/chat", CHAT, headers={"X-Evaluation-Case": "refund-policy\n"})
    with pytest.raises(GatewayError) as refused:
        Incoming(APIGatewayProxyEvent(event)).evaluation_case(internal, POLICY.evaluation_prompts, "Hi")
    assert (refused.value.status, refused.value.message[:17]) == (422, "X-Evaluation-Case")


def test_an_agent_error_code_is_taken_whole() -> None:
    assert agents._agent_error_code(b'{"error": "tools_unavailable"}') == "tools_unavailable"
    assert agents._agent_error_code(b'{"error": "tools_unavailable\\n"}') is None
    assert agents._agent_error_code(("[" * 100_000).encode()) is None  # RecursionError: not a code


# --- what a model answers ----------------------------------------------------------------------


def usage(input_tokens: Any, output_tokens: Any = 2) -> dict[str, Any]:
    return {"inputTokens": input_tokens, "outputTokens": output_tokens}


def answer(content: Any = None, tokens: Any = None) -> dict[str, Any]:
    message = {"content": [{"text": "Hi."}] if content is None else content}
    return {"output": {"message": message}, "usage": usage(5) if tokens is None else tokens}


BAD_MODEL_ANSWERS = {
    "negative tokens": answer(tokens=usage(-1)),
    "huge tokens": answer(tokens=usage(MAX_REPORTED_COUNT + 1)),
    "NaN tokens": answer(tokens=usage(math.nan)),
    "infinite tokens": answer(tokens=usage(5, math.inf)),
    "fractional tokens": answer(tokens=usage(5.5)),
    "string tokens": answer(tokens=usage("5")),
    "boolean tokens": answer(tokens=usage(True)),
    "usage not an object": answer(tokens=["5"]),
    "no text": answer(content=[]),
    "only blank text": answer(content=[{"text": "  \n"}]),
    "text not a string": answer(content=[{"text": 5}]),
    "content not a list": answer(content="Hi."),
    "block not an object": answer(content=["Hi."]),
    "no output": {"usage": usage(5)},
    "output not an object": {"output": "Hi.", "usage": usage(5)},
}


@pytest.mark.parametrize("response", BAD_MODEL_ANSWERS.values(), ids=BAD_MODEL_ANSWERS.keys())
def test_a_model_answer_out_of_range_is_the_models_502(response: dict[str, Any], bedrock: Answering) -> None:
    bedrock.response = response
    result = gateway_call(json.dumps(CHAT))
    assert (result.status, result.body) == (
        502,
        {"error": "upstream_error", "message": "bedrock-runtime failed with InvalidResponse"},
    )


def test_the_router_refuses_an_answer_without_counts_it_can_meter() -> None:
    router = ModelRouter(Answering(answer(tokens=usage(-5))), attempt_seconds=1)
    with pytest.raises(UpstreamError) as failed:
        router.generate(["m"], system="s", messages=[], max_tokens=10, deadline=math.inf)
    assert (failed.value.code, failed.value.http_status) == ("InvalidResponse", 502)


# --- what an agent answers ---------------------------------------------------------------------

GOOD_AGENT_ANSWER: dict[str, Any] = {
    "answer": "Your order ships today.",
    "model": "amazon.nova-pro-v1:0",
    "stop": "end_turn",
    "iterations": 2,
    "tool_calls": [{"name": "orders", "arguments": {}, "ok": True, "error_kind": None, "latency_ms": 40.0}],
    "usage": {"input_tokens": 900, "output_tokens": 120},
}
CALL = GOOD_AGENT_ANSWER["tool_calls"][0]
BAD_AGENT_ANSWERS = {
    "not an object": [GOOD_AGENT_ANSWER],
    "answer a number": {**GOOD_AGENT_ANSWER, "answer": 5},
    "answer blank": {**GOOD_AGENT_ANSWER, "answer": " "},
    "no answer": {k: v for k, v in GOOD_AGENT_ANSWER.items() if k != "answer"},
    "model an object": {**GOOD_AGENT_ANSWER, "model": {"id": "x"}},
    "negative tokens": {**GOOD_AGENT_ANSWER, "usage": {"input_tokens": -1, "output_tokens": 1}},
    "huge tokens": {**GOOD_AGENT_ANSWER, "usage": {"input_tokens": 10**30, "output_tokens": 1}},
    "string tokens": {**GOOD_AGENT_ANSWER, "usage": {"input_tokens": "9", "output_tokens": 1}},
    "usage a list": {**GOOD_AGENT_ANSWER, "usage": [1, 2]},
    "negative iterations": {**GOOD_AGENT_ANSWER, "iterations": -3},
    "fractional iterations": {**GOOD_AGENT_ANSWER, "iterations": 2.5},
    "boolean iterations": {**GOOD_AGENT_ANSWER, "iterations": True},
    "stop a number": {**GOOD_AGENT_ANSWER, "stop": 1},
    "tool_calls an object": {**GOOD_AGENT_ANSWER, "tool_calls": {"name": "x"}},
    "a tool call a string": {**GOOD_AGENT_ANSWER, "tool_calls": ["orders"]},
    "a tool call without a name": {**GOOD_AGENT_ANSWER, "tool_calls": [{"ok": True}]},
    "a tool name a list": {**GOOD_AGENT_ANSWER, "tool_calls": [{**CALL, "name": ["x"]}]},
    "a tool ok a string": {**GOOD_AGENT_ANSWER, "tool_calls": [{**CALL, "ok": "yes"}]},
    "a tool latency negative": {**GOOD_AGENT_ANSWER, "tool_calls": [{**CALL, "latency_ms": -1}]},
    "a tool's arguments a list": {**GOOD_AGENT_ANSWER, "tool_calls": [{**CALL, "arguments": [1]}]},
}
NOT_JSON_ANSWERS = {
    "NaN tokens": json.dumps(GOOD_AGENT_ANSWER).replace('"input_tokens": 900', '"input_tokens": NaN'),
    "infinite latency": json.dumps(GOOD_AGENT_ANSWER).replace("40.0", "Infinity"),
    "huge integer": json.dumps(GOOD_AGENT_ANSWER).replace("900", "9" * 5000),
    "deeply nested arguments": json.dumps(GOOD_AGENT_ANSWER).replace('"arguments": {}', '"arguments": ' + DEEP),
    "not UTF-8": '{"answer": "\xff"}',
}


@pytest.mark.parametrize(
    "data",
    [json.dumps(a).encode() for a in BAD_AGENT_ANSWERS.values()]
    + [text.encode("latin-1" if "\xff" in text else "utf-8") for text in NOT_JSON_ANSWERS.values()],
    ids=[*BAD_AGENT_ANSWERS, *NOT_JSON_ANSWERS],
)
def test_an_agent_answer_with_the_wrong_type_at_any_level_is_the_agents_502(data: bytes) -> None:
    with pytest.raises(UpstreamError) as failed:
        agents._turn("agent a", data, 10.0)
    assert (failed.value.http_status, failed.value.public_message) == (502, "agent a failed with InvalidResponse")


def test_a_well_formed_agent_answer_is_read_as_it_came() -> None:
    turn = agents._turn("agent a", json.dumps(GOOD_AGENT_ANSWER).encode(), 10.0)
    assert (turn.generation.text, turn.generation.input_tokens, turn.iterations) == (
        "Your order ships today.",
        900,
        2,
    )
    assert turn.calls == (CALL,)


@pytest.mark.parametrize("latency", [math.nan, math.inf, -1.0, "40", None])
def test_a_tool_call_without_a_finite_latency_emits_no_stage_metric(
    latency: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    telemetry._tool_stage({"name": "t", "ok": True, "latency_ms": latency}, "s1")
    assert capsys.readouterr().out == ""


# --- bounded answers, malformed contexts, routes ------------------------------------------------


def junk_keys(count: int, length: int = 8) -> dict[str, Any]:
    return {**CHAT, **{f"k{index:0{length}d}": 1 for index in range(count)}}


@pytest.mark.parametrize(
    ("path", "shape"), [("/v1/chat", "gateway"), ("/v1/chat/completions", "openai")], ids=["gateway", "openai"]
)
def test_an_error_names_ten_problems_and_counts_the_rest(path: str, shape: str, bedrock: Answering) -> None:
    """250 unknown keys are 250 problems: the answer lists ten and counts the rest, and each
    key's name is the caller's text, so names are cut."""
    body = junk_keys(250)
    body[f"x{'y' * 5000}"] = 1
    result = http_result(handler.lambda_handler(rest_event("POST", path, body), FakeContext()))
    assert 400 <= result.status < 500
    message = result.body["error"]["message"] if shape == "openai" else result.body["message"]
    assert message.endswith("; and 241 more"), message[-80:]
    assert message.count("Extra inputs are not permitted") == 10
    assert len(json.dumps(result.body)) < 2_000
    if shape == "openai":
        assert result.body["error"]["param"] == "k00000000"


@pytest.mark.parametrize(
    ("path", "shape"), [("/v1/chat", "gateway"), ("/v1/chat/completions", "openai")], ids=["gateway", "openai"]
)
@pytest.mark.parametrize(
    "extra",
    [
        {f"k{index:08d}": 1 for index in range(200_000)},
        {"stop": [0] * 200_000},  # a list's wrong items are an error each too
    ],
    ids=["unknown-keys", "list-items"],
)
def test_a_body_of_200000_keys_or_items_is_refused_before_validation_holds_an_error_for_each(
    path: str, shape: str, extra: dict[str, Any], bedrock: Answering
) -> None:
    """pydantic holds an error per unknown key or wrong item until they are worded: 600,000 of them
    (a 6 MB body) took the function past its memory, where Lambda answers a bare 502. Refused
    first, the caller learns the bound, and what the refusal allocates stays small."""
    event = rest_event("POST", path, {**CHAT, **extra})
    tracemalloc.start()
    try:
        result = http_result(handler.lambda_handler(event, FakeContext()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.status == 400
    message = result.body["error"]["message"] if shape == "openai" else result.body["message"]
    assert message == (
        "body: an array has 200000 items; at most 1000 are read"
        if "stop" in extra
        else f"body: an object has {len(CHAT) + 200_000} keys; at most 256 are read"
    )
    # The parsed body's own objects, not 200,000 errors worded (some 100 MB more).
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_a_long_unknown_key_is_cut_in_the_answer(bedrock: Answering) -> None:
    result = gateway_call(json.dumps({**CHAT, "z" * 100_000: 1}))
    assert result.status == 422
    assert result.body["message"] == f"{'z' * 63}…: Extra inputs are not permitted"


@pytest.mark.parametrize("context", ["x", [], None, 5], ids=["text", "list", "null", "number"])
@pytest.mark.parametrize("at", ["requestContext", "authorizer"])
def test_a_malformed_caller_context_is_a_403_not_a_500(context: Any, at: str, bedrock: Answering) -> None:
    request = rest_event("GET", "/v1/models")
    if at == "requestContext":
        request["requestContext"] = context
    else:
        request["requestContext"]["authorizer"] = context
    result = http_result(handler.lambda_handler(request, FakeContext()))
    assert result.status == 403
    assert result.body["error"]["code"] == "forbidden"


def test_an_unknown_group_is_not_echoed_whole(bedrock: Answering) -> None:
    request = rest_event("POST", "/v1/chat", CHAT, authorizer={"user": "u", "group": "g" * 12_000})
    result = http_result(handler.lambda_handler(request, FakeContext()))
    assert result.status == 403
    assert result.body["message"] == f"group {'g' * 63}… has no access to the gateway"


@pytest.mark.parametrize(
    ("method", "path", "allowed", "shape"),
    [
        ("GET", "/v1/chat/completions", "POST", "openai"),
        ("DELETE", "/v1/models", "GET", "openai"),
        ("GET", "/v1/chat", "POST", "gateway"),
        ("GET", "/v1/outputs/summary", "POST", "gateway"),
        ("POST", "/v1/usage", "GET", "gateway"),
    ],
)
def test_a_route_with_another_method_is_a_405_with_allow(
    method: str, path: str, allowed: str, shape: str, bedrock: Answering
) -> None:
    result = http_result(handler.lambda_handler(rest_event(method, path, CHAT), FakeContext()))
    assert result.status == 405
    assert result.headers["Allow"] == allowed
    if shape == "openai":
        assert result.body["error"]["type"] == "invalid_request_error"
        assert result.body["error"]["code"] == "method_not_allowed"
    else:
        assert result.body["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", '/v1/jobs/a"b'), ("GET", "/v1/jobs/a`b"), ("POST", "/v1/outputs/a\\b"), ("POST", "/v1/chat\n\n")],
)
def test_a_path_the_router_does_not_take_with_the_routes_method_is_a_404(
    method: str, path: str, bedrock: Answering
) -> None:
    """A path parameter the router does not take is no route, not another method's."""
    result = http_result(handler.lambda_handler(rest_event(method, path, CHAT), FakeContext()))
    assert result.status == 404
    assert "Allow" not in result.headers


def test_an_unknown_path_is_a_404_listing_the_routes(bedrock: Answering) -> None:
    result = http_result(handler.lambda_handler(rest_event("GET", "/v1/nothing"), FakeContext()))
    assert result.status == 404
    assert result.body == {"error": "not_found", "message": f"routes: {handler.ROUTES}"}
    assert "POST /v1/chat/completions" in handler.ROUTES


@pytest.mark.parametrize("path", ["/v1/chat/completions/", "/v1/chat/completions\n", "/v1/chat/completions//\n"])
def test_an_openai_path_with_a_trailing_slash_keeps_openai_errors(path: str, bedrock: Answering) -> None:
    """The router serves these paths as the route; their refusals are the route's shape too."""

    def answer(at: str) -> HttpResult:
        body = {**CHAT, "model": "amazon.nova-pro-v1:0"}
        request = rest_event("POST", at, body, headers={"Idempotency-Key": "bad"})
        return http_result(handler.lambda_handler(request, FakeContext()))

    result = answer(path)
    assert result.status == 400
    assert result.body["error"]["type"] == "invalid_request_error"
    assert result.body == answer("/v1/chat/completions").body
