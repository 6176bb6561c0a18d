"""Putting curated documents into the Knowledge Base and taking them out again.

Real-time items go in at once through direct ingestion on the custom data source, with their
metadata inline. Bulk documents are written under the S3 data source's prefix with a
``.metadata.json`` sidecar and picked up by the next ingestion job (the stack schedules one).
Removal is immediate for both: DeleteKnowledgeBaseDocuments on the right data source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Attributes = Mapping[str, str | list[str]]

# IngestKnowledgeBaseDocuments takes inline text of at most this many characters
# (TextContentDoc.data); counted as UTF-16 code units, the stricter reading.
MAX_INLINE_CHARS = 5_242_880


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
        self.client.ingest_knowledge_base_documents(
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

    def remove(self, *, document_id: str | None = None, uri: str | None = None) -> None:
        """Take a document out: a direct one by its id, a bulk one by its curated S3 URI."""
        if document_id is not None:
            self.client.delete_knowledge_base_documents(
                knowledgeBaseId=self.knowledge_base_id,
                dataSourceId=self.custom_data_source_id,
                documentIdentifiers=[{"dataSourceType": "CUSTOM", "custom": {"id": document_id}}],
            )
        if uri is not None:
            self.client.delete_knowledge_base_documents(
                knowledgeBaseId=self.knowledge_base_id,
                dataSourceId=self.s3_data_source_id,
                documentIdentifiers=[{"dataSourceType": "S3", "s3": {"uri": uri}}],
            )


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
