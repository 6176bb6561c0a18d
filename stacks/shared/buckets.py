"""S3 buckets with the house defaults: encrypted, TLS-only, versioned, private, access-logged."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy, aws_iam as iam, aws_kms as kms, aws_s3 as s3
from constructs import Construct

from stacks.shared.expect import default_child
from stacks.shared.nag import acknowledge, nag_attribute


class AccessLogBucket(s3.Bucket):
    """Destination for S3 server access logs.

    Defaults: S3-managed encryption (server access logging cannot write to SSE-KMS buckets),
    TLS only, public access blocked, versioned; logs (and their old versions) expire after
    ``retention_days``.
    """

    def __init__(self, scope: Construct, id: str, *, retention_days: int, removal_policy: RemovalPolicy) -> None:
        super().__init__(
            scope,
            id,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(retention_days),
                    noncurrent_version_expiration=Duration.days(1),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal_policy,
            auto_delete_objects=removal_policy == RemovalPolicy.DESTROY,
        )
        for rule in ("AwsSolutions-S1", "NIST.800.53.R5-S3BucketLoggingEnabled"):
            acknowledge(self, rule, "This is the server access log destination; logging it into itself would loop.")
        acknowledge(
            self,
            "NIST.800.53.R5-S3DefaultEncryptionKMS",
            "S3 server access logging delivers only to SSE-S3 buckets; SSE-KMS destinations are unsupported.",
        )


class SecureBucket(s3.Bucket):
    """A data bucket.

    Defaults: SSE-KMS with the given key and an S3 Bucket Key (fewer KMS calls), TLS only,
    public access blocked, versioned, server access logs to ``access_logs`` under a prefix named
    after the construct id. ``removal_policy`` DESTROY also empties the bucket on delete.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        encryption_key: kms.IKey,
        access_logs: s3.IBucket,
        removal_policy: RemovalPolicy,
        event_bridge_enabled: bool = False,
        lifecycle_rules: Sequence[s3.LifecycleRule] | None = None,
    ) -> None:
        super().__init__(
            scope,
            id,
            lifecycle_rules=lifecycle_rules,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix=f"{id}/",
            removal_policy=removal_policy,
            auto_delete_objects=removal_policy == RemovalPolicy.DESTROY,
        )
        if event_bridge_enabled:
            # Set on the bucket itself: CDK's event_bridge_enabled adds a custom-resource Lambda.
            bucket = default_child(self, s3.CfnBucket)
            bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
                event_bridge_configuration=s3.CfnBucket.EventBridgeConfigurationProperty(event_bridge_enabled=True)
            )


def grant_read_prefix(bucket: s3.IBucket, key: kms.IKey, role: iam.IRole, *, prefix: str, reader: str) -> None:
    """Let ``role`` list ``bucket`` and read and decrypt the objects under ``prefix``, no others.

    ``reader`` names who reads, for the cdk-nag acknowledgement of the prefix wildcard.
    """
    role.add_to_principal_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn]))
    role.add_to_principal_policy(
        iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(f"{prefix}*")])
    )
    key.grant_decrypt(role)
    acknowledge(
        role,
        f"AwsSolutions-IAM5[Resource::{nag_attribute(bucket, 'Arn')}/{prefix}*]",
        f"{reader} reads every object under the configured documents prefix, and only those.",
    )
