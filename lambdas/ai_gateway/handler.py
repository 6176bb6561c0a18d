"""The AI gateway API (API Gateway REST, behind the gateway's Lambda authorizer).

    POST /v1/chat              a conversation turn
    POST /v1/outputs/{type}    an output-priced workload (report, summary, ...)
    GET  /v1/usage             the caller's group's usage and remaining quotas

Each output type is produced by a model directly or, where the config routes it to one, by an
agent on AgentCore Runtime invoked as the caller. Every generation passes the guardrail before
the model or agent (blocked: 400, no call) and after it (anonymized text returned). Outputs are
admitted against the group's exact quota first and metered once per request id (the
Idempotency-Key header, or API Gateway's request id). Errors are JSON {"error", "message"};
prompts and answers are never logged.
"""

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

import boto3
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import BaseModel, ValidationError

from ai_gateway.agents import AgentClient, runtime_session_id
from ai_gateway.guardrail import Guard, Verdict
from ai_gateway.ledger import Admission, Ledger, QuotaExceededError
from ai_gateway.models import Caller, ChatRequest, GatewayPolicy, GroupPolicy, OutputPolicy, OutputRequest, Settings
from ai_gateway.router import Generation, ModelForbiddenError, candidates, converse
from ai_gateway.upstream import UpstreamError, call
from shared.telemetry import CONVERSATION, emit, stage
from shared.tokens import InvalidToken, bearer

# Cold start matters at the front door: bodies are validated with pydantic directly (Powertools'
# OpenAPI validation adds ~40 ms of imports) and spans come from Lambda's active tracing rather
# than the X-Ray SDK (~80 ms of imports).
logger = Logger()
metrics = Metrics()
app = APIGatewayRestResolver()

IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")
OUTPUT_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
EVALUATION_CASE = re.compile(r"^[a-z0-9-]{1,64}$")
Body = TypeVar("Body", bound=BaseModel)
CHAT = "chat"
# Seconds kept back from the function's remaining time for the output guardrail and the ledger
# (stacks/config.py GATEWAY_MARGIN_SECONDS fits agent turns into what is left).
GENERATION_MARGIN_SECONDS = 5.0
T = TypeVar("T")


