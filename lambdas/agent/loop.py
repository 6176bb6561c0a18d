"""One agent turn: Converse with tool use, bounded in iterations and time.

The model sees only the tools the gateway lists for this caller. Each tool call's result (or
error) goes back to the model as a tool result; the turn ends when the model answers, when the
iteration bound is hit, or when the deadline would be passed. Every model call carries the
session id, and the turn records its tool calls for evaluation. When the model in use throttles
or fails with a server error, the turn goes on with the next of the caller's models
(shared.converse); a failure no other model can help with is raised as an UpstreamError.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from shared.converse import converse
from shared.telemetry import stage

logger = Logger(child=True)

STATUS_MODEL_FAMILIES = ("amazon.nova", "anthropic.claude")
STOPPED_ANSWER = "I could not finish this within my limits; here is what I found so far."


class Tools(Protocol):
    def list_tools(self) -> list[dict[str, Any]]: ...

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]
    ok: bool
    error_kind: str | None = None


@dataclass
class Turn:
    session_id: str
    model: str = ""  # the model that answered last
    answer: str = ""
    stop: str = ""  # end_turn, max_iterations, deadline, or the model's own stop reason
    iterations: int = 0
    tool_calls: list[ToolCall] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0


def tool_config(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "tools": [
            {
                "toolSpec": {
                    "name": tool["name"],
                    "description": tool.get("description") or tool["name"],
                    "inputSchema": {"json": tool.get("inputSchema") or {"type": "object"}},
                }
            }
            for tool in tools
        ]
    }


def run_turn(
    bedrock: Any,
    tools: Tools,
    *,
    models: Sequence[str],
    system: str,
    messages: list[dict[str, Any]],
    session_id: str,
    max_iterations: int,
    max_tokens: int | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Turn:
    if not models:
        raise ValueError("models: at least one model id")
    turn = Turn(session_id=session_id)
    available = tools.list_tools()
    conversation = list(messages)
    remaining = list(models)
    while True:
        if turn.iterations >= max_iterations:
            turn.stop, turn.answer = "max_iterations", STOPPED_ANSWER
            return turn
        if deadline is not None and clock() >= deadline:
            turn.stop, turn.answer = "deadline", STOPPED_ANSWER
            return turn
        turn.iterations += 1
        request = _request(system, conversation, session_id, available, max_tokens)
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": "aws.bedrock",
            "gen_ai.request.model": remaining[0],
        }
        with stage("generation", logger, conversation=session_id, **attributes) as record:
            answered = converse(bedrock, remaining, deadline=deadline, clock=clock, **request)
            record.update(
                {
                    "gen_ai.response.model": answered.model,
                    "gen_ai.usage.input_tokens": answered.input_tokens,
                    "gen_ai.usage.output_tokens": answered.output_tokens,
                }
            )
        # A model that failed is not asked again for the rest of the turn.
        remaining = remaining[remaining.index(answered.model) :]
        turn.model = answered.model
        turn.input_tokens += answered.input_tokens
        turn.output_tokens += answered.output_tokens
        response = answered.response
        message = response["output"]["message"]
        conversation.append(message)
        text = "".join(block.get("text", "") for block in message["content"])
        if text:
            turn.answer = text
        if response.get("stopReason") != "tool_use":
            turn.stop = response.get("stopReason", "end_turn")
            return turn
        results = _call_tools(tools, message, turn, deadline=deadline, clock=clock)
        conversation.append({"role": "user", "content": results})


def _request(
    system: str,
    conversation: list[dict[str, Any]],
    session_id: str,
    available: list[dict[str, Any]],
    max_tokens: int | None,
) -> dict[str, Any]:
    """One Converse request of the turn: the conversation so far, the caller's tools, the token bound."""
    request: dict[str, Any] = {
        "system": [{"text": system}],
        "messages": conversation,
        "requestMetadata": {"session_id": session_id},
    }
    if available:
        request["toolConfig"] = tool_config(available)
    if max_tokens:
        request["inferenceConfig"] = {"maxTokens": max_tokens}
    return request


def _call_tools(
    tools: Tools, message: dict[str, Any], turn: Turn, *, deadline: float | None, clock: Callable[[], float]
) -> list[dict[str, Any]]:
    """The tool results for the tool uses of ``message``, recorded on ``turn``; past the deadline a
    tool is not called and its result says so."""
    results = []
    for block in message["content"]:
        use = block.get("toolUse")
        if not use:
            continue
        if deadline is not None and clock() >= deadline:
            outcome: dict[str, Any] = {"error": {"kind": "upstream_unavailable", "message": "out of time"}}
            turn.tool_calls.append(ToolCall(use["name"], use.get("input") or {}, ok=False, error_kind="deadline"))
            results.append(_tool_result(use["toolUseId"], outcome, turn.model))
            continue
        tool = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": use["name"]}
        with stage("tool", logger, conversation=turn.session_id, **tool) as record:
            outcome = tools.call_tool(use["name"], use.get("input") or {})
            error = outcome.get("error") if isinstance(outcome.get("error"), dict) else None
            if error is not None:
                record.end("error", str(error.get("kind", "tool_error")))
        turn.tool_calls.append(
            ToolCall(use["name"], use.get("input") or {}, ok=error is None, error_kind=error and error.get("kind"))
        )
        results.append(_tool_result(use["toolUseId"], outcome, turn.model))
    return results


def _tool_result(use_id: str, outcome: dict[str, Any], model_id: str) -> dict[str, Any]:
    result: dict[str, Any] = {"toolUseId": use_id, "content": [{"json": outcome}]}
    # Only some model families accept a tool result's status; the others reject the request.
    if any(family in model_id for family in STATUS_MODEL_FAMILIES):
        result["status"] = "error" if isinstance(outcome.get("error"), dict) else "success"
    return {"toolResult": result}
