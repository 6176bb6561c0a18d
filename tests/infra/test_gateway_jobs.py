"""The gateway jobs construct on a small stack of its own: the jobs table, the worker, the sweeper
and its schedule, the ledger's pending index, the route, least-privilege grants, cdk-nag clean."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from aws_cdk import (
    App,
    Duration,
    Environment,
    RemovalPolicy,
    Stack,
    aws_apigateway as apigateway,
    aws_bedrock as bedrock,
    aws_dynamodb as dynamodb,
    aws_iam as iam,
    aws_kms as kms,
)
from aws_cdk.assertions import Match, Template
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks

from ai_gateway.jobs_contract import (
    WORKER_MAX_EVENT_AGE_SECONDS,
    WORKER_RETRY_ATTEMPTS,
    GatewayJobsSettings,
    SweeperSettings,
    WorkerSettings,
)
from ai_gateway.ledger import BILLING_INDEX, BILLING_KEY, BILLING_SORT_KEY, PENDING_INDEX, PENDING_PROJECTION
from stacks.config import load_config
from stacks.config.base import ConfigError
from stacks.production.context import ProductionContext
from stacks.production.gateway import LEDGER_ACTIONS
from stacks.production.gateway_jobs import GatewayJobs, Generation, worker_timeout_seconds
from stacks.shared.bedrock import grant_invoke, model_arns
from stacks.shared.lambda_function import HOUSE_VARIABLES
from stacks.shared.runtime_config import ConfigStore
from stacks.shared.table import TABLE_KEY_ACTIONS, SecureTable
from tests.lambdas.gateway_fixtures import GATEWAY_CONFIG, LITE, PRO

STREAM_TIMEOUT = 120  # a second function running the gateway's handler
OTHER_TIMEOUT = 600  # another function that admits


def config_with(**report: Any) -> Any:
    raw = json.loads(json.dumps(GATEWAY_CONFIG))
    raw["production"]["output_types"]["report"].update(report)
    return load_config({"blueprint": raw}).production


def grant_generation(role: iam.IRole, ledger: SecureTable, guardrail: bedrock.CfnGuardrail) -> None:
    """The test stack's grant of generation (the gateway stack's covers agents and memory too)."""
    ledger.grant_items(role, LEDGER_ACTIONS, key_actions=TABLE_KEY_ACTIONS)
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=["bedrock:ApplyGuardrail"], resources=[guardrail.attr_guardrail_arn])
    )
    for model in (PRO, LITE):
        grant_invoke(role, model_arns(role.stack, model))


@pytest.fixture(scope="module")
def built() -> tuple[App, Stack, GatewayJobs]:
    os.environ.setdefault("CDK_VALIDATION", "false")
    app = App()
    stack = Stack(app, "Jobs", env=Environment(account="123456789012", region="us-east-1"))
    config = config_with(async_timeout_seconds=840)
    key = kms.Key(stack, "Key", enable_key_rotation=True)
    context = ProductionContext(
        prefix="gwtest",
        config=config,
        key=key,
        config_store=ConfigStore(stack, "Store", name="gwtest", settings=config.runtime_config),
    )
    ledger = SecureTable(
        stack,
        "Ledger",
        key=key,
        partition_key="pk",
        global_secondary_indexes=[
            dynamodb.GlobalSecondaryIndexPropsV2(
                index_name=BILLING_INDEX,
                partition_key=dynamodb.Attribute(name=BILLING_KEY, type=dynamodb.AttributeType.STRING),
                sort_key=dynamodb.Attribute(name=BILLING_SORT_KEY, type=dynamodb.AttributeType.STRING),
            )
        ],
        removal_policy=RemovalPolicy.RETAIN,
    )
    guardrail = bedrock.CfnGuardrail(
        stack,
        "Guardrail",
        name="g",
        blocked_input_messaging="no",
        blocked_outputs_messaging="no",
        content_policy_config=bedrock.CfnGuardrail.ContentPolicyConfigProperty(
            filters_config=[
                bedrock.CfnGuardrail.ContentFilterConfigProperty(
                    type="HATE", input_strength="HIGH", output_strength="HIGH"
                )
            ]
        ),
    )
    version = bedrock.CfnGuardrailVersion(stack, "GuardrailVersion", guardrail_identifier=guardrail.attr_guardrail_id)
    gateway = context.function(
        stack, "GatewayFunction", package="ai_gateway", description="gateway", timeout=Duration.seconds(29)
    )
    stream = context.function(
        stack, "StreamFunction", package="ai_gateway", description="stream", timeout=Duration.seconds(STREAM_TIMEOUT)
    )
    api = apigateway.RestApi(stack, "Api")
    v1 = api.root.add_resource("v1")
    v1.add_method("GET", apigateway.MockIntegration())  # an API needs a method before the construct's
    jobs = GatewayJobs(
        stack,
        "GatewayJobs",
        context=context,
        generation=Generation(
            ledger=ledger,
            guardrail=guardrail,
            guardrail_version=version,
            grant=lambda role: grant_generation(role, ledger, guardrail),
        ),
        gateway_functions=[gateway, stream],
        v1=v1,
        integration=apigateway.LambdaIntegration(gateway, proxy=True),
        method_options={"api_key_required": True},
        other_admitting_timeouts=[Duration.seconds(OTHER_TIMEOUT)],
    )
    return app, stack, jobs


@pytest.fixture(scope="module")
def template(built: tuple[App, Stack, GatewayJobs]) -> Template:
    return Template.from_stack(built[1])


def logical_id(stack: Stack, construct: Any) -> str:
    child: Any = construct.node.default_child
    return str(stack.resolve(child.logical_id))


def statements_of(template: Template, role_id: str) -> list[dict[str, Any]]:
    policies = template.find_resources(
        "AWS::IAM::Policy", {"Properties": {"Roles": Match.array_with([{"Ref": role_id}])}}
    )
    return [s for p in policies.values() for s in p["Properties"]["PolicyDocument"]["Statement"]]


def actions(statement: dict[str, Any]) -> list[str]:
    value = statement["Action"]
    return [value] if isinstance(value, str) else list(value)


def role_id(stack: Stack, function: Any) -> str:
    return logical_id(stack, function.role)


def test_the_jobs_table_expires_items_on_the_ttl_attribute_encrypted_with_the_tier_key(
    built: tuple[App, Stack, GatewayJobs], template: Template
) -> None:
    _, stack, jobs = built
    table = template.to_json()["Resources"][logical_id(stack, jobs.table)]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "job_id", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["SSESpecification"]["SSEType"] == "KMS"
    key_id = logical_id(stack, stack.node.find_child("Key"))
    assert table["Replicas"][0]["SSESpecification"]["KMSMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert table["Replicas"][0]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_the_ledger_gets_the_pending_index_and_keeps_the_billing_export_one(
    built: tuple[App, Stack, GatewayJobs], template: Template
) -> None:
    _, _stack, _ = built
    (ledger,) = [
        r["Properties"]
        for r in template.find_resources("AWS::DynamoDB::GlobalTable").values()
        if r["Properties"]["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    ]
    indexes = {i["IndexName"]: i for i in ledger["GlobalSecondaryIndexes"]}
    assert set(indexes) == {BILLING_INDEX, PENDING_INDEX}
    assert indexes[PENDING_INDEX]["KeySchema"] == [
        {"AttributeName": "pending", "KeyType": "HASH"},
        {"AttributeName": "pending_at", "KeyType": "RANGE"},
    ]
    assert indexes[PENDING_INDEX]["Projection"] == {
        "ProjectionType": "INCLUDE",
        "NonKeyAttributes": list(PENDING_PROJECTION),
    }


def test_the_worker_runs_the_worker_module_with_the_longest_async_limit(
    built: tuple[App, Stack, GatewayJobs], template: Template
) -> None:
    _, stack, jobs = built
    worker = template.to_json()["Resources"][logical_id(stack, jobs.worker)]["Properties"]
    assert worker["Handler"] == "ai_gateway.worker.lambda_handler"
    assert worker["Timeout"] == 840
    variables = worker["Environment"]["Variables"]
    assert set(variables) - HOUSE_VARIABLES <= {name.upper() for name in WorkerSettings.model_fields}
    assert variables["JOBS_TABLE"] == {"Ref": logical_id(stack, jobs.table)}
    assert (variables["GENERATION_TIMEOUT_SECONDS"], variables["AGENT_TIMEOUT_SECONDS"]) == ("835", "835")
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": logical_id(stack, jobs.worker)},
            "MaximumEventAgeInSeconds": WORKER_MAX_EVENT_AGE_SECONDS,
            "MaximumRetryAttempts": WORKER_RETRY_ATTEMPTS,
        },
    )


@pytest.mark.parametrize("function", ["GatewayFunction", "StreamFunction"])
def test_each_gateway_function_may_invoke_the_worker_only_and_reads_and_writes_jobs(
    built: tuple[App, Stack, GatewayJobs], template: Template, function: str
) -> None:
    _, stack, jobs = built
    gateway = stack.node.find_child(function)
    statements = statements_of(template, role_id(stack, gateway))
    invoke = [s for s in statements if "lambda:InvokeFunction" in actions(s)]
    assert invoke == [
        {
            "Action": "lambda:InvokeFunction",
            "Effect": "Allow",
            "Resource": {"Fn::GetAtt": [logical_id(stack, jobs.worker), "Arn"]},
        }
    ]
    table = [s for s in statements if s["Resource"] == {"Fn::GetAtt": [logical_id(stack, jobs.table), "Arn"]}]
    assert [sorted(actions(s)) for s in table] == [["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]]
    variables = template.to_json()["Resources"][logical_id(stack, gateway)]["Properties"]["Environment"]["Variables"]
    assert variables["JOBS_TABLE"] == {"Ref": logical_id(stack, jobs.table)}
    assert variables["WORKER_FUNCTION"] == {"Ref": logical_id(stack, jobs.worker)}
    assert json.loads(variables["WORKER_TIMEOUT_SECONDS"]) == 840
    assert json.loads(variables["ASYNC_TIMEOUTS_SECONDS"]) == {"chat": 300, "report": 840, "summary": 300}
    assert {"JOBS_TABLE", "WORKER_FUNCTION"} <= {name.upper() for name in GatewayJobsSettings.model_fields}


def test_the_worker_gets_the_stacks_grant_of_generation_and_reads_and_updates_jobs(
    built: tuple[App, Stack, GatewayJobs], template: Template
) -> None:
    _, stack, jobs = built
    statements = statements_of(template, role_id(stack, jobs.worker))
    by_action = {a: s for s in statements for a in actions(s)}
    assert by_action["bedrock:ApplyGuardrail"]["Resource"] == {"Fn::GetAtt": ["Guardrail", "GuardrailArn"]}
    assert sorted(actions(by_action["dynamodb:PutItem"])) == [
        "dynamodb:BatchGetItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    ]
    ledger_id = logical_id(stack, stack.node.find_child("Ledger"))
    assert by_action["dynamodb:PutItem"]["Resource"] == {"Fn::GetAtt": [ledger_id, "Arn"]}
    job_statements = [s for s in statements if s["Resource"] == {"Fn::GetAtt": [logical_id(stack, jobs.table), "Arn"]}]
    assert [sorted(actions(s)) for s in job_statements] == [["dynamodb:GetItem", "dynamodb:UpdateItem"]]
    invoked = json.dumps([s["Resource"] for s in statements if "bedrock:InvokeModel" in actions(s)])
    assert PRO in invoked
    assert LITE in invoked
    assert "lambda:InvokeFunction" not in by_action


def test_the_sweeper_runs_every_five_minutes_with_a_bound_past_every_admitting_lifetime(
    built: tuple[App, Stack, GatewayJobs], template: Template
) -> None:
    _, stack, jobs = built
    sweeper_id = logical_id(stack, jobs.sweeper)
    sweeper = template.to_json()["Resources"][sweeper_id]["Properties"]
    assert sweeper["Handler"] == "ai_gateway.sweeper.lambda_handler"
    template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(5 minutes)",
            "State": "ENABLED",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [sweeper_id, "Arn"]}})],
        },
    )
    variables = sweeper["Environment"]["Variables"]
    settings = SweeperSettings(
        ledger_table="ledger", lifetimes_seconds=tuple(json.loads(variables["LIFETIMES_SECONDS"]))
    )
    # Each gateway function's timeout; a job: the longest submission, its start window and the
    # worker's 840 s; the other admitting function's.
    job = STREAM_TIMEOUT + WORKER_MAX_EVENT_AGE_SECONDS + 840
    assert settings.lifetimes_seconds == (29, STREAM_TIMEOUT, job, OTHER_TIMEOUT)
    assert settings.bound_seconds > job
    assert jobs.bound_seconds == settings.bound_seconds


def test_the_sweeper_queries_the_pending_index_and_updates_the_ledger_only(
    built: tuple[App, Stack, GatewayJobs], template: Template
) -> None:
    _, stack, jobs = built
    ledger_id = logical_id(stack, stack.node.find_child("Ledger"))
    statements = [s for s in statements_of(template, role_id(stack, jobs.sweeper)) if "dynamodb" in json.dumps(s)]
    assert sorted((sorted(actions(s)), json.dumps(s["Resource"])) for s in statements) == sorted(
        [
            (
                ["dynamodb:Query"],
                json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [ledger_id, "Arn"]}, f"/index/{PENDING_INDEX}"]]}),
            ),
            (["dynamodb:PutItem", "dynamodb:UpdateItem"], json.dumps({"Fn::GetAtt": [ledger_id, "Arn"]})),
        ]
    )


def test_the_job_route_is_a_get_on_v1_jobs_id(built: tuple[App, Stack, GatewayJobs], template: Template) -> None:
    _, stack, jobs = built
    template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "jobs"})
    template.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "GET",
            "ResourceId": {"Ref": logical_id(stack, jobs.resource)},
            "ApiKeyRequired": True,
            "RequestParameters": {"method.request.path.id": True},
        },
    )


def test_the_construct_is_cdk_nag_clean(built: tuple[App, Stack, GatewayJobs]) -> None:
    app, stack, _ = built
    paths: dict[str, list[str]] = {}
    for pack in (AwsSolutionsChecks(app), NIST80053R5Checks(app)):
        for violation in pack.validate_scope(stack).violations:
            for resource in violation.violating_resources:
                paths.setdefault(violation.rule_name, []).append(str(resource.construct_path))
    # The packs do look at this stack: its bare test API is flagged (no access logs, no WAF) ...
    assert any(path.startswith("Jobs/Api") for found in paths.values() for path in found)
    # and the test's own gateway function, which acknowledges nothing, where the worker's and the
    # sweeper's acknowledgements answer the same rules:
    assert "Jobs/GatewayFunction/Resource" in paths["NIST.800.53.R5-LambdaDLQ"]
    # ... and nothing of the construct is, its acknowledgements included.
    assert {rule: [p for p in found if p.startswith("Jobs/GatewayJobs/")] for rule, found in paths.items()} == {
        rule: [] for rule in paths
    }


@pytest.mark.parametrize(
    ("seconds", "allowed"), [(29, "greater than or equal to 30"), (901, "less than or equal to 900")]
)
def test_an_async_limit_outside_30_to_900_seconds_is_refused(seconds: int, allowed: str) -> None:
    with pytest.raises(ConfigError, match=rf"output_types\.report\.async_timeout_seconds = {seconds}: .*{allowed}"):
        config_with(async_timeout_seconds=seconds)


def test_the_worker_timeout_is_the_longest_async_limit_and_the_default_300() -> None:
    assert worker_timeout_seconds(config_with()) == 300
    assert worker_timeout_seconds(config_with(async_timeout_seconds=900)) == 900
    assert "async_timeout_seconds" not in config_with().output_types["report"].model_dump()  # not the policy's
