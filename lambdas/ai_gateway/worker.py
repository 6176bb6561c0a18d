"""The jobs' worker: runs one asynchronous output (ai_gateway.jobs) to its end.

Invoked asynchronously with ``{"job_id": ...}`` alone. It claims the queued job (a repeated event
finds it claimed and does nothing), refuses one whose start-by time has passed, then completes
the flow the gateway began (the units were admitted at submission): produce, guard, deliver or
release. Generation ends GENERATION_MARGIN_SECONDS before the earlier of the function's own
remaining time and the output type's async limit. A job that ends without an output releases its
units (the ledger does so once per request id; a delivered request is never released) and records
a reason safe to show. Prompts and answers are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_gateway import clients
from ai_gateway.agents import AgentClient
from ai_gateway.contract import GENERATION_MARGIN_SECONDS
from ai_gateway.flow import Clock, Flow
from ai_gateway.guardrail import Guard
from ai_gateway.jobs import REASON_GUARDRAIL, REASON_STALE, JobStore, reason
from ai_gateway.jobs_contract import WorkerSettings
from ai_gateway.ledger import Ledger
from ai_gateway.router import ModelRouter
from ai_gateway.telemetry import Telemetry
from shared.aws_errors import UpstreamError, call
from shared.logs import service_logger

logger = service_logger()
metrics = Metrics()
telemetry = Telemetry(metrics, logger)
clock = Clock()
JOB_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Runtime:
    """What a job runs with: its table, the ledger, and a flow for the agents the job names."""

    store: JobStore
    ledger: Ledger
    flow: Callable[[Mapping[str, str]], Flow]


@cache
def settings() -> WorkerSettings:
    return WorkerSettings.from_environ()


@cache
def runtime() -> Runtime:
    current = settings()
    bedrock, dynamodb = clients.bedrock_runtime(current.generation_timeout_seconds), clients.dynamodb()
    ledger = Ledger(dynamodb, current.ledger_table)
    guard = Guard(bedrock, guardrail_id=current.guardrail_id, version=current.guardrail_version)
    router = ModelRouter(bedrock, attempt_seconds=current.generation_timeout_seconds, clock=clock.monotonic)

    def flow(agents: Mapping[str, str]) -> Flow:
        client = AgentClient(
            current.agentcore_endpoint,
            agents,
            read_seconds=current.agent_timeout_seconds,
            memory_id=current.agent_memory_id,
        )
        return Flow(ledger=ledger, guard=guard, models=router, agents=client, telemetry=telemetry, clock=clock)

    return Runtime(store=JobStore(dynamodb, current.jobs_table), ledger=ledger, flow=flow)


def run(job_id: str, *, remaining_seconds: float, runtime: Runtime, clock: Clock) -> str:
    """Run one job to its end; the outcome (a JobStatus value, or "skipped" for a job that was not
    queued)."""
    with call("dynamodb"):
        job = runtime.store.claim(job_id, now=clock.now())
    if job is None:
        logger.info("job not queued: a repeated event", extra={"job_id": job_id})
        return "skipped"
    seconds = min(remaining_seconds, job.limit_seconds) - GENERATION_MARGIN_SECONDS
    outcome = "failed"
    why = reason(Exception())
    try:
        request = job.request(deadline=clock.monotonic() + seconds)
        telemetry.correlate(request.conversation)
        if clock.now() > job.start_by or seconds <= 0:
            why = REASON_STALE
        else:
            delivery = runtime.flow(job.agents).complete(request, job.admission)
            if delivery.verdict.blocked:  # complete() released the units
                why = REASON_GUARDRAIL
            else:
                with call("dynamodb"):
                    runtime.store.succeed(job.job_id, delivery.body(), now=clock.now())
                outcome = "succeeded"
    except Exception as error:  # the job's failure is its outcome, not the invocation's
        why = reason(error)
        if isinstance(error, UpstreamError):
            telemetry.upstream_failed(error)
        else:
            logger.exception("job failed", extra={"job_id": job.job_id})
    if outcome == "failed":
        _settle(runtime, job, why, clock)
    logger.info("job ended", extra={"job_id": job.job_id, "outcome": outcome, "output_type": job.output_type})
    return outcome


def _settle(runtime: Runtime, job: Any, why: str, clock: Clock) -> None:
    """A job without an output: its units back (a no-op when the flow already released them, and
    when the request was delivered), then its reason. A failure here leaves the sweeper to release
    the units and GET to report the job failed after its finish-by time."""
    try:
        with call("dynamodb"):
            runtime.ledger.release(
                job.request_id,
                group=job.caller.group,
                user=job.caller.user,
                output_type=job.output_type,
                units=job.admission.units,
                window=job.admission.window,
            )
    except UpstreamError:
        telemetry.release_failed(job.request_id)
    try:
        with call("dynamodb"):
            runtime.store.fail(job.job_id, why, now=clock.now())
    except UpstreamError as error:
        telemetry.upstream_failed(error)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    job_id = event.get("job_id") if isinstance(event, dict) else None
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        logger.error("not a job event")
        return {"outcome": "ignored"}
    outcome = run(
        job_id, remaining_seconds=context.get_remaining_time_in_millis() / 1000, runtime=runtime(), clock=clock
    )
    return {"job_id": job_id, "outcome": outcome}
