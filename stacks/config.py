"""The deployment's configuration: one frozen, validated model, read once from CDK context.

The whole model lives under the context key ``blueprint`` in ``cdk.json``. Any field can be
overridden on the command line with a dotted key, for example::

    cdk synth -c blueprint.sandbox.kendra.enabled=false
    cdk synth -c blueprint.sandbox.budget.alert_emails='["me@example.com"]'

Override values are parsed as JSON when they are valid JSON, otherwise taken as strings.
A bad value raises ``ConfigError`` whose lines each name the key, the value and what is allowed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

CONTEXT_KEY = "blueprint"
TIER_CONTEXT_KEY = "tier"


class ConfigError(ValueError):
    """Configuration that cannot be deployed; each line names one bad key."""


class KeyedError(ValueError):
    """A cross-field check that names the key below the validated field that is wrong."""

    def __init__(self, path: tuple[str, ...], reason: str, *, allowed: str) -> None:
        super().__init__(f"{reason}; allowed: {allowed}")
        self.path = path
        self.reason = reason
        self.allowed = allowed


class Tier(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


# CloudWatch Logs accepts only these retention periods (days).
LogRetentionDays = Literal[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
]  # fmt: skip

# Embedding models a Knowledge Base can use, with the vector sizes each one produces.
EMBEDDING_MODEL_DIMENSIONS: Mapping[str, tuple[int, ...]] = {
    "amazon.titan-embed-text-v2:0": (256, 512, 1024),
    "amazon.titan-embed-text-v1": (1536,),
    "cohere.embed-english-v3": (1024,),
    "cohere.embed-multilingual-v3": (1024,),
}

# A Bedrock foundation-model id ("amazon.nova-lite-v1:0") or a cross-region inference profile id
# ("us.amazon.nova-lite-v1:0", "global.anthropic...").
MODEL_ID_PATTERN = r"^((us|eu|apac|us-gov|global)\.)?[a-z0-9-]+\.[a-zA-Z0-9.:_-]+$"
ModelId = Annotated[str, Field(pattern=MODEL_ID_PATTERN)]

AccountId = Annotated[str, Field(pattern=r"^\d{12}$")]
Region = Annotated[str, Field(pattern=r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")]
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]


class _Model(BaseModel):
    # Numbers become strings where a string is expected: `-c blueprint.sandbox.account=123456789012`
    # arrives as JSON and parses to an int.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, coerce_numbers_to_str=True)


class FixedSizeChunking(_Model):
    strategy: Literal["FIXED_SIZE"]
    max_tokens: int = Field(default=300, ge=20, le=8192)
    overlap_percentage: int = Field(default=20, ge=1, le=99)


class HierarchicalChunking(_Model):
    strategy: Literal["HIERARCHICAL"]
    parent_max_tokens: int = Field(default=1500, ge=1, le=8192)
    child_max_tokens: int = Field(default=300, ge=1, le=8192)
    overlap_tokens: int = Field(default=60, ge=1)

    @field_validator("child_max_tokens")
    @classmethod
    def _child_fits_parent(cls, child: int, info: ValidationInfo) -> int:
        parent = info.data.get("parent_max_tokens")
        if parent is not None and child >= parent:
            raise ValueError(f"must be smaller than parent_max_tokens ({parent})")
        return child


class SemanticChunking(_Model):
    strategy: Literal["SEMANTIC"]
    max_tokens: int = Field(default=300, ge=20, le=8192)
    buffer_size: int = Field(default=0, ge=0, le=1)
    breakpoint_percentile_threshold: int = Field(default=95, ge=50, le=99)


class NoChunking(_Model):
    strategy: Literal["NONE"]


Chunking = Annotated[
    FixedSizeChunking | HierarchicalChunking | SemanticChunking | NoChunking,
    Field(discriminator="strategy"),
]


class KnowledgeBaseConfig(_Model):
    embedding_model_id: str = "amazon.titan-embed-text-v2:0"
    embedding_dimensions: int = 1024
    chunking: Chunking = FixedSizeChunking(strategy="FIXED_SIZE")
    # Only objects under this prefix are indexed (by the KB and by Kendra).
    documents_prefix: str = Field(default="documents/", pattern=r"^([A-Za-z0-9!_.*'()-]+/)+$")

    @field_validator("embedding_model_id")
    @classmethod
    def _known_embedding_model(cls, model_id: str) -> str:
        if model_id not in EMBEDDING_MODEL_DIMENSIONS:
            raise ValueError(f"allowed values are {', '.join(EMBEDDING_MODEL_DIMENSIONS)}")
        return model_id

    @field_validator("embedding_dimensions")
    @classmethod
    def _dimensions_match_model(cls, dimensions: int, info: ValidationInfo) -> int:
        model_id = info.data.get("embedding_model_id")
        allowed = EMBEDDING_MODEL_DIMENSIONS.get(model_id or "", ())
        if allowed and dimensions not in allowed:
            sizes = ", ".join(map(str, allowed))
            raise ValueError(f"{model_id} produces vectors of {sizes} dimensions only")
        return dimensions


class KendraConfig(_Model):
    # Kendra bills by the hour from the moment the index exists, so it can be switched off.
    enabled: bool = True
    edition: Literal["DEVELOPER_EDITION", "ENTERPRISE_EDITION"] = "DEVELOPER_EDITION"
    sync_schedule: str = Field(default="cron(0 3 * * ? *)", pattern=r"^cron\(\S+( \S+){5}\)$")


class BudgetConfig(_Model):
    monthly_limit_usd: float = Field(gt=0)
    alert_threshold_percent: int = Field(default=80, ge=1, le=100)
    alert_emails: tuple[Email, ...] = Field(min_length=1)
    # Count only resources tagged with this tier (needs the `tier` cost-allocation tag activated
    # in Billing); off, the budget covers the whole account.
    scope_to_tier_tag: bool = False


class QueryConfig(_Model):
    generation_model_id: ModelId = "amazon.nova-lite-v1:0"
    # RetrieveAndGenerate takes at most 1,000 characters (Kendra reads only the first 30 words).
    max_question_chars: int = Field(default=1000, ge=1, le=1000)
    max_passages: int = Field(default=5, ge=1, le=20)
    max_answer_tokens: int = Field(default=800, ge=1, le=8192)
    memory_mb: int = Field(default=512, ge=128, le=10240)
    timeout_seconds: int = Field(default=60, ge=3, le=900)
    # Caps the function's concurrency (and so its spend); the account must have at least this
    # many plus 100 unreserved executions. None leaves it uncapped.
    reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)


class _TierConfig(_Model):
    # None leaves the stack environment-agnostic: the account comes from the deploying credentials.
    account: AccountId | None = None
    region: Region = "us-east-1"
    log_retention_days: LogRetentionDays = 30


class SandboxConfig(_TierConfig):
    log_retention_days: LogRetentionDays = 14
    expires_on: dt.date
    budget: BudgetConfig
    knowledge_base: KnowledgeBaseConfig = KnowledgeBaseConfig()
    kendra: KendraConfig = KendraConfig()
    query: QueryConfig = QueryConfig()


class IdentityConfig(_Model):
    mfa: Literal["OFF", "OPTIONAL", "REQUIRED"] = "REQUIRED"
    # Cognito threat protection ("advanced security"): audit or enforced needs the Plus plan.
    threat_protection: Literal["off", "audit", "enforced"] = "enforced"
    password_min_length: int = Field(default=14, ge=8, le=99)
    # Hours an access token lives; refresh tokens last 30 days.
    access_token_hours: int = Field(default=1, ge=1, le=24)


class UsagePlanConfig(_Model):
    """API Gateway's coarse, best-effort limits for a group (the ledger is exact)."""

    rate_limit: float = Field(gt=0, le=10000)  # requests per second, steady state
    burst_limit: int = Field(ge=1, le=5000)
    quota_limit: int = Field(ge=1)  # requests per quota_period
    quota_period: Literal["DAY", "WEEK", "MONTH"] = "DAY"


