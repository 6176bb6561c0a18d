"""SnapStart: on by default, exactly the functions a caller waits on resume from snapshots of a
published version (the gateway function and the authorizer, api.snap_start; the knowledge search
tool and the push connector, production.functions.<name>.snap_start), and each invoker calls the
alias ``live``, never $LATEST; the streaming function too when api.stream_snap_start is switched
on (off by default until a deploy proves its own runtime loop's snapshot); switched off (a second
synth of the app), none of it for the functions switched off, and the others keep theirs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from stacks.shared.lambda_function import LIVE_ALIAS
from tests.infra.conftest import STACK_SUFFIXES, Synthesizer
from tests.lambdas.test_snapstart import SNAPSHOTTED as HOOKED_HANDLERS

SNAPSTART = {"ApplyOn": "PublishedVersions"}
SNAPSHOTTED = ("GatewayFunction", "AuthorizerFunction")  # construct ids: logical ids start so
STREAM = "GatewayStreamFunction"  # with api.stream_snap_start on
# The other functions with SnapStart, by the stack they are in.
SNAPSHOTTED_ELSEWHERE = {"tools": "KnowledgeSearchFunction", "knowledge": "IngestionPushConnector"}


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


def _snapshotted(assembly: Any) -> set[tuple[str, str]]:
    """(stack suffix key, logical id) of every function with SnapStart."""
    return {
        (next(key for key, suffix in STACK_SUFFIXES.items() if stack.endswith(suffix)), name)
        for stack, template in assembly.templates.items()
        for name, r in _of_type(template, "AWS::Lambda::Function").items()
        if "SnapStart" in r["Properties"]
    }


def _expected(assembly: Any, constructs: dict[str, tuple[str, ...]]) -> set[tuple[str, str]]:
    return {
        (key, _function(assembly.template(STACK_SUFFIXES[key]), construct_id))
        for key, construct_ids in constructs.items()
        for construct_id in construct_ids
    }


ALL = {"gateway": SNAPSHOTTED, **{key: (construct_id,) for key, construct_id in SNAPSHOTTED_ELSEWHERE.items()}}


@pytest.fixture(scope="module")
def stream_on(synthesize: Synthesizer, cdk_context: dict[str, Any]) -> Any:
    """The app synthesized with ``api.stream_snap_start`` switched on."""
    blueprint = copy.deepcopy(cdk_context["blueprint"])
    blueprint["production"].setdefault("api", {})["stream_snap_start"] = True
    return synthesize(blueprint=blueprint)


ALL_STREAM_ON = {**ALL, "gateway": (*SNAPSHOTTED, STREAM)}


@pytest.mark.parametrize("streamed", [False, True], ids=["default", "stream_snap_start"])
def test_exactly_the_functions_a_caller_waits_on_have_snapstart(assembly: Any, stream_on: Any, streamed: bool) -> None:
    app, expected = (stream_on, ALL_STREAM_ON) if streamed else (assembly, ALL)
    assert _snapshotted(app) == _expected(app, expected)
    for key, construct_ids in expected.items():
        template = app.template(STACK_SUFFIXES[key])
        for construct_id in construct_ids:
            properties = template["Resources"][_function(template, construct_id)]["Properties"]
            assert properties["SnapStart"] == SNAPSTART
            # What SnapStart cannot take: more than 512 MB of ephemeral storage, EFS.
            assert properties.get("EphemeralStorage", {"Size": 512})["Size"] <= 512
            assert "FileSystemConfigs" not in properties


def test_every_snapshotted_handler_is_the_one_the_hook_tests_import(assembly: Any) -> None:
    """tests/lambdas/test_snapstart.py proves each handler safe to snapshot: its list is the
    handlers of the functions with SnapStart, so a function given SnapStart without hooks fails."""
    handlers = {
        r["Properties"]["Handler"].rsplit(".", 1)[0]
        for template in assembly.templates.values()
        for r in _of_type(template, "AWS::Lambda::Function").values()
        if "SnapStart" in r["Properties"]
    }
    assert handlers == set(HOOKED_HANDLERS)


@pytest.mark.parametrize("streamed", [False, True], ids=["default", "stream_snap_start"])
def test_each_has_a_published_version_and_the_live_alias_on_it(assembly: Any, stream_on: Any, streamed: bool) -> None:
    app, expected = (stream_on, ALL_STREAM_ON) if streamed else (assembly, ALL)
    for key, construct_ids in expected.items():
        template = app.template(STACK_SUFFIXES[key])
        versions = _of_type(template, "AWS::Lambda::Version")
        for construct_id in construct_ids:
            function = _function(template, construct_id)
            alias = template["Resources"][_alias(template, function)]["Properties"]
            assert alias["Name"] == LIVE_ALIAS
            (version,) = _refs(alias["FunctionVersion"])
            assert versions[version]["Properties"]["FunctionName"] == {"Ref": function}
            # Superseded versions go once a deploy succeeds (their snapshots would stay cached and billed).
            assert versions[version]["DeletionPolicy"] == "Delete"
            # SnapStart and provisioned concurrency exclude each other.
            assert "ProvisionedConcurrencyConfig" not in alias
            assert "ProvisionedConcurrencyConfig" not in versions[version]["Properties"]


def _invoke_grants(template: dict[str, Any], role_prefix: str) -> set[str]:
    """Every logical id a role's lambda:InvokeFunction statements name."""
    found: set[str] = set()
    for policy in _of_type(template, "AWS::IAM::Policy").values():
        if not any(ref.startswith(role_prefix) for ref in _refs(policy["Properties"]["Roles"])):
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if "lambda:InvokeFunction" in actions:
                found |= _refs(statement["Resource"])
    return found


