"""Upstream records normalized into landing documents (the push and pull connectors share this).

Connector documents land under ``realtime/<source>/`` so the pipeline ingests them into the
Knowledge Base directly; their S3 user metadata carries classification, owner, source and origin.

A record is refused here, before anything lands, when the pipeline or S3 would refuse it later:
S3 user metadata carries printable ASCII only (botocore refuses the rest at the call, after the
batch's earlier records have landed), and the pipeline rejects text that is empty or holds NUL.
A title is made one line instead: its runs of whitespace (tabs, line breaks) become one space.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

REALTIME_PREFIX = "realtime/"
# One S3 user metadata value that reads back as written: printable ASCII, and no space at either
# end (S3 trims it). The pipeline copies the owner verbatim into the Knowledge Base's attributes,
# so an encoded value (RFC 2047, percent escapes) would reach the index encoded.
METADATA_VALUE = re.compile(r"[!-~](?:[ -~]*[!-~])?")
# U+202A-U+202E (embeddings and overrides) and U+2066-U+2069 (isolates).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Tabs, CR, LF, U+2028/9 and every other whitespace (str.split's): pasted titles end in a line break.
WHITESPACE = re.compile(r"\s+")


class Record(BaseModel):
    # Built when first validated: the ingestion functions import this module for its prefix only.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$")
    title: str = Field(default="", max_length=500)
    body: str = Field(min_length=1, max_length=1_000_000)
    owner: str | None = Field(default=None, min_length=1, max_length=128)
    updated_at: dt.datetime | None = None

    @field_validator("title", mode="before")
    @classmethod
    def _one_line(cls, title: Any) -> Any:
        """The title becomes the document's markdown heading: a line break would end the heading
        and put the rest of the title in the document as markdown of its own (another heading). So
        its whitespace runs become one space ("a\\n# b" is the heading "a # b"), before its length
        is checked; a control character that is not whitespace is refused."""
        if not isinstance(title, str):
            return title  # pydantic refuses it as not a string
        title = WHITESPACE.sub(" ", title).strip()
        if any(unicodedata.category(char) == "Cc" for char in title):
            raise ValueError("must be text without control characters")
        # A bidirectional override or isolate would make the title read as other text wherever it
        # is shown (a citation's title): "trojan source" spoofing. Other format characters (the
        # joiners of emoji sequences, a soft hyphen) are text.
        if any(char in BIDI_CONTROLS for char in title):
            raise ValueError("must be text without bidirectional override or isolate characters")
        return title

    @field_validator("body")
    @classmethod
    def _readable(cls, body: str) -> str:
        """What the pipeline would reject as not text or empty is refused at the door instead."""
        if "\x00" in body:
            raise ValueError("must not contain NUL characters")
        if not body.strip():
            raise ValueError("must contain text, not only whitespace")
        return body

    @field_validator("owner")
    @classmethod
    def _metadata_value(cls, owner: str | None) -> str | None:
        """The owner lands as S3 user metadata, which carries printable ASCII only."""
        if owner is not None and not METADATA_VALUE.fullmatch(owner):
            raise ValueError("must be printable ASCII without spaces at either end (S3 user metadata carries no more)")
        return owner


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


def land(s3: Any, doc: Document, bucket: str, **condition: str) -> str:
    """Write the document to the landing bucket; its "Object Created" event starts the pipeline.
    ``condition`` is PutObject's IfMatch or IfNoneMatch (connector_push.newest)."""
    response = s3.put_object(
        Bucket=bucket,
        Key=doc.key,
        Body=doc.body,
        ContentType="text/markdown; charset=utf-8",
        Metadata=doc.metadata,
        **condition,
    )
    return str(response.get("VersionId", ""))
