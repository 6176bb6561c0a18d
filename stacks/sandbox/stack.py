"""The sandbox tier: documents, a Knowledge Base and Kendra over them, a query endpoint, cost guards."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, CfnResource, RemovalPolicy, Stack, Tags, aws_logs as logs
from constructs import Construct

from stacks.config import SandboxConfig, Tier
from stacks.config.sandbox import BudgetScope
from stacks.sandbox.cost_guard import CostGuard
from stacks.sandbox.kendra_search import KendraSearch
from stacks.sandbox.prototype_query import PrototypeQuery
from stacks.shared.buckets import AccessLogBucket, SecureBucket
from stacks.shared.encryption import TierKey
from stacks.shared.expect import expect
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.lambda_function import log_retention
from stacks.shared.nag import acknowledge


class SandboxStack(Stack):
    """Everything a prototype needs, in one stack so that one `cdk destroy` removes it all.

    Every resource is DESTROY (buckets are emptied first) and the stack carries an expiry tag.
    ``config`` is the tier's settings with the workload's own (BlueprintConfig.sandbox_for);
    ``prompt`` is the workload's tuned ``generation.prompt``, which its query function answers with.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        workload: str,
        config: SandboxConfig,
        prompt: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        name = f"{prefix}-{Tier.SANDBOX}-{workload}"
        Tags.of(self).add("expires-on", config.expires_on.isoformat())

        key = TierKey(self, "Key", alias=f"alias/{name}", removal_policy=RemovalPolicy.DESTROY)
        access_logs = AccessLogBucket(
            self, "AccessLogs", retention_days=config.log_retention_days, removal_policy=RemovalPolicy.DESTROY
        )
        documents = SecureBucket(
            self, "Documents", encryption_key=key, access_logs=access_logs, removal_policy=RemovalPolicy.DESTROY
        )

        _auto_delete_logs(self, key=key, retention_days=config.log_retention_days)
        for bucket in (access_logs, documents):
            acknowledge(
                bucket,
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "Sandbox data is a disposable copy of the team's sources and is destroyed with the tier.",
            )

        knowledge_base = VectorKnowledgeBase(
            self,
            "KnowledgeBase",
            name=f"{name}-kb",
            documents=documents,
            encryption_key=key,
            config=config.knowledge_base,
        )
        kendra = (
            KendraSearch(
                self,
                "Kendra",
                name=name,
                edition=config.kendra.edition,
                documents=documents,
                documents_key=key,
                prefix=config.knowledge_base.documents_prefix,
                sync_schedule=config.kendra.sync_schedule,
            )
            if config.kendra.enabled
            else None
        )
        query = PrototypeQuery(
            self,
            "Query",
            config=config.query,
            prompt=prompt,
            knowledge_base=knowledge_base,
            kendra=kendra,
            metrics_namespace=f"{prefix}/{Tier.SANDBOX}/{workload}",
            log_retention_days=config.log_retention_days,
            log_key=key,
        )
        CostGuard(
            self,
            "CostGuard",
            # Budget names are unique in an account, not a region: the same workload's sandbox in
            # two regions of one account must not collide.
            budget_name=f"{name}-{self.region}-monthly",
            monthly_limit_usd=config.budget.monthly_limit_usd,
            threshold_percent=config.budget.alert_threshold_percent,
            emails=config.budget.alert_emails,
            cost_filter_tag=_budget_tag(config.budget.scope, workload),
        )

        CfnOutput(self, "DocumentsBucketName", value=documents.bucket_name, description="Upload documents here")
        CfnOutput(
            self, "DocumentsPrefix", value=config.knowledge_base.documents_prefix, description="...under this prefix"
        )
        CfnOutput(self, "KnowledgeBaseId", value=knowledge_base.knowledge_base_id)
        CfnOutput(
            self,
            "DataSourceId",
            value=knowledge_base.data_source_id,
            description="Sync: aws bedrock-agent start-ingestion-job --knowledge-base-id ... --data-source-id ...",
        )
        if kendra is not None:
            CfnOutput(self, "KendraIndexId", value=kendra.index_id)
            CfnOutput(
                self,
                "KendraDataSourceId",
                value=kendra.data_source_id,
                description="Sync now: aws kendra start-data-source-sync-job --index-id ... --id ...",
            )
        CfnOutput(self, "QueryUrl", value=query.url.url, description="POST {url}query with SigV4 (service lambda)")


# The tags stacks/tiers.py puts on every stack of a tier and on each workload's sandbox: a budget
# scoped to the tier or the workload counts them.
TIER_TAG = "tier"
WORKLOAD_TAG = "workload"


def _budget_tag(scope: BudgetScope, workload: str) -> str | None:
    """The cost-allocation tag ("key$value") a sandbox's budget counts (config sandbox.budget.scope);
    None for the whole account."""
    return {"account": None, "tier": f"{TIER_TAG}${Tier.SANDBOX}", "workload": f"{WORKLOAD_TAG}${workload}"}[scope]


# CDK's provider behind the buckets' auto-delete custom resources (one per stack).
AUTO_DELETE_PROVIDER = "Custom::S3AutoDeleteObjectsCustomResourceProvider"


def _auto_delete_logs(stack: Stack, *, key: TierKey, retention_days: int) -> None:
    """The log group of CDK's bucket-emptying function, created before it first runs (it would
    create one unencrypted, kept forever), encrypted and kept ``retention_days``, deleted last."""
    provider = stack.node.try_find_child(AUTO_DELETE_PROVIDER)
    if provider is None:
        return
    handler = expect(provider.node.find_child("Handler"), CfnResource, f"{provider.node.path}/Handler")
    group = logs.LogGroup(
        stack,
        "AutoDeleteObjectsLogs",
        log_group_name=f"/aws/lambda/{handler.ref}",
        retention=log_retention(retention_days),
        encryption_key=key,
        removal_policy=RemovalPolicy.DESTROY,
    )
    for construct in stack.node.find_all():
        if isinstance(construct, CfnResource) and construct.cfn_resource_type == "Custom::S3AutoDeleteObjects":
            construct.node.add_dependency(group)
