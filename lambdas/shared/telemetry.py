"""Stage attribution: every unit of work says which stage it was, how long it took and how it
ended, in CloudWatch metrics, a log record and (where tracing is on) a span that all carry the
same conversation id.

Stages: retrieval, generation, guardrail, tool, usage, ingestion. Span and log attributes follow
the OpenTelemetry generative-AI semantic conventions (``gen_ai.operation.name``,
``gen_ai.request.model``, ``gen_ai.usage.input_tokens``, ``gen_ai.conversation.id``, ...). The
metrics are CloudWatch EMF with the single dimension ``Stage`` (alarmable): ``StageRequests``,
``StageErrors`` and ``StageLatency``. No prompt, answer or argument value is ever an attribute.

A ``Recorder`` holds a request's stages and metrics in memory and writes them at ``flush()`` as
the request's stage documents (docs/observability.md): one EMF JSON line per distinct ``Stage``
(EMF has one value per dimension key in a document, so the usage, guardrail and generation
stages of one request cannot share one), each stage's values as an array, other metrics of the
request (a ``Model``'s tokens, a guardrail ``Source``'s interventions) as further directives of
those lines, and in the first line the request's log record: ``"message": "stages"`` with each
stage's attributes, outcome and latency in ``stages``. The AI gateway flushes once per request
(ai_gateway.telemetry); ``stage()`` alone flushes when its one stage ends. The lines are written
directly (no EphemeralMetrics, no Logger record per stage), into a layout rendered once per shape
of request (namespace, dimension values, metric names): that is what keeps a request's telemetry
near 0.05 ms (bench/gateway_bench.py).

Spans go through the OpenTelemetry API only where a tracer provider is configured (AgentCore's
ADOT, the ADOT Lambda layer, the tests' SDK): without one the API is not even imported.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import Enum
from functools import cache, lru_cache
from json import JSONEncoder
from json.encoder import c_make_encoder, encode_basestring_ascii as _string  # type: ignore[attr-defined]
from time import perf_counter, time
from typing import Any, Literal

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit

from shared.observability import STAGES, Dimension, Metric, Stage

__all__ = [
    "CONVERSATION",
    "STAGES",
    "STAGES_MESSAGE",
    "TRACE",
    "Recorder",
    "Stage",
    "StageContext",
    "StageRecord",
    "emit",
    "emit_all",
    "stage",
]

CONVERSATION = "gen_ai.conversation.id"
TRACE = "aws.xray.trace_id"
STAGES_MESSAGE = "stages"  # the "message" of the log record a stage document carries
Attribute = str | int | float | bool | list[str]
# EMF takes at most 100 values per metric in one document: a recorder nobody flushes stays bounded.
MAX_VALUES = 100
_COUNT = MetricUnit.Count.value
_MILLISECONDS = MetricUnit.Milliseconds.value
_STAGE_REQUESTS, _STAGE_ERRORS, _STAGE_LATENCY = (
    str(Metric.STAGE_REQUESTS),
    str(Metric.STAGE_ERRORS),
    str(Metric.STAGE_LATENCY),
)
_STAGE = str(Dimension.STAGE)
_STAGE_METRICS = ((_STAGE_REQUESTS, _COUNT), (_STAGE_ERRORS, _COUNT), (_STAGE_LATENCY, _MILLISECONDS))

# The stages' log records: json's C encoder, called without JSONEncoder.encode's per-call set-up
# where the interpreter has it (compact separators, ASCII, no circular check: plain data only).
_ENCODER = JSONEncoder(separators=(",", ":"))
_CHUNKS = c_make_encoder and c_make_encoder(None, _ENCODER.default, _string, None, ":", ",", False, False, True)


def _encode(value: Any) -> str:
    return "".join(_CHUNKS(value, 0)) if _CHUNKS else _ENCODER.encode(value)


DimensionKey = tuple[tuple[str, str], ...]
Values = dict[str, tuple[str, list[float]]]  # metric name -> (unit, values)


class StageRecord:
    """What a unit of work adds while it runs (model, tokens, tool name, outcome detail)."""

    __slots__ = ("attributes", "outcome")

    def __init__(self, attributes: Mapping[str, Attribute], stage: str | None = None) -> None:
        # With ``stage``, the attributes start as the stage's log record does: its name first.
        self.attributes: dict[str, Attribute] = {"stage": stage, **attributes} if stage else dict(attributes)
        self.outcome = "ok"

    def update(self, attributes: Mapping[str, Attribute]) -> None:
        self.attributes.update(attributes)

    def end(self, outcome: Literal["error", "intervened", "refused"], reason: str) -> None:
        """An answer that is not plain success without an exception: a tool error ("error"), a
        guardrail intervention ("intervened"), a quota refusal ("refused"). Only errors count
        in StageErrors."""
        self.outcome = outcome
        self.attributes["outcome.reason"] = reason


class Recorder:
    """One request's stages and metrics, written as its stage documents at ``flush()``."""

    def __init__(self, logger: Logger, namespace: str | None = None) -> None:
        self._logger = logger
        self._namespace = namespace
        self._stages: list[dict[str, Attribute]] = []  # each stage's log record
        self._measured: dict[str, list[list[float]]] = {}  # stage -> its requests, errors, latencies
        self._held = 0  # how many stages _measured holds
        self._metrics: dict[DimensionKey, Values] = {}
        self._metadata: dict[str, str] = {}
        self._tracing: bool | None = None  # decided at the request's first stage
        self._prefix_for: tuple[Any, Any] = (None, None)
        self._prefix = ""

    def stage(self, name: Stage, *, conversation: str | None = None, **attributes: Attribute) -> StageContext:
        """A stage of this request: ``with recorder.stage(...) as record:``."""
        return self.stage_of(name, conversation, attributes)

    def stage_of(self, name: Stage, conversation: str | None, attributes: Mapping[str, Attribute]) -> StageContext:
        """``stage()`` with its attributes as a mapping (a caller that has them as one)."""
        if conversation:
            self._metadata[CONVERSATION] = conversation
        if self._tracing is None:
            self._tracing = _tracing()
        return StageContext(self, name, conversation, attributes)

    def stage_metrics(self, name: str, latency_ms: float, *, failed: bool) -> None:
        """A stage's three metrics (a stage measured elsewhere, e.g. an agent's tool call)."""
        if self._held >= MAX_VALUES:
            self.flush()
        self._measure(name, latency_ms, 1.0 if failed else 0.0)

    def _measure(self, name: str, latency_ms: float, failed: float) -> None:
        lists = self._measured.get(name)
        if lists is None:
            self._measured[name] = [[1.0], [failed], [latency_ms]]
        else:
            lists[0].append(1.0)
            lists[1].append(failed)
            lists[2].append(latency_ms)
        self._held += 1

    def add(self, name: str, unit: MetricUnit | str, value: float, dimensions: Mapping[str, str]) -> None:
        """One metric value with exactly these dimensions (a non-finite value is dropped: EMF
        cannot carry it)."""
        if not math.isfinite(value):
            return
        key = tuple(dimensions.items())
        values = self._metrics.get(key)
        if values is None:
            values = self._metrics[key] = {}
        held = values.get(name)
        if held is None:
            values[name] = (_unit(unit), [float(value)])
        elif len(held[1]) < MAX_VALUES:
            held[1].append(float(value))
        else:
            self.flush()
            self._metrics[key] = {name: (_unit(unit), [float(value)])}

    def correlate(self, conversation: str) -> None:
        self._metadata[CONVERSATION] = conversation

    def flush(self, request: tuple[Mapping[str, str], Values] | None = None) -> None:
        """Write what is held (nothing if nothing is) and start the next request empty; with
        ``request``, the request's own metrics (dimensions, values) in the same documents."""
        stages, measured, metrics, metadata = self._stages, self._measured, self._metrics, self._metadata
        self._stages, self._measured, self._metrics, self._metadata, self._tracing = [], {}, {}, {}, None
        self._held = 0
        if not stages and not measured and not metrics and not request:
            return
        trace_id = _trace_id()
        if trace_id:
            metadata[TRACE] = trace_id
        # Stage sets first: a document's first directive is a stage's wherever it has one.
        sets: list[MetricSet] = [(_stage_key(name), _STAGE_METRICS, lists) for name, lists in measured.items()]
        if request:
            metrics = {tuple(request[0].items()): request[1], **metrics}
        for key, values in metrics.items():
            sets.append(
                (key, tuple([(name, unit) for name, (unit, _) in values.items()]), [v for _, v in values.values()])
            )
        documents = _documents(self._namespace, sets, metadata)
        if stages:
            record = f'{self._record_prefix()},"stages":{_encode(stages)}'
            if documents:
                documents[0] = f"{documents[0][:-1]},{record}}}"
            else:
                documents = ["{" + "".join(f"{member}," for member in _members(metadata)) + record + "}"]
        sys.stdout.write("\n".join(documents) + "\n")

    def _record_prefix(self) -> str:
        """The stages log record's fields before ``stages``: the same for every flush of an
        invocation (its service and correlation id), so rendered once per change."""
        service, correlation = self._logger.service, self._logger.get_correlation_id()
        if (service, correlation) != self._prefix_for:
            record = f'"message":"{STAGES_MESSAGE}","level":"INFO"'
            if service:
                record += f',"service":{_string(str(service))}'
            if correlation:
                record += f',"correlation_id":{_string(str(correlation))}'
            self._prefix_for, self._prefix = (service, correlation), record
        return self._prefix


