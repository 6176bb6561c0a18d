"""Connectors that bring records from upstream systems into the ingestion pipeline."""

from __future__ import annotations

import json

from pydantic import Field, model_validator

from shared.landing import REALTIME_PREFIX
from shared.tools import DEFAULT_MAX_RESPONSE_BYTES
from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import (
    Classification,
    FieldPath,
    HttpsUrl,
    IamRole,
    KebabName,
    MetadataValue,
    QueryParameter,
    Schedule,
    SecretName,
    UrlPath,
)

# The characters of a REST API's resource policy (API Gateway's quota, which AWS can raise).
PUSH_POLICY_MAX_CHARS = 8192

# A pull run's time (the function's timeout) unless functions.connector_pull.timeout_seconds says otherwise.
PULL_RUN_SECONDS = 300


class PushConnectorConfig(ConfigModel):
    """Upstream systems that push JSON records to the ingestion API (POST /v1/records/{source}, IAM-signed)."""

    sources: dict[KebabName, Classification] = Field(
        default_factory=dict,
        description="Source that may push -> the classification (a name from ingestion.classifications) its "
        "records get.",
    )
    callers: dict[KebabName, list[IamRole]] = Field(
        default_factory=dict,
        description="Source -> the IAM roles that may push its records (a role name of the tier's account or a "
        "role ARN of any account). Every source names at least one: the API's resource policy lets each "
        "source's path be called by its roles only, so no system pushes into another's source.",
    )
    max_records: int = Field(default=100, ge=1, le=500, description="Records one request may carry.")

    @model_validator(mode="after")
    def _every_source_has_its_callers(self) -> PushConnectorConfig:
        """A source's classification is chosen by its path: a system that could call every path
        could push confidential text as another source's public records, or replace that
        source's documents. So each source's path is its own callers'."""
        for source in self.callers:
            if source not in self.sources:
                raise KeyedError(
                    ("callers", source),
                    "callers of a source that is not a push source",
                    allowed=", ".join(sorted(self.sources)) or "no source (connectors.push.sources is empty)",
                )
        for source in self.sources:
            if not self.callers.get(source):
                raise KeyedError(
                    ("callers", source),
                    "a push source needs the roles that may push its records (none given)",
                    allowed="1 or more IAM role names or ARNs",
                )
        chars = push_policy_chars(self.callers)
        if chars > PUSH_POLICY_MAX_CHARS:
            raise KeyedError(
                ("callers",),
                f"the push API's resource policy would take about {chars} characters; API Gateway stores "
                f"{PUSH_POLICY_MAX_CHARS} (a quota AWS can raise)",
                allowed="fewer sources or callers, or shorter role names",
            )
        return self


def push_caller_arn(role: str, *, partition: str = "aws", account: str = "123456789012") -> str:
    """The role's ARN as aws:PrincipalArn holds it: as given, or a name in the tier's account."""
    return role if role.startswith("arn:") else f"arn:{partition}:iam::{account}:role/{role}"


def push_policy_chars(callers: dict[str, list[str]]) -> int:
    """An upper bound of the push API's resource policy as API Gateway stores it: an allow and a
    deny per source, each naming its path and every caller's ARN (a role name at its longest
    partition's, aws-iso-b's)."""
    statements = [
        {
            "Effect": "Allow" if allow else "Deny",
            "Principal": {"AWS": "*"},
            "Action": "execute-api:Invoke",
            "Resource": f"arn:aws-iso-b:execute-api:us-isob-east-1:123456789012:abcdefghij/*/POST/v1/records/{source}",
            "Condition": {
                "ArnEquals" if allow else "ArnNotEquals": {
                    "aws:PrincipalArn": [push_caller_arn(role, partition="aws-iso-b") for role in roles]
                }
            },
        }
        for source, roles in callers.items()
        for allow in (True, False)
    ]
    return len(json.dumps({"Version": "2012-10-17", "Statement": statements}))


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
        "streams, never held in memory, and fails the run with the watermark kept. A page is parsed whole, in up to 56 "
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
