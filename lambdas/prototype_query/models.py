"""Request, response and environment models of the prototype query function."""

from __future__ import annotations

import os
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Source(StrEnum):
    KNOWLEDGE_BASE = "knowledge_base"
    KENDRA = "kendra"


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # RetrieveAndGenerate takes at most 1,000 characters (Kendra reads only the first 30 words);
    # the deployment may set a lower limit (Settings.max_question_chars).
    question: str = Field(min_length=1, max_length=1000)
    source: Source = Source.KNOWLEDGE_BASE

    @field_validator("question")
    @classmethod
    def _not_blank(cls, question: str) -> str:
        if not question.strip():
            raise ValueError("question must contain non-whitespace text")
        return question


class Citation(BaseModel):
    number: int
    excerpt: str
    uri: str | None = None
    title: str | None = None


class Answer(BaseModel):
    source: Source
    answer: str
    citations: list[Citation]


class Settings(BaseModel):
    """What the function learns from its environment (set by the CDK construct)."""

    model_config = ConfigDict(frozen=True)

    # Limits are validated once, in the deployment's config (stacks/config.py QueryConfig).
    knowledge_base_id: str = Field(min_length=1)
    generation_model_arn: str = Field(min_length=1)
    kendra_index_id: str | None = None
    max_question_chars: int = 1000
    max_passages: int = 5
    max_answer_tokens: int = 800
    upstream_timeout_seconds: int = 25

    @classmethod
    def from_environ(cls) -> Settings:
        env = os.environ
        return cls(
            knowledge_base_id=env.get("KNOWLEDGE_BASE_ID", ""),
            generation_model_arn=env.get("GENERATION_MODEL_ARN", ""),
            kendra_index_id=env.get("KENDRA_INDEX_ID") or None,
            max_question_chars=int(env.get("MAX_QUESTION_CHARS", "1000")),
            max_passages=int(env.get("MAX_PASSAGES", "5")),
            max_answer_tokens=int(env.get("MAX_ANSWER_TOKENS", "800")),
            upstream_timeout_seconds=int(env.get("UPSTREAM_TIMEOUT_SECONDS", "25")),
        )
