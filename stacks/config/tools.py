"""MCP tools on the AgentCore tools gateway: the built-in ones and legacy REST APIs wrapped as tools."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, field_validator

from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import FieldPath, HttpsUrl, SecretName, ToolName, UrlPath

# Tools lambdas/legacy_tools/adapters.py implements (TOOLS there).
LEGACY_TOOLS = ("find_orders", "get_customer")

# Tools every deployment has, by tool name -> gateway target.
BUILTIN_TOOLS: Mapping[str, str] = {"knowledge_search": "knowledge"}


class LegacyApiConfig(ConfigModel):
    """A legacy REST API served to agents as MCP tools (lambdas/legacy_tools), one function per API."""

    base_url: HttpsUrl = Field(description="Where the API's endpoints are.")
    token_path: UrlPath = Field(
        default="/oauth/token", description="The API's OAuth token endpoint (client credentials), under base_url."
    )
    secret_name: SecretName = Field(
        description='Secrets Manager secret with {"client_id", "client_secret"} for the token endpoint; the '
        "tier reads it, it does not create it."
    )
    timeout_seconds: float = Field(
        default=5,
        gt=0,
        le=25,
        description="Seconds one call to the API may take; the function's timeout is sized from it and max_attempts.",
    )
    max_attempts: int = Field(default=3, ge=1, le=5, description="Attempts per call (retries with backoff).")
    top_k: int = Field(default=10, ge=1, le=100, description="Records per page of a tool's answer.")
    byte_budget: int = Field(
        default=4000,
        ge=512,
        le=100_000,
        description="The most a tool's answer may weigh (bytes): records beyond it go to the next page.",
    )
    tools: dict[ToolName, dict[str, FieldPath]] = Field(
        min_length=1,
        description="Tool -> declared output field -> path in the upstream record; the tool's schema lists the "
        f"declared fields. Each tool must be one lambdas/legacy_tools implements ({', '.join(LEGACY_TOOLS)}), "
        "named once across all targets.",
    )

    @field_validator("tools")
    @classmethod
    def _implemented(cls, tools: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for name in tools:
            if name not in LEGACY_TOOLS:
                raise KeyedError((name,), "no adapter implements this tool", allowed=", ".join(LEGACY_TOOLS))
        return tools


def all_tools(legacy_apis: Mapping[str, LegacyApiConfig]) -> dict[str, str]:
    """Every tool name -> its gateway target: the built-in ones and each legacy API's."""
    return {**BUILTIN_TOOLS, **{tool: target for target, api in legacy_apis.items() for tool in api.tools}}
