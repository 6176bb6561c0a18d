"""The production knowledge store: the curated bucket, the Knowledge Base over it, and the
ingestion pipeline that fills it (stacks/production/ingestion.py)."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Stack, aws_s3 as s3
from constructs import Construct

from stacks.production.context import ProductionContext
from stacks.production.ingestion import IngestionPipeline
from stacks.production.macie import MacieDiscovery
from stacks.shared.buckets import SecureBucket
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.nag import acknowledge


class KnowledgeStack(Stack):
    """Curated documents (KMS, TLS-only, versioned, access-logged, retained), a Knowledge Base over
    ``knowledge_base.documents_prefix`` with an S3 and a direct-ingestion data source, and the
    ingestion pipeline with its connectors that fill it."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        access_logs: s3.IBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        config, key, name = context.config, context.key, context.name
        self.curated = SecureBucket(
            self,
            "Curated",
            encryption_key=key,
            access_logs=access_logs,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            # Superseded copies are deleted by the pipeline; stragglers from an interrupted run expire.
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=Duration.days(30))],
        )
        acknowledge(
            self.curated,
            "NIST.800.53.R5-S3BucketReplicationEnabled",
            "Curated documents are derived from their sources by the ingestion pipeline and can be rebuilt "
            "from them; cross-region copies are a disaster-recovery decision taken per account.",
        )
        self.knowledge_base = VectorKnowledgeBase(
            self,
            "KnowledgeBase",
            name=f"{name}-kb",
            documents=self.curated,
            encryption_key=key,
            config=config.knowledge_base,
            direct_ingestion=True,
            vector_store=config.vector_store,
        )
        self.ingestion = IngestionPipeline(
            self,
            "Ingestion",
            context=context,
            access_logs=access_logs,
            curated=self.curated,
            knowledge_base=self.knowledge_base,
        )
        # Macie's resources need the account's Macie session (foundation stack); off: no Macie here.
        self.macie = (
            MacieDiscovery(
                self,
                "Macie",
                context=context,
                pipeline=self.ingestion,
                curated=self.curated,
                knowledge_base=self.knowledge_base,
                log_archive=access_logs,
            )
            if config.account_settings.macie != "off"
            else None
        )
        CfnOutput(self, "CuratedBucketName", value=self.curated.bucket_name)
        CfnOutput(self, "KnowledgeBaseId", value=self.knowledge_base.knowledge_base_id)
        CfnOutput(self, "DataSourceId", value=self.knowledge_base.data_source_id)
        CfnOutput(self, "DirectDataSourceId", value=self.knowledge_base.direct_source_id)
