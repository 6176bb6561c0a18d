"""Live tool-call evaluation: the AI gateway's "agent turn" log lines, through a CloudWatch Logs
subscription, become metrics.

Every turn: ``ToolCalls`` and ``ToolErrors`` per tool. A turn that replays a golden case
(``evaluation_case``, sent by an internal caller) is scored like ``make eval`` scores recorded
traces: ``ToolSelectionAccuracy``, ``ToolArgumentAccuracy`` and ``ToolCallSuccessRate`` (percent)
per agent, which the dashboard shows and an alarm holds to the configured floor.

The subscription delivers turn lines only, so a line this cannot read, or a turn whose tool calls
cannot be scored, is a rejected turn: counted and logged (its kind of fault, never its content),
while the rest of the batch is scored. A tool or agent name no tool or agent can have (the model
chooses tool names) is the dimension value ``invalid``, so the metric document stays within
CloudWatch's limits. A batch that cannot be read at all (not base64, not gzip, over
MAX_BATCH_BYTES once decompressed, not the subscription's JSON) is one rejected batch, logged by
its kind of fault: retrying cannot make it readable.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Mapping
from functools import cache
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from evaluation.evaluator import GoldenCase, calls_from, load_golden_set, score
from shared.logs import service_logger
from shared.observability import AGENT_TURN_MESSAGE, Dimension, Metric
from shared.telemetry import emit_all

logger = service_logger()
TURN = AGENT_TURN_MESSAGE
# Longer than any name the tier gives a tool (a 32-character target, "___", a 48-character tool)
# or an agent, far shorter than a CloudWatch dimension value may be (1,024).
NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
INVALID = "invalid"
# Tools one turn's metrics name (a group is bound to 10 to 20): the calls of any more are counted
# under OTHER, which no tool is called (the gateway names each <target>___<tool>).
MAX_TOOLS_PER_TURN = 64
OTHER = "other"
# Far above a batch of the gateway's turn lines (the compressed batch fits one asynchronous
# invocation's payload), well below the function's memory: a payload that expands further is
# refused, not decompressed.
MAX_BATCH_BYTES = 16 * 1024 * 1024
GZIP = 16 + zlib.MAX_WBITS


class UnreadableBatchError(ValueError):
    """The subscription's payload cannot be read; ``kind`` says at which layer, never its content."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@cache
def golden() -> dict[str, GoldenCase]:
    return {case.id: case for case in load_golden_set()}


def turns(messages: list[str]) -> tuple[list[dict[str, Any]], int]:
    """The gateway's "agent turn" records among the log messages (other records are skipped), and
    how many messages could not be read (not JSON, or nested deeper than the parser goes)."""
    found = []
    unreadable = 0
    for message in messages:
        try:
            record = json.loads(message)
        except (ValueError, RecursionError):
            unreadable += 1
            continue
        if isinstance(record, dict) and record.get("message") == TURN and isinstance(record.get("tool_calls"), list):
            found.append(record)
    return found, unreadable


def dimension(value: Any, default: str = "unknown") -> str:
    """A name as a dimension value: ``default`` when there is none, ``invalid`` when no name is so."""
    if value is None or value == "":
        return default
    return value if isinstance(value, str) and NAME.fullmatch(value) else INVALID