class GatewayError(Exception):
    """A refusal with its HTTP status, error code and a message safe to show the caller."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class Dependencies:
    ledger: Ledger
    guard: Guard
    bedrock: Any
    agents: AgentClient


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def dependencies() -> Dependencies:
    current = settings()
    # One attempt per model (the router falls back between models); the read timeout bounds one
    # generation. DynamoDB calls are short and retried by botocore.
    bedrock = boto3.client(
        "bedrock-runtime",
        config=Config(
            connect_timeout=2,
            read_timeout=current.generation_timeout_seconds,
            retries={"mode": "standard", "total_max_attempts": 1},
        ),
    )
    dynamodb = boto3.client(
        "dynamodb",
        config=Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}),
    )
    return Dependencies(
        ledger=Ledger(dynamodb, current.table_name),
        guard=Guard(bedrock, guardrail_id=current.guardrail_id, version=current.guardrail_version),
        bedrock=bedrock,
        agents=AgentClient(current.agentcore_endpoint, current.agent_runtimes),
    )


def policy() -> GatewayPolicy:
    """The groups, models, quotas and prices, cached for five minutes (Powertools parameters)."""
    raw = parameters.get_parameter(settings().policy_parameter, transform="json", max_age=300)
    return GatewayPolicy.from_document(raw)


# --- routes ----------------------------------------------------------------------------------


@app.post("/v1/chat")
def chat() -> Response[Any]:
    caller, group = _caller_and_group()
    request_id = _request_id()
    request = _body(ChatRequest)
    _check_size(sum(len(m.content) for m in request.messages))
    _output_for(group, CHAT)
    models = _models(group, request.model)
    session = request.session_id or request_id
    _correlate(caller, session)
    # Every turn is the client's text, its "assistant" turns included: all of it is guarded.
    verdict = _guard_input([m.content for m in request.messages], CHAT)
    messages = [
        {"role": m.role, "content": [{"text": text}]} for m, text in zip(request.messages, verdict.texts, strict=True)
    ]
    return _generate(caller, group, CHAT, models, request_id, messages=messages, session=session, grounding=None)


@app.post("/v1/outputs/<output_type>")
def outputs(output_type: str) -> Response[Any]:
    caller, group = _caller_and_group()
    if not OUTPUT_TYPE.match(output_type):
        raise GatewayError(422, "invalid_request", "output_type: a-z, 0-9 and _, starting with a letter")
    request_id = _request_id()
    request = _body(OutputRequest)
    _check_size(len(request.material) + len(request.instructions or ""))
    _output_for(group, output_type)
    models = _models(group, request.model)
    _correlate(caller, request_id)
    checked = [request.material, *([request.instructions] if request.instructions else [])]
    verdict = _guard_input(checked, output_type)
    material = verdict.text(0)
    ask = verdict.text(1) if request.instructions else f"Produce the {output_type.replace('_', ' ')}."
    prompt = f"<material>\n{material}\n</material>\n\n<request>\n{ask}\n</request>"
    return _generate(
        caller,
        group,
        output_type,
        models,
        request_id,
        messages=[{"role": "user", "content": [{"text": prompt}]}],
        session=request_id,
        grounding=(material, ask),
    )


@app.get("/v1/usage")
def usage() -> Response[Any]:
    caller, group = _caller_and_group()
    prices = policy().outputs
    quotas = {name: (quota.limit, quota.period) for name, quota in group.quotas.items()}
    rows = dependencies().ledger.usage(caller.group, quotas, _now())
    return _json(
        200,
        {
            "group": caller.group,
            "tier": group.tier,
            "quotas": [
                {
                    "output_type": row.output_type,
                    "used": row.used,
                    "limit": row.limit,
                    "remaining": row.remaining,
                    "period": row.period,
                    "resets_at": row.resets_at.isoformat(),
                    "unit_price_usd": prices[row.output_type].unit_price_usd if row.output_type in prices else None,
                }
                for row in rows
            ],
        },
    )


# --- the steps every generation takes ----------------------------------------------------------


def _generate(
    caller: Caller,
    group: GroupPolicy,
    output_type: str,
    models: list[str],
    request_id: str,
    *,
    messages: list[dict[str, Any]],
    session: str,
    grounding: tuple[str, str] | None,
) -> Response[Any]:
    output = policy().outputs[output_type]
    quota = group.quotas[output_type]
    deps = dependencies()
    now = _now()
    admission = _admit(
        deps.ledger,
        caller,
        output_type,
        request_id,
        output.units,
        quota.limit,
        quota.period,
        output.unit_price_usd,
        now,
    )

    def release() -> None:  # no output delivered: give the units back (once)
        with call("dynamodb"):
            deps.ledger.release(
                request_id,
                group=caller.group,
                user=caller.user,
                output_type=output_type,
                units=output.units,
                window=admission.window,
            )

    try:
        operation = {
            "gen_ai.operation.name": "invoke_agent" if output.agent else "chat",
            "gen_ai.system": "aws.bedrock",
        }
        with _stage("generation", {**operation, "gen_ai.request.model": models[0]}) as record:
            generation, produced_by = _produce(output, group, models, messages, session)
            record.update(
                {
                    "gen_ai.response.model": generation.model,
                    "gen_ai.usage.input_tokens": generation.input_tokens,
                    "gen_ai.usage.output_tokens": generation.output_tokens,
                    **({"gen_ai.agent.name": output.agent} if output.agent else {}),
                }
            )
        metrics.add_metric(name="GenerationLatency", unit=MetricUnit.Milliseconds, value=generation.latency_ms)
        source, query = grounding if grounding else (None, None)
        verdict = _guarded(
            "GuardrailOutputLatency",
            "OUTPUT",
            lambda: deps.guard.check_output(generation.text, source=source, query=query),
        )
    except BaseException:
        try:
            release()
        except UpstreamError:
            logger.error("release failed: units stay admitted", extra={"request_id": request_id})
        raise
    _count_interventions(verdict, "output")
    result = {
        "request_id": request_id,
        "output_type": output_type,
        "model": generation.model,
        **produced_by,
        "output": verdict.text(),
    }
    if verdict.blocked:
        release()  # the caller is not charged for an output the guardrail withheld
        return _json(200, {**result, "guardrail": "blocked", "units": 0})
    try:
        with call("dynamodb"):
            deps.ledger.deliver(
                request_id,
                group=caller.group,
                user=caller.user,
                model=generation.model,
                input_tokens=generation.input_tokens,
                output_tokens=generation.output_tokens,
            )
    except UpstreamError:
        # The output exists and its units were admitted (charged); only the record is behind.
        logger.error("delivery not recorded: metering record stays admitted", extra={"request_id": request_id})
        metrics.add_metric(name="MeteringErrors", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Outputs", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Units", unit=MetricUnit.Count, value=output.units)
    by_model = {"Model": generation.model}
    emit("ModelInputTokens", MetricUnit.Count, generation.input_tokens, by_model)
    emit("ModelOutputTokens", MetricUnit.Count, generation.output_tokens, by_model)
    emit("EstimatedCostUsd", MetricUnit.NoUnit, output.units * output.unit_price_usd, by_model)
    metrics.add_metric(name="InputTokens", unit=MetricUnit.Count, value=generation.input_tokens)
    metrics.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=generation.output_tokens)
    if generation.fell_back_from:
        metrics.add_metric(name="ModelFallbacks", unit=MetricUnit.Count, value=len(generation.fell_back_from))
    logger.info(
        "output delivered",
        extra={
            "request_id": request_id,
            "model": generation.model,
            "fell_back_from": list(generation.fell_back_from),
            "input_tokens": generation.input_tokens,
            "output_tokens": generation.output_tokens,
            "guardrail_output": "anonymized" if verdict.intervened else "none",
        },
    )
    return _json(
        200,
        {
            **result,
            "guardrail": "anonymized" if verdict.intervened else "none",
            "units": output.units,
            "remaining": admission.remaining,
            "resets_at": admission.resets_at.isoformat(),
        },
    )


def _produce(
    output: OutputPolicy,
    group: GroupPolicy,
    models: list[str],
    messages: list[dict[str, Any]],
    session: str,
) -> tuple[Generation, dict[str, Any]]:
    """The generation, from a model or from the output type's agent, and what names its producer."""
    if output.agent is None:
        generation = converse(
            dependencies().bedrock,
            models,
            system=output.instructions,
            messages=messages,
            max_tokens=output.max_tokens,
            deadline=_deadline(),
            attempt_seconds=settings().generation_timeout_seconds,
        )
        return generation, {}
    seconds = _deadline() - time.monotonic()
    turn = dependencies().agents.invoke(
        output.agent,
        token=_caller_token(),
        session_id=app.context["conversation"],  # _correlate derived it from group, user and session
        payload={
            "messages": [{"role": m["role"], "content": m["content"][0]["text"]} for m in messages],
            "instructions": output.instructions,
            "models": models,
            "max_tokens": output.max_tokens,
            # The agent ends its turn a second early, so its answer still reaches the gateway.
            "turn_seconds": max(seconds - 1, 1),
        },
        timeout_seconds=max(seconds, 1),
    )
    metrics.add_metric(name="AgentIterations", unit=MetricUnit.Count, value=turn.iterations)
    metrics.add_metric(name="AgentToolCalls", unit=MetricUnit.Count, value=len(turn.calls))
    metrics.add_metric(name="AgentToolErrors", unit=MetricUnit.Count, value=turn.tool_errors)
    # The tool-call trace the evaluator (lambdas/evaluation) reads from this log: tool names and
    # outcomes always; arguments only for an internal group's evaluation case (golden prompts
    # carry no personal data; a customer's arguments may).
    case = _evaluation_case(group)
    calls = [
        {"name": c.get("name"), "ok": bool(c.get("ok")), **({"arguments": c.get("arguments")} if case else {})}
        for c in turn.calls
    ]
    logger.info(
        "agent turn",
        extra={
            "agent": output.agent,
            "stop": turn.stop,
            "iterations": turn.iterations,
            "tool_calls": calls,
            **({"evaluation_case": case} if case else {}),
        },
    )
    produced: dict[str, Any] = {"agent": output.agent, "session_id": session}
    if case:
        produced["tool_calls"] = calls
    return turn.generation, produced


