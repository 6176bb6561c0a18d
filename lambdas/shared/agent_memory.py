"""An agent turn in AgentCore Memory: who it belongs to and how it is written.

The AI gateway writes a turn after its output guardrail (so memory holds only guarded text); the
agent reads the session's turns back and recalls long-term records (agent.memory). Actor ids are
``<group>/<user>``: memory is scoped to the group a session is bound to as well as to the user,
so a user moved to another group starts there with nothing from the old one.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

MAX_TEXT = 100_000  # CreateEvent's limit for one conversational payload
ROLES = ["USER", "ASSISTANT"]  # one turn: the caller's text, then the answer


def actor_id(group: str, user: str) -> str:
    return f"{group}/{user}"


def create_turn_event(
    client: Any, memory_id: str, *, actor: str, session: str, question: str, answer: str, at: dt.datetime
) -> None:
    """Store one turn as a short-term event (the long-term strategies extract from it)."""
    client.create_event(
        memoryId=memory_id,
        actorId=actor,
        sessionId=session,
        eventTimestamp=at,
        payload=[
            {"conversational": {"role": role, "content": {"text": text[:MAX_TEXT]}}}
            for role, text in zip(ROLES, (question, answer), strict=True)
        ],
    )
