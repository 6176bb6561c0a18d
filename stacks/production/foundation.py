"""What every production stack builds on: the tier's KMS key, its access-log archive, and the
account-level switches the tier relies on (API Gateway's logging role, Macie)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack, aws_apigateway as apigateway, aws_iam as iam, aws_macie as macie
from constructs import Construct

from stacks.config import ProductionConfig, Tier
from stacks.shared.buckets import AccessLogBucket
from stacks.shared.encryption import TierKey
from stacks.shared.nag import acknowledge

# Services that write to the tier's encrypted queues and topics on another service's behalf:
# (statement id, service principal, the service whose API uses the key).
DELIVERING_SERVICES = (
    ("EventBridgeToQueues", "events.amazonaws.com", "sqs"),
    ("CloudWatchAlarmsToTopics", "cloudwatch.amazonaws.com", "sns"),
    ("EventBridgeToTopics", "events.amazonaws.com", "sns"),
)
MACIE_ROLE = "role/aws-service-role/macie.amazonaws.com/AWSServiceRoleForAmazonMacie"


class FoundationStack(Stack):
    """The production tier's KMS key and S3 access-log bucket, both retained on delete; the API
    Gateway account logging role; the Macie session (``macie.create_session``).

    Later production stacks encrypt with this key and log bucket access here; keeping them in
    their own stack lets those stacks be replaced without losing the audit trail.
    """

    def __init__(self, scope: Construct, id: str, *, prefix: str, config: ProductionConfig, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        name = f"{prefix}-{Tier.PRODUCTION}"
        self.key = TierKey(self, "Key", alias=f"alias/{name}", removal_policy=RemovalPolicy.RETAIN)
        for sid, service, via in DELIVERING_SERVICES:
            self.key.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:GenerateDataKey", "kms:Decrypt"],
                    resources=["*"],
                    conditions={"StringEquals": {"kms:ViaService": f"{via}.{self.region}.amazonaws.com"}},
                )
            )
        if config.macie.create_session:
            # Enabling Macie creates its service-linked role, which the key policy names: the
            # session comes first. (With create_session off, Macie is on and the role exists.)
            session = macie.CfnSession(self, "Macie", status="ENABLED", finding_publishing_frequency="FIFTEEN_MINUTES")
            self.key.node.add_dependency(session)
        # Macie reads the SSE-KMS objects it classifies.
        self.key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="MacieClassification",
                principals=[iam.ArnPrincipal(f"arn:{self.partition}:iam::{self.account}:{MACIE_ROLE}")],
                actions=["kms:Decrypt"],
                resources=["*"],
                conditions={"StringEquals": {"kms:ViaService": f"s3.{self.region}.amazonaws.com"}},
            )
        )
        self.access_logs = AccessLogBucket(
            self, "AccessLogs", retention_days=config.log_retention_days, removal_policy=RemovalPolicy.RETAIN
        )
        acknowledge(
            self.access_logs,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Access logs stay in the tier's account and region for their retention period; copying them to "
            "an organisation log-archive account is an account-level control outside this app.",
        )
        # API Gateway writes execution logs through one role per account and region; the tier's
        # APIs (the AI gateway, the ingestion push API) rely on it.
        api_logging = iam.Role(
            self,
            "ApiGatewayLogging",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            managed_policies=[
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
            ],
        )
        api_logging.apply_removal_policy(RemovalPolicy.RETAIN)
        apigateway.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=api_logging.role_arn)
        acknowledge(
            api_logging,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-wide logging role; AWS's managed policy is the documented way to let "
            "execution logs reach CloudWatch.",
        )
        CfnOutput(self, "KeyArn", value=self.key.key_arn)
        CfnOutput(self, "AccessLogBucketName", value=self.access_logs.bucket_name)
