"""Settings there is one of per account and region, and how the production tier treats each."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stacks.config.base import ConfigModel

AccountSettingMode = Literal["manage", "adopt", "off"]


class AccountSettingsConfig(ConfigModel):
    """One-per-account settings the production tier relies on, and how it treats each of them.

    manage: a CloudFormation resource of the foundation stack (creating it fails if it is on; kept on
    delete). adopt: turn it on if it is off, leave it as it is if it is on, never switch it off (stack
    deletion included). off: leave the account alone and do without the feature. docs/operations.md
    ("Account-wide settings") says which stack holds each; ADR 0004 says why adopt is the default.
    """

    transaction_search: AccountSettingMode = Field(
        default="adopt",
        description="X-Ray Transaction Search (spans into CloudWatch Logs): agent spans and online evaluation "
        "(off: no online evaluation).",
    )
    model_invocation_logging: AccountSettingMode = Field(
        default="adopt",
        description="Bedrock model invocation logging to the tier's encrypted log group (off: no invocation logs).",
    )
    macie: AccountSettingMode = Field(
        default="adopt",
        description="The Macie session: sensitive-data discovery over the pipeline's buckets (off: no Macie at all).",
    )
    api_gateway_logging: AccountSettingMode = Field(
        default="adopt",
        description="API Gateway's account-wide CloudWatch role, which the APIs' execution logs need (off: the "
        "account must already have one).",
    )
