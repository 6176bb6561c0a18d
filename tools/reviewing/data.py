"""3. Data handling: encryption, retention, guardrail and PII settings, classifications, tool
bindings (Cedar permits)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.reviewing.changes import SHOW_CHARS, Change, ResourceDiff, compared_view, show
from tools.reviewing.losses import DATA_STORES, properties
from tools.reviewing.values import MISSING, at, render, text

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
# A policy's effect after its annotations (``@id("...")``), and its scope up to its action: bare
# ``action`` (every action), ``action in [...]`` or ``action == ...``.
_EFFECT = r'^(?:\s*@\w+\s*\((?:[^)"]|"[^"]*")*\))*\s*(?P<effect>\w+)\s*\('
_SCOPE_ACTION = re.compile(
    rf'(?P<lead>{_EFFECT}(?:[^,"]|"[^"]*")*,\s*)'
    r'(?P<action>action\b(?:\s*(?:in|==)\s*(?:\[[^\]]*\]|[\w:]*"[^"]*"))?)'
)
# Where AWS::BedrockAgentCore::Policy holds its statement: Definition is one of the two (its schema).
STATEMENT_PATHS = (("Definition", "Cedar", "Statement"), ("Definition", "Policy", "Statement"))


def cedar_statement(resource: Mapping[str, Any]) -> str:
    """A Cedar policy's statement as text ("" where it has none)."""
    for path in STATEMENT_PATHS:
        statement = at(properties(resource), path)
        if statement is not MISSING:
            return text(render(statement))
    return ""


def cedar_parts(resource: Mapping[str, Any]) -> tuple[str, str | None, list[str], str]:
    """(effect, group, actions, statement) of a Cedar policy (one group's permit names its tools)."""
    statement = cedar_statement(resource)
    group = _CEDAR_GROUP.search(statement)
    head = re.match(_EFFECT, statement)
    effect = head["effect"] if head else "policy"
    return effect, group[1] if group else None, _CEDAR_ACTION.findall(statement), statement


def names_no_action(statement: str) -> bool:
    """Whether a statement's scope leaves the action open (``permit(principal, action, resource)``):
    on the tools gateway, every tool."""
    scope = _SCOPE_ACTION.match(statement)
    return scope is not None and scope["action"] == "action"


def _without_tools(statement: str) -> str:
    """A statement with its scope's action written as ``action …``: what it says beyond its tools."""
    return _SCOPE_ACTION.sub(lambda scope: scope["lead"] + "action …", statement, count=1)


def opens_every_tool(diff: ResourceDiff) -> bool:
    """A Cedar permit, added or changed, that now permits every tool on the gateway (its scope names
    no action), where before it named its tools or was not there."""
    if diff.type != CEDAR_POLICY or diff.status not in ("added", "modified"):
        return False
    effect, _, _, statement = cedar_parts(diff.new)
    return effect == "permit" and names_no_action(statement) and not names_no_action(cedar_statement(diff.old))


def _tools(actions: Sequence[str]) -> str:
    return ", ".join(f"`{action}`" for action in actions)


EVERY_TOOL = "every tool on the gateway"


def cedar_summary(resource: Mapping[str, Any]) -> str:
    """``permit `orders___find_orders`, `orders___get_order` to group `customer-gold``` (or the
    statement on one line)."""
    effect, group, actions, statement = cedar_parts(resource)
    if group and names_no_action(statement):
        return f"{effect} {EVERY_TOOL} to group `{group}`"
    if actions and group:
        return f"{effect} {_tools(actions)} to group `{group}`"
    return f"`{' '.join(statement.split())[: SHOW_CHARS * 2]}`"


def cedar_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """What a group's changed permit now allows more or less: ``permit group `customer-gold`: +`a`; -`b```,
    or every tool on the gateway in place of the ones it named (and back); None when its group or
    nothing about its tools changed."""
    effect, group, after, statement = cedar_parts(new)
    _, before_group, before, old_statement = cedar_parts(old)
    if group is None or group != before_group:
        return None
    every_now, every_before = names_no_action(statement), names_no_action(old_statement)
    if every_now != every_before:
        now, was = (EVERY_TOOL, _tools(before) or "no tool") if every_now else (_tools(after) or "no tool", EVERY_TOOL)
        return f"{effect} group `{group}`: {now} (was {was})"
    added = [a for a in after if a not in before]
    removed = [a for a in before if a not in after]
    parts = [*(f"+{_tools([a])}" for a in added), *(f"−{_tools([a])}" for a in removed)]
    return f"{effect} group `{group}`: {'; '.join(parts)}" if parts else None


def _beyond_tools(diff: ResourceDiff) -> list[Change]:
    """A changed policy's changes other than its tools and its DependsOn: its statement compared with
    the scope's action left out, and its other properties."""
    found = []
    for change in diff.changes:
        if change.path[:1] == ("DependsOn",):
            continue
        if change.path[-1:] == ("Statement",) and isinstance(change.old, str) and isinstance(change.new, str):
            change = Change(change.path, _without_tools(change.old), _without_tools(change.new))
            if change.old == change.new:
                continue
        found.append(change)
    return found


@dataclass
class DataHandling:
    permits: list[str] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)
    rechained: list[str] = field(default_factory=list)  # Cedar policies whose only change is DependsOn


def _cedar_lines(diff: ResourceDiff, out: DataHandling) -> None:
    mark = " **loosens**" if opens_every_tool(diff) else ""
    if diff.status != "modified":
        sign = "+" if diff.status == "added" else "−"
        out.permits.append(f"{sign} {cedar_summary(diff.new or diff.old)} ({diff.stack}, `{diff.logical_id}`){mark}")
    elif all(change.path[:1] == ("DependsOn",) for change in diff.changes):
        out.rechained.append(diff.key)
    else:
        tools = cedar_change(diff.old, diff.new)
        if tools is None:
            changes = [c for c in diff.changes if c.path[:1] != ("DependsOn",)]
            change = cedar_summary(diff.new) + ": " + "; ".join(line for c in changes for line in c.lines())
        else:
            # The tools said as names; anything else that changed with them (a widened condition) as well.
            change = "; ".join([tools, *(line for c in _beyond_tools(diff) for line in c.lines())])
        out.permits.append(f"~ {change} ({diff.stack}, `{diff.logical_id}`){mark}")


def _new_store_line(diff: ResourceDiff) -> str:
    whole = Change((), MISSING, compared_view(diff.new))
    settings = [c for c in whole.leaves() if DATA_PATH.search(" ".join(c.path)) and "Tags" not in c.path]
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
                    out.settings += [f"{diff.stack}: {diff}: {line}" for line in change.lines()]
    return out
