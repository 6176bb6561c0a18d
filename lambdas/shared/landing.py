"""Upstream records normalized into landing documents (the push and pull connectors share this).

Connector documents land under ``realtime/<source>/`` so the pipeline ingests them into the
Knowledge Base directly; their S3 user metadata carries classification, owner, source and origin.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

REALTIME_PREFIX = "realtime/"


class Record(BaseModel):
    # Built when first validated: the ingestion functions import this module for its prefix only.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]+$")
    title: str = Field(default="", max_length=500)
    body: str = Field(min_length=1, max_length=1_000_000)
    owner: str | None = Field(default=None, min_length=1, max_length=128)
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class Document:
    key: str
    body: bytes
    metadata: dict[str, str]


def document(source: str, record: Record, *, classification: str, owner: str | None = None) -> Document:
    text = f"# {record.title}\n\n{record.body}\n" if record.title else f"{record.body}\n"
    return Document(
        key=f"{REALTIME_PREFIX}{source}/{record.id}.md",
        body=text.encode(),
        metadata={
            "classification": classification,
            "owner": record.owner or owner or source,
            "source": f"{source}:{record.id}",
            "origin": f"connector:{source}",
        },
    )


def land(s3: Any, doc: Document, bucket: str) -> str:
    """Write the document to the landing bucket; its "Object Created" event starts the pipeline."""
    response = s3.put_object(
        Bucket=bucket,
        Key=doc.key,
        Body=doc.body,
        ContentType="text/markdown; charset=utf-8",
        Metadata=doc.metadata,
    )
    return str(response.get("VersionId", ""))
