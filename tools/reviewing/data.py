"""3. Data handling: encryption, retention, guardrail and PII settings, classifications, tool
bindings (Cedar permits)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.reviewing.changes import SHOW_CHARS, Change, ResourceDiff, compared_view, show
from tools.reviewing.losses import DATA_STORES, properties
from tools.reviewing.values import MISSING, KeyPath, at, render, text

CEDAR_POLICY = "AWS::BedrockAgentCore::Policy"
# Resource types whose every setting is about data handling.
DATA_TYPES = {
    "AWS::Bedrock::Guardrail",
    "AWS::KMS::Key",
    "AWS::Macie::CustomDataIdentifier",
    "AWS::Macie::AllowList",
    "AWS::Macie::FindingsFilter",
    "AWS::BedrockAgentCore::GatewayTarget",
}
# Property paths (anywhere, environment variables and JSON keys included) about data handling.
DATA_PATH = re.compile(
    r"encrypt|kms|sse|retention|deletionpolicy|updatereplacepolicy|pointintimerecovery|deletionprotection|"
    r"versioning|lifecycle|publicaccess|classification|pii|sensitive|tool_binding|expir|datadeletion|"
    r"keyrotation|pendingwindow|guardrail|capture|tls",
    re.IGNORECASE,
)


def is_data_handling(diff: ResourceDiff, change: Change) -> bool:
    if change.path[:2] in (("Properties", "Tags"), ("Properties", "Description")):
        return False
    return diff.type in DATA_TYPES or bool(DATA_PATH.search(" ".join(change.path)))


_CEDAR_ACTION = re.compile(r'Action::"([^"]+)"')
_CEDAR_GROUP = re.compile(r'getTag\("gateway_group"\)\s*==\s*"([^"]+)"')


def cedar_parts(resource: Mapping[str, Any]) -> tuple[str, str | None, list[str], str]:
    """(effect, group, actions, statement) of a Cedar policy (one group's permit names its tools)."""
    statement = text(render(at(properties(resource), ("Definition", "Cedar", "Statement"))))
    group = _CEDAR_GROUP.search(statement)
    effect = statement.split("(", 1)[0].strip() or "policy"
    return effect, group[1] if group else None, _CEDAR_ACTION.findall(statement), statement


def _tools(actions: Sequence[str]) -> str:
    return ", ".join(f"`{action}`" for action in actions)


def cedar_summary(resource: Mapping[str, Any]) -> str:
    """``permit `orders___find_orders`, `orders___get_order` to group `customer-gold``` (or the
    statement on one line)."""
    effect, group, actions, statement = cedar_parts(resource)
    if actions and group:
        return f"{effect} {_tools(actions)} to group `{group}`"
    return f"`{' '.join(statement.split())[: SHOW_CHARS * 2]}`"


def cedar_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """What a group's changed permit now allows more or less: ``permit `customer-gold` +`a`; -`b```."""
    effect, group, after, _ = cedar_parts(new)
    _, before_group, before, _ = cedar_parts(old)
    if group is None or group != before_group:
        return None
    added = [a for a in after if a not in before]
    removed = [a for a in before if a not in after]
    parts = [*(f"+{_tools([a])}" for a in added), *(f"−{_tools([a])}" for a in removed)]
    return f"{effect} group `{group}`: {'; '.join(parts)}" if parts else None


def _leaves(value: Any, path: KeyPath = ()) -> Iterator[Change]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    else:
        yield Change(path, MISSING, value)


@dataclass
class DataHandling:
    permits: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    rechained: list[str] = field(default_factory=list)  # Cedar policies whose only change is DependsOn


def _cedar_lines(diff: ResourceDiff, out: DataHandling) -> None:
    if diff.status != "modified":
        sign = "+" if diff.status == "added" else "−"
        out.permits.append(f"{sign} {cedar_summary(diff.new or diff.old)} ({diff.stack}, `{diff.logical_id}`)")
    elif all(change.path[:1] == ("DependsOn",) for change in diff.changes):
        out.rechained.append(diff.key)
    else:
        change = cedar_change(diff.old, diff.new)
        if change is None:
            change = (
                cedar_summary(diff.new)
                + ": "
                + "; ".join(c.describe() for c in diff.changes if c.path[:1] != ("DependsOn",))
            )
        out.permits.append(f"~ {change} ({diff.stack}, `{diff.logical_id}`)")


def _new_store_line(diff: ResourceDiff) -> str:
    settings = [
        c for c in _leaves(compared_view(diff.new)) if DATA_PATH.search(" ".join(c.path)) and "Tags" not in c.path
    ]
    shown = "; ".join(f"`{c.where}` = {show(c.new)}" for c in settings) or "no encryption or retention settings"
    return f"{diff.stack}: new {diff}: {shown}"


def data_handling(diffs: Sequence[ResourceDiff]) -> DataHandling:
    out = DataHandling()
    for diff in diffs:
        if diff.type == CEDAR_POLICY:
            _cedar_lines(diff, out)
        elif diff.status == "added" and (diff.type in DATA_STORES or diff.type in DATA_TYPES):
            out.settings.append(_new_store_line(diff))
        elif diff.status == "removed" and diff.type in DATA_TYPES:
            out.settings.append(f"{diff.stack}: removed {diff}")
        else:
            for change in diff.changes:
                if is_data_handling(diff, change):
                    out.settings.append(f"{diff.stack}: {diff}: {change.describe()}")
    return out
