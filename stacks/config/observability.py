"""Production dashboards, alarms and evaluation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stacks.config.base import ConfigModel
from stacks.config.fields import Emails, LogRetentionDays

# A count alarm's ceiling: 10,000 a second (API Gateway's default throttle per account and Region,
# and the most a group's usage plan may allow) for the whole 5 minutes. A threshold above what can
# happen never fires, so the alarm would be silently useless.
MAX_PER_5_MINUTES = 3_000_000
_COUNT_RULE = (
    "At most 3,000,000, 10,000 a second (API Gateway's default throttle per account and Region, and the most "
    "usage_plan.rate_limit allows) for all 5 minutes: a higher threshold never fires."
)


class ObservabilityConfig(ConfigModel):
    """Dashboards, alarms and evaluation for the production tier."""

    alarm_emails: Emails = Field(default=(), description="Who the GenAI alarms e-mail.")
    tool_accuracy_floor: float = Field(
        default=0.8,
        ge=0,
        le=1,
        description="Tool-call accuracy (selection and arguments) below this fails make eval and make test, and "
        "raises each agent's live alarm.",
    )
    evaluation_sampling_percentage: float = Field(
        default=10,
        ge=0.01,
        le=100,
        description="Share of agent sessions AgentCore's online evaluation scores with its built-in tool "
        "evaluators (percent).",
    )
    error_rate_percent: float = Field(
        default=5,
        gt=0,
        lt=100,
        description="Alarm when more than this share of a stage's work fails in 5 minutes (per stage: retrieval, "
        "generation, guardrail, tool, usage, ingestion). Less than 100: no share of the work is more than all of it, "
        "so a threshold of 100 never fires.",
    )
    p99_latency_ms: int = Field(
        default=20_000,
        ge=100,
        lt=900_000,
        description="Alarm when a stage's p99 latency stays above this for 15 minutes (per stage). Less than "
        "900,000: every stage runs in a Lambda function, which runs 900 seconds at most, so no latency is above it.",
    )
    guardrail_interventions_per_5_minutes: int = Field(
        default=50,
        ge=1,
        le=MAX_PER_5_MINUTES,
        description="Alarm when the guardrail intervenes this often in 5 minutes (inputs and outputs alarm "
        f"separately). {_COUNT_RULE}",
    )
    quota_refusals_per_5_minutes: int = Field(
        default=100,
        ge=1,
        le=MAX_PER_5_MINUTES,
        description="Alarm when a group is refused for its output quotas this often in 5 minutes (per group). "
        f"{_COUNT_RULE}",
    )
    tool_refusals_per_5_minutes: int = Field(
        default=20,
        ge=1,
        le=MAX_PER_5_MINUTES,
        description="Alarm when the tools gateway refuses this many tool calls in 5 minutes (a tool not the "
        "caller's group's, or a malformed call: an agent misconfigured, or steered by a prompt injection). At most "
        "3,000,000 (10,000 a second for all 5 minutes), the ceiling of the gateway's own counts.",
    )
    invocation_log_days: LogRetentionDays = Field(
        default=30,
        description="Days Bedrock model invocation logs (prompts and answers) are kept in the tier's KMS-encrypted "
        "log group, when this tier sets the logging up (account_settings.model_invocation_logging).",
    )
    capture_content: Literal["off", "internal"] = Field(
        default="off",
        description="Message text in an agent's spans. off: no agent captures any (tool names, definitions and "
        "arguments only, which the tool evaluators read); internal: an agent that serves internal groups only "
        "also captures the messages its model is sent: its callers' text as the gateway's input guardrail passed "
        "it, and the tool results fed back to the model, which no guardrail has seen. An agent serving a customer "
        "group never captures message text.",
    )
    trace_indexing_percentage: float = Field(
        default=1,
        ge=0,
        le=100,
        description="Share of spans X-Ray indexes as trace summaries, when this tier turns Transaction Search on "
        "(account_settings.transaction_search).",
    )
