"""Workloads: one prototype stack per workload in sandbox stage; a workload in production stage
is served by the production tier with every control its promotion gates promise, derived from
its declaration (workloads/<name>.json) and typed nowhere else."""

from __future__ import annotations

import re
from typing import Any

import pytest

from stacks.config import load_config
from tests.infra.cfn import props, render, resources, runtime_document
from tests.infra.conftest import Assembly, Synthesizer

WORKLOAD = "support"
# The sample workload, promoted, with one tool its customer group does not have yet.
PROMOTED = {
    f"blueprint.workloads.{WORKLOAD}.stage": "production",
    f"blueprint.workloads.{WORKLOAD}.tools": ["knowledge_search", "get_customer"],
}


@pytest.fixture(scope="module")
def promoted(synthesize: Synthesizer) -> Assembly:
    return synthesize(**PROMOTED)


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
    assert re.fullmatch(f"{config.prefix}-sandbox-{WORKLOAD}-monthly-[0-9a-f]{{6}}", budget["BudgetName"])
    assert budget["BudgetLimit"]["Amount"] == config.sandbox_for(WORKLOAD).budget.monthly_limit_usd


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


def test_promoted_its_tools_are_permitted_to_its_groups_only(promoted: Assembly, assembly: Assembly) -> None:
    def permits(app: Assembly) -> set[tuple[str, str]]:
        found = set()
        for policy in resources(app.template("-production-tools"), "AWS::BedrockAgentCore::Policy").values():
            text = str(render(policy["Properties"]["Definition"]["Cedar"]["Statement"]))
            (group,) = re.findall(r'getTag\("gateway_group"\) == "([^"]+)"', text)
            found |= {(group, action) for action in re.findall(r'AgentCore::Action::"([^"]+)"', text)}
        return found

    added = permits(promoted) - permits(assembly)
    assert added == {("customer-gold", "customers___get_customer")}  # platform-admins had it already


def test_promoted_its_documents_classification_reaches_its_groups_retrieval(promoted: Assembly) -> None:
    bindings, _ = runtime_document(promoted.template("-production-tools"), "tools-bindings")
    classifications = bindings["data_classifications"]
    assert "customer" in classifications["platform-admins"]  # added by the workload
    assert classifications["customer-basic"] == ["public"]  # not one of its groups


def test_promoted_the_guardrail_covers_its_personal_data(promoted: Assembly, cdk_context: dict[str, Any]) -> None:
    guardrail = props(promoted.template("-production-gateway"), "AWS::Bedrock::Guardrail")
    covered = {e["Type"] for e in guardrail["SensitiveInformationPolicyConfig"]["PiiEntitiesConfig"]}
    assert set(load_config(cdk_context).workloads[WORKLOAD].documents.pii_entities) <= covered
