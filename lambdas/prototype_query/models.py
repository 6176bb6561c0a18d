"""Request and response models of the prototype query function (its settings: contract.py)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Source(StrEnum):
    KNOWLEDGE_BASE = "knowledge_base"
    KENDRA = "kendra"


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # RetrieveAndGenerate takes at most 1,000 characters (Kendra reads only the first 30 words);
    # the deployment may set a lower limit (contract.Settings.max_question_chars).
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
