"""SnapStart (api.snap_start): on, exactly the gateway function and its authorizer resume from
snapshots of a published version, and API Gateway invokes each through its alias ``live``, never
$LATEST; off (a second synth of the app with the switch off), none of it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stacks.shared.lambda_function import LIVE_ALIAS
from tests.infra.conftest import STACK_SUFFIXES, Synthesizer

SNAPSTART = {"ApplyOn": "PublishedVersions"}
SNAPSHOTTED = ("GatewayFunction", "AuthorizerFunction")  # construct ids; logical ids start with them


def _of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def _function(template: dict[str, Any], construct_id: str) -> str:
    """The logical id of the gateway stack's function with that construct id."""
    (name,) = [
        name
        for name in _of_type(template, "AWS::Lambda::Function")
        if name.startswith(construct_id) and not name.startswith(f"{construct_id}Live")
    ]
    return name


def _alias(template: dict[str, Any], function: str) -> str:
    (name,) = [
        name
        for name, r in _of_type(template, "AWS::Lambda::Alias").items()
        if r["Properties"]["FunctionName"] == {"Ref": function}
    ]
    return name


def _refs(value: Any) -> set[str]:
    """Every logical id a property refers to (Ref or Fn::GetAtt), at any depth."""
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return {value["Ref"]}
        if set(value) == {"Fn::GetAtt"}:
            return {value["Fn::GetAtt"][0]}
        return set().union(*(_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()


def _buffered_integrations(template: dict[str, Any]) -> list[dict[str, Any]]:
    """The API's Lambda proxy integrations that API Gateway buffers (not STREAM)."""
    return [
        m["Properties"]["Integration"]
        for m in _of_type(template, "AWS::ApiGateway::Method").values()
        if m["Properties"].get("Integration", {}).get("Type") == "AWS_PROXY"
        and m["Properties"]["Integration"].get("ResponseTransferMode") != "STREAM"
    ]


def test_exactly_the_gateway_function_and_the_authorizer_have_snapstart(assembly: Any, gateway: dict[str, Any]) -> None:
    with_snapstart = {
        (stack, name)
        for stack, template in assembly.templates.items()
        for name, r in _of_type(template, "AWS::Lambda::Function").items()
        if "SnapStart" in r["Properties"]
    }
    stack = next(n for n in assembly.templates if n.endswith(STACK_SUFFIXES["gateway"]))
    assert with_snapstart == {(stack, _function(gateway, construct_id)) for construct_id in SNAPSHOTTED}
    for construct_id in SNAPSHOTTED:
        properties = gateway["Resources"][_function(gateway, construct_id)]["Properties"]
        assert properties["SnapStart"] == SNAPSTART
        # What SnapStart cannot take: more than 512 MB of ephemeral storage, EFS.
        assert properties.get("EphemeralStorage", {"Size": 512})["Size"] <= 512
        assert "FileSystemConfigs" not in properties


def test_each_has_a_published_version_and_the_live_alias_on_it(gateway: dict[str, Any]) -> None:
    versions = _of_type(gateway, "AWS::Lambda::Version")
    for construct_id in SNAPSHOTTED:
        function = _function(gateway, construct_id)
        alias = gateway["Resources"][_alias(gateway, function)]["Properties"]
        assert alias["Name"] == LIVE_ALIAS
        (version,) = _refs(alias["FunctionVersion"])
        assert versions[version]["Properties"]["FunctionName"] == {"Ref": function}
        # Superseded versions go once a deploy succeeds (their snapshots would stay cached and billed).
        assert versions[version]["DeletionPolicy"] == "Delete"
        # SnapStart and provisioned concurrency exclude each other.
        assert "ProvisionedConcurrencyConfig" not in alias
        assert "ProvisionedConcurrencyConfig" not in versions[version]["Properties"]


def test_api_gateway_invokes_the_aliases_and_only_they_may_be_invoked(gateway: dict[str, Any]) -> None:
    function, authorizer = (_function(gateway, construct_id) for construct_id in SNAPSHOTTED)
    function_alias, authorizer_alias = _alias(gateway, function), _alias(gateway, authorizer)
    integrations = _buffered_integrations(gateway)
    assert len(integrations) >= 5  # chat, outputs, usage, models, jobs
    for integration in integrations:
        assert _refs(integration["Uri"]) == {function_alias}
    (authorizer_resource,) = _of_type(gateway, "AWS::ApiGateway::Authorizer").values()
    assert _refs(authorizer_resource["Properties"]["AuthorizerUri"]) == {authorizer_alias}
    permitted = [_refs(p["Properties"]["FunctionName"]) for p in _of_type(gateway, "AWS::Lambda::Permission").values()]
    assert {authorizer_alias} in permitted
    assert {function_alias} in permitted
    assert {function} not in permitted  # no way in to $LATEST
    assert {authorizer} not in permitted


def test_the_streaming_function_keeps_its_own_runtime_loop_without_snapstart(gateway: dict[str, Any]) -> None:
    stream = gateway["Resources"][_function(gateway, "GatewayStreamFunction")]["Properties"]
    assert "SnapStart" not in stream
    assert "stream_runtime" in stream["Description"]


@pytest.fixture(scope="module")
def switched_off(synthesize: Synthesizer, cdk_context: dict[str, Any]) -> dict[str, Any]:
    """The gateway stack of the app synthesized with ``api.snap_start: false``."""
    blueprint = copy.deepcopy(cdk_context["blueprint"])
    blueprint["production"].setdefault("api", {})["snap_start"] = False
    return synthesize(blueprint=blueprint).template(STACK_SUFFIXES["gateway"])


def test_switched_off_there_is_no_snapstart_version_or_alias(switched_off: dict[str, Any]) -> None:
    functions = _of_type(switched_off, "AWS::Lambda::Function")
    assert not [name for name, r in functions.items() if "SnapStart" in r["Properties"]]
    assert not _of_type(switched_off, "AWS::Lambda::Version")
    assert not _of_type(switched_off, "AWS::Lambda::Alias")
    function, authorizer = (_function(switched_off, construct_id) for construct_id in SNAPSHOTTED)
    for integration in _buffered_integrations(switched_off):
        assert _refs(integration["Uri"]) == {function}
    (authorizer_resource,) = _of_type(switched_off, "AWS::ApiGateway::Authorizer").values()
    assert _refs(authorizer_resource["Properties"]["AuthorizerUri"]) == {authorizer}