def test_the_tools_gateway_calls_the_knowledge_search_alias_and_may_call_nothing_else_of_it(
    tools: dict[str, Any],
) -> None:
    function = _function(tools, SNAPSHOTTED_ELSEWHERE["tools"])
    alias = _alias(tools, function)
    targets = [
        r["Properties"]["TargetConfiguration"]["Mcp"]["Lambda"]["LambdaArn"]
        for r in _of_type(tools, "AWS::BedrockAgentCore::GatewayTarget").values()
        if "Lambda" in r["Properties"]["TargetConfiguration"]["Mcp"]
    ]
    assert {"Ref": alias} in targets
    assert not [t for t in targets if _refs(t) == {function}]
    granted = _invoke_grants(tools, "GatewayServiceRole")
    assert alias in granted
    assert function not in granted  # neither $LATEST nor any version but the alias's


def test_the_push_api_invokes_the_push_connectors_alias_and_only_it_may_be_invoked(knowledge: dict[str, Any]) -> None:
    function = _function(knowledge, SNAPSHOTTED_ELSEWHERE["knowledge"])
    alias = _alias(knowledge, function)
    (integration,) = [
        m["Properties"]["Integration"]
        for m in _of_type(knowledge, "AWS::ApiGateway::Method").values()
        if m["Properties"].get("Integration", {}).get("Type") == "AWS_PROXY"
    ]
    assert _refs(integration["Uri"]) == {alias}
    permitted = [
        _refs(p["Properties"]["FunctionName"]) for p in _of_type(knowledge, "AWS::Lambda::Permission").values()
    ]
    assert {alias} in permitted
    assert {function} not in permitted


def _streamed_integrations(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        m["Properties"]["Integration"]
        for m in _of_type(template, "AWS::ApiGateway::Method").values()
        if m["Properties"].get("Integration", {}).get("ResponseTransferMode") == "STREAM"
    ]


@pytest.mark.parametrize("streamed", [False, True], ids=["default", "stream_snap_start"])
def test_api_gateway_invokes_the_aliases_and_only_they_may_be_invoked(
    assembly: Any, stream_on: Any, streamed: bool
) -> None:
    """The aliases of the functions with SnapStart, and the streaming function's own: its alias
    with api.stream_snap_start on, the function itself (its $LATEST, which no snapshot serves) off."""
    gateway = (stream_on if streamed else assembly).template(STACK_SUFFIXES["gateway"])
    function, authorizer = (_function(gateway, construct_id) for construct_id in SNAPSHOTTED)
    function_alias, authorizer_alias = (_alias(gateway, f) for f in (function, authorizer))
    stream = _function(gateway, STREAM)
    stream_target = _alias(gateway, stream) if streamed else stream
    integrations = _buffered_integrations(gateway)
    assert len(integrations) >= 5  # chat, outputs, usage, models, jobs
    for integration in integrations:
        assert _refs(integration["Uri"]) == {function_alias}
    (streamed_integration,) = _streamed_integrations(gateway)  # POST /v1/chat/completions
    assert _refs(streamed_integration["Uri"]) == {stream_target}
    assert "/response-streaming-invocations" in json.dumps(streamed_integration["Uri"])  # InvokeWithResponseStream
    (authorizer_resource,) = _of_type(gateway, "AWS::ApiGateway::Authorizer").values()
    assert _refs(authorizer_resource["Properties"]["AuthorizerUri"]) == {authorizer_alias}
    permitted = [_refs(p["Properties"]["FunctionName"]) for p in _of_type(gateway, "AWS::Lambda::Permission").values()]
    for target in (function_alias, authorizer_alias, stream_target):
        assert {target} in permitted
    for unqualified in (function, authorizer, *([stream] if streamed else [])):
        assert {unqualified} not in permitted  # no way in to $LATEST


