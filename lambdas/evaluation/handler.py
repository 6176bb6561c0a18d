"""Live tool-call evaluation: the AI gateway's "agent turn" log lines, through a CloudWatch Logs
subscription, become metrics.

Every turn: ``ToolCalls`` and ``ToolErrors`` per tool. A turn that replays a golden case
(``evaluation_case``, sent by an internal caller) is scored like ``make eval`` scores recorded
traces: ``ToolSelectionAccuracy``, ``ToolArgumentAccuracy`` and ``ToolCallSuccessRate`` (percent)
per agent, which the dashboard shows and an alarm holds to the configured floor.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from evaluation.evaluator import GoldenCase, calls_from, load_golden_set, score
from shared.observability import AGENT_TURN_MESSAGE, Dimension, Metric
from shared.telemetry import emit_all

logger = Logger()
TURN = AGENT_TURN_MESSAGE


@cache
def golden() -> dict[str, GoldenCase]:
    return {case.id: case for case in load_golden_set()}


def turns(messages: list[str]) -> list[dict[str, Any]]:
    """The gateway's "agent turn" records among the log messages (others are skipped)."""
    found = []
    for message in messages:
        try:
            record = json.loads(message)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("message") == TURN and isinstance(record.get("tool_calls"), list):
            found.append(record)
    return found


def publish(record: dict[str, Any]) -> dict[str, float] | None:
    """Emit the turn's metrics; the case's scores when it replays a golden case."""
    agent = str(record.get("agent") or "unknown")
    for call in record["tool_calls"]:
        counts = [
            (Metric.TOOL_CALLS, MetricUnit.Count, 1.0),
            (Metric.TOOL_ERRORS, MetricUnit.Count, 0.0 if call.get("ok") else 1.0),
        ]
        emit_all(counts, {Dimension.TOOL: str(call.get("name") or "unknown")})
    case = golden().get(str(record.get("evaluation_case") or ""))
    if case is None:
        return None
    result = score(case, calls_from(record["tool_calls"]))
    scores: dict[str, float] = {
        Metric.TOOL_SELECTION_ACCURACY: result.selection * 100,
        Metric.TOOL_ARGUMENT_ACCURACY: result.arguments * 100,
        Metric.TOOL_CALL_SUCCESS_RATE: result.success * 100,
    }
    emit_all([(name, MetricUnit.Percent, value) for name, value in scores.items()], {Dimension.AGENT: agent})
    return scores


@event_source(data_class=CloudWatchLogsEvent)
@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: CloudWatchLogsEvent, context: LambdaContext) -> dict[str, int]:
    records = turns([e.message for e in event.parse_logs_data().log_events])
    scored = sum(1 for record in records if publish(record) is not None)
    logger.info("turns evaluated", extra={"turns": len(records), "golden_cases": scored})
    return {"turns": len(records), "golden_cases": scored}
