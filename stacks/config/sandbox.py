"""The sandbox tier: a Knowledge Base and Kendra over a documents bucket, a query function, a budget."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from stacks.config.base import ConfigModel, KeyedError, TierConfig
from stacks.config.fields import CronSchedule, Emails, LogRetentionDays, ModelId
from stacks.config.knowledge_base import KnowledgeBaseConfig

# AWS Budgets takes a limit matching ([0-9]*\.)?[0-9]+ (Spend.Amount): no exponent. The template
# renders a number from 1e21 up, or below 1e-6, in exponent notation (1e+21), so the bounds keep
# far from both, at cents and at a billion dollars a month, a spend no sandbox reaches.
MAX_MONTHLY_BUDGET_USD = 1_000_000_000


def _at_least_a_cent(amount: float) -> float:
    if amount < 0.01:
        raise KeyedError((), f"{amount} is less than a cent", allowed=f"0.01 to {MAX_MONTHLY_BUDGET_USD} (USD)")
    return amount


BudgetAmount = Annotated[float, Field(gt=0, le=MAX_MONTHLY_BUDGET_USD), AfterValidator(_at_least_a_cent)]
BUDGET_AMOUNT_RULE = (
    "at least 0.01 and at most 1,000,000,000: AWS Budgets takes a plain decimal amount, and a budget no sandbox "
    "can reach never alerts"
)


class KendraConfig(ConfigModel):
    """An Amazon Kendra index over the documents prefix, beside the Knowledge Base."""

    enabled: bool = Field(
        default=False,
        description="Whether the tier's sandboxes may have a Kendra index (each workload asks for one with its "
        "sandbox.kendra): Kendra bills by the hour from the moment the index exists, so false switches it off for "
        'every workload (the query function then refuses "source": "kendra"). Off by default: Amazon Kendra takes '
        "no new customers since 2026-07-30, so an account that never used it cannot create an index and the "
        "sandbox's first deploy would fail; an account that already uses Kendra may switch it on.",
    )
    edition: Literal["DEVELOPER_EDITION", "ENTERPRISE_EDITION"] = Field(
        default="DEVELOPER_EDITION", description="The Kendra index edition."
    )
    sync_schedule: CronSchedule = Field(
        default="cron(0 3 * * ? *)",
        description="When the Kendra data source crawls the documents prefix again (a full crawl).",
    )


BudgetScope = Literal["account", "tier", "workload"]


class BudgetConfig(ConfigModel):
    """A monthly AWS Budgets cost budget that e-mails when the sandbox spends too much."""

    monthly_limit_usd: BudgetAmount = Field(
        description=f"The budget per calendar month (USD) of a workload's sandbox that sets no budget of its own; "
        f"{BUDGET_AMOUNT_RULE}."
    )
    alert_threshold_percent: int = Field(
        default=80,
        ge=1,
        le=100,
        description="Actual spend past this share of the limit sends an alert (forecast spend past 100% always does).",
    )
    alert_emails: Emails = Field(
        min_length=1,
        max_length=10,
        description="Who the budget alerts e-mail (AWS Budgets takes up to 10 per alert), for a workload that sets "
        "no budget of its own.",
    )
    scope: BudgetScope = Field(
        default="account",
        description="What a sandbox's budget counts. account: the whole account's spend, right for a dedicated "
        "sandbox account holding one workload. tier: resources tagged tier=sandbox, every workload's sandbox "
        "together (each sandbox's budget then alerts on the others' spend too). workload: resources tagged "
        "workload=<its name>, that sandbox alone. tier and workload need that tag activated as a cost-allocation "
        "tag in Billing first, and count only tagged resources: Bedrock model invocations carry no tag (unless made "
        "through an application inference profile), so their spend is left out; account counts it.",
    )


class QueryConfig(ConfigModel):
    """The prototype query function: answers a question from the Knowledge Base or Kendra, with citations."""

    generation_model_id: ModelId = Field(
        default="amazon.nova-lite-v1:0",
        description="The Bedrock model (or inference profile, granted in every region it routes to) that writes "
        "the answer, for a workload that names no generation.model_id of its own.",
    )
    max_question_chars: int = Field(
        default=1000,
        ge=1,
        le=1000,
        description="Longest question accepted (422 beyond): RetrieveAndGenerate takes at most 1,000 characters "
        "(Kendra reads only the first 30 words).",
    )
    max_passages: int = Field(default=5, ge=1, le=20, description="Passages retrieved per question.")
    max_answer_tokens: int = Field(default=800, ge=1, le=8192, description="Tokens the model may write per answer.")
    memory_mb: int = Field(default=512, ge=128, le=10240, description="The query function's memory (MB).")
    timeout_seconds: int = Field(
        default=60,
        ge=10,
        le=900,
        description="The query function's timeout; a request's AWS calls (each of up to two attempts) end 2 s "
        "before it, and an attempt that could no longer connect and read is not made (a 502).",
    )
    reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Caps the function's concurrency (and so its spend); the account must have at least this many "
        "plus 100 unreserved executions. null leaves it uncapped.",
    )


class SandboxConfig(TierConfig):
    """A disposable prototype tier in one stack: every resource is destroyed with it."""

    log_retention_days: LogRetentionDays = Field(
        default=14,
        description="Days the sandbox's log groups keep their events; also how long its access-log bucket keeps "
        "objects.",
    )
    expires_on: dt.date = Field(
        description="The date (YYYY-MM-DD) a workload's sandbox is meant to be destroyed by, unless the workload "
        "sets its own: tagged expires-on on every resource."
    )
    budget: BudgetConfig = Field(description="The sandbox's monthly cost budget and its alerts.")
    knowledge_base: KnowledgeBaseConfig = Field(
        default=KnowledgeBaseConfig(),
        description="The Knowledge Base (S3 Vectors) over the documents bucket, for a workload that sets no "
        "knowledge_base of its own.",
    )
    kendra: KendraConfig = Field(default=KendraConfig(), description="The Kendra index over the same documents.")
    query: QueryConfig = Field(default=QueryConfig(), description="The query function behind an IAM-authorized URL.")
