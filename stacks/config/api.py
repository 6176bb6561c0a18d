"""The AI gateway's REST API (API Gateway, behind WAF)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ai_gateway.contract import GENERATION_MARGIN_SECONDS
from stacks.config.base import ConfigModel

# Seconds of the gateway function's time kept back from generation (an agent turn or a model
# call) for the output guardrail, the ledger and the answer: the function's own margin.
GATEWAY_MARGIN_SECONDS = GENERATION_MARGIN_SECONDS


class ApiConfig(ConfigModel):
    """The gateway API's limits, TLS and timeout."""

    waf_rate_limit_per_5_minutes: int = Field(
        default=2000,
        ge=10,
        le=2_000_000_000,
        description="WAF blocks an IP address that sends more than this many requests in 5 minutes.",
    )
    max_message_chars: int = Field(
        default=20000,
        ge=1,
        le=200000,
        description="Characters of text one request may carry (413 beyond).",
    )
    tls_policy: Literal["TLS_1_2", "SecurityPolicy_TLS13_1_3_2025_09"] = Field(
        default="TLS_1_2",
        description="Minimum TLS for callers of the gateway API and the ingestion push API: TLS 1.2+ (legacy "
        "policy), or TLS 1.3 only (enhanced policy, which also sets the gateway API's endpoint access mode to "
        "STRICT).",
    )
    stream_timeout_seconds: int = Field(
        default=300,
        ge=30,
        le=900,
        description="How long a POST /v1/chat/completions may run (the streaming function's timeout and its "
        "STREAM integration's, which need no quota increase up to 15 minutes). A stream idle for 5 minutes is "
        "cut by API Gateway whatever this says.",
    )
    integration_timeout_seconds: int = Field(
        default=29,
        ge=10,
        le=900,
        description="How long API Gateway waits for the gateway function, and the function's timeout. Above 29 "
        'seconds the account needs a Service Quotas increase of "Maximum integration timeout in milliseconds".',
    )
    transcript_hours: int = Field(
        default=24,
        ge=1,
        le=720,
        description="How long the gateway keeps a session's guarded transcript after its last turn (what the input "
        "guardrail already checked, so a turn that resends the conversation has only its new text checked; "
        "docs/gateway.md). A session idle for longer has its resent text checked again.",
    )
    snap_start: bool = Field(
        default=True,
        description="Lambda SnapStart for the gateway function and its authorizer: each deploy that changes one "
        "publishes a version whose initialized state Lambda snapshots, and API Gateway invokes it through the alias "
        "`live`, so a cold start resumes the snapshot instead of importing the code. Python pays for it: a cache "
        "charge per GB-second of memory for each published version while it is active (3 hours at least) and a "
        "restore charge per GB each time an environment resumes. Off: API Gateway invokes the functions' $LATEST and "
        "initialization runs on each cold start. Lambda has no SnapStart in ap-east-2 or ap-southeast-6: there, "
        "set it false.",
    )
    stream_snap_start: bool = Field(
        default=False,
        description="Lambda SnapStart for the streaming gateway function (POST /v1/chat/completions), priced and "
        "invoked like api.snap_start's (its alias `live`). The function runs its own runtime loop, which runs the "
        "snapshot hooks and asks the Runtime API for restore/next as AWS documents for runtime clients of one's own "
        "(docs/gateway.md, Cold start). Off by default: no deploy has proven that loop's snapshot yet, and a "
        "version whose snapshot fails fails the deploy; turn it on in a staging tier, watch the first deploy and "
        "`make smoke`, then in production. Lambda has no SnapStart in ap-east-2 or ap-southeast-6.",
    )
