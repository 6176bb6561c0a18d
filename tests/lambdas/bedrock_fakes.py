"""Bedrock Converse and ConverseStream answers as the service sends them, for Stubber; and a real
client answered with raw bytes, for what botocore's own parser makes of an answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EventStreamError
from botocore.stub import ANY, Stubber


def converse_answer(
    content: list[dict[str, Any]],
    stop: str = "end_turn",
    *,
    input_tokens: int = 100,
    output_tokens: int = 20,
    latency_ms: int = 10,
) -> dict[str, Any]:
    """A Converse response: the assistant's ``content`` blocks, why it stopped, and its usage."""
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": latency_ms},
    }


def agent_reply(
    stubber: Stubber, content: list[dict[str, Any]], stop: str, *, model: str, session: str, inference: Any = ANY
) -> None:
    """Queue Bedrock's answer to an agent's next Converse request, which must be for ``model`` in
    the runtime session ``session`` (Strands' request, without streaming)."""
    stubber.add_response(
        "converse",
        converse_answer(content, stop),
        {"modelId": model, "messages": ANY, "system": ANY, "toolConfig": ANY, "inferenceConfig": inference,
         "requestMetadata": {"session_id": session}},
    )  # fmt: skip


def tool_use(name: str, arguments: dict[str, Any], use_id: str = "t1") -> dict[str, Any]:
    """A content block asking for a tool."""
    return {"toolUse": {"toolUseId": use_id, "name": name, "input": arguments}}


class FakeEventStream:
    """ConverseStream's ``stream`` as botocore hands it over: events read one at a time (each read
    logged), an exception where one is placed, ``close`` recorded."""

    def __init__(self, items: list[dict[str, Any] | Exception], log: list[tuple[str, str]]) -> None:
        self.items = items
        self.log = log
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for item in self.items:
            if isinstance(item, Exception):
                raise item
            delta = item.get("contentBlockDelta", {}).get("delta", {}).get("text")
            self.log.append(("read", delta if delta is not None else next(iter(item))))
            yield item

    def close(self) -> None:
        self.closed = True


class StreamStubber(Stubber):  # type: ignore[misc]  # botocore is untyped
    """Stubber that accepts ConverseStream answers as a list of events: each event is checked
    against the stream's shape in the service model (Stubber itself takes one event, as a dict)."""

    def _validate_operation_response(self, operation_name: str, service_response: Any) -> None:
        stream = service_response.get("stream")
        if isinstance(stream, FakeEventStream):
            for item in stream.items:
                if not isinstance(item, Exception):
                    super()._validate_operation_response(operation_name, {**service_response, "stream": item})
            return
        super()._validate_operation_response(operation_name, service_response)


def delta(text: str) -> dict[str, Any]:
    return {"contentBlockDelta": {"delta": {"text": text}, "contentBlockIndex": 0}}


def answer(
    texts: list[str], stop: str = "end_turn", *, input_tokens: int = 50, output_tokens: int = 400
) -> list[dict[str, Any] | Exception]:
    return [
        {"messageStart": {"role": "assistant"}},
        *[delta(t) for t in texts],
        {"contentBlockStop": {"contentBlockIndex": 0}},
        {"messageStop": {"stopReason": stop}},
        {
            "metadata": {
                "usage": {"inputTokens": input_tokens, "outputTokens": output_tokens, "totalTokens": 450},
                "metrics": {"latencyMs": 120},
            }
        },
    ]


def stream_error(code: str) -> EventStreamError:
    """An error event as botocore raises it while the stream is read (named by its stream member)."""
    return EventStreamError({"Error": {"Code": code, "Message": "x"}}, "ConverseStream")


class _RawBody:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def answering_raw(service: str, operation: str, body: bytes, status: int = 200) -> Any:
    """A real ``service`` client whose ``operation`` gets ``body`` back as AWS's answer (JSON), so
    botocore parses it as it would AWS's: what its parser raises is what a function meets."""
    client = boto3.client(service, region_name="us-east-1")

    def send(request: Any, **_: Any) -> AWSResponse:
        return AWSResponse(request.url, status, {"content-type": "application/json"}, _RawBody(body))

    client.meta.events.register(f"before-send.{service}.{operation}", send)
    return client
