"""Checks across sections of the production config: names one part uses that another declares.

Pydantic reports every bad field of a model in one go, but a validator on a container runs only
when everything inside it is valid, so one typo in a group would hide every other group's unknown
output type. These checks therefore read the raw input, beside field validation rather than after
it: each one is skipped only when what it reads is broken itself (which then reports its own
error), and the two kinds of error come out together (``with_problems``).

Names are declared by the keys of a section (output_types, legacy_apis.<api>.tools,
ingestion.classifications), so a declared entry whose body is broken still counts as declared.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from shared.tools import FUNCTION_BASELINE_MB, JSON_MEMORY_FACTOR, answer_memory_mb, longest_call_seconds
from stacks.config.agents import AgentConfig
from stacks.config.api import GATEWAY_MARGIN_SECONDS, ApiConfig
from stacks.config.base import TierConfig, clipped, reraised
from stacks.config.connectors import PULL_RUN_SECONDS, PullConnectorConfig, PushConnectorConfig
from stacks.config.functions import (
    DEFAULT_MEMORY_MB,
    DOCUMENT_QUEUE_CONCURRENCY,
    NO_SNAP_START_REGIONS,
    OCR_QUEUE_CONCURRENCY,
    SNAP_START_DEFAULTS,
    FunctionConfig,
)
from stacks.config.groups import GroupConfig, OutputTypeConfig
from stacks.config.ingestion import IngestionConfig
from stacks.config.tools import BUILTIN_TOOLS, LegacyApiConfig
from stacks.shared.naming import pascal_case

# The error type of a broken reference; its message says what is wrong and what is allowed.
REFERENCE_ERROR = "unknown_reference"

_MISSING = object()


@dataclass(frozen=True)
class Problem:
    """A broken reference: where (below the production config), what is wrong, what is allowed."""

    loc: tuple[str | int, ...]
    reason: str
    allowed: str
    value: Any = None


def reference_problems(production: Mapping[str, Any]) -> list[Problem]:
    """Every broken reference in a raw production config (plain JSON-like data)."""
    declared = _Declared.of(production)
    checks: tuple[Callable[[Mapping[str, Any], _Declared], Iterator[Problem]], ...] = (
        _unique_tool_names,
        _rated_tools_exist,
        _groups_name_declared_things,
        _quotas_fit_one_output,
        _agents_serve_declared_outputs_once,
        _connectors_use_declared_classifications,
        _connectors_land_a_format_the_pipeline_takes,
        _pull_calls_fit_a_run,
        _answers_fit_their_functions_memory,
        _snap_start_where_lambda_offers_it,
        _processor_reservation_covers_its_queues,
        _names_make_distinct_resource_ids,
    )
    return [problem for check in checks for problem in check(production, declared)]


def with_problems(
    model: type[BaseModel], errors: Sequence[ErrorDetails], problems: Sequence[Problem]
) -> ValidationError:
    """One ValidationError holding pydantic's own errors and the broken references, in the order
    of the model's fields."""
    details: list[InitErrorDetails] = [reraised(error) for error in errors]
    details += [
        InitErrorDetails(
            type=PydanticCustomError(
                REFERENCE_ERROR, "{reason}; allowed: {allowed}", {"reason": p.reason, "allowed": p.allowed}
            ),
            loc=p.loc,
            input=p.value,
        )
        for p in problems
    ]
    order = {name: index for index, name in enumerate(model.model_fields)}

    def position(detail: InitErrorDetails) -> int:
        loc = detail.get("loc", ())
        return order.get(str(loc[0]), len(order)) if loc else -1

    details.sort(key=position)
    return ValidationError.from_exception_data(model.__name__, details)


