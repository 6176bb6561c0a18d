"""Log groups API Gateway would otherwise create on first use: unencrypted and kept forever."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_apigateway as apigateway, aws_kms as kms, aws_logs as logs
from constructs import Construct

from stacks.shared.lambda_function import log_retention

STAGE = "live"  # the stage every REST API of the tier deploys to


def execution_logs(
    scope: Construct, id: str, *, api: apigateway.RestApi, stage_name: str, key: kms.IKey, retention_days: int
) -> logs.LogGroup:
    """The stage's execution log group, under the name API Gateway writes to
    (``API-Gateway-Execution-Logs_<api id>/<stage name>``), KMS-encrypted with retention, created
    before the stage starts logging. ``stage_name`` is the literal the stage was given (the
    stage's own name attribute would make the group depend on the stage it must precede)."""
    stage = api.deployment_stage
    group = logs.LogGroup(
        scope,
        id,
        log_group_name=f"API-Gateway-Execution-Logs_{api.rest_api_id}/{stage_name}",
        retention=log_retention(retention_days),
        encryption_key=key,
        removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    )
    stage.node.add_dependency(group)
    return group
