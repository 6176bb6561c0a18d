"""The ingestion processor: SQS batches of S3 "Object Created" events, partial failures reported.

Powertools' batch processor reports exactly the failed messages back to SQS, which retries them
and, after ``maxReceiveCount`` attempts, moves them to the DLQ; on that last attempt the registry
records the document as dead-lettered with the reason. A message that names no object can never
succeed: it goes to the DLQ at once with its reason as a message attribute, as does a record
Lambda could not have delivered (not an object, or no message id to report back to SQS; without a
text body, its whole record is the DLQ message's body). An event that is no SQS batch at all is
refused with a logged reason, never a traceback. Each object version is processed once
(Powertools idempotency on bucket, key and version); a replay returns the first result and does
nothing again. Document text and PII never reach the logs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from ingestion.contract import LOST_RECORDS_METRIC, REFUSED_EVENTS_METRIC, ClassificationReaders, ProcessorSettings
from ingestion.copies import CopyTooSlowError
from ingestion.events import MalformedEventError, ObjectRef, OcrJob, object_ref, ocr_job
from ingestion.knowledge import IndexRefusedError, KnowledgeBase
from ingestion.pii import PiiScanner, ScanStoppedError
from ingestion.pipeline import Outcome, Pipeline, SecondsLeft, document_id, source_ref
from ingestion.registry import DEAD_LETTERED, QUARANTINED, Registry, UnsequencedError, VersionRecord
from shared.aws_errors import failure_code
from shared.contract import variable
from shared.dead_letters import cut_to_fit, fits, sqs_json
from shared.logs import service_logger
from shared.observability import Metric
from shared.runtime_config import DocumentReader
from shared.telemetry import stage

logger = service_logger()
metrics = Metrics()
# Report every failure as an item failure, even when the whole batch fails: SQS retries the same way.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
AWS = Config(connect_timeout=2, read_timeout=20, retries={"mode": "standard", "total_max_attempts": 3})
# Powertools binds the idempotency table when the module loads, before settings() is first read.
# Its client is the default session's, with the same bounded timeouts as every other: left to
# itself, Powertools makes a session of its own (endpoints and DynamoDB's model loaded twice per
# cold start) and a client with botocore's 60-second timeouts.
IDEMPOTENCY_TABLE = os.environ.get(variable("idempotency_table"), "idempotency")
persistence = DynamoDBPersistenceLayer(table_name=IDEMPOTENCY_TABLE, boto3_client=boto3.client("dynamodb", config=AWS))
idempotency = IdempotencyConfig(event_key_jmespath="[bucket, key, version]", expires_after_seconds=7 * 24 * 3600)


@cache
def settings() -> ProcessorSettings:
    return ProcessorSettings.from_environ()


@cache
def registry() -> Registry:
    return Registry(boto3.resource("dynamodb", config=AWS).Table(settings().registry_table))


@cache
def pipeline() -> Pipeline:
    config = settings()
    scanner = PiiScanner(
        boto3.client("comprehend", config=AWS),
        custom_identifiers=dict(config.custom_identifiers),
        min_score=config.pii_min_score,
    )
    knowledge = KnowledgeBase(
        boto3.client("bedrock-agent", config=AWS),
        knowledge_base_id=config.knowledge_base_id,
        s3_data_source_id=config.s3_data_source_id,
        custom_data_source_id=config.custom_data_source_id,
    )
    readers = DocumentReader(config.classification_readers, ClassificationReaders)
    return Pipeline(
        boto3.client("s3", config=AWS),
        scanner,
        registry(),
        knowledge,
        config,
        readers=lambda: readers.get().classification_readers,
        textract=boto3.client("textract", config=AWS) if config.ocr == "textract" else None,
    )


@cache
def sqs() -> Any:
    return boto3.client("sqs", config=AWS)


@idempotent_function(data_keyword_argument="obj", config=idempotency, persistence_store=persistence)
def process(
    obj: dict[str, Any], seconds_left: SecondsLeft | None = None, scan_seconds_left: SecondsLeft | None = None
) -> dict[str, Any]:
    """One object, once (``seconds_left``: how long a copy to quarantine may still take;
    ``scan_seconds_left``: how long its scan for personal data may still call Comprehend)."""
    ref = ObjectRef(**obj)
    with stage("ingestion", logger, **{"document.id": document_id(ref.bucket, ref.key)}) as record:
        outcome = pipeline().process(ref, seconds_left, scan_seconds_left=scan_seconds_left)
        record.update({"document.status": outcome.status, "document.pii_entities": sum(outcome.pii.values())})
        if outcome.status == QUARANTINED:
            record.end("intervened", outcome.reason_code or "quarantined")
    return _result(outcome)


def _result(outcome: Outcome) -> dict[str, Any]:
    """A document's outcome as the batch reports and logs it (its reason's code when quarantined)."""
    code = {"reason_code": outcome.reason_code} if outcome.reason_code else {}
    return {"document_id": outcome.document_id, "status": outcome.status, "reason": outcome.reason, **code}


class TimeBudgetError(Exception):
    """Too little of the invocation is left for another document: SQS retries this one later."""


LAST_ATTEMPT = 10**9  # a receive count too long to read is past any maxReceiveCount
# Times a message deferred on its last receive is sent to the queue again before it is dead-lettered
# (Lambda's own recursive-loop detection would stop it at 16, with no reason recorded).
MAX_REQUEUES = 3
REQUEUES = "requeues"  # the message attribute that counts them


def record_handler(record: SQSRecord, lambda_context: LambdaContext | None = None) -> dict[str, Any]:
    try:
        if not isinstance(record.raw_event.get("body"), str):
            raise MalformedEventError("the SQS record has no text body")
        job = ocr_job(record.body)
        if job is not None:
            return _ocr_notified(job, record)
        ref = object_ref(record.body)
        if not _landing(ref.bucket):  # nothing is read or deleted in another bucket
            raise MalformedEventError("the event's bucket is not the landing bucket")
    except MalformedEventError as malformed:
        _dead_letter(record, malformed.reason)
        return {"status": DEAD_LETTERED, "reason": malformed.reason}
    # A document at the size limit takes ~50 Comprehend calls: rather than let the function time
    # out (and the whole batch with it), leave the rest of the batch for the next try.
    budget_ms = settings().document_budget_seconds * 1000
    if lambda_context is not None and lambda_context.get_remaining_time_in_millis() < budget_ms:
        return _deferred(record, ref)
    try:
        ref = pipeline().locate(ref)  # the real key: the document id, the registry and the replay key
        result: dict[str, Any] = process(
            obj=ref.as_dict(), seconds_left=_copy_time(lambda_context), scan_seconds_left=_scan_time(lambda_context)
        )
    except ScanStoppedError:  # nothing written yet: the document is left for a later invocation
        return _deferred(record, ref)
    except Exception as error:
        reason = _failure_reason(error)
        if _receive_count(record.raw_event) >= settings().max_receive_count:
            _record_dead_letter(ref, reason)
        logger.warning("document failed", extra={"document_id": document_id(ref.bucket, ref.key), "reason": reason})
        raise
    metrics.add_metric(name=f"Documents{result['status'].title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    logger.info("document processed", extra={**result, "version": ref.version})
    return result


# Failures that say why in words of the pipeline's own (sizes, limits, statuses; never the text).
OWN_WORDS = (CopyTooSlowError, IndexRefusedError, UnsequencedError)


def _failure_reason(error: Exception) -> str:
    """A failed version's reason, as the registry records it with its dead letter."""
    return str(error) if isinstance(error, OWN_WORDS) else f"processing failed: {failure_code(error)}"


