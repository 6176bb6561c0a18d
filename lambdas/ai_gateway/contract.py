"""The AI gateway's contract with its stack (stacks/production/gateway.py) and its dashboards.

The function's settings (one environment variable per field, shared.contract), and the names
others address it by: the metrics and dimensions the observability stack charts and alarms on,
the authorizer context keys it reads, the headers it honours. (The stages it reports and the
agent-turn log message are shared by several functions: shared.observability.)

Imports only the standard library, pydantic and shared.contract: the CDK app imports it too.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Final, Literal, Self

from pydantic import Field, model_validator

from shared.bodies import MAX_MESSAGES as MAX_MESSAGES  # each route's bound, and the agent's
from shared.contract import FunctionSettings
from shared.runtime_config import ConfigLocation, RuntimeDocument

# The gateway's functions' service name (POWERTOOLS_SERVICE_NAME: their package's), which alone
# dimensions the metrics an alarm reads across groups.
SERVICE: Final = "ai_gateway"
# Converse's stop reasons for an answer cut at its token limit (OpenAI's finish_reason "length"):
# such an answer is delivered as the model gave it, even empty or blank.
LENGTH_STOP_REASONS: Final = frozenset({"max_tokens", "model_context_window_exceeded"})
# Seconds the function keeps back from its remaining time for the output guardrail and the
# ledger: generation (a model's fallbacks, an agent's turn) must end this long before its timeout.
GENERATION_MARGIN_SECONDS: Final = 5
# A streamed piece's output check may end this long after the generation's deadline (a piece read
# just before it is still checked and sent); the rest of the margin is the error event's and the
# ledger's.
STREAM_GUARD_GRACE_SECONDS: Final = 2
# The longest an agent turn may take with API Gateway's default integration timeout (29 s).
DEFAULT_AGENT_TIMEOUT_SECONDS: Final = 29 - GENERATION_MARGIN_SECONDS
# The runtime endpoint the gateway invokes an agent on (the one AgentCore makes with each runtime):
# the agents stack grants InvokeAgentRuntime on it.
AGENT_ENDPOINT: Final = "DEFAULT"


class Settings(FunctionSettings):
    """The gateway function's environment."""

    ledger_table: str = Field(min_length=1)
    guardrail_id: str = Field(min_length=1)
    guardrail_version: str = Field(min_length=1)
    policy: ConfigLocation  # the GatewayPolicy document in AppConfig (stacks/production/policy.py)
    policy_max_age_seconds: int = Field(default=60, ge=1)  # how stale the policy may be
    max_message_chars: int = Field(default=20_000, ge=1)
    generation_timeout_seconds: int = Field(default=20, ge=1)  # one model attempt
    agentcore_endpoint: str | None = None  # None: the region's public AgentCore endpoint
    # The longest an agent turn may take: the function's timeout less GENERATION_MARGIN_SECONDS.
    # It is the AgentCore client's read timeout, the backstop behind the deadline the agent is
    # given (botocore has no per-call timeout: ai_gateway.agents).
    agent_timeout_seconds: int = Field(default=DEFAULT_AGENT_TIMEOUT_SECONDS, ge=1)
    # The agents' AgentCore Memory, which the gateway writes guarded turns to (None: no memory).
    agent_memory_id: str | None = None
    # The KMS HMAC key of the passages the gateway gives agents for the tools gateway (shared.passage;
    # None: none is given, and agents get no tools).
    passage_key_id: str | None = None
    # The sessions' guarded transcripts (ai_gateway.transcript; None: every turn checks all its text).
    transcript_table: str | None = None
    transcript_ttl_seconds: int = Field(default=86_400, ge=60)  # a session's transcript after its last turn


Period = Literal["DAY", "MONTH"]


class GroupModels(RuntimeDocument):
    allowed: tuple[str, ...] = Field(min_length=1)
    default: str = Field(min_length=1)
    fallbacks: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _default_is_allowed(self) -> Self:
        if self.default not in self.allowed or not set(self.fallbacks) <= set(self.allowed):
            raise ValueError("default and fallbacks must be allowed models")
        return self


class Quota(RuntimeDocument):
    limit: int = Field(ge=0)  # 0: none
    period: Period


class GroupPolicy(RuntimeDocument):
    kind: str = Field(min_length=1)
    tier: str = Field(min_length=1)
    models: GroupModels
    quotas: dict[str, Quota]


class OutputPolicy(RuntimeDocument):
    unit_price_usd: float = Field(ge=0)
    units: int = Field(ge=1)
    max_tokens: int = Field(ge=1)
    instructions: str
    agent: str | None = None  # the agent that produces this output type; None: a model directly