def _evaluation_case(group: GroupPolicy) -> str | None:
    """The golden case an internal caller's request replays (X-Evaluation-Case), if any."""
    case = app.current_event.headers.get("X-Evaluation-Case")
    if not case or group.kind != "internal":
        return None
    if not EVALUATION_CASE.match(case):
        raise GatewayError(422, "invalid_request", "X-Evaluation-Case: 1 to 64 of a-z 0-9 -")
    return case


def _caller_token() -> str:
    """The caller's own access token (the authorizer has verified it), for the agent runtime."""
    try:
        return bearer(app.current_event.headers.get("Authorization"))  # headers: case-insensitive
    except InvalidToken:
        raise GatewayError(401, "unauthorized", "Authorization: Bearer <access token> is required") from None


def _caller_and_group() -> tuple[Caller, GroupPolicy]:
    claims = app.current_event.raw_event.get("requestContext", {}).get("authorizer") or {}
    user, group_name = str(claims.get("user") or ""), str(claims.get("group") or "")
    if not user or not group_name:
        raise GatewayError(403, "forbidden", "the caller has no gateway group")
    caller = Caller(user=user, group=group_name)
    group = policy().groups.get(caller.group)
    if group is None:
        raise GatewayError(403, "forbidden", f"group {caller.group} has no access to the gateway")
    # Only configured group names become a dimension: claims cannot mint new metric series.
    metrics.add_dimension("Group", caller.group)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    return caller, group


