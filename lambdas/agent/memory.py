"""AgentCore Memory for one caller: the session's earlier turns and long-term records.

Reads only: the AI gateway writes each turn after its output guardrail (shared.agent_memory, which
also has the actor ids). Long-term strategies write to namespaces under ``/actors/{actorId}/``
(stacks/production/agents.py), and only the caller's own namespaces are read. Memory is best
effort: a failed call is logged and the turn goes on without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools import Logger

from shared.agent_memory import ROLES
from shared.aws_errors import UpstreamError, call
from shared.field_paths import value_at

logger = Logger(child=True)
MAX_QUERY = 10_000  # RetrieveMemoryRecords' limit for a search query


@dataclass(frozen=True)
class SessionMemory:
    client: Any  # bedrock-agentcore (the data plane)
    memory_id: str
    namespaces: Sequence[str]  # templates with {actorId} and optionally {sessionId}
    history_turns: int = field(kw_only=True)  # defaults: agent.contract.Settings
    recall_records: int = field(kw_only=True)

    def history(self, actor: str, session: str) -> list[dict[str, Any]]:
        """The session's last ``history_turns`` turns as Converse messages, oldest first."""
        if self.history_turns == 0:
            return []
        try:
            with call("bedrock-agentcore"):  # an answer botocore cannot read too
                response = self.client.list_events(
                    memoryId=self.memory_id,
                    actorId=actor,
                    sessionId=session,
                    includePayloads=True,
                    maxResults=min(100, self.history_turns),
                )
        except UpstreamError as error:
            _failed("list_events", error)
            return []
        # An answer without what the API promises (a time, a text) loses that event, not the turn;
        # so does blank text (an answer of whitespace the gateway remembered), which Converse refuses.
        dated = [event for event in response.get("events", []) if event.get("eventTimestamp") is not None]
        events = sorted(dated, key=lambda event: event["eventTimestamp"])
        messages: list[dict[str, Any]] = []
        for event in events[-self.history_turns :]:
            turn = [item.get("conversational") or {} for item in event.get("payload", [])]
            texts = [value_at(part, "content.text") for part in turn]
            if [part.get("role") for part in turn] != ROLES or not all(isinstance(t, str) and t.strip() for t in texts):
                continue  # not a turn this agent wrote
            messages += [
                {"role": part["role"].lower(), "content": [{"text": text}]}
                for part, text in zip(turn, texts, strict=True)
            ]
        return messages

    def recall(self, actor: str, session: str, query: str) -> list[str]:
        """Long-term records most relevant to ``query`` from the caller's own namespaces."""
        if self.recall_records == 0 or not query.strip():
            return []
        found: list[tuple[float, str]] = []
        for template in self.namespaces:
            namespace = template.format(actorId=actor, sessionId=session)
            try:
                with call("bedrock-agentcore"):
                    response = self.client.retrieve_memory_records(
                        memoryId=self.memory_id,
                        namespace=namespace,
                        searchCriteria={"searchQuery": query[:MAX_QUERY], "topK": self.recall_records},
                        maxResults=self.recall_records,
                    )
            except UpstreamError as error:
                _failed("retrieve_memory_records", error)
                continue
            for record in response.get("memoryRecordSummaries", []):
                text = (record.get("content") or {}).get("text")
                if text:
                    found.append((float(record.get("score") or 0.0), text))
        found.sort(key=lambda scored: -scored[0])
        return [text for _, text in found[: self.recall_records]]


def _failed(operation: str, error: UpstreamError) -> None:
    logger.warning("memory call failed", extra={"operation": operation, "code": error.code})