def prompt_digest(text: str) -> str:
    """How the policy holds a golden case's prompt (SHA-256 of its UTF-8, hex)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class GatewayPolicy(RuntimeDocument):
    """Groups, their models and quotas, and the output types' prices: what the gateway enforces.

    Generated from the validated config (stacks/production/policy.py) into AppConfig, read by the
    function through shared.runtime_config (cached, parsed once per version)."""

    groups: dict[str, GroupPolicy]
    outputs: dict[str, OutputPolicy]
    agents: dict[str, str] = Field(default_factory=dict)  # agent name -> its AgentCore runtime's ARN
    # Golden case id -> prompt_digest of its prompt: an internal caller's X-Evaluation-Case names a
    # case only with that prompt, so a turn's tool arguments are logged only for a golden prompt's.
    evaluation_prompts: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _quotas_name_outputs(self) -> Self:
        unknown = sorted({o for g in self.groups.values() for o in g.quotas} - set(self.outputs))
        if unknown:
            raise ValueError(f"quotas name output types the policy does not price: {', '.join(unknown)}")
        return self


class Metric(StrEnum):
    """The gateway's metrics (EMF, in the tier's namespace)."""

    REQUESTS = "Requests"
    UPSTREAM_ERRORS = "UpstreamErrors"
    QUOTA_REFUSALS_BY_GROUP = "QuotaRefusalsByGroup"  # by Group alone
    LEDGER_LATENCY = "LedgerLatency"
    METERING_ERRORS = "MeteringErrors"  # by service alone: deliveries the ledger did not record
    GUARDRAIL_INPUT_LATENCY = "GuardrailInputLatency"
    GUARDRAIL_OUTPUT_LATENCY = "GuardrailOutputLatency"
    GUARDRAIL_INPUT_INTERVENTIONS = "GuardrailInputInterventions"
    GUARDRAIL_OUTPUT_INTERVENTIONS = "GuardrailOutputInterventions"
    GUARDRAIL_INTERVENTIONS = "GuardrailInterventions"  # by Source alone
    GUARDRAIL_INPUT_CHARACTERS = "GuardrailInputCharacters"  # sent to the input guardrail (what it bills)
    TRANSCRIPT_ERRORS = "TranscriptErrors"  # a session's transcript not read or not written: failed
    TRANSCRIPTS_SKIPPED = "TranscriptsSkipped"  # not written: too large, or a concurrent turn wrote first
    GENERATION_LATENCY = "GenerationLatency"
    MODEL_FALLBACKS = "ModelFallbacks"
    AGENT_ITERATIONS = "AgentIterations"
    AGENT_TOOL_CALLS = "AgentToolCalls"
    AGENT_TOOL_ERRORS = "AgentToolErrors"
    OUTPUTS = "Outputs"
    UNITS = "Units"
    INPUT_TOKENS = "InputTokens"
    OUTPUT_TOKENS = "OutputTokens"
    MODEL_INPUT_TOKENS = "ModelInputTokens"  # by Model alone
    MODEL_OUTPUT_TOKENS = "ModelOutputTokens"  # by Model alone
    ESTIMATED_COST_USD = "EstimatedCostUsd"  # by Model alone


class Dimension(StrEnum):
    # Group and OutputType (with Powertools' service) dimension the request's own metrics.
    GROUP = "Group"
    OUTPUT_TYPE = "OutputType"
    MODEL = "Model"
    SOURCE = "Source"  # the guardrail's: INPUT or OUTPUT


# ApplyGuardrail's sources, and the values of the Source dimension.
INPUT: Final = "INPUT"
OUTPUT: Final = "OUTPUT"

# Headers: the client's and the gateway's answer's (AgentCore Runtime's session header is shared.headers').
IDEMPOTENCY_KEY_HEADER: Final = "Idempotency-Key"
# The OpenAI-compatible route's extensions as headers, for clients that cannot send extra body fields.
SESSION_ID_HEADER: Final = "X-Session-Id"
OUTPUT_TYPE_HEADER: Final = "X-Output-Type"
EVALUATION_CASE_HEADER: Final = "X-Evaluation-Case"
AUTHORIZATION_HEADER: Final = "Authorization"
CORRELATION_ID_HEADER: Final = "X-Correlation-Id"
RETRY_AFTER_HEADER: Final = "Retry-After"
# "false" on an answer a retry cannot change (a duplicate request, a quota that resets later than
# QUOTA_RETRY_SECONDS, a rejection): the openai SDKs then do not retry it.
SHOULD_RETRY_HEADER: Final = "x-should-retry"
# The longest Retry-After the openai SDKs wait for (they retry sooner on their own when it is
# longer): a quota that resets later is answered as final.
QUOTA_RETRY_SECONDS: Final = 60
# The streaming function runs ai_gateway.stream_runtime, which Lambda starts through this wrapper
# script of the package (the asset is unpacked at /var/task) instead of its own runtime loop.
EXEC_WRAPPER: Final = "AWS_LAMBDA_EXEC_WRAPPER"
STREAM_BOOTSTRAP: Final = "/var/task/ai_gateway/stream_bootstrap"
# A streamed completion's quota after its admission (its body has no room for it before the end).
QUOTA_REMAINING_HEADER: Final = "X-Quota-Remaining"
QUOTA_RESETS_HEADER: Final = "X-Quota-Resets-At"
