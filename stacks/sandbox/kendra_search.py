"""An Amazon Kendra index over a prefix of the documents bucket, synced on a schedule."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack, aws_iam as iam, aws_kendra as kendra, aws_kms as kms, aws_s3 as s3
from constructs import Construct

from stacks.shared.buckets import grant_read_prefix
from stacks.shared.nag import acknowledge, acknowledge_inline_policy, nag_arn, nag_attribute
from stacks.shared.principals import service_acting_for

# What the S3 template connector does to the index while it syncs.
SYNC_INDEX_ACTIONS = [
    "kendra:BatchPutDocument",
    "kendra:BatchDeleteDocument",
    "kendra:PutPrincipalMapping",
    "kendra:DeletePrincipalMapping",
    "kendra:DescribePrincipalMapping",
    "kendra:ListGroupsOlderThanOrderingId",
]
INDEX_LOG_STREAM_ACTIONS = ["logs:DescribeLogStreams", "logs:CreateLogStream", "logs:PutLogEvents"]


class KendraSearch(Construct):
    """Kendra index, its S3 data source (template connector) and their two service roles.

    Defaults: the index encrypts with a Kendra-owned key; the data source crawls only ``prefix``
    of ``documents`` (full crawl) on ``sync_schedule``, mapping object titles and modified dates.
    The index's logs go to ``/aws/kendra/<index id>``, which Kendra makes itself (its role may):
    whether at creation or at the first sync is not documented, so it is not made here first (a
    name Kendra made meanwhile would fail the deploy).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        edition: str,
        documents: s3.IBucket,
        documents_key: kms.IKey,
        prefix: str,
        sync_schedule: str,
    ) -> None:
        super().__init__(scope, id)
        stack = Stack.of(self)
        kendra_logs = stack.format_arn(
            service="logs",
            resource="log-group",
            resource_name="/aws/kendra/*",
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

        index_role = iam.Role(
            self,
            "IndexRole",
            description=f"Kendra index {name}: publish its metrics and logs",
            assumed_by=service_acting_for(self, "kendra.amazonaws.com", service="kendra", resource="index"),
        )
        index_role.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": "AWS/Kendra"}},
            )
        )
        index_role.add_to_policy(iam.PolicyStatement(actions=["logs:DescribeLogGroups"], resources=["*"]))
        index_role.add_to_policy(iam.PolicyStatement(actions=["logs:CreateLogGroup"], resources=[kendra_logs]))
        index_role.add_to_policy(
            iam.PolicyStatement(actions=INDEX_LOG_STREAM_ACTIONS, resources=[f"{kendra_logs}:log-stream:*"])
        )
        acknowledge(
            index_role,
            "AwsSolutions-IAM5[Resource::*]",
            "cloudwatch:PutMetricData and logs:DescribeLogGroups have no resource type; "
            "PutMetricData is held to the AWS/Kendra namespace by condition.",
        )
        acknowledge(
            index_role,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'logs', 'log-group:/aws/kendra/*')}]",
            "Kendra names its log group after the index id, unknown before the index exists.",
        )
        acknowledge(
            index_role,
            f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'logs', 'log-group:/aws/kendra/*:log-stream:*')}]",
            "Kendra creates one log stream per sync job under its own log group.",
        )

        acknowledge_inline_policy(index_role)

        self.index = kendra.CfnIndex(self, "Index", name=name, edition=edition, role_arn=index_role.role_arn)
        self.index.node.add_dependency(index_role.node.find_child("DefaultPolicy"))

        source_role = iam.Role(
            self,
            "DataSourceRole",
            description=f"Kendra index {name}: crawl the documents prefix and write to the index",
            assumed_by=service_acting_for(self, "kendra.amazonaws.com", service="kendra", resource="index"),
        )
        grant_read_prefix(documents, documents_key, source_role, prefix=prefix, reader="The Kendra S3 connector")
        source_role.add_to_policy(
            iam.PolicyStatement(
                actions=SYNC_INDEX_ACTIONS,
                resources=[self.index.attr_arn, f"{self.index.attr_arn}/data-source/*"],
            )
        )
        acknowledge(
            source_role,
            f"AwsSolutions-IAM5[Resource::{nag_attribute(self.index, 'Arn')}/data-source/*]",
            "Principal mappings are kept per data source, whose id exists only after creation.",
        )

        acknowledge_inline_policy(source_role)

        self.data_source = kendra.CfnDataSource(
            self,
            "DataSource",
            index_id=self.index.attr_id,
            name="documents",
            type="TEMPLATE",
            role_arn=source_role.role_arn,
            schedule=sync_schedule,
        )
        # CDK types TemplateConfiguration.Template as a string; CloudFormation wants the object.
        self.data_source.add_property_override(
            "DataSourceConfiguration.TemplateConfiguration.Template",
            s3_template(bucket_name=documents.bucket_name, prefix=prefix),
        )
        self.data_source.node.add_dependency(source_role.node.find_child("DefaultPolicy"))

    @property
    def index_id(self) -> str:
        return self.index.attr_id

    @property
    def index_arn(self) -> str:
        return self.index.attr_arn

    @property
    def data_source_id(self) -> str:
        return self.data_source.attr_id


def s3_template(*, bucket_name: str, prefix: str) -> dict[str, object]:
    """The Kendra S3 connector template (schema: Kendra developer guide, "Amazon S3 template schema")."""
    return {
        "type": "S3",
        "version": "1.0.0",
        "syncMode": "FULL_CRAWL",
        "connectionConfiguration": {"repositoryEndpointMetadata": {"BucketName": bucket_name}},
        "repositoryConfigurations": {
            "document": {
                "fieldMappings": [
                    {"indexFieldName": "_document_title", "indexFieldType": "STRING", "dataSourceFieldName": "title"},
                    {
                        "indexFieldName": "_last_updated_at",
                        "indexFieldType": "DATE",
                        "dataSourceFieldName": "modified_date",
                    },
                ]
            }
        },
        "additionalProperties": {"inclusionPrefixes": [prefix]},
    }
