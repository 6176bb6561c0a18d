"""2. Replacements and removals: create-only properties (the CloudFormation schemas cfn-lint
ships), cascades, and what a data store loses."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cfnlint

from tools.reviewing.changes import ResourceDiff
from tools.reviewing.values import KeyPath, Template, at, references, render, text

# The region whose CloudFormation schemas decide what is create-only (the app's region).
SCHEMA_REGION = "us-east-1"


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
def schema(resource_type: str) -> Mapping[str, Any]:
    """A resource type's CloudFormation schema, as cfn-lint ships it ({} for a type it lacks)."""
    schemas = Path(cfnlint.__file__).parent / "data" / "schemas"
    providers = json.loads((schemas / "providers" / f"{SCHEMA_REGION}.json").read_text())
    name = providers.get(resource_type)
    if not isinstance(name, str) or not (schemas / "resources" / f"{name}.json").is_file():
        return {}
    loaded: Mapping[str, Any] = json.loads((schemas / "resources" / f"{name}.json").read_text())
    return loaded


@functools.cache
def create_only(resource_type: str) -> tuple[KeyPath, ...]:
    """The properties whose change replaces a resource, from the CloudFormation schemas cfn-lint ships."""
    declared = schema(resource_type).get("createOnlyProperties", [])
    paths = (p.removeprefix("/properties/").split("/*")[0] for p in declared)
    return tuple(dict.fromkeys(tuple(p.split("/")) for p in paths if p))


def _resolved(node: Any, whole: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema node with its ``$ref`` (within the schema) followed; {} for what is not one."""
    for _ in range(32):  # a chain of references, never a loop
        if not isinstance(node, dict) or not isinstance(node.get("$ref"), str):
            break
        node = at(whole, tuple(node["$ref"].removeprefix("#/").split("/")))
    return node if isinstance(node, dict) else {}


def canonical(value: Any, node: Any, whole: Mapping[str, Any]) -> Any:
    """``value`` with every list its schema declares unordered (``insertionOrder: false``) sorted:
    CloudFormation ignores their order, so a reordering neither updates nor replaces anything."""
    node = _resolved(node, whole)
    if isinstance(value, list):
        items = [canonical(item, node.get("items"), whole) for item in value]
        return sorted(items, key=text) if node.get("insertionOrder") is False else items
    if isinstance(value, dict):
        members = node.get("properties")
        members = members if isinstance(members, dict) else {}
        return {key: canonical(item, members.get(key), whole) for key, item in value.items()}
    return value


def _property(resource_type: str, path: KeyPath) -> Any:
    """The schema node of the property at ``path`` (None where the schema does not describe it)."""
    whole = schema(resource_type)
    node: Any = {"properties": whole.get("properties", {})}
    for part in path:
        members = _resolved(node, whole).get("properties")
        node = members.get(part) if isinstance(members, dict) else None
    return node


def properties(resource: Mapping[str, Any]) -> Any:
    return resource.get("Properties", {})


def direct_replacement(diff: ResourceDiff) -> list[str]:
    if diff.old.get("Type") != diff.new.get("Type"):
        return ["its type changed"]
    whole = schema(diff.type)

    def value(resource: Mapping[str, Any], path: KeyPath) -> Any:
        return canonical(render(at(properties(resource), path)), _property(diff.type, path), whole)

    return [
        f"`{'.'.join(path)}` changed (create-only)"
        for path in create_only(diff.type)
        if value(diff.old, path) != value(diff.new, path)
    ]


def cascaded_replacement(diff: ResourceDiff, replaced: set[str]) -> list[str]:
    reasons = []
    for path in create_only(diff.type):
        refs = references(at(properties(diff.new), path)) & replaced
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


@dataclass(frozen=True)
class StaleRead:
    """A stack reading, through a weak reference (``Fn::GetStackOutput``), an output of a resource
    replaced under the same logical id: the output keeps its name and changes its value, and the
    reader resolves it only when it is itself created or updated."""

    loss: Loss
    output: str
    reader: str
    reader_changes: bool  # the reader's template changes too, so the same deploy updates it

    def describe(self) -> str:
        subject = f"{self.loss.diff} in {self.loss.diff.stack}, replaced under the same logical id,"
        read = f"is read by {self.reader} (output `{self.output}`)"
        if self.reader_changes:
            return (
                f"{subject} {read}: that stack reads the new one when it updates after it in the same "
                "deploy, and the deleted one until then"
            )
        return (
            f"{subject} {read}, **which does not change: `cdk deploy` skips it and it keeps reading the "
            "deleted one** until it is deployed with a change (ADR 0009: replace under a new logical id)"
        )


def weak_reads(value: Any) -> Iterator[tuple[str, str]]:
    """(stack, output) of every ``Fn::GetStackOutput`` in a template value."""
    if isinstance(value, dict):
        target = value.get("Fn::GetStackOutput")
        if isinstance(target, dict) and isinstance(target.get("StackName"), str):
            yield target["StackName"], str(target.get("OutputName"))
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            yield from weak_reads(item)


def stale_reads(templates: Mapping[str, Template], found: Iterable[Loss], changing: set[str]) -> list[StaleRead]:
    """Reads of replaced resources' outputs by other stacks (``templates``: the app after the change,
    by stack name; ``changing``: the stacks whose templates change)."""
    in_place = {(x.diff.stack, x.diff.logical_id): x for x in found if x.replaced and x.diff.status != "removed"}
    outputs = {
        (stack, name): loss
        for stack, template in templates.items()
        for name, output in template.get("Outputs", {}).items()
        for logical_id in references(output.get("Value"))
        if (loss := in_place.get((stack, logical_id)))
    }
    reads = {(reader, stack, name) for reader, t in templates.items() for stack, name in weak_reads(t)}
    return [
        StaleRead(outputs[(stack, name)], name, reader, reader in changing)
        for reader, stack, name in sorted(reads)
        if (stack, name) in outputs and reader != stack
    ]
