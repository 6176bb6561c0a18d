"""Bedrock Converse answers as the service sends them, for Stubber."""

from __future__ import annotations

from typing import Any


def converse_answer(
    content: list[dict[str, Any]],
    stop: str = "end_turn",
    *,
    input_tokens: int = 100,
    output_tokens: int = 20,
    latency_ms: int = 10,
) -> dict[str, Any]:
    """A Converse response: the assistant's ``content`` blocks, why it stopped, and its usage."""
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {
            "inputTokens": input_tokens,
            "outputTokens": output_tokens,
            "totalTokens": input_tokens + output_tokens,
        },
        "metrics": {"latencyMs": latency_ms},
    }


def tool_use(name: str, arguments: dict[str, Any], use_id: str = "t1") -> dict[str, Any]:
    """A content block asking for a tool."""
    return {"toolUse": {"toolUseId": use_id, "name": name, "input": arguments}}
