"""REQUEST and RESPONSE interceptor of the AgentCore Gateway: each group sees and calls its tools.

The caller's group comes from the ``gateway_group`` claim of the bearer token the gateway passes
on (``passRequestHeaders``), verified again here. The allowed tools come from the same map of
group -> tools in config that the gateway's Cedar policies are generated from:

- REQUEST: ``tools/call`` of a tool outside the caller's group is answered with an MCP error and
  never reaches a target. A call of knowledge search gets the caller's data classifications
  written into its arguments here, over anything the agent sent: retrieval is scoped to the
  caller's group, and a search without them is refused by the tool. Everything else passes.
- RESPONSE: ``tools/list`` results are filtered to the caller's tools.

Unknown group, missing claim, missing or malformed token: no tools at all.
"""

import os
from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from shared.headers import CONVERSATION_HEADER
from shared.runtime_config import DocumentReader
from shared.telemetry import CONVERSATION
from shared.tokens import GROUP_CLAIM, InvalidToken, TokenVerifier, bearer
from shared.tools import (
    CLASSIFICATIONS_ARGUMENT,
    CONVERSATION_ARGUMENT,
    GATEWAY_ARGUMENTS,
    KNOWLEDGE_SEARCH,
    TARGET_SEPARATOR,
)
from tool_guard.contract import Settings, ToolBindings

logger = Logger()
metrics = Metrics()
VERSION = "1.0"
FORBIDDEN = -32001  # an implementation-defined JSON-RPC server error: "not allowed"
# Whatever target serves it, knowledge search is the tool named so.
SEARCH_SUFFIX = TARGET_SEPARATOR + KNOWLEDGE_SEARCH


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def bindings() -> DocumentReader[ToolBindings]:
    return DocumentReader(settings().bindings, ToolBindings)


@cache
def allowed_tools_view() -> Callable[[], dict[str, frozenset[str]]]:
    return bindings().derive(
        lambda document: {group: frozenset(tools) for group, tools in document.tool_bindings.items()}
    )


def allowed_tools() -> dict[str, frozenset[str]]:
    """group -> qualified tool names (``<target>___<tool>``), from the current bindings."""
    return allowed_tools_view()()


def group_classifications() -> dict[str, list[str]]:
    return bindings().get().data_classifications


@cache
def verifier() -> TokenVerifier:
    return TokenVerifier.for_pool(
        region=os.environ["AWS_REGION"], user_pool_id=settings().user_pool_id, client_id=settings().client_id
    )


def caller_group(headers: dict[str, Any] | None, allowed: dict[str, frozenset[str]] | None = None) -> str | None:
    """The caller's configured group; None when anything about the caller is off."""
    header = next((v for k, v in (headers or {}).items() if k.lower() == "authorization"), None)
    try:
        claims = verifier().claims(bearer(header))
    except InvalidToken as error:
        logger.info("no tools: token rejected", extra={"reason": error.reason})
        return None
    group = claims.get(GROUP_CLAIM)
    if not isinstance(group, str) or group not in (allowed if allowed is not None else allowed_tools()):
        logger.info("no tools: no configured group", extra={"user": claims.get("sub")})
        return None
    return group


def intercept(event: dict[str, Any]) -> dict[str, Any]:
    mcp = event.get("mcp") or {}
    request = mcp.get("gatewayRequest") or {}
    body = request.get("body") or {}
    headers = {str(k).lower(): v for k, v in (request.get("headers") or {}).items()}
    conversation = headers.get(CONVERSATION_HEADER.lower())  # the gateway passes header names in lower case
    if isinstance(conversation, str) and conversation:
        logger.append_keys(**{CONVERSATION: conversation})
    allowed = allowed_tools()  # one version of the bindings for the whole request
    group = caller_group(headers, allowed)
    tools = allowed[group] if group else frozenset()
    if mcp.get("gatewayResponse") is not None:
        return _on_response(body, mcp["gatewayResponse"], tools)
    return _on_request(body, tools, group, conversation if isinstance(conversation, str) else None)


def _on_request(
    body: dict[str, Any], tools: frozenset[str], group: str | None, conversation: str | None = None
) -> dict[str, Any]:
    if body.get("method") == "tools/call":
        params = body.get("params") or {}
        name = str(params.get("name", ""))
        if name not in tools or group is None:
            metrics.add_metric(name="ToolCallsRefused", unit=MetricUnit.Count, value=1)
            logger.info("tool call refused", extra={"tool": name})
            error = {"code": FORBIDDEN, "message": f"tool {name} is not available to this caller"}
            return _output(
                response={"statusCode": 200, "body": {"jsonrpc": "2.0", "id": body.get("id"), "error": error}}
            )
        if name.endswith(SEARCH_SUFFIX):
            sent = {k: v for k, v in (params.get("arguments") or {}).items() if k not in GATEWAY_ARGUMENTS}
            # (None if the bindings changed since: the search refuses a call without them.)
            arguments = {**sent, CLASSIFICATIONS_ARGUMENT: group_classifications().get(group)}
            if conversation:
                arguments[CONVERSATION_ARGUMENT] = conversation
            body = {**body, "params": {**params, "arguments": arguments}}
    return _output(request={"body": body})


def _on_response(body: dict[str, Any], response: dict[str, Any], tools: frozenset[str]) -> dict[str, Any]:
    answer = response.get("body") or {}
    result = answer.get("result") if isinstance(answer, dict) else None
    if body.get("method") == "tools/list" and isinstance(result, dict) and isinstance(result.get("tools"), list):
        kept = [_public(tool) for tool in result["tools"] if isinstance(tool, dict) and tool.get("name") in tools]
        answer = {**answer, "result": {**result, "tools": kept}}
    return _output(response={"statusCode": response.get("statusCode", 200), "body": answer})


def _public(tool: dict[str, Any]) -> dict[str, Any]:
    """A listed tool as the agent should see it: without the arguments the gateway writes."""
    if not str(tool.get("name", "")).endswith(SEARCH_SUFFIX):
        return tool
    schema = dict(tool.get("inputSchema") or {})
    schema["properties"] = {k: v for k, v in (schema.get("properties") or {}).items() if k not in GATEWAY_ARGUMENTS}
    if "required" in schema:
        schema["required"] = [name for name in schema["required"] if name not in GATEWAY_ARGUMENTS]
    return {**tool, "inputSchema": schema}


def _output(*, request: dict[str, Any] | None = None, response: dict[str, Any] | None = None) -> dict[str, Any]:
    mcp: dict[str, Any] = {}
    if request is not None:
        mcp["transformedGatewayRequest"] = request
    if response is not None:
        mcp["transformedGatewayResponse"] = response
    return {"interceptorOutputVersion": VERSION, "mcp": mcp}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return intercept(event)
