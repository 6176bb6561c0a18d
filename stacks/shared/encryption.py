"""The customer-managed KMS key each tier encrypts its data and logs with."""

from __future__ import annotations

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack, aws_iam as iam, aws_kms as kms
from constructs import Construct

# The key-policy actions CloudWatch Logs documents for encrypting log groups with a customer key.
LOGS_KEY_ACTIONS = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]


class TierKey(kms.Key):
    """A symmetric KMS key with yearly rotation for one tier's data and log groups.

    Defaults: rotation on, a 7-day pending window when the tier is destroyed, and a key-policy
    statement that lets CloudWatch Logs use it for this account's log groups in this region.
    """

    def __init__(self, scope: Construct, id: str, *, alias: str, removal_policy: RemovalPolicy) -> None:
        super().__init__(
            scope,
            id,
            alias=alias,
            description=f"Data and log encryption for {alias.removeprefix('alias/')}",
            enable_key_rotation=True,
            pending_window=Duration.days(7),
            removal_policy=removal_policy,
        )
        stack = Stack.of(self)
        self.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchLogsUse",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=LOGS_KEY_ACTIONS,
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name="*",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
