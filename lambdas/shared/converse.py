"""Bedrock Converse with ordered model fallback, the one way every function calls a model.

The first model that answers wins. A failure moves on to the next model only when another model
can help (throttling or a server error, shared.aws_errors) and only while a whole attempt still
fits before the caller's deadline; anything else, or the last model's failure, is raised as one
UpstreamError carrying its classification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from shared.aws_errors import UpstreamError, call

SERVICE = "bedrock-runtime"


@dataclass(frozen=True)
class Conversed:
    response: dict[str, Any]  # Converse's answer as it came
    model: str  # the model that answered
    fell_back_from: tuple[str, ...]  # the models that failed first, in order
    latency_ms: float  # the answering attempt's

    @property
    def text(self) -> str:
        return "".join(block.get("text", "") for block in self.response["output"]["message"]["content"])

    @property
    def input_tokens(self) -> int:
        return int(self.response.get("usage", {}).get("inputTokens", 0))

    @property
    def output_tokens(self) -> int:
        return int(self.response.get("usage", {}).get("outputTokens", 0))


def converse(
    client: Any,
    models: Sequence[str],
    *,
    deadline: float | None,
    attempt_seconds: float = 0.0,
    clock: Callable[[], float] = time.monotonic,
    **request: Any,
) -> Conversed:
    """Converse ``request`` (system, messages, inferenceConfig, toolConfig, ...) with ``models`` in
    order. ``deadline`` is on ``clock``'s scale (None: no bound); another model is tried only while
    ``attempt_seconds`` still fit before it."""
    if not models:
        raise ValueError("models: at least one model id")
    failed: list[str] = []
    for index, model in enumerate(models):
        started = time.perf_counter()
        try:
            with call(SERVICE, caller_facing=True):
                response: dict[str, Any] = client.converse(modelId=model, **request)
        except UpstreamError as error:
            if not error.retryable or index == len(models) - 1:
                raise
            if deadline is not None and deadline - clock() < attempt_seconds:
                raise
            failed.append(model)
            continue
        latency_ms = (time.perf_counter() - started) * 1000
        return Conversed(response=response, model=model, fell_back_from=tuple(failed), latency_ms=latency_ms)
    raise AssertionError("unreachable: the last model's failure is raised")
