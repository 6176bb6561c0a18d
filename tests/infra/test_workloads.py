"""Workloads: one prototype stack per workload in sandbox stage; a workload in production stage
is served by the production tier with every control its promotion gates promise, derived from
its declaration (workloads/<name>.json) and typed nowhere else."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from agent.contract import AgentGroups
from shared.tools import qualified
from stacks.config import BlueprintConfig, all_tools, load_config
from stacks.production.agents import runtime_name
from tests.infra.cfn import props, render, resolved, resources, runtime_document
from tests.infra.conftest import Assembly, Synthesizer

WORKLOAD = "support"


def unbound_tool(config: BlueprintConfig) -> str | None:
    """The first legacy API tool (by name) that one of the workload's groups is not bound to yet,
    if any: promoting the workload with it binds something new, whatever the groups hold."""
    groups = config.production.groups
    members = config.workloads[WORKLOAD].groups
    tools = sorted(tool for api in config.production.legacy_apis.values() for tool in api.tools)
    return next((tool for tool in tools if any(tool not in groups[g].tools for g in members)), None)


@pytest.fixture(scope="module")
def promoted_tools(cdk_context: dict[str, Any]) -> tuple[str, ...]:
    """The workload's tools when promoted: its own and a tool one of its groups does not have yet."""
    config = load_config(cdk_context)
    own = config.workloads[WORKLOAD].tools
    extra = unbound_tool(config)
    return (*own, extra) if extra is not None and extra not in own else own


@pytest.fixture(scope="module")
def promoted(synthesize: Synthesizer, promoted_tools: tuple[str, ...]) -> Assembly:
    """The sample workload in production stage, with ``promoted_tools``."""
    return synthesize(
        **{
            f"blueprint.workloads.{WORKLOAD}.stage": "production",
            f"blueprint.workloads.{WORKLOAD}.tools": list(promoted_tools),
        }
    )


