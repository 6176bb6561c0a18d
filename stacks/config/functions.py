"""Memory and timeout of the production tier's Lambda functions, by function."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from stacks.config.base import ConfigModel

# The production functions, by the package under lambdas/ each runs (macie_findings: the Macie
# responder, module macie of the ingestion package).
FunctionName = Literal[
    "ai_gateway",
    "gateway_authorizer",
    "pre_token",
    "tool_guard",
    "legacy_tools",
    "knowledge_search",
    "ingestion",
    "connector_push",
    "connector_pull",
    "macie_findings",
    "evaluation",
    "account_settings",
]
PRODUCTION_FUNCTIONS: tuple[FunctionName, ...] = get_args(FunctionName)
# Functions whose time limit has its own key, because other limits are derived from it there.
DEDICATED_TIMEOUTS: dict[str, str] = {
    "ai_gateway": "api.integration_timeout_seconds",
    "ingestion": "ingestion.processor_timeout_seconds",
    # Sized per API from its attempts and per-call timeout.
    "legacy_tools": "legacy_apis.<name>.timeout_seconds and max_attempts",
}


class FunctionConfig(ConfigModel):
    """One function's size and time limit; what is unset keeps the value the stack gives that function."""

    memory_mb: int | None = Field(
        default=None, ge=128, le=10240, description="The function's memory (MB); null: the stack's own value."
    )
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=900, description="The function's timeout (seconds); null: the stack's own value."
    )
