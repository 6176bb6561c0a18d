"""The house DynamoDB table: every table of the project is one of these."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import RemovalPolicy, aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms
from constructs import Construct

from stacks.shared.nag import acknowledge

# What a principal needs of the table's key to read and write items (SSE-KMS with the tier key).
TABLE_KEY_ACTIONS = ["kms:Decrypt", "kms:DescribeKey", "kms:Encrypt", "kms:GenerateDataKey"]


class SecureTable(dynamodb.TableV2):
    """A DynamoDB table with the house defaults: string partition key (and optional string sort
    key), encrypted with the given customer-managed key, point-in-time recovery on (off only with
    ``no_recovery_reason``, acknowledged with it), deletion protection whenever the table is
    retained, optional TTL attribute and global indexes.

    ``grant_items`` gives a principal named item actions on the table alone (not its indexes) and
    what it needs of the key; the table's readers of indexes are granted separately.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        key: kms.IKey,
        partition_key: str,
        removal_policy: RemovalPolicy,
        sort_key: str | None = None,
        time_to_live_attribute: str | None = None,
        global_secondary_indexes: Sequence[dynamodb.GlobalSecondaryIndexPropsV2] | None = None,
        backup_reason: str = "Point-in-time recovery keeps 35 days of continuous backups; an AWS Backup plan is an "
        "account-level decision outside this app.",
        no_recovery_reason: str | None = None,
    ) -> None:
        string = dynamodb.AttributeType.STRING
        super().__init__(
            scope,
            id,
            partition_key=dynamodb.Attribute(name=partition_key, type=string),
            sort_key=dynamodb.Attribute(name=sort_key, type=string) if sort_key else None,
            time_to_live_attribute=time_to_live_attribute,
            global_secondary_indexes=global_secondary_indexes,
            encryption=dynamodb.TableEncryptionV2.customer_managed_key(key),
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=no_recovery_reason is None
            ),
            deletion_protection=removal_policy == RemovalPolicy.RETAIN,
            removal_policy=removal_policy,
        )
        self._key = key
        acknowledge(self, "NIST.800.53.R5-DynamoDBInBackupPlan", backup_reason)
        if no_recovery_reason is not None:
            acknowledge(self, "AwsSolutions-DDB3", no_recovery_reason)
            acknowledge(self, "NIST.800.53.R5-DynamoDBPITREnabled", no_recovery_reason)

    def grant_items(self, grantee: iam.IGrantable, actions: Sequence[str], *, key_actions: Sequence[str] = ()) -> None:
        """Item ``actions`` on this table (not its indexes), and ``key_actions`` on its key."""
        iam.Grant.add_to_principal(grantee=grantee, actions=list(actions), resource_arns=[self.table_arn])
        if key_actions:
            self._key.grant(grantee, *key_actions)
