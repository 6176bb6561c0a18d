"""The gateway as a hostile or merely unlucky client meets it: what a probe of the public routes found
answered wrongly, each pinned by the request that showed it.

A model's stream read from a connection that stalls, breaks or carries a corrupt event raises what
botocore does not wrap: urllib3's ReadTimeoutError and ProtocolError (botocore reads ConverseStream's
events straight from urllib3's response) and botocore.eventstream's ParserError (an Exception, not a
BotoCoreError). The gateway answered those as its own bug: a 500 ``internal_error`` before the first
token (no fallback model tried, no Retry-After), and after it a stream that simply stopped, with
neither ``data: [DONE]`` nor an error event, which the ``openai`` SDK reads as a complete answer.

Bedrock is stubbed (gateway_fixtures: every queued call must be used) and the ledger is moto's; the
SDK test goes through tests/lambdas/openai_server.py. No sleeps: the failures are raised in place.
"""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from botocore.eventstream import ChecksumMismatch
from botocore.stub import ANY
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from ai_gateway import handler
from ai_gateway.agents import AgentClient
from ai_gateway.stream_runtime import StreamedResponse
from tests.lambdas import test_openai_compat as compat
from tests.lambdas.bedrock_fakes import FakeEventStream, answer, delta
from tests.lambdas.conftest import FakeContext, http_result
from tests.lambdas.gateway_fixtures import LITE, PRO, Gateway, guard_input, guard_output, rest_event
from tests.lambdas.openai_server import Served
from tests.lambdas.test_ai_gateway_agents import (  # noqa: F401 - agentcore, routed: fixtures
    CALLER,
    MEMORY,
    RUNTIMES,
    FakeAgentCore,
    agentcore,
    routed,
    with_agents,
)

served = compat.served  # the function served on loopback, as API Gateway would serve it

HELLO = [{"role": "user", "content": "Hi"}]
DONE = "data: [DONE]"


def stalled() -> ReadTimeoutError:
    """What reading a ConverseStream raises once the model is silent longer than the read timeout."""
    return ReadTimeoutError(None, "/model/x/converse-stream", "Read timed out. (read timeout=20)")  # type: ignore[arg-type]


def broken() -> ProtocolError:
    """What reading it raises when the connection is reset mid-stream."""
    return ProtocolError("Connection broken: IncompleteRead(0 bytes read, 100 more expected)")


def corrupt() -> ChecksumMismatch:
    """What reading it raises for an event whose checksum does not match (a corrupt frame)."""
    return ChecksumMismatch(1, 2)


def streams(gateway: Gateway, model: str, events: list[Any]) -> FakeEventStream:
    stream = FakeEventStream(events, [])
    expected = {"modelId": model, "system": ANY, "messages": ANY, "inferenceConfig": ANY}
    gateway.bedrock.add_response("converse_stream", {"stream": stream}, expected)
    return stream


def streamed(body: dict[str, Any], request_id: str = "probe-req-1") -> StreamedResponse | dict[str, Any]:
    event = rest_event("POST", "/v1/chat/completions", {"model": PRO, **body}, request_id=request_id)
    return handler.stream_handler(event, FakeContext())


def ledger_status(gateway: Gateway, request_id: str = "probe-req-1") -> str:
    """The request's ledger record's status (admitted, delivered, released)."""
    record = gateway.ledger.record(request_id, group="customer-gold", user="user-1")
    assert record is not None, f"no ledger record of {request_id}"
    return str(record["status"]["S"])


def sent_events(response: StreamedResponse | dict[str, Any]) -> list[str]:
    assert isinstance(response, StreamedResponse), response
    return [line.removeprefix("data: ") for line in b"".join(response.body).decode().strip().split("\n\n")]


# --- a model's stream failing before its first token --------------------------------------------


