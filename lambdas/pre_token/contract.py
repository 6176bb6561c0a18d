"""The pre-token-generation trigger's contract: each configured group's claims and precedence."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from shared.contract import FunctionSettings


class GroupClaims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    precedence: int  # a user in several groups gets the lowest
    tier: str
    kind: str


class Settings(FunctionSettings):
    gateway_groups: dict[str, GroupClaims]
