"""The document registry (DynamoDB): where every object went and why, without its contents.

pk = document id, sk = "current"            the document's current state
pk = document id, sk = "version#<version>"  one record per object version the pipeline saw
pk = "event#<message id>", sk = "event"     a message that named no object (dead-lettered)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

CURRENT = "current"
CURATED, QUARANTINED, DEAD_LETTERED, GONE = "curated", "quarantined", "dead_lettered", "gone"
TERMINAL = frozenset({CURATED, QUARANTINED, DEAD_LETTERED, GONE})


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


class Registry:
    def __init__(self, table: Any) -> None:
        self._table = table  # a boto3 DynamoDB Table resource

    def version(self, document_id: str, version: str) -> VersionRecord | None:
        item = self._table.get_item(Key={"pk": document_id, "sk": f"version#{version}"}, ConsistentRead=True)
        found = item.get("Item")
        return _record(found) if found else None

    def current(self, document_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": document_id, "sk": CURRENT}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def record(self, record: VersionRecord, *, current: dict[str, Any] | None = None) -> None:
        """Write the version's record and, when given, the document's new current state."""
        item = {k: v for k, v in asdict(record).items() if v not in ("", {}, None)}
        item |= {"pk": record.document_id, "sk": f"version#{record.version}", "size": record.size}
        with self._table.batch_writer() as batch:
            batch.put_item(Item=item)
            if current is not None:
                batch.put_item(Item={"pk": record.document_id, "sk": CURRENT, **current})

    def finding(self, document_id: str, finding_id: str, *, reason: str, location: str, at: dt.datetime) -> None:
        """A Macie finding acted on: the document's current state becomes quarantined."""
        stamp = at.isoformat()
        with self._table.batch_writer() as batch:
            batch.put_item(
                Item={
                    "pk": document_id,
                    "sk": f"finding#{finding_id}",
                    "status": QUARANTINED,
                    "reason": reason,
                    "location": location,
                    "processed_at": stamp,
                }
            )
            batch.put_item(
                Item={
                    "pk": document_id,
                    "sk": CURRENT,
                    "status": QUARANTINED,
                    "location": location,
                    "updated_at": stamp,
                }
            )

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


def _record(item: dict[str, Any]) -> VersionRecord:
    names = VersionRecord.__dataclass_fields__
    values = {k: v for k, v in item.items() if k in names}
    values["size"] = int(values.get("size", 0))
    values["pii"] = {k: int(v) for k, v in (values.get("pii") or {}).items()}
    return VersionRecord(**values)
