"""The S3 object an SQS message is about: EventBridge's "Object Created" event, as the rule sends it."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from ingestion.registry import MAX_VERSION_BYTES, SEQUENCER, SEQUENCER_DIGITS

MAX_KEY_BYTES = 1024  # S3's limit on a key; version ids are no longer either
MAX_OBJECT_BYTES = 5 * 1024**4  # S3's largest object (5 TiB)
BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class MalformedEventError(Exception):
    """A message that names no object: it can never succeed, so it goes to the DLQ with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version: str  # the object's version id: landing buckets are versioned
    size: int
    # S3's order of events on this key (hex); later events have greater ones. object_ref refuses an
    # event without one; "" comes only from a record an earlier release made, and the pipeline fails
    # such a version rather than let it take the place of a newer one.
    sequencer: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def object_ref(body: str) -> ObjectRef:
    try:
        event = json.loads(body)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested past the parser
        raise MalformedEventError("the message body is not JSON") from None
    if not isinstance(event, dict) or event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        if isinstance(event, dict) and ("Records" in event or event.get("Event") == "s3:TestEvent"):
            raise MalformedEventError("an S3 event notification, not EventBridge's (who sends it to the queue?)")
        if isinstance(event, dict) and event.get("Type") == "Notification":
            raise MalformedEventError("an SNS message, not EventBridge's event (who sends it to the queue?)")
        raise MalformedEventError("not an S3 Object Created event")
    detail = event.get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("object"), dict):
        raise MalformedEventError("the event has no object")
    bucket = (detail.get("bucket") or {}).get("name") if isinstance(detail.get("bucket"), dict) else None
    obj = detail["object"]
    key, version, size = obj.get("key"), obj.get("version-id"), obj.get("size")
    _check(bucket, key, version, size)
    sequencer = obj.get("sequencer")
    # Versions are ordered by it: one without it could replace a newer version's state, one longer
    # than S3's could outrank every later event on the key.
    if not isinstance(sequencer, str) or not SEQUENCER.fullmatch(sequencer):
        raise MalformedEventError(
            f"the event has no sequencer of S3's (hex, at most {SEQUENCER_DIGITS} digits) to order it by"
        )
    return ObjectRef(bucket=str(bucket), key=key, version=version, size=size, sequencer=sequencer)


def _check(bucket: Any, key: Any, version: Any, size: Any) -> None:
    """Fields S3 could have sent: anything else is a forged or corrupted event."""
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise MalformedEventError("the event names no bucket or key")
    if not BUCKET.fullmatch(bucket):
        raise MalformedEventError("the event's bucket is not a bucket name")
    if not utf8_within(key, MAX_KEY_BYTES):
        raise MalformedEventError(f"the event's key is not UTF-8 of at most {MAX_KEY_BYTES} bytes")
    if not isinstance(version, str) or not version:
        raise MalformedEventError("the event has no version id (is the landing bucket versioned?)")
    if not utf8_within(version, MAX_VERSION_BYTES) or not version.isprintable():
        raise MalformedEventError("the event's version id is not a version id")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_OBJECT_BYTES:
        raise MalformedEventError("the event has no object size")


def utf8_within(text: str, limit: int) -> bool:
    """Whether ``text`` is UTF-8 of at most ``limit`` bytes (S3 keys and version ids must be)."""
    try:
        return len(text.encode()) <= limit
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return False


JOB_ID = re.compile(r"[a-zA-Z0-9-]{1,64}")
JOB_TAG = re.compile(r"[a-f0-9]{32}")  # the pipeline tags a job with its document id
OCR_API = "StartDocumentTextDetection"


@dataclass(frozen=True)
class OcrJob:
    """Textract's notification that a text detection job finished (SNS to SQS, raw delivery)."""

    job_id: str
    status: str  # SUCCEEDED, FAILED or ERROR
    document_id: str  # the job's tag


def ocr_job(body: str) -> OcrJob | None:
    """The Textract notification in a message, or None when the message is not one (an S3 event)."""
    try:
        message = json.loads(body)
    except (TypeError, ValueError, RecursionError):  # RecursionError: nested past the parser
        return None
    if not isinstance(message, dict) or message.get("API") != OCR_API or "JobId" not in message:
        return None
    job, status, tag = message.get("JobId"), message.get("Status"), message.get("JobTag")
    if not isinstance(job, str) or not JOB_ID.fullmatch(job):
        raise MalformedEventError("the Textract notification has no job id")
    if not isinstance(tag, str) or not JOB_TAG.fullmatch(tag):
        raise MalformedEventError("the Textract notification's job tag is not a document id")
    if status not in ("SUCCEEDED", "FAILED", "ERROR", "PARTIAL_SUCCESS"):
        raise MalformedEventError("the Textract notification has no job status")
    return OcrJob(job_id=job, status=status, document_id=tag)