class StageContext:
    """A stage while it runs: times it, turns an exception into an "error" outcome (and lets it
    through), and records the stage with its recorder when it ends. (A class rather than a
    generator context manager: it is on every request's path.)"""

    __slots__ = ("_conversation", "_name", "_record", "_recorder", "_span", "_started")

    def __init__(
        self, recorder: Recorder, name: str, conversation: str | None, attributes: Mapping[str, Attribute]
    ) -> None:
        self._recorder = recorder
        self._name = name
        self._conversation = conversation
        self._record = StageRecord(attributes, name)
        self._span: Any = None
        self._started = 0.0

    def __enter__(self) -> StageRecord:
        if self._recorder._tracing:
            operation = self._record.attributes.get("gen_ai.operation.name", self._name)
            self._span = _tracer().start_span(f"{self._name} {operation}")
        self._started = perf_counter()
        return self._record

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _: Any) -> None:
        latency_ms = (perf_counter() - self._started) * 1000
        record = self._record
        if isinstance(error, Exception) and record.outcome == "ok":
            # (A refusal the work marked before raising stays a refusal.)
            record.outcome = "error"
            record.attributes.setdefault("error.type", type(error).__name__)
        entry = record.attributes  # the stage's log record: the stage, the work's attributes, ...
        entry["outcome"] = record.outcome
        if self._span is not None:
            _end(self._span, entry, self._conversation)
        # To the microsecond, in the log record and the metric alike: a finer figure is the clock's
        # noise, and its 17 digits cost several times as much to write.
        entry["latency_ms"] = latency_ms = round(latency_ms, 3)
        recorder = self._recorder
        if len(recorder._stages) >= MAX_VALUES or recorder._held >= MAX_VALUES:
            recorder.flush()
        recorder._stages.append(entry)
        recorder._measure(self._name, latency_ms, 1.0 if record.outcome == "error" else 0.0)


