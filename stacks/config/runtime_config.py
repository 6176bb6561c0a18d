"""How runtime configuration rolls out through AWS AppConfig (stacks/shared/runtime_config.py)."""

from __future__ import annotations

from pydantic import Field

from stacks.config.base import ConfigModel


class RuntimeConfigSettings(ConfigModel):
    """The rollout of a changed runtime document (groups, prices, quotas, models, tool bindings):
    linear steps over ``deployment_minutes``, then ``bake_minutes`` in which a reader's refusal
    alarm rolls it back. Plan for a stack update that changes a document to last as long (whether
    CloudFormation waits for the rollout is not documented)."""

    growth_percent: float = Field(
        default=50, ge=1, le=100, description="Share of readers that get the new document at each step (percent)."
    )
    deployment_minutes: int = Field(
        default=1, ge=0, le=1440, description="Minutes over which a changed document reaches every reader."
    )
    bake_minutes: int = Field(
        default=2,
        ge=0,
        le=1440,
        description="Minutes after the last step during which a refusal alarm still rolls the change back.",
    )
