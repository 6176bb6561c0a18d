"""The document registry (DynamoDB): where every object went and why, without its contents.

pk = document id, sk = "current"            the document's current state
pk = document id, sk = "version#<version>"  one record per object version the pipeline saw
pk = "event#<message id>", sk = "event"     a message that named no object (dead-lettered)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

VERSION_KEY = "version#"  # a version record's sort key: VERSION_KEY + the S3 version id
# DynamoDB holds a sort key of at most 1,024 bytes: a longer version id could not be recorded.
MAX_VERSION_BYTES = 1024 - len(VERSION_KEY)

CURRENT = "current"
CURATED, QUARANTINED, DEAD_LETTERED, GONE = "curated", "quarantined", "dead_lettered", "gone"
SUPERSEDED = "superseded"  # a newer version of the document was settled first; this one was skipped
OCR_PENDING = "ocr_pending"  # a Textract text detection runs; its notification settles the version
# Versions that are done: a replay does nothing again. Dead-lettered ones are not: a redrive
# after the cause is fixed must process them.
SETTLED = frozenset({CURATED, QUARANTINED, GONE, SUPERSEDED})
SEQUENCER_WIDTH = 64  # S3 sequencers are hex of varying length: left-padded, they compare as text
# S3's sequencers are 16 to 18 hex digits in practice (S3 documents neither a length nor a bound). A
# longer one outranks every event S3 will send for its key, so a message someone other than S3 put
# on the queue could freeze a document for good (each later upload superseded): past two digits of
# room, an event is refused, to the dead letters with the reason, redrivable should S3's grow. A
# forged sequencer within the bound still outranks the key's events until S3's reach it: only the
# queue's policy (EventBridge's rule alone may send) keeps such messages out.
SEQUENCER_DIGITS = 20
SEQUENCER = re.compile(rf"[0-9A-Fa-f]{{1,{SEQUENCER_DIGITS}}}")


class StaleVersionError(Exception):
    """The document's current state was written by a newer version meanwhile."""


class UnsequencedError(Exception):
    """A version with no S3 sequencer (SEQUENCER) of its event: where it stands among the document's
    versions is unknown, so it may not become the current state (it could be an older one's)."""

    def __init__(self) -> None:
        super().__init__(
            f"the version's S3 event had no sequencer of S3's (hex, at most {SEQUENCER_DIGITS} digits): "
            "its order among the document's versions is unknown"
        )


def sequencer_key(sequencer: str) -> str:
    return sequencer.upper().rjust(SEQUENCER_WIDTH, "0")


@dataclass(frozen=True)
class VersionRecord:
    document_id: str
    version: str
    status: str
    reason: str
    source: str  # s3://landing/key
    location: str = ""  # where it went: the curated or quarantine object, or the DLQ
    classification: str = ""
    origin: str = ""  # upload, or connector:<name>
    content_hash: str = ""  # sha256 of the object's bytes
    size: int = 0
    pii: dict[str, int] = field(default_factory=dict)  # entity type -> count, never values
    received_at: str = ""
    processed_at: str = ""
    ocr_job: str = ""  # the Textract job reading a PDF without a text layer
    sequencer: str = ""  # kept while OCR is pending: the notification continues with the event's order
    reason_code: str = ""  # a quarantined version's reason as a stable code (too_large, pii, needs_ocr, ...)


