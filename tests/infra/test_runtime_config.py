"""Runtime config in AppConfig, as deployed: every document validated by its profile's JSON schema,
read by exactly the functions that need it, rolled back on its readers' refusals; and a config
change reaching a function through the store's validator, a bad one stopped before it.

AppConfig is emulated by what it does with a hosted profile: it validates a new version against
the profile's validators (here, the deployed schema with a draft-4 validator) before it deploys
it, then serves it through its data plane (here, botocore's Stubber on the real service model,
read by the functions' own reader: Powertools' AppConfig provider).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import boto3
import jsonschema
import pytest
from botocore.stub import Stubber

from ai_gateway import handler as gateway_function
from ai_gateway.contract import GatewayPolicy
from gateway_authorizer.contract import ApiKeys
from ingestion.contract import ClassificationReaders
from legacy_tools.contract import SingleCallTools
from pre_token.contract import GatewayGroups
from shared.runtime_config import (
    ENVIRONMENT_DIMENSION,
    REFUSED_METRIC,
    ConfigLocation,
    DocumentReader,
    RuntimeDocument,
    appconfig_fetch,
)
from stacks.config import load_config
from stacks.production.gateway_keys import KEYS_ENVIRONMENT
from tests.aws_stubs import appconfig_configuration
from tests.infra.cfn import props, render, resources, role_permissions, runtime_document
from tests.infra.conftest import Assembly
from tool_guard.contract import ToolBindings
from web_mcp.contract import WebPolicy

# Every runtime document by its profile's name (<environment>-<document>).
MODELS: dict[str, type[RuntimeDocument]] = {
    "gateway-policy": GatewayPolicy,
    "gateway-keys-api-keys": ApiKeys,
    "identity-gateway-groups": GatewayGroups,
    "tools-bindings": ToolBindings,
    "tools-single-call-tools": SingleCallTools,
    "tools-web-policy": WebPolicy,
    "ingestion-classification-readers": ClassificationReaders,
}
LOCATION = ConfigLocation(application="app", environment="env", profile="profile", environment_name="test")
READ_ACTIONS = {"appconfig:StartConfigurationSession", "appconfig:GetLatestConfiguration"}
# Environments their readers find by name, from a stack that does not depend on theirs.
NAMED_ENVIRONMENTS = {KEYS_ENVIRONMENT}


def profiles(assembly: Assembly) -> Iterator[tuple[str, dict[str, Any], str]]:
    """(stack, template, profile name) for every hosted profile of the app."""
    for stack, template in assembly.templates.items():
        for profile in resources(template, "AWS::AppConfig::ConfigurationProfile").values():
            yield stack, template, profile["Properties"]["Name"]


def model_for(name: str) -> type[RuntimeDocument]:
    if name.startswith("agents-"):
        from agent.contract import AgentGroups

        return AgentGroups
    return MODELS[name]


def test_every_document_passes_its_deployed_validator_and_parses_as_its_model(assembly: Assembly) -> None:
    seen = set()
    for _, template, name in profiles(assembly):
        document, schema = runtime_document(template, name)
        model = model_for(name)
        assert schema == model.validator_schema(), name  # the validator is the model's, nothing hand-written
        jsonschema.Draft4Validator(schema).validate(document)
        model.model_validate(document)
        seen.add(name)
    assert set(MODELS) <= seen


NEXT_RELEASE = "added_by_a_later_release"


def with_unknown_fields(node: Any, schema: dict[str, Any], definitions: dict[str, Any]) -> tuple[Any, int]:
    """``node`` with a field its schema does not declare added to every object the schema
    declares properties for (a model, not a map), at every depth; and how many were added."""
    if "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    added = 0
    if isinstance(node, dict) and "properties" in schema:
        out = {}
        for key, value in node.items():
            out[key], n = with_unknown_fields(value, schema["properties"].get(key, {}), definitions)
            added += n
        out[NEXT_RELEASE] = {"anything": [1, "two"]}
        return out, added + 1
    if isinstance(node, dict) and isinstance(schema.get("additionalProperties"), dict):
        out = {}
        for key, value in node.items():
            out[key], n = with_unknown_fields(value, schema["additionalProperties"], definitions)
            added += n
        return out, added
    if isinstance(node, list) and isinstance(schema.get("items"), dict):
        items = [with_unknown_fields(item, schema["items"], definitions) for item in node]
        return [item for item, _ in items], sum(n for _, n in items)
    for branch in schema.get("anyOf", []):  # an optional model: the branch that declares it
        if isinstance(node, dict) and ("properties" in branch or "$ref" in branch):
            return with_unknown_fields(node, branch, definitions)
    return node, 0


def served(model: type[RuntimeDocument], text: str) -> tuple[RuntimeDocument, list[str]]:
    """What a function's reader makes of ``text`` served by the store, and what it refused."""
    refused: list[str] = []
    read = DocumentReader(LOCATION, model, fetch=lambda _: text, refused=lambda _, why: refused.append(why)).get()
    return read, refused


