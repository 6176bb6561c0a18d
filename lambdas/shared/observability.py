"""The names several functions emit and the observability stack (stacks/production/observability.py)
charts, alarms and subscribes on: stages, metrics, dimensions and log messages. A function's own
metrics are in its contract module (e.g. ai_gateway.contract.Metric). Imports only the standard
library: the CDK app imports it too."""

from enum import StrEnum
from typing import Literal, get_args

# The stages every unit of work is attributed to (shared.telemetry).
Stage = Literal["retrieval", "generation", "guardrail", "tool", "usage", "ingestion"]
STAGES: tuple[Stage, ...] = get_args(Stage)


class Metric(StrEnum):
    # Per stage (dimension Stage alone): shared.telemetry.
    STAGE_REQUESTS = "StageRequests"
    STAGE_ERRORS = "StageErrors"
    STAGE_LATENCY = "StageLatency"
    # Per tool: the evaluator by Tool alone (each tool an agent's turn called); legacy_tools by Tool
    # and the service Powertools adds; knowledge_search its calls by service alone (one tool, no
    # errors counted). The dashboard's tool widget searches each of these dimension sets.
    TOOL_CALLS = "ToolCalls"
    TOOL_ERRORS = "ToolErrors"
    # Per agent (dimension Agent), percent of golden cases: the evaluator.
    TOOL_SELECTION_ACCURACY = "ToolSelectionAccuracy"
    TOOL_ARGUMENT_ACCURACY = "ToolArgumentAccuracy"
    TOOL_CALL_SUCCESS_RATE = "ToolCallSuccessRate"
    # Per document outcome (dimension service): the ingestion processor.
    DOCUMENTS_CURATED = "DocumentsCurated"
    DOCUMENTS_QUARANTINED = "DocumentsQuarantined"
    DOCUMENTS_DEAD_LETTERED = "DocumentsDeadLettered"
    DOCUMENTS_REQUEUED = "DocumentsRequeued"  # deferred on a message's last receive, sent again


class Dimension(StrEnum):
    STAGE = "Stage"
    TOOL = "Tool"
    AGENT = "Agent"
    SERVICE = "service"  # Powertools' own


# The log line the AI gateway writes per agent turn (with its tool calls); the evaluator reads it
# through a subscription filter on this message.
AGENT_TURN_MESSAGE = "agent turn"
