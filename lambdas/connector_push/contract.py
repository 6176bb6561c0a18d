"""The push connector's contract: the sources it accepts and where their records land."""

from __future__ import annotations

from typing import Final

from shared.contract import FunctionSettings

# A request refused (4xx), whatever the reason: the metric the function counts it in.
PUSHES_REFUSED: Final = "PushesRefused"


class Settings(FunctionSettings):
    landing_bucket: str
    push_sources: dict[str, str]  # source -> the classification its records get
    registry_table: str  # the change of each record id landed last (shared.connector_state.claim_change)
    max_records: int = 100  # per request
    # The pipeline's limit on a document (ingestion.max_document_bytes): a record whose document
    # is larger is refused here rather than accepted and quarantined later (None: not checked).
    max_document_bytes: int | None = None