def _copy_time(lambda_context: LambdaContext | None) -> SecondsLeft | None:
    """How long a copy to quarantine may still take: until a document's budget is left of the
    invocation, for the parts in flight to end, the upload's abort and the failure's record."""
    if lambda_context is None:
        return None
    reserve = settings().document_budget_seconds
    return lambda: lambda_context.get_remaining_time_in_millis() / 1000 - reserve


def _scan_time(lambda_context: LambdaContext | None) -> SecondsLeft | None:
    """How long a document's scan for personal data may still call Comprehend: until half a
    document's budget is left of the invocation, for its copy and its records after the scan. A
    document is started with a budget left, sized for a text at the size limit; a text that costs
    more calls (or a slow Comprehend) would otherwise outrun the invocation, and time out its batch."""
    if lambda_context is None:
        return None
    reserve = settings().document_budget_seconds / 2
    return lambda: lambda_context.get_remaining_time_in_millis() / 1000 - reserve


def _deferred(record: SQSRecord, ref: ObjectRef) -> dict[str, Any]:
    """A document left for a later invocation, untried: SQS retries its message (TimeBudgetError).
    On the message's last receive SQS would move it to the dead letters untried, so it goes back to
    the queue as a new message (receive count 0, ``requeues`` one more) and this one is done; after
    MAX_REQUEUES of those, or if the send fails, its version is recorded dead-lettered with the
    reason and SQS moves the message to the dead letters."""
    logger.info(
        "document deferred: too little of the invocation is left",
        extra={"document_id": document_id(ref.bucket, ref.key)},
    )
    deferred = TimeBudgetError("too little of the invocation is left for another document")
    if _receive_count(record.raw_event) < settings().max_receive_count:
        raise deferred
    requeues = _requeues(record.raw_event)
    if requeues >= MAX_REQUEUES:
        _record_dead_letter(
            _located(ref), f"deferred for time on every receive, and sent to the queue again {requeues} times"
        )
        raise deferred
    try:
        sqs().send_message(
            QueueUrl=settings().queue_url,
            MessageBody=record.body,
            MessageAttributes={REQUEUES: {"DataType": "Number", "StringValue": str(requeues + 1)}},
        )
    except Exception as error:
        _record_dead_letter(
            _located(ref), f"deferred for time on its last receive; sending it again failed: {failure_code(error)}"
        )
        raise deferred from None
    metrics.add_metric(name=Metric.DOCUMENTS_REQUEUED, unit=MetricUnit.Count, value=1)
    return {"status": "requeued", "reason": "deferred on its message's last receive: sent to the queue again"}


