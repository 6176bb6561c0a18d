"""1. Access: IAM statements and security-group rules, exploded so a widened action is a new
grant, and authentication settings that let more callers in."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import product
from typing import Any

from tools.reviewing.changes import Change, ResourceDiff, compared_view
from tools.reviewing.data import opens_every_tool
from tools.reviewing.values import MISSING, KeyPath, Template, as_json, render, text


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
# What section 1 shows of a policy statement (its grants: who, what, on what, under which condition)
# and of a security-group rule; a statement's Sid, its document's Version, a rule's description are not.
STATEMENT_KEYS = {"Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
PEERS = ("CidrIp", "CidrIpv6", "SourceSecurityGroupId", "DestinationSecurityGroupId", "SourcePrefixListId")
RULE_KEYS = {"IpProtocol", "FromPort", "ToPort", *PEERS, "DestinationPrefixListId"}
RULE_TYPES = ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress")
# What a Lambda permission grants; each of its other properties (source ARN or account, organisation,
# function URL auth type, InvokedViaFunctionUrl, an event source's token) limits the grant: its condition.
PERMISSION_GRANT = ("Action", "FunctionName", "Principal")


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
    condition = text(_as_sets(render(statement["Condition"]))) if statement.get("Condition") else ""
    effect = str(statement.get("Effect", "Allow"))
    for who, action, what in product(_principals(statement) or principals, actions, resources):
        yield effect, who, action, what, condition


def _as_sets(value: Any) -> Any:
    """A condition with each list of values in one order: IAM reads them as sets."""
    if isinstance(value, list):
        return sorted((_as_sets(item) for item in value), key=text)
    if isinstance(value, dict):
        return {key: _as_sets(item) for key, item in value.items()}
    return value


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
    condition = {key: render(value) for key, value in props.items() if key not in PERMISSION_GRANT}
    resource = text(render(props.get("FunctionName")))
    yield "Allow", f"{kind}:{principal}", str(props.get("Action")), resource, text(condition) if condition else ""


def _resource_policy_grants(logical_id: str, props: Mapping[str, Any]) -> Exploded:
    # Rendered first: a policy CDK writes as an Fn::Join of JSON and tokens is text once rendered.
    for document in _documents(render(props)):
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
    peer = next((f"{k}={text(render(rule[k]))}" for k in (*PEERS, "DestinationPrefixListId") if k in rule), "?")
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
        elif kind in RULE_TYPES:
            direction = kind.removeprefix("AWS::EC2::SecurityGroup")
            found.setdefault(_rule(stack, direction, text(render(props.get("GroupId"))), props), logical_id)
    return found


def shown_as_access(kind: str, path: KeyPath) -> bool:
    """Whether section 1 shows a resource's change at ``path`` (a leaf value's): a part of a policy
    statement that makes its grants, a role's managed policy, any property of a Lambda permission (its
    grant and the grant's condition), a security-group rule's protocol, ports or peer."""
    props = path[1:] if path[:1] == ("Properties",) else ()
    if kind == "AWS::Lambda::Permission":
        return bool(props)
    if kind == "AWS::IAM::Role" and props[:1] == ("ManagedPolicyArns",):
        return True
    if kind in RULE_TYPES:
        return bool(props) and props[0] in {"GroupId", *RULE_KEYS}
    if kind == "AWS::EC2::SecurityGroup" and props[:1] in (("SecurityGroupIngress",), ("SecurityGroupEgress",)):
        return len(props) > 2 and props[2] in RULE_KEYS
    if "Statement" not in path:
        return False
    rest = path[path.index("Statement") + 1 :]
    rest = rest[1:] if rest[:1] and rest[0].startswith("[") else rest  # the statement, in a list of them
    return bool(rest) and rest[0] in STATEMENT_KEYS


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


def auth_changes(diff: ResourceDiff) -> list[Change]:
    """A resource's changes of authentication settings: a modified resource's, and each property of
    an added one, from absent (a new method without authorization lets callers in as much as a
    method changed to none). A removed resource's settings go with it."""
    if diff.status == "added":
        props = compared_view(diff.new).get("Properties")
        items = props.items() if isinstance(props, dict) else ()
        changes = [Change(("Properties", key), MISSING, value) for key, value in items]
    else:
        changes = list(diff.changes)
    return [change for change in changes if AUTH_PATH.search(" ".join(change.path))]


def loosened(diff: ResourceDiff) -> bool:
    """Whether a resource's change lets more callers in: an authentication setting that loosens, or
    a Cedar permit opened to every tool on the gateway."""
    return any(loosens(change) for change in auth_changes(diff)) or opens_every_tool(diff)


def loosens(change: Change) -> bool:
    """An authentication setting that lets more callers in: a token authorizer where there was
    IAM (an AgentCore runtime taking user JWTs), no authorization on a method, a Function URL or
    the AgentCore tools gateway (its AuthorizerType), an API key no longer required, more allowed
    clients or audiences."""
    path = change.path[1:] if change.path[:1] == ("Properties",) else change.path
    where, old, new = " ".join(map(str, path)).lower(), change.old, change.new
    if where.endswith(("allowedclients", "allowedaudience")):
        return isinstance(new, list) and not set(map(str, new)) <= set(map(str, old if isinstance(old, list) else []))
    if where.endswith(("authorizationtype", "authtype", "authorizertype")):
        return str(new).upper() == "NONE"
    if where.endswith("apikeyrequired"):
        return old is True and new is not True
    if where == "authorizerconfiguration":
        return old is MISSING or old is None  # IAM (no authorizer) before, a token authorizer now
    return False