class OutputQuota(_Model):
    limit: int = Field(ge=0)  # units of this output type per period, enforced exactly
    period: Literal["DAY", "MONTH"] = "MONTH"


class GroupModels(_Model):
    allowed: tuple[ModelId, ...] = Field(min_length=1)
    default: ModelId
    # Tried in order when the model in use throttles or fails with a 5xx.
    fallbacks: tuple[ModelId, ...] = ()

    @field_validator("default")
    @classmethod
    def _default_allowed(cls, default: str, info: ValidationInfo) -> str:
        allowed = info.data.get("allowed", ())
        if allowed and default not in allowed:
            raise ValueError(f"must be one of the allowed models: {', '.join(allowed)}")
        return default

    @field_validator("fallbacks")
    @classmethod
    def _fallbacks_allowed(cls, fallbacks: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        allowed = info.data.get("allowed", ())
        outside = [model for model in fallbacks if model not in allowed]
        if allowed and outside:
            raise ValueError(f"{', '.join(outside)} not among the allowed models: {', '.join(allowed)}")
        return fallbacks


class GroupConfig(_Model):
    """A Cognito group: who its members are to the gateway, and what they may spend."""

    kind: Literal["internal", "customer"]
    tier: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    # A user in several groups acts as the one with the lowest precedence (Cognito's own rule).
    precedence: int = Field(ge=0, le=1000)
    usage_plan: UsagePlanConfig
    models: GroupModels
    # Output types this group may produce, each with its exact quota; others are refused (403).
    output_quotas: dict[str, OutputQuota] = Field(min_length=1)
    # MCP tools this group's agents may list and call (names from tools); nothing else.
    tools: tuple[str, ...] = ()
    # Tool calls a group's members may make per minute through the tools gateway, together.
    tool_requests_per_minute: int = Field(default=120, ge=1, le=1_000_000)
    # Document classifications this group may retrieve; knowledge_search always filters on them.
    data_classifications: tuple[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")], ...] = ("public",)


class OutputTypeConfig(_Model):
    """An output-priced workload: what one output costs and how it is produced."""

    unit_price_usd: float = Field(ge=0)
    units: int = Field(default=1, ge=1)  # units one delivered output consumes
    max_tokens: int = Field(default=1000, ge=1, le=8192)
    instructions: str = Field(min_length=1, max_length=4000)  # the system prompt


AgentName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
MemoryStrategyName = Literal["semantic", "summary", "user_preference"]


class AgentMemoryConfig(_Model):
    """AgentCore Memory shared by the agents, namespaced per group and user."""

    # Days short-term events (the turns of a session) are kept: AgentCore allows 7 to 365.
    event_expiry_days: int = Field(default=30, ge=7, le=365)
    # Long-term strategies that extract records from the events (none: short-term only).
    strategies: tuple[MemoryStrategyName, ...] = ("semantic", "user_preference")
    # Earlier turns of the session recalled when a caller sends only the newest turn.
    history_turns: int = Field(default=10, ge=0, le=50)
    # Long-term records recalled per turn, by relevance to the newest turn.
    recall_records: int = Field(default=5, ge=0, le=20)

    @field_validator("strategies")
    @classmethod
    def _unique(cls, strategies: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(strategies)) != len(strategies):
            raise ValueError("each strategy at most once")
        return strategies


class AgentConfig(_Model):
    """An agent on AgentCore Runtime: what it is for and which gateway routes it serves."""

    description: str = Field(min_length=1, max_length=1200)
    system_prompt: str = Field(min_length=1, max_length=4000)
    # Output types (routes: "chat" is POST /v1/chat) this agent produces; others go to a model.
    output_types: tuple[str, ...] = Field(min_length=1)
    max_iterations: int = Field(default=6, ge=1, le=20)  # model calls per turn
    turn_seconds: int = Field(default=120, ge=10, le=840)  # a turn's time budget
    # A session's microVM ends after this many idle minutes (AgentCore: 1 to 480).
    idle_session_minutes: int = Field(default=15, ge=1, le=480)


PiiAction = Literal["BLOCK", "ANONYMIZE"]
# Bedrock Guardrails' PII entity types (GuardrailPiiEntityType).
PII_ENTITY_TYPES = frozenset(
    (
        "ADDRESS",
        "AGE",
        "AWS_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "CA_HEALTH_NUMBER",
        "CA_SOCIAL_INSURANCE_NUMBER",
        "CREDIT_DEBIT_CARD_CVV",
        "CREDIT_DEBIT_CARD_EXPIRY",
        "CREDIT_DEBIT_CARD_NUMBER",
        "DRIVER_ID",
        "EMAIL",
        "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        "IP_ADDRESS",
        "LICENSE_PLATE",
        "MAC_ADDRESS",
        "NAME",
        "PASSWORD",
        "PHONE",
        "PIN",
        "SWIFT_CODE",
        "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
        "UK_NATIONAL_INSURANCE_NUMBER",
        "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
        "URL",
        "USERNAME",
        "US_BANK_ACCOUNT_NUMBER",
        "US_BANK_ROUTING_NUMBER",
        "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
        "US_PASSPORT_NUMBER",
        "US_SOCIAL_SECURITY_NUMBER",
        "VEHICLE_IDENTIFICATION_NUMBER",
    )
)
FilterStrength = Literal["NONE", "LOW", "MEDIUM", "HIGH"]


class DeniedTopic(_Model):
    name: str = Field(pattern=r"^[0-9a-zA-Z_ !?.-]{1,100}$")
    definition: str = Field(min_length=1, max_length=200)
    examples: tuple[str, ...] = Field(default=(), max_length=5)


class GuardrailConfig(_Model):
    """The Bedrock Guardrail applied to every gateway input and output."""

    pii_entities: dict[str, PiiAction] = Field(default_factory=dict)
    content_filters: dict[Literal["SEXUAL", "VIOLENCE", "HATE", "INSULTS", "MISCONDUCT"], FilterStrength] = Field(
        default_factory=dict
    )
    prompt_attack_strength: FilterStrength = "HIGH"
    denied_topics: tuple[DeniedTopic, ...] = ()
    # Contextual grounding thresholds (0 to 0.99); applied to outputs generated from a source.
    grounding_threshold: float | None = Field(default=None, ge=0, le=0.99)
    relevance_threshold: float | None = Field(default=None, ge=0, le=0.99)
    blocked_input_message: str = Field(default="This request can't be processed.", max_length=500)
    blocked_output_message: str = Field(default="The answer was withheld by policy.", max_length=500)

    @field_validator("pii_entities")
    @classmethod
    def _known_pii_types(cls, entities: dict[str, str]) -> dict[str, str]:
        for name in entities:
            if name not in PII_ENTITY_TYPES:
                raise KeyedError((name,), "unknown PII entity type", allowed=", ".join(sorted(PII_ENTITY_TYPES)))
        return entities


class ApiConfig(_Model):
    # WAF blocks an IP address that sends more than this many requests in 5 minutes.
    waf_rate_limit_per_5_minutes: int = Field(default=2000, ge=10, le=2_000_000_000)
    max_message_chars: int = Field(default=20000, ge=1, le=200000)
    # Minimum TLS for callers: TLS 1.2+ (legacy policy), or TLS 1.3 only (enhanced policy, which
    # also sets the endpoint access mode to STRICT).
    tls_policy: Literal["TLS_1_2", "SecurityPolicy_TLS13_1_3_2025_09"] = "TLS_1_2"
    # How long API Gateway waits for the gateway function (its timeout too). Above 29 seconds an
    # account needs a Service Quotas increase of "Maximum integration timeout in milliseconds".
    integration_timeout_seconds: int = Field(default=29, ge=10, le=900)


ToolName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,47}$")]
FieldPath = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?)*$")]


