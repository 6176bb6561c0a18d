"""The AWS clients the gateway's functions make (handler, worker, jobs, sweeper), configured once."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

from shared.passage import PassageIssuer, kms_client


def bedrock_runtime(read_seconds: int) -> Any:
    """One attempt per model (the router falls back between models); the read timeout bounds one
    generation."""
    return boto3.client(
        "bedrock-runtime",
        config=Config(
            connect_timeout=2, read_timeout=read_seconds, retries={"mode": "standard", "total_max_attempts": 1}
        ),
    )


def dynamodb() -> Any:
    """DynamoDB calls are short and retried by botocore."""
    return boto3.client(
        "dynamodb",
        config=Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}),
    )


def passage_issuer(key_id: str | None) -> PassageIssuer | None:
    """The passages for callers' tokens under ``key_id`` (None: no key configured, none sent)."""
    return PassageIssuer(kms_client, key_id) if key_id else None
