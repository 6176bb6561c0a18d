"""Small readers for synthesized CloudFormation templates, so assertions read like the policy."""

from __future__ import annotations

import json
import re
from typing import Any

Template = dict[str, Any]
_HASH = re.compile(r"[0-9A-F]{8}$")


def resources(template: Template, type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def only(template: Template, type_: str, prefix: str = "") -> tuple[str, dict[str, Any]]:
    """The single resource of ``type_`` whose logical id starts with ``prefix``."""
    matches = [(n, r) for n, r in resources(template, type_).items() if n.startswith(prefix)]
    assert len(matches) == 1, f"expected one {type_} named {prefix}*, found {[n for n, _ in matches]}"
    return matches[0]


def name_of(template: Template, type_: str, prefix: str = "") -> str:
    """The single resource's logical id as ``render`` writes it (no hash): for resources whose id
    carries a generation (stacks/shared/naming.py), such as the Knowledge Base."""
    return _strip(only(template, type_, prefix)[0])


def props(template: Template, type_: str, prefix: str = "") -> dict[str, Any]:
    properties: dict[str, Any] = only(template, type_, prefix)[1]["Properties"]
    return properties


def render(value: Any) -> Any:
    """Intrinsics as readable strings: <Logical.Attr>, <Logical>, joins concatenated.

    Logical ids lose CDK's 8-character hash suffix, so "Documents7E5B2978" reads "Documents".
    """
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return f"<{_strip(arg)}>"
        if key == "Fn::GetAtt":
            return f"<{_strip(arg[0])}.{arg[1]}>"
        if key == "Fn::Join":
            return arg[0].join(str(render(part)) for part in arg[1])
    if isinstance(value, list):
        return [render(item) for item in value]
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    return value


def resolved(value: Any, templates: dict[str, Template]) -> Any:
    """``render`` with each cross-stack reference replaced by what the producing stack's output
    holds, as <stack:Logical>: so a reference reads as the resource it names."""
    if isinstance(value, dict) and list(value) == ["Fn::GetStackOutput"]:
        reference = value["Fn::GetStackOutput"]
        output = templates[reference["StackName"]]["Outputs"][reference["OutputName"]]["Value"]
        return f"<{reference['StackName']}:{str(render(output)).strip('<>')}>"
    if isinstance(value, dict) and list(value) == ["Fn::Join"]:
        separator, parts = value["Fn::Join"]
        return separator.join(str(resolved(part, templates)) for part in parts)
    return render(value)


def _strip(logical_id: str) -> str:
    return logical_id if logical_id.startswith("AWS::") else _HASH.sub("", logical_id)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_permissions(template: Template, role_prefix: str) -> set[tuple[str, str]]:
    """Every (action, resource) pair the role's attached policies allow, rendered."""
    role_id, _ = only(template, "AWS::IAM::Role", role_prefix)
    pairs: set[tuple[str, str]] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"].get("Roles", []):
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in _as_list(statement["Action"]):
                for resource in _as_list(statement["Resource"]):
                    pairs.add((action, str(render(resource))))
    return pairs


def trust(template: Template, role_prefix: str) -> list[dict[str, Any]]:
    statements: list[dict[str, Any]] = render(
        only(template, "AWS::IAM::Role", role_prefix)[1]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    )
    return statements


def runtime_document(template: Template, name: str) -> tuple[Any, dict[str, Any]]:
    """A runtime document the stack deploys to AppConfig (stacks/shared/runtime_config.py): its
    content (JSON parsed; deploy-time values rendered as ``render`` writes them) and its validator's
    JSON schema, by the profile's name ("<environment>-<document>")."""
    profiles = [
        (logical, p["Properties"])
        for logical, p in resources(template, "AWS::AppConfig::ConfigurationProfile").items()
        if p["Properties"]["Name"] == name
    ]
    assert len(profiles) == 1, f"expected one AppConfig profile named {name}"
    logical, profile = profiles[0]
    (version,) = [
        v["Properties"]
        for v in resources(template, "AWS::AppConfig::HostedConfigurationVersion").values()
        if v["Properties"]["ConfigurationProfileId"] == {"Ref": logical}
    ]
    content = render(version["Content"])
    (validator,) = profile["Validators"]
    assert validator["Type"] == "JSON_SCHEMA"
    return json.loads(content), json.loads(validator["Content"])
