"""A Bedrock Knowledge Base over a prefix of an S3 bucket, on S3 Vectors or OpenSearch Serverless."""

from __future__ import annotations

import json
import re

from aws_cdk import (
    DefaultStackSynthesizer,
    Fn,
    Stack,
    aws_bedrock as bedrock,
    aws_iam as iam,
    aws_kms as kms,
    aws_s3 as s3,
    aws_s3vectors as s3vectors,
)
from constructs import Construct

from stacks.config import (
    Chunking,
    FixedSizeChunking,
    HierarchicalChunking,
    KnowledgeBaseConfig,
    SemanticChunking,
    VectorStore,
)
from stacks.shared.bedrock import grant_invoke, model_arns
from stacks.shared.buckets import grant_read_prefix
from stacks.shared.nag import acknowledge, acknowledge_inline_policy, nag_attribute
from stacks.shared.naming import generation
from stacks.shared.principals import service_acting_for

# What the Knowledge Base service role does to its vector index (sync writes and deletes,
# retrieval queries). Each action takes the index as its resource.
VECTOR_INDEX_ACTIONS = [
    "s3vectors:GetIndex",
    "s3vectors:QueryVectors",
    "s3vectors:PutVectors",
    "s3vectors:GetVectors",
    "s3vectors:DeleteVectors",
]
OPENSEARCH_INDEX = "bedrock-knowledge-base"
OPENSEARCH_FIELDS = {"vector": "embedding", "text": "AMAZON_BEDROCK_TEXT_CHUNK", "metadata": "AMAZON_BEDROCK_METADATA"}
# What the KB role and the deploying role do inside the collection's index.
OPENSEARCH_INDEX_PERMISSIONS = [
    "aoss:CreateIndex",
    "aoss:DescribeIndex",
    "aoss:UpdateIndex",
    "aoss:ReadDocument",
    "aoss:WriteDocument",
]
# What the S3 Vectors indexing service needs on the key that encrypts the vector bucket.
VECTOR_INDEXING_KEY_ACTIONS = ["kms:Decrypt"]
# What others may do with a Knowledge Base (its grant_* methods).
RETRIEVE_ACTIONS = ["bedrock:Retrieve"]
DOCUMENT_ACTIONS = ["bedrock:IngestKnowledgeBaseDocuments", "bedrock:DeleteKnowledgeBaseDocuments"]
DELETE_DOCUMENT_ACTIONS = ["bedrock:DeleteKnowledgeBaseDocuments"]
SYNC_ACTIONS = ["bedrock:StartIngestionJob"]


