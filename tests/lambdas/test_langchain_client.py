"""The gateway's OpenAI-compatible routes called by LangChain's ``ChatOpenAI`` (langchain-openai), the
way an application built on LangChain would call them: ``base_url=<api>/v1``, the access token as the
API key, the gateway's own fields in ``extra_body`` or headers.

The same served function and stubbed Bedrock as the ``openai`` SDK's tests (test_openai_compat.py);
every queued Bedrock answer must be used. LangChain re-raises the SDK's errors as subclasses of
both the SDK's class and its own (``langchain_core.exceptions``), so callers may catch either.
tiktoken is installed with langchain-openai but never used here: counting tokens would download
its encodings, which the ``offline`` fixture forbids.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import openai
import pytest
import tiktoken
from botocore.stub import ANY
from langchain_core.exceptions import ContextOverflowError, ModelInvalidRequestError, ModelRateLimitError
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from tests.lambdas import test_ai_gateway_critical_path as critical_path, test_openai_compat as sdk
from tests.lambdas.gateway_fixtures import (
    BLOCKED_TOPIC,
    LITE,
    POLICY,
    PRO,
    Gateway,
    anonymized,
    converse_ok,
    exhaust_daily_chat_quota,
    guard_input,
    guard_output,
)
from tests.lambdas.openai_server import Served
from tests.lambdas.test_ai_gateway_critical_path import answers
from tests.lambdas.test_openai_compat import INSTRUCTIONS, expected_converse, record, streams

# The SDK tests' fixtures (pytest finds a fixture by its name in the module): the served function,
# and the gateway keeping its sessions' transcripts.
served = sdk.served
sessions = critical_path.sessions

SESSION = "lc-session-0001"


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing here may reach past the loopback server: no token counting (tiktoken would fetch its
    encodings) and no LangSmith tracing, whatever the developer's environment says."""

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("tiktoken was asked for an encoding (a download)")

    monkeypatch.setattr(tiktoken, "get_encoding", refused)
    monkeypatch.setattr(tiktoken, "encoding_for_model", refused)
    for name in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2", "LANGSMITH_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def chat_model(served: Served, token: str = "gold-token", **options: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=f"{served.url}/v1",
        api_key=SecretStr(token),
        model=PRO,
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),  # straight to the loopback server
        **options,
    )


def sent(served: Served, index: int = 0) -> dict[str, Any]:
    """The JSON body LangChain sent in the ``index``-th request."""
    body = served.events[index]["body"]
    assert isinstance(body, str)
    document: dict[str, Any] = json.loads(body)
    return document


def test_invoke_answers_the_guarded_text_with_its_usage_and_model(gateway: Gateway, served: Served) -> None:
    guard_input(gateway.bedrock, ["Be terse.", "Hello?"])
    converse_ok(
        gateway.bedrock,
        PRO,
        "Write to ada@example.com.",
        expected_converse(
            "Hello?", system=f"{INSTRUCTIONS}\n\nBe terse.", inference={"maxTokens": 200, "temperature": 0.2}
        ),
    )
    guard_output(gateway.bedrock, "Write to ada@example.com.", anonymized("Write to {EMAIL}."))
    model = chat_model(served, max_tokens=200, temperature=0.2, default_headers={"Idempotency-Key": "lc-key-0001"})
    reply = model.invoke([SystemMessage("Be terse."), HumanMessage("Hello?")])
    assert isinstance(reply, AIMessage)
    assert reply.content == "Write to {EMAIL}."  # what the output guardrail returned, not the model's text
    assert reply.usage_metadata is not None
    usage = reply.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (50, 20, 70)
    metadata = reply.response_metadata
    assert (metadata["model_name"], metadata["finish_reason"], metadata["id"]) == (
        PRO,
        "stop",
        "chatcmpl-lc-key-0001",
    )
    item = record(gateway, "lc-key-0001")  # the default header reached the gateway as the idempotency key
    assert (item["status"]["S"], item["output_type"]["S"], item["output_tokens"]["N"]) == ("delivered", "chat", "20")
    assert sent(served)["model"] == PRO


