"""The house constructs on their own: what each guarantees whatever stack uses it."""

from __future__ import annotations

from typing import Any

import pytest
from aws_cdk import (
    App,
    Environment,
    RemovalPolicy,
    Stack,
    assertions,
    aws_apigateway as apigateway,
    aws_iam as iam,
    aws_kms as kms,
)

from stacks.shared.rest_api import STAGE, RegionalRestApi
from stacks.shared.table import SecureTable


def rest_api_template(tls_policy: str) -> dict[str, Any]:
    stack = Stack(App(), "Api")
    api = RegionalRestApi(
        stack,
        "Api",
        rest_api_name="api",
        description="test",
        key=kms.Key(stack, "Key"),
        retention_days=30,
        tls_policy=tls_policy,
        access_log_format=apigateway.AccessLogFormat.clf(),
        cache_reason="test",
        access_logs_id="AccessLogs",
        execution_logs_id="ExecutionLogs",
    )
    api.root.add_method("GET", apigateway.MockIntegration())
    return dict(assertions.Template.from_stack(stack).to_json())


@pytest.mark.parametrize(("policy", "strict"), [("TLS_1_2", False), ("SecurityPolicy_TLS13_1_2_2021_06", True)])
def test_a_rest_api_enforces_its_tls_policy(policy: str, strict: bool) -> None:
    template = rest_api_template(policy)
    (api,) = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::RestApi"]
    assert api["SecurityPolicy"] == policy
    assert api.get("EndpointAccessMode") == ("STRICT" if strict else None)
    assert api["EndpointConfiguration"] == {"Types": ["REGIONAL"]}


def test_a_rest_api_logs_encrypted_before_its_stage_exists_and_never_bodies() -> None:
    resources = rest_api_template("TLS_1_2")["Resources"]
    groups = {k[:-8]: r for k, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert set(groups) == {"AccessLogs", "ExecutionLogs"}
    for group in groups.values():
        assert "KmsKeyId" in group["Properties"]
        assert group["DeletionPolicy"] == "RetainExceptOnCreate"
    name = groups["ExecutionLogs"]["Properties"]["LogGroupName"]["Fn::Join"][1]
    assert name[0] == "API-Gateway-Execution-Logs_"
    assert name[-1] == f"/{STAGE}"
    (stage_id, stage), *_ = [(k, r) for k, r in resources.items() if r["Type"] == "AWS::ApiGateway::Stage"]
    assert any(d.startswith("ExecutionLogs") for d in stage["DependsOn"])
    (method,) = stage["Properties"]["MethodSettings"]
    assert (method["LoggingLevel"], method["DataTraceEnabled"]) == ("INFO", False)
    assert stage["Properties"]["TracingEnabled"] is True
    assert stage_id


@pytest.mark.parametrize(("removal", "protected"), [(RemovalPolicy.RETAIN, True), (RemovalPolicy.DESTROY, False)])
def test_a_table_is_encrypted_recoverable_and_protected_when_retained(removal: RemovalPolicy, protected: bool) -> None:
    stack = Stack(App(), "Tables", env=Environment(account="123456789012", region="us-east-1"))
    key = kms.Key(stack, "Key")
    table = SecureTable(stack, "Table", key=key, partition_key="pk", removal_policy=removal)
    role = iam.Role(stack, "Reader", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    table.grant_items(role, ["dynamodb:GetItem"], key_actions=["kms:Decrypt"])
    template = assertions.Template.from_stack(stack)
    (props,) = [r["Properties"] for r in template.find_resources("AWS::DynamoDB::GlobalTable").values()]
    assert props["SSESpecification"]["SSEType"] == "KMS"
    assert props["Replicas"][0]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["Replicas"][0].get("DeletionProtectionEnabled", False) is protected
    (policy,) = template.find_resources("AWS::IAM::Policy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    # The item actions on the table alone (no index ARNs), the key actions on the key alone.
    assert [s["Action"] for s in statements] == ["dynamodb:GetItem", "kms:Decrypt"]
    assert statements[0]["Resource"] == {"Fn::GetAtt": ["TableCD117FA1", "Arn"]}


def test_a_function_whose_environment_lambda_would_refuse_fails_synth_naming_it() -> None:
    from legacy_tools.contract import LegacyApi, Settings
    from shared.runtime_config import ConfigLocation
    from stacks.config import ConfigError
    from stacks.shared.lambda_function import BlueprintFunction, environment_bytes

    location = ConfigLocation(application="a", environment="e", profile="p", environment_name="tools")

    def function(tools: int) -> None:
        # Chained tools' declared fields are code's, in the environment (single-call tools are in AppConfig).
        api = LegacyApi(
            base_url="https://api.example.com",
            token_path="/t",
            secret_name="s",
            timeout_seconds=1,
            max_attempts=1,
            top_k=1,
            byte_budget=512,
            fields={f"tool_{i}": {f"field_{j}": f"data.items.b{j}" for j in range(20)} for i in range(tools)},
        )
        settings = Settings(api_name="orders", legacy_api=api, single_call_tools=location)
        BlueprintFunction(
            Stack(App(), "Env"),
            "Tools",
            package="legacy_tools",
            description="test",
            metrics_namespace="test",
            log_retention_days=1,
            removal_policy=RemovalPolicy.DESTROY,
            settings=settings,
        )

    function(2)  # well inside the limit
    with pytest.raises(ConfigError, match=r"Tools \(legacy_tools\): its environment would take about \d+ bytes"):
        function(8)
    assert environment_bytes({"A": "${Token[TOKEN.12]}"}) == 1 + 128
