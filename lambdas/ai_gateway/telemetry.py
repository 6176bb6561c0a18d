"""Everything the gateway measures and logs about a request, in one recorder.

Metrics are named in ai_gateway.contract (the dashboards and alarms address them there). Only
counts, latencies, models, group and output type names, reasons and ids are written: never a
prompt, an answer or a tool argument (except a golden evaluation case's, see agent_turn).

An agent's tool calls reach CloudWatch from here, as stage "tool" (shared.telemetry's stage
metrics): EMF a Lambda function prints is extracted reliably, an agent runtime's is not.

The request's own metrics (by service, Group and OutputType), its stages, and its metrics
dimensioned otherwise (a model's tokens and cost, a guardrail source's interventions) are held
in memory and written by one shared.telemetry.Recorder as the request's EMF documents when the
request's Powertools metrics are flushed (the handler's ``@metrics.log_metrics``, once per
invocation): docs/observability.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from ai_gateway.agents import AgentTurn
from ai_gateway.contract import INPUT, Dimension, Metric
from ai_gateway.guardrail import Verdict
from ai_gateway.models import OutputPolicy
from ai_gateway.router import Generation
from shared import observability
from shared.aws_errors import UpstreamError
from shared.observability import AGENT_TURN_MESSAGE
from shared.telemetry import CONVERSATION, MAX_VALUES, Recorder, Stage, StageContext, Values, emit, emit_all

COUNT = MetricUnit.Count
MILLISECONDS = MetricUnit.Milliseconds
_COUNT, _MILLISECONDS = COUNT.value, MILLISECONDS.value
TOOL: Stage = "tool"


class Telemetry:
    """The request's metrics, stages and log lines, written as one request's documents.

    ``metrics`` (Powertools) names the namespace and the service, and is where the request ends:
    whoever flushes it (the handler's ``log_metrics``, once per invocation, or a test) flushes the
    request. The request's own metrics (dimensioned by service, Group and OutputType, as
    Powertools would) are held here and written by the stages' recorder in the same EMF documents
    as the stages: Powertools' add_metric and its own document cost more than all the stages.
    """

    def __init__(self, metrics: Metrics, logger: Logger) -> None:
        self._logger = logger
        provider = metrics.provider
        self._namespace = provider.namespace
        self._stages = Recorder(logger, provider.namespace)
        self._service: dict[str, str] = {"service": provider.service} if provider.service else {}
        self._dimensions: dict[str, str] = {}  # Group, OutputType
        self._values: Values = {}
        flush_metrics = provider.flush_metrics

        def flush_with_stages(*args: Any, **kwargs: Any) -> None:
            self.flush()
            if provider.metric_set:  # anything added to Powertools' metrics directly
                flush_metrics(*args, **kwargs)

        setattr(provider, "flush_metrics", flush_with_stages)  # noqa: B010

    def start(self) -> None:
        """A new invocation: no group or output type yet (the last one's stay until then, so a
        stream's metrics, written after the handler's own flush, keep its request's)."""
        self._dimensions = {}

    def flush(self) -> None:
        """Write what the request holds now (the metrics' flush does it too)."""
        values, self._values = self._values, {}
        self._stages.flush(self._request(values) if values else None)

    def _request(self, values: Values) -> tuple[dict[str, str], Values]:
        """The request's own metrics as the recorder writes them: their dimensions and values."""
        return {**self._service, **self._dimensions}, values

    # --- the request ---------------------------------------------------------------------------

    def request(self, group: str) -> None:
        """A request from a configured group: only those become a dimension, so claims cannot
        mint new metric series."""
        self._dimensions[Dimension.GROUP] = group
        self._count(Metric.REQUESTS)

    def output_type(self, output_type: str) -> None:
        self._dimensions[Dimension.OUTPUT_TYPE] = output_type

    def correlate(self, conversation: str) -> None:
        """One conversation id on every later log line and on the request's metrics."""
        self._logger.append_keys(**{CONVERSATION: conversation})
        self._stages.correlate(conversation)

    def refused(self, status: int, code: str, *, log: bool = True) -> None:
        # Counted by the stage metrics (a stage's outcome) and, for quotas, QuotaRefusalsByGroup.
        if log:
            self._logger.info("refused", extra={"status": status, "error": code})

    def upstream_failed(self, error: UpstreamError) -> None:
        self._logger.warning(
            "upstream call failed", extra={"upstream": error.service, "code": error.code, "kind": error.kind.value}
        )
        self._count(Metric.UPSTREAM_ERRORS)

    # --- stages --------------------------------------------------------------------------------

    def stage(self, name: Stage, conversation: str, attributes: Mapping[str, Any]) -> StageContext:
        """A stage of this request (shared.telemetry), carrying its conversation id."""
        return self._stages.stage_of(name, conversation, attributes)

    @contextmanager
    def timed(self, metric: Metric) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._hold(metric, _MILLISECONDS, (time.perf_counter() - started) * 1000)

    def guarded(self, source: str, conversation: str, check: Callable[[], Verdict]) -> Verdict:
        """One ApplyGuardrail stage (INPUT or OUTPUT), timed, its interventions counted."""
        latency = Metric.GUARDRAIL_INPUT_LATENCY if source == INPUT else Metric.GUARDRAIL_OUTPUT_LATENCY
        attributes = {"gen_ai.operation.name": "apply_guardrail", "aws.bedrock.guardrail.source": source}
        with self.stage("guardrail", conversation, attributes) as record:
            with self.timed(latency):
                verdict = check()
            if verdict.intervened:
                record.end("intervened", ",".join(verdict.reasons) or "intervened")
                self._stages.add(Metric.GUARDRAIL_INTERVENTIONS, COUNT, 1, {Dimension.SOURCE: source})
        if verdict.intervened:
            by_source = (
                Metric.GUARDRAIL_INPUT_INTERVENTIONS if source == INPUT else Metric.GUARDRAIL_OUTPUT_INTERVENTIONS
            )
            self._count(by_source)
            self._logger.info(
                "guardrail intervened",
                extra={"stage": source.lower(), "blocked": verdict.blocked, "reasons": list(verdict.reasons)},
            )
        return verdict

    def input_characters(self, characters: int) -> None:
        """What one input check sends the guardrail (what it bills by)."""
        self._count(Metric.GUARDRAIL_INPUT_CHARACTERS, characters)

    def transcript_failed(self, operation: str, error: Exception) -> None:
        # The turn goes on: a read that failed checks every text, a write that failed the next turn's.
        upstream = (
            {"upstream": error.service, "code": error.code}
            if isinstance(error, UpstreamError)
            else {"error": type(error).__name__}
        )
        self._logger.warning("session transcript not available", extra={"operation": operation, **upstream})
        self._count(Metric.TRANSCRIPT_ERRORS)

    def transcript_skipped(self) -> None:
        """A transcript not written: too large, or a concurrent turn of the session wrote first."""
        self._count(Metric.TRANSCRIPTS_SKIPPED)

    # --- the ledger ----------------------------------------------------------------------------

    def quota_refused(self, group: str) -> None:
        # A line of its own, written now: the quota Contributor Insights rule counts such lines
        # by the first metric of their first directive (stacks/production/observability.py).
        emit(Metric.QUOTA_REFUSALS_BY_GROUP, COUNT, 1, {str(Dimension.GROUP): group})

    def release_failed(self, request_id: str, error: UpstreamError) -> None:
        # The sweeper gives the units back after its bound; until then they count as used.
        self._logger.error(
            "release failed: units stay admitted",
            extra={"request_id": request_id, "upstream": error.service, "code": error.code},
        )

    def metering_failed(self, request_id: str, error: UpstreamError) -> None:
        # A buffered output is then withheld unless the ledger has it delivered after all; a
        # stream's (its text gone) stays delivering, for the sweeper to settle as delivered.
        self._logger.error(
            "delivery not recorded",
            extra={"request_id": request_id, "upstream": error.service, "code": error.code},
        )
        # A line of its own, by service alone: the MeteringErrors alarm reads it across groups.
        emit(Metric.METERING_ERRORS, COUNT, 1, self._service, namespace=self._namespace)

    def output_withheld(self, request_id: str, *, released: bool) -> None:
        self._logger.error(
            "output withheld: its delivery is not on the ledger",
            extra={"request_id": request_id, "units": "released" if released else "left to the sweeper"},
        )

    # --- generation ----------------------------------------------------------------------------

    def generated(self, generation: Generation) -> None:
        self._hold(Metric.GENERATION_LATENCY, _MILLISECONDS, generation.latency_ms)

    def agent_turn(
        self, agent: str, turn: AgentTurn, calls: list[dict[str, Any]], case: str | None, conversation: str
    ) -> None:
        """The tool-call trace the evaluator (lambdas/evaluation) reads from this log: tool names
        and outcomes always; arguments only in ``calls`` an internal evaluation case carries. Each
        call the agent reported is a "tool" stage of the conversation (counts and latency only)."""
        self._count(Metric.AGENT_ITERATIONS, turn.iterations)
        self._count(Metric.AGENT_TOOL_CALLS, len(turn.calls))
        self._count(Metric.AGENT_TOOL_ERRORS, turn.tool_errors)
        for call in turn.calls:
            _tool_stage(call, conversation, self._stages)
        self._logger.info(
            AGENT_TURN_MESSAGE,
            extra={
                "agent": agent,
                "stop": turn.stop,
                "iterations": turn.iterations,
                "tool_calls": calls,
                **({"evaluation_case": case} if case else {}),
            },
        )

    def memory_failed(self, error: UpstreamError) -> None:
        # The caller has the answer; the session's memory lacks the turn.
        self._logger.warning("agent turn not remembered", extra={"upstream": error.service, "code": error.code})

    def delivered(self, request_id: str, output: OutputPolicy, generation: Generation, guardrail: str) -> None:
        self._count(Metric.OUTPUTS)
        self._count(Metric.UNITS, output.units)
        by_model: dict[str, str] = {Dimension.MODEL: generation.model}
        self._stages.add(Metric.MODEL_INPUT_TOKENS, COUNT, generation.input_tokens, by_model)
        self._stages.add(Metric.MODEL_OUTPUT_TOKENS, COUNT, generation.output_tokens, by_model)
        self._stages.add(Metric.ESTIMATED_COST_USD, MetricUnit.NoUnit, output.units * output.unit_price_usd, by_model)
        self._count(Metric.INPUT_TOKENS, generation.input_tokens)
        self._count(Metric.OUTPUT_TOKENS, generation.output_tokens)
        if generation.fell_back_from:
            self._count(Metric.MODEL_FALLBACKS, len(generation.fell_back_from))
        self._logger.info(
            "output delivered",
            extra={
                "request_id": request_id,
                "model": generation.model,
                "fell_back_from": list(generation.fell_back_from),
                "input_tokens": generation.input_tokens,
                "output_tokens": generation.output_tokens,
                "guardrail_output": guardrail,
            },
        )

    def _count(self, metric: Metric, value: float = 1) -> None:
        self._hold(metric, _COUNT, value)

    def _hold(self, metric: Metric, unit: str, value: float) -> None:
        """One of the request's own metric values (a non-finite one is dropped: EMF cannot carry
        it; at MAX_VALUES of one metric, what is held is written first, as Powertools does)."""
        if not math.isfinite(value):
            return
        held = self._values.get(metric)
        if held is None:
            self._values[metric] = (unit, [float(value)])
            return
        if len(held[1]) >= MAX_VALUES:
            self._stages.flush(self._request(self._values))
            self._values = {metric: (unit, [float(value)])}
            return
        held[1].append(float(value))


def _tool_stage(call: dict[str, Any], conversation: str, recorder: Recorder | None = None) -> None:
    """One tool call's stage metrics, as shared.telemetry's stage emits them: held by the
    request's recorder, or written now without one. A call the agent reports without a latency
    was never made (its turn ran out of time first): no tool work to count, and no made-up
    latency to drag the percentiles."""
    latency = call.get("latency_ms")
    if not isinstance(latency, int | float) or isinstance(latency, bool) or not 0 <= latency < math.inf:
        return  # NaN and infinity too: a metric of neither is charted
    if recorder is not None:
        recorder.correlate(conversation)
        recorder.stage_metrics(TOOL, float(latency), failed=not call.get("ok"))
        return
    values = [
        (observability.Metric.STAGE_REQUESTS, COUNT, 1.0),
        (observability.Metric.STAGE_ERRORS, COUNT, 0.0 if call.get("ok") else 1.0),
        (observability.Metric.STAGE_LATENCY, MILLISECONDS, float(latency)),
    ]
    emit_all(values, {observability.Dimension.STAGE: TOOL}, metadata={CONVERSATION: conversation})