class VectorKnowledgeBase(Construct):
    """Knowledge Base + vector store + S3 data source + least-privilege service role.

    On S3 Vectors (the default): the vector bucket is encrypted with ``encryption_key``; the
    index uses float32 vectors, cosine distance, and the dimension of the embedding model in
    ``config``; Bedrock's text and metadata keys are non-filterable (they exceed the
    filterable-metadata size limit). On OpenSearch Serverless: a vector-search collection
    encrypted with the same key and an HNSW (faiss) index of that dimension.
    ``direct_ingestion`` adds a custom data source for documents sent directly.
    The data source indexes ``config.documents_prefix`` of ``documents`` with the configured
    chunking, and deletes vectors when documents are deleted.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        documents: s3.IBucket,
        encryption_key: kms.IKey,
        config: KnowledgeBaseConfig,
        direct_ingestion: bool = False,
        vector_store: VectorStore = "s3_vectors",
    ) -> None:
        super().__init__(scope, id)
        self.knowledge_base_dependencies: list[Construct] = []
        # CloudFormation can only replace a KB whose embedding model or vector store changes, and a
        # data source whose chunking changes: their names (unique per account, per KB) and the KB's
        # logical id carry these generations, so a replacement never collides with the old one and
        # every stack that reads the KB's id is updated in the same deploy (stacks/shared/naming.py).
        kb_generation = generation(config.embedding_model_id, config.embedding_dimensions, vector_store)
        chunking_generation = generation(config.chunking.model_dump(mode="json"))

        embedding = model_arns(self, config.embedding_model_id)
        self.role = iam.Role(
            self,
            "Role",
            description=f"Bedrock Knowledge Base {name}: embed, read documents, write its vector index",
            assumed_by=service_acting_for(self, "bedrock.amazonaws.com", service="bedrock", resource="knowledge-base"),
        )
        grant_invoke(self.role, embedding)
        grant_read_prefix(
            documents, encryption_key, self.role, prefix=config.documents_prefix, reader="The Knowledge Base"
        )
        if vector_store == "s3_vectors":
            storage = self._s3_vectors(encryption_key, config, kb_generation)
        else:
            storage = self._opensearch_serverless(name, encryption_key, config, kb_generation)
        acknowledge_inline_policy(self.role)
        # Ingestion's transient data is encrypted under this key (the data source's server-side
        # encryption configuration); reading it back needs the Decrypt granted above.
        encryption_key.grant(self.role, "kms:GenerateDataKey")

        self.knowledge_base = bedrock.CfnKnowledgeBase(
            self,
            f"KnowledgeBase{kb_generation}",
            name=f"{name}-{kb_generation}",
            role_arn=self.role.role_arn,
            knowledge_base_configuration=bedrock.CfnKnowledgeBase.KnowledgeBaseConfigurationProperty(
                type="VECTOR",
                vector_knowledge_base_configuration=bedrock.CfnKnowledgeBase.VectorKnowledgeBaseConfigurationProperty(
                    embedding_model_arn=embedding.invoke_arn,
                    embedding_model_configuration=bedrock.CfnKnowledgeBase.EmbeddingModelConfigurationProperty(
                        bedrock_embedding_model_configuration=bedrock.CfnKnowledgeBase.BedrockEmbeddingModelConfigurationProperty(
                            dimensions=config.embedding_dimensions, embedding_data_type="FLOAT32"
                        )
                    ),
                ),
            ),
            storage_configuration=storage,
        )
        # Bedrock checks the role's permissions when the KB is created, so the policy goes first
        # (and, on OpenSearch Serverless, the index it writes to).
        self.knowledge_base.node.add_dependency(self.role.node.find_child("DefaultPolicy"))
        for dependency in self.knowledge_base_dependencies:
            self.knowledge_base.node.add_dependency(dependency)

        self.data_source = bedrock.CfnDataSource(
            self,
            "DataSource",
            name=f"documents-{chunking_generation}",
            knowledge_base_id=self.knowledge_base.attr_knowledge_base_id,
            data_deletion_policy="DELETE",
            data_source_configuration=bedrock.CfnDataSource.DataSourceConfigurationProperty(
                type="S3",
                s3_configuration=bedrock.CfnDataSource.S3DataSourceConfigurationProperty(
                    bucket_arn=documents.bucket_arn,
                    inclusion_prefixes=[config.documents_prefix],
                ),
            ),
            server_side_encryption_configuration=bedrock.CfnDataSource.ServerSideEncryptionConfigurationProperty(
                kms_key_arn=encryption_key.key_arn
            ),
            vector_ingestion_configuration=bedrock.CfnDataSource.VectorIngestionConfigurationProperty(
                chunking_configuration=chunking_configuration(config.chunking)
            ),
        )

        # A custom data source takes documents directly (IngestKnowledgeBaseDocuments), e.g. the
        # real-time items the ingestion pipeline sends, with their metadata inline.
        self.direct_source = (
            bedrock.CfnDataSource(
                self,
                "DirectSource",
                name=f"direct-{chunking_generation}",
                knowledge_base_id=self.knowledge_base.attr_knowledge_base_id,
                data_deletion_policy="DELETE",
                data_source_configuration=bedrock.CfnDataSource.DataSourceConfigurationProperty(type="CUSTOM"),
                server_side_encryption_configuration=bedrock.CfnDataSource.ServerSideEncryptionConfigurationProperty(
                    kms_key_arn=encryption_key.key_arn
                ),
                vector_ingestion_configuration=bedrock.CfnDataSource.VectorIngestionConfigurationProperty(
                    chunking_configuration=chunking_configuration(config.chunking)
                ),
            )
            if direct_ingestion
            else None
        )

    def _s3_vectors(
        self, key: kms.IKey, config: KnowledgeBaseConfig, kb_generation: str
    ) -> bedrock.CfnKnowledgeBase.StorageConfigurationProperty:
        """A KMS-encrypted vector bucket and an index sized to the embedding model: one index per
        KB generation, so a new embedding model (even of the same dimension) starts an empty index
        instead of mixing two models' vectors in one."""
        self.vector_bucket = s3vectors.CfnVectorBucket(
            self,
            "VectorBucket",
            encryption_configuration=s3vectors.CfnVectorBucket.EncryptionConfigurationProperty(
                sse_type="aws:kms", kms_key_arn=key.key_arn
            ),
        )
        key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="S3VectorsIndexing",
                principals=[
                    service_acting_for(self, "indexing.s3vectors.amazonaws.com", service="s3vectors", resource="bucket")
                ],
                actions=VECTOR_INDEXING_KEY_ACTIONS,
                resources=["*"],
            )
        )
        self.index = s3vectors.CfnIndex(
            self,
            f"Index{kb_generation}",
            vector_bucket_arn=self.vector_bucket.attr_vector_bucket_arn,
            data_type="float32",
            dimension=config.embedding_dimensions,
            distance_metric="cosine",
            metadata_configuration=s3vectors.CfnIndex.MetadataConfigurationProperty(
                non_filterable_metadata_keys=["AMAZON_BEDROCK_TEXT", "AMAZON_BEDROCK_METADATA"]
            ),
        )
        # Every index of this vector bucket (one per KB generation), not only this one: a KB
        # replaced for a new embedding model leaves its data source to be deleted after the update,
        # and that deletion (DELETE: its vectors go first) reads the old index with this role.
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=VECTOR_INDEX_ACTIONS, resources=[f"{self.vector_bucket.attr_vector_bucket_arn}/index/*"]
            )
        )
        acknowledge(
            self.role,
            f"AwsSolutions-IAM5[Resource::{nag_attribute(self.vector_bucket, 'VectorBucketArn')}/index/*]",
            "The indexes of this KB's own vector bucket, one per KB generation: a replaced KB's data source "
            "deletes its vectors from the old index after the update, with this role.",
        )
        return bedrock.CfnKnowledgeBase.StorageConfigurationProperty(
            type="S3_VECTORS",
            s3_vectors_configuration=bedrock.CfnKnowledgeBase.S3VectorsConfigurationProperty(
                vector_bucket_arn=self.vector_bucket.attr_vector_bucket_arn,
                index_arn=self.index.attr_index_arn,
            ),
        )

    def _opensearch_serverless(
        self, name: str, key: kms.IKey, config: KnowledgeBaseConfig, kb_generation: str
    ) -> bedrock.CfnKnowledgeBase.StorageConfigurationProperty:
        """A vector-search collection (encrypted with ``key``, standby replicas on), a data access
        policy for the KB role and CloudFormation's execution role (which creates the index), and
        an HNSW index sized to the embedding model."""
        # Imported here: its Python bindings take some 70 ms to load, and S3 Vectors is the default.
        from aws_cdk import aws_opensearchserverless as oss

        stack = Stack.of(self)
        collection_name = re.sub(r"[^a-z0-9-]", "-", name.lower())[:28] + "-kb"
        collection = f"collection/{collection_name}"
        encryption = oss.CfnSecurityPolicy(
            self,
            "CollectionEncryption",
            name=f"{collection_name}-enc"[:32],
            type="encryption",
            policy=stack.to_json_string(
                {
                    "Rules": [{"ResourceType": "collection", "Resource": [collection]}],
                    "AWSOwnedKey": False,
                    "KmsARN": key.key_arn,
                }
            ),
        )
        network = oss.CfnSecurityPolicy(
            self,
            "CollectionNetwork",
            name=f"{collection_name}-net"[:32],
            type="network",
            # Bedrock reaches the collection over its public endpoint; every request is IAM-signed
            # and checked against the data access policy below.
            policy=json.dumps(
                [{"Rules": [{"ResourceType": "collection", "Resource": [collection]}], "AllowFromPublic": True}]
            ),
        )
        self.collection = oss.CfnCollection(
            self, "Collection", name=collection_name, type="VECTORSEARCH", standby_replicas="ENABLED"
        )
        self.collection.node.add_dependency(encryption)
        self.collection.node.add_dependency(network)
        synthesizer = stack.synthesizer
        deployer = (
            Fn.sub(synthesizer.cloud_formation_execution_role_arn)  # CDK writes it with ${AWS::...} placeholders
            if isinstance(synthesizer, DefaultStackSynthesizer)
            else f"arn:{stack.partition}:iam::{stack.account}:root"
        )
        access = oss.CfnAccessPolicy(
            self,
            "CollectionAccess",
            name=f"{collection_name}-data"[:32],
            type="data",
            policy=stack.to_json_string(
                [
                    {
                        "Rules": [
                            {
                                "ResourceType": "index",
                                "Resource": [f"index/{collection_name}/*"],
                                "Permission": OPENSEARCH_INDEX_PERMISSIONS,
                            },
                            {
                                "ResourceType": "collection",
                                "Resource": [collection],
                                "Permission": ["aoss:DescribeCollectionItems"],
                            },
                        ],
                        "Principal": [self.role.role_arn, deployer],
                    }
                ]
            ),
        )
        # A new dimension replaces the index, under a new name beside the old one.
        index_name = f"{OPENSEARCH_INDEX}-{kb_generation}"
        index = oss.CfnIndex(
            self,
            "VectorIndex",
            collection_endpoint=self.collection.attr_collection_endpoint,
            index_name=index_name,
            settings=oss.CfnIndex.IndexSettingsProperty(index=oss.CfnIndex.IndexProperty(knn=True)),
            mappings=oss.CfnIndex.MappingsProperty(
                properties={
                    OPENSEARCH_FIELDS["vector"]: oss.CfnIndex.PropertyMappingProperty(
                        type="knn_vector",
                        dimension=config.embedding_dimensions,
                        method=oss.CfnIndex.MethodProperty(name="hnsw", engine="faiss", space_type="l2"),
                    ),
                    OPENSEARCH_FIELDS["text"]: oss.CfnIndex.PropertyMappingProperty(type="text"),
                    OPENSEARCH_FIELDS["metadata"]: oss.CfnIndex.PropertyMappingProperty(type="text", index=False),
                }
            ),
        )
        index.node.add_dependency(access)
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["aoss:APIAccessAll"], resources=[self.collection.attr_arn])
        )
        self.knowledge_base_dependencies.append(index)
        return bedrock.CfnKnowledgeBase.StorageConfigurationProperty(
            type="OPENSEARCH_SERVERLESS",
            opensearch_serverless_configuration=bedrock.CfnKnowledgeBase.OpenSearchServerlessConfigurationProperty(
                collection_arn=self.collection.attr_arn,
                vector_index_name=index_name,
                field_mapping=bedrock.CfnKnowledgeBase.OpenSearchServerlessFieldMappingProperty(
                    vector_field=OPENSEARCH_FIELDS["vector"],
                    text_field=OPENSEARCH_FIELDS["text"],
                    metadata_field=OPENSEARCH_FIELDS["metadata"],
                ),
            ),
        )

    def grant_retrieve(self, grantee: iam.IGrantable) -> iam.Grant:
        """Retrieve passages (what a search tool or a prototype needs)."""
        return iam.Grant.add_to_principal(
            grantee=grantee, actions=RETRIEVE_ACTIONS, resource_arns=[self.knowledge_base_arn]
        )

    def grant_documents(self, grantee: iam.IGrantable, *, delete_only: bool = False) -> iam.Grant:
        """Ingest and delete documents directly (custom data source), or only delete them."""
        actions = DELETE_DOCUMENT_ACTIONS if delete_only else DOCUMENT_ACTIONS
        return iam.Grant.add_to_principal(grantee=grantee, actions=actions, resource_arns=[self.knowledge_base_arn])

    def sync_statement(self) -> iam.PolicyStatement:
        """Start an ingestion job of the S3 data source (for a scheduler target's own role)."""
        return iam.PolicyStatement(actions=SYNC_ACTIONS, resources=[self.knowledge_base_arn])

    @property
    def direct_source_id(self) -> str:
        if self.direct_source is None:
            raise ValueError("this Knowledge Base has no direct-ingestion data source")
        return self.direct_source.attr_data_source_id

    @property
    def knowledge_base_id(self) -> str:
        return self.knowledge_base.attr_knowledge_base_id

    @property
    def knowledge_base_arn(self) -> str:
        return self.knowledge_base.attr_knowledge_base_arn

    @property
    def data_source_id(self) -> str:
        return self.data_source.attr_data_source_id


