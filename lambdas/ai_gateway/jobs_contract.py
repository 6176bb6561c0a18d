"""The contract of the gateway's asynchronous jobs with their stack (stacks/production/gateway_jobs.py).

Three sides read settings from here: the gateway function (which submits jobs and answers
GET /v1/jobs/{id}: GatewayJobsSettings, written next to its own Settings), the worker that runs
them (WorkerSettings) and the sweeper that releases units a dead request left admitted
(SweeperSettings). The names the API and the dashboards use live beside them.

Imports only the standard library, pydantic and shared.contract: the CDK app imports it too.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import Field

from ai_gateway.contract import DEFAULT_AGENT_TIMEOUT_SECONDS
from shared.contract import FunctionSettings

# The header a client asks for a job with (RFC 7240), and the preference that asks for it.
PREFER_HEADER: Final = "Prefer"
RESPOND_ASYNC: Final = "respond-async"
# How long after its submission a job's event may still start the worker: Lambda drops an
# asynchronous event older than this (the worker's event invoke config), and the worker refuses a
# job whose start-by time has passed. Retries of a failed start fall within it too.
WORKER_MAX_EVENT_AGE_SECONDS: Final = 300
WORKER_RETRY_ATTEMPTS: Final = 2
# What a job item is kept for after its submission (DynamoDB TTL), whatever its outcome.
JOB_RETENTION_SECONDS: Final = 7 * 24 * 3600
TTL_ATTRIBUTE: Final = "expires_at"  # the jobs table's TTL attribute: when DynamoDB may delete the item
# The sweeper's margin on top of the longest lifetime of a function that admits (clock skew between
# functions, DynamoDB's index lag): a request younger than the bound is never released.
SWEEPER_SLACK_SECONDS: Final = 120
SWEEPER_PAGE_LIMIT: Final = 200
# The most seconds a Lambda function may run: the ceiling of the worker's timeout.
LAMBDA_MAX_TIMEOUT_SECONDS: Final = 900


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # Never shown: a job whose worker could not be started, withdrawn while queued, reads as absent
    # (a 404; a re-submit under its request id is admitted anew, as the submit's 429 or 5xx invited).
    WITHDRAWN = "withdrawn"


class JobMetric(StrEnum):
    """The jobs' and the sweeper's metrics (EMF, in the tier's namespace, no dimension but Function)."""

    SWEPT_RELEASES = "SweptReleases"  # admissions the sweeper released
    SWEPT_CANDIDATES = "SweptCandidates"  # admissions past the bound it looked at
    SWEPT_SETTLEMENTS = "SweptSettlements"  # streams it settled as delivered (their text had left)


class GatewayJobsSettings(FunctionSettings):
    """What the gateway function needs to submit and read jobs (beside its own Settings)."""

    jobs_table: str = Field(min_length=1)
    worker_function: str = Field(min_length=1)  # the worker's name or ARN
    worker_timeout_seconds: int = Field(ge=1, le=LAMBDA_MAX_TIMEOUT_SECONDS)
    # Output type -> the most seconds a job of it may run (at most the worker's timeout); an output
    # type not named gets the worker's timeout.
    async_timeouts_seconds: dict[str, int] = Field(default_factory=dict)
    max_event_age_seconds: int = Field(default=WORKER_MAX_EVENT_AGE_SECONDS, ge=60, le=21600)
    job_retention_seconds: int = Field(default=JOB_RETENTION_SECONDS, ge=3600)
    # The most bytes of compressed request a job item holds (DynamoDB items are at most 400 KB).
    max_job_bytes: int = Field(default=300_000, ge=1024, le=350_000)


class WorkerSettings(FunctionSettings):
    """The worker's environment: the gateway's dependencies, without its policy (a job carries it)."""

    jobs_table: str = Field(min_length=1)
    ledger_table: str = Field(min_length=1)
    guardrail_id: str = Field(min_length=1)
    guardrail_version: str = Field(min_length=1)
    # One model attempt's read timeout: as long as a job may run (a report is one long answer).
    generation_timeout_seconds: int = Field(default=300, ge=1, le=LAMBDA_MAX_TIMEOUT_SECONDS)
    agentcore_endpoint: str | None = None
    agent_timeout_seconds: int = Field(default=DEFAULT_AGENT_TIMEOUT_SECONDS, ge=1)
    agent_memory_id: str | None = None
    passage_key_id: str | None = None  # as the gateway's (ai_gateway.contract.Settings)


class SweeperSettings(FunctionSettings):
    """The sweeper's environment. ``lifetimes_seconds``: the longest time, from its admission, each
    kind of request that admits units may still deliver (the gateway function's timeout; a job's
    submission, start window and worker timeout; a streaming function's timeout), computed by the
    stack. A request is released only once older than the longest of them plus the slack."""

    ledger_table: str = Field(min_length=1)
    lifetimes_seconds: tuple[int, ...] = Field(min_length=1)
    slack_seconds: int = Field(default=SWEEPER_SLACK_SECONDS, ge=60)
    page_limit: int = Field(default=SWEEPER_PAGE_LIMIT, ge=1, le=1000)

    @property
    def bound_seconds(self) -> int:
        return max(self.lifetimes_seconds) + self.slack_seconds
