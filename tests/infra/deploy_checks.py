"""Checks on synthesized templates for failures that only show on AWS: ordering, retry, replacement.

CloudFormation's own resource schemas (as cfn-lint ships them) say which properties a resource is
created with and can only change by replacement (``createOnlyProperties``) and which property is
its physical name (``primaryIdentifier``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

Template = dict[str, Any]
REGION = "us-east-1"


@cache
def schema(type_: str) -> dict[str, Any]:
    if type_.startswith("Custom::") or type_ == "AWS::CloudFormation::CustomResource":
        return {}
    return dict(PROVIDER_SCHEMA_MANAGER.get_resource_schema(REGION, type_).schema)


def _property_paths(type_: str, key: str) -> list[list[str]]:
    return [p.removeprefix("/properties/").split("/") for p in schema(type_).get(key, [])]


def _at(properties: Mapping[str, Any], path: list[str]) -> Any:
    value: Any = properties
    for part in path:
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def references(value: Any) -> set[str]:
    """Logical ids a value refers to (Ref, GetAtt, and ${Name} in Fn::Sub), in its own template."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str) and not value["Ref"].startswith("AWS::"):
            found.add(value["Ref"])
        elif "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            found.add(target[0] if isinstance(target, list) else str(target).split(".")[0])
        for item in value.values():
            found |= references(item)
    elif isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def depends_on(resource: Mapping[str, Any]) -> set[str]:
    value = resource.get("DependsOn", [])
    return {value} if isinstance(value, str) else set(value)


def dependency_closure(template: Template, logical_id: str) -> set[str]:
    """Everything CloudFormation creates before ``logical_id``: references and DependsOn, transitively."""
    resources = template["Resources"]
    seen: set[str] = set()
    pending = [logical_id]
    while pending:
        current = pending.pop()
        resource = resources.get(current)
        if resource is None:
            continue
        for nxt in references(resource.get("Properties", {})) | depends_on(resource):
            if nxt in resources and nxt not in seen:
                seen.add(nxt)
                pending.append(nxt)
    return seen


# Policies of the template that attach themselves to roles (their Roles property): a role that
# names a managed policy in ManagedPolicyArns is created after it, so only these can race.
ATTACHED_POLICIES = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


def role_policies(template: Template, role: str) -> set[str]:
    """The policies attached to ``role`` by their own Roles property (inline and managed)."""
    return {
        name
        for name, resource in template["Resources"].items()
        if resource["Type"] in ATTACHED_POLICIES and {"Ref": role} in resource["Properties"].get("Roles", [])
    }


@dataclass(frozen=True)
class Race:
    stack: str
    resource: str
    policy: str
    role: str

    def __str__(self) -> str:
        return (
            f"{self.stack}/{self.resource} can be created before {self.policy}, the policy of the role "
            f"{self.role} it uses"
        )


def roles_used(template: Template, logical_id: str) -> set[str]:
    """Roles a resource uses: referenced from its properties, and, for a custom resource, the roles of
    the functions it runs (its service token, and any function that function names)."""
    resources = template["Resources"]
    resource = resources[logical_id]
    found = {
        r for r in references(resource.get("Properties", {})) if resources.get(r, {}).get("Type") == "AWS::IAM::Role"
    }
    if resource["Type"] == "AWS::Lambda::EventSourceMapping":
        # Lambda checks, when the mapping is created, that the function's role may read the queue.
        for function in references(resource["Properties"].get("FunctionName", {})):
            found |= references(resources[function]["Properties"].get("Role", {}))
    if resource["Type"].startswith("Custom::") or resource["Type"] == "AWS::CloudFormation::CustomResource":
        functions = {
            r for r in references(resource["Properties"]) if resources.get(r, {}).get("Type") == "AWS::Lambda::Function"
        }
        while functions:
            function = functions.pop()
            props = resources[function]["Properties"]
            found |= {r for r in references(props.get("Role", {})) if resources[r]["Type"] == "AWS::IAM::Role"}
            # The Provider framework's function names the function it runs in its environment.
            functions |= {
                r
                for r in references(props.get("Environment", {}))
                if resources.get(r, {}).get("Type") == "AWS::Lambda::Function"
            }
    return found


