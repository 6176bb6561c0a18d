"""The production knowledge store: the curated bucket and the Knowledge Base over it."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, RemovalPolicy, Stack, aws_kms as kms, aws_s3 as s3
from constructs import Construct

from stacks.config import ProductionConfig, Tier
from stacks.shared.buckets import SecureBucket
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.nag import acknowledge


class KnowledgeStack(Stack):
    """Curated documents (KMS, TLS-only, versioned, access-logged, retained) and a Knowledge Base
    on S3 Vectors over ``knowledge_base.documents_prefix``; the ingestion pipelines fill it."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        config: ProductionConfig,
        key: kms.IKey,
        access_logs: s3.IBucket,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        name = f"{prefix}-{Tier.PRODUCTION}"
        self.curated = SecureBucket(
            self, "Curated", encryption_key=key, access_logs=access_logs, removal_policy=RemovalPolicy.RETAIN
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
        )
        CfnOutput(self, "CuratedBucketName", value=self.curated.bucket_name)
        CfnOutput(self, "KnowledgeBaseId", value=self.knowledge_base.knowledge_base_id)