@contextmanager
def stage(
    name: Stage,
    logger: Logger,
    *,
    conversation: str | None = None,
    namespace: str | None = None,
    **attributes: Attribute,
) -> Iterator[StageRecord]:
    """One stage, written when it ends (a function with one stage per invocation)."""
    recorder = Recorder(logger, namespace)
    try:
        with recorder.stage(name, conversation=conversation, **attributes) as record:
            yield record
    finally:
        recorder.flush()


def emit(
    name: str,
    unit: MetricUnit,
    value: float,
    dimensions: Mapping[str, str],
    *,
    namespace: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """One EMF metric with exactly these dimensions, written now."""
    emit_all([(name, unit, value)], dimensions, namespace=namespace, metadata=metadata)


def emit_all(
    values: Sequence[tuple[str, MetricUnit, float]],
    dimensions: Mapping[str, str],
    *,
    namespace: str | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """One EMF document with exactly these dimensions, written now: Powertools would add
    ``service`` to every dimension set, and the dashboards and alarms address these metrics
    without it."""
    held: Values = {}
    for name, unit, value in values:
        if math.isfinite(value):
            held.setdefault(name, (_unit(unit), []))[1].append(float(value))
    if held:
        names = tuple([(name, unit) for name, (unit, _) in held.items()])
        documents = _documents(
            namespace, [(tuple(dimensions.items()), names, [v for _, v in held.values()])], metadata or {}
        )
        sys.stdout.write("\n".join(documents) + "\n")


# --- EMF documents, written by hand: json.dumps of the same dicts costs several times as much ---


MetricSet = tuple[DimensionKey, tuple[tuple[str, str], ...], list[list[float]]]  # dims, (name, unit)s, values
# A document's layout: its text with a None where the timestamp and each value list go (the
# even items fixed), and the indices of its value lists in the request's order.
Plan = list[tuple[list[str | None], tuple[int, ...]]]
_PLANS: dict[tuple[str, tuple[tuple[DimensionKey, tuple[tuple[str, str], ...]], ...]], Plan] = {}


def _documents(namespace: str | None, metrics: Sequence[MetricSet], metadata: Mapping[str, str]) -> list[str]:
    """The fewest EMF documents that carry these metrics (laid out by ``_plan``, once per
    namespace, dimension values and metric names: a request's documents are then its values put
    into the cached layout)."""
    space = namespace or os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "genai")
    signature = (space, tuple((key, names) for key, names, _ in metrics))
    plan = _PLANS.get(signature)
    if plan is None:
        plan = _plan(*signature)
        if len(_PLANS) >= 1024:  # dimension values come from configuration: bounded all the same
            _PLANS.clear()
        _PLANS[signature] = plan
    arrays = [
        _SINGLE.get(held[0]) or f"[{held[0]!r}]" if len(held) == 1 else f"[{','.join(map(repr, held))}]"
        for _, _, lists in metrics
        for held in lists
    ]
    tail = "".join([f",{_string(k)}:{_value(v)}" for k, v in metadata.items()]) + "}"
    timestamp = str(int(time() * 1000))
    documents = []
    for layout, slots in plan:
        pieces = layout.copy()
        pieces[1::2] = [timestamp, *[arrays[i] for i in slots]]
        documents.append("".join(pieces) + tail)  # type: ignore[arg-type]  # every None filled
    return documents


# The lists most values are (a stage's request, its success): written without formatting.
_SINGLE = {1.0: "[1.0]", 0.0: "[0.0]"}


def _plan(space: str, sets: tuple[tuple[DimensionKey, tuple[tuple[str, str], ...]], ...]) -> Plan:
    """How these dimension sets' metrics pack into the fewest documents: a set joins the first
    document whose members it does not contradict (a key there with another value, or a metric
    name there already); else it starts one. (A set with no metrics is left out.)"""
    namespace = _string(space)
    packed: list[tuple[dict[str, str], set[str], list[str], list[str | None], list[int]]] = []
    index = 0
    for key, names in sets:
        if not names:
            continue
        metric_names = {name for name, _ in names}
        for dims, held, directives, members, slots in packed:  # noqa: B007 (the one found is used below)
            if held.isdisjoint(metric_names) and all(dims.get(k, v) == v for k, v in key):
                break
        else:
            dims, held, directives, members, slots = {}, set(), [], [], []
            packed.append((dims, held, directives, members, slots))
        keys = ",".join(_string(k) for k, _ in key)
        definitions = ",".join(f'{{"Name":{_string(n)},"Unit":{_string(u)}}}' for n, u in names)
        directives.append(f'{{"Namespace":{namespace},"Dimensions":[[{keys}]],"Metrics":[{definitions}]}}')
        for k, v in key:
            if k not in dims:
                dims[k] = v
                members.append(f"{_string(k)}:{_string(v)}")
        held.update(metric_names)
        for name, _ in names:
            members += (f"{_string(name)}:", None)  # None: where its values go
            slots.append(index)
            index += 1
    return [(_layout(directives, members), tuple(slots)) for _, _, directives, members, slots in packed]


def _layout(directives: list[str], members: list[str | None]) -> list[str | None]:
    """A document's text around its timestamp and value lists (None), fixed text at even indices."""
    layout: list[str | None] = ['{"_aws":{"Timestamp":', None, f',"CloudWatchMetrics":[{",".join(directives)}]}}']
    for member in members:
        if member is None:
            layout.append(None)
        elif layout[-1] is None:
            layout.append(f",{member}")
        else:
            layout[-1] += f",{member}"
    return layout


@lru_cache(maxsize=64)
def _stage_key(name: str) -> DimensionKey:
    return ((_STAGE, name),)


def _members(values: Mapping[str, Any]) -> list[str]:
    return [f"{_string(k)}:{_value(v)}" for k, v in values.items()]


def _value(value: Any) -> str:
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else _string(repr(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(_value(item) for item in value) + "]"
    return _string(str(value))


def _unit(unit: MetricUnit | str) -> str:
    return str(unit.value) if isinstance(unit, Enum) else str(unit)


def _trace_id() -> str:
    return os.environ.get("_X_AMZN_TRACE_ID", "").split(";")[0].removeprefix("Root=")


# --- spans -------------------------------------------------------------------------------------


def _tracing() -> bool:
    """Whether a tracer provider is configured. Anything that configures one has imported the
    OpenTelemetry API; without it the API (~20 ms to import) is left alone."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def _end(span: Any, attributes: dict[str, Attribute], conversation: str | None) -> None:
    if span.is_recording():
        span.set_attributes(attributes)
        if conversation:
            span.set_attribute(CONVERSATION, conversation)
        trace_id = _trace_id()
        if trace_id:
            span.set_attribute(TRACE, trace_id)
    span.end()


@cache
def _tracer() -> Any:
    from opentelemetry import trace

    return trace.get_tracer("genai-blueprint")
