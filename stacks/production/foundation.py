"""What every production stack builds on: the tier's KMS key, its access-log archive, and the
account-wide settings the tier relies on (adopted, not clobbered)."""

from __future__ import annotations

from typing import Any

from aws_cdk import Annotations, CfnOutput, RemovalPolicy, Stack, aws_iam as iam
from constructs import Construct

from stacks.config import ConfigError, ProductionConfig, Tier
from stacks.config.quotas import quota_problems
from stacks.production.account_settings import AccountSettings
from stacks.production.context import ProductionContext
from stacks.shared.buckets import AccessLogBucket
from stacks.shared.encryption import TierKey
from stacks.shared.nag import acknowledge
from stacks.shared.runtime_config import ConfigStore

# Services that write to the tier's encrypted queues and topics on another service's behalf:
# (statement id, service principal, the service whose API uses the key).
DELIVERING_SERVICES = (
    ("EventBridgeToQueues", "events.amazonaws.com", "sqs"),
    ("CloudWatchAlarmsToTopics", "cloudwatch.amazonaws.com", "sns"),
    ("EventBridgeToTopics", "events.amazonaws.com", "sns"),
)


class FoundationStack(Stack):
    """The production tier's KMS key (retained, through a rolled-back create too) and S3 access-log
    bucket (retained on delete), and the account settings the tier relies on
    (stacks/production/account_settings.py): Transaction Search, Bedrock model invocation logging,
    the Macie session and API Gateway's CloudWatch role, each managed, adopted or left alone per
    ``account_settings``.

    It also holds the tier's AppConfig application and deployment strategy: the runtime
    configuration later stacks deploy for their functions (stacks/shared/runtime_config.py).

    Later production stacks encrypt with this key and log bucket access here; keeping them in
    their own stack lets those stacks be replaced without losing the audit trail.
    """

    def __init__(self, scope: Construct, id: str, *, prefix: str, config: ProductionConfig, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        name = f"{prefix}-{Tier.PRODUCTION}"
        # The account quotas this config takes (stacks/config/quotas.py): past a hard one, no deploy.
        errors, warnings = quota_problems(config)
        if errors:
            raise ConfigError("; ".join(errors))
        for warning in warnings:
            Annotations.of(self).add_warning_v2("blueprint:account-quota", warning)
        # Kept even when the stack's first create rolls back: by then account-wide log groups may be
        # encrypted with it (aws/spans, Macie's jobs' group, the invocation log group), and they
        # stay; a deleted key would stop their writes for the whole account, and a retry would not
        # repair them. It has no name to block the retry; its alias does, and is not kept.
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
        self.access_logs = AccessLogBucket(
            self,
            "AccessLogs",
            retention_days=config.log_retention_days,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        acknowledge(
            self.access_logs,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Access logs stay in the tier's account and region for their retention period; copying them to "
            "an organisation log-archive account is an account-level control outside this app.",
        )
        # Runtime configuration (AppConfig): each later stack deploys its functions' documents here.
        self.config_store = ConfigStore(self, "RuntimeConfig", name=name, settings=config.runtime_config)
        self.context = ProductionContext(prefix=prefix, config=config, key=self.key, config_store=self.config_store)
        self.account_settings = AccountSettings(self, "AccountSettings", context=self.context)
        CfnOutput(self, "KeyArn", value=self.key.key_arn)
        CfnOutput(self, "AccessLogBucketName", value=self.access_logs.bucket_name)
