"""The gateway's policy (from the deployment's config), callers and requests (settings: contract.py).

Only request bodies are pydantic models: they are untrusted and need field-level errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Period = Literal["DAY", "MONTH"]


@dataclass(frozen=True)
class GroupModels:
    allowed: tuple[str, ...]
    default: str
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Quota:
    limit: int
    period: Period


@dataclass(frozen=True)
class GroupPolicy:
    kind: str
    tier: str
    models: GroupModels
    quotas: dict[str, Quota]


@dataclass(frozen=True)
class OutputPolicy:
    unit_price_usd: float
    units: int
    max_tokens: int
    instructions: str
    agent: str | None = None  # the agent that produces this output type; None: a model directly


@dataclass(frozen=True)
class GatewayPolicy:
    """Written by the CDK app (stacks/production/policy.py, from the validated config) into an SSM
    parameter; read at cold start. Plain dataclasses: the document was validated at synth, and
    pydantic models cost import time at the front door."""

    groups: dict[str, GroupPolicy]
    outputs: dict[str, OutputPolicy]

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> GatewayPolicy:
        return cls(
            groups={
                name: GroupPolicy(
                    kind=group["kind"],
                    tier=group["tier"],
                    models=GroupModels(
                        allowed=tuple(group["models"]["allowed"]),
                        default=group["models"]["default"],
                        fallbacks=tuple(group["models"].get("fallbacks", ())),
                    ),
                    quotas={output: Quota(**quota) for output, quota in group["quotas"].items()},
                )
                for name, group in document["groups"].items()
            },
            outputs={name: OutputPolicy(**output) for name, output in document["outputs"].items()},
        )


@dataclass(frozen=True)
class Caller:
    """Who is calling, as the gateway's Lambda authorizer established it."""

    user: str
    group: str


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=200_000)


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(min_length=1, max_length=50)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    # Continues an agent session: the agent remembers its earlier turns (send only the newest).
    session_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{8,128}$")

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
