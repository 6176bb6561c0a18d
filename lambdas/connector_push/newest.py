"""A pushed change landed only over an older one.

claim_change (shared.connector_state) orders the changes of a record id, but the claim and the
landing are two writes: a request that claimed an older change and was slow to land it would
write its text over a newer change another request claimed and landed in between, and the
pipeline ingests the last write. So a dated change's write is conditional (S3's If-None-Match and
If-Match), on the key holding nothing or still holding the object read, whose change is no later.

Here, not in shared.connector_state: the pull connector imports that, and needs no read of the
landing bucket (one run at a time per source, and a pull source's keys are its own).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from botocore.exceptions import ClientError

from shared.aws_errors import failure_code
from shared.landing import Document, land

# The S3 user metadata of a change land_newest landed: its time, in UTC as claim_change stores it.
CHANGED_METADATA = "changed"
# Writes of one document at most: each lost one means another request wrote the key meanwhile.
LAND_ATTEMPTS = 5
# A conditional PutObject another write of the key came before: 412 (an object where none was
# expected, or another than the one read), 409 (a conditional write at the same time), 404 (IfMatch
# on an object gone since it was read: the pipeline empties each key it ingested).
_LOST = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409", "NoSuchKey", "404"})
# HeadObject of a key that holds nothing: 404, or 403 without s3:ListBucket on the bucket (which the
# push function has not: it would list every upload's key). Taken as nothing there: the next write
# is If-None-Match, which S3 refuses if there is something after all.
_NOTHING = frozenset({"404", "NoSuchKey", "403", "AccessDenied"})


class LandingContendedError(RuntimeError):
    """The key changed under every one of land_newest's writes (or HeadObject is denied): the
    request fails, and its caller sends it again."""


def land_newest(s3: Any, doc: Document, bucket: str, changed: dt.datetime) -> str | None:
    """Land ``doc``, the change of its record at ``changed`` (UTC), unless its key holds a later
    change: the version id it landed as, or None. A write another came before reads the key again
    and gives way to a later change there. (Only a newer change claimed, landed and ingested, the
    pipeline emptying its key, all between this one's claim and its write, would be written over.)"""
    dated = replace(doc, metadata={**doc.metadata, CHANGED_METADATA: changed.isoformat()})
    condition = {"IfNoneMatch": "*"}  # the pipeline empties each key it ingested: usually none is there
    for _ in range(LAND_ATTEMPTS):
        try:
            return land(s3, dated, bucket, **condition)
        except ClientError as error:
            if failure_code(error) not in _LOST:
                raise
        held = _held(s3, bucket, doc.key)
        if held is None:
            condition = {"IfNoneMatch": "*"}
            continue
        etag, theirs = held
        if theirs is not None and theirs > changed:
            return None
        condition = {"IfMatch": etag}
    raise LandingContendedError(f"{doc.key} changed under each of {LAND_ATTEMPTS} writes (or cannot be read)")


def _held(s3: Any, bucket: str, key: str) -> tuple[str, dt.datetime | None] | None:
    """The ETag of the object ``key`` holds and the change it says it is (None: it does not say, as
    a record landed without updated_at), or None when the key holds nothing."""
    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if failure_code(error) in _NOTHING:
            return None
        raise
    said = {name.lower(): value for name, value in head.get("Metadata", {}).items()}.get(CHANGED_METADATA)
    return str(head["ETag"]), _moment(said)


def _moment(text: str | None) -> dt.datetime | None:
    """A change time as land_newest writes it; None for anything else (nothing orders it)."""
    try:
        moment = dt.datetime.fromisoformat(text or "")
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
