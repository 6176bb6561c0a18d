"""Model routing per group: the allowed models, a default, and ordered fallbacks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ai_gateway.models import GroupModels
from ai_gateway.upstream import UpstreamError, call


class ModelForbiddenError(Exception):
    def __init__(self, model: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"model {model} is not available to this group; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class Generation:
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    fell_back_from: tuple[str, ...] = field(default=())


def candidates(models: GroupModels, requested: str | None) -> list[str]:
    """The requested (or default) model first, then the group's fallbacks, without repeats."""
    first = requested or models.default
    if first not in models.allowed:
        raise ModelForbiddenError(first, models.allowed)
    return list(dict.fromkeys([first, *models.fallbacks]))


def converse(
    client: Any,
    models: list[str],
    *,
    system: str,
    messages: list[dict[str, Any]],
    max_tokens: int,
    deadline: float | None = None,
    attempt_seconds: float = 0.0,
) -> Generation:
    """Converse with the first model that answers; move on only on throttling or a 5xx, and only
    while a whole attempt (``attempt_seconds``) still fits before ``deadline`` (time.monotonic())."""
    failed: list[str] = []
    for model in models:
        started = time.perf_counter()
        try:
            with call("bedrock-runtime"):
                response = client.converse(
                    modelId=model,
                    system=[{"text": system}],
                    messages=messages,
                    inferenceConfig={"maxTokens": max_tokens},
                )
        except UpstreamError as error:
            out_of_time = deadline is not None and deadline - time.monotonic() < attempt_seconds
            if not error.retryable or model == models[-1] or out_of_time:
                raise
            failed.append(model)
            continue
        usage = response.get("usage", {})
        return Generation(
            model=model,
            text="".join(block.get("text", "") for block in response["output"]["message"]["content"]),
            input_tokens=int(usage.get("inputTokens", 0)),
            output_tokens=int(usage.get("outputTokens", 0)),
            latency_ms=(time.perf_counter() - started) * 1000,
            fell_back_from=tuple(failed),
        )
    raise AssertionError("no model to try")  # candidates() never returns an empty list
