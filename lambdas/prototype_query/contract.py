"""The prototype query function's contract with its construct (stacks/sandbox/prototype_query.py):
its settings (one environment variable per field, shared.contract) and the names of its metrics.

Imports only the standard library, pydantic and shared.contract: the CDK app imports it too.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from shared.contract import FunctionSettings


class Settings(FunctionSettings):
    """The function's environment. Limits are validated in the deployment's config
    (stacks/config QueryConfig); these defaults hold where the construct writes none."""

    knowledge_base_id: str = Field(min_length=1)
    generation_model_arn: str = Field(min_length=1)
    kendra_index_id: str | None = None  # None: Kendra is switched off
    max_question_chars: int = Field(default=1000, ge=1)
    max_passages: int = Field(default=5, ge=1)
    max_answer_tokens: int = Field(default=800, ge=1)
    # One attempt's read timeout: two attempts per AWS call must fit in the function's timeout.
    upstream_timeout_seconds: int = Field(default=25, ge=1)

    @field_validator("kendra_index_id", mode="before")
    @classmethod
    def _blank_is_off(cls, value: object) -> object:
        return value or None


class Metric(StrEnum):
    """The function's metrics (EMF, in the sandbox's namespace)."""

    ANSWERS = "Answers"
    CITATIONS = "Citations"
    LATENCY = "Latency"
    ERRORS = "Errors"  # by ErrorCode


class Dimension(StrEnum):
    SOURCE = "Source"  # knowledge_base or kendra
    ERROR_CODE = "ErrorCode"  # the JSON error's "error"
