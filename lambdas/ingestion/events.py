"""The S3 object an SQS message is about: EventBridge's "Object Created" event, as the rule sends it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any


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
    sequencer: str = ""  # S3's order of events on this key (hex); later events have greater ones

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def object_ref(body: str) -> ObjectRef:
    try:
        event = json.loads(body)
    except (TypeError, ValueError):
        raise MalformedEventError("the message body is not JSON") from None
    if not isinstance(event, dict) or event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        raise MalformedEventError("not an S3 Object Created event")
    detail = event.get("detail")
    if not isinstance(detail, dict) or not isinstance(detail.get("object"), dict):
        raise MalformedEventError("the event has no object")
    bucket = (detail.get("bucket") or {}).get("name") if isinstance(detail.get("bucket"), dict) else None
    obj = detail["object"]
    key, version, size = obj.get("key"), obj.get("version-id"), obj.get("size")
    if not isinstance(bucket, str) or not bucket or not isinstance(key, str) or not key:
        raise MalformedEventError("the event names no bucket or key")
    if not isinstance(version, str) or not version:
        raise MalformedEventError("the event has no version id (is the landing bucket versioned?)")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise MalformedEventError("the event has no object size")
    sequencer = obj.get("sequencer")
    return ObjectRef(
        bucket=bucket, key=key, version=version, size=size, sequencer=sequencer if isinstance(sequencer, str) else ""
    )
