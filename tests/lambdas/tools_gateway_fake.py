"""A stand-in for the AgentCore tools gateway: a real MCP server (the `mcp` SDK's, streamable HTTP,
stateless) on loopback that lists and calls only the tools of the caller's group, read from the
bearer token it is sent, and records every request's headers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool

from shared.tokens import GROUP_CLAIM
from tests.lambdas.loopback import serve_asgi

FIND_ORDERS = Tool(
    name="orders___find_orders",
    description="Orders of a customer",
    input_schema={
        "type": "object",
        "properties": {"customer_email": {"type": "string"}},
        "required": ["customer_email"],
    },
)
KNOWLEDGE_SEARCH = Tool(
    name="knowledge___knowledge_search",
    description="Search documents",
    input_schema={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]},
)
ADMIN_REPORT = Tool(
    name="reports___admin_report",
    description="Platform report",
    input_schema={"type": "object", "properties": {}},
)
# The per-group binding the real gateway's policies and interceptors enforce.
GROUP_TOOLS = {"customer-gold": [FIND_ORDERS, KNOWLEDGE_SEARCH], "platform-admins": [ADMIN_REPORT]}


@dataclass
class FakeToolsGateway:
    results: dict[str, dict[str, Any]] = field(default_factory=dict)  # tool -> its JSON answer
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)  # (method, headers)
    unavailable: bool = False  # every request answered 503
    list_seconds: float = 0.0  # how long tools/list takes to answer
    endless: bool = False  # every page of tools/list names a next one (the same tools again)

    def group(self, headers: dict[str, str]) -> str | None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, options={"verify_signature": False}) if scheme.lower() == "bearer" else {}
        except jwt.PyJWTError:
            return None
        return claims.get(GROUP_CLAIM)

    def calls(self) -> list[str]:
        return [method for method, _ in self.seen]


class _Server(MCPServer[Any]):
    def __init__(self, fake: FakeToolsGateway) -> None:
        super().__init__("tools-gateway")
        self.fake = fake

    def _headers(self, ctx: Any, method: str) -> dict[str, str]:
        headers = {name.lower(): value for name, value in ctx.request.headers.items()}
        self.fake.seen.append((method, headers))
        return headers

    async def _handle_list_tools(self, ctx: Any, params: Any) -> ListToolsResult:
        group = self.fake.group(self._headers(ctx, "tools/list"))
        await asyncio.sleep(self.fake.list_seconds)
        cursor = f"page-{len(self.fake.seen)}" if self.fake.endless else None
        return ListToolsResult(tools=GROUP_TOOLS.get(group or "", []), next_cursor=cursor)

    async def _handle_call_tool(self, ctx: Any, params: Any) -> CallToolResult:
        group = self.fake.group(self._headers(ctx, "tools/call"))
        if params.name not in {tool.name for tool in GROUP_TOOLS.get(group or "", [])}:
            error = {"error": {"kind": "forbidden", "message": f"{params.name} is not available to this caller"}}
            return CallToolResult(content=[TextContent(type="text", text=json.dumps(error))], is_error=True)
        result = self.fake.results.get(params.name, {"ok": True})
        return CallToolResult(content=[TextContent(type="text", text=json.dumps(result))], is_error="error" in result)


@contextmanager
def tools_gateway() -> Iterator[tuple[str, FakeToolsGateway]]:
    """Serves the fake; yields (its MCP URL, the fake)."""
    fake = FakeToolsGateway()
    app = _Server(fake).streamable_http_app(stateless_http=True, json_response=True)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and fake.unavailable:
            await send({"type": "http.response.start", "status": 503, "headers": [(b"content-type", b"text/plain")]})
            await send({"type": "http.response.body", "body": b"unavailable"})
            return
        await app(scope, receive, send)

    with serve_asgi(asgi) as url:
        yield f"{url}/mcp", fake
