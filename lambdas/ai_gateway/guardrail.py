"""Bedrock Guardrails on the way in and on the way out, through ApplyGuardrail.

Untrusted text is sent as guarded content; an output generated from source material is checked
for contextual grounding against it. Any service failure raises: the gateway fails closed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.aws_errors import call
from shared.guardrail_findings import anonymized_matches, findings

SERVICE = "bedrock-guardrails"  # how its failures are named (shared.aws_errors)
# When the guardrail masks something in a request of several texts, each text that holds what it
# masked is checked again alone (so each gets its own masked version): at most this many, one call
# each. More is refused (a caller could otherwise make one request cost a call per message).
MAX_SEPARATE_CHECKS = 16
MASKING_LIMIT = "pii:masking_limit"
MASKING_FAILED = "pii:masking_failed"
# Contextual grounding checks at most this much source, query and response (characters).
GROUNDING_SOURCE_MAX = 100_000
GROUNDING_QUERY_MAX = 1_000
GROUNDING_RESPONSE_MAX = 5_000


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    intervened: bool
    texts: tuple[str, ...]  # what to use instead of the checked texts (masked, or the blocked message)
    reasons: tuple[str, ...]  # e.g. "topic", "pii:EMAIL", "content:HATE", "grounding:GROUNDING"
    # What the guardrail masked, each with its tag (shared.guardrail_findings.anonymized_matches):
    # a streamed answer masks them in every later piece too (ai_gateway.streaming).
    masked: Mapping[str, str] = field(default_factory=dict)

    def text(self, index: int = 0) -> str:
        return self.texts[index]


class Guard:
    def __init__(self, client: Any, *, guardrail_id: str, version: str) -> None:
        self._client = client
        self._id = guardrail_id
        self._version = version

    def check_input(self, texts: Sequence[str]) -> Verdict:
        """One call for all texts; when masked text comes back for several, each distinct text
        that holds something the guardrail masked is checked alone, so every text gets its own
        masked version (the common path stays one call). More than MAX_SEPARATE_CHECKS such texts
        is a blocked verdict (reason MASKING_LIMIT) naming how to send less.

        Masking fails closed: what the guardrail masked among the others is masked in a text that
        passes alone (its names and addresses are judged by their context), and a match that no
        text holds as it was reported makes every text be checked alone; when none of them is
        masked then, nothing says where the personal data is, and the request is refused
        (MASKING_FAILED)."""
        response = self._apply("INPUT", [_guarded(text) for text in texts])
        verdict = _verdict(response, texts)
        if verdict.blocked or not verdict.intervened or len(texts) == 1:
            return verdict
        masked = anonymized_matches(response.get("assessments", []))
        if masked is not None and not all(any(match in text for text in texts) for match in masked):
            masked = None  # reported in a form no text holds: only the texts checked alone tell where
        holding = list(dict.fromkeys(t for t in texts if masked is None or any(m in t for m in masked)))
        if len(holding) > MAX_SEPARATE_CHECKS:
            message = (
                f"personal data was found in {len(holding)} of the request's messages; at most "
                f"{MAX_SEPARATE_CHECKS} can be masked one by one: send fewer messages, or a session id "
                "so that turns already checked are not checked again"
            )
            return Verdict(blocked=True, intervened=True, texts=(message,), reasons=(*verdict.reasons, MASKING_LIMIT))
        singles = {text: _verdict(self._apply("INPUT", [_guarded(text)]), [text]) for text in holding}
        blocking = next((v for v in singles.values() if v.blocked), None)
        if blocking is not None:  # blocked alone what it passed with the others: its blocked message
            reasons = tuple(sorted({reason for v in singles.values() for reason in v.reasons}))
            return Verdict(blocked=True, intervened=True, texts=blocking.texts, reasons=reasons)
        reasons = tuple(sorted({*verdict.reasons, *(reason for v in singles.values() for reason in v.reasons)}))
        if masked is None and not any(v.intervened for v in singles.values()):
            message = (
                "personal data was found in the request's messages together but in none of them alone: "
                "send the personal data in one message, or without it"
            )
            return Verdict(blocked=True, intervened=True, texts=(message,), reasons=(*reasons, MASKING_FAILED))
        return Verdict(
            blocked=False,
            intervened=True,
            texts=tuple(mask(singles[text].text(), masked or {}) if text in singles else text for text in texts),
            reasons=reasons,
        )

    def check_output(self, text: str, *, source: str | None = None, query: str | None = None) -> Verdict:
        content: list[dict[str, Any]] = []
        groundable = (
            source is not None
            and query is not None
            and len(source) <= GROUNDING_SOURCE_MAX
            and len(text) <= GROUNDING_RESPONSE_MAX
        )
        if groundable and source is not None and query is not None:
            content.append({"text": {"text": source, "qualifiers": ["grounding_source"]}})
            content.append({"text": {"text": query[:GROUNDING_QUERY_MAX], "qualifiers": ["query"]}})
        content.append(_guarded(text))
        return _verdict(self._apply("OUTPUT", content), [text])

    def _apply(self, source: str, content: list[dict[str, Any]]) -> dict[str, Any]:
        with call(SERVICE):
            response: dict[str, Any] = self._client.apply_guardrail(
                guardrailIdentifier=self._id, guardrailVersion=self._version, source=source, content=content
            )
        return response


def unguarded(text: str) -> Verdict:
    """The verdict on a blank text (an answer cut at max_tokens after a newline), which is not
    sent: ApplyGuardrail refuses content without text, and whitespace has nothing to find."""
    return Verdict(blocked=False, intervened=False, texts=(text,), reasons=())


def mask(text: str, matches: Mapping[str, str]) -> str:
    """``text`` with each of the guardrail's matches still in it replaced by its tag, longest first
    (a text the guardrail passed alone keeps nothing it masked among the others): where it stands
    whole, not inside a longer word or number (a name "Li" is not masked in "Lima", an age "30" not
    in "300")."""
    for match in sorted(matches, key=len, reverse=True):
        before = r"(?<!\w)" if _word(match[:1]) else ""
        after = r"(?!\w)" if _word(match[-1:]) else ""
        text = re.sub(before + re.escape(match) + after, matches[match].replace("\\", "\\\\"), text)  # the tag as is
    return text


def _word(character: str) -> bool:
    return character.isalnum() or character == "_"


def _guarded(text: str) -> dict[str, Any]:
    return {"text": {"text": text, "qualifiers": ["guard_content"]}}


def _verdict(response: dict[str, Any], texts: Sequence[str]) -> Verdict:
    if response["action"] != "GUARDRAIL_INTERVENED":
        return Verdict(blocked=False, intervened=False, texts=tuple(texts), reasons=())
    actions = findings(response.get("assessments", []))
    blocked = any(action == "BLOCKED" for _, action in actions)
    outputs = tuple(output.get("text", "") for output in response.get("outputs", []))
    reasons = tuple(sorted({reason for reason, action in actions if action in ("BLOCKED", "ANONYMIZED")}))
    if blocked:
        return Verdict(blocked=True, intervened=True, texts=outputs[:1] or ("",), reasons=reasons)
    if len(texts) == 1:
        # Masked text for the one guarded block (AWS returns it whole in outputs).
        masked = anonymized_matches(response.get("assessments", [])) or {}
        return Verdict(blocked=False, intervened=True, texts=("".join(outputs),), reasons=reasons, masked=masked)
    return Verdict(blocked=False, intervened=True, texts=tuple(texts), reasons=reasons)  # split by the caller
