"""MCP tools on the AgentCore tools gateway: the built-in ones and legacy REST APIs wrapped as tools."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Discriminator, Field, Tag, field_validator

from legacy_tools.adapters import CHAINED
from legacy_tools.contract import DeclaredField, SingleCallTool
from shared.tools import BUILTIN_TOOLS, DEFAULT_MAX_RESPONSE_BYTES
from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import FieldPath, HttpsUrl, SecretName, ToolName, UrlPath

__all__ = ["BUILTIN_TOOLS", "LEGACY_TOOLS", "LegacyApiConfig", "SingleCallTool", "all_tools"]

# The chained tools: code in lambdas/legacy_tools/adapters.py (CHAINED there); config names their fields.
LEGACY_TOOLS = tuple(CHAINED)

FieldMap = dict[DeclaredField, FieldPath]


def _kind(declared: Any) -> str:
    """A declaration with a ``path`` is a single-call tool; anything else is a chained tool's fields."""
    if isinstance(declared, SingleCallTool):
        return "single_call"
    return "single_call" if isinstance(declared, Mapping) and "path" in declared else "chained"


ToolDeclaration = Annotated[
    Annotated[FieldMap, Tag("chained")] | Annotated[SingleCallTool, Tag("single_call")],
    Discriminator(_kind),
]


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
        description="Seconds one call to the API may take, connect and every read together (a deadline, so a "
        "server that answers slowly cannot hold a call); the function's timeout is sized from it and max_attempts.",
    )
    max_attempts: int = Field(default=3, ge=1, le=5, description="Attempts per call (retries with backoff).")
    max_response_bytes: int = Field(
        default=DEFAULT_MAX_RESPONSE_BYTES,
        ge=131_072,
        le=33_554_432,
        description="The largest answer the function reads from the API (bytes): a larger one is refused as it "
        "streams, never held in memory. Above byte_budget's largest value, since a tool's answer is cut from it. "
        "An answer is parsed whole, in up to 56 times its size: synth refuses a cap whose answer would not fit "
        "functions.legacy_tools.memory_mb beside the function's own 128 MB.",
    )
    top_k: int = Field(default=10, ge=1, le=100, description="Records per page of a tool's answer.")
    byte_budget: int = Field(
        default=4000,
        ge=512,
        le=100_000,
        description="The most a tool's answer may weigh (bytes): records beyond it go to the next page; a record "
        "heavier than it alone has its longest texts cut (truncated, clipped names them) or is left out with a note.",
    )
    tools: dict[ToolName, ToolDeclaration] = Field(
        min_length=1,
        description="The API's tools by name (each name once across all targets). A chained tool (code in "
        f"lambdas/legacy_tools/adapters.py: {', '.join(LEGACY_TOOLS)}) declares its output fields: declared "
        "field -> path in the upstream record. A single-call tool is config only: one GET declared with "
        "description, path (with {argument} placeholders), arguments, optional records (a list to page) and "
        "fields.",
    )

    @field_validator("tools")
    @classmethod
    def _implemented(cls, tools: dict[str, Any]) -> dict[str, Any]:
        for name, declared in tools.items():
            if not isinstance(declared, SingleCallTool) and name not in LEGACY_TOOLS:
                raise KeyedError(
                    (name,),
                    "no code implements this chained tool (a single-call tool declares a path)",
                    allowed=", ".join(LEGACY_TOOLS),
                )
        return tools

    def chained_tools(self) -> dict[str, dict[str, str]]:
        """Chained tool -> its declared fields."""
        return {n: dict(t) for n, t in self.tools.items() if not isinstance(t, SingleCallTool)}

    def single_call_tools(self) -> dict[str, SingleCallTool]:
        return {n: t for n, t in self.tools.items() if isinstance(t, SingleCallTool)}

    def declared_fields(self, tool: str) -> list[str]:
        """The record fields a tool answers with (its description lists them)."""
        declared = self.tools[tool]
        return list(declared.fields if isinstance(declared, SingleCallTool) else declared)


def all_tools(legacy_apis: Mapping[str, LegacyApiConfig]) -> dict[str, str]:
    """Every tool name -> its gateway target: the built-in ones and each legacy API's."""
    return {**BUILTIN_TOOLS, **{tool: target for target, api in legacy_apis.items() for tool in api.tools}}
