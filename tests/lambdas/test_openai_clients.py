"""What ordinary OpenAI clients do, against the gateway's OpenAI-compatible routes: the real ``openai``
SDK (with its own retries on, where retrying is the point) and LangChain's ``ChatOpenAI``, through the
function served as API Gateway would serve it (tests/lambdas/openai_server.py).

Each test is one pattern such clients use unchanged: sending the SDK's message object back for the
next turn, retrying what the SDK retries, asking for one token, retrieving a model, the defaults
LangChain and the SDK send. Bedrock is stubbed (gateway_fixtures): every queued call must be used,
and a call nobody queued fails the test, so a retry the gateway should have stopped shows.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import openai
import pytest
from botocore.stub import ANY
from langchain_core.messages import HumanMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from ai_gateway import handler
from tests.lambdas import test_openai_compat as compat
from tests.lambdas.bedrock_fakes import FakeEventStream, answer, converse_answer, delta, stream_error
from tests.lambdas.conftest import FakeContext, HttpResult, http_result
from tests.lambdas.gateway_fixtures import (
    LITE,
    MICRO,
    PRO,
    Gateway,
    converse_ok,
    guard_input,
    guard_output,
    rest_event,
    set_quota,
    stopped_clock,
)
from tests.lambdas.openai_server import Served
from tests.lambdas.test_openai_compat import INSTRUCTIONS, record

served = compat.served  # the SDK tests' fixture: the function served on loopback

SHOULD_RETRY = "x-should-retry"


def sdk(served: Served, token: str = "gold-token", retries: int = 2) -> openai.OpenAI:
    """The SDK as an application builds it: its default retries on (the tests wait for none)."""
    return openai.OpenAI(
        base_url=f"{served.url}/v1",
        api_key=token,
        max_retries=retries,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )


def turns(*pairs: tuple[str, str]) -> list[dict[str, Any]]:
    return [{"role": role, "content": [{"text": text}]} for role, text in pairs]


def conversing(
    messages: list[dict[str, Any]], *, system: str = INSTRUCTIONS, inference: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "modelId": PRO,
        "system": [{"text": system}],
        "messages": messages,
        "inferenceConfig": inference or {"maxTokens": 1000},
    }


# --- 1. the SDK's multi-turn pattern -------------------------------------------------------------


@pytest.mark.parametrize("returned", ["object", "model_dump"])
def test_the_sdks_own_message_object_goes_back_as_the_next_turns_assistant_message(
    returned: str, gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    converse_ok(gateway.bedrock, PRO, "Hello.")
    guard_output(gateway.bedrock, "Hello.")
    client = sdk(served)
    first = client.chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hi"}])
    message = first.choices[0].message
    guard_input(gateway.bedrock, ["Hi", "Hello.", "More"])
    converse_ok(
        gateway.bedrock, PRO, "Sure.", conversing(turns(("user", "Hi"), ("assistant", "Hello."), ("user", "More")))
    )
    guard_output(gateway.bedrock, "Sure.")
    second = client.chat.completions.create(
        model=PRO,
        messages=[
            {"role": "user", "content": "Hi"},
            message if returned == "object" else message.model_dump(),  # type: ignore[list-item]
            {"role": "user", "content": "More"},
        ],
    )
    assert second.choices[0].message.content == "Sure."
    body = served.events[-1]["body"]
    assert '"refusal":null' in body.replace(" ", "")  # what the SDK sends back, accepted and dropped
    if returned == "model_dump":
        assert '"tool_calls":null' in body.replace(" ", "")


def test_an_assistant_message_with_a_tool_call_is_still_refused_by_name(gateway: Gateway, served: Served) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(served).chat.completions.create(
            model=PRO,
            messages=[
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Calling.", "tool_calls": [call]},  # type: ignore[list-item]
                {"role": "user", "content": "More"},
            ],
        )
    assert (refused.value.code, refused.value.param) == ("unsupported_value", "messages.1.tool_calls")
    assert len(served.events) == 1


def test_blank_system_and_assistant_messages_are_accepted_and_left_out(gateway: Gateway, served: Served) -> None:
    guard_input(gateway.bedrock, ["Hi", "More"])  # nothing blank is screened
    converse_ok(gateway.bedrock, PRO, "Sure.", conversing(turns(("user", "Hi\n\nMore"))))
    guard_output(gateway.bedrock, "Sure.")
    completion = sdk(served).chat.completions.create(
        model=PRO,
        messages=[
            {"role": "system", "content": ""},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": "More"},
        ],
    )
    assert completion.choices[0].message.content == "Sure."


# --- 2. answers a retry cannot change ------------------------------------------------------------


def test_a_duplicate_is_final_so_the_sdk_does_not_retry_it(gateway: Gateway, served: Served) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    converse_ok(gateway.bedrock, PRO, "Hello.")
    guard_output(gateway.bedrock, "Hello.")
    client = sdk(served)
    ask: dict[str, Any] = {
        "model": PRO,
        "messages": [{"role": "user", "content": "Hi"}],
        "extra_headers": {"Idempotency-Key": "retried-key-0001"},
    }
    client.chat.completions.create(**ask)
    guard_input(gateway.bedrock, ["Hi"])  # the replay is screened once; a retry would find nothing queued
    with pytest.raises(openai.ConflictError) as replayed:
        client.chat.completions.create(**ask)
    assert replayed.value.response.headers[SHOULD_RETRY] == "false"
    assert len(served.events) == 2


def test_a_quota_that_resets_later_than_a_minute_is_final_and_keeps_its_retry_after(
    gateway: Gateway, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_quota(monkeypatch, "chat", 0, "MONTH")
    guard_input(gateway.bedrock, ["Hi"])
    with pytest.raises(openai.RateLimitError) as refused:
        sdk(served).chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hi"}])
    headers = refused.value.response.headers
    assert (headers[SHOULD_RETRY], int(headers["Retry-After"]) > 60) == ("false", True)
    assert len(served.events) == 1


def test_a_quota_that_resets_within_a_minute_and_throttling_stay_retryable(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "clock", stopped_clock(dt.datetime(2026, 11, 29, 23, 59, 30, tzinfo=dt.UTC)))
    with monkeypatch.context() as exhausted:
        set_quota(exhausted, "chat", 0, "DAY")
        guard_input(gateway.bedrock, ["Hello?"])
        refused = completion_event({"messages": [{"role": "user", "content": "Hello?"}]})
    assert (refused.status, refused.headers["Retry-After"], SHOULD_RETRY in refused.headers) == (429, "30", False)
    guard_input(gateway.bedrock, ["Hello?"])
    for model in (PRO, LITE):
        gateway.bedrock.add_client_error(
            "converse", service_error_code="ThrottlingException", http_status_code=429, expected_params=any_call(model)
        )
    throttled = completion_event({"messages": [{"role": "user", "content": "Hello?"}]})
    assert (throttled.status, throttled.body["error"]["code"]) == (429, "rate_limit_exceeded")
    assert (throttled.headers["Retry-After"], SHOULD_RETRY in throttled.headers) == ("5", False)


def any_call(model: str) -> dict[str, Any]:
    return {"modelId": model, "system": ANY, "messages": ANY, "inferenceConfig": ANY}


def completion_event(body: dict[str, Any], request_id: str = "api-req-1") -> HttpResult:
    event = rest_event("POST", "/v1/chat/completions", {"model": PRO, **body}, request_id=request_id)
    return http_result(handler.lambda_handler(event, FakeContext()))


# --- 3. an answer cut at its token limit -----------------------------------------------------------


@pytest.mark.parametrize("text", ["\n", ""])
def test_one_token_answering_a_newline_is_delivered_metered_and_not_sent_to_the_guardrail(
    text: str, gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    gateway.bedrock.add_response(
        "converse",
        converse_answer([{"text": text}], "max_tokens", input_tokens=5, output_tokens=1),
        conversing(turns(("user", "Hi")), inference={"maxTokens": 1}),
    )
    # No guard_output: ApplyGuardrail refuses content without text, and a blank answer has none.
    completion = sdk(served).chat.completions.create(
        model=PRO,
        messages=[{"role": "user", "content": "Hi"}],
        max_tokens=1,
        extra_headers={"Idempotency-Key": "one-token-0001"},
    )
    (choice,) = completion.choices
    assert (choice.message.content, choice.finish_reason) == (text, "length")
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 1
    item = record(gateway, "one-token-0001")
    assert (item["status"]["S"], item["output_tokens"]["N"]) == ("delivered", "1")
    assert len(served.events) == 1  # nothing retried


def test_an_answer_without_text_at_end_turn_is_still_the_models_failure(gateway: Gateway, served: Served) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    gateway.bedrock.add_response("converse", converse_answer([{"text": " "}], "end_turn"), any_call(PRO))
    with pytest.raises(openai.InternalServerError) as failed:
        sdk(served, retries=0).chat.completions.create(
            model=PRO, messages=[{"role": "user", "content": "Hi"}], extra_headers={"Idempotency-Key": "blank-0001"}
        )
    assert (failed.value.status_code, failed.value.code) == (502, "upstream_error")
    assert "InvalidResponse" in failed.value.message
    assert SHOULD_RETRY not in failed.value.response.headers  # another answer may have text
    assert record(gateway, "blank-0001")["status"]["S"] == "released"


@pytest.mark.parametrize(("texts", "content"), [(["\n"], "\n"), ([], None)])
def test_a_streamed_answer_cut_at_one_token_finishes_with_length_and_is_metered(
    texts: list[str], content: str | None, gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    events = answer(texts, "max_tokens", input_tokens=5, output_tokens=1)
    gateway.bedrock.add_response("converse_stream", {"stream": FakeEventStream(events, [])}, any_call(PRO))
    chunks = list(
        sdk(served).chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=1,
            stream=True,
            extra_headers={"Idempotency-Key": "one-token-0002"},
        )
    )
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == ([content] if content else [])
    assert chunks[-1].choices[0].finish_reason == "length"
    served.finished()
    item = record(gateway, "one-token-0002")
    assert (item["status"]["S"], item["output_tokens"]["N"]) == ("delivered", "1")


# --- 4. models.retrieve ------------------------------------------------------------------------


def test_models_retrieve_answers_the_listed_object_for_the_groups_models_only(gateway: Gateway, served: Served) -> None:
    client = sdk(served, retries=0)
    listed = {model.id: model.model_dump() for model in client.models.list()}
    assert set(listed) == {PRO, LITE}
    for model in listed:
        assert client.models.retrieve(model).model_dump() == listed[model]
    event = served.events[1]
    assert (event["resource"], event["path"], event["pathParameters"]) == (
        "/v1/models/{model}",
        f"/v1/models/{PRO}",
        {"model": PRO},
    )
    assert sdk(served, "basic-token").models.retrieve(MICRO).id == MICRO
    for model, token in (("gpt-4o", "gold-token"), (PRO, "basic-token"), ("arn:aws:bedrock:x/y", "gold-token")):
        with pytest.raises(openai.NotFoundError) as missing:
            sdk(served, token, retries=0).models.retrieve(model)
        assert (missing.value.code, missing.value.param, missing.value.type) == (
            "model_not_found",
            "model",
            "invalid_request_error",
        )
        assert f"`{model}`" in missing.value.message  # decoded once: the SDK sends "/" as %2F
    with pytest.raises(openai.PermissionDeniedError):
        sdk(served, "stranger-token", retries=0).models.retrieve(PRO)


def model_event(segment: str, *, parameters: bool = True, method: str = "GET") -> HttpResult:
    event = rest_event(method, f"/v1/models/{segment}")
    event["resource"] = event["requestContext"]["resourcePath"] = "/v1/models/{model}"
    event["pathParameters"] = {"model": segment} if parameters else None
    return http_result(handler.lambda_handler(event, FakeContext()))


@pytest.mark.parametrize("parameters", [True, False])
def test_a_retrieved_model_id_is_decoded_once_and_checked_whole(gateway: Gateway, parameters: bool) -> None:
    found = model_event("amazon.nova-pro-v1%3A0", parameters=parameters)
    assert (found.status, found.body) == (
        200,
        {"id": PRO, "object": "model", "created": 0, "owned_by": "aws-bedrock"},
    )
    for segment in ("amazon.nova-pro-v1%253A0", f"{PRO}\n", f"{PRO}%0A", "x" * 201, "%", "a%20b", "<script>"):
        missing = model_event(segment, parameters=parameters)
        assert (missing.status, missing.body["error"]["code"], missing.body["error"]["param"]) == (
            404,
            "model_not_found",
            "model",
        )
        # None of them is an id once decoded: the answer does not echo it.
        assert missing.body["error"]["message"] == "The model does not exist or you do not have access to it."
    wrong = model_event(PRO, method="POST")
    assert (wrong.status, wrong.headers["Allow"], wrong.body["error"]["type"]) == (405, "GET", "invalid_request_error")


# --- 5. failures that are not the caller's ----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [("AccessDeniedException", 403), ("ResourceNotFoundException", 404), ("UnrecognizedClientException", 403)],
)
def test_a_model_refused_for_the_platforms_set_up_is_a_final_502_api_error(
    code: str, status: int, gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    gateway.bedrock.add_client_error(
        "converse", service_error_code=code, http_status_code=status, expected_params=any_call(PRO)
    )
    with pytest.raises(openai.InternalServerError) as failed:
        sdk(served).chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Hello?"}],
            extra_headers={"Idempotency-Key": "platform-0001"},
        )
    assert (failed.value.status_code, failed.value.type, failed.value.code) == (502, "api_error", "upstream_error")
    assert failed.value.response.headers[SHOULD_RETRY] == "false"
    assert len(served.events) == 1  # not retried: each retry would be screened (and billed) again
    assert record(gateway, "platform-0001")["status"]["S"] == "released"


def test_the_callers_own_conversation_refused_by_the_model_stays_a_bad_request(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    gateway.bedrock.add_client_error(
        "converse", service_error_code="ValidationException", http_status_code=400, expected_params=any_call(PRO)
    )
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(served).chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hello?"}])
    assert (refused.value.type, refused.value.code) == ("invalid_request_error", "upstream_rejected")


def test_the_native_chat_route_answers_the_platforms_refusal_as_a_502_too(gateway: Gateway) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    gateway.bedrock.add_client_error("converse", service_error_code="AccessDeniedException", http_status_code=403)
    event = rest_event("POST", "/v1/chat", {"messages": [{"role": "user", "content": "Hello?"}]})
    result = http_result(handler.lambda_handler(event, FakeContext()))
    assert (result.status, result.body["error"], result.headers[SHOULD_RETRY]) == (502, "upstream_error", "false")


# --- 6 and 7. the values clients send by default --------------------------------------------------


def test_defaults_that_change_nothing_are_accepted_and_stop_and_top_p_reach_the_model(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    inference = {"maxTokens": 1000, "topP": 0.5, "stopSequences": ["END"]}
    converse_ok(gateway.bedrock, PRO, "Hello.", conversing(turns(("user", "Hi")), inference=inference))
    guard_output(gateway.bedrock, "Hello.")
    completion = sdk(served).chat.completions.create(
        model=PRO,
        messages=[{"role": "user", "content": "Hi"}],
        n=1,
        stop="END",
        top_p=0.5,
        logprobs=False,
        frequency_penalty=0,
        presence_penalty=0.0,
        store=False,
        parallel_tool_calls=False,
        metadata={"app": "tests"},
        response_format={"type": "text"},
        extra_body={"stream": None},
    )
    assert completion.choices[0].message.content == "Hello."


def test_langchain_with_n_1_and_invoke_stop_reaches_the_model_buffered_and_streamed(
    gateway: Gateway, served: Served
) -> None:
    model = ChatOpenAI(
        base_url=f"{served.url}/v1",
        api_key=SecretStr("gold-token"),
        model=PRO,
        n=1,
        top_p=0.9,
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    inference = {"maxTokens": 1000, "topP": 0.9, "stopSequences": ["\n\n", "Q:"]}
    guard_input(gateway.bedrock, ["Hi"])
    converse_ok(gateway.bedrock, PRO, "Hello.", conversing(turns(("user", "Hi")), inference=inference))
    guard_output(gateway.bedrock, "Hello.")
    assert model.invoke([HumanMessage("Hi")], stop=["\n\n", "Q:"]).content == "Hello."
    guard_input(gateway.bedrock, ["Hi"])
    gateway.bedrock.add_response(
        "converse_stream",
        {"stream": FakeEventStream(answer(["Hello."], "stop_sequence"), [])},
        conversing(turns(("user", "Hi")), inference=inference),
    )
    guard_output(gateway.bedrock, "Hello.")
    streamed = "".join(str(chunk.content) for chunk in model.stream([HumanMessage("Hi")], stop=["\n\n", "Q:"]))
    assert streamed == "Hello."


def test_stream_options_need_a_stream_and_include_obfuscation_is_accepted(gateway: Gateway, served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(served).chat.completions.create(
            model=PRO, messages=[{"role": "user", "content": "Hi"}], stream_options={"include_usage": True}
        )
    assert (refused.value.param, refused.value.code) == ("stream_options", "unsupported_value")
    guard_input(gateway.bedrock, ["Hi"])
    compat.streams(gateway, ["Hello."])
    guard_output(gateway.bedrock, "Hello.")
    chunks = list(
        sdk(served).chat.completions.create(
            model=PRO,
            messages=[{"role": "user", "content": "Hi"}],
            stream=True,
            stream_options={"include_usage": True, "include_obfuscation": False},
        )
    )
    assert chunks[-1].usage is not None


def test_a_failure_mid_stream_is_openais_error_object_which_the_sdk_raises(gateway: Gateway, served: Served) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    events = [{"messageStart": {"role": "assistant"}}, delta("Part one. "), stream_error("throttlingException")]
    gateway.bedrock.add_response("converse_stream", {"stream": FakeEventStream(events, [])}, any_call(PRO))
    guard_output(gateway.bedrock, "Part one. ")
    received: list[str] = []

    def read() -> None:
        stream = sdk(served).chat.completions.create(
            model=PRO, messages=[{"role": "user", "content": "Hi"}], stream=True
        )
        received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)

    with pytest.raises(openai.APIError) as failed:
        read()
    assert "".join(received) == "Part one. "
    assert (failed.value.type, failed.value.code, failed.value.param) == (
        "rate_limit_error",
        "rate_limit_exceeded",
        None,
    )
    assert failed.value.message == "bedrock-runtime is throttling requests; retry later"
