"""The web MCP server: web_fetch and web_browse over streamable HTTP, as AgentCore Runtime runs an
MCP server (0.0.0.0:8000, path /mcp, stateless). Only the tools gateway can reach it (the runtime's
inbound OAuth accepts the gateway's client alone) and the gateway's REQUEST interceptor writes the
verified caller's group into ``caller_group``.

It is the `mcp` SDK's low-level server (the one MCPServer, formerly FastMCP, wraps) so that the
published input schemas are the ToolSpecs' argument models themselves and arguments are validated
by the same models. A refusal is an MCP tool error (``isError: true``) whose text and structured
content are shared.tool_errors' shape with a reason code; anything unexpected is logged by type and
answered with a generic error, never a stack trace. Logs carry hosts, never URLs' paths or queries,
nor page text.

The transport is bounded: a body past ``MAX_BODY_BYTES`` is a 413 before it is read (AgentCore
Runtime itself admits 100 MB), a GET (a standalone event stream, which a stateless server never
writes to and would hold open forever) is a 405 as the MCP transport allows, and a path with a
trailing slash is a 404 rather than a redirect built from the request's Host header.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
from mcp.server.lowlevel import Server
from mcp.types import CallToolResult, ListToolsResult, TextContent, Tool
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.bodies import BodyError, check_counts, clip, problems
from shared.logs import service_logger
from shared.tools import ToolSpec
from web_mcp.contract import WEB_BROWSE, WEB_FETCH, WEB_TOOLS
from web_mcp.errors import WebError, invalid, unavailable
from web_mcp.tools import WebTools

HOST = "0.0.0.0"  # noqa: S104 - AgentCore Runtime's MCP contract
PORT = 8000
PATH = "/mcp"
# The largest valid call is some 50 KB (a 2,048-character URL, ten steps of a 200-character selector
# and 500 characters of text, JSON-escaped): 1 MiB leaves room and bounds what a request costs.
MAX_BODY_BYTES = 1 << 20
logger = service_logger("web-mcp")


def input_schema(spec: ToolSpec) -> dict[str, Any]:
    """The argument model's JSON Schema with its definitions inlined (no ``$ref``: a tool catalogue
    that indexes the schema need not resolve references). The models are not recursive."""
    schema = spec.arguments.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return inline(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    result: dict[str, Any] = inline(schema)
    return result


def tool_list() -> list[Tool]:
    return [Tool(name=spec.name, description=spec.describe(), input_schema=input_schema(spec)) for spec in WEB_TOOLS]


def _error(error: WebError) -> CallToolResult:
    body = error.result()
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(body))], structured_content=body, is_error=True
    )


def call(tools: WebTools, name: str, arguments: dict[str, Any]) -> CallToolResult:
    """One tool call, synchronously (the server runs it in a worker thread)."""
    specs: dict[str, ToolSpec] = {spec.name: spec for spec in WEB_TOOLS}
    spec = specs.get(name)
    if spec is None:
        # The name is the caller's: named only so far, or a caller-sized name makes a caller-sized answer.
        return _error(invalid("unknown_tool", f"no tool named {clip(name)}"))
    try:
        check_counts(arguments, whole="arguments")  # as the tools gateway's interceptor does
    except BodyError as error:
        return _error(invalid("invalid_argument", f"invalid {error}"))  # "invalid arguments: an object has …"
    try:
        model = spec.arguments.model_validate(arguments)
    except ValidationError as failure:
        # Never the rejected values (they are the caller's), and bounded: 28,000 unknown keys in a
        # body under the cap would otherwise come back whole, each named in the message.
        wrong = problems(failure, whole="arguments", envelope=())
        return _error(invalid("invalid_argument", f"invalid arguments: {wrong}"))
    try:
        if spec is WEB_FETCH:
            result = tools.web_fetch(model)  # type: ignore[arg-type]
        elif spec is WEB_BROWSE:
            result = tools.web_browse(model)  # type: ignore[arg-type]
        else:  # pragma: no cover - every spec has a branch
            raise AssertionError(name)
    except WebError as error:
        logger.info("tool refused", extra={"tool": name, "reason": error.reason})
        return _error(error)
    except Exception as error:
        logger.error("tool failed", extra={"tool": name, "error": type(error).__name__})
        return _error(unavailable("internal_error", "the web tool failed unexpectedly"))
    logger.info("tool answered", extra={"tool": name, "characters": len(result["text"])})
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(result))], structured_content=result)


def create_server(tools: WebTools) -> Server[Any]:
    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=tool_list())

    async def call_tool(ctx: Any, params: Any) -> CallToolResult:
        arguments = dict(params.arguments or {})
        return await anyio.to_thread.run_sync(call, tools, params.name, arguments)

    return Server("web-mcp", on_list_tools=list_tools, on_call_tool=call_tool)


class NoEventStream:
    """ASGI middleware: a GET of the MCP endpoint is a 405 (JSON-RPC error), as the streamable HTTP
    transport lets a server without a standalone event stream answer. The SDK would open one, and
    a stateless server never writes to it nor closes it: each GET would hold a connection forever."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == PATH:
            answer = {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "Method Not Allowed"}}
            await JSONResponse(answer, status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def create_app(tools: WebTools) -> Starlette:
    """The ASGI app: the MCP endpoint at /mcp, stateless streamable HTTP."""
    app = create_server(tools).streamable_http_app(
        streamable_http_path=PATH, stateless_http=True, host=HOST, max_request_body_size=MAX_BODY_BYTES
    )
    app.router.redirect_slashes = False
    app.add_middleware(NoEventStream)
    return app


T = TypeVar("T")
_CLIENTS = threading.Lock()


def _one_at_a_time(make: Callable[[], T]) -> T:
    """boto3's default session is not safe to build clients from in several threads at once (the
    tools run in the server's worker threads): a browser client is built under a lock."""
    with _CLIENTS:
        return make()


def default_tools() -> WebTools:
    """The tools for this process: settings read once from the environment, real AWS clients."""
    import boto3
    from bedrock_agentcore.tools.browser_client import BrowserClient
    from botocore.config import Config

    from shared.runtime_config import DocumentReader
    from web_mcp.browse import Browser
    from web_mcp.contract import Settings, WebPolicy
    from web_mcp.fetch import Checker, Fetcher
    from web_mcp.guard import Guard

    settings = Settings.from_environ()
    region = os.environ["AWS_REGION"]
    # Seconds per attempt, two attempts: the call's deadline bounds the whole (browse, guard).
    bounded = Config(connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 2, "mode": "standard"})
    bedrock = boto3.client("bedrock-runtime", region_name=region, config=bounded)
    sessions = boto3.client("bedrock-agentcore", region_name=region, config=bounded)  # thread-safe, shared

    def browser_session() -> BrowserClient:
        client = BrowserClient(region)
        # Its sessions start and stop through the bounded client: BrowserClient's own has
        # botocore's defaults (60 s a read, legacy retries), which would hold a worker for minutes.
        client.data_plane_client = sessions
        return client

    checker = Checker(settings)
    return WebTools(
        settings=settings,
        policy=DocumentReader(settings.policy, WebPolicy).get,
        fetcher=Fetcher(checker),
        browser=Browser(checker, sessions=lambda: _one_at_a_time(browser_session)),
        guard=Guard(bedrock, guardrail_id=settings.guardrail_id, version=settings.guardrail_version),
    )