def plain(value: Any) -> Any:
    """Input data with any model instances in it turned into their plain data."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


@dataclass(frozen=True)
class _Declared:
    """What the production config declares; None where it cannot be read (that section is broken)."""

    output_types: tuple[str, ...] | None
    tools: Mapping[str, str] | None  # tool -> gateway target
    classifications: tuple[str, ...] | None
    integration_timeout_seconds: int | None

    @classmethod
    def of(cls, production: Mapping[str, Any]) -> _Declared:
        ingestion = _mapping(production.get("ingestion"))
        return cls(
            # none declared is that section's own error ("at least 1"), not every quota's
            output_types=_keys(production.get("output_types")) or None,
            tools=_tools(production.get("legacy_apis", {})),
            classifications=(_keys(ingestion.get("classifications")) or None) if ingestion is not None else None,
            integration_timeout_seconds=_field(ApiConfig, production.get("api", {}), "integration_timeout_seconds"),
        )


def _unique_tool_names(production: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    seen: dict[str, str] = {}
    for target, api in _entries(production.get("legacy_apis", {})):
        for tool in _keys(_mapping(api, {}).get("tools", {})) or ():
            if tool in seen or tool in BUILTIN_TOOLS:
                owner = seen.get(tool, "the built-in tools")
                yield Problem(
                    ("legacy_apis", target, "tools", tool),
                    f"tool name already used by {clipped(owner)}",
                    "unique names",
                    tool,
                )
            seen.setdefault(tool, target)


# Sections whose names become parts of construct ids (pascal_case: "customer-gold" and
# "customer_gold" are both "CustomerGold"), so two names that differ only there would be one resource.
NAMED_RESOURCES: tuple[tuple[str, ...], ...] = (("groups",), ("agents",), ("legacy_apis",), ("connectors", "pull"))


def _names_make_distinct_resource_ids(production: Mapping[str, Any], _: _Declared) -> Iterator[Problem]:
    for path in NAMED_RESOURCES:
        section: Any = production
        for part in path:
            section = _mapping(section, {}).get(part)
        seen: dict[str, str] = {}
        for name in _keys(section) or ():
            made = pascal_case(name)
            if made in seen:
                yield Problem(
                    (*path, name),
                    f"names the same resources ({clipped(made)}) as {clipped(seen[made])}",
                    "names that differ in more than letter case, - and _",
                    name,
                )
            seen.setdefault(made, name)


def _rated_tools_exist(production: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    if declared.tools is None:
        return
    allowed = _listed(sorted(declared.tools))
    for tool in _keys(production.get("tool_requests_per_minute", {})) or ():
        if tool not in declared.tools:
            yield Problem(("tool_requests_per_minute", tool), "unknown tool", allowed, tool)


def _groups_name_declared_things(production: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    for name, group in _entries(production.get("groups")):
        if not isinstance(group, Mapping):
            continue
        yield from _group_output_types_declared(name, group, declared)
        yield from _group_tools_declared(name, group, declared)
        yield from _group_classifications_declared(name, group, declared)


def _group_output_types_declared(name: str, group: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    if declared.output_types is None:
        return
    for output in _keys(group.get("output_quotas")) or ():
        if output not in declared.output_types:
            yield Problem(
                ("groups", name, "output_quotas", output),
                "unknown output type",
                _listed(declared.output_types),
                output,
            )


def _quotas_fit_one_output(production: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    """A quota below the units one output of its type takes admits nothing, ever: the ledger refuses
    every request of that type for that group (0 is how a quota says none)."""
    types = _mapping(production.get("output_types"), {})
    for name, group in _entries(production.get("groups")):
        for output, quota in _entries(_mapping(group, {}).get("output_quotas")):
            units = _field(OutputTypeConfig, _mapping(types.get(output), {}), "units")
            limit = _mapping(quota, {}).get("limit")
            if isinstance(units, int) and isinstance(limit, int) and not isinstance(limit, bool) and 0 < limit < units:
                shown = clipped(output)
                yield Problem(
                    ("groups", name, "output_quotas", output, "limit"),
                    f"below the {units} units one {shown} output takes: no {shown} could ever be delivered",
                    f"0 (none) or at least {units}",
                    limit,
                )


def _group_tools_declared(name: str, group: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    if declared.tools is None:
        return
    allowed = _listed(sorted(declared.tools))
    for index, tool in enumerate(_field(GroupConfig, group, "tools") or ()):
        if tool not in declared.tools:
            yield Problem(("groups", name, "tools", index), f"unknown tool {clipped(tool)}", allowed, tool)


def _group_classifications_declared(name: str, group: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    if declared.classifications is None:
        return
    allowed = _listed(declared.classifications)
    for index, classification in enumerate(_field(GroupConfig, group, "data_classifications") or ()):
        if classification not in declared.classifications:
            yield Problem(
                ("groups", name, "data_classifications", index),
                f"unknown classification {clipped(classification)}",
                allowed,
                classification,
            )


def _agents_serve_declared_outputs_once(production: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    served: dict[str, str] = {}
    for name, agent in _entries(production.get("agents", {})):
        if not isinstance(agent, Mapping):
            continue
        turn_seconds = _field(AgentConfig, agent, "turn_seconds")
        if declared.integration_timeout_seconds is not None and turn_seconds is not None:
            # The gateway keeps GATEWAY_MARGIN_SECONDS of its own time to guard and meter the answer.
            budget = declared.integration_timeout_seconds - GATEWAY_MARGIN_SECONDS
            if turn_seconds > budget:
                yield Problem(
                    ("agents", name, "turn_seconds"),
                    f"{turn_seconds} s does not fit the gateway's {budget} s for an agent turn",
                    f"at most {budget} (or raise api.integration_timeout_seconds)",
                    turn_seconds,
                )
        for index, output in enumerate(_field(AgentConfig, agent, "output_types") or ()):
            where = ("agents", name, "output_types", index)
            if declared.output_types is not None and output not in declared.output_types:
                yield Problem(where, f"unknown output type {clipped(output)}", _listed(declared.output_types), output)
            elif output in served:
                yield Problem(
                    where,
                    f"output type {clipped(output)} is already served by agent {clipped(served[output])}",
                    "one agent",
                )
            else:
                served[output] = name


def _connectors_use_declared_classifications(production: Mapping[str, Any], declared: _Declared) -> Iterator[Problem]:
    if declared.classifications is None:
        return
    known = declared.classifications
    allowed = _listed(known)
    connectors = _mapping(production.get("connectors", {}), {})
    sources = _field(PushConnectorConfig, connectors.get("push", {}), "sources") or {}
    for source, classification in sources.items():
        if classification not in known:
            yield Problem(
                ("connectors", "push", "sources", source), f"unknown classification {clipped(classification)}", allowed
            )
    for name, pull in _entries(connectors.get("pull", {})):
        classification = _field(PullConnectorConfig, pull, "classification")
        if classification is not None and classification not in known:
            yield Problem(
                ("connectors", "pull", name, "classification"),
                f"unknown classification {clipped(classification)}",
                allowed,
            )


def _connectors_land_a_format_the_pipeline_takes(production: Mapping[str, Any], _: _Declared) -> Iterator[Problem]:
    """Connector records land as markdown (realtime/<source>/<id>.md): formats without md would
    quarantine every one of them."""
    connectors = _mapping(production.get("connectors", {}), {})
    push = _field(PushConnectorConfig, connectors.get("push", {}), "sources") or {}
    pull = dict(_entries(connectors.get("pull", {})))
    formats = _field(IngestionConfig, production.get("ingestion", {}), "formats")
    if (push or pull) and formats is not None and "md" not in formats:
        yield Problem(
            ("ingestion", "formats"),
            "connector records land as markdown (.md), which these formats leave out",
            "a list including md while connectors.push or connectors.pull has a source",
        )


def _pull_calls_fit_a_run(production: Mapping[str, Any], _: _Declared) -> Iterator[Problem]:
    """A pull run stops for time between pages, keeping back the longest a call to its source may
    take (shared.tools.longest_call_seconds): a call that may take more than half a run leaves too
    little for its page to land before Lambda ends the run with nothing saved."""
    connectors = _mapping(production.get("connectors", {}), {})
    sizing = _mapping(_mapping(production.get("functions", {}), {}).get("connector_pull"), {})
    run = _field(FunctionConfig, sizing, "timeout_seconds") or PULL_RUN_SECONDS
    for name, source in _entries(connectors.get("pull", {})):
        timeout = _field(PullConnectorConfig, source, "timeout_seconds")
        attempts = _field(PullConnectorConfig, source, "max_attempts")
        if timeout is None or attempts is None or longest_call_seconds(timeout, attempts) <= run / 2:
            continue
        yield Problem(
            ("connectors", "pull", name, "timeout_seconds"),
            f"a call to the source may take {longest_call_seconds(timeout, attempts):g} s "
            "((max_attempts + 2) x timeout_seconds, and the backoffs), "
            f"more than half of a pull run's {run} s (functions.connector_pull.timeout_seconds)",
            f"timeout_seconds and max_attempts whose longest call is at most {run / 2:g} s",
            timeout,
        )


def _answers_fit_their_functions_memory(production: Mapping[str, Any], _: _Declared) -> Iterator[Problem]:
    """An answer as large as max_response_bytes is parsed whole (shared.tools.answer_memory_mb): in a
    function with less memory, a hostile or merely large one has Lambda end the function, and the
    caller gets no error of the taxonomy (a pull run saves nothing)."""
    functions = _mapping(production.get("functions", {}), {})
    sections = (
        (("legacy_apis",), _mapping(production.get("legacy_apis", {}), {}), LegacyApiConfig, "legacy_tools"),
        (
            ("connectors", "pull"),
            _mapping(_mapping(production.get("connectors", {}), {}).get("pull", {}), {}),
            PullConnectorConfig,
            "connector_pull",
        ),
    )
    for where, entries, model, function in sections:
        memory = _field(FunctionConfig, _mapping(functions.get(function), {}), "memory_mb") or DEFAULT_MEMORY_MB
        for name, entry in _entries(entries):
            cap = _field(model, entry, "max_response_bytes")
            if cap is None or answer_memory_mb(cap) <= memory:
                continue
            largest = (memory - FUNCTION_BASELINE_MB) * 2**20 // JSON_MEMORY_FACTOR
            yield Problem(
                (*where, name, "max_response_bytes"),
                f"an answer of {cap} bytes may take {answer_memory_mb(cap)} MB once parsed ({JSON_MEMORY_FACTOR} "
                f"times its size, and the function's own {FUNCTION_BASELINE_MB} MB), more than "
                f"functions.{function}.memory_mb ({memory})",
                f"max_response_bytes at most {largest}, or functions.{function}.memory_mb at least "
                f"{answer_memory_mb(cap)}",
                cap,
            )


def _processor_reservation_covers_its_queues(production: Mapping[str, Any], _: _Declared) -> Iterator[Problem]:
    """A reserved concurrency of the ingestion processor below what its SQS event sources may run at
    once: Lambda throttles the surplus batches, which go back to the queue and count as receives, so
    documents would reach the dead-letter queue without ever failing."""
    sizing = _mapping(_mapping(production.get("functions", {}), {}).get("ingestion"), {})
    reserved = _field(FunctionConfig, sizing, "reserved_concurrency")
    ocr = _field(IngestionConfig, production.get("ingestion", {}), "ocr") == "textract"
    needed = DOCUMENT_QUEUE_CONCURRENCY + (OCR_QUEUE_CONCURRENCY if ocr else 0)
    if reserved is not None and reserved < needed:
        queues = "the document queue's and the OCR queue's" if ocr else "the document queue's"
        yield Problem(
            ("functions", "ingestion", "reserved_concurrency"),
            f"the processor's queues hand it up to {needed} batches at once ({queues} maximum concurrency); "
            "a smaller reservation throttles the rest back to the queue and, after ingestion.max_receive_count, "
            "to the dead-letter queue",
            f"null or at least {needed}",
            reserved,
        )


def _snap_start_where_lambda_offers_it(production: Mapping[str, Any], _: _Declared) -> Iterator[Problem]:
    """Every SnapStart switch that is on (api.snap_start, api.stream_snap_start, production.functions.<name>.snap_start,
    each on unless set false) in a region without SnapStart: the function's create would fail."""
    region = _field(TierConfig, production, "region")
    if region not in NO_SNAP_START_REGIONS:
        return
    api = _mapping(production.get("api", {}), {})
    switches: list[tuple[tuple[str, ...], bool | None]] = [
        (("api", key), _field(ApiConfig, api, key)) for key in ("snap_start", "stream_snap_start")
    ]
    functions = _mapping(production.get("functions", {}), {})
    for name, default in SNAP_START_DEFAULTS.items():
        chosen = _field(FunctionConfig, _mapping(functions.get(name), {}), "snap_start")
        switches.append((("functions", name, "snap_start"), default if chosen is None else chosen))
    for loc, on in switches:
        if on:
            yield Problem(loc, f"Lambda has no SnapStart in {region}", "false", on)


