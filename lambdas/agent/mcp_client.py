"""A minimal MCP client (streamable HTTP, JSON-RPC) for the AgentCore Gateway.

Every request carries the caller's own bearer token, so the gateway's policies and interceptors
decide per user which tools the agent sees and may call. The gateway runs stateless (no MCP
session), so no ``initialize`` handshake or ``Mcp-Session-Id`` is needed; the agent's session id
travels with its model calls instead.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import urllib3

from shared.headers import CONVERSATION_HEADER

PROTOCOL_VERSION = "2025-06-18"  # the tools gateway supports 2025-03-26 and 2025-06-18
# JSON-RPC error codes -> the tool error taxonomy (tool calls answer errors, never raise).
ERROR_KINDS = {-32001: "forbidden", -32602: "invalid_argument", -32601: "invalid_argument"}


class McpError(Exception):
    def __init__(self, code: int, message: str, kind: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.kind = kind or ERROR_KINDS.get(code, "upstream_unavailable")


class McpClient:
    def __init__(
        self,
        url: str,
        *,
        token: str,
        timeout_seconds: float = 20.0,
        http: urllib3.PoolManager | None = None,
        conversation: str | None = None,
        trace: str | None = None,
    ) -> None:
        self._url = url
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": PROTOCOL_VERSION,
        }
        # Correlation for the gateway's interceptors (which see request headers) and X-Ray.
        if conversation:
            self._headers[CONVERSATION_HEADER] = conversation
        if trace:
            self._headers["X-Amzn-Trace-Id"] = trace
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
        except McpError as failed:
            error: dict[str, Any] = {"kind": failed.kind, "message": failed.message}
            if failed.kind == "upstream_unavailable":
                error["retry_after"] = 5
            return {"error": error}
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
        try:
            response = self._http.request("POST", self._url, body=body, headers=self._headers, timeout=self._timeout)
        except urllib3.exceptions.HTTPError:
            raise McpError(-32000, "the tools gateway did not answer", "upstream_unavailable") from None
        try:
            message = _message(response.headers.get("Content-Type", ""), response.data, request_id)
        except (ValueError, McpError):
            message = {}
        if "error" in message:  # a JSON-RPC error, whatever the HTTP status
            raise McpError(int(message["error"].get("code", -32000)), str(message["error"].get("message", "")))
        if response.status >= 400 or "result" not in message:
            kind = "forbidden" if response.status in (401, 403) else "upstream_unavailable"
            raise McpError(-32000, f"the tools gateway answered {response.status}", kind)
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
