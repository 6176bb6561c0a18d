"""knowledge_search: passages from the production Knowledge Base for a question.

Every Retrieve carries a metadata filter on the documents' ``classification`` for the caller's
allowed data classifications, which the gateway's REQUEST interceptor writes into the arguments
from the caller's verified group. A call without them is refused, never run unfiltered.
"""

from functools import cache
from math import isfinite
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import ValidationError

from knowledge_search.contract import Arguments, Settings
from shared import snapstart
from shared.aws_errors import RETRY_AFTER_SECONDS, UpstreamError, call
from shared.bodies import BodyError, check_counts, problems
from shared.display import controls_encoded, locator_text, utf8_encodable, without_controls
from shared.documents import CLASSIFICATION_KEY
from shared.field_paths import value_at
from shared.logs import service_logger
from shared.observability import Metric
from shared.telemetry import StageRecord, stage
from shared.tool_errors import ToolError
from shared.tools import CLASSIFICATIONS_ARGUMENT

logger = service_logger()
metrics = Metrics()
EXCERPT_CHARS = 600
MISSING = object()


def retrieval_filter(classifications: list[str]) -> dict[str, Any]:
    return {"in": {"key": CLASSIFICATION_KEY, "value": classifications}}


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def client() -> Any:
    return boto3.client(
        "bedrock-agent-runtime", config=Config(read_timeout=10, retries={"mode": "standard", "total_max_attempts": 3})
    )


# SnapStart (shared.snapstart, on unless production.functions.knowledge_search.snap_start is false):
# init creates no client; the first request after a restore does.


@snapstart.before_snapshot
def _warm() -> None:
    """The SDK's model of Retrieve parsed once for every environment of the version. Nothing is sent."""
    snapstart.load_service_models(("bedrock-agent-runtime",))


@snapstart.after_restore
def _restored() -> None:
    """Each resumed environment draws its own retry jitter (botocore's backoff uses ``random``), and
    resolves its own credentials and opens its own connections."""
    snapstart.fresh_environment(settings, client)


def search(agent_runtime: Any, knowledge_base_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    try:
        check_counts(arguments, whole="arguments")  # as the interceptor does before calling the target
    except BodyError as error:
        scope = arguments.get(CLASSIFICATIONS_ARGUMENT, MISSING)
        if not isinstance(scope, list) or not scope:  # the missing scope first, as below
            why = "Field required" if scope is MISSING else "not a list of classifications"
            return ToolError("forbidden", f"{CLASSIFICATIONS_ARGUMENT}: {why}; {error}").result()
        return ToolError("invalid_argument", str(error)).result()
    try:
        request = Arguments.model_validate(arguments)
    except ValidationError as error:
        # Bounded (shared.bodies): arguments of 200,000 unknown keys would otherwise come back as
        # an answer larger than Lambda may return, every key's name whole. A field's errors come
        # before the unknown keys', so a missing data_classifications is always named.
        unscoped = any(e["loc"] == ("data_classifications",) for e in error.errors())
        message = problems(error, whole="arguments", envelope=())
        return ToolError("forbidden" if unscoped else "invalid_argument", message).result()
    attributes = {"gen_ai.operation.name": "retrieve", "gen_ai.data_source.id": knowledge_base_id}
    with stage("retrieval", logger, conversation=request.conversation_id, **attributes) as record:
        return _retrieve(agent_runtime, knowledge_base_id, request, record)


def _retrieve(agent_runtime: Any, knowledge_base_id: str, request: Arguments, record: StageRecord) -> dict[str, Any]:
    try:
        with call("bedrock-agent-runtime"):  # an answer botocore cannot read too (a score of "high")
            response = agent_runtime.retrieve(
                knowledgeBaseId=knowledge_base_id,
                retrievalQuery={"text": request.query},
                retrievalConfiguration={
                    "vectorSearchConfiguration": {
                        "numberOfResults": request.max_results,
                        "filter": retrieval_filter(request.data_classifications),
                    }
                },
            )
    except UpstreamError as error:
        logger.warning("retrieve failed", extra={"code": error.code})
        record.end("error", error.code)
        # Worth a retry only when throttled or unavailable: a refusal (access, validation) stays.
        retry_after = RETRY_AFTER_SECONDS if error.retryable else None
        return ToolError(
            "upstream_unavailable", f"knowledge base failed with {error.code}", retry_after=retry_after
        ).result()
    results = response.get("retrievalResults") if isinstance(response, dict) else None
    # No more than asked for: an answer of thousands would pass Lambda's 6 MB response limit.
    results = results[: request.max_results] if isinstance(results, list) else []
    # The filter asked for is the Knowledge Base's to apply; what it answers is checked again: a
    # passage of a classification the caller may not read (a store that did not filter, metadata
    # it could not filter on) or of none readable is never returned.
    readable = [r for r in results if value_at(r, f"metadata.{CLASSIFICATION_KEY}") in request.data_classifications]
    if left_out := len(results) - len(readable):
        logger.warning("passages outside the caller's classifications left out", extra={"left_out": left_out})
    passages = [p for result in readable if (p := passage(result))]
    return {"passages": passages, "returned": len(passages)}


def passage(result: Any) -> dict[str, Any] | None:
    """One Retrieve result as a passage, or None for a result without text. The upstream is not
    trusted: a field of another shape than the API's (a null content, a non-string text or URI,
    a location without S3) is left out rather than raising. An uploaded document is someone
    else's text: the excerpt loses its control characters, and the source's are percent-encoded
    (shared/display.py), so neither changes how the agent's or a reader's screen shows it."""
    text = value_at(result, "content.text")
    if not isinstance(text, str):
        return None
    score = value_at(result, "score")
    source = locator_text(value_at(result, "location.s3Location.uri"))
    return {
        "excerpt": utf8_encodable(without_controls(" ".join(text.split()))[:EXCERPT_CHARS]),
        "source": controls_encoded(source) if source is not None else None,
        "score": score if isinstance(score, int | float) and not isinstance(score, bool) and isfinite(score) else None,
        "classification": locator_text(value_at(result, f"metadata.{CLASSIFICATION_KEY}")),
    }


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name=Metric.TOOL_CALLS, unit=MetricUnit.Count, value=1)
    result = search(client(), settings().knowledge_base_id, event if isinstance(event, dict) else {})
    logger.info("searched", extra={"returned": result.get("returned"), "error": result.get("error", {}).get("kind")})
    return result