def races(templates: Mapping[str, Template], *, exempt: Mapping[str, str]) -> Iterator[Race]:
    """Resources that use a role (a service checks the role when the resource is created, or a
    custom resource runs with it) but may be created before that role's policies exist.
    IAM resources are not users; ``exempt`` types (with a reason) are not checked."""
    for stack, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            type_ = resource["Type"]
            if type_.startswith("AWS::IAM::") or type_ in exempt:
                continue
            before = dependency_closure(template, logical_id)
            for role in roles_used(template, logical_id):
                for policy in sorted(role_policies(template, role) - before):
                    yield Race(stack, logical_id, policy, role)


# --- retained names -----------------------------------------------------------------------------


def physical_name(type_: str, properties: Mapping[str, Any]) -> str | None:
    """The property that names a resource in its account, when the template sets it."""
    for path in _property_paths(type_, "primaryIdentifier"):
        if len(path) == 1 and path[0] in properties:
            return path[0]
    return None


def retained_with_names(templates: Mapping[str, Template]) -> Iterator[str]:
    """Resources kept on delete *and* on a rolled-back create, whose name a retry would reuse."""
    for stack, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            if resource.get("DeletionPolicy") != "Retain":
                continue
            name = physical_name(resource["Type"], resource.get("Properties", {}))
            if name is not None:
                yield f"{stack}/{logical_id} ({resource['Type']}) keeps {name} through a rolled-back create"


# --- replacement ------------------------------------------------------------------------------


def _create_only(type_: str, properties: Mapping[str, Any]) -> list[Any]:
    return [_at(properties, path) for path in _property_paths(type_, "createOnlyProperties")]


def replaced(before: Template, after: Template) -> set[str]:
    """Logical ids present in both templates that CloudFormation would replace: a create-only
    property changed, or refers to a resource that is itself replaced (the fixpoint)."""
    old, new = before["Resources"], after["Resources"]
    common = [n for n in old if n in new and old[n]["Type"] == new[n]["Type"]]
    found = {
        n
        for n in common
        if _create_only(old[n]["Type"], old[n].get("Properties", {}))
        != _create_only(new[n]["Type"], new[n].get("Properties", {}))
    }
    # A logical id that is gone was replaced by another one: whatever names it changes too.
    changed = found | (set(old) - set(new))
    while True:
        more = {
            n
            for n in common
            if n not in found and references(_create_only(new[n]["Type"], new[n].get("Properties", {}))) & changed
        }
        if not more:
            return found
        found |= more
        changed |= more


def published(template: Template) -> set[str]:
    """Logical ids another stack reads (CDK's Publish/Output… outputs for cross-stack references)."""
    return {
        r
        for name, output in template.get("Outputs", {}).items()
        if name.startswith("PublishOutput")
        for r in references(output["Value"])
    }


# Names unique only within another resource: a kept name is no clash when that one changed too.
SCOPED_NAMES = {"AWS::Bedrock::DataSource": "KnowledgeBaseId"}


def named_properties(properties: Mapping[str, Any], path: str = "") -> dict[str, Any]:
    """Name-like properties (``Name``, ``…Name``) a resource is created with, nested ones too
    (a budget's ``Budget.BudgetName``), by their dotted paths."""
    names: dict[str, Any] = {}
    for key, value in properties.items():
        if key == "Name" or key.endswith("Name"):
            names[f"{path}{key}"] = value
        elif isinstance(value, Mapping) and not any(k.startswith("Fn::") or k == "Ref" for k in value):
            names.update(named_properties(value, f"{path}{key}."))
    return names


def stale_replacements(before: Mapping[str, Template], after: Mapping[str, Template]) -> Iterator[str]:
    """What a replacing change would break: a resource replaced under its old logical id that
    another stack reads (the consumer keeps the old value: weak references resolve only when the
    consumer updates), or that keeps its name (the new one is created beside the old: a clash)."""
    for stack, template in after.items():
        if stack not in before:
            continue
        old = before[stack]
        for logical_id in sorted(replaced(old, template)):
            resource = template["Resources"][logical_id]
            if logical_id in published(template):
                yield f"{stack}/{logical_id} is replaced in place, and other stacks read it"
            properties, was = resource.get("Properties", {}), old["Resources"][logical_id]["Properties"]
            scope = SCOPED_NAMES.get(resource["Type"])
            if scope is not None and properties.get(scope) != was.get(scope):
                continue  # a new parent: the same name is free there
            names, old_names = named_properties(properties), named_properties(was)
            kept = {k for k, v in names.items() if old_names.get(k) == v}
            if kept:
                yield f"{stack}/{logical_id} is replaced but keeps its {', '.join(sorted(kept))}"