class LegacyApiConfig(_Model):
    """A legacy REST API served to agents as MCP tools (lambdas/legacy_tools)."""

    base_url: str = Field(pattern=r"^https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/-]*)?$")
    token_path: str = Field(default="/oauth/token", pattern=r"^/[A-Za-z0-9._~/-]*$")
    # Secrets Manager secret with {"client_id", "client_secret"} for the API's token endpoint.
    secret_name: str = Field(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")
    timeout_seconds: float = Field(default=5, gt=0, le=25)
    max_attempts: int = Field(default=3, ge=1, le=5)
    top_k: int = Field(default=10, ge=1, le=100)  # records per page
    byte_budget: int = Field(default=4000, ge=512, le=100_000)  # the most an answer may weigh
    # tool -> declared output field -> path in the upstream record; the tool's schema lists them.
    tools: dict[ToolName, dict[str, FieldPath]] = Field(min_length=1)

    @field_validator("tools")
    @classmethod
    def _implemented(cls, tools: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name in tools:
            if name not in LEGACY_TOOLS:
                raise KeyedError((name,), "no adapter implements this tool", allowed=", ".join(LEGACY_TOOLS))
        return tools


VectorStore = Literal["s3_vectors", "opensearch_serverless"]
DocumentFormat = Literal["txt", "md", "csv", "json", "html"]
Classification = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")]
# Comprehend DetectPiiEntities' languages; anything else goes by ingestion.unsupported_language.
PII_LANGUAGES = ("en", "es")


class CustomIdentifier(_Model):
    """A pattern for personal or sensitive data the managed detectors do not know."""

    regex: str = Field(min_length=1, max_length=512)
    # Macie counts a match only near one of these words (within 50 characters); empty: anywhere.
    keywords: tuple[Annotated[str, Field(min_length=3, max_length=90)], ...] = ()

    @field_validator("regex")
    @classmethod
    def _compiles(cls, regex: str) -> str:
        try:
            re.compile(regex)
        except re.error as error:
            raise ValueError(f"not a regular expression: {error}") from None
        return regex


class ClassificationPolicy(_Model):
    """What happens to a document of this classification that carries personal data."""

    on_pii: Literal["mask", "quarantine"] = "mask"


class IngestionConfig(_Model):
    """The document pipeline: landing bucket -> EventBridge -> SQS -> processor -> curated or quarantine."""

    max_document_bytes: int = Field(default=5_000_000, ge=1_000, le=50_000_000)
    formats: tuple[DocumentFormat, ...] = Field(default=("txt", "md", "csv", "json", "html"), min_length=1)
    # Used when an object names no classification (S3 user metadata "classification").
    default_classification: Classification = "internal"
    classifications: dict[Classification, ClassificationPolicy] = Field(min_length=1)
    # Comprehend types reported below this confidence are not treated as PII.
    pii_min_score: float = Field(default=0.8, ge=0, le=1)
    # A document in a language DetectPiiEntities does not support: quarantine it, or mask only
    # what the custom identifiers find.
    unsupported_language: Literal["quarantine", "custom_only"] = "quarantine"
    custom_identifiers: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], CustomIdentifier] = Field(
        default_factory=dict
    )
    batch_size: int = Field(default=10, ge=1, le=10)
    max_receive_count: int = Field(default=3, ge=1, le=10)  # attempts before the DLQ
    processor_timeout_seconds: int = Field(default=120, ge=10, le=900)
    bulk_sync_minutes: int = Field(default=15, ge=5, le=1440)  # a KB ingestion job at most this late
    dlq_age_alarm_minutes: int = Field(default=60, ge=1, le=20160)
    alarm_emails: tuple[Email, ...] = ()

    @field_validator("classifications")
    @classmethod
    def _has_default(
        cls, policies: dict[str, ClassificationPolicy], info: ValidationInfo
    ) -> dict[str, ClassificationPolicy]:
        default = info.data.get("default_classification")
        if default is not None and default not in policies:
            raise KeyedError((), f"no policy for the default classification {default}", allowed="a policy for it")
        return policies