def _listed(names: Sequence[str]) -> str:
    """Declared names as an error line lists them (a declared name can be broken, and long)."""
    return ", ".join(map(clipped, names))


def _tools(legacy_apis: Any) -> Mapping[str, str] | None:
    """Every tool name -> its gateway target, or None when a legacy API's tools cannot be read."""
    apis = _mapping(legacy_apis)
    if apis is None:
        return None
    tools = dict(BUILTIN_TOOLS)
    for target, api in apis.items():
        names = _keys(_mapping(api, {}).get("tools", {}))
        if names is None:
            return None
        tools.update(dict.fromkeys(names, target))
    return tools


def _field(model: type[BaseModel], section: Any, name: str) -> Any:
    """One field of ``model`` validated on its own from a raw ``section`` (its default when the
    section leaves it out), or None when the section is not an object or the value is invalid."""
    if not isinstance(section, Mapping):
        return None
    value = section.get(name, _MISSING)
    if value is _MISSING:
        field = model.model_fields[name]
        return None if field.is_required() else field.get_default(call_default_factory=True)
    try:
        return _adapter(model, name).validate_python(value)
    except ValidationError:
        return None


@cache
def _adapter(model: type[BaseModel], name: str) -> TypeAdapter[Any]:
    """The field's type with its constraints (ge, min_length, ...), without the model around it."""
    field = model.model_fields[name]
    annotation: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    return TypeAdapter(annotation, config=ConfigDict(coerce_numbers_to_str=True))


def _mapping(value: Any, default: Any = None) -> Any:
    return value if isinstance(value, Mapping) else default


def _keys(value: Any) -> tuple[str, ...] | None:
    return tuple(str(key) for key in value) if isinstance(value, Mapping) else None


def _entries(value: Any) -> list[tuple[str, Any]]:
    return [(str(key), item) for key, item in value.items()] if isinstance(value, Mapping) else []