def publish(record: dict[str, Any]) -> dict[str, float] | None:
    """Emit the turn's metrics; the case's scores when it replays a golden case. A turn that cannot
    be scored raises ValueError before anything is emitted."""
    calls: list[Any] = record["tool_calls"]
    if not all(isinstance(call, Mapping) for call in calls):
        raise ValueError("a tool call is not an object")
    replayed = record.get("evaluation_case")
    case = golden().get(replayed) if isinstance(replayed, str) else None
    result = score(case, calls_from(calls)) if case is not None else None
    # One metric document per tool the turn called, not per call: a turn's calls are as many as its
    # answer lists (2.5 KB of repeated calls wrote 480,000 log lines).
    by_tool: dict[str, tuple[float, float]] = {}  # the tool's dimension -> (calls, errors)
    for call in calls:
        tool = dimension(call.get("name"))
        if tool not in by_tool and len(by_tool) >= MAX_TOOLS_PER_TURN:
            tool = OTHER
        made, failed = by_tool.get(tool, (0.0, 0.0))
        by_tool[tool] = (made + 1, failed + (0 if call.get("ok") is True else 1))  # as the score reads it
    for tool, (made, failed) in by_tool.items():
        counts = [(Metric.TOOL_CALLS, MetricUnit.Count, made), (Metric.TOOL_ERRORS, MetricUnit.Count, failed)]
        emit_all(counts, {Dimension.TOOL: tool})
    if result is None:
        return None
    scores: dict[str, float] = {
        Metric.TOOL_SELECTION_ACCURACY: result.selection * 100,
        Metric.TOOL_ARGUMENT_ACCURACY: result.arguments * 100,
        Metric.TOOL_CALL_SUCCESS_RATE: result.success * 100,
    }
    emit_all(
        [(name, MetricUnit.Percent, value) for name, value in scores.items()],
        {Dimension.AGENT: dimension(record.get("agent"))},
    )
    return scores


def log_messages(event: Any) -> tuple[list[str], int]:
    """The log events' messages in the subscription's payload (none for its control message), and
    how many events carry no message text; UnreadableBatchError when the payload cannot be read."""
    data = event.get("awslogs") if isinstance(event, dict) else None
    data = data.get("data") if isinstance(data, dict) else None
    if not isinstance(data, str):
        raise UnreadableBatchError("no awslogs data")
    raw = _inflated(data)
    try:
        payload = json.loads(raw)
    except (ValueError, RecursionError):
        raise UnreadableBatchError("not JSON") from None
    if not isinstance(payload, dict):
        raise UnreadableBatchError("not a subscription payload")
    if payload.get("messageType") == "CONTROL_MESSAGE":  # the subscription's health check
        return [], 0
    events = payload.get("logEvents")
    if not isinstance(events, list):
        raise UnreadableBatchError("no log events")
    messages = [e.get("message") if isinstance(e, dict) else None for e in events]
    texts = [message for message in messages if isinstance(message, str)]
    return texts, len(messages) - len(texts)


def _inflated(data: str) -> bytes:
    """The subscription's data, base64 then one gzip stream, decompressed to at most MAX_BATCH_BYTES."""
    try:
        compressed = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise UnreadableBatchError("not base64") from None
    inflate = zlib.decompressobj(GZIP)
    try:
        raw = inflate.decompress(compressed, MAX_BATCH_BYTES + 1)
    except zlib.error:
        raise UnreadableBatchError("not gzip") from None
    if len(raw) > MAX_BATCH_BYTES:
        raise UnreadableBatchError("too large")
    if not inflate.eof:
        raise UnreadableBatchError("gzip cut short")
    if inflate.unused_data:  # a second gzip member or trailing bytes: CloudWatch Logs sends neither
        raise UnreadableBatchError("data after the gzip stream")
    return raw


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, int]:
    try:
        messages, without_text = log_messages(event)
    except UnreadableBatchError as error:
        logger.warning("log batch rejected", extra={"error": error.kind})
        return {"turns": 0, "golden_cases": 0, "rejected": 1}
    records, rejected = turns(messages)
    rejected += without_text
    scored = 0
    for record in records:
        try:
            scored += publish(record) is not None
        except (ValueError, RecursionError) as error:
            # The fault's kind only: a turn's tool calls may hold a caller's arguments.
            logger.warning("agent turn rejected", extra={"error": type(error).__name__})
            rejected += 1
    logger.info("turns evaluated", extra={"turns": len(records), "golden_cases": scored, "rejected": rejected})
    return {"turns": len(records), "golden_cases": scored, "rejected": rejected}