class PushConnectorConfig(_Model):
    """Upstream systems that push JSON records to the ingestion API (POST /v1/records/{source})."""

    sources: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")], Classification] = Field(
        default_factory=dict
    )  # source -> the classification its records get
    max_records: int = Field(default=100, ge=1, le=500)  # per request


class PullConnectorConfig(_Model):
    """A REST source polled on a schedule, authenticated like the legacy APIs."""

    base_url: str = Field(pattern=r"^https://[A-Za-z0-9.-]+(:\d+)?(/[A-Za-z0-9._~/-]*)?$")
    token_path: str = Field(default="/oauth/token", pattern=r"^/[A-Za-z0-9._~/-]*$")
    secret_name: str = Field(pattern=r"^[A-Za-z0-9/_+=.@-]{1,512}$")
    records_path: str = Field(pattern=r"^/[A-Za-z0-9._~/-]*$")  # GET, paged with ?cursor=
    schedule: str = Field(
        default="rate(15 minutes)", pattern=r"^(rate\(\d+ (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$"
    )
    classification: Classification = "internal"
    owner: str = Field(min_length=1, max_length=128)
    # Where each record keeps its id, title, body and last change (paths like the legacy field maps).
    id_field: FieldPath = "id"
    title_field: FieldPath = "title"
    body_field: FieldPath = "body"
    updated_field: FieldPath = "updatedAt"
    # The response: the list of records, and the cursor of the next page (absent on the last).
    items_field: FieldPath = "items"
    next_cursor_field: FieldPath = "next_cursor"
    since_param: str = Field(default="updated_since", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    timeout_seconds: float = Field(default=10, gt=0, le=60)
    max_attempts: int = Field(default=3, ge=1, le=5)


class ConnectorsConfig(_Model):
    push: PushConnectorConfig = PushConnectorConfig()
    pull: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")], PullConnectorConfig] = Field(
        default_factory=dict
    )


