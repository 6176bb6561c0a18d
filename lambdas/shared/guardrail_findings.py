"""What an ApplyGuardrail answer found: one (finding, action) pair per finding of every policy of
every assessment, e.g. ("pii:EMAIL", "ANONYMIZED"), ("content:PROMPT_ATTACK", "BLOCKED"). The AI
gateway's guard and the web tools' guard read answers through it. Names carry the policy and,
where the policy has them, the finding's type: never the matched text (only
:func:`anonymized_matches` returns that, to find which texts hold it; it is never logged)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def findings(assessments: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(finding, action) for every finding in the assessments, in the answer's order."""
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


def anonymized_matches(assessments: Iterable[Mapping[str, Any]]) -> dict[str, str] | None:
    """The texts the guardrail anonymized (its PII entities' and regexes' matches), each with the
    tag it masks them with (``{EMAIL}``, ``{<regex name>}``), or None when one of them comes
    without its match: then any text may hold it."""
    matches: dict[str, str] = {}
    for assessment in assessments:
        sensitive = assessment.get("sensitiveInformationPolicy", {})
        for kind, items in (("type", sensitive.get("piiEntities", [])), ("name", sensitive.get("regexes", []))):
            for item in items:
                if item.get("action") != "ANONYMIZED":
                    continue
                match = item.get("match")
                if not isinstance(match, str) or not match:
                    return None
                matches.setdefault(match, f"{{{item.get(kind) or 'PII'}}}")
    return matches