def chunking_configuration(chunking: Chunking) -> bedrock.CfnDataSource.ChunkingConfigurationProperty:
    """The data source's chunking settings from the config model."""
    props = bedrock.CfnDataSource
    match chunking:
        case FixedSizeChunking():
            return props.ChunkingConfigurationProperty(
                chunking_strategy="FIXED_SIZE",
                fixed_size_chunking_configuration=props.FixedSizeChunkingConfigurationProperty(
                    max_tokens=chunking.max_tokens, overlap_percentage=chunking.overlap_percentage
                ),
            )
        case HierarchicalChunking():
            return props.ChunkingConfigurationProperty(
                chunking_strategy="HIERARCHICAL",
                hierarchical_chunking_configuration=props.HierarchicalChunkingConfigurationProperty(
                    level_configurations=[
                        props.HierarchicalChunkingLevelConfigurationProperty(max_tokens=chunking.parent_max_tokens),
                        props.HierarchicalChunkingLevelConfigurationProperty(max_tokens=chunking.child_max_tokens),
                    ],
                    overlap_tokens=chunking.overlap_tokens,
                ),
            )
        case SemanticChunking():
            return props.ChunkingConfigurationProperty(
                chunking_strategy="SEMANTIC",
                semantic_chunking_configuration=props.SemanticChunkingConfigurationProperty(
                    max_tokens=chunking.max_tokens,
                    buffer_size=chunking.buffer_size,
                    breakpoint_percentile_threshold=chunking.breakpoint_percentile_threshold,
                ),
            )
    return props.ChunkingConfigurationProperty(chunking_strategy="NONE")