def test_a_document_with_a_later_releases_fields_is_read_by_this_release_and_refused_by_the_validator(
    assembly: Assembly,
) -> None:
    """A function's code and its document change in different resources of one deployment, so a
    function of this release may be served the next release's document: it reads it (the new
    fields unused) instead of refusing it and rolling it back; the store's validator, strict,
    still refuses an undeclared field, so a misspelt one never reaches a function."""
    for _, template, name in profiles(assembly):
        document, schema = runtime_document(template, name)
        model = model_for(name)
        later, added = with_unknown_fields(document, schema, schema.get("definitions", {}))
        assert added >= 1, name
        read, refused = served(model, json.dumps(later))
        assert refused == [], name
        assert read == model.model_validate(document), name
        assert not jsonschema.Draft4Validator(schema).is_valid(later), name


def test_each_reader_may_read_its_own_document_and_no_other(assembly: Assembly) -> None:
    for stack, template, _ in profiles(assembly):
        functions = resources(template, "AWS::Lambda::Function")
        for logical, function in functions.items():
            variables = function["Properties"].get("Environment", {}).get("Variables", {})
            locations = [
                json.loads(str(render(v)))
                for v in variables.values()
                if not isinstance(v, str) and '"environment_name"' in str(render(v))
            ]
            role = render(function["Properties"]["Role"]).removeprefix("<").split(".")[0]
            granted = {r for a, r in role_permissions(template, role) if a in READ_ACTIONS}
            # A document another stack deploys is named, not referenced, and its read granted there
            # (the gateway keys stack's, read by the gateway's authorizer: test_production.py).
            expected = {
                f"{location['application']}/environment/{location['environment']}/configuration/{location['profile']}"
                for location in locations
                if location["environment"] not in NAMED_ENVIRONMENTS
            }
            assert {r.split(":application/")[-1] for r in granted} == expected, f"{stack}/{logical}"
            assert {a for a, _ in role_permissions(template, role) if a.startswith("appconfig:")} <= READ_ACTIONS


def test_every_environment_rolls_back_on_its_readers_refusals(assembly: Assembly, cdk_context: dict[str, Any]) -> None:
    rollout = load_config(cdk_context).production.runtime_config
    strategy = props(assembly.template("-production-foundation"), "AWS::AppConfig::DeploymentStrategy")
    assert (strategy["GrowthFactor"], strategy["DeploymentDurationInMinutes"], strategy["FinalBakeTimeInMinutes"]) == (
        rollout.growth_percent,
        rollout.deployment_minutes,
        rollout.bake_minutes,
    )
    names = []
    for template in assembly.templates.values():
        for environment in resources(template, "AWS::AppConfig::Environment").values():
            name = environment["Properties"]["Name"]
            names.append(name)
            ((alarm_logical, _),) = [(m["AlarmArn"]["Fn::GetAtt"][0], m) for m in environment["Properties"]["Monitors"]]
            alarm = template["Resources"][alarm_logical]["Properties"]
            assert (alarm["MetricName"], alarm["Dimensions"]) == (
                REFUSED_METRIC,
                [{"Name": ENVIRONMENT_DIMENSION, "Value": name}],
            )
            assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
        for deployment in resources(template, "AWS::AppConfig::Deployment").values():
            assert "Strategy" in json.dumps(deployment["Properties"]["DeploymentStrategyId"])
    assert len(names) == len(set(names))  # one environment per part of the tier
    assert len(names) <= 20  # AppConfig's environments per application


