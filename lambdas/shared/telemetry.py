"""Stage attribution: every unit of work says which stage it was, how long it took and how it
ended, in one log line, three metrics and one span that all carry the same conversation id.

Stages: retrieval, generation, guardrail, tool, usage, ingestion. Span and log attributes follow
the OpenTelemetry generative-AI semantic conventions (``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ``gen_ai.conversation.id``, ...). The
metrics are CloudWatch EMF with the single dimension ``Stage`` (alarmable): ``StageRequests``,
``StageErrors`` and ``StageLatency``. Spans go through the OpenTelemetry API: exported where an
SDK is configured (AgentCore's ADOT, the ADOT Lambda layer), no-ops elsewhere. No prompt,
answer or argument value is ever an attribute.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from shared.observability import STAGES, Dimension, Metric, Stage

__all__ = ["CONVERSATION", "STAGES", "TRACE", "Stage", "StageRecord", "emit", "emit_all", "stage"]

CONVERSATION = "gen_ai.conversation.id"
TRACE = "aws.xray.trace_id"
Attribute = str | int | float | bool | list[str]


class StageRecord:
    """What a unit of work adds while it runs (model, tokens, tool name, outcome detail)."""

    def __init__(self, attributes: Mapping[str, Attribute]) -> None:
        self.attributes: dict[str, Attribute] = dict(attributes)
        self.outcome = "ok"

    def update(self, attributes: Mapping[str, Attribute]) -> None:
        self.attributes.update(attributes)

    def end(self, outcome: Literal["error", "intervened", "refused"], reason: str) -> None:
        """An answer that is not plain success without an exception: a tool error ("error"), a
        guardrail intervention ("intervened"), a quota refusal ("refused"). Only errors count
        in StageErrors."""
        self.outcome = outcome
        self.attributes["outcome.reason"] = reason


@contextmanager
def stage(
    name: Stage,
    logger: Logger,
    *,
    conversation: str | None = None,
    namespace: str | None = None,
    **attributes: Attribute,
) -> Iterator[StageRecord]:
    record = StageRecord({"stage": name, **attributes})
    if conversation:
        record.attributes[CONVERSATION] = conversation
    trace_id = os.environ.get("_X_AMZN_TRACE_ID", "").split(";")[0].removeprefix("Root=")
    if trace_id:
        record.attributes[TRACE] = trace_id
    started = time.perf_counter()
    span = _tracer().start_span(f"{name} {attributes.get('gen_ai.operation.name', name)}")
    try:
        yield record
    except Exception as error:
        if record.outcome == "ok":  # a refusal the work marked before raising stays a refusal
            record.outcome = "error"
            record.attributes.setdefault("error.type", type(error).__name__)
        raise
    finally:
        latency_ms = (time.perf_counter() - started) * 1000
        record.attributes["outcome"] = record.outcome
        for key, value in record.attributes.items():
            span.set_attribute(key, value)
        span.end()
        _metrics(name, latency_ms, record.outcome == "error", namespace, conversation)
        logger.info("stage", extra={**record.attributes, "latency_ms": round(latency_ms, 3)})


def _metrics(name: str, latency_ms: float, failed: bool, namespace: str | None, conversation: str | None) -> None:
    emit_all(
        [
            (Metric.STAGE_REQUESTS, MetricUnit.Count, 1.0),
            (Metric.STAGE_ERRORS, MetricUnit.Count, 1.0 if failed else 0.0),
            (Metric.STAGE_LATENCY, MetricUnit.Milliseconds, latency_ms),
        ],
        {Dimension.STAGE: name},
        namespace=namespace,
        metadata={CONVERSATION: conversation} if conversation else None,
    )


def emit(
    name: str,
    unit: MetricUnit,
    value: float,
    dimensions: Mapping[str, str],
    *,
    namespace: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """One EMF metric with exactly these dimensions."""
    emit_all([(name, unit, value)], dimensions, namespace=namespace, metadata=metadata)


def emit_all(
    values: Sequence[tuple[str, MetricUnit, float]],
    dimensions: Mapping[str, str],
    *,
    namespace: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """One EMF document with exactly these dimensions: Powertools would add ``service`` to every
    dimension set, and the dashboards and alarms address these metrics without it."""
    metrics = EphemeralMetrics(
        namespace=namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "genai"), service=""
    )
    for key, dimension in dimensions.items():
        metrics.add_dimension(key, dimension)
    for name, unit, value in values:
        metrics.add_metric(name=name, unit=unit, value=value)
    for key, meta in (metadata or {}).items():
        metrics.add_metadata(key, meta)
    metrics.flush_metrics()


@cache
def _tracer() -> Any:
    # Imported on first use, not at cold start: the API costs ~20 ms to import.
    from opentelemetry import trace

    return trace.get_tracer("genai-blueprint")