def test_the_model_named_in_the_answer_is_the_one_that_answered_not_the_one_asked(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    gateway.bedrock.add_client_error(
        "converse",
        service_error_code="ServiceUnavailableException",
        http_status_code=503,
        expected_params={"modelId": PRO, "system": ANY, "messages": ANY, "inferenceConfig": ANY},
    )
    converse_ok(gateway.bedrock, LITE, "Hi.")
    guard_output(gateway.bedrock, "Hi.")
    reply = chat_model(served).invoke([HumanMessage("Hello?")])
    assert reply.content == "Hi."
    assert reply.response_metadata["model_name"] == LITE  # the group's next model, as the gateway reported it


def test_stream_yields_the_guarded_pieces_as_separate_chunks_with_the_usage_at_the_end(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Hello?"])
    streams(gateway, ["Hi there. ", "Write to ", "ada@example.com ", "today.\n", "Bye."])
    # The first sentence goes at once; the rest waits for 250 characters or the end.
    guard_output(gateway.bedrock, "Hi there. ")
    guard_output(gateway.bedrock, "Write to ada@example.com today.\nBye.", anonymized("Write to {EMAIL} today.\nBye."))
    model = chat_model(served, stream_usage=True, default_headers={"Idempotency-Key": "lc-stream-0001"})
    chunks = list(model.stream([HumanMessage("Hello?")]))
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    assert [chunk.content for chunk in chunks if chunk.content] == ["Hi there. ", "Write to {EMAIL} today.\nBye."]
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert whole.content == "Hi there. Write to {EMAIL} today.\nBye."
    assert whole.usage_metadata is not None
    usage = whole.usage_metadata
    assert (usage["input_tokens"], usage["output_tokens"], usage["total_tokens"]) == (50, 400, 450)
    assert (whole.response_metadata["finish_reason"], whole.response_metadata["model_name"]) == ("stop", PRO)
    body = sent(served)
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})
    served.finished()  # metered after [DONE], which LangChain may have read before
    item = record(gateway, "lc-stream-0001")
    assert (item["status"]["S"], item["output_tokens"]["N"], item["units"]["N"]) == ("delivered", "400", "1")


def test_a_stream_the_output_guardrail_blocks_ends_there_with_content_filter(gateway: Gateway, served: Served) -> None:
    guard_input(gateway.bedrock, ["Advice?"])
    streams(gateway, ["Sure. ", "Buy these stocks now. ", "More."])
    guard_output(gateway.bedrock, "Sure. ")
    guard_output(gateway.bedrock, "Buy these stocks now. More.", BLOCKED_TOPIC)
    model = chat_model(served, default_headers={"Idempotency-Key": "lc-stream-0002"})
    chunks = list(model.stream([HumanMessage("Advice?")]))
    assert "".join(str(chunk.content) for chunk in chunks) == "Sure. "
    assert [c.response_metadata["finish_reason"] for c in chunks if "finish_reason" in c.response_metadata] == [
        "content_filter"
    ]
    assert record(gateway, "lc-stream-0002")["status"]["S"] == "delivered"  # the caller has "Sure. "


def invoke(model: ChatOpenAI, messages: list[BaseMessage]) -> Any:
    return model.invoke(messages)


def stream(model: ChatOpenAI, messages: list[BaseMessage]) -> Any:
    return list(model.stream(messages))


