"""Model routing per group: the allowed models, a default, and ordered fallbacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ai_gateway.contract import LENGTH_STOP_REASONS
from ai_gateway.models import GroupModels
from shared.aws_errors import UpstreamError, invalid_response, reported_count
from shared.bodies import shown
from shared.converse import SERVICE, Conversed, converse


class ModelForbiddenError(Exception):
    def __init__(self, model: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"model {shown(model)} is not available to this group; allowed: {', '.join(allowed)}")


@dataclass(frozen=True)
class Generation:
    model: str
    text: str
    input_tokens: int
    output_tokens: int
    latency_ms: float
    fell_back_from: tuple[str, ...] = field(default=())
    stop_reason: str | None = None  # Converse's stopReason (None: an agent's turn, or not reported)


def candidates(models: GroupModels, requested: str | None) -> list[str]:
    """The requested (or default) model first, then the group's fallbacks, without repeats."""
    first = requested or models.default
    if first not in models.allowed:
        raise ModelForbiddenError(first, models.allowed)
    return list(dict.fromkeys([first, *models.fallbacks]))


class ModelRouter:
    """Generations from a group's models in order (shared.converse decides when to fall back).

    Another model is tried only while one whole attempt (``attempt_seconds``, the Bedrock client's
    read timeout) still fits before the deadline."""

    def __init__(self, client: Any, *, attempt_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self._attempt_seconds = attempt_seconds
        self._clock = clock

    def generate(
        self,
        models: list[str],
        *,
        system: str,
        messages: list[dict[str, Any]],
        max_tokens: int,
        deadline: float,
        temperature: float | None = None,
        top_p: float | None = None,
        stop_sequences: tuple[str, ...] = (),
    ) -> Generation:
        """``temperature`` and ``top_p`` None: the model's default (Converse's ranges are 0 to 1)."""
        inference = inference_config(max_tokens, temperature, top_p, stop_sequences)
        try:
            answered = converse(
                self._client,
                models,
                deadline=deadline,
                attempt_seconds=self._attempt_seconds,
                clock=self._clock,
                system=[{"text": system}],
                messages=messages,
                inferenceConfig=inference,
            )
        except UpstreamError as error:
            raise error.as_platforms() from None  # model access or region: the operator's, a 502
        return _generation(answered)


def inference_config(
    max_tokens: int, temperature: float | None, top_p: float | None, stop_sequences: tuple[str, ...]
) -> dict[str, Any]:
    """Converse's inferenceConfig: the token limit, and what the caller set of the rest."""
    inference: dict[str, Any] = {"maxTokens": max_tokens}
    if temperature is not None:
        inference["temperature"] = temperature
    if top_p is not None:
        inference["topP"] = top_p
    if stop_sequences:
        inference["stopSequences"] = list(stop_sequences)
    return inference


def _generation(answered: Conversed) -> Generation:
    """The model's answer as the gateway meters and guards it: some text and two counts. An
    answer without text, or with usage that is not a count, is the model's failure (a 502);
    an answer cut at its token limit is delivered as it came, even empty or blank (max_tokens 1
    may well be one newline)."""
    response: Any = answered.response
    try:
        text = answered.text
        usage = response.get("usage") or {}
        counts = usage.get("inputTokens", 0), usage.get("outputTokens", 0)
        stop_reason = response.get("stopReason")
    except (KeyError, TypeError, AttributeError):
        raise invalid_response(SERVICE) from None
    cut = isinstance(stop_reason, str) and stop_reason in LENGTH_STOP_REASONS  # (an odd type is not hashed)
    if not isinstance(text, str) or (not text.strip() and not cut):
        raise invalid_response(SERVICE)
    return Generation(
        model=answered.model,
        text=text,
        input_tokens=reported_count(SERVICE, counts[0]),
        output_tokens=reported_count(SERVICE, counts[1]),
        latency_ms=answered.latency_ms,
        fell_back_from=answered.fell_back_from,
        stop_reason=stop_reason if isinstance(stop_reason, str) and len(stop_reason) <= 64 else None,
    )