def _located(ref: ObjectRef) -> ObjectRef:
    """The object under its real key (``Pipeline.locate``), as a dead letter is recorded under the
    document it belongs to; the key as sent when S3 or the registry cannot say (it is recorded
    anyway: the message still reaches the dead letters)."""
    try:
        return pipeline().locate(ref)
    except Exception as error:
        logger.warning("dead letter recorded under the key as sent", extra={"code": failure_code(error)})
        return ref


def _requeues(record: dict[str, Any]) -> int:
    """How many times the message was sent to the queue again for time (its ``requeues`` attribute)."""
    attributes = record.get("messageAttributes")
    attribute = attributes.get(REQUEUES) if isinstance(attributes, dict) else None
    value = attribute.get("stringValue") if isinstance(attribute, dict) else None
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        return 0
    return int(value) if len(value) < 4 else MAX_REQUEUES


def _receive_count(record: dict[str, Any]) -> int:
    """SQS's ApproximateReceiveCount (a decimal string); 0 when a record has none it could have sent."""
    attributes = record.get("attributes")
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    if isinstance(count, int) and not isinstance(count, bool):
        return max(count, 0)
    if not isinstance(count, str) or not count.isascii() or not count.isdigit():
        return 0
    digits = count.lstrip("0") or "0"
    return int(digits) if len(digits) <= 9 else LAST_ATTEMPT


def _landing(bucket: str) -> bool:
    return bucket == settings().landing_bucket


def _ocr_notified(job: OcrJob, record: SQSRecord) -> dict[str, Any]:
    """A Textract notification, retried by SQS when it fails; on the last attempt its version is
    recorded dead-lettered first (as a document's is), so the registry never says it is pending
    while its notification sits in the DLQ."""
    try:
        return _ocr_finished(job)
    except Exception as error:
        reason = _failure_reason(error)
        if _receive_count(record.raw_event) >= settings().max_receive_count:
            pending = pipeline().ocr_pending(job)
            if pending is not None:  # under its own document (a key as sent may have named it)
                _record_dead_letter(source_ref(pending), reason, document=pending.document_id)
        logger.warning("OCR notification failed", extra={"document_id": job.document_id, "reason": reason})
        raise


def _ocr_finished(job: OcrJob) -> dict[str, Any]:
    """A Textract job's notification: its version continues through the pipeline, once (a settled
    version's or an unknown job's notification is ignored). A failure is retried by SQS."""
    with stage("ingestion", logger, **{"document.id": job.document_id}) as record:
        outcome = pipeline().ocr_finished(job)
        if outcome is None:
            logger.info("OCR notification ignored", extra={"document_id": job.document_id, "job_id": job.job_id})
            metrics.add_metric(name="OcrNotificationsIgnored", unit=MetricUnit.Count, value=1)
            return {"document_id": job.document_id, "status": "ignored", "reason": "no version waits for this job"}
        record.update({"document.status": outcome.status, "document.pii_entities": sum(outcome.pii.values())})
        if outcome.status == QUARANTINED:
            record.end("intervened", outcome.reason_code or "quarantined")
    result = _result(outcome)
    metrics.add_metric(name=f"Documents{outcome.status.title().replace('_', '')}", unit=MetricUnit.Count, value=1)
    logger.info("document processed", extra={**result, "version": outcome.version, "job_id": job.job_id})
    return result


def _dead_letter(record: SQSRecord, reason: str) -> None:
    _send_to_dlq(record.raw_event, record.message_id, reason)