@pytest.mark.parametrize("failure", [stalled, broken], ids=["read-timeout", "connection-reset"])
def test_a_stream_failing_in_transport_before_its_first_token_falls_back_to_the_next_model(
    gateway: Gateway, failure: Any
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    first = streams(gateway, PRO, [{"messageStart": {"role": "assistant"}}, failure()])
    streams(gateway, LITE, answer(["Hello."]))
    guard_output(gateway.bedrock, "Hello.")

    events = sent_events(streamed({"messages": HELLO, "stream": True}))

    assert first.closed
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert {c["model"] for c in chunks} == {LITE}
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "Hello."


@pytest.mark.parametrize(
    ("failure", "status", "code"),
    [(stalled, 504, "upstream_timeout"), (broken, 503, "upstream_unavailable")],
    ids=["read-timeout", "connection-reset"],
)
def test_every_model_failing_in_transport_is_a_retryable_5xx_with_retry_after_not_a_500(
    gateway: Gateway, failure: Any, status: int, code: str
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    streams(gateway, PRO, [failure()])
    streams(gateway, LITE, [{"messageStart": {"role": "assistant"}}, failure()])

    response = streamed({"messages": HELLO, "stream": True})

    assert isinstance(response, dict), "a failure before the first byte is an ordinary JSON answer"
    answer_ = http_result(response)
    assert answer_.status == status, answer_.body
    assert answer_.body["error"]["type"] == "api_error"
    assert answer_.body["error"]["code"] == code
    assert answer_.headers.get("Retry-After") == "5"
    assert answer_.headers.get("x-should-retry") != "false"
    assert ledger_status(gateway) == "released"


def test_a_corrupt_event_before_the_first_token_is_the_models_failure_a_502(gateway: Gateway) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    streams(gateway, PRO, [{"messageStart": {"role": "assistant"}}, corrupt()])

    answer_ = http_result(streamed({"messages": HELLO, "stream": True}))  # type: ignore[arg-type]

    assert answer_.status == 502, answer_.body
    assert (answer_.body["error"]["type"], answer_.body["error"]["code"]) == ("api_error", "upstream_error")
    assert "InvalidResponse" in answer_.body["error"]["message"]


# --- a model's stream failing after text was sent ----------------------------------------------


@pytest.mark.parametrize(
    ("failure", "code"),
    [(stalled, "upstream_timeout"), (broken, "upstream_unavailable"), (corrupt, "upstream_error")],
    ids=["read-timeout", "connection-reset", "corrupt-event"],
)
def test_a_stream_failing_in_transport_after_text_ends_with_openais_error_event(
    gateway: Gateway, failure: Any, code: str
) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    streams(gateway, PRO, [{"messageStart": {"role": "assistant"}}, delta("Part one. "), failure()])
    guard_output(gateway.bedrock, "Part one. ")

    events = sent_events(streamed({"messages": HELLO, "stream": True}))

    assert DONE.removeprefix("data: ") not in events
    error = json.loads(events[-1])["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("api_error", code)
    # The caller has part of the output: delivered, as any stream cut after its first text.
    assert ledger_status(gateway) == "delivered"


def test_the_sdk_raises_a_stalled_stream_instead_of_returning_it_as_complete(gateway: Gateway, served: Served) -> None:
    guard_input(gateway.bedrock, ["Hi"])
    streams(gateway, PRO, [{"messageStart": {"role": "assistant"}}, delta("Part one. "), stalled()])
    guard_output(gateway.bedrock, "Part one. ")
    client = openai.OpenAI(
        base_url=f"{served.url}/v1",
        api_key="gold-token",
        max_retries=0,
        timeout=10,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    received: list[str] = []

    def read() -> None:
        stream = client.chat.completions.create(model=PRO, messages=[{"role": "user", "content": "Hi"}], stream=True)
        received.extend(c.choices[0].delta.content or "" for c in stream if c.choices)

    with pytest.raises(openai.APIError) as failed:
        read()

    assert "".join(received) == "Part one. "
    assert (failed.value.type, failed.value.code) == ("api_error", "upstream_timeout")


def test_a_bug_mid_stream_still_ends_the_stream_with_an_internal_error_event(gateway: Gateway) -> None:
    """Whatever else fails after the first byte (a bug: no upstream's failure) is OpenAI's
    ``internal_error`` event, as a 500 before the stream would have been, never a silent end."""
    guard_input(gateway.bedrock, ["Hi"])
    streams(gateway, PRO, [{"messageStart": {"role": "assistant"}}, delta("Part one. "), KeyError("contentBlock")])
    guard_output(gateway.bedrock, "Part one. ")

    events = sent_events(streamed({"messages": HELLO, "stream": True}))

    assert json.loads(events[-2])["choices"][0]["delta"] == {"content": "Part one. "}
    error = json.loads(events[-1])["error"]
    assert (error["type"], error["code"], error["param"]) == ("api_error", "internal_error", None)
    assert "contentBlock" not in error["message"]


# --- an agent's failure on the OpenAI route -------------------------------------------------------


@pytest.mark.parametrize(
    ("unreachable", "status", "code"),
    [(False, 504, "upstream_timeout"), (True, 503, "upstream_unavailable")],
    ids=["read-timeout", "unreachable"],
)
def test_an_agent_that_times_out_or_cannot_be_reached_is_openais_504_or_503_like_a_model(
    routed: tuple[Gateway, FakeAgentCore],  # noqa: F811 - the agents tests' fixture, imported above
    agentcore: tuple[str, FakeAgentCore],  # noqa: F811 - the agents tests' fixture, imported above
    monkeypatch: pytest.MonkeyPatch,
    unreachable: bool,
    status: int,
    code: str,
) -> None:
    """agents.py names a read timeout "Timeout" and no connection "ConnectionError": the OpenAI
    routes answered both as a 502 ``upstream_error``, where a model's are 504 ``upstream_timeout``
    and 503 ``upstream_unavailable`` (the error table of docs/gateway.md)."""
    gateway, agent = routed
    endpoint = "http://127.0.0.1:9" if unreachable else agentcore[0]  # nothing listens on port 9
    with_agents(monkeypatch, AgentClient(endpoint, RUNTIMES, read_seconds=0.2, memory_id=MEMORY))
    agent.hold = True  # it never answers: the client's read timeout (0.2 s) fires
    guard_input(gateway.bedrock, ["Hi"])
    event = rest_event("POST", "/v1/chat/completions", {"messages": HELLO}, headers=CALLER)

    answer_ = http_result(handler.lambda_handler(event, FakeContext()))

    assert answer_.status == status, answer_.body
    assert (answer_.body["error"]["type"], answer_.body["error"]["code"]) == ("api_error", code)
    assert answer_.headers.get("Retry-After") == "5"
