"""The AWS clients the gateway's functions make (handler, worker, jobs, sweeper), configured once."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


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