def _send_to_dlq(record: Any, message_id: str, reason: str, *, whole: bool = False) -> None:
    """The record's body (its whole record as JSON when it has no text body, or ``whole``) to the
    DLQ with the reason, recorded in the registry under the message id."""
    body = record.get("body") if isinstance(record, dict) and not whole else None
    text = _fitting(body if isinstance(body, str) else _as_json(record))
    sqs().send_message(
        QueueUrl=settings().dlq_url,
        MessageBody=text,
        MessageAttributes={"reason": {"DataType": "String", "StringValue": reason}},
    )
    registry().dead_letter_event(message_id, reason, dt.datetime.now(dt.UTC))
    metrics.add_metric(name=Metric.DOCUMENTS_DEAD_LETTERED, unit=MetricUnit.Count, value=1)
    logger.warning("malformed event dead-lettered", extra={"message_id": message_id, "reason": reason})


def _fitting(text: str) -> str:
    """A dead letter's body as SQS will take it beside its reason: the text, or past
    MAX_DEAD_LETTER_BYTES its first bytes and its size (a message near SQS's limit, forwarded
    whole with a reason added, was refused at every receive and reached the DLQ by SQS's own
    redrive, with no reason and no record)."""
    if fits(text):
        return text
    data = text.encode(errors="surrogatepass")
    return cut_to_fit(data, lambda start: sqs_json({"message_bytes": len(data), "message_start": start}))


def _as_json(value: Any) -> str:
    """A record as JSON text SQS takes (ASCII: escapes for control characters and lone surrogates)."""
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError, RecursionError):  # keys of mixed types, nested past the encoder
        return json.dumps(repr(value)[:200_000])


def _record_dead_letter(ref: ObjectRef, reason: str, *, document: str | None = None) -> None:
    """The version recorded dead-lettered with the reason, unless it is settled already (a duplicate
    delivery of a version curated or quarantined before: its record stands)."""
    now = dt.datetime.now(dt.UTC).isoformat()
    recorded = registry().dead_lettered(
        VersionRecord(
            document_id=document or document_id(ref.bucket, ref.key),
            version=ref.version,
            status=DEAD_LETTERED,
            reason=reason,
            source=f"s3://{ref.bucket}/{ref.key}",
            location="dlq",
            size=ref.size,
            received_at=now,
            processed_at=now,
        )
    )
    if not recorded:
        logger.info("a settled version's duplicate delivery dead-lettered", extra={"version": ref.version})
    metrics.add_metric(name=Metric.DOCUMENTS_DEAD_LETTERED, unit=MetricUnit.Count, value=1)


def _envelope_problem(record: Any) -> str | None:
    """Why SQS could not have delivered this record (Powertools could not report its failure)."""
    if not isinstance(record, dict):
        return "the SQS record is not an object"
    message_id = record.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        return "the SQS record has no message id"
    return None


def _undeliverable(record: Any, position: int, reason: str) -> None:
    """A record SQS could not have sent: to the DLQ at once (there is no message to retry). If even
    that fails, the error says so: it can be reported to no one else."""
    digest = hashlib.sha256(_as_json(record).encode()).hexdigest()[:32]
    try:
        _send_to_dlq(record, f"record-{position}-{digest}", reason, whole=True)
    except Exception as error:
        metrics.add_metric(name=LOST_RECORDS_METRIC, unit=MetricUnit.Count, value=1)
        logger.error(
            "a record without a message id could not be dead-lettered",
            extra={"position": position, "digest": digest, "reason": reason, "error": failure_code(error)},
        )


def _refuse(event: Any, reason: str) -> dict[str, Any]:
    metrics.add_metric(name=REFUSED_EVENTS_METRIC, unit=MetricUnit.Count, value=1)
    logger.error("event refused: not an SQS batch", extra={"reason": reason, "event_type": type(event).__name__})
    return {"batchItemFailures": []}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    idempotency.register_lambda_context(context)
    if not isinstance(event, dict) or "Records" not in event:
        return _refuse(event, "the event has no Records")
    records = event["Records"]
    if not isinstance(records, list) or not records:
        return _refuse(event, "the event's Records are not a list of records")
    deliverable = []
    for position, record in enumerate(records):
        problem = _envelope_problem(record)
        if problem is None:
            deliverable.append(record)
        else:
            _undeliverable(record, position, problem)
    if not deliverable:
        return {"batchItemFailures": []}
    response = process_partial_response(
        event={"Records": deliverable}, record_handler=record_handler, processor=processor, context=context
    )
    # SQS may deliver a message twice in a batch: its id is reported once.
    failed = dict.fromkeys(f["itemIdentifier"] for f in response["batchItemFailures"])
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
