"""Lambda target of the AgentCore Gateway: one legacy API, its tools.

The gateway passes the tool's arguments as the event and names the tool in the client context
(``bedrockAgentCoreToolName`` = ``<target>___<tool>``). Every answer is JSON: the tool's result,
or {"error": {kind, message, advice[, retry_after]}} from the small taxonomy. Arguments and
records are never logged.
"""

from collections.abc import Callable
from functools import cache
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from legacy_tools.adapters import Shape, Tool, registry
from legacy_tools.contract import Settings, SingleCallTools
from shared.bodies import clip
from shared.legacy_client import LegacyClient, client_for
from shared.logs import service_logger
from shared.observability import Dimension, Metric
from shared.runtime_config import DocumentReader, RuntimeConfigError
from shared.tool_errors import ToolError
from shared.tools import TOOL_NAME_KEY, split

logger = service_logger()
metrics = Metrics()


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def single_call_tools() -> DocumentReader[SingleCallTools]:
    return DocumentReader(settings().single_call_tools, SingleCallTools)


def _served(document: SingleCallTools) -> tuple[dict[str, Tool], Shape]:
    """This API's tools (its chained tools and its entry in the document) and how answers are shaped."""
    api, declarations = settings().legacy_api, document.apis.get(settings().api_name, {})
    declared = {name: tool.fields for name, tool in declarations.items()}
    shape = Shape(top_k=api.top_k, byte_budget=api.byte_budget, fields={**api.fields, **declared})
    return registry(api.fields, declarations), shape


@cache
def served() -> Callable[[], tuple[dict[str, Tool], Shape]]:
    """The tools and shape of the current document, rebuilt only when a new version is in use."""
    return single_call_tools().derive(_served)


def tools() -> dict[str, Tool]:
    return served()()[0]


# What the gateway is told when the tools' declarations cannot be read (AppConfig unreachable or
# throttled at a cold start, or nothing deployed yet): a retry later may find them.
DECLARATIONS_UNAVAILABLE = ToolError(
    "upstream_unavailable", "the tool's declarations are not available yet; retry", retry_after=30
)


UNKNOWN_TOOL = ToolError("invalid_argument", "unknown tool; call one of the tools your tools list shows")


def _known() -> dict[str, Tool]:
    """tools(), or none when the declarations cannot be read (run() answers that)."""
    try:
        return tools()
    except RuntimeConfigError:
        return {}


def shape() -> Shape:
    return served()()[1]


@cache
def client() -> LegacyClient:
    # One per container: the token it caches is reused by every invocation until it expires.
    return client_for(settings().legacy_api)


def _shown(text: str) -> str:
    """A caller's text as it may be logged: clipped (a clipped name ends in "…", so names no tool),
    a lone surrogate (JSON carries one, UTF-8 cannot) written as its escape: the log line with it
    would be lost."""
    return clip(text.encode("utf-8", "backslashreplace").decode())


def tool_name(context: Any) -> str:
    """The tool the gateway names, ``<target>___<tool>``, when the target is this function's API:
    its tool part, clipped. Any other name (another target's, or none: the gateway always names
    the target) names no tool here: "". The name is split at its first separator, as the gateway's
    interceptor and policies see it, so ``orders___report___summary`` can only run the tool
    ``report___summary`` (config forbids such a name), never ``summary``."""
    custom = getattr(getattr(context, "client_context", None), "custom", None)
    if not isinstance(custom, dict):  # absent, or not what the gateway sends: no tool named
        return ""
    target, name = split(str(custom.get(TOOL_NAME_KEY, "")))
    if target != settings().api_name:
        logger.info(
            "tool of another target refused",
            extra={"target": None if target is None else _shown(target), "tool": _shown(name)},
        )
        return ""
    return _shown(name)


def run(name: str, arguments: Any) -> dict[str, Any]:
    try:
        tools, shape = served()()  # one version of the declarations for the whole call
    except RuntimeConfigError as error:
        metrics.add_metric(name=Metric.TOOL_ERRORS, unit=MetricUnit.Count, value=1)
        logger.error("tool declarations not readable", extra={"tool": name, "why": str(error)})
        return DECLARATIONS_UNAVAILABLE.result()
    tool = tools.get(name)
    if tool is None:
        # This function serves every tool of its API, other groups' too: which ones, and what was
        # asked, go to the log alone. The agent's own tools are the ones its tools/list shows.
        logger.info("unknown tool", extra={"tool": _shown(name) or None, "tools": sorted(tools)})
        return UNKNOWN_TOOL.result()
    if not isinstance(arguments, dict):
        return ToolError("invalid_argument", "arguments: an object is required").result()
    try:
        return tool(client(), shape, arguments)
    except ToolError as error:
        metrics.add_metric(name=Metric.TOOL_ERRORS, unit=MetricUnit.Count, value=1)
        logger.info("tool refused", extra={"tool": name, "kind": error.kind})
        return error.result()
    except Exception as error:  # a bug or an answer no guard foresaw: still an answer
        # Only the type: an exception's text may echo what the service sent or a header's value.
        metrics.add_metric(name=Metric.TOOL_ERRORS, unit=MetricUnit.Count, value=1)
        logger.error("tool failed", extra={"tool": name, "exception": type(error).__name__})
        return ToolError("upstream_unavailable", "the tool failed unexpectedly", retry_after=30).result()


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    name = tool_name(context)
    metrics.add_dimension(Dimension.TOOL, name if name in _known() else "unknown")
    metrics.add_metric(name=Metric.TOOL_CALLS, unit=MetricUnit.Count, value=1)
    result = run(name, event)
    logger.info("tool answered", extra={"tool": name, "error": result.get("error", {}).get("kind")})
    return result