MacieSeverity = Literal["Low", "Medium", "High"]


class MacieConfig(_Model):
    """Sensitive-data discovery over the pipeline's buckets (needs account_settings.macie on)."""

    # Custom data identifiers: ingestion.custom_identifiers, shared with the pipeline's scan.
    allow_list_regex: str | None = Field(default=None, min_length=1, max_length=512)
    schedule: Literal["DAILY", "WEEKLY", "MONTHLY"] = "DAILY"
    sampling_percentage: int = Field(default=100, ge=1, le=100)
    # Findings at or above this severity quarantine their object.
    min_severity: MacieSeverity = "Medium"
    notify_emails: tuple[Email, ...] = ()


class ObservabilityConfig(_Model):
    """Dashboards, alarms and evaluation for the production tier."""

    alarm_emails: tuple[Email, ...] = ()
    # Tool-call accuracy (selection and arguments) below this fails `make test` and alarms live.
    tool_accuracy_floor: float = Field(default=0.8, ge=0, le=1)
    # Share of agent sessions AgentCore's online evaluation scores (built-in tool evaluators).
    evaluation_sampling_percentage: float = Field(default=10, ge=0.01, le=100)
    error_rate_percent: float = Field(default=5, gt=0, le=100)  # per stage, over 5 minutes
    p99_latency_ms: int = Field(default=20_000, ge=100, le=900_000)  # per stage
    guardrail_interventions_per_5_minutes: int = Field(default=50, ge=1)
    quota_refusals_per_5_minutes: int = Field(default=100, ge=1)
    # Days Bedrock model invocation logs (prompts and answers) are kept in the tier's KMS-encrypted
    # log group, when this tier sets the logging up (account_settings.model_invocation_logging).
    invocation_log_days: LogRetentionDays = 30
    # Share of spans X-Ray indexes as trace summaries, when this tier turns Transaction Search on.
    trace_indexing_percentage: float = Field(default=1, ge=0, le=100)


