"""Server-side copies of any size. S3's CopyObject takes a source of at most 5 GiB; a larger one
(an upload refused as too large, quarantined as it is) is copied in parts by boto3's managed copy
(UploadPartCopy), with its content type and user metadata carried over as CopyObject's
``MetadataDirective=COPY`` would."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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


def carried(head: Mapping[str, Any]) -> dict[str, Any]:
    """What a copy in parts must set itself (HeadObject's answer about the source): a multipart
    upload starts with no content type and no user metadata of its source's."""
    extra: dict[str, Any] = {"Metadata": dict(head.get("Metadata") or {})}
    if head.get("ContentType"):
        extra["ContentType"] = head["ContentType"]
    return extra
