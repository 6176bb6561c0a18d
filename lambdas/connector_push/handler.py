"""The push connector: upstream systems POST JSON records; each becomes a landing document.

    POST /v1/records/{source}   {"records": [{"id", "title", "body", "owner"?, "updated_at"?}]}
                                -> 202 {"accepted": n, "documents": [{"id", "key", "version"}],
                                        "skipped": [{"id", "reason"}]}

The API authorizes callers with IAM (SigV4), each source's path its own callers' (the API's
resource policy). A batch is all or nothing: any invalid record (one that S3 or the pipeline would
refuse later, a repeated id, an ``updated_at`` in the future) is a 422 naming its index and field,
and nothing is written; the answer lists ten problems at most and counts the rest (150,000 unknown
keys would otherwise answer more than Lambda may return). A record whose ``updated_at`` is older
than the change of its id that landed last is skipped, not landed (a batch sent again after a
failure, or pushes out of order, would put an older text back over a newer one), and so is one
whose key S3 finds holding a later change when it lands (two requests at once: the newer's text
stays, whichever reaches S3 last; connector_push.newest); one without ``updated_at`` always lands.
Back-pressure is the pipeline's queue: this function only writes to S3 (reading a key's object
when another request wrote it first) and the registry. Record contents are never logged.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import from_json

from connector_push.contract import PUSHES_REFUSED, Settings
from connector_push.newest import land_newest
from shared import snapstart
from shared.bodies import BodyError, body_bytes, check_counts, check_values, clip, listing, problems
from shared.connector_state import CLOCK_SKEW, claim_change, utc
from shared.http_events import REST_API, misshapen
from shared.landing import Document, Record, document, land
from shared.logs import log_unexpected, service_logger

logger = service_logger()
metrics = Metrics()
app = APIGatewayRestResolver()


class PushedRecord(Record):
    """A record as a caller pushes it: a field the connector does not know (a misspelt "titel") is
    refused, not dropped (the pull connector's records, read from a source's own shape, ignore them)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)


class Batch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[PushedRecord] = Field(min_length=1)


@cache
def settings() -> Settings:
    return Settings.from_environ()


def sources() -> dict[str, str]:
    """Source -> the classification its records get (connectors.push.sources)."""
    return settings().push_sources


@cache
def s3() -> Any:
    return boto3.client("s3", config=Config(retries={"mode": "standard", "total_max_attempts": 3}))


@cache
def registry() -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": 3})
    return boto3.resource("dynamodb", config=config).Table(settings().registry_table)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# SnapStart (shared.snapstart, on unless production.functions.connector_push.snap_start is false):
# init creates no client; the first request after a restore does.


@snapstart.before_snapshot
def _warm() -> None:
    """The SDK's models of S3 and DynamoDB parsed once for every environment of the version. Nothing is sent."""
    snapstart.load_service_models(("s3", "dynamodb"))


@snapstart.after_restore
def _restored() -> None:
    """Each resumed environment draws its own retry jitter (botocore's backoff uses ``random``), and
    resolves its own credentials and opens its own connections."""
    snapstart.fresh_environment(settings, s3, registry)


PUSH_MAX_KEYS = 64  # of any one object in a push's body


def _json(status: int, body: dict[str, Any]) -> Response[Any]:
    if status >= 400:
        metrics.add_metric(name=PUSHES_REFUSED, unit=MetricUnit.Count, value=1)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/v1/records/<source>")
def push(source: str) -> Response[Any]:
    classification = sources().get(source)
    if classification is None:
        # Not the sources there are: each is its own callers' (the API's resource policy), and a
        # caller of one has no business learning the others.
        return _json(404, {"error": "not_found", "message": "unknown source"})
    limit = settings().max_records
    try:
        raw = _parsed_body()
    except ValueError as error:
        return _json(400, {"error": "invalid_request", "message": f"body: {error}"})
    if isinstance(raw, dict) and isinstance(raw.get("records"), list) and len(raw["records"]) > limit:
        return _json(413, {"error": "too_large", "message": f"at most {limit} records per request"})
    try:
        # A record has five fields: 64 keys bounds the errors of a full batch's unknown keys.
        check_counts(raw, max_keys=PUSH_MAX_KEYS)
    except BodyError as error:
        return _json(400, {"error": "invalid_request", "message": str(error)})
    try:
        batch = Batch.model_validate(raw)
    except ValidationError as error:
        return _json(422, {"error": "invalid_request", "message": problems(error, envelope=())})
    # Every document is built before the first lands, so no record is refused half-way (an S3 failure
    # still can stop the batch: the caller sends it again, and landing a record again replaces it).
    documents = [(record.id, document(source, record, classification=classification)) for record in batch.records]
    invalid = _duplicate_ids(batch.records) or _in_the_future(batch.records) or _too_large(documents)
    if invalid:
        return _json(422, {"error": "invalid_request", "message": listing(invalid)})
    accepted: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []
    for record, (record_id, doc) in zip(batch.records, documents, strict=True):
        version = _land(source, record, doc)
        if version is None:
            skipped.append({"id": record_id, "reason": "a later change of this record (updated_at) has landed"})
            continue
        accepted.append({"id": record_id, "key": doc.key, "version": version})
    metrics.add_dimension("Source", source)
    metrics.add_metric(name="RecordsAccepted", unit=MetricUnit.Count, value=len(accepted))
    metrics.add_metric(name="RecordsSkipped", unit=MetricUnit.Count, value=len(skipped))
    logger.info("records accepted", extra={"source": source, "count": len(accepted), "skipped": len(skipped)})
    return _json(202, {"accepted": len(accepted), "documents": accepted, "skipped": skipped})


