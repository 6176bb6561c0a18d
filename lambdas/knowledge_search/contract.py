"""The knowledge_search tool's contract: its settings, its arguments and its spec."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contract import FunctionSettings
from shared.tools import KNOWLEDGE_SEARCH, ToolSpec

# The classifications one search may filter on: config holds a group to it (its retrievals would
# all be refused past it).
MAX_CLASSIFICATIONS: Final = 20


class Settings(FunctionSettings):
    knowledge_base_id: str


class Arguments(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=1000, description="What to look for, in plain words")
    # Strict: lax mode would take true or "5" for an integer, hiding a confused caller.
    max_results: int = Field(default=5, ge=1, le=20, strict=True, description="1 to 20 passages (default 5)")
    # Declared so the policy engine's schema knows them; the REQUEST interceptor always writes
    # them from the caller's group and session, and the RESPONSE interceptor hides them.
    data_classifications: list[str] = Field(
        min_length=1, max_length=MAX_CLASSIFICATIONS, description="Set by the gateway; any value sent is replaced"
    )
    conversation_id: str | None = Field(
        default=None,
        max_length=256,
        description="Set by the gateway from the calling agent's session, for telemetry",
    )

    @field_validator("query")
    @classmethod
    def _not_blank(cls, query: str) -> str:
        # Retrieve refuses a blank query; refused here it is the caller's invalid_argument,
        # not an upstream failure it would be told to retry.
        if not query.strip():
            raise ValueError("must contain more than whitespace")
        return query


TOOL = ToolSpec(
    name=KNOWLEDGE_SEARCH,
    description="Passages from the company's documents that the caller may read, with their sources.",
    arguments=Arguments,
)
