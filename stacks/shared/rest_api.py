"""The house REST API: the AI gateway and the push connector's API are each one of these."""

from __future__ import annotations

from aws_cdk import RemovalPolicy, aws_apigateway as apigateway, aws_kms as kms, aws_logs as logs
from constructs import Construct

from stacks.shared.expect import default_child
from stacks.shared.lambda_function import log_retention
from stacks.shared.nag import acknowledge

STAGE = "live"  # the stage every REST API of the tier deploys to


class RegionalRestApi(apigateway.RestApi):
    """A regional REST API, deployed to the ``live`` stage, with the house defaults:

    - the TLS security policy given (and, for the enhanced ``SecurityPolicy_*`` policies, the
      STRICT endpoint access mode they require to be enforced);
    - access logs in ``access_log_format`` and execution logs (INFO, never bodies) to log groups
      encrypted with ``key``, kept ``retention_days`` and retained, the execution log group made
      before the stage first logs (API Gateway would make it unencrypted and keep it forever);
    - X-Ray tracing and CloudWatch metrics on; no CloudWatch role of its own (the account's API
      Gateway logging role is the foundation stack's account setting);
    - cdk-nag acknowledgements for client certificates (Lambda proxy backends only) and response
      caching (``cache_reason`` says why this API must not cache).

    The log groups are siblings named ``access_logs_id`` and ``execution_logs_id`` (ids of shipped
    resources never change).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        rest_api_name: str,
        description: str,
        key: kms.IKey,
        retention_days: int,
        tls_policy: str,
        access_log_format: apigateway.AccessLogFormat,
        cache_reason: str,
        access_logs_id: str,
        execution_logs_id: str,
        api_key_source_type: apigateway.ApiKeySourceType | None = None,
        throttling_rate_limit: int | None = None,
        throttling_burst_limit: int | None = None,
    ) -> None:
        access_logs = logs.LogGroup(
            scope,
            access_logs_id,
            retention=log_retention(retention_days),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        super().__init__(
            scope,
            id,
            rest_api_name=rest_api_name,
            description=description,
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            api_key_source_type=api_key_source_type,
            cloud_watch_role=False,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE,
                logging_level=apigateway.MethodLoggingLevel.INFO,
                data_trace_enabled=False,  # never log request or response bodies
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=throttling_rate_limit,
                throttling_burst_limit=throttling_burst_limit,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=access_log_format,
            ),
        )
        self.access_logs = access_logs
        self.execution_logs = logs.LogGroup(
            scope,
            execution_logs_id,
            # The name API Gateway writes to; the literal stage name (the stage's own attribute would
            # make the group depend on the stage it must precede).
            log_group_name=f"API-Gateway-Execution-Logs_{self.rest_api_id}/{STAGE}",
            retention=log_retention(retention_days),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        self.deployment_stage.node.add_dependency(self.execution_logs)
        # The default endpoint of a regional API accepts TLS 1.0 unless a security policy says otherwise.
        cfn_api = default_child(self, apigateway.CfnRestApi)
        cfn_api.security_policy = tls_policy
        if tls_policy.startswith("SecurityPolicy_"):
            cfn_api.endpoint_access_mode = "STRICT"
        acknowledge(
            self,
            "NIST.800.53.R5-APIGWSSLEnabled",
            "The backends are Lambda proxy integrations reached over AWS's own signed invoke path; client "
            "certificates authenticate API Gateway to HTTP backends, of which there are none.",
        )
        acknowledge(self, "NIST.800.53.R5-APIGWCacheEnabledAndEncrypted", cache_reason)
