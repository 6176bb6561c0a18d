"""Server-side copies of any size. S3's CopyObject takes a source of at most 5 GiB; a larger one
(an upload refused as too large, or a flagged object, quarantined as it is) is copied in parts by
boto3's managed copy (UploadPartCopy, 10 parts at a time). s3transfer carries the source's content
type, user metadata and the other headers CopyObject's ``MetadataDirective=COPY`` keeps over to the
parts' upload; object tags are not copied (CopyObject copies them).

A copy in parts that may outlast the function (``copy_until``) is stopped while time is left:
the parts in flight end, s3transfer aborts the upload (no parts are left behind), and the caller
learns it (CopyTooSlowError) instead of the function timing out with nothing recorded. A copy cut
short anyway (a crash) leaves parts, which the buckets' lifecycle rule aborts after a day.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

COPY_OBJECT_LIMIT = 5 * 1024**3  # bytes: S3's limit on a CopyObject source
# A part copies in seconds, so a copy in parts stops within about one part's time; 10,000 of them
# reach 1.25 TiB (s3transfer makes the parts larger for a larger object, up to S3's 5 TiB).
PART_BYTES = 128 * 1024**2


class CopyTooSlowError(Exception):
    """A copy in parts was stopped for time, its upload aborted (nothing written at the target)."""


def in_parts(limit: int = COPY_OBJECT_LIMIT) -> TransferConfig:
    """The managed copy's settings: parts only above ``limit``, each of PART_BYTES (boto3 makes them
    larger for an object that would need more than 10,000). Imported here: s3transfer is for
    this rare path only, not every cold start."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=limit, multipart_chunksize=PART_BYTES)


def copy_until(
    s3: Any,
    source: Mapping[str, str],
    bucket: str,
    key: str,
    *,
    limit: int,
    seconds_left: Callable[[], float] | None,
) -> str:
    """Copy ``source`` to ``bucket``/``key`` (in parts above ``limit``) while ``seconds_left()`` is
    above zero (None: however long it takes); past it the copy is cancelled, and CopyTooSlowError
    raised once the parts in flight have ended and the upload is aborted (the transfer manager's
    exit waits for both). Returns the copy's version id ("null" in a bucket without versioning):
    the version to delete to undo it."""
    from boto3.s3.transfer import create_transfer_manager
    from s3transfer.subscribers import BaseSubscriber

    done = threading.Event()
    versions: list[str] = []

    class Done(BaseSubscriber):  # type: ignore[misc]  # s3transfer is untyped: Any
        def on_done(self, future: Any, **kwargs: Any) -> None:
            done.set()

    def written(parsed: Mapping[str, Any], **_: Any) -> None:
        # s3transfer answers no version id: S3's answer to the request that made the object has it.
        # CompleteMultipartUpload names its key; CopyObject (an object within one copy's limit) does not.
        if parsed.get("VersionId") and parsed.get("Key", key) == key:
            versions.append(str(parsed["VersionId"]))

    events = ("after-call.s3.CompleteMultipartUpload", "after-call.s3.CopyObject")
    for event in events:
        s3.meta.events.register(event, written)
    try:
        with create_transfer_manager(s3, in_parts(limit)) as manager:
            future = manager.copy(copy_source=dict(source), bucket=bucket, key=key, subscribers=[Done()])
            if not done.wait(None if seconds_left is None else seconds_left()):  # none left: no wait
                future.cancel()
                raise CopyTooSlowError
            future.result()  # the copy's own failure, if it failed
    finally:
        for event in events:
            s3.meta.events.unregister(event, written)
    return versions[-1] if versions else "null"
