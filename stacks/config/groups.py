"""The AI gateway's groups and output types: who may call which models, for what, and how much.

A group is a Cognito group (lambdas/pre_token puts it in the caller's token); an output type is an
output-priced workload (POST /v1/outputs/<type>, and "chat" for POST /v1/chat) that the gateway
meters in units against each group's exact quota in its ledger.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from knowledge_search.contract import MAX_CLASSIFICATIONS
from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import Classification, Label, ModelId
from stacks.config.web import GroupWebConfig

# The ledger writes price x units as a DynamoDB number and the gateway emits it as a metric per
# output; a price past a million dollars per unit is a slip (a total, or cents), not a price.
MAX_UNIT_PRICE_USD = 1_000_000
# The ledger writes a price as a DynamoDB number, whose smallest magnitude is 1E-130: a smaller one
# would have every admission refused. Below a billionth of a dollar a price is a slip.
MIN_UNIT_PRICE_USD = 1e-9
UNIT_PRICE_RULE = (
    "0 (free), or from 0.000000001 to 1,000,000 (a larger figure is a total or a slip, not the price of one unit)."
)


def unit_price(value: float) -> float:
    """A unit price as UNIT_PRICE_RULE allows it (its upper bound is the field's own)."""
    if 0 < value < MIN_UNIT_PRICE_USD:
        raise ValueError(f"0 for free, or at least {MIN_UNIT_PRICE_USD:g} (a price the ledger can record)")
    return value


UnitPrice = Annotated[float, Field(ge=0, le=MAX_UNIT_PRICE_USD), AfterValidator(unit_price)]
# What the ledger counts per group and period, and adds one output's units to: DynamoDB numbers hold
# 38 digits, a quota past a trillion is a slip (as is an output of more than a million units).
MAX_QUOTA_UNITS = 1_000_000_000_000
MAX_OUTPUT_UNITS = 1_000_000


class UsagePlanConfig(ConfigModel):
    """API Gateway's coarse, best-effort limits for a group's API key (the ledger is exact)."""

    rate_limit: float = Field(gt=0, le=10000, description="Steady-state requests per second.")
    burst_limit: int = Field(ge=1, le=5000, description="Requests allowed in a burst above the steady rate.")
    quota_limit: int = Field(
        ge=1, le=2_147_483_647, description="Requests per quota_period (API Gateway takes a 32-bit number)."
    )
    quota_period: Literal["DAY", "WEEK", "MONTH"] = Field(
        default="DAY", description="The period quota_limit counts over."
    )


class OutputQuota(ConfigModel):
    """How many units of one output type a group may produce per period, enforced exactly by the ledger."""

    limit: int = Field(
        ge=0,
        le=MAX_QUOTA_UNITS,
        description="Units of this output type per period (0: none; at most 1,000,000,000,000: the ledger "
        "counts them in DynamoDB numbers).",
    )
    period: Literal["DAY", "MONTH"] = Field(
        default="MONTH", description="The period the limit counts over (calendar day or month, UTC)."
    )


class GroupModels(ConfigModel):
    """The Bedrock models a group may use."""

    allowed: tuple[ModelId, ...] = Field(
        min_length=1,
        description="Models (or inference profiles) the group may ask for by name, each once; the gateway may invoke "
        "only these.",
    )
    default: ModelId = Field(description="The model used when a request names none; one of allowed.")
    fallbacks: tuple[ModelId, ...] = Field(
        default=(),
        description="Tried in order when the model in use throttles or fails with a 5xx; each one of allowed, and "
        "each once. The default may be one: it is then the fallback of a request that names another model (a "
        "request that names none starts with the default, and a model is never tried twice).",
    )

    @field_validator("allowed")
    @classmethod
    def _allowed_once(cls, allowed: tuple[str, ...]) -> tuple[str, ...]:
        return _each_once(allowed)

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
        return _each_once(fallbacks)


def _each_once(models: tuple[str, ...]) -> tuple[str, ...]:
    """A list of models that names none twice: a repeat is a typo or a model retried for nothing."""
    for index, model in enumerate(models):
        if models.index(model) != index:
            raise KeyedError((str(index),), f"{model} named twice", allowed="each model once")
    return models


class GroupConfig(ConfigModel):
    """A Cognito group: who its members are to the gateway, and what they may spend."""

    kind: Literal["internal", "customer"] = Field(
        description="Staff or customers: a token claim (gateway_kind); only internal callers may replay "
        "evaluation cases."
    )
    tier: Label = Field(
        description="A label for the group's tier (such as gold or basic): the gateway_tier claim in its members' "
        "tokens, and shown by GET /v1/usage."
    )
    precedence: int = Field(
        ge=0,
        le=1000,
        description="A user in several groups acts as the one with the lowest precedence (Cognito's own rule).",
    )
    usage_plan: UsagePlanConfig = Field(description="API Gateway throttle and request quota for the group's API key.")
    models: GroupModels = Field(description="The models the group may use, its default and its fallbacks.")
    output_quotas: dict[str, OutputQuota] = Field(
        min_length=1,
        description="Output types (names from output_types) this group may produce, each with its exact quota; "
        "others are refused (403).",
    )
    tools: tuple[str, ...] = Field(
        default=(),
        description="MCP tools this group's agents may list and call (knowledge_search, web_fetch, web_browse or "
        "a legacy API's tool); nothing else.",
    )
    web: GroupWebConfig = Field(
        default=GroupWebConfig(), description="The domains web_fetch and web_browse may reach for this group."
    )
    tool_requests_per_minute: int = Field(
        default=120,
        ge=1,
        le=1_000_000,
        description="Tool calls the group's members may make per minute through the tools gateway, together.",
    )
    data_classifications: tuple[Classification, ...] = Field(
        default=("public",),
        max_length=MAX_CLASSIFICATIONS,
        description="Document classifications (names from ingestion.classifications) this group may retrieve, "
        f"at most {MAX_CLASSIFICATIONS} (with those its workloads add); knowledge_search always filters on them.",
    )


class OutputTypeConfig(ConfigModel):
    """An output-priced workload: what one output costs and how it is produced."""

    unit_price_usd: UnitPrice = Field(
        description=f"Price of one unit (USD): metered in the ledger and shown by GET /v1/usage. {UNIT_PRICE_RULE}",
    )
    units: int = Field(
        default=1,
        ge=1,
        le=MAX_OUTPUT_UNITS,
        description="Units one delivered output consumes from the group's quota (at most 1,000,000).",
    )
    max_tokens: int = Field(default=1000, ge=1, le=8192, description="Tokens the model may write per output.")
    instructions: str = Field(
        min_length=1, max_length=4000, description="The system prompt a model producing this output gets."
    )
    # Infrastructure only (the jobs' worker's timeout): not part of the policy the gateway reads.
    async_timeout_seconds: int = Field(
        default=300,
        ge=30,
        le=900,
        exclude=True,
        description="The most seconds one asynchronous output of this type (POST with Prefer: respond-async) "
        "may run in the jobs' worker; the worker's timeout is the largest of them (Lambda allows 900).",
    )
