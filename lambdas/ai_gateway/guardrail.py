"""Bedrock Guardrails on the way in and on the way out, through ApplyGuardrail.

Untrusted text is sent as guarded content; an output generated from source material is checked
for contextual grounding against it. Any service failure raises: the gateway fails closed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ai_gateway.upstream import UpstreamError, call


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    intervened: bool
    texts: tuple[str, ...]  # what to use instead of the checked texts (masked, or the blocked message)
    reasons: tuple[str, ...]  # e.g. "topic", "pii:EMAIL", "content:HATE", "grounding"

    def text(self, index: int = 0) -> str:
        return self.texts[index]


class Guard:
    def __init__(self, client: Any, *, guardrail_id: str, version: str) -> None:
        self._client = client
        self._id = guardrail_id
        self._version = version

    def check_input(self, texts: Sequence[str]) -> Verdict:
        content = [{"text": {"text": text, "qualifiers": ["guard_content"]}} for text in texts]
        return self._apply("INPUT", content, texts)

    def check_output(self, text: str, *, source: str | None = None, query: str | None = None) -> Verdict:
        content: list[dict[str, Any]] = []
        if source is not None and query is not None:
            content.append({"text": {"text": source, "qualifiers": ["grounding_source"]}})
            content.append({"text": {"text": query, "qualifiers": ["query"]}})
        content.append({"text": {"text": text, "qualifiers": ["guard_content"]}})
        return self._apply("OUTPUT", content, [text])

    def _apply(self, source: str, content: list[dict[str, Any]], texts: Sequence[str]) -> Verdict:
        with call("bedrock-guardrails"):
            response = self._client.apply_guardrail(
                guardrailIdentifier=self._id, guardrailVersion=self._version, source=source, content=content
            )
        if response["action"] != "GUARDRAIL_INTERVENED":
            return Verdict(blocked=False, intervened=False, texts=tuple(texts), reasons=())
        actions = list(_actions(response.get("assessments", [])))
        blocked = any(action == "BLOCKED" for _, action in actions)
        outputs = tuple(output.get("text", "") for output in response.get("outputs", []))
        if blocked:
            replacement = outputs[:1] or ("",)
        elif len(outputs) == len(texts):
            replacement = outputs  # masked text, one per guarded block, in order
        else:
            # Masked text we cannot map back to its blocks: never pass the unmasked text on.
            raise UpstreamError("bedrock-guardrails", "UnmappedGuardrailOutput", 502)
        return Verdict(
            blocked=blocked,
            intervened=True,
            texts=replacement,
            reasons=tuple(sorted({reason for reason, action in actions if action in ("BLOCKED", "ANONYMIZED")})),
        )


def _actions(assessments: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(reason, action) for every finding in the assessments."""
    found: list[tuple[str, str]] = []
    for assessment in assessments:
        for topic in assessment.get("topicPolicy", {}).get("topics", []):
            found.append(("topic", topic.get("action", "NONE")))
        for item in assessment.get("contentPolicy", {}).get("filters", []):
            found.append((f"content:{item.get('type')}", item.get("action", "NONE")))
        words = assessment.get("wordPolicy", {})
        for item in [*words.get("customWords", []), *words.get("managedWordLists", [])]:
            found.append(("word", item.get("action", "NONE")))
        sensitive = assessment.get("sensitiveInformationPolicy", {})
        for item in sensitive.get("piiEntities", []):
            found.append((f"pii:{item.get('type')}", item.get("action", "NONE")))
        for item in sensitive.get("regexes", []):
            found.append(("regex", item.get("action", "NONE")))
        for item in assessment.get("contextualGroundingPolicy", {}).get("filters", []):
            found.append((f"grounding:{item.get('type')}", item.get("action", "NONE")))
    return found
