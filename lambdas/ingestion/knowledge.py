"""Putting curated documents into the Knowledge Base and taking them out again.

Real-time items go in at once through direct ingestion on the custom data source, with their
metadata inline. Bulk documents are written under the S3 data source's prefix with a
``.metadata.json`` sidecar and picked up by the next ingestion job (the stack schedules one).
Removal is immediate for both: DeleteKnowledgeBaseDocuments on the right data source.

Both calls answer 200 with a status per document, and a document the Knowledge Base refused is
only in that status (INGEST_REFUSED, DELETE_REFUSED): it raises IndexRefusedError, so the version
fails (SQS retries its message; its last attempt records it dead-lettered with the status) and is
never recorded curated, or taken out, while the index says otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Attributes = Mapping[str, str | list[str]]

# IngestKnowledgeBaseDocuments takes inline text of at most this many characters
# (TextContentDoc.data); counted as UTF-16 code units, the stricter reading.
MAX_INLINE_CHARS = 5_242_880


# Per-document statuses that mean the index did not take the change (bedrock-agent's DocumentStatus).
# An ingest that is STARTING, PENDING or IN_PROGRESS is under way (asynchronous); a delete that is
# DELETING or DELETE_IN_PROGRESS likewise, and NOT_FOUND means the document is not there to delete.
# A delete IGNORED is taken as refused: a document left in the index must not be recorded gone.
INGEST_REFUSED = frozenset({"FAILED", "IGNORED", "METADATA_UPDATE_FAILED", "NOT_FOUND"})
DELETE_REFUSED = frozenset({"FAILED", "IGNORED"})


class IndexRefusedError(Exception):
    """The Knowledge Base answered, and refused a document. The message is the pipeline's own words
    (the call, the data source, the status): AWS's statusReason is left out, as an AWS error's
    message is, since it can quote the request (the document's text or its metadata)."""


def inline_chars(text: str) -> int:
    """The text's length as the inline limit counts it: a character past U+FFFF counts twice."""
    return len(text.encode("utf-16-le", errors="surrogatepass")) // 2


@dataclass(frozen=True)
class KnowledgeBase:
    client: Any  # bedrock-agent
    knowledge_base_id: str
    s3_data_source_id: str
    custom_data_source_id: str

    def ingest_text(self, document_id: str, text: str, attributes: Attributes) -> None:
        response = self.client.ingest_knowledge_base_documents(
            knowledgeBaseId=self.knowledge_base_id,
            dataSourceId=self.custom_data_source_id,
            documents=[
                {
                    "content": {
                        "dataSourceType": "CUSTOM",
                        "custom": {
                            "customDocumentIdentifier": {"id": document_id},
                            "sourceType": "IN_LINE",
                            "inlineContent": {"type": "TEXT", "textContent": {"data": text}},
                        },
                    },
                    "metadata": {"type": "IN_LINE_ATTRIBUTE", "inlineAttributes": inline_attributes(attributes)},
                }
            ],
        )
        _check(response, INGEST_REFUSED, "ingest into the custom data source")

    def remove(self, *, document_id: str | None = None, uri: str | None = None) -> None:
        """Take a document out: a direct one by its id, a bulk one by its curated S3 URI."""
        if document_id is not None:
            response = self.client.delete_knowledge_base_documents(
                knowledgeBaseId=self.knowledge_base_id,
                dataSourceId=self.custom_data_source_id,
                documentIdentifiers=[{"dataSourceType": "CUSTOM", "custom": {"id": document_id}}],
            )
            _check(response, DELETE_REFUSED, "delete from the custom data source")
        if uri is not None:
            response = self.client.delete_knowledge_base_documents(
                knowledgeBaseId=self.knowledge_base_id,
                dataSourceId=self.s3_data_source_id,
                documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": uri}}],
            )
            _check(response, DELETE_REFUSED, "delete from the S3 data source")


def _check(response: Any, refused: frozenset[str], call: str) -> None:
    """IndexRefusedError when a document's status in ``response`` is one of ``refused``. Each call
    names one document, so every detail is its own (whatever identifier it echoes)."""
    details = response.get("documentDetails") if isinstance(response, Mapping) else None
    for detail in details if isinstance(details, list) else ():
        status = detail.get("status") if isinstance(detail, Mapping) else None
        if status in refused:
            raise IndexRefusedError(f"the Knowledge Base refused the document: {call} answered {status}")


def inline_attributes(attributes: Attributes) -> list[dict[str, Any]]:
    return [
        {"key": key, "value": {"type": "STRING_LIST", "stringListValue": list(value)}}
        if isinstance(value, list)
        else {"key": key, "value": {"type": "STRING", "stringValue": value}}
        for key, value in attributes.items()
    ]


def sidecar(attributes: Attributes) -> dict[str, Any]:
    """The ``<document>.metadata.json`` a Knowledge Base S3 data source reads."""
    return {"metadataAttributes": dict(attributes)}
