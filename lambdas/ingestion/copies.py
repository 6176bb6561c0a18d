"""Server-side copies of any size. S3's CopyObject takes a source of at most 5 GiB; a larger one
(an upload refused as too large, or a flagged object, quarantined as it is) is copied in parts by
boto3's managed copy (UploadPartCopy, 10 parts at a time). s3transfer carries the source's content
type, user metadata and the other headers CopyObject's ``MetadataDirective=COPY`` keeps over to the
parts' upload; object tags are not copied (CopyObject copies them). The copy must finish within
the function's timeout: a copy cut short leaves parts, which the quarantine bucket's lifecycle rule
aborts after a day, and the message or event is retried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

COPY_OBJECT_LIMIT = 5 * 1024**3  # bytes: S3's limit on a CopyObject source
PART_BYTES = 512 * 1024**2  # 10,000 parts of this reach S3's largest object (5 TiB)


def in_parts(limit: int = COPY_OBJECT_LIMIT) -> TransferConfig:
    """The managed copy's settings: parts only above ``limit``, each of PART_BYTES (boto3 makes them
    larger for an object that would need more than 10,000). Imported here: s3transfer is for
    this rare path only, not every cold start."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=limit, multipart_chunksize=PART_BYTES)
