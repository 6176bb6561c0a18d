"""The gateway's OpenAI-compatible routes: the real ``openai`` SDK against the function served as
API Gateway would serve it (tests/lambdas/openai_server.py), and the parsing edge cases at the handler.

AWS is the gateway tests' (gateway_fixtures: a moto ledger, Bedrock stubbed for Converse and
ApplyGuardrail); every stubbed call must be used, and a call nobody queued fails the test.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from botocore.stub import ANY
from hypothesis import HealthCheck, event, given, settings, strategies as st

from ai_gateway import handler
from shared.headers import CALLER_TOKEN_HEADER
from tests.lambdas.bedrock_fakes import FakeEventStream, answer, converse_answer
from tests.lambdas.conftest import FakeContext, HttpResult, http_result
from tests.lambdas.gateway_fixtures import (
    BLOCKED_TOPIC,
    GOLD,
    HOSTILE_BODIES,
    LITE,
    MICRO,
    POLICY,
    PRO,
    AnsweringBedrock,
    Gateway,
    anonymized,
    converse_ok,
    environment,
    exhaust_daily_chat_quota,
    guard_input,
    guard_output,
    model_only,
    rest_event,
    set_quota,
    stopped_clock,
)
from tests.lambdas.openai_server import Served, serve_gateway
from tests.lambdas.strategies import json_values
from tests.lambdas.test_ai_gateway_agents import TOKEN, FakeAgentCore, agentcore, routed  # noqa: F401 - fixtures

NOW = dt.datetime(2026, 11, 29, 6, 45, tzinfo=dt.UTC)
BASIC = {"user": "user-2", "group": "customer-basic", "tier": "basic", "kind": "customer"}
CALLERS = {
    "gold-token": GOLD,
    TOKEN: GOLD,  # a token shaped like a JWT, which the gateway forwards to an agent
    "basic-token": BASIC,
    "stranger-token": {"user": "user-3", "group": "nobody"},
}
INSTRUCTIONS = POLICY.outputs["chat"].instructions
USER_TURN = {"role": "user", "content": "Hi"}
SYSTEM_TURN = st.just({"role": "system", "content": "Be brief."})


@pytest.fixture
def served(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    monkeypatch.setattr(handler, "clock", stopped_clock(NOW))
    with serve_gateway(CALLERS) as server:
        yield server


def client(served: Served, token: str = "gold-token") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{served.url}/v1",
        api_key=token,
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),  # straight to the loopback server
    )


def record(gateway: Gateway, request_id: str, user: str = "user-1", group: str = "customer-gold") -> dict[str, Any]:
    found = gateway.ledger.record(request_id, group=group, user=user)
    assert found is not None, f"no ledger record of {request_id}"
    return found


def error_body(error: openai.APIStatusError) -> dict[str, Any]:
    """The error object the SDK kept (the answer's ``error``)."""
    assert isinstance(error.body, dict)
    return error.body


def expected_converse(
    text: str, *, system: str = INSTRUCTIONS, inference: dict[str, Any] | None = None, model: str = PRO
) -> dict[str, Any]:
    return {
        "modelId": model,
        "system": [{"text": system}],
        "messages": [{"role": "user", "content": [{"text": text}]}],
        "inferenceConfig": inference or {"maxTokens": 1000},
    }


# --- the real SDK --------------------------------------------------------------------------------


def test_a_completion_is_guarded_generated_metered_and_answered_as_openai_does(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Be terse.", "Hello?"])
    converse_ok(
        gateway.bedrock,
        PRO,
        "Hi there.",
        expected_converse(
            "Hello?",
            system=f"{INSTRUCTIONS}\n\nBe terse.",  # the client's system text after the output type's
            inference={"maxTokens": 200, "temperature": 0.2},
        ),
    )
    guard_output(gateway.bedrock, "Hi there.")
    completion = client(served).chat.completions.create(
        model=PRO,
        messages=[{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hello?"}],
        max_tokens=200,
        temperature=0.2,
        user="someone-else",  # accepted, never the identity
        extra_headers={"Idempotency-Key": "client-key-0001"},
    )
    assert completion.id == "chatcmpl-client-key-0001"
    assert (completion.object, completion.created, completion.model) == ("chat.completion", int(NOW.timestamp()), PRO)
    (choice,) = completion.choices
    assert (choice.message.role, choice.message.content, choice.finish_reason) == ("assistant", "Hi there.", "stop")
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (50, 20)
    assert completion.usage.total_tokens == 70
    assert completion.model_extra == {
        "gateway": {
            "request_id": "client-key-0001",
            "output_type": "chat",
            "guardrail": "none",
            "units": 1,
            "remaining": 19999,
            "resets_at": "2026-12-01T00:00:00+00:00",
        }
    }
    item = record(gateway, "client-key-0001")  # the caller is the authorizer's user, not the body's
    assert (item["status"]["S"], item["output_type"]["S"], item["output_tokens"]["N"]) == ("delivered", "chat", "20")
    (event,) = served.events
    assert (event["resource"], event["path"], event["requestContext"]["path"]) == (
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/live/v1/chat/completions",
    )


def test_extra_body_output_type_and_the_idempotency_key_reach_the_ledger_and_a_replay_is_a_conflict(
    gateway: Gateway, served: Served
) -> None:
    summary = POLICY.outputs["summary"]
    guard_input(gateway.bedrock, ["Summarize this."])
    converse_ok(
        gateway.bedrock,
        PRO,
        "Short.",
        expected_converse("Summarize this.", system=summary.instructions, inference={"maxTokens": summary.max_tokens}),
    )
    guard_output(gateway.bedrock, "Short.")
    sdk = client(served)
    ask: dict[str, Any] = {
        "model": PRO,
        "messages": [{"role": "user", "content": "Summarize this."}],
        "extra_body": {"output_type": "summary", "session_id": "session-0001"},
        "extra_headers": {"Idempotency-Key": "summary-key-0001"},
    }
    completion = sdk.chat.completions.create(**ask)
    assert completion.model_extra is not None
    assert completion.model_extra["gateway"]["output_type"] == "summary"
    assert completion.model_extra["gateway"]["remaining"] == 999
    item = record(gateway, "summary-key-0001")
    assert (item["output_type"]["S"], item["units"]["N"], item["status"]["S"]) == ("summary", "1", "delivered")
    guard_input(gateway.bedrock, ["Summarize this."])
    with pytest.raises(openai.ConflictError) as replayed:
        sdk.chat.completions.create(**ask)
    assert replayed.value.status_code == 409
    assert (replayed.value.code, replayed.value.type) == ("duplicate_request", "invalid_request_error")
    assert "summary-key-0001 was already processed" in replayed.value.message
    usage = http_result(handler.lambda_handler(rest_event("GET", "/v1/usage"), FakeContext()))
    assert [q["used"] for q in usage.body["quotas"] if q["output_type"] == "summary"] == [1]  # counted once


def test_an_exhausted_quota_is_a_rate_limit_error_with_retry_after_and_the_quota(
    gateway: Gateway, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_quota(monkeypatch, "chat", 1, "MONTH")
    guard_input(gateway.bedrock, ["Hello?"])
    converse_ok(gateway.bedrock, PRO, "Hi.")
    guard_output(gateway.bedrock, "Hi.")
    sdk = client(served)
    sdk.chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hello?"}])
    guard_input(gateway.bedrock, ["Hello?"])
    with pytest.raises(openai.RateLimitError) as refused:
        sdk.chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hello?"}])
    error = refused.value
    assert error.response.headers["Retry-After"] == str(41 * 3600 + 15 * 60)  # until the month's end
    assert (error.code, error.type, error.param) == ("rate_limit_exceeded", "rate_limit_error", None)
    assert error.body == {
        "message": "the chat quota of group customer-gold is used up until 2026-12-01T00:00:00+00:00",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
        "used": 1,
        "limit": 1,
        "remaining": 0,
        "resets_at": "2026-12-01T00:00:00+00:00",
    }


def test_a_blocked_input_is_a_bad_request_with_code_content_filter_and_nothing_charged(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Which stocks should I buy?"], BLOCKED_TOPIC)
    with pytest.raises(openai.BadRequestError) as blocked:
        client(served).chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Which stocks should I buy?"}],
            extra_headers={"Idempotency-Key": "blocked-key-0001"},
        )
    assert (blocked.value.code, blocked.value.type) == ("content_filter", "invalid_request_error")
    assert error_body(blocked.value)["message"] == "This request can't be processed under the usage policy."
    # Admitted beside the guardrail's check, then given back.
    record = gateway.ledger.record("blocked-key-0001", group="customer-gold", user="user-1")
    assert record is not None
    assert record["status"]["S"] == "released"


def test_models_list_is_exactly_the_callers_groups_allowed_models(gateway: Gateway, served: Served) -> None:
    gold = client(served).models.list()
    assert [(m.id, m.object, m.created, m.owned_by) for m in gold.data] == [
        (PRO, "model", 0, "aws-bedrock"),
        (LITE, "model", 0, "aws-bedrock"),
    ]
    assert [m.id for m in client(served, "basic-token").models.list().data] == [LITE, MICRO]


@pytest.mark.parametrize(
    ("ask", "param", "fragment"),
    [
        ({"messages": []}, "messages", "at least 1 item"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "messages.0.role", "'system', 'developer', 'user'"),
        ({"temperature": 1.5}, "temperature", "less than or equal to 1"),
        ({"max_tokens": 1001}, "max_tokens", "at most 1000 for output type chat"),
        ({"max_completion_tokens": 0}, "max_completion_tokens", "greater than or equal to 1"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages.0.content",
            "only text parts are supported, not image_url",
        ),
        ({"extra_body": {"tools": []}}, "tools", "Extra inputs are not permitted"),
        ({"extra_body": {"output_type": "poem"}}, "output_type", "unknown output type poem"),
    ],
)
def test_a_bad_body_is_a_bad_request_naming_the_field_before_any_aws_call(
    ask: dict[str, Any], param: str, fragment: str, gateway: Gateway, served: Served
) -> None:
    request: dict[str, Any] = {"model": PRO, "messages": [{"role": "user", "content": "Hi"}], **ask}
    with pytest.raises(openai.BadRequestError) as refused:
        client(served).chat.completions.create(**request)
    assert refused.value.param == param
    assert fragment in refused.value.message
    assert refused.value.type == "invalid_request_error"


def test_a_model_outside_the_group_is_model_not_found(gateway: Gateway, served: Served) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client(served, "basic-token").chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hi"}])
    assert (missing.value.code, missing.value.param) == ("model_not_found", "model")
    assert error_body(missing.value)["message"] == f"The model `{PRO}` does not exist or you do not have access to it."


def streams(gateway: Gateway, texts: list[str], model: str = PRO) -> None:
    """The model streams ``texts`` as its deltas (ConverseStream, checked against the service model)."""
    expected = {"modelId": model, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    gateway.bedrock.add_response("converse_stream", {"stream": FakeEventStream(answer(texts), [])}, expected)


def test_a_streamed_completion_reaches_the_sdk_piece_by_piece_each_piece_guarded_and_metered_once(
    gateway: Gateway, served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    streams(gateway, ["Hi there. ", "Write to ", "ada@example.com ", "today.\n", "Bye."])
    # The first sentence goes at once; the next piece waits for 250 characters or the end.
    guard_output(gateway.bedrock, "Hi there. ")
    guard_output(gateway.bedrock, "Write to ada@example.com today.\nBye.", anonymized("Write to {EMAIL} today.\nBye."))
    stream = client(served).chat.completions.create(
        model=PRO,
        messages=[{"role": "user", "content": "Hello?"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"Idempotency-Key": "stream-key-0001"},
    )
    chunks = list(stream)
    assert {(c.id, c.object, c.model, c.created) for c in chunks} == {
        ("chatcmpl-stream-key-0001", "chat.completion.chunk", PRO, int(NOW.timestamp()))
    }
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    # What the caller reads is what the guardrail returned, piece by piece: the address masked.
    assert [d.content for d in deltas[1:] if d.content] == ["Hi there. ", "Write to {EMAIL} today.\nBye."]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (50, 400, 450)
    served.finished()  # metered after [DONE]: the SDK may have returned before
    item = record(gateway, "stream-key-0001")
    assert (item["status"]["S"], item["output_tokens"]["N"], item["units"]["N"]) == ("delivered", "400", "1")
    (event,) = served.events
    assert event["resource"] == "/v1/chat/completions"
    # The output, counted when the stream ends (after the handler's own flush), is still the
    # group's and the output type's: the dashboards chart outputs by both.
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (outputs,) = [document for document in emf if "Outputs" in document]
    assert (outputs["Outputs"], outputs["Group"], outputs["OutputType"]) == ([1.0], "customer-gold", "chat")


def test_a_stream_blocked_by_the_output_guardrail_stops_there_and_is_charged_for_what_was_sent(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Advice?"])
    streams(gateway, ["Sure. ", "Buy these stocks now. ", "More."])
    guard_output(gateway.bedrock, "Sure. ")
    guard_output(gateway.bedrock, "Buy these stocks now. More.", BLOCKED_TOPIC)
    chunks = list(
        client(served).chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Advice?"}],
            stream=True,
            extra_headers={"Idempotency-Key": "stream-key-0002"},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Sure. "
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert record(gateway, "stream-key-0002")["status"]["S"] == "delivered"  # the caller has "Sure. "


def test_a_streamed_request_over_its_quota_is_a_rate_limit_error_before_any_byte(
    gateway: Gateway, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    exhaust_daily_chat_quota(monkeypatch)
    guard_input(gateway.bedrock, ["Hello?"])
    with pytest.raises(openai.RateLimitError) as refused:
        client(served).chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hello?"}], stream=True)
    assert refused.value.response.headers["Retry-After"] == str(17 * 3600 + 15 * 60)  # until the day's end
    assert refused.value.code == "rate_limit_exceeded"


def test_stream_true_reaching_the_buffered_function_is_refused_before_any_aws_call(gateway: Gateway) -> None:
    error = refused_with(call(completions({"model": PRO, "messages": [USER_TURN], "stream": True})))
    assert (error["code"], error["param"]) == ("streaming_unavailable", "stream")


def test_models_failing_upstream_are_an_api_error_the_sdk_raises_and_the_units_are_released(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    for model in (PRO, LITE):
        gateway.bedrock.add_client_error(
            "converse",
            service_error_code="ServiceUnavailableException",
            http_status_code=503,
            expected_params={"modelId": model, "system": ANY, "messages": ANY, "inferenceConfig": ANY},
        )
    with pytest.raises(openai.InternalServerError) as failed:
        client(served).chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Hello?"}],
            extra_headers={"Idempotency-Key": "failing-key-0001"},
        )
    assert failed.value.status_code == 503
    assert (failed.value.type, failed.value.code) == ("api_error", "upstream_unavailable")
    assert failed.value.response.headers["Retry-After"] == "5"
    assert record(gateway, "failing-key-0001")["status"]["S"] == "released"


def test_a_group_without_gateway_access_is_permission_denied_and_an_unknown_token_unauthorized(
    gateway: Gateway, served: Served
) -> None:
    with pytest.raises(openai.PermissionDeniedError) as denied:
        client(served, "stranger-token").models.list()
    assert (denied.value.type, denied.value.code) == ("permission_error", "forbidden")
    with pytest.raises(openai.AuthenticationError):  # API Gateway's own 401 (the authorizer)
        client(served, "forged-token").models.list()


def test_an_agent_produced_output_type_gets_the_callers_token_system_text_and_token_limit(
    routed: tuple[Gateway, FakeAgentCore],  # noqa: F811 - the agents tests' fixture, imported above
    served: Served,
) -> None:
    gateway, agent = routed
    report = handler.policy().outputs["report"]
    assert report.agent == "report_writer"
    guard_input(gateway.bedrock, ["Use tables.", "Q3 numbers"])
    agent.reply("A report.")
    guard_output(gateway.bedrock, "A report.")
    completion = client(served, TOKEN).chat.completions.create(
        model=PRO,
        messages=[{"role": "system", "content": "Use tables."}, {"role": "user", "content": "Q3 numbers"}],
        max_tokens=700,
        extra_body={"output_type": "report", "session_id": "report-session-1"},
    )
    assert completion.choices[0].message.content == "A report."
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (900, 120)
    assert completion.model_extra is not None
    extension = completion.model_extra["gateway"]
    assert (extension["agent"], extension["session_id"], extension["output_type"]) == (
        "report_writer",
        "report-session-1",
        "report",
    )
    (request,) = agent.seen
    body = request["body"]
    assert body["messages"] == [{"role": "user", "content": "Q3 numbers"}]
    assert body["instructions"] == f"{report.instructions}\n\nUse tables."
    assert body["max_tokens"] == 700
    assert request["headers"][CALLER_TOKEN_HEADER] == TOKEN


def test_an_agent_produced_output_type_does_not_stream_and_nothing_is_admitted(
    routed: tuple[Gateway, FakeAgentCore],  # noqa: F811 - the agents tests' fixture, imported above
    served: Served,
) -> None:
    gateway, agent = routed  # no guardrail answer queued: refused before any check
    with pytest.raises(openai.BadRequestError) as refused:
        client(served, TOKEN).chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Q3 numbers"}],
            stream=True,
            extra_body={"output_type": "report"},
            extra_headers={"Idempotency-Key": "report-stream-0001"},
        )
    assert (refused.value.code, refused.value.param) == ("streaming_unavailable", "stream")
    assert "output type report is produced by an agent" in refused.value.message
    assert agent.seen == []
    assert gateway.ledger.record("report-stream-0001", group=GOLD["group"], user=GOLD["user"]) is None


# --- the handler: parsing and its edge cases ------------------------------------------------------


def completions(body: Any, **kwargs: Any) -> dict[str, Any]:
    return rest_event("POST", "/v1/chat/completions", body, **kwargs)


def call(event: dict[str, Any]) -> HttpResult:
    return http_result(handler.lambda_handler(event, FakeContext()))


def refused_with(result: HttpResult, status: int = 400) -> dict[str, Any]:
    """The OpenAI error of a refusal: exactly its four fields (plus any extension), never a trace."""
    assert result.status == status, result.body
    assert set(result.body) == {"error"}
    error = result.body["error"]
    assert {"message", "type", "param", "code"} <= set(error)
    assert "Traceback" not in json.dumps(result.body)
    return dict(error)


def user(content: Any) -> dict[str, Any]:
    return {"model": PRO, "messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_hostile_bodies_are_400s_in_openais_shape(body: str, gateway: Gateway) -> None:
    error = refused_with(call(completions(body)))
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (user(5), "messages.0.content", "valid string"),
        (user(None), "messages.0.content", "valid string"),
        (user({"type": "text", "text": "x"}), "messages.0.content", "valid string"),
        (user([{"type": "text", "text": 5}]), "messages.0.content", "part 0: a text part is"),
        (user([{"type": "text", "text": "a", "cache": 1}]), "messages.0.content", "part 0: a text part is"),
        (user(["just a string"]), "messages.0.content", "part 0: only text parts are supported"),
        (user([{"type": "x" * 1000}]), "messages.0.content", "only text parts are supported"),
        (user([{"type": "text", "text": "a"}] * 51), "messages.0.content", "at most 50 parts"),
        (user("[" * 15_000 + "]" * 15_000), None, "context_length_exceeded"),  # a string is text, whatever it holds
        (user("x" * 200_001), "messages.0.content", "at most 200000 characters"),
        (user(""), "messages", "every user message needs some text"),
        (user([]), "messages", "every user message needs some text"),
        (user(" \n"), "messages", "every user message needs some text"),
        ({"model": PRO, "messages": [{"role": "system", "content": "Only rules."}]}, "messages", "last non-system"),
        (
            {"model": PRO, "messages": [{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "Q"}]},
            "messages",
            "first non-system message must be the user's",
        ),
        ({"model": PRO, "messages": [{"role": "user", "content": "Q"}] * 201}, "messages", "at most 200 items"),
        ({**user("Hi"), "messages": [{"role": "user"}]}, "messages.0.content", "Field required"),
        ({**user("Hi"), "max_tokens": "100"}, "max_tokens", "valid integer"),
        ({**user("Hi"), "max_tokens": True}, "max_tokens", "valid integer"),
        ({**user("Hi"), "max_tokens": 10.5}, "max_tokens", "valid integer"),
        ({**user("Hi"), "temperature": -0.1}, "temperature", "greater than or equal to 0"),
        ({**user("Hi"), "temperature": "hot"}, "temperature", "valid number"),
        ({**user("Hi"), "stream": "yes"}, "stream", "valid boolean"),
        ({**user("Hi"), "stream_options": {"include_usage": 1}}, "stream_options.include_usage", "valid boolean"),
        ({**user("Hi"), "model": 7}, "model", "valid string"),
        ({**user("Hi"), "session_id": "short"}, "session_id", "match pattern"),
        ({**user("Hi"), "output_type": "Report!"}, "output_type", "match pattern"),
        # Values that would change the answer stay refused by name (those that change nothing pass).
        ({**user("Hi"), "n": 2}, "n", "one choice is generated"),
        ({**user("Hi"), "n": 0}, "n", "unsupported_value"),
        ({**user("Hi"), "logprobs": True}, "logprobs", "log probabilities are not returned"),
        ({**user("Hi"), "frequency_penalty": 0.5}, "frequency_penalty", "send 0"),
        ({**user("Hi"), "presence_penalty": -1}, "presence_penalty", "send 0"),
        ({**user("Hi"), "store": True}, "store", "not stored"),
        ({**user("Hi"), "tools": [{"type": "function"}]}, "tools", "unknown_parameter"),
        ({**user("Hi"), "response_format": {"type": "json_schema"}}, "response_format", "unsupported_value"),
        ({**user("Hi"), "stream_options": {"include_usage": True}}, "stream_options", "only allowed when stream"),
        ({**user("Hi"), "stream": False, "stream_options": {}}, "stream_options", "only allowed when stream"),
        ({**user("Hi"), "stop": ["a", "b", "c", "d", "e"]}, "stop", "at most 4 stop sequences"),
        ({**user("Hi"), "stop": ""}, "stop", "1 to 256 characters"),
        ({**user("Hi"), "stop": ["x" * 257]}, "stop", "1 to 256 characters"),
        ({**user("Hi"), "stop": [1]}, "stop.0", "valid string"),
        ({**user("Hi"), "stop": 5}, "stop", "a string or a list of strings"),  # never a union member's name
        ({**user("Hi"), "top_p": 1.5}, "top_p", "less than or equal to 1"),
        ({**user("Hi"), "top_p": "high"}, "top_p", "valid number"),
        ({**user("Hi"), "metadata": {"k": "v" * 513}}, "metadata", "values of at most 512"),
        (
            {"messages": [USER_TURN, {"role": "assistant", "content": "A", "tool_calls": [{"id": "c"}]}, USER_TURN]},
            "messages.1.tool_calls",
            "tool calls are not supported",
        ),
        (
            {"messages": [USER_TURN, {"role": "assistant", "content": "A", "function_call": {"name": "f"}}, USER_TURN]},
            "messages.1.function_call",
            "function calls are not supported",
        ),
        (
            {"messages": [USER_TURN, {"role": "assistant", "content": "A", "audio": {"id": "a"}}, USER_TURN]},
            "messages.1.audio",
            "audio is not supported",
        ),
        (
            {"messages": [USER_TURN, {"role": "assistant", "content": "A", "refusal": "No."}, USER_TURN]},
            "messages.1.refusal",
            "a refusal is not accepted back",
        ),
        ({"messages": [{**USER_TURN, "refusal": None}]}, "messages.0.refusal", "unknown_parameter"),
        (
            {"messages": [{"role": "system", "content": "S", "tool_calls": []}, USER_TURN]},
            "messages.0.tool_calls",
            "unknown_parameter",
        ),
    ],
)
def test_malformed_fields_are_400s_naming_the_field_never_500s(
    body: dict[str, Any], param: str | None, fragment: str, gateway: Gateway
) -> None:
    error = refused_with(call(completions(body)))
    assert error["param"] == param
    assert fragment in error["message"] or fragment == error["code"]


def test_error_codes_follow_openais_names_for_missing_unknown_and_mistyped_fields(gateway: Gateway) -> None:
    assert refused_with(call(completions({"model": PRO})))["code"] == "missing_required_parameter"
    assert refused_with(call(completions({**user("Hi"), "tools": []})))["code"] == "unknown_parameter"
    assert refused_with(call(completions({**user("Hi"), "max_tokens": "9"})))["code"] == "invalid_type"
    assert refused_with(call(completions({**user("Hi"), "temperature": 3})))["code"] == "invalid_value"
    assert refused_with(call(completions("{")))["param"] is None  # not JSON: the body, not a field


def test_text_parts_are_joined_and_consecutive_turns_merged_before_the_model(gateway: Gateway) -> None:
    texts = ["Rules.", "More rules.", "Part one\nPart two", "Earlier answer", "Follow-up", "And another"]
    guard_input(gateway.bedrock, texts)
    converse_ok(
        gateway.bedrock,
        LITE,
        "Fine.",
        {
            "modelId": LITE,
            "system": [{"text": f"{INSTRUCTIONS}\n\nRules.\n\nMore rules."}],
            "messages": [
                {"role": "user", "content": [{"text": "Part one\nPart two"}]},
                {"role": "assistant", "content": [{"text": "Earlier answer"}]},
                {"role": "user", "content": [{"text": "Follow-up\n\nAnd another"}]},
            ],
            "inferenceConfig": {"maxTokens": 50},
        },
    )
    guard_output(gateway.bedrock, "Fine.")
    body = {
        "model": LITE,
        "max_completion_tokens": 50,
        "max_tokens": 999,  # max_completion_tokens wins, as OpenAI documents
        "messages": [
            {"role": "system", "content": "Rules."},
            {"role": "user", "content": [{"type": "text", "text": "Part one"}, {"type": "text", "text": "Part two"}]},
            {"role": "developer", "content": "More rules."},
            {"role": "assistant", "content": "Earlier answer", "name": "bot"},
            {"role": "user", "content": "Follow-up"},
            {"role": "user", "content": "And another"},
        ],
    }
    result = call(completions(body))
    assert result.status == 200, result.body
    assert result.body["model"] == LITE


def test_a_model_stopping_at_its_token_limit_finishes_with_length(gateway: Gateway) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    gateway.bedrock.add_response(
        "converse",
        converse_answer([{"text": "Cut"}], "max_tokens", input_tokens=3, output_tokens=1),
        {"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": {"maxTokens": 1}},
    )
    guard_output(gateway.bedrock, "Cut")
    result = call(completions({**user("Hi"), "max_tokens": 1}))
    assert result.body["choices"][0]["finish_reason"] == "length"
    assert result.body["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def test_a_blocked_output_is_withheld_with_content_filter_and_not_charged(gateway: Gateway) -> None:
    guard_input(gateway.bedrock, ["Tell me"])
    converse_ok(gateway.bedrock, PRO, "Buy ACME now!")
    guard_output(gateway.bedrock, "Buy ACME now!", BLOCKED_TOPIC)
    result = call(completions(user("Tell me")))
    assert result.status == 200
    (choice,) = result.body["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"]["content"] == "This request can't be processed under the usage policy."
    assert (result.body["gateway"]["guardrail"], result.body["gateway"]["units"]) == ("blocked", 0)
    assert record(gateway, "api-req-1")["status"]["S"] == "released"


def test_headers_carry_the_output_type_and_session_when_the_body_does_not(gateway: Gateway) -> None:
    summary = POLICY.outputs["summary"]
    guard_input(gateway.bedrock, ["Long text"])
    converse_ok(
        gateway.bedrock,
        PRO,
        "Short.",
        expected_converse("Long text", system=summary.instructions, inference={"maxTokens": summary.max_tokens}),
    )
    guard_output(gateway.bedrock, "Short.")
    headers = {"x-output-type": "summary", "X-Session-Id": "session-0001"}
    result = call(completions(user("Long text"), headers=headers))
    assert (result.status, result.body["gateway"]["output_type"]) == (200, "summary")
    bad = refused_with(call(completions(user("Hi"), headers={"X-Output-Type": "Summary!"})))
    assert (bad["param"], bad["message"]) == ("output_type", "X-Output-Type: not a valid output_type")


def test_output_types_outside_the_group_are_forbidden_and_bad_keys_refused_in_openais_shape(
    gateway: Gateway,
) -> None:
    basic = {**BASIC}
    forbidden = refused_with(
        call(completions({**user("Hi"), "model": LITE, "output_type": "report"}, authorizer=basic)), 403
    )
    assert (forbidden["type"], forbidden["code"]) == ("permission_error", "forbidden")
    key = refused_with(call(completions(user("Hi"), headers={"Idempotency-Key": "bad key!"})))
    assert (key["code"], key["type"]) == ("invalid_value", "invalid_request_error")
    too_long = refused_with(call(completions(user("x" * 20_001))))
    assert too_long["code"] == "context_length_exceeded"


def test_an_unexpected_failure_is_a_500_in_openais_shape_without_a_trace(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(handler, "flow", broken)
    error = refused_with(call(completions(user("Hi"))), 500)
    assert error == {
        "message": "the request failed; quote the correlation id",
        "type": "api_error",
        "param": None,
        "code": "internal_error",
    }


def test_the_models_route_and_the_existing_routes_keep_their_shapes(gateway: Gateway) -> None:
    listed = call(rest_event("GET", "/v1/models", authorizer=BASIC))
    assert listed.body == {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": "aws-bedrock"} for m in (LITE, MICRO)],
    }
    old = call(rest_event("POST", "/v1/chat", {"messages": []}))
    assert (old.status, old.body["error"]) == (422, "invalid_request")  # the gateway's own shape, unchanged


def mostly(valid: st.SearchStrategy[Any], other: st.SearchStrategy[Any] = json_values) -> st.SearchStrategy[Any]:
    """Valid values four times in five, ``other`` (any JSON value) otherwise."""
    return st.one_of(valid, valid, valid, valid, other)


part = st.fixed_dictionaries({"type": mostly(st.just("text"))}, optional={"text": mostly(st.text(max_size=20))})
message = st.fixed_dictionaries(
    {"role": mostly(st.sampled_from(["system", "developer", "user", "assistant"]))},
    optional={"content": mostly(st.text(min_size=1, max_size=30) | st.lists(part, min_size=1, max_size=3))},
)
# A valid request with fields added or replaced, mostly by valid values: it reaches every check,
# and the model often enough.
valid_requests = st.fixed_dictionaries(
    {},
    optional={
        "messages": mostly(
            st.lists(SYSTEM_TURN, max_size=2).map(lambda m: [*m, USER_TURN]),
            st.lists(message, min_size=1, max_size=3).map(lambda m: [*m, USER_TURN]) | json_values,
        ),
        "model": mostly(st.sampled_from([PRO, LITE]), st.sampled_from([MICRO, "x"]) | json_values),
        "max_tokens": mostly(st.integers(1, 800), st.integers(-5, 2000) | json_values),
        "max_completion_tokens": mostly(st.integers(1, 800), st.integers(-5, 2000) | json_values),
        "temperature": mostly(st.floats(0, 1), st.floats(-1, 3) | json_values),
        "stream": mostly(st.just(False), st.booleans() | json_values),
        "output_type": mostly(st.sampled_from(["chat", "summary", "report"]), st.just("nope") | json_values),
        "user": mostly(st.text(max_size=10)),
    },
).map(lambda fields: json.dumps({"model": PRO, "messages": [USER_TURN], **fields}))
completion_bodies = st.one_of(
    valid_requests,
    valid_requests,
    valid_requests,
    json_values.map(json.dumps),
    st.sampled_from(list(HOSTILE_BODIES.values())),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=completion_bodies,
    headers=st.fixed_dictionaries(
        {},
        optional={
            "Idempotency-Key": mostly(st.just("client-key-0001"), st.text(max_size=20)),
            "X-Output-Type": mostly(st.just("summary"), st.text(max_size=20)),
            "X-Session-Id": mostly(st.just("session-0001"), st.text(max_size=20)),
        },
    ).map(lambda headers: {name: str(value) for name, value in headers.items()}),
)
def test_any_body_on_the_openai_routes_is_an_openai_answer_never_a_5xx(body: str, headers: dict[str, str]) -> None:
    with pytest.MonkeyPatch.context() as patch:
        deps = model_only(AnsweringBedrock())
        patch.setattr(handler, "dependencies", lambda: deps)
        patch.setattr(handler, "policy", lambda: POLICY)
        environment(patch)
        result = call(completions(body, headers=headers))
    handler.settings.cache_clear()
    event(f"status {result.status}")
    assert result.status < 500, result.body
    if result.status == 200:
        assert result.body["object"] == "chat.completion"
        assert result.body["choices"][0]["message"]["content"] == "Hi."
    else:
        error = refused_with(result, result.status)
        assert error["type"] in {"invalid_request_error", "permission_error"}


@pytest.mark.parametrize(
    ("header", "values"),
    [
        ("X-Output-Type", ["summary", "chat"]),
        ("X-Session-Id", ["session-0001", "session-0002"]),
        ("Idempotency-Key", ["client-key-0001", "client-key-0002"]),
    ],
)
def test_a_header_sent_twice_with_different_values_is_refused_not_read_as_its_last(
    gateway: Gateway, header: str, values: list[str]
) -> None:
    event = completions(user("Hi"), headers={header: values[-1]})  # API Gateway's `headers`: the last
    event["multiValueHeaders"] = {header.lower(): values}
    error = refused_with(call(event))  # OpenAI's shape: a 400 invalid_request_error
    assert error["message"] == f"{header}: sent more than once with different values"
