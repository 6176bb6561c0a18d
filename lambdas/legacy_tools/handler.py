"""Lambda target of the AgentCore Gateway: one legacy API, its tools.

The gateway passes the tool's arguments as the event and names the tool in the client context
(``bedrockAgentCoreToolName`` = ``<target>___<tool>``). Every answer is JSON: the tool's result,
or {"error": {kind, message, advice[, retry_after]}} from the small taxonomy. Arguments and
records are never logged.
"""

import json
import os
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from legacy_tools.adapters import TOOLS, Shape
from shared.legacy_client import ClientSettings, Credentials, LegacyClient, secret_credentials
from shared.tool_errors import ToolError

logger = Logger()
metrics = Metrics()
TOOL_NAME_KEY = "bedrockAgentCoreToolName"
TARGET_SEPARATOR = "___"


@cache
def configuration() -> tuple[ClientSettings, Shape, str]:
    """(client settings, shaping, credentials secret name) from LEGACY_API (set by the stack)."""
    raw = json.loads(os.environ["LEGACY_API"])
    client = ClientSettings(
        base_url=raw["base_url"],
        token_path=raw.get("token_path", "/oauth/token"),
        timeout_seconds=float(raw.get("timeout_seconds", 5)),
        max_attempts=int(raw.get("max_attempts", 3)),
    )
    shape = Shape(top_k=int(raw["top_k"]), byte_budget=int(raw["byte_budget"]), fields=raw["fields"])
    return client, shape, raw["secret_name"]


def credentials() -> Credentials:
    return secret_credentials(configuration()[2])


@cache
def client() -> LegacyClient:
    # One per container: the token it caches is reused by every invocation until it expires.
    return LegacyClient(configuration()[0], credentials)


def tool_name(context: Any) -> str:
    custom = getattr(getattr(context, "client_context", None), "custom", None) or {}
    return str(custom.get(TOOL_NAME_KEY, "")).split(TARGET_SEPARATOR)[-1]


def run(name: str, arguments: Any) -> dict[str, Any]:
    tool = TOOLS.get(name)
    if tool is None:
        return ToolError("invalid_argument", f"unknown tool {name or '(none)'}; tools: {', '.join(TOOLS)}").result()
    if not isinstance(arguments, dict):
        return ToolError("invalid_argument", "arguments: an object is required").result()
    try:
        return tool(client(), configuration()[1], arguments)
    except ToolError as error:
        metrics.add_metric(name="ToolErrors", unit=MetricUnit.Count, value=1)
        logger.info("tool refused", extra={"tool": name, "kind": error.kind})
        return error.result()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    name = tool_name(context)
    metrics.add_dimension("Tool", name if name in TOOLS else "unknown")
    metrics.add_metric(name="ToolCalls", unit=MetricUnit.Count, value=1)
    result = run(name, event)
    logger.info("tool answered", extra={"tool": name, "error": result.get("error", {}).get("kind")})
    return result