@pytest.mark.parametrize("streamed", [False, True], ids=["default", "stream_snap_start"])
def test_the_streaming_function_runs_its_own_loop_behind_the_wrapper(
    assembly: Any, stream_on: Any, streamed: bool
) -> None:
    """The managed runtime starts the wrapper, which starts stream_runtime: its loop is the one that
    runs the hooks and asks for restore/next (tests/lambdas/test_stream_runtime.py) when
    api.stream_snap_start is on, and serves the invocations either way."""
    gateway = (stream_on if streamed else assembly).template(STACK_SUFFIXES["gateway"])
    stream = gateway["Resources"][_function(gateway, STREAM)]["Properties"]
    assert stream.get("SnapStart") == (SNAPSTART if streamed else None)
    assert stream["Runtime"].startswith("python3.")  # a managed runtime: SnapStart takes no OS-only one
    assert stream["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"] == "/var/task/ai_gateway/stream_bootstrap"
    assert "stream_runtime" in stream["Description"]


@pytest.fixture(scope="module")
def switched_off(synthesize: Synthesizer, cdk_context: dict[str, Any]) -> Any:
    """The app synthesized with ``api.snap_start``, ``api.stream_snap_start`` and
    ``functions.knowledge_search.snap_start`` false; the push connector left as it is (on)."""
    blueprint = copy.deepcopy(cdk_context["blueprint"])
    blueprint["production"].setdefault("api", {}).update(snap_start=False, stream_snap_start=False)
    blueprint["production"].setdefault("functions", {}).setdefault("knowledge_search", {})["snap_start"] = False
    return synthesize(blueprint=blueprint)


def test_switched_off_there_is_no_snapstart_version_or_alias(switched_off: Any) -> None:
    gateway, tools = switched_off.template(STACK_SUFFIXES["gateway"]), switched_off.template(STACK_SUFFIXES["tools"])
    # Each switch reaches its own functions only: the push connector keeps its snapshots.
    assert _snapshotted(switched_off) == _expected(switched_off, {"knowledge": (SNAPSHOTTED_ELSEWHERE["knowledge"],)})
    for template in (gateway, tools):
        assert not _of_type(template, "AWS::Lambda::Version")
        assert not _of_type(template, "AWS::Lambda::Alias")
    function, authorizer = (_function(gateway, construct_id) for construct_id in SNAPSHOTTED)
    stream = _function(gateway, STREAM)
    for integration in _buffered_integrations(gateway):
        assert _refs(integration["Uri"]) == {function}
    (streamed,) = _streamed_integrations(gateway)
    assert _refs(streamed["Uri"]) == {stream}
    (authorizer_resource,) = _of_type(gateway, "AWS::ApiGateway::Authorizer").values()
    assert _refs(authorizer_resource["Properties"]["AuthorizerUri"]) == {authorizer}
    search = _function(tools, SNAPSHOTTED_ELSEWHERE["tools"])
    assert search in _invoke_grants(tools, "GatewayServiceRole")
    lambda_arns = [
        r["Properties"]["TargetConfiguration"]["Mcp"]["Lambda"]["LambdaArn"]
        for r in _of_type(tools, "AWS::BedrockAgentCore::GatewayTarget").values()
        if "Lambda" in r["Properties"]["TargetConfiguration"]["Mcp"]
    ]
    assert {"Fn::GetAtt": [search, "Arn"]} in lambda_arns


@pytest.fixture(scope="module")
def new_guardrail_version(synthesize: Synthesizer, cdk_context: dict[str, Any]) -> Any:
    """The app synthesized with one content filter of the gateway's guardrail changed: CloudFormation
    would publish a new guardrail version, whose number the gateway functions' environments name."""
    blueprint = copy.deepcopy(cdk_context["blueprint"])
    filters = blueprint["production"]["guardrail"]["content_filters"]
    filters["INSULTS"] = "LOW" if filters.get("INSULTS") != "LOW" else "HIGH"
    return synthesize(blueprint=blueprint)


def test_a_new_guardrail_version_publishes_new_versions_of_the_gateway_functions(
    assembly: Any, new_guardrail_version: Any
) -> None:
    """The guardrail version reaches the environment as a reference, whose text does not change when
    CloudFormation publishes a new version: without the guardrail's digest in their version hashes,
    the aliases would keep calling versions that apply the replaced guardrail version."""
    before, after = (a.template(STACK_SUFFIXES["gateway"]) for a in (assembly, new_guardrail_version))

    def version(template: dict[str, Any], construct_id: str) -> set[str]:
        alias = template["Resources"][_alias(template, _function(template, construct_id))]
        return _refs(alias["Properties"]["FunctionVersion"])

    # (The streaming function's version, with api.stream_snap_start on, is hashed the same way: one
    # construct, stacks/shared/lambda_function.py.)
    assert version(before, "GatewayFunction").isdisjoint(version(after, "GatewayFunction"))
    # Control: the authorizer, which reads no guardrail, keeps its version (and its snapshot).
    assert version(before, "AuthorizerFunction") == version(after, "AuthorizerFunction")
