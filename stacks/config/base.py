"""What every config model shares: the frozen base model, the tiers, and the errors."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from stacks.config.fields import AccountId, LogRetentionDays, Region


class ConfigError(ValueError):
    """Configuration that cannot be deployed; each line names one bad key."""


class KeyedError(ValueError):
    """A check that names the key below the validated field that is wrong."""

    def __init__(self, path: tuple[str, ...], reason: str, *, allowed: str) -> None:
        super().__init__(f"{reason}; allowed: {allowed}")
        self.path = path
        self.reason = reason
        self.allowed = allowed


class Tier(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class ConfigModel(BaseModel):
    """Frozen, no unknown keys, defaults validated too."""

    # Numbers become strings where a string is expected: `-c blueprint.sandbox.account=123456789012`
    # arrives as JSON and parses to an int.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, coerce_numbers_to_str=True)


class TierConfig(ConfigModel):
    """Where a tier deploys and how long it keeps its logs."""

    account: AccountId | None = Field(
        default=None,
        description="The AWS account the tier's stacks deploy to; null leaves them environment-agnostic "
        "(the account of the deploying credentials).",
    )
    region: Region = Field(default="us-east-1", description="The AWS region the tier's stacks deploy to.")
    log_retention_days: LogRetentionDays = Field(
        default=30,
        description="Days the tier's log groups keep their events; also how long its access-log bucket keeps objects.",
    )
