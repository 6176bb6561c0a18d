"""Connectors that bring records from upstream systems into the ingestion pipeline."""

from __future__ import annotations

from pydantic import Field, model_validator

from shared.landing import REALTIME_PREFIX
from shared.tools import DEFAULT_MAX_RESPONSE_BYTES
from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import (
    Classification,
    FieldPath,
    HttpsUrl,
    KebabName,
    MetadataValue,
    QueryParameter,
    Schedule,
    SecretName,
    UrlPath,
)

# A pull run's time (the function's timeout) unless functions.connector_pull.timeout_seconds says otherwise.
PULL_RUN_SECONDS = 300


class PushConnectorConfig(ConfigModel):
    """Upstream systems that push JSON records to the ingestion API (POST /v1/records/{source}, IAM-signed)."""

    sources: dict[KebabName, Classification] = Field(
        default_factory=dict,
        description="Source that may push -> the classification (a name from ingestion.classifications) its "
        "records get.",
    )
    max_records: int = Field(default=100, ge=1, le=500, description="Records one request may carry.")


class PullConnectorConfig(ConfigModel):
    """A REST source polled on a schedule, authenticated like the legacy APIs, read from where it left off."""

    base_url: HttpsUrl = Field(description="Where the source's endpoints are.")
    token_path: UrlPath = Field(
        default="/oauth/token", description="The source's OAuth token endpoint (client credentials), under base_url."
    )
    secret_name: SecretName = Field(
        description='Secrets Manager secret with {"client_id", "client_secret"} for the token endpoint; the '
        "tier reads it, it does not create it."
    )
    records_path: UrlPath = Field(description="The records endpoint: GET, paged with ?cursor=.")
    schedule: Schedule = Field(default="rate(15 minutes)", description="When the source is polled.")
    classification: Classification = Field(
        default="internal",
        description="The classification (a name from ingestion.classifications) the source's records get.",
    )
    owner: MetadataValue = Field(description="Who owns the records: kept in their metadata.")
    id_field: FieldPath = Field(default="id", description="Where each record keeps its id.")
    title_field: FieldPath = Field(default="title", description="Where each record keeps its title.")
    body_field: FieldPath = Field(default="body", description="Where each record keeps its text.")
    updated_field: FieldPath = Field(
        default="updatedAt", description="Where each record keeps the time of its last change."
    )
    items_field: FieldPath = Field(default="items", description="Where the response keeps its list of records.")
    next_cursor_field: FieldPath = Field(
        default="next_cursor", description="Where the response keeps the cursor of the next page (absent on the last)."
    )
    since_param: QueryParameter = Field(
        default="updated_since",
        description="The query parameter that asks for records changed since the newest change already read.",
    )
    timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=60,
        description="Seconds one exchange with the source may take. A call is at most (max_attempts + 2) "
        "exchanges (each attempt and two token fetches) and the backoffs between them, which must be at most "
        "half a pull run "
        "(functions.connector_pull.timeout_seconds, 300 by default): a run stops for time between pages, keeping "
        "that much back.",
    )
    max_attempts: int = Field(default=3, ge=1, le=5, description="Attempts per call (retries with backoff).")
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=131_072,
        le=33_554_432,
        description="The largest page the function reads from the source (bytes): a larger one is refused as it "
        "streams, never held in memory, and fails the run with the watermark kept. A page is parsed whole, in up to 40 "
        "times its size: synth refuses a cap whose page would not fit functions.connector_pull.memory_mb beside "
        "the function's own 128 MB.",
    )


class ConnectorsConfig(ConfigModel):
    """Push and pull connectors: upstream records land in the pipeline's landing bucket as documents."""

    push: PushConnectorConfig = Field(default=PushConnectorConfig(), description="Sources that push records.")
    pull: dict[KebabName, PullConnectorConfig] = Field(
        default_factory=dict,
        description="Sources polled for changed records, by name (not a push source's: records of both would "
        "land at realtime/<name>/).",
    )

    @model_validator(mode="after")
    def _one_connector_per_source(self) -> ConnectorsConfig:
        """A source's records land at realtime/<source>/<id>.md: a push source and a pull source of
        one name would overwrite each other's records (and their classifications)."""
        for name in self.pull:
            if name in self.push.sources:
                raise KeyedError(
                    ("pull", name),
                    f"also a push source (production.connectors.push.sources.{name}): both would land records "
                    f"at {REALTIME_PREFIX}{name}/, each replacing the other's",
                    allowed="a name the push connector does not use",
                )
        return self
