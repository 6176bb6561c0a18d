"""The gateway's policy (from the deployment's config), callers, requests and settings."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Period = Literal["DAY", "MONTH"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class GroupModels(_Frozen):
    allowed: tuple[str, ...]
    default: str
    fallbacks: tuple[str, ...] = ()


class Quota(_Frozen):
    limit: int
    period: Period


class GroupPolicy(_Frozen):
    kind: Literal["internal", "customer"]
    tier: str
    models: GroupModels
    quotas: dict[str, Quota]


class OutputPolicy(_Frozen):
    unit_price_usd: float
    units: int
    max_tokens: int
    instructions: str


class GatewayPolicy(_Frozen):
    """Written by the CDK app from stacks/config.py into an SSM parameter; read at cold start."""

    groups: dict[str, GroupPolicy]
    outputs: dict[str, OutputPolicy]


class Caller(_Frozen):
    """Who is calling, as the gateway's Lambda authorizer established it."""

    user: str = Field(min_length=1)
    group: str = Field(min_length=1)
    tier: str = ""
    kind: str = ""


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=200_000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1, max_length=50)
    model: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("messages")
    @classmethod
    def _ends_with_the_user(cls, messages: list[Message]) -> list[Message]:
        if messages[-1].role != "user":
            raise ValueError("the last message must be the user's")
        return messages


class OutputRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    material: str = Field(min_length=1, max_length=200_000)
    instructions: str | None = Field(default=None, min_length=1, max_length=2000)
    model: str | None = Field(default=None, min_length=1, max_length=200)


class Settings(_Frozen):
    table_name: str
    guardrail_id: str
    guardrail_version: str
    policy_parameter: str
    max_message_chars: int = 20000

    @classmethod
    def from_environ(cls) -> Settings:
        env = os.environ
        return cls(
            table_name=env.get("LEDGER_TABLE", ""),
            guardrail_id=env.get("GUARDRAIL_ID", ""),
            guardrail_version=env.get("GUARDRAIL_VERSION", ""),
            policy_parameter=env.get("POLICY_PARAMETER", ""),
            max_message_chars=int(env.get("MAX_MESSAGE_CHARS", "20000")),
        )