# --- a change, end to end ----------------------------------------------------------------------


class RefusedError(Exception):
    """AppConfig's answer to a deployment whose version its validator refuses."""


class HostedProfile:
    """One hosted profile: a version is deployed only if the profile's validator accepts it; the
    function's reader polls it through the data plane (the real client, stubbed)."""

    def __init__(self, schema: dict[str, Any], first: Any) -> None:
        self._validator = jsonschema.Draft4Validator(schema)
        self.client = boto3.client("appconfigdata", region_name="us-east-1")
        self._stubber = Stubber(self.client)
        self._stubber.activate()
        self._stubber.add_response("start_configuration_session", {"InitialConfigurationToken": "t0"})
        self._polls = 0
        self._pending: str | None = None
        self.deploy(first)

    def deploy(self, document: Any) -> None:
        errors = sorted(self._validator.iter_errors(document), key=str)
        if errors:
            raise RefusedError(errors[0].message)
        self._pending = json.dumps(document)

    def fetch(self) -> Any:
        """The function's fetch: each poll answers the newly deployed version, or nothing new."""
        inner = appconfig_fetch(max_age=0, client=lambda: self.client)

        def poll(location: ConfigLocation) -> bytes | str:
            answer = appconfig_configuration(self._pending or "", f"t{self._polls + 1}")
            self._pending = None
            self._stubber.add_response("get_latest_configuration", answer, {"ConfigurationToken": f"t{self._polls}"})
            self._polls += 1
            return inner(location)

        return poll


LOCATION = ConfigLocation(application="app", environment="env", profile="policy", environment_name="gateway")


@pytest.fixture
def hosted_policy(gateway: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[HostedProfile, dict[str, Any]]:
    document, schema = runtime_document(gateway, "gateway-policy")
    profile = HostedProfile(schema, document)
    reader = DocumentReader(LOCATION, GatewayPolicy, fetch=profile.fetch())
    monkeypatch.setattr(gateway_function, "policy_reader", lambda: reader)
    return profile, document


def test_a_price_change_reaches_the_gateway_through_the_validator(
    hosted_policy: tuple[HostedProfile, dict[str, Any]],
) -> None:
    profile, document = hosted_policy
    output = next(iter(document["outputs"]))
    before = gateway_function.policy().outputs[output].unit_price_usd
    changed = copy.deepcopy(document)
    changed["outputs"][output]["unit_price_usd"] = before + 0.5
    profile.deploy(changed)
    assert gateway_function.policy().outputs[output].unit_price_usd == before + 0.5


@pytest.mark.parametrize(
    "breakage",
    [
        "negative price",
        "quota as text",
        "unknown field",
        "group without models",
    ],
)
def test_a_bad_document_is_refused_before_it_is_deployed(
    breakage: str, hosted_policy: tuple[HostedProfile, dict[str, Any]]
) -> None:
    profile, document = hosted_policy
    serving = gateway_function.policy()
    bad = copy.deepcopy(document)
    group = next(iter(bad["groups"].values()))
    output = next(iter(bad["outputs"].values()))
    if breakage == "negative price":
        output["unit_price_usd"] = -1
    elif breakage == "quota as text":
        next(iter(group["quotas"].values()))["limit"] = "lots"
    elif breakage == "unknown field":
        output["discount"] = 0.5
    else:
        del group["models"]
    with pytest.raises(RefusedError):
        profile.deploy(bad)
    assert gateway_function.policy() is serving


def test_a_document_the_schema_passes_but_the_gateway_cannot_use_is_refused_and_counted(
    hosted_policy: tuple[HostedProfile, dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    """What a schema cannot say (a default model the group may not use) the function checks: it
    keeps the last good version and counts the refusal, and the environment's alarm rolls back."""
    profile, document = hosted_policy
    serving = gateway_function.policy()
    capsys.readouterr()
    bad = copy.deepcopy(document)
    next(iter(bad["groups"].values()))["models"]["default"] = "not.an-allowed-model-v1:0"
    profile.deploy(bad)  # the schema has no word for it
    assert gateway_function.policy() is serving
    counted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if REFUSED_METRIC in line]
    assert [line[ENVIRONMENT_DIMENSION] for line in counted if "_aws" in line] == ["gateway"]