@pytest.mark.parametrize("call", [invoke, stream])
def test_an_exhausted_quota_is_the_sdks_rate_limit_error_through_langchain(
    call: Callable[[ChatOpenAI, list[BaseMessage]], Any],
    gateway: Gateway,
    served: Served,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exhaust_daily_chat_quota(monkeypatch)
    guard_input(gateway.bedrock, ["Hello?"])
    with pytest.raises(openai.RateLimitError) as refused:
        call(chat_model(served), [HumanMessage("Hello?")])
    error = refused.value
    assert isinstance(error, ModelRateLimitError)  # LangChain's own class too, for its callers' retry logic
    assert isinstance(error.__cause__, openai.RateLimitError)  # the SDK's error, raised from
    assert error.status_code == 429
    assert error.response.headers["Retry-After"] == str(17 * 3600 + 15 * 60)  # until the day's end
    assert (error.code, error.type) == ("rate_limit_exceeded", "rate_limit_error")
    assert isinstance(error.body, dict)
    assert (error.body["used"], error.body["limit"], error.body["remaining"]) == (0, 0, 0)


def test_a_blocked_input_is_the_sdks_bad_request_with_content_filter_and_nothing_charged(
    gateway: Gateway, served: Served
) -> None:
    guard_input(gateway.bedrock, ["Which stocks should I buy?"], BLOCKED_TOPIC)
    model = chat_model(served, default_headers={"Idempotency-Key": "lc-blocked-0001"})
    with pytest.raises(openai.BadRequestError) as blocked:
        model.invoke([HumanMessage("Which stocks should I buy?")])
    error = blocked.value
    assert isinstance(error, ModelInvalidRequestError)
    assert not isinstance(error, ContextOverflowError)  # LangChain must not take it for a too-long prompt
    assert (error.status_code, error.code, error.type) == (400, "content_filter", "invalid_request_error")
    assert isinstance(error.body, dict)
    assert error.body["message"] == "This request can't be processed under the usage policy."
    assert record(gateway, "lc-blocked-0001")["status"]["S"] == "released"


def test_an_input_over_the_gateways_limit_is_langchains_context_overflow_before_any_aws_call(
    gateway: Gateway, served: Served
) -> None:
    """OpenAI's code for it, context_length_exceeded, and the phrase langchain-openai reads as an
    overflow ("prompt is too long"), so LangChain code that trims or summarizes on
    ContextOverflowError does so against the gateway too."""
    with pytest.raises(openai.BadRequestError) as overflow:  # no Bedrock call queued: none is made
        chat_model(served).invoke([HumanMessage("x" * 20_001)])
    error = overflow.value
    assert isinstance(error, ContextOverflowError)
    assert (error.status_code, error.code, error.param) == (400, "context_length_exceeded", None)
    assert isinstance(error.body, dict)
    assert error.body["message"] == "the prompt is too long: 20001 characters of text; the limit is 20000"


@pytest.mark.parametrize(
    "options",
    [
        {"extra_body": {"output_type": "summary"}},  # the documented way (ai_gateway/openai_api.py)
        {"default_headers": {"X-Output-Type": "summary"}},  # for clients that cannot add body fields
    ],
    ids=["extra_body", "default_headers"],
)
def test_the_output_type_reaches_the_gateway_from_extra_body_or_a_default_header(
    options: dict[str, Any], gateway: Gateway, served: Served
) -> None:
    summary = POLICY.outputs["summary"]
    guard_input(gateway.bedrock, ["Summarize this."])
    converse_ok(
        gateway.bedrock,
        PRO,
        "Short.",  # answered only if the summary's instructions and token limit were used
        expected_converse("Summarize this.", system=summary.instructions, inference={"maxTokens": summary.max_tokens}),
    )
    guard_output(gateway.bedrock, "Short.")
    headers = {"Idempotency-Key": "lc-summary-0001", **options.pop("default_headers", {})}
    reply = chat_model(served, default_headers=headers, **options).invoke([HumanMessage("Summarize this.")])
    assert reply.content == "Short."
    item = record(gateway, "lc-summary-0001")
    assert (item["output_type"]["S"], item["status"]["S"]) == ("summary", "delivered")


def test_a_session_id_in_extra_body_has_the_gateway_check_only_each_turns_new_texts(
    sessions: Gateway, served: Served
) -> None:
    """LangChain resends the whole conversation every turn; with the session named, the gateway
    checks only what its transcript does not hold (a queued check of other texts fails the stub)."""
    model = chat_model(served, extra_body={"session_id": SESSION})
    history: list[BaseMessage] = [HumanMessage("Q1")]
    guard_input(sessions.bedrock, ["Q1"])
    answers(sessions, "A1", seen=[("user", "Q1")])
    history.append(model.invoke(history))
    history.append(HumanMessage("Q2"))
    guard_input(sessions.bedrock, ["A1", "Q2"])  # not Q1 again
    answers(sessions, "A2", seen=[("user", "Q1"), ("assistant", "A1"), ("user", "Q2")])
    assert model.invoke(history).content == "A2"
    assert [sent(served, turn)["session_id"] for turn in (0, 1)] == [SESSION, SESSION]