class Registry:
    def __init__(self, table: Any) -> None:
        self._table = table  # a boto3 DynamoDB Table resource

    def version(self, document_id: str, version: str) -> VersionRecord | None:
        item = self._table.get_item(Key={"pk": document_id, "sk": f"{VERSION_KEY}{version}"}, ConsistentRead=True)
        found = item.get("Item")
        return _record(found) if found else None

    def current(self, document_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": document_id, "sk": CURRENT}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def record(
        self,
        record: VersionRecord,
        *,
        current: dict[str, Any] | None = None,
        sequencer: str = "",
        replacing: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the document's new current state (only over an older version's, or over this
        version's own as ``replacing`` read it: StaleVersionError otherwise), then the version's
        record. Two writes: an attempt that failed between them (throttled, or the function ended)
        is retried by SQS, and the retry writes the same version's state again; a duplicate
        delivery processing the same version at the same time finds the state changed since it
        read it, and is refused."""
        if current is not None:
            if not SEQUENCER.fullmatch(sequencer):
                raise UnsequencedError
            item = {"pk": record.document_id, "sk": CURRENT, **current, "sequencer": sequencer_key(sequencer)}
            try:
                self._table.put_item(
                    Item=item,
                    ConditionExpression="attribute_not_exists(#s) OR #s < :s OR (#s = :s AND #v = :v AND #u = :u)",
                    ExpressionAttributeNames={"#s": "sequencer", "#v": "version", "#u": "updated_at"},
                    ExpressionAttributeValues={
                        ":s": item["sequencer"],
                        ":v": record.version,
                        ":u": str((replacing or {}).get("updated_at", "")),
                    },
                )
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    raise StaleVersionError(record.version) from None
                raise
        self._table.put_item(Item=_version_item(record))

    def dead_lettered(self, record: VersionRecord) -> bool:
        """Record a version dead-lettered unless it is settled already (SETTLED): a duplicate delivery
        of a curated version that failed or ran out of time leaves the curated record as it is.
        False when it was settled."""
        settled = sorted(SETTLED)
        try:
            self._table.put_item(
                Item=_version_item(record),
                ConditionExpression="attribute_not_exists(#s) OR NOT #s IN ("
                + ", ".join(f":s{n}" for n in range(len(settled)))
                + ")",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={f":s{n}": status for n, status in enumerate(settled)},
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def ocr_started(self, record: VersionRecord) -> None:
        """A version waiting for its Textract job, and the job's way back to it (the notification
        names the job and its tag, the document id, not the version)."""
        self.record(record)
        self._table.put_item(Item={"pk": record.document_id, "sk": f"ocr#{record.ocr_job}", "version": record.version})

    def ocr_version(self, document_id: str, job_id: str) -> VersionRecord | None:
        """The version a Textract job reads, if this pipeline started it."""
        item = self._table.get_item(Key={"pk": document_id, "sk": f"ocr#{job_id}"}, ConsistentRead=True).get("Item")
        return self.version(document_id, str(item["version"])) if item else None

    def finding(
        self, document_id: str, finding_id: str, *, reason: str, location: str, at: dt.datetime, current: bool
    ) -> None:
        """A Macie finding acted on; with ``current``, its curated copy was taken out, so the
        document's current state becomes quarantined. The state is updated, not replaced: its
        version and sequencer stay, so a late event for an older version is still superseded (the
        curated copy's object version and mode go with the copy)."""
        stamp = at.isoformat()
        item = {"status": QUARANTINED, "reason": reason, "location": location, "processed_at": stamp}
        self._table.put_item(Item={"pk": document_id, "sk": f"finding#{finding_id}", **item})
        if current:
            self._table.update_item(
                Key={"pk": document_id, "sk": CURRENT},
                UpdateExpression="SET #st = :st, #l = :l, #u = :u REMOVE #o, #m",
                ExpressionAttributeNames={
                    "#st": "status",
                    "#l": "location",
                    "#u": "updated_at",
                    "#o": "object_version",
                    "#m": "mode",
                },
                ExpressionAttributeValues={":st": QUARANTINED, ":l": location, ":u": stamp},
            )

    def finding_location(self, document_id: str, finding_id: str) -> str | None:
        """Where a Macie finding's object was quarantined, if it was recorded (by an earlier attempt)."""
        key = {"pk": document_id, "sk": f"finding#{finding_id}"}
        item = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        location = item.get("location") if item else None
        return location if isinstance(location, str) and location else None

    def dead_letter_event(self, message_id: str, reason: str, at: dt.datetime) -> None:
        self._table.put_item(
            Item={
                "pk": f"event#{message_id}",
                "sk": "event",
                "status": DEAD_LETTERED,
                "reason": reason,
                "location": "dlq",
                "processed_at": at.isoformat(),
            }
        )


def _version_item(record: VersionRecord) -> dict[str, Any]:
    """A version's registry item: its record's fields that are set, under the document and version."""
    version = {k: v for k, v in asdict(record).items() if v not in ("", {}, None)}
    return {**version, "pk": record.document_id, "sk": f"{VERSION_KEY}{record.version}", "size": record.size}


def _record(item: dict[str, Any]) -> VersionRecord:
    names = VersionRecord.__dataclass_fields__
    values = {k: v for k, v in item.items() if k in names}
    values["size"] = int(values.get("size", 0))
    values["pii"] = {k: int(v) for k, v in (values.get("pii") or {}).items()}
    return VersionRecord(**values)
