"""The whole deployment's config: a name prefix, tags, and the two tiers."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from stacks.config.base import ConfigModel
from stacks.config.fields import Prefix
from stacks.config.production import ProductionConfig
from stacks.config.sandbox import SandboxConfig


class BlueprintConfig(ConfigModel):
    """Everything under the context key blueprint in cdk.json."""

    prefix: Prefix = Field(
        description="Names every stack (<prefix>-sandbox, <prefix>-production-...) and most resources; short so "
        "that derived names stay within AWS limits."
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags on every resource of every stack: valid AWS tag keys (no aws: prefix) and values.",
    )
    sandbox: SandboxConfig = Field(description="The sandbox tier.")
    production: ProductionConfig = Field(description="The production tier.")

    @field_validator("tags")
    @classmethod
    def _tags_are_valid(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            if not re.fullmatch(r"[\w .:/=+@-]{1,128}", key) or key.startswith("aws:"):
                raise ValueError(f"tag key {key!r} is not a valid AWS tag key")
            if not re.fullmatch(r"[\w .:/=+@-]{0,256}", value):
                raise ValueError(f"tag value {value!r} is not a valid AWS tag value")
        return tags