def _output_for(group: GroupPolicy, output_type: str) -> Any:
    known = policy().outputs
    if output_type not in known:
        raise GatewayError(404, "not_found", f"unknown output type {output_type}; known: {', '.join(known)}")
    if output_type not in group.quotas:
        raise GatewayError(403, "forbidden", f"output type {output_type} is not available to this group")
    metrics.add_dimension("OutputType", output_type)
    return known[output_type]


def _models(group: GroupPolicy, requested: str | None) -> list[str]:
    try:
        return candidates(group.models, requested)
    except ModelForbiddenError as error:
        raise GatewayError(403, "model_forbidden", str(error)) from None


def _body(model: type[Body]) -> Body:
    try:
        return model.model_validate_json(app.current_event.body or "")
    except ValidationError as error:
        # Locations and messages only: pydantic's "input" would echo the caller's text back.
        problems = [f"{_field(detail['loc'])}: {detail['msg']}" for detail in error.errors()]
        raise GatewayError(422, "invalid_request", "; ".join(problems)) from None


def _check_size(chars: int) -> None:
    limit = settings().max_message_chars
    if chars > limit:
        raise GatewayError(413, "too_large", f"the request carries {chars} characters of text; the limit is {limit}")


def _guard_input(texts: list[str], output_type: str) -> Verdict:
    verdict = _guarded("GuardrailInputLatency", "INPUT", lambda: dependencies().guard.check_input(texts))
    _count_interventions(verdict, "input")
    if verdict.blocked:
        raise GatewayError(400, "guardrail_blocked", verdict.text(), reasons=list(verdict.reasons))
    return verdict


def _deadline() -> float:
    """time.monotonic() by which generation must end, leaving time to guard, meter and answer."""
    remaining_ms = app.lambda_context.get_remaining_time_in_millis()
    return time.monotonic() + remaining_ms / 1000 - GENERATION_MARGIN_SECONDS


def _admit(
    ledger: Ledger,
    caller: Caller,
    output_type: str,
    request_id: str,
    units: int,
    limit: int,
    period: Any,
    price: float,
    now: dt.datetime,
) -> Admission:
    try:
        with call("dynamodb"), _stage("usage", {"gen_ai.operation.name": "admit"}) as record:
            try:
                admission = _timed(
                    "LedgerLatency",
                    lambda: ledger.admit(
                        request_id=request_id,
                        group=caller.group,
                        user=caller.user,
                        output_type=output_type,
                        units=units,
                        limit=limit,
                        period=period,
                        unit_price_usd=price,
                        now=now,
                    ),
                )
            except QuotaExceededError:
                record.end("refused", "quota_exceeded")
                raise
    except QuotaExceededError as refused:
        metrics.add_metric(name="QuotaRefusals", unit=MetricUnit.Count, value=1)
        emit("QuotaRefusalsByGroup", MetricUnit.Count, 1, {"Group": caller.group})
        retry_after = max(int((refused.resets_at - now).total_seconds()), 1)
        raise GatewayError(
            429,
            "quota_exceeded",
            f"the {output_type} quota of group {caller.group} is used up until {refused.resets_at.isoformat()}",
            remaining=refused.remaining,
            limit=refused.limit,
            resets_at=refused.resets_at.isoformat(),
            retry_after=str(retry_after),
        ) from None
    if admission.replayed:
        raise GatewayError(
            409, "duplicate_request", f"request {request_id} was already processed; nothing was counted again"
        )
    return admission


