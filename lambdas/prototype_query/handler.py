"""POST /query on an IAM-authorized Function URL: answer a question with citations.

Body: {"question": "...", "source": "knowledge_base" | "kendra"}. Bad input gets a 4xx JSON error
naming the field or what is wrong with the body (not base64, not UTF-8, not JSON, nested or a
number past what the parser takes); an upstream failure the answer shared.aws_errors gives it:
throttled, a 429; the question rejected, a 400; anything else a 502, the platform's set-up
refused (model access, a knowledge base or index that is not there) included, and a call that no
longer fits before the invocation's deadline (deadline.py), which is not made. The question is
never logged. Both paths answer as the workload's tuned prompt instructs, within the rules every
answer keeps (contract.py); the prompt is read once, from the file its layer holds.
"""

import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import ValidationError

from prototype_query.answering import answer_from_kendra, answer_from_knowledge_base
from prototype_query.contract import Dimension, Metric, Settings
from prototype_query.deadline import CONNECT_SECONDS, Deadline, bound
from prototype_query.models import QueryRequest, Source
from shared.aws_errors import RETRY_AFTER_SECONDS, UpstreamError
from shared.bodies import BodyError, json_bytes, problems
from shared.contract import SettingsError, variable
from shared.http_events import FUNCTION_URL, misshapen
from shared.logs import log_unexpected, service_logger

logger = service_logger()
# Traced by Lambda's active tracing (each invocation a segment), as every function of the platform
# is; no X-Ray SDK (Powertools' Tracer): it reaches end of support on 2027-02-25 (AWS recommends
# OpenTelemetry), and its import was a third of this function's cold start. The Latency metric by
# Source times the answer's AWS calls.
metrics = Metrics()
# Bodies are validated with pydantic's own JSON parser (QueryRequest.model_validate_json), not
# Powertools' validation: its json.loads raises RecursionError and ValueError (a deep array, an
# integer of 4,301 digits) past its handlers, which would be 500s.
app = LambdaFunctionUrlResolver()
# The clock of every request's deadline (a test's, so its outcome does not depend on how fast the machine is).
clock = time.monotonic


class InvalidRequestError(Exception):
    """The body is not a question: the message names what is wrong, never echoes the body."""


@dataclass(frozen=True)
class Clients:
    agent_runtime: Any
    kendra: Any
    bedrock: Any


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def prompt() -> str:
    """The workload's tuned prompt, from the file its layer holds (Settings.system_prompt_file); a
    file that is not there, not UTF-8 or blank is a deploy fault (SettingsError)."""
    path = settings().system_prompt_file
    try:
        text = Path(path).read_bytes().decode("utf-8")  # as written: no newline translated
    except (OSError, UnicodeDecodeError) as error:
        raise SettingsError(f"{variable('system_prompt_file')}: {path} unreadable ({type(error).__name__})") from None
    if not text.strip():
        raise SettingsError(f"{variable('system_prompt_file')}: {path} is blank")
    return text


@cache
def clients() -> Clients:
    # Two attempts a call, each read for at most upstream_timeout_seconds and held to the request's
    # deadline (deadline.bound), so a slow upstream ends in a JSON 502 rather than a Lambda timeout.
    config = Config(
        connect_timeout=CONNECT_SECONDS,
        read_timeout=settings().upstream_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    return Clients(
        agent_runtime=bound(boto3.client("bedrock-agent-runtime", config=config)),
        kendra=bound(boto3.client("kendra", config=config)),
        bedrock=bound(boto3.client("bedrock-runtime", config=config)),
    )


@app.post("/query")
def query() -> Response[Any]:
    request = _request()
    config = settings()
    if len(request.question) > config.max_question_chars:
        return _error(422, "invalid_request", f"question: at most {config.max_question_chars} characters")
    if request.source is Source.KENDRA and config.kendra_index_id is None:
        return _error(422, "invalid_request", "source: kendra is switched off in this deployment; use knowledge_base")

    # Every AWS call of the request ends before the function's timeout, with a margin to answer.
    deadline = Deadline.of_invocation(app.lambda_context.get_remaining_time_in_millis(), clock)
    started = time.perf_counter()
    if request.source is Source.KENDRA:
        answer = answer_from_kendra(
            clients().kendra,
            clients().bedrock,
            index_id=config.kendra_index_id or "",
            model_arn=config.generation_model_arn,
            prompt=prompt(),
            question=request.question,
            max_passages=config.max_passages,
            max_answer_tokens=config.max_answer_tokens,
            deadline=deadline,
        )
    else:
        answer = answer_from_knowledge_base(
            clients().agent_runtime,
            knowledge_base_id=config.knowledge_base_id,
            model_arn=config.generation_model_arn,
            prompt=prompt(),
            question=request.question,
            max_passages=config.max_passages,
            max_answer_tokens=config.max_answer_tokens,
            deadline=deadline,
        )
    elapsed_ms = (time.perf_counter() - started) * 1000
    # Errors carry only ErrorCode (see _error), so each metric keeps one set of dimensions.
    metrics.add_dimension(Dimension.SOURCE, request.source.value)
    metrics.add_metric(name=Metric.ANSWERS, unit=MetricUnit.Count, value=1)
    metrics.add_metric(name=Metric.CITATIONS, unit=MetricUnit.Count, value=len(answer.citations))
    metrics.add_metric(name=Metric.LATENCY, unit=MetricUnit.Milliseconds, value=elapsed_ms)
    logger.info(
        "answered",
        extra={
            "source": request.source.value,
            "question_chars": len(request.question),
            "citations": len(answer.citations),
        },
    )
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=answer.model_dump(mode="json"))


def _request() -> QueryRequest:
    event = app.current_event
    try:
        return QueryRequest.model_validate_json(json_bytes(event.body, event.is_base64_encoded))
    except BodyError as error:
        raise InvalidRequestError(str(error)) from None
    except ValidationError as error:
        raise InvalidRequestError(problems(error)) from None


@app.exception_handler(InvalidRequestError)
def _invalid_request(error: InvalidRequestError) -> Response[Any]:
    return _error(422, "invalid_request", str(error))


@app.exception_handler(UpstreamError)
def _upstream_failed(error: UpstreamError) -> Response[Any]:
    # The caller sees a refusal of their question (a 4xx); model access not granted, a knowledge
    # base or index that is not there, are the platform's set-up (a 502), not the caller's fault.
    error = error.as_platforms()
    logger.warning(
        "upstream call failed", extra={"upstream": error.service, "code": error.code, "kind": error.kind.value}
    )
    retry_after = str(RETRY_AFTER_SECONDS) if error.throttled else None
    return _error(error.http_status, error.error_code, error.public_message, retry_after=retry_after)


@app.not_found
def _no_route(error: NotFoundError) -> Response[Any]:
    return _error(404, "not_found", "POST /query is the only route")


# Registered last and broadest: Powertools picks the most specific handler for an exception.
@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    log_unexpected(logger, "unexpected error", error)
    return _error(500, "internal_error", "the request failed; see the function logs for the request id")


def _error(status: int, code: str, message: str, retry_after: str | None = None) -> Response[Any]:
    metrics.add_dimension(Dimension.ERROR_CODE, code)
    metrics.add_metric(name=Metric.ERRORS, unit=MetricUnit.Count, value=1)
    headers = {"Retry-After": retry_after} if retry_after else None
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body={"error": code, "message": message},
        headers=headers,
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return misshapen(event, FUNCTION_URL) or app.resolve(event, context)
