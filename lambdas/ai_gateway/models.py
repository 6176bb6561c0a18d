"""The gateway's callers and requests (its settings and policy document: contract.py)."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ai_gateway.contract import MAX_MESSAGES, GatewayPolicy, GroupModels, GroupPolicy, OutputPolicy, Period, Quota

__all__ = ["Caller", "GatewayPolicy", "GroupModels", "GroupPolicy", "OutputPolicy", "Period", "Quota"]


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

    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    # Continues an agent session: the agent remembers its earlier turns (send only the newest).
    session_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{8,128}$")

    @field_validator("messages")
    @classmethod
    def _alternates_from_and_to_the_user(cls, messages: list[Message]) -> list[Message]:
        # Converse takes alternating turns that start and end with the user's, and the guardrail
        # refuses content without text: refused here, named, before anything is admitted.
        if messages[-1].role != "user":
            raise ValueError("the last message must be the user's")
        if messages[0].role != "user":
            raise ValueError("the first message must be the user's")
        for index, (before, after) in enumerate(pairwise(messages), start=1):
            if before.role == after.role:
                both = f"{index} and {index - 1} are both {after.role}'s"
                raise ValueError(f"messages must alternate between user and assistant: {both}")
        for index, message in enumerate(messages):
            if not message.content.strip():
                raise ValueError(f"message {index} is blank")
        return messages


class OutputRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    material: str = Field(min_length=1, max_length=200_000)
    instructions: str | None = Field(default=None, min_length=1, max_length=2000)
    model: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("material", "instructions")
    @classmethod
    def _not_blank(cls, text: str | None) -> str | None:
        # The guardrail refuses content without text (a 502 once admitted): refused here, named.
        if text is not None and not text.strip():
            raise ValueError("is blank")
        return text
