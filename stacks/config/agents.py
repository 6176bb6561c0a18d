"""Agents on AgentCore Runtime, and the memory they share."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from agent.contract import MAX_TOOL_CALLS
from stacks.config.base import ConfigModel
from stacks.config.fields import SnakeName

AgentName = SnakeName
RUNTIME_NAME_LENGTH = 48  # AgentCore Runtime: [a-zA-Z][a-zA-Z0-9_]{0,47}


def runtime_name(prefix: str, agent: str) -> str:
    """An agent's runtime name (letters, digits and underscores): ``<prefix>_<agent>``."""
    return f"{prefix.replace('-', '_')}_{agent}"


def evaluation_name(prefix: str, agent: str) -> str:
    """The name of an agent's online evaluation configuration (and of its results log group):
    ``<runtime name>_tools`` cut to AgentCore's 48 characters."""
    return f"{runtime_name(prefix, agent)}_tools"[:RUNTIME_NAME_LENGTH]


MemoryStrategyName = Literal["semantic", "summary", "user_preference"]


class AgentMemoryConfig(ConfigModel):
    """AgentCore Memory shared by the agents (KMS-encrypted), namespaced per group and user."""

    event_expiry_days: int = Field(
        default=30,
        ge=7,
        le=365,
        description="Days short-term events (the turns of a session) are kept: AgentCore allows 7 to 365.",
    )
    strategies: tuple[MemoryStrategyName, ...] = Field(
        default=("semantic", "user_preference"),
        description="Long-term strategies that extract records from the events, each at most once (none: "
        "short-term memory only).",
    )
    history_turns: int = Field(
        default=10,
        ge=0,
        le=50,
        description="Earlier turns of the session recalled when a caller sends only the newest turn.",
    )
    recall_records: int = Field(
        default=5, ge=0, le=20, description="Long-term records recalled per turn, by relevance to the newest turn."
    )

    @field_validator("strategies")
    @classmethod
    def _unique(cls, strategies: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(strategies)) != len(strategies):
            raise ValueError("each strategy at most once")
        return strategies


class AgentConfig(ConfigModel):
    """An agent on AgentCore Runtime: what it is for and which gateway routes it serves."""

    description: str = Field(
        min_length=1, max_length=1200, description="What the agent is for: the runtime's description."
    )
    system_prompt: str = Field(min_length=1, max_length=4000, description="The agent's system prompt.")
    output_types: tuple[str, ...] = Field(
        min_length=1,
        description='Output types (names from output_types; "chat" is POST /v1/chat) this agent produces, each '
        "served by one agent at most; the gateway sends the others to a model directly.",
    )
    max_iterations: int = Field(default=6, ge=1, le=20, description="Model calls the agent may make per turn.")
    max_tool_calls: int = Field(
        default=MAX_TOOL_CALLS,
        ge=1,
        le=100,
        description="Tool calls the agent may make per turn, whatever its model asks for; a call past it is not "
        "made, and the model is told to answer with the results it has.",
    )
    turn_seconds: int = Field(
        default=120,
        ge=10,
        le=840,
        description="A turn's time budget; it must fit the gateway's time (api.integration_timeout_seconds less "
        "the gateway's own 5 seconds).",
    )
    idle_session_minutes: int = Field(
        default=15,
        ge=1,
        le=480,
        description="A session's microVM ends after this many idle minutes (AgentCore: 1 to 480).",
    )
