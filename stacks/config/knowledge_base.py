"""A Bedrock Knowledge Base: the embedding model, its vectors, and how documents are chunked.

Both tiers have one (stacks/shared/knowledge_base.py): the sandbox's over its documents bucket,
production's over the curated bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator

from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import S3Prefix

# Embedding models a Knowledge Base can use, with the vector sizes each one produces.
EMBEDDING_MODEL_DIMENSIONS: Mapping[str, tuple[int, ...]] = {
    "amazon.titan-embed-text-v2:0": (256, 512, 1024),
    "amazon.titan-embed-text-v1": (1536,),
    "cohere.embed-english-v3": (1024,),
    "cohere.embed-multilingual-v3": (1024,),
}

# Where the production KB keeps its vectors: S3 Vectors, or OpenSearch Serverless for larger
# corpora and lower query latency (an always-on collection, billed by the hour).
VectorStore = Literal["s3_vectors", "opensearch_serverless"]


class FixedSizeChunking(ConfigModel):
    """Chunks of about the same number of tokens, overlapping."""

    strategy: Literal["FIXED_SIZE"] = Field(description="Split documents into chunks of a fixed size.")
    max_tokens: int = Field(default=300, ge=20, le=8192, description="Tokens in a chunk at most.")
    overlap_percentage: int = Field(
        default=20, ge=1, le=99, description="Share of a chunk's tokens repeated in the next chunk (percent)."
    )


class HierarchicalChunking(ConfigModel):
    """Small child chunks are searched; their larger parent chunk is what retrieval returns."""

    strategy: Literal["HIERARCHICAL"] = Field(description="Split documents into parent chunks and child chunks.")
    parent_max_tokens: int = Field(default=1500, ge=1, le=8192, description="Tokens in a parent chunk at most.")
    child_max_tokens: int = Field(
        default=300, ge=1, le=8192, description="Tokens in a child chunk at most; smaller than parent_max_tokens."
    )
    overlap_tokens: int = Field(
        default=60,
        ge=1,
        le=8190,
        description="Tokens repeated between neighbouring chunks of a layer; smaller than child_max_tokens (Bedrock "
        "itself asks only for at least 1, but an overlap of a whole child chunk or more would repeat chunks instead "
        "of moving on through the document).",
    )

    @field_validator("child_max_tokens")
    @classmethod
    def _child_fits_parent(cls, child: int, info: ValidationInfo) -> int:
        parent = info.data.get("parent_max_tokens")
        if parent is not None and child >= parent:
            raise ValueError(f"must be smaller than parent_max_tokens ({parent})")
        return child

    @field_validator("overlap_tokens")
    @classmethod
    def _overlap_fits_child(cls, overlap: int, info: ValidationInfo) -> int:
        child = info.data.get("child_max_tokens")
        if child is not None and overlap >= child:
            raise KeyedError(
                (),
                f"{overlap} tokens of overlap is not smaller than child_max_tokens ({child})",
                allowed=f"1 to {child - 1} (smaller than child_max_tokens)",
            )
        return overlap


class SemanticChunking(ConfigModel):
    """Chunks that end where the meaning changes (an embedding model compares neighbouring sentences)."""

    strategy: Literal["SEMANTIC"] = Field(description="Split documents where the meaning of the text changes.")
    max_tokens: int = Field(default=300, ge=20, le=8192, description="Tokens in a chunk at most.")
    buffer_size: int = Field(
        default=0,
        ge=0,
        le=1,
        description="Sentences on each side of a sentence embedded with it for the comparison (0 or 1).",
    )
    breakpoint_percentile_threshold: int = Field(
        default=95,
        ge=50,
        le=99,
        description="How different neighbouring sentences must be to end a chunk (percentile of their "
        "distances): higher makes fewer, larger chunks.",
    )


class NoChunking(ConfigModel):
    """Each document is one chunk."""

    strategy: Literal["NONE"] = Field(description="Do not split documents.")


Chunking = Annotated[
    FixedSizeChunking | HierarchicalChunking | SemanticChunking | NoChunking,
    Field(discriminator="strategy"),
]


class KnowledgeBaseConfig(ConfigModel):
    """A Bedrock Knowledge Base over a prefix of a bucket.

    Changing the embedding model, its dimensions or (in production) the vector store makes a new
    Knowledge Base; changing the chunking makes a new data source: both start empty and must sync.
    """

    embedding_model_id: str = Field(
        default="amazon.titan-embed-text-v2:0",
        description="The Bedrock embedding model that turns chunks and questions into vectors.",
        json_schema_extra={"enum": list(EMBEDDING_MODEL_DIMENSIONS)},
    )
    embedding_dimensions: int = Field(
        default=1024,
        description="Size of the vectors, one the embedding model produces (Titan Text v2: 256, 512 or 1024; "
        "Titan Text v1: 1536; Cohere Embed v3: 1024); the vector index is made this size.",
    )
    chunking: Chunking = Field(
        default=FixedSizeChunking(strategy="FIXED_SIZE"),
        description="How the data source splits documents into chunks before embedding them, chosen by strategy.",
    )
    documents_prefix: S3Prefix = Field(
        default="documents/",
        description="Only objects under this prefix are indexed: by the Knowledge Base, and in the sandbox by "
        "Kendra too. In production the ingestion pipeline writes curated documents here.",
    )

    @field_validator("embedding_model_id")
    @classmethod
    def _known_embedding_model(cls, model_id: str) -> str:
        if model_id not in EMBEDDING_MODEL_DIMENSIONS:
            raise ValueError(f"allowed values are {', '.join(EMBEDDING_MODEL_DIMENSIONS)}")
        return model_id

    @field_validator("embedding_dimensions")
    @classmethod
    def _dimensions_match_model(cls, dimensions: int, info: ValidationInfo) -> int:
        model_id = info.data.get("embedding_model_id")
        allowed = EMBEDDING_MODEL_DIMENSIONS.get(model_id or "", ())
        if allowed and dimensions not in allowed:
            sizes = ", ".join(map(str, allowed))
            raise ValueError(f"{model_id} produces vectors of {sizes} dimensions only")
        return dimensions
