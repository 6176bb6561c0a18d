"""The Macie classification job in the knowledge stack: a custom resource of the house pattern
(lambdas/account_settings/classification_job.py behind CDK's Provider framework, its own policy
it depends on), never CDK's AwsCustomResource, whose handler replayed one token across operations
and did not wait for IAM."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from stacks.config import load_config
from stacks.production.macie import CLASSIFICATION_JOB_ACTIONS, MACIE_ACCOUNT_ACTIONS
from stacks.shared.nag import SDK_CALL_PROVIDER
from tests.infra import deploy_checks, iam_coverage
from tests.infra.cfn import only, props, render, resources
from tests.infra.conftest import Assembly

JOB = "Custom::MacieClassificationJob"
JOBS_ARN = re.compile(r"arn:\S+:macie2:\S+:classification-job/\*")  # this account's and region's jobs


def _job(knowledge: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return only(knowledge, JOB)


def _requested(knowledge: dict[str, Any]) -> dict[str, Any]:
    """The job the resource asks for, deploy-time values as ``render`` writes them."""
    requested: dict[str, Any] = json.loads(render(_job(knowledge)[1]["Properties"]["Job"]))
    return requested


def test_no_template_holds_the_aws_custom_resource_provider(assembly: Assembly) -> None:
    """Its singleton function served only the Macie job: none is left in any stack."""
    found = [
        (stack, logical_id)
        for stack, template in assembly.templates.items()
        for logical_id in template["Resources"]
        if logical_id.startswith(SDK_CALL_PROVIDER)
    ]
    assert found == []
    assert not any(
        r["Type"] == "Custom::AWS" or "AWS679f53fac002430cb0da5b7982bd2287" in json.dumps(r.get("Properties", {}))
        for t in assembly.templates.values()
        for r in t["Resources"].values()
    )


def test_the_job_is_the_house_functions_in_its_own_stack(knowledge: dict[str, Any]) -> None:
    logical_id, job = _job(knowledge)
    # Not the AwsCustomResource's logical id (MacieClassificationJob<hash>): CloudFormation cannot
    # change a custom resource's service token in an update, so the new resource is a new id.
    assert re.fullmatch(r"MacieClassificationJob[0-9A-F]{8}", logical_id) is None
    token = render(job["Properties"]["ServiceToken"])
    assert token.startswith("<MacieJobsProviderframeworkonEvent")
    # Its provider is in this stack (no cross-stack service token), which deletes it after the job.
    assert "Fn::GetStackOutput" not in json.dumps(job["Properties"]["ServiceToken"])
    function = props(knowledge, "AWS::Lambda::Function", "MacieJobsFunction")
    assert function["Handler"] == "account_settings.classification_job.lambda_handler"
    # Its calls take seconds, and a denial is asked again for two minutes: well within Lambda's 15
    # minutes and CloudFormation's hour for a custom resource.
    assert 180 <= function["Timeout"] <= 900


def test_the_job_waits_for_its_policy_which_grants_only_what_the_function_calls(knowledge: dict[str, Any]) -> None:
    logical_id, job = _job(knowledge)
    policy_id, policy = only(knowledge, "AWS::IAM::Policy", "MacieJobsPermissions")
    assert policy_id in job["DependsOn"]
    roles = deploy_checks.roles_used(knowledge, logical_id)
    needed = {p for role in roles for p in deploy_checks.role_policies(knowledge, role)}
    assert needed <= deploy_checks.dependency_closure(knowledge, logical_id)
    granted = {
        (action, render(resource))
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in statement["Action"]
        for resource in (statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]])
    }
    on_jobs = {action for action, resource in granted if JOBS_ARN.fullmatch(resource)}
    assert on_jobs == set(CLASSIFICATION_JOB_ACTIONS)
    assert granted - {(action, r) for action, r in granted if action in on_jobs} == {
        (action, "*") for action in MACIE_ACCOUNT_ACTIONS
    }
    assert len(granted) == len(CLASSIFICATION_JOB_ACTIONS) + len(MACIE_ACCOUNT_ACTIONS)
    assert set(MACIE_ACCOUNT_ACTIONS) == {"macie2:GetMacieSession", "macie2:ListClassificationJobs"}


def test_the_template_asks_for_the_configured_job_and_leaves_the_token_to_each_request(
    knowledge: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    """No token in the template: a token written there is the same for every operation, and Macie
    answers a token it has seen with the job it made then (a cancelled one, after a change back or
    a rolled-back update)."""
    config = load_config(cdk_context).production
    requested = _requested(knowledge)
    assert "clientToken" not in requested
    assert requested["name"] == "genai-production-documents"  # a stem: the function adds the fingerprint
    assert requested["jobType"] == "SCHEDULED"
    assert requested["scheduleFrequency"] == {"dailySchedule": {}}
    assert requested["samplingPercentage"] == config.macie.sampling_percentage
    assert requested["initialRun"] is True
    (definition,) = requested["s3JobDefinition"]["bucketDefinitions"]
    assert len(definition["buckets"]) == 3  # landing, curated, the access-log archive
    identifiers = resources(knowledge, "AWS::Macie::CustomDataIdentifier")
    assert sorted(requested["customDataIdentifierIds"]) == sorted(f"<{i[:-8]}.Id>" for i in identifiers)
    (allow_list,) = resources(knowledge, "AWS::Macie::AllowList")
    assert requested["allowListIds"] == [f"<{allow_list[:-8]}.Id>"]


def test_the_job_function_is_allowed_each_call_it_makes(assembly: Assembly, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every Macie call of lambdas/account_settings/classification_job.py against its role. Macie's
    job operations take the job's ARN, not an argument iam_coverage reads a resource from: mapped
    here as they must be in tests/infra/iam_coverage.py's NEEDS (a job's ARN, chosen at run time)."""
    for operation in ("CreateClassificationJob", "DescribeClassificationJob", "UpdateClassificationJob"):
        monkeypatch.setitem(iam_coverage.NEEDS, ("macie2", operation), ((f"macie2:{operation}", "arn:macie2"),))
    coverage = iam_coverage.check(assembly.templates, only="MacieJobsFunction")
    assert (coverage.unresolved, [str(f) for f in coverage.findings]) == ([], [])
    made = {c.action for c in iam_coverage.calls_in("account_settings", "classification_job")}
    assert made == {*CLASSIFICATION_JOB_ACTIONS, *MACIE_ACCOUNT_ACTIONS}
    assert coverage.matched == coverage.actions > 0