def _count_interventions(verdict: Verdict, stage: str) -> None:
    if verdict.intervened:
        metrics.add_metric(name=f"Guardrail{stage.title()}Interventions", unit=MetricUnit.Count, value=1)
        logger.info(
            "guardrail intervened", extra={"stage": stage, "blocked": verdict.blocked, "reasons": list(verdict.reasons)}
        )


def _timed(metric: str, work: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        return work()
    finally:
        metrics.add_metric(name=metric, unit=MetricUnit.Milliseconds, value=(time.perf_counter() - started) * 1000)


def _stage(name: Any, attributes: dict[str, Any]) -> Any:
    """A stage of this request (shared.telemetry), carrying its conversation id."""
    return stage(name, logger, conversation=app.context.get("conversation"), **attributes)


def _guarded(metric: str, source: str, work: Callable[[], Verdict]) -> Verdict:
    attributes = {"gen_ai.operation.name": "apply_guardrail", "aws.bedrock.guardrail.source": source}
    with _stage("guardrail", attributes) as record:
        verdict = _timed(metric, work)
        if verdict.intervened:
            record.end("intervened", ",".join(verdict.reasons) or "intervened")
            emit("GuardrailInterventions", MetricUnit.Count, 1, {"Source": source})
    return verdict


def _correlate(caller: Caller, session: str) -> None:
    """One conversation id for every log line, metric and span of this request, and the agent's."""
    conversation = runtime_session_id(caller.group, caller.user, session)
    app.append_context(conversation=conversation)  # type: ignore[no-untyped-call]
    logger.append_keys(**{CONVERSATION: conversation})
    metrics.add_metadata(CONVERSATION, conversation)


def _request_id() -> str:
    key = app.current_event.headers.get("Idempotency-Key")  # Powertools' headers are case-insensitive
    if key is None:
        return str(app.current_event.request_context.request_id)
    if not IDEMPOTENCY_KEY.match(key):
        raise GatewayError(422, "invalid_request", "Idempotency-Key: 8 to 128 of A-Z a-z 0-9 _ . : -")
    return key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- errors ------------------------------------------------------------------------------------


@app.exception_handler(GatewayError)
def _refused(error: GatewayError) -> Response[Any]:
    retry_after = error.extra.pop("retry_after", None)
    metrics.add_metric(name="Refusals", unit=MetricUnit.Count, value=1)
    logger.info("refused", extra={"status": error.status, "error": error.code})
    return _json(error.status, {"error": error.code, "message": error.message, **error.extra}, retry_after=retry_after)


@app.exception_handler(UpstreamError)
def _upstream(error: UpstreamError) -> Response[Any]:
    logger.warning("upstream call failed", extra={"upstream": error.service, "code": error.code})
    metrics.add_metric(name="UpstreamErrors", unit=MetricUnit.Count, value=1)
    if error.throttled:
        return _json(
            429,
            {"error": "throttled", "message": f"{error.service} is throttling requests; retry later"},
            retry_after="5",
        )
    return _json(502, {"error": "upstream_error", "message": f"{error.service} failed with {error.code}"})


@app.not_found
def _no_route(error: NotFoundError) -> Response[Any]:
    metrics.add_metric(name="Refusals", unit=MetricUnit.Count, value=1)
    return _json(
        404, {"error": "not_found", "message": "routes: POST /v1/chat, POST /v1/outputs/{type}, GET /v1/usage"}
    )


# Registered last and broadest: Powertools picks the most specific handler for an exception.
@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    logger.exception("unexpected error")
    return _json(500, {"error": "internal_error", "message": "the request failed; quote the correlation id"})


def _field(loc: tuple[Any, ...]) -> str:
    """ "messages.0.role" for a field; "body" when the body itself is wrong (e.g. not JSON)."""
    parts = [part for part in loc if part not in ("body", "path")]
    return ".".join(map(str, parts)) if any(isinstance(part, str) for part in parts) else "body"


def _json(status: int, body: dict[str, Any], retry_after: str | None = None) -> Response[Any]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=body,
        headers={"Retry-After": retry_after} if retry_after else None,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = app.resolve(event, context)
    response.setdefault("headers", {})["X-Correlation-Id"] = logger.get_correlation_id() or ""
    return response
