"""The ingestion functions' contracts: the processor (lambdas/ingestion/handler.py, with the
pipeline's own settings) and the Macie findings responder (lambdas/ingestion/macie.py), and the
S3 prefixes both sides name."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from shared.contract import FunctionSettings
from shared.landing import REALTIME_PREFIX
from shared.runtime_config import ConfigLocation, RuntimeDocument

# Curated copies of directly ingested items: kept out of the KB's S3 data source (not re-indexed).
DIRECT_PREFIX = "direct/"
# Where the Macie responder copies a flagged object in the quarantine bucket.
MACIE_QUARANTINE_PREFIX = "macie/"
# A record the processor could neither process nor dead-letter (alarmed by the knowledge stack).
LOST_RECORDS_METRIC = "RecordsLost"
# An invocation whose event is no SQS batch (the processor invoked by hand or by a wrong trigger):
# alarmed by the knowledge stack, since SQS never sends one.
REFUSED_EVENTS_METRIC = "EventsRefused"

__all__ = [
    "DIRECT_PREFIX",
    "LOST_RECORDS_METRIC",
    "REALTIME_PREFIX",
    "REFUSED_EVENTS_METRIC",
    "ClassificationReaders",
    "PipelineSettings",
    "ProcessorSettings",
    "ResponderSettings",
    "document_budget_seconds",
]


def document_budget_seconds(timeout_seconds: int) -> int:
    """The processor's time for one document (ProcessorSettings.document_budget_seconds) with its
    timeout: a quarter of it, 5 s at least. It takes no document with less than this left of the
    invocation; the config fits a document's read (read_seconds and the reading child's grace) in it."""
    return max(timeout_seconds // 4, 5)


class PipelineSettings(FunctionSettings):
    """What the pipeline decides with: where documents go and what each classification means."""

    curated_bucket: str
    quarantine_bucket: str
    curated_prefix: str  # the Knowledge Base's S3 data source reads this prefix (bulk documents)
    classification_policies: dict[str, Literal["mask", "quarantine"]]  # what to do when PII is found
    default_classification: str
    max_document_bytes: int
    document_formats: tuple[str, ...]
    unsupported_language: Literal["quarantine", "custom_only"] = "quarantine"
    # Reading PDF and Office files (ingestion.documents.ReadLimits): past any of these, quarantined.
    max_pages: int = 500
    max_extracted_chars: int = 5_000_000
    read_seconds: int = 20
    max_expanded_bytes: int = 100_000_000
    max_page_bytes: int = 2_000_000
    max_compression_ratio: int = 200
    # What the child process that reads a PDF or an Office file may allocate (ReadLimits.max_memory_bytes):
    # the stack gives it half the function's memory, the rest is the function's own.
    read_memory_bytes: int = 512_000_000
    # A PDF without a text layer: quarantined (off), or read by an asynchronous Textract text
    # detection that notifies ocr_topic_arn, published by ocr_role_arn (textract).
    ocr: Literal["off", "textract"] = "off"
    ocr_topic_arn: str = ""
    ocr_role_arn: str = ""


class ClassificationReaders(RuntimeDocument):
    """classification -> the groups that may retrieve it (written into each document's metadata).
    A runtime document (AppConfig, environment "ingestion"): it grows with the groups."""

    # Built when first validated: only the processor reads it, the responder imports this module too.
    model_config = ConfigDict(defer_build=True)

    classification_readers: dict[str, list[str]]


class ProcessorSettings(PipelineSettings):
    """The processor function: the pipeline's settings and the services it reaches."""

    # The only bucket whose events it takes (the queue takes messages from anyone who may send).
    landing_bucket: str
    classification_readers: ConfigLocation  # the ClassificationReaders document
    custom_identifiers: dict[str, str] = Field(default_factory=dict)  # name -> regex
    pii_min_score: float = 0.8
    knowledge_base_id: str
    s3_data_source_id: str
    custom_data_source_id: str
    registry_table: str
    idempotency_table: str
    dlq_url: str
    queue_url: str  # the documents queue: a document deferred on its message's last receive goes back to it
    max_receive_count: int = 3
    # Stop taking documents with less than this left of the invocation (document_budget_seconds()).
    document_budget_seconds: int = 30


class ResponderSettings(FunctionSettings):
    """The Macie findings responder: the buckets it moves flagged objects between, and whom it tells."""

    landing_bucket: str
    curated_bucket: str
    quarantine_bucket: str
    registry_table: str
    knowledge_base_id: str
    s3_data_source_id: str
    custom_data_source_id: str
    findings_topic: str