def _land(source: str, record: Record, doc: Document) -> str | None:
    """The version id ``doc`` landed as; None when a later change of its record landed before it
    (the registry's claim says so, or the object S3 holds)."""
    bucket = settings().landing_bucket
    if record.updated_at is None:
        return land(s3(), doc, bucket)  # nothing orders it against another change: it always lands
    changed = utc(record.updated_at)
    if not claim_change(registry(), source, record.id, changed):
        return None
    return land_newest(s3(), doc, bucket, changed)


def _in_the_future(records: Sequence[Record]) -> list[str]:
    """An updated_at past this function's clock (and CLOCK_SKEW), or one no UTC time can hold
    (year 1 at +14:00): landed, the first would hold back its id's every real change until then."""
    latest = now() + CLOCK_SKEW
    found: list[str] = []
    for index, record in enumerate(records):
        if record.updated_at is None:
            continue
        try:
            late = utc(record.updated_at) > latest
        except OverflowError:
            found.append(f"records.{index}.updated_at: a time outside the years 1 to 9999 in UTC")
            continue
        if late:
            found.append(
                f"records.{index}.updated_at: later than this service's clock allows (at most {CLOCK_SKEW} ahead)"
            )
    return found


def _too_large(documents: Sequence[tuple[str, Document]]) -> list[str]:
    """A record whose document the pipeline would quarantine as too large, accepted here."""
    most = settings().max_document_bytes
    return [
        f"records.{index}: its document takes {len(doc.body)} bytes; the pipeline takes at most {most}"
        for index, (_, doc) in enumerate(documents)
        if most is not None and len(doc.body) > most
    ]


def _duplicate_ids(records: Sequence[Record]) -> list[str]:
    """An id is a landing key: a second record with the same id in one batch would silently replace
    the first, so the batch is refused instead, naming each repeat and the record it repeats."""
    first: dict[str, int] = {}
    return [
        f"records.{index}.id: the same id as records.{first[record.id]}.id (one record per id in a batch)"
        for index, record in enumerate(records)
        if first.setdefault(record.id, index) != index
    ]


def _parsed_body() -> Any:
    """The body as JSON, or a ValueError naming why not: base64 (strictly, when the event says
    so), UTF-8, then pydantic's parser, which refuses NaN and Infinity and ends deep nesting and
    huge numbers with a ValueError (json.loads would raise RecursionError on the first)."""
    event = app.current_event
    try:
        data = body_bytes(event.body, event.is_base64_encoded)
        check_values(data)  # before either parse builds a Python object per value
    except BodyError as error:
        raise ValueError(str(error).removeprefix("body: ")) from None
    try:
        parsed = from_json(data, allow_inf_nan=False)
    except ValueError as error:
        raise ValueError(f"not JSON ({error})") from None
    # JSON keeps a repeated key's last value: a second "records" would drop the first list unseen.
    # (Read again only once pydantic's parser has bounded the depth.)
    json.loads(data, object_pairs_hook=_no_repeated_keys)
    return parsed


def _no_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: set[str] = set()
    for key, _ in pairs:  # one pass: a body of many keys must not cost their square
        if key in seen:
            raise ValueError(f"the key {clip(key)!r} is given twice in one object")
        seen.add(key)
    return dict(pairs)


@app.not_found
def _no_route(_: Exception) -> Response[Any]:
    return _json(404, {"error": "not_found", "message": "POST /v1/records/{source}"})


@app.exception_handler(Exception)
def _unexpected(error: Exception) -> Response[Any]:
    log_unexpected(logger, "push failed", error)
    return _json(500, {"error": "internal_error", "message": "the records were not all stored; send them again"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    refused = misshapen(event, REST_API)
    if refused is not None:
        metrics.add_metric(name=PUSHES_REFUSED, unit=MetricUnit.Count, value=1)
        return refused
    return app.resolve(event, context)