# How the tier treats a setting there is one of per account and region (docs/deploy.md):
# - manage: a CloudFormation resource of the foundation stack (creating it fails if it is on; kept on delete);
# - adopt:  turn it on if it is off, leave it as it is if it is on, never switch it off (stack deletion included);
# - off:    leave the account alone and do without the feature.
AccountSettingMode = Literal["manage", "adopt", "off"]


class AccountSettingsConfig(_Model):
    """One-per-account settings the production tier relies on (docs/deploy.md says which stack holds each)."""

    # X-Ray Transaction Search (spans into CloudWatch Logs): agent spans, online evaluation.
    transaction_search: AccountSettingMode = "adopt"
    # Bedrock model invocation logging to the tier's encrypted log group.
    model_invocation_logging: AccountSettingMode = "adopt"
    # The Macie session: sensitive-data discovery over the pipeline's buckets (off: no Macie at all).
    macie: AccountSettingMode = "adopt"
    # API Gateway's CloudWatch role: the APIs' execution logs (off: no execution logs).
    api_gateway_logging: AccountSettingMode = "adopt"


# Seconds of the gateway function's time kept back from generation (an agent turn or a model
# call) for the output guardrail, the ledger and the answer (lambdas/ai_gateway/handler.py).
GATEWAY_MARGIN_SECONDS = 5

# Tools lambdas/legacy_tools/adapters.py implements (TOOLS there).
LEGACY_TOOLS = ("find_orders", "get_customer")


