"""A minimal MCP client (streamable HTTP, JSON-RPC) for the AgentCore Gateway.

Every request carries the caller's own bearer token, so the gateway's policies and interceptors
decide per user which tools the agent sees and may call, and the session id, so one trace holds
the whole turn.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import urllib3

PROTOCOL_VERSION = "2025-06-18"


class McpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class McpClient:
    def __init__(
        self,
        url: str,
        *,
        token: str,
        session_id: str,
        timeout_seconds: float = 20.0,
        http: urllib3.PoolManager | None = None,
    ) -> None:
        self._url = url
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "Mcp-Session-Id": session_id,
            "MCP-Protocol-Version": PROTOCOL_VERSION,
        }
        self._timeout = urllib3.Timeout(total=timeout_seconds)
        self._http = http or urllib3.PoolManager(retries=False)
        self._ids = itertools.count(1)

    def list_tools(self) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            result = self._call("tools/list", {"cursor": cursor} if cursor else {})
            tools += result.get("tools", [])
            cursor = result.get("nextCursor")
            if not cursor:
                return tools

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """The tool's JSON result; an MCP-level refusal comes back as a tool error, not an exception."""
        try:
            result = self._call("tools/call", {"name": name, "arguments": arguments})
        except McpError as refused:
            return {"error": {"kind": "forbidden", "message": refused.message}}
        structured = result.get("structuredContent")
        if isinstance(structured, dict):
            return structured
        texts = [c.get("text", "") for c in result.get("content", []) if c.get("type") == "text"]
        try:
            parsed = json.loads("".join(texts))
        except json.JSONDecodeError:
            parsed = {"text": "".join(texts)}
        if result.get("isError"):
            return (
                parsed
                if isinstance(parsed, dict) and "error" in parsed
                else {"error": {"kind": "tool_error", "message": str(parsed)}}
            )
        return parsed if isinstance(parsed, dict) else {"result": parsed}

    def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        request_id = next(self._ids)
        body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        response = self._http.request("POST", self._url, body=body, headers=self._headers, timeout=self._timeout)
        if response.status >= 400 and not response.data:
            raise McpError(response.status, f"gateway answered {response.status}")
        message = _message(response.headers.get("Content-Type", ""), response.data, request_id)
        if "error" in message:
            raise McpError(int(message["error"].get("code", -32000)), str(message["error"].get("message", "")))
        result: dict[str, Any] = message.get("result") or {}
        return result


def _message(content_type: str, data: bytes, request_id: int) -> dict[str, Any]:
    """The JSON-RPC response for request_id, from a JSON body or a server-sent event stream."""
    if content_type.startswith("text/event-stream"):
        for block in data.decode().split("\n\n"):
            payload = "".join(line[5:].strip() for line in block.splitlines() if line.startswith("data:"))
            if payload:
                message = json.loads(payload)
                if message.get("id") == request_id:
                    return dict(message)
        raise McpError(-32603, "no response in the event stream")
    return dict(json.loads(data))
