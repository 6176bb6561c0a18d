"""Memory, timeout, SnapStart and reserved concurrency of the production tier's Lambda functions, by function."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from stacks.config.base import ConfigModel

# The production functions, by the package under lambdas/ each runs (macie_findings: the Macie
# responder, module macie of the ingestion package).
FunctionName = Literal[
    "ai_gateway",
    "gateway_authorizer",
    "pre_token",
    "tool_guard",
    "legacy_tools",
    "knowledge_search",
    "ingestion",
    "connector_push",
    "connector_pull",
    "macie_findings",
    "evaluation",
    "account_settings",
]
PRODUCTION_FUNCTIONS: tuple[FunctionName, ...] = get_args(FunctionName)
# A function's memory unless its stack or functions.<name>.memory_mb says otherwise (MB).
DEFAULT_MEMORY_MB = 256
# Functions whose time limit has its own key, because other limits are derived from it there.
DEDICATED_TIMEOUTS: dict[str, str] = {
    "ai_gateway": "api.integration_timeout_seconds",
    "ingestion": "ingestion.processor_timeout_seconds",
    # Sized per API from its attempts and per-call timeout.
    "legacy_tools": "legacy_apis.<name>.timeout_seconds and max_attempts",
}
# Functions a caller waits on that load the AWS SDK at start and may resume from a SnapStart
# snapshot, and whether they do when config is silent (ADR 0023). Each is invoked through its alias
# `live` (stacks/shared/lambda_function.py). The others a caller waits on (tool_guard, legacy_tools,
# pre_token) start without the SDK, within the cold-start goal; the asynchronous ones (ingestion,
# connector_pull, macie_findings, the gateway's jobs, the account-settings adopter) have no caller
# waiting on their cold start, and their event sources would all have to invoke an alias. The
# gateway's streaming function has its own key too (api.stream_snap_start).
SNAP_START_DEFAULTS: dict[str, bool] = {"knowledge_search": True, "connector_push": True}
# Regions where Lambda has no SnapStart ("every commercial Region but Asia Pacific (New Zealand) and
# Asia Pacific (Taipei)", Lambda's SnapStart guide): a function with it fails its first deploy there.
NO_SNAP_START_REGIONS = frozenset({"ap-southeast-6", "ap-east-2"})
# Functions whose SnapStart switch has its own key.
DEDICATED_SNAP_START: dict[str, str] = {"ai_gateway": "api.snap_start", "gateway_authorizer": "api.snap_start"}


# Functions a reservation would break, and why: synth refuses one.
NOT_RESERVED: dict[str, str] = {
    "account_settings": "a deploy-time function: its custom resources run at once, and a throttled one fails the deploy"
}
# How many documents the ingestion processor's SQS event sources hand it at once (their maximum
# concurrency): the document queue's, and the OCR results queue's when ingestion.ocr is textract.
DOCUMENT_QUEUE_CONCURRENCY = 10
OCR_QUEUE_CONCURRENCY = 2


class FunctionConfig(ConfigModel):
    """One function's size, time limit, SnapStart and reserved concurrency; what is unset keeps the stack's value
    for that function."""

    memory_mb: int | None = Field(
        default=None, ge=128, le=10240, description="The function's memory (MB); null: the stack's own value."
    )
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=900, description="The function's timeout (seconds); null: the stack's own value."
    )
    snap_start: bool | None = Field(
        default=None,
        description="Lambda SnapStart, for the functions a caller waits on: knowledge_search (an agent's tool "
        "call) and connector_push (an upstream system's push), on unless set false; ai_gateway's and "
        "gateway_authorizer's switch is api.snap_start. On: each deploy that changes the function publishes a "
        "version Lambda snapshots once initialized, invoked through the alias `live`, so a cold start resumes the "
        "snapshot instead of importing the code; priced like api.snap_start (a cache charge per GB-second while "
        "the version is active, a restore charge per GB), and a version not invoked for 14 days (or whose "
        "environments Lambda recycles) goes inactive: calls fail (SnapStartNotReadyException) until Lambda has "
        "made it active again. Lambda has no SnapStart in ap-east-2 or ap-southeast-6: there, set it false.",
    )
    reserved_concurrency: int | None = Field(
        default=None,
        ge=1,
        description="Reserved concurrency of each function this name sizes (legacy_tools and connector_pull: one per "
        "legacy API or pull source; ai_gateway: the gateway and its streaming function, not the jobs worker, whose "
        "throttled jobs Lambda would drop, nor the ledger sweeper; account_settings: refused): at most that many "
        "run at once, and the account keeps that many for it. Off unless set: "
        "a reservation fails the deploy in an account whose concurrency quota is too small for it (new accounts "
        "may have 10), since Lambda keeps 100 of the account's concurrency unreserved. ingestion's must cover its "
        f"queues' maximum concurrency ({DOCUMENT_QUEUE_CONCURRENCY}, {OCR_QUEUE_CONCURRENCY} more with "
        "ingestion.ocr textract), or Lambda throttles documents back to the queue and, after max_receive_count, "
        "to the dead-letter queue.",
    )
