"""What every production stack builds on: the tier's KMS key and its access-log archive."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from constructs import Construct

from stacks.config import ProductionConfig, Tier
from stacks.shared.buckets import AccessLogBucket
from stacks.shared.encryption import TierKey
from stacks.shared.nag import acknowledge


class FoundationStack(Stack):
    """The production tier's KMS key and S3 access-log bucket, both retained on delete.

    Later production stacks (gateway, agents, ingestion) encrypt with this key and log bucket
    access here; keeping them in their own stack lets those stacks be replaced without losing
    the audit trail.
    """

    def __init__(self, scope: Construct, id: str, *, prefix: str, config: ProductionConfig, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        name = f"{prefix}-{Tier.PRODUCTION}"
        self.key = TierKey(self, "Key", alias=f"alias/{name}", removal_policy=RemovalPolicy.RETAIN)
        self.access_logs = AccessLogBucket(
            self, "AccessLogs", retention_days=config.log_retention_days, removal_policy=RemovalPolicy.RETAIN
        )
        acknowledge(
            self.access_logs,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Access logs stay in the tier's account and region for their retention period; copying them to "
            "an organisation log-archive account is an account-level control outside this app.",
        )
        CfnOutput(self, "KeyArn", value=self.key.key_arn)
        CfnOutput(self, "AccessLogBucketName", value=self.access_logs.bucket_name)