def test_a_sandbox_workload_has_its_own_prototype_stack_tagged_with_its_team(
    assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    config = load_config(cdk_context)
    sandboxes = sorted(name for name in assembly.templates if "-sandbox-" in name)
    assert sandboxes == [f"{config.prefix}-sandbox-{name}" for name in config.workloads_in("sandbox")]
    bucket = props(assembly.template(f"-sandbox-{WORKLOAD}"), "AWS::S3::Bucket", "Documents")
    tags = {t["Key"]: t["Value"] for t in bucket["Tags"]}
    assert (tags["workload"], tags["team"]) == (WORKLOAD, config.workloads[WORKLOAD].team)
    assert tags["expires-on"] == str(config.workloads[WORKLOAD].sandbox.expires_on)
    # Its own budget and names: two workloads' sandboxes never collide.
    budget = props(assembly.template(f"-sandbox-{WORKLOAD}"), "AWS::Budgets::Budget")["Budget"]
    # (and its notifications' generation: new recipients make a new budget beside the old one)
    # (and its region: budget names are unique in an account, so one per region of it)
    region = config.sandbox.region
    assert re.fullmatch(f"{config.prefix}-sandbox-{WORKLOAD}-{region}-monthly-[0-9a-f]{{6}}", budget["BudgetName"])
    assert budget["BudgetLimit"]["Amount"] == config.sandbox_for(WORKLOAD).budget.monthly_limit_usd


TWIN = "twin"


@pytest.fixture(scope="module")
def two_sandboxes(synthesize: Synthesizer, cdk_context: dict[str, Any]) -> Assembly:
    """The sandbox tier with the tier's Kendra switch on and a second workload in sandbox stage:
    the sample's declaration under another name and team, with its own budget, and no Kendra."""
    declared = load_config(cdk_context).workloads[WORKLOAD].model_dump(mode="json")
    sandbox = {
        **declared["sandbox"],
        "kendra": False,
        "budget": {**declared["sandbox"]["budget"], "monthly_limit_usd": 77},
    }
    twin = {**declared, "team": "research", "sandbox": sandbox}
    return synthesize(
        tier="sandbox", **{"blueprint.sandbox.kendra.enabled": "true", f"blueprint.workloads.{TWIN}": twin}
    )


def test_two_sandbox_workloads_are_two_stacks_each_with_its_own_budget_tags_and_kendra_switch(
    two_sandboxes: Assembly, cdk_context: dict[str, Any]
) -> None:
    prefix = load_config(cdk_context).prefix
    assert sorted(two_sandboxes.templates) == sorted(f"{prefix}-sandbox-{name}" for name in (TWIN, WORKLOAD))
    budgets, names = {}, set()
    for name, team, kendra in (
        (WORKLOAD, load_config(cdk_context).workloads[WORKLOAD].team, True),
        (TWIN, "research", False),
    ):
        template = two_sandboxes.template(f"-sandbox-{name}")
        tags = {t["Key"]: t["Value"] for t in props(template, "AWS::S3::Bucket", "Documents")["Tags"]}
        assert (tags["workload"], tags["team"]) == (name, team)
        budget = props(template, "AWS::Budgets::Budget")["Budget"]
        budgets[name] = budget["BudgetLimit"]["Amount"]
        names.add(budget["BudgetName"])
        assert bool(resources(template, "AWS::Kendra::Index")) is kendra, name  # only where the workload asks
    assert budgets[TWIN] == 77
    assert budgets[WORKLOAD] != 77
    assert len(names) == 2  # budget names are unique in an account: never shared


def test_a_sandbox_workload_adds_nothing_to_production(assembly: Assembly) -> None:
    policy, _ = runtime_document(assembly.template("-production-gateway"), "gateway-policy")
    assert "policy_answer" not in policy["outputs"]


def test_promoted_the_workload_leaves_the_sandbox_tier(promoted: Assembly) -> None:
    assert not [name for name in promoted.templates if name.endswith(f"-sandbox-{WORKLOAD}")]


def test_promoted_its_outputs_are_priced_and_each_of_its_groups_has_a_quota(
    promoted: Assembly, cdk_context: dict[str, Any]
) -> None:
    workload = load_config(cdk_context).workloads[WORKLOAD]
    policy, _ = runtime_document(promoted.template("-production-gateway"), "gateway-policy")
    (name, output), *_ = workload.outputs.items()
    assert policy["outputs"][name]["unit_price_usd"] == output.unit_price_usd
    assert policy["outputs"][name]["instructions"] == workload.generation.prompt
    for group in workload.groups:
        assert policy["groups"][group]["quotas"][name] == {"limit": output.quota.limit, "period": "MONTH"}
    others = set(policy["groups"]) - set(workload.groups)
    assert all(name not in policy["groups"][g]["quotas"] for g in others)


def test_promoted_its_tools_are_permitted_to_its_groups_only(
    promoted: Assembly, assembly: Assembly, promoted_tools: tuple[str, ...], cdk_context: dict[str, Any]
) -> None:
    def permits(app: Assembly) -> set[tuple[str, str]]:
        found = set()
        for policy in resources(app.template("-production-tools"), "AWS::BedrockAgentCore::Policy").values():
            text = str(render(policy["Properties"]["Definition"]["Cedar"]["Statement"]))
            (group,) = re.findall(r'getTag\("gateway_group"\) == "([^"]+)"', text)
            found |= {(group, action) for action in re.findall(r'AgentCore::Action::"([^"]+)"', text)}
        return found

    before = load_config(cdk_context)
    groups, targets = before.production.groups, all_tools(before.production.legacy_apis)
    # Each of its groups gains the tools it did not have; no other group gains anything.
    expected = {
        (group, qualified(targets[tool], tool))
        for group in before.workloads[WORKLOAD].groups
        for tool in promoted_tools
        if tool not in groups[group].tools
    }
    assert permits(promoted) - permits(assembly) == expected
    if unbound_tool(before) is not None:  # (the promotion's extra tool: something is bound anew)
        assert expected


def test_promoted_its_documents_classification_reaches_its_groups_retrieval(
    promoted: Assembly, cdk_context: dict[str, Any]
) -> None:
    bindings, _ = runtime_document(promoted.template("-production-tools"), "tools-bindings")
    before = load_config(cdk_context)
    workload = before.workloads[WORKLOAD]
    added = workload.documents.classification
    # Its groups gain its documents' classification (after their own); the others keep theirs.
    expected: dict[str, list[str]] = {}
    for name, group in before.production.groups.items():
        own = list(group.data_classifications)
        expected[name] = [*own, added] if name in workload.groups and added not in own else own
    assert bindings["data_classifications"] == expected


def test_promoted_the_guardrail_covers_its_personal_data(promoted: Assembly, cdk_context: dict[str, Any]) -> None:
    guardrail = props(promoted.template("-production-gateway"), "AWS::Bedrock::Guardrail")
    covered = {e["Type"] for e in guardrail["SensitiveInformationPolicyConfig"]["PiiEntitiesConfig"]}
    assert set(load_config(cdk_context).workloads[WORKLOAD].documents.pii_entities) <= covered


# The workload promoted with an agent of its own (named after it); only what the agent adds is set.
AGENT = {
    "description": "Answers policy questions from the workload's documents.",
    "max_iterations": 4,
    "max_tool_calls": 7,
}


@pytest.fixture(scope="module")
def promoted_agent_context(cdk_context: dict[str, Any]) -> dict[str, Any]:
    return {
        **cdk_context,
        f"blueprint.workloads.{WORKLOAD}.stage": "production",
        f"blueprint.workloads.{WORKLOAD}.agent": AGENT,
    }


@pytest.fixture(scope="module")
def promoted_with_agent(synthesize: Synthesizer, promoted_agent_context: dict[str, Any]) -> Assembly:
    """The production tier with the sample workload promoted and declaring an agent."""
    overrides = {key: value for key, value in promoted_agent_context.items() if key.startswith("blueprint.workloads.")}
    return synthesize(tier="production", **overrides)


def test_promoted_with_an_agent_its_runtime_serves_its_groups_and_its_outputs(
    promoted_with_agent: Assembly, promoted_agent_context: dict[str, Any]
) -> None:
    config = load_config(promoted_agent_context)
    workload, groups, prefix = config.workloads[WORKLOAD], config.production.groups, config.prefix
    templates = promoted_with_agent.templates

    # Its own stack and runtime, named after the workload, with the workload's prompt.
    (runtime,) = resources(
        templates[f"{prefix}-production-agent-{WORKLOAD}"], "AWS::BedrockAgentCore::Runtime"
    ).values()
    assert runtime["Properties"]["AgentRuntimeName"] == runtime_name(prefix, WORKLOAD)
    env = runtime["Properties"]["EnvironmentVariables"]
    assert (env["AGENT_NAME"], env["MAX_ITERATIONS"], env["MAX_TOOL_CALLS"]) == (
        WORKLOAD,
        str(AGENT["max_iterations"]),
        str(AGENT["max_tool_calls"]),
    )
    # The groups document it reads (the agents stack's) names the workload's groups, each with its models.
    location = json.loads(resolved(env["GROUPS"], templates))
    assert location["profile"] == f"<{prefix}-production-agents:RuntimeConfiggroupsConfigurationConfigurationProfile>"
    (version,) = resources(
        templates[f"{prefix}-production-agents"], "AWS::AppConfig::HostedConfigurationVersion"
    ).values()
    document = AgentGroups.model_validate_json(version["Properties"]["Content"])
    assert document.prompt_of(WORKLOAD) == workload.generation.prompt
    served = document.served_by(WORKLOAD)
    assert set(served) == set(workload.groups)
    for group in workload.groups:
        models = groups[group].models
        assert (served[group].allowed, served[group].default) == (tuple(models.allowed), models.default)
    # The gateway sends the workload's output types to it, at its runtime.
    policy, _ = runtime_document(promoted_with_agent.template("-production-gateway"), "gateway-policy")
    assert {output: policy["outputs"][output].get("agent") for output in workload.outputs} == dict.fromkeys(
        workload.outputs, WORKLOAD
    )
    assert f"-production-agent-{WORKLOAD}'" in policy["agents"][WORKLOAD]