class ProductionConfig(_TierConfig):
    log_retention_days: LogRetentionDays = 365
    identity: IdentityConfig = IdentityConfig()
    api: ApiConfig = ApiConfig()
    guardrail: GuardrailConfig = GuardrailConfig()
    # Declared before groups so that the groups' validator can see them.
    output_types: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], OutputTypeConfig] = Field(min_length=1)
    # The production Knowledge Base (S3 Vectors) over the curated bucket's prefix.
    knowledge_base: KnowledgeBaseConfig = KnowledgeBaseConfig(documents_prefix="curated/")
    # Gateway targets wrapping legacy APIs, by target name (e.g. "orders").
    legacy_apis: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{0,31}$")], LegacyApiConfig] = Field(
        default_factory=dict
    )
    groups: dict[Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")], GroupConfig] = Field(min_length=1)
    # Calls per minute each tool takes from everyone together (protects the systems behind it);
    # tools not named get the default.
    tool_requests_per_minute: dict[ToolName, Annotated[int, Field(ge=1, le=1_000_000)]] = Field(default_factory=dict)
    default_tool_requests_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    # Agents on AgentCore Runtime, by name; the gateway routes their output types to them.
    agents: dict[AgentName, AgentConfig] = Field(default_factory=dict)
    agent_memory: AgentMemoryConfig = AgentMemoryConfig()
    # Where the production KB keeps its vectors: S3 Vectors, or OpenSearch Serverless for
    # larger corpora and lower query latency (an always-on collection, billed by the hour).
    vector_store: VectorStore = "s3_vectors"
    ingestion: IngestionConfig
    connectors: ConnectorsConfig = ConnectorsConfig()
    macie: MacieConfig = MacieConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    account_settings: AccountSettingsConfig = AccountSettingsConfig()

    @field_validator("connectors")
    @classmethod
    def _connectors_use_known_classifications(
        cls, connectors: ConnectorsConfig, info: ValidationInfo
    ) -> ConnectorsConfig:
        ingestion = info.data.get("ingestion")
        if ingestion is None:
            return connectors
        known = ", ".join(ingestion.classifications)
        for source, classification in connectors.push.sources.items():
            if classification not in ingestion.classifications:
                raise KeyedError(("push", "sources", source), f"unknown classification {classification}", allowed=known)
        for name, pull in connectors.pull.items():
            if pull.classification not in ingestion.classifications:
                raise KeyedError(
                    ("pull", name, "classification"), f"unknown classification {pull.classification}", allowed=known
                )
        return connectors

    @field_validator("tool_requests_per_minute")
    @classmethod
    def _rated_tools_exist(cls, rates: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        apis = info.data.get("legacy_apis")
        known = set(all_tools(apis)) if apis is not None else set(rates)
        for tool in rates:
            if tool not in known:
                raise KeyedError((tool,), "unknown tool", allowed=", ".join(sorted(known)))
        return rates

    @field_validator("groups")
    @classmethod
    def _groups_quote_known_outputs(
        cls, groups: dict[str, GroupConfig], info: ValidationInfo
    ) -> dict[str, GroupConfig]:
        # A field that failed its own validation is absent here: check only against valid ones.
        known = info.data.get("output_types")
        apis = info.data.get("legacy_apis")
        tools = set(all_tools(apis)) if apis is not None else None
        for name, group in groups.items():
            for output in group.output_quotas:
                if known is not None and output not in known:
                    raise KeyedError((name, "output_quotas", output), "unknown output type", allowed=", ".join(known))
            for index, tool in enumerate(group.tools):
                if tools is not None and tool not in tools:
                    raise KeyedError(
                        (name, "tools", str(index)), f"unknown tool {tool}", allowed=", ".join(sorted(tools))
                    )
        return groups

    def agent_routes(self) -> dict[str, str]:
        """Output type -> the agent that produces it (output types not named go to a model)."""
        return {output: name for name, agent in self.agents.items() for output in agent.output_types}

    @field_validator("agents")
    @classmethod
    def _agents_serve_known_outputs_once(
        cls, agents: dict[str, AgentConfig], info: ValidationInfo
    ) -> dict[str, AgentConfig]:
        known = info.data.get("output_types")
        api = info.data.get("api")
        served: dict[str, str] = {}
        for name, agent in agents.items():
            # The gateway keeps GATEWAY_MARGIN_SECONDS of its own time to guard and meter the answer.
            budget = api.integration_timeout_seconds - GATEWAY_MARGIN_SECONDS if api else agent.turn_seconds
            if agent.turn_seconds > budget:
                raise KeyedError(
                    (name, "turn_seconds"),
                    f"{agent.turn_seconds} s does not fit the gateway's {budget} s for an agent turn",
                    allowed=f"at most {budget} (or raise api.integration_timeout_seconds)",
                )
            for index, output in enumerate(agent.output_types):
                where = (name, "output_types", str(index))
                if known is not None and output not in known:
                    raise KeyedError(where, f"unknown output type {output}", allowed=", ".join(known))
                if output in served:
                    raise KeyedError(
                        where, f"output type {output} is already served by agent {served[output]}", allowed="one agent"
                    )
                served[output] = name
        return agents

    @field_validator("legacy_apis")
    @classmethod
    def _tool_names_are_unique(cls, apis: dict[str, LegacyApiConfig]) -> dict[str, LegacyApiConfig]:
        seen: dict[str, str] = {}
        for target, api in apis.items():
            for tool in api.tools:
                if tool in seen or tool in BUILTIN_TOOLS:
                    owner = seen.get(tool, "the built-in tools")
                    raise KeyedError(
                        (target, "tools", tool), f"tool name already used by {owner}", allowed="unique names"
                    )
                seen[tool] = target
        return apis


# Tools every deployment has, by tool name -> gateway target.
BUILTIN_TOOLS: Mapping[str, str] = {"knowledge_search": "knowledge"}


def all_tools(legacy_apis: Mapping[str, LegacyApiConfig]) -> dict[str, str]:
    """Every tool name -> its gateway target: the built-in ones and each legacy API's."""
    return {**BUILTIN_TOOLS, **{tool: target for target, api in legacy_apis.items() for tool in api.tools}}


class BlueprintConfig(_Model):
    # Names every stack and most resources; short so that derived names stay within AWS limits.
    prefix: str = Field(pattern=r"^[a-z][a-z0-9-]{0,14}[a-z0-9]$")
    tags: dict[str, str] = Field(default_factory=dict)
    sandbox: SandboxConfig
    production: ProductionConfig

    @field_validator("tags")
    @classmethod
    def _tags_are_valid(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            if not re.fullmatch(r"[\w .:/=+@-]{1,128}", key) or key.startswith("aws:"):
                raise ValueError(f"tag key {key!r} is not a valid AWS tag key")
            if not re.fullmatch(r"[\w .:/=+@-]{0,256}", value):
                raise ValueError(f"tag value {value!r} is not a valid AWS tag value")
        return tags


def load_config(context: Mapping[str, Any]) -> BlueprintConfig:
    """Build the validated config from CDK context (``cdk.json`` plus ``-c`` overrides)."""
    base = context.get(CONTEXT_KEY)
    if isinstance(base, str):  # `-c blueprint='{...}'` arrives as a string
        base = _parse_value(base)
    if not isinstance(base, Mapping):
        raise ConfigError(f"{CONTEXT_KEY}: missing or not an object in cdk.json context")
    raw = json.loads(json.dumps(base))  # a private, plain copy to apply overrides to
    prefix = CONTEXT_KEY + "."
    for key in sorted(k for k in context if k.startswith(prefix)):
        _set_path(raw, key[len(prefix) :].split("."), _parse_value(context[key]), key)
    try:
        return BlueprintConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A list that fails on one item also reports its own (emptied) length: keep the item's.
        specific = [e for e in errors if not any(_inside(o["loc"], e["loc"]) for o in errors)]
        raise ConfigError("\n".join(_describe(error) for error in specific)) from None


def selected_tiers(context: Mapping[str, Any]) -> tuple[Tier, ...]:
    """The tiers to synthesize: context ``tier`` is one tier name or ``all`` (the default)."""
    value = str(context.get(TIER_CONTEXT_KEY) or "all")
    if value == "all":
        return tuple(Tier)
    try:
        return (Tier(value),)
    except ValueError:
        allowed = ", ".join(["all", *Tier])
        raise ConfigError(f"{TIER_CONTEXT_KEY} = {value!r}: allowed values are {allowed}") from None


def _parse_value(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _set_path(raw: dict[str, Any], path: list[str], value: Any, key: str) -> None:
    node = raw
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: cannot override inside {part!r}, which is not an object")
        node = child
    node[path[-1]] = value


def _inside(inner: tuple[Any, ...], outer: tuple[Any, ...]) -> bool:
    return len(inner) > len(outer) and inner[: len(outer)] == outer


def _describe(error: Mapping[str, Any]) -> str:
    """One line: dotted key, offending value, and what is allowed."""
    loc = [str(part) for part in error["loc"] if not _is_union_tag(part)]
    key = ".".join([CONTEXT_KEY, *loc])
    if error["type"] == "missing":
        return f"{key}: required but missing"
    message = error["msg"].removeprefix("Value error, ")
    keyed = error.get("ctx", {}).get("error")
    if isinstance(keyed, KeyedError):
        return f"{'.'.join([key, *keyed.path])}: {keyed.reason}; allowed: {keyed.allowed}"
    if error["type"] == "union_tag_invalid":
        ctx = error["ctx"]
        field = ctx["discriminator"].strip("'")
        return f"{key}.{field} = {ctx['tag']!r}: allowed values are {ctx['expected_tags']}"
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(_model_at(error["loc"][:-1]).model_fields)
        return f"{key}: unknown key; allowed keys here are {allowed}"
    return f"{key} = {error['input']!r}: {message}"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel]:
    """The config model class found by following an error location down from the root."""
    models: list[type[BaseModel]] = [BlueprintConfig]
    for part in loc:
        tagged = [m for m in models if part in _union_tags(m)]
        if tagged:
            models = tagged
            continue
        field = models[0].model_fields.get(str(part))
        if field is None:
            break
        models = [t for t in _flatten(field.annotation) if _is_model(t)] or models
    return models[0]


def _union_tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("strategy")
    return get_args(field.annotation) if field else ()


def _flatten(annotation: Any) -> list[Any]:
    args = get_args(annotation)
    return [t for arg in args for t in _flatten(arg)] if args else [annotation]


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _is_union_tag(part: Any) -> bool:
    # Discriminated unions add the tag (e.g. "FIXED_SIZE") to the error location.
    return isinstance(part, str) and part.isupper()
