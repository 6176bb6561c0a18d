"""Bedrock Converse with ordered model fallback, the one way every function calls a model.

The first model that answers wins. A failure moves on to the next model only when another model
can help (throttling or a server error, shared.aws_errors) and only while a whole attempt still
fits before the caller's deadline; anything else, or the last model's failure, is raised as one
UpstreamError carrying its classification.

``converse_stream`` is the same with ConverseStream: a model is "answering" once its first text
arrives, so the same rule decides a fallback only before the first token; a failure after it is
the stream's, raised to whoever reads it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from shared.aws_errors import Kind, UpstreamError, call
from shared.lockstep import LateError, Lockstep

SERVICE = "bedrock-runtime"
# Converse's inferenceConfig ranges a caller's sampling settings are held to (OpenAI's temperature
# goes to 2; its stop takes four sequences, as Converse's stopSequences does).
TEMPERATURE_MAX = 1.0
TOP_P_MAX = 1.0
MAX_STOP_SEQUENCES = 4
MAX_STOP_CHARS = 256


@dataclass(frozen=True)
class Conversed:
    response: dict[str, Any]  # Converse's answer as it came
    model: str  # the model that answered
    fell_back_from: tuple[str, ...]  # the models that failed first, in order
    latency_ms: float  # the answering attempt's

    @property
    def text(self) -> str:
        return "".join(block.get("text", "") for block in self.response["output"]["message"]["content"])

    @property
    def input_tokens(self) -> int:
        return int(self.response.get("usage", {}).get("inputTokens", 0))

    @property
    def output_tokens(self) -> int:
        return int(self.response.get("usage", {}).get("outputTokens", 0))


def converse(
    client: Any,
    models: Sequence[str],
    *,
    deadline: float | None,
    attempt_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    **request: Any,
) -> Conversed:
    """Converse ``request`` (system, messages, inferenceConfig, toolConfig, ...) with ``models`` in
    order. ``deadline`` is on ``clock``'s scale (None: no bound); another model is tried only while
    ``attempt_seconds`` still fit before it."""
    if not models:
        raise ValueError("models: at least one model id")
    failed: list[str] = []
    for index, model in enumerate(models):
        started = time.perf_counter()
        try:
            with call(SERVICE, caller_facing=True):
                response: dict[str, Any] = client.converse(modelId=model, **request)
        except UpstreamError as error:
            if not falls_back(
                error, last=index == len(models) - 1, left=_left(deadline, clock), attempt=attempt_seconds
            ):
                raise
            failed.append(model)
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        return Conversed(response=response, model=model, fell_back_from=tuple(failed), latency_ms=latency_ms)
    raise AssertionError("unreachable: the last model's failure is raised")


def falls_back(error: UpstreamError, *, last: bool, left: float | None, attempt: float) -> bool:
    """Whether a model's failure moves on to the next model: another model can help (throttled or
    unavailable), there is one, and a whole ``attempt`` still fits in the ``left`` seconds (None:
    no deadline)."""
    return error.retryable and not last and (left is None or left >= attempt)


def _left(deadline: float | None, clock: Callable[[], float]) -> float | None:
    return None if deadline is None else deadline - clock()


MODEL_STREAM_ERROR = "ModelStreamErrorException"
# A stream that is cut off at its deadline is the model's failure to finish in time.
DEADLINE_CODE = "StreamDeadlineExceeded"


@dataclass
class Streamed:
    """A ConverseStream answer whose first text (or end) has arrived: its events in order, the
    model that answered and the ones that failed first. Reading it raises UpstreamError for a
    failure mid-stream (an error event, a lost connection, the deadline); ``close`` releases
    the connection when the reader stops early."""

    model: str
    fell_back_from: tuple[str, ...]
    first_event_ms: float  # from the answering attempt's request to its first text (or end)
    events: Iterator[dict[str, Any]]
    _stream: Any

    def close(self) -> None:
        closer = getattr(self._stream, "close", None)
        if closer is not None:
            closer()


def converse_stream(
    client: Any,
    models: Sequence[str],
    *,
    deadline: float | None,
    attempt_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    **request: Any,
) -> Streamed:
    """ConverseStream ``request`` with ``models`` in order, falling back as ``converse`` does while
    no text has arrived: the events up to the first text delta are read here (a throttling or
    server error event among them is the model's failure, like a failed call). The returned
    events stop with an UpstreamError once ``clock`` passes ``deadline``."""
    if not models:
        raise ValueError("models: at least one model id")
    failed: list[str] = []
    for index, model in enumerate(models):
        started = time.perf_counter()
        stream: Any = None
        try:
            with call(SERVICE, caller_facing=True):
                stream = client.converse_stream(modelId=model, **request)["stream"]
            events = _bounded(iter(stream), deadline, clock)
            head = _until_first_text(events)
        except UpstreamError as error:
            if stream is not None:
                getattr(stream, "close", lambda: None)()
            if not falls_back(
                error, last=index == len(models) - 1, left=_left(deadline, clock), attempt=attempt_seconds
            ):
                raise
            failed.append(model)
            continue
        first_ms = (time.perf_counter() - started) * 1000
        return Streamed(model, tuple(failed), first_ms, itertools.chain(head, events), stream)
    raise AssertionError("unreachable: the last model's failure is raised")


def _bounded(
    events: Iterator[dict[str, Any]], deadline: float | None, clock: Callable[[], float]
) -> Iterator[dict[str, Any]]:
    """The stream's events, each read failure as an UpstreamError, none once the deadline passed.

    With a deadline, each event is read on the stream's own thread (one read at a time, when the
    reader asks for it) and waited for at most until the deadline: a model silent mid-stream would
    otherwise hold the reader for the client's read timeout (botocore's timeouts are per socket
    read), past the end of the function that streams. A read given up on ends by itself at that
    timeout, or when the stream is closed, on a thread nothing waits for."""
    if deadline is None:
        while (event := _read(events)) is not None:
            yield event
        return
    reader = Lockstep("converse-stream")
    try:
        while True:
            try:
                event = reader.run(lambda: _read(events), deadline - clock())
            except LateError:
                raise UpstreamError(SERVICE, DEADLINE_CODE, 504, Kind.UNAVAILABLE) from None
            if event is None:
                return
            yield event
    finally:
        reader.stop()


def _read(events: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The next event (None at the end), a read failure as an UpstreamError."""
    try:
        with call(SERVICE, caller_facing=True):
            return next(events, None)
    except UpstreamError as error:
        raise _stream_error(error) from None


def _stream_error(error: UpstreamError) -> UpstreamError:
    """An error event as its operation's error: botocore names it by its stream member
    ("throttlingException"), the service's code is capitalized ("ThrottlingException"). A model
    stream error is the model's failure (AWS: retry), so another model may help."""
    code = error.code[:1].upper() + error.code[1:]
    if code == error.code and code != MODEL_STREAM_ERROR:
        return error
    kind = Kind.UNAVAILABLE if code == MODEL_STREAM_ERROR else None
    return UpstreamError(error.service, code, error.status, kind, caller_facing=error.caller_facing)


def _until_first_text(events: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events up to and including the first that carries text, or all of them if none does."""
    head: list[dict[str, Any]] = []
    for event in events:
        head.append(event)
        if event.get("contentBlockDelta", {}).get("delta", {}).get("text"):
            break
    return head
