"""The production document pipeline: landing bucket -> EventBridge -> SQS -> processor -> curated or quarantine."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ingestion.contract import document_budget_seconds
from ingestion.documents import READ_GRACE_SECONDS, DocumentFormat
from ingestion.pii import SUPPORTED_LANGUAGES
from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import Classification, Emails, IdentifierName

LAMBDA_MAX_TIMEOUT_SECONDS = 900
# Comprehend DetectPiiEntities' languages; anything else goes by ingestion.unsupported_language.
PII_LANGUAGES = SUPPORTED_LANGUAGES  # what the pipeline scans for PII (lambdas/ingestion/pii.py)


class CustomIdentifier(ConfigModel):
    """A pattern for personal or sensitive data the managed detectors do not know."""

    regex: str = Field(
        min_length=1,
        max_length=512,
        description="A regular expression for the data: the pipeline masks its matches, and Macie reports them "
        "(a custom data identifier).",
    )
    keywords: tuple[Annotated[str, Field(min_length=3, max_length=90)], ...] = Field(
        default=(),
        max_length=50,
        description="Macie counts a match only near one of these words (within 50 characters; at most 50 words, "
        "each 3 to 90 characters); empty: anywhere.",
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return regex


class ClassificationPolicy(ConfigModel):
    """What happens to a document of this classification that carries personal data."""

    on_pii: Literal["mask", "quarantine"] = Field(
        default="mask",
        description="mask: personal data is replaced by its type ([EMAIL]) and the document curated; quarantine: "
        "the document goes to the quarantine bucket with the reason.",
    )


class IngestionConfig(ConfigModel):
    """The document pipeline: landing bucket -> EventBridge -> SQS -> processor -> curated or quarantine."""

    max_document_bytes: int = Field(
        default=5_000_000, ge=1_000, le=50_000_000, description="Larger documents are quarantined with the reason."
    )
    formats: tuple[DocumentFormat, ...] = Field(
        default=("txt", "md", "csv", "json", "html", "pdf", "docx", "xlsx", "pptx"),
        min_length=1,
        description="Document formats (by file extension) the pipeline takes; others are quarantined with the reason. "
        "PDF and Office files (DOCX; XLSX, each row a line of tab-separated cells; PPTX, each slide's paragraphs, "
        "then its speaker notes) are read within max_pages, max_extracted_chars, read_seconds and "
        "max_expanded_bytes, PDFs within max_page_bytes too; a PDF without a text layer is quarantined as "
        "needs_ocr, unless ocr is textract.",
    )
    max_pages: int = Field(
        default=500,
        ge=1,
        le=10_000,
        description="A PDF with more pages, an XLSX with more sheets or a PPTX with more slides is quarantined "
        "with the reason.",
    )
    max_extracted_chars: int = Field(
        default=5_000_000,
        ge=1_000,
        le=50_000_000,
        description="A PDF or Office file whose text runs past this many characters is quarantined (reading stops "
        "there); so is a document of any format whose text's UTF-8 runs past this many bytes (each 100 KB is one "
        "personal-data scan call: the default is 50, what the processor's time per document is sized for).",
    )
    read_seconds: int = Field(
        default=20,
        ge=1,
        le=300,
        description="Time budget for reading one PDF's or Office file's text; a slower one is quarantined (its "
        "reader, a child process, is stopped 5 s past it at most). Keep it well under processor_timeout_seconds.",
    )
    max_expanded_bytes: int = Field(
        default=100_000_000,
        ge=1_000_000,
        le=1_000_000_000,
        description="What a PDF's compressed streams or an Office file's zip parts may expand to; past it the "
        "document is refused as a decompression bomb, not expanded.",
    )
    max_page_bytes: int = Field(
        default=2_000_000,
        ge=10_000,
        le=50_000_000,
        description="One PDF page's content as the reader parses it (its content streams, and each form every time "
        "the page draws it); past it the document is quarantined as page_too_large before the page is parsed "
        "(parsing takes about 1-1.5 s a MB).",
    )
    max_compression_ratio: int = Field(
        default=200,
        ge=10,
        le=10_000,
        description="An Office file's part over 1 MB expanded that is compressed more than this many times is "
        "refused as a decompression bomb (checked from the zip directory before reading).",
    )
    ocr: Literal["off", "textract"] = Field(
        default="off",
        description="A PDF without a text layer: off, quarantined as needs_ocr; textract, read by an asynchronous "
        "Amazon Textract text detection (an SNS topic and queue bring the result back to the processor), then "
        "curated or quarantined like any document, within max_pages, max_extracted_chars and read_seconds.",
    )
    default_classification: Classification = Field(
        default="internal",
        description='The classification of an object whose S3 user metadata names none ("classification"); '
        "classifications must have a policy for it.",
    )
    classifications: dict[Classification, ClassificationPolicy] = Field(
        min_length=1,
        description="Every document classification there is, with what happens to such a document that carries "
        "personal data. Groups' data_classifications and connectors name these.",
    )
    pii_min_score: float = Field(
        default=0.8, ge=0, le=1, description="Personal data Comprehend reports below this confidence is ignored."
    )
    unsupported_language: Literal["quarantine", "custom_only"] = Field(
        default="quarantine",
        description="A document in a language Comprehend's PII detection does not support (it has "
        f"{', '.join(PII_LANGUAGES)}): quarantine it, or mask only what the custom identifiers find.",
    )
    custom_identifiers: dict[IdentifierName, CustomIdentifier] = Field(
        default_factory=dict,
        description="Patterns for sensitive data the managed detectors do not know, by name: masked by the "
        "pipeline, and each a Macie custom data identifier.",
    )
    batch_size: int = Field(default=10, ge=1, le=10, description="Queue messages the processor takes per invocation.")
    max_receive_count: int = Field(
        default=3, ge=1, le=10, description="Attempts at a document before its message goes to the dead-letter queue."
    )
    processor_timeout_seconds: int = Field(
        default=120,
        ge=10,
        le=LAMBDA_MAX_TIMEOUT_SECONDS,
        description="The processor function's timeout; the queue hides a message for six times it while it is "
        "worked on.",
    )
    bulk_sync_minutes: int = Field(
        default=15,
        ge=5,
        le=1440,
        description="Minutes between Knowledge Base ingestion jobs over the curated prefix: a curated document is "
        "searchable at most this late.",
    )
    dlq_age_alarm_minutes: int = Field(
        default=60,
        ge=1,
        le=20160,
        description="Alarm when a message has waited this long in the dead-letter queue (another alarm fires on "
        "any message there).",
    )
    alarm_emails: Emails = Field(default=(), description="Who the pipeline's alarms e-mail.")

    @field_validator("classifications")
    @classmethod
    def _has_default(
        cls, policies: dict[str, ClassificationPolicy], info: ValidationInfo
    ) -> dict[str, ClassificationPolicy]:
        default = info.data.get("default_classification")
        if default is not None and default not in policies:
            raise KeyedError((), f"no policy for the default classification {default}", allowed="a policy for it")
        return policies

    @model_validator(mode="after")
    def _read_fits_a_documents_budget(self) -> IngestionConfig:
        """The processor takes a document only with its budget left of the invocation (a quarter
        of processor_timeout_seconds): a read that may take longer (the reading child is stopped
        READ_GRACE_SECONDS past read_seconds) would outlive the invocation, timing out its batch
        with no reason recorded, again on every retry."""
        budget = document_budget_seconds(self.processor_timeout_seconds)
        most = budget - READ_GRACE_SECONDS
        if self.read_seconds > most:
            timeout = self.processor_timeout_seconds
            longer = [
                t
                for t in range(timeout, LAMBDA_MAX_TIMEOUT_SECONDS + 1)
                if document_budget_seconds(t) - READ_GRACE_SECONDS >= self.read_seconds
            ]
            ways = [f"at most {most} with processor_timeout_seconds {timeout}"] if most >= 1 else []
            ways += [f"processor_timeout_seconds of at least {longer[0]}"] if longer else []
            if not ways:
                most = document_budget_seconds(LAMBDA_MAX_TIMEOUT_SECONDS) - READ_GRACE_SECONDS
                ways = [f"at most {most} with processor_timeout_seconds {LAMBDA_MAX_TIMEOUT_SECONDS}"]
            raise KeyedError(
                ("read_seconds",),
                f"{self.read_seconds} s and the reader's {READ_GRACE_SECONDS} s of grace do not fit in the {budget} s "
                f"each document is given of processor_timeout_seconds ({timeout})",
                allowed=", or ".join(ways),
            )
        return self
