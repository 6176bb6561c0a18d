"""The jobs' worker: runs one asynchronous output (ai_gateway.jobs) to its end.

Invoked asynchronously with ``{"job_id": ...}`` alone. It claims the queued job (a repeated event
finds it claimed and does nothing), refuses one whose start-by time has passed, then completes
the flow the gateway began (the units were admitted at submission): produce, guard, deliver or
release. Generation ends GENERATION_MARGIN_SECONDS before the earlier of the function's own
remaining time and the output type's async limit. A job that ends without an output releases its
units (the ledger does so once per request id; a delivered request is never released) and records
a reason safe to show. Prompts and answers are never logged, nor an error's message (it can quote
them): only its type and where it was raised.

A job item is untrusted (ai_gateway.jobs reads it so). What fails for good is recorded as the job's
failure; what may pass is left for a retry:

- an item that cannot be read at all once claimed (CorruptJobError: an attribute missing or of
  another type, an admission that is not the job's, an item that is not its caller's) is failed
  (REASON_INTERNAL) without a release: the units it names cannot be trusted, and the sweeper
  releases the ledger's own record of the request, once, after its bound;
- an item whose request, output type, units or window are not those the ledger admitted is failed
  without a release, likewise (releasing by them would give back another counter's units);
- a job that can be read but not run (a request that cannot be rebuilt, an output type or a model
  that no longer exists, an expired item) is failed and its admitted units released, once;
- an output too large for its item is found before it is metered: the job fails with
  REASON_TOO_LARGE and its units are released;
- a passed output is kept on the job (conditional on the job still running under this claim)
  before it is metered: a worker killed after metering leaves it there, and GET serves it once the
  ledger shows it delivered; a keep refused or failed releases the units;
- whatever fails once an output is kept (its metering's answer, the job's success, the telemetry
  after it) is decided by the ledger's record, not by how far this invocation got: an output the
  ledger has delivered (charged) is never dropped. Its job is marked succeeded, or, when that fails
  again, left running with the output kept, which GET serves as succeeded once the job's finish-by
  time has passed; a ledger that cannot be read leaves the job so too (GET then asks it, and the
  sweeper releases a request never delivered). Only an output the ledger has not delivered fails
  the job and releases its units;
- a claim botocore retried after it landed is recognised by its owner and run; an agent's job whose
  token left with the claim's lost first answer fails at once (REASON_TOKEN), its units released;
- a failure of DynamoDB before the claim (an UpstreamError) is raised: Lambda retries the event
  (WORKER_RETRY_ATTEMPTS), and a job still queued is claimed then.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from ai_gateway import clients
from ai_gateway.agents import AgentClient
from ai_gateway.contract import GENERATION_MARGIN_SECONDS, Dimension
from ai_gateway.flow import Clock, Delivery, Flow, GenerationRequest
from ai_gateway.guardrail import Guard
from ai_gateway.jobs import (
    REASON_GUARDRAIL,
    REASON_INTERNAL,
    REASON_STALE,
    REASON_TOKEN,
    CorruptJobError,
    Job,
    JobStore,
    packed_result,
    reason,
)
from ai_gateway.jobs_contract import JobStatus, WorkerSettings
from ai_gateway.ledger import ADMITTED, DELIVERED, Ledger
from ai_gateway.router import ModelRouter
from ai_gateway.telemetry import Telemetry
from shared.aws_errors import UpstreamError, call
from shared.logs import log_unexpected, service_logger


class JobTelemetry(Telemetry):
    """The gateway's telemetry, for jobs: a job's own metrics (Outputs, Units, latencies, upstream
    errors) carry its request's Group and OutputType, as the gateway's request's do
    (Telemetry.request and output_type), without counting another request."""

    def job(self, group: str, output_type: str) -> None:
        """The job the invocation runs: its group (one the ledger admitted, so a configured one)
        and output type become its metrics' dimensions."""
        self.start()
        self._dimensions[Dimension.GROUP] = group
        self.output_type(output_type)


logger = service_logger()
metrics = Metrics()
telemetry = JobTelemetry(metrics, logger)
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
    passage = clients.passage_issuer(current.passage_key_id)

    def flow(agents: Mapping[str, str]) -> Flow:
        client = AgentClient(
            current.agentcore_endpoint,
            agents,
            read_seconds=current.agent_timeout_seconds,
            memory_id=current.agent_memory_id,
            passage=passage,
        )
        return Flow(ledger=ledger, guard=guard, models=router, agents=client, telemetry=telemetry, clock=clock)

    return Runtime(store=JobStore(dynamodb, current.jobs_table), ledger=ledger, flow=flow)


class JobEndedError(Exception):
    """The job was no longer running, claimed by this invocation, when its output was to be kept."""


def _refusal(job: Job, request: GenerationRequest, deadline: float, clock: Clock) -> str | None:
    """Why a job that can be read is not to be run (its units are released), or None."""
    if clock.now() > job.start_by or clock.monotonic() >= deadline or job.expired(clock.now()):
        return REASON_STALE
    if request.output.agent is not None and request.token is None:
        return REASON_TOKEN  # it left the table with the claim's first answer, lost (botocore retried)
    return None


def _keep(runtime: Runtime, job: Job, passed: Delivery, now: dt.datetime) -> bytes:
    """A passed output kept on its job (packed) before it is metered (complete()'s ``keep``): a
    worker that dies once it is metered leaves it for GET. What raises here releases the units."""
    result = packed_result(passed.body())
    with call("dynamodb"):
        if job.claimed_by is None or not runtime.store.keep(job.job_id, result, now=now, owner=job.claimed_by):
            raise JobEndedError(f"job {job.job_id} is no longer this invocation's")
    return result


def _succeed(runtime: Runtime, job_id: str, result: bytes, now: dt.datetime) -> None:
    """A delivered output's job marked succeeded (its output kept on it already: _keep). A job that
    had ended meanwhile (no one but its worker ends a running job) keeps nothing: logged, never
    silent."""
    with call("dynamodb"):
        if not runtime.store.succeed(job_id, result, now=now):
            logger.error("delivered job had ended: its result not kept", extra={"job_id": job_id})


def run(job_id: str, *, remaining_seconds: float, runtime: Runtime, clock: Clock) -> str:
    """Run one job to its end; the outcome (a JobStatus value, or "skipped" for a job that was not
    queued; "running" for one left with a kept output that was, or may have been, charged:
    _charged). ``remaining_seconds``: the invocation's, as of this call; what the claim and the
    ledger's read take comes out of it, not out of the margin generation leaves."""
    started = clock.monotonic()
    telemetry.start()  # no group or output type until the ledger vouches for the job's
    try:
        with call("dynamodb"):
            job = runtime.store.claim(job_id, now=clock.now())
    except CorruptJobError as error:  # claimed (now running), but nothing in it can be trusted
        logger.error(
            "job item cannot be read: failed, its units left to the sweeper",
            extra={"job_id": job_id, "field": error.field},
        )
        _record_failure(runtime, job_id, REASON_INTERNAL, clock)
        return "failed"
    if job is None:
        logger.info("job not queued: a repeated event", extra={"job_id": job_id})
        return "skipped"
    deadline = started + min(remaining_seconds, job.limit_seconds) - GENERATION_MARGIN_SECONDS
    outcome = "failed"
    why = REASON_INTERNAL
    release = True
    kept: list[bytes] = []  # the output as the item keeps it, kept before it is metered
    try:
        with call("dynamodb"):
            release = _admitted(runtime, job)
        request = job.request(deadline=deadline)
        telemetry.correlate(request.conversation)
        if not release:
            logger.error(
                "job's admission is not the ledger's: failed, its units left to the sweeper",
                extra={"job_id": job.job_id},
            )
        elif refused := _refusal(job, request, deadline, clock):
            why = refused
        else:
            delivery = runtime.flow(job.agents).complete(
                request, job.admission, keep=lambda passed: kept.append(_keep(runtime, job, passed, clock.now()))
            )
            if delivery.verdict.blocked:  # complete() released the units
                why = REASON_GUARDRAIL
            else:
                _succeed(runtime, job.job_id, kept[0], clock.now())
                outcome = "succeeded"
    except Exception as error:  # the job's failure is its outcome, not the invocation's
        why = reason(error)
        outcome = _raised(runtime, job, error, kept, clock) or outcome
    if outcome == "failed" and release:
        _settle(runtime, job, why, clock)
    elif outcome == "failed":
        _record_failure(runtime, job.job_id, why, clock)
    logger.info("job ended", extra={"job_id": job.job_id, "outcome": outcome, "output_type": job.output_type})
    return outcome


def _raised(runtime: Runtime, job: Job, error: Exception, kept: list[bytes], clock: Clock) -> str | None:
    """What ``error``, raised while the job ran, leaves of it: the error said (its type and where,
    never its text: it can quote the request), and, once its output was kept (it may have been
    metered, whatever raised), the outcome the ledger decides (_charged); None: the job fails."""
    if isinstance(error, UpstreamError):
        telemetry.upstream_failed(error)
    else:
        log_unexpected(logger, "job failed", error, job_id=job.job_id)
    return _charged(runtime, job, kept[0], clock) if kept else None


def _charged(runtime: Runtime, job: Job, result: bytes, clock: Clock) -> str | None:
    """The outcome of a job that raised once its output was kept, when that output may have been
    charged; None when the ledger says it was not (the job fails, its units go back). The ledger's
    record decides, not how far this invocation got: a delivery can land though its answer was
    lost, and what raises after it (the job's success, the telemetry) comes after the charge. A
    failed job drops its kept output, so a job whose output was delivered is marked succeeded, or,
    when that fails again, left running (RUNNING): GET serves its kept output once its finish-by
    time has passed, as the ledger has it delivered. A ledger that cannot be read leaves the job
    running too: GET asks the ledger then, and the sweeper releases a request never delivered."""
    try:
        with call("dynamodb"):
            record = runtime.ledger.record(job.request_id, group=job.caller.group, user=job.caller.user) or {}
    except UpstreamError as error:
        telemetry.upstream_failed(error)
        logger.warning("job's metering unknown: left running, its output kept for GET", extra={"job_id": job.job_id})
        return JobStatus.RUNNING.value
    if record.get("status") != {"S": DELIVERED}:
        return None
    try:
        _succeed(runtime, job.job_id, result, clock.now())
    except UpstreamError as error:
        telemetry.upstream_failed(error)
        logger.warning(
            "delivered job not marked succeeded: left running, its output kept for GET", extra={"job_id": job.job_id}
        )
        return JobStatus.RUNNING.value
    return JobStatus.SUCCEEDED.value


def _admitted(runtime: Runtime, job: Job) -> bool:
    """Whether the ledger holds the job's request admitted with the output type, units and window
    the job item names: what the flow delivers or releases by them. An item that names others (a
    corrupt or hostile one) would release another counter's units, or the wrong count: the job is
    then failed without a release, and the sweeper releases the ledger's own record. Only a job
    the ledger admitted so has its group and output type on its metrics (JobTelemetry.job)."""
    record = runtime.ledger.record(job.request_id, group=job.caller.group, user=job.caller.user) or {}
    admitted = (
        record.get("status") == {"S": ADMITTED}
        and record.get("output_type") == {"S": job.output_type}
        and record.get("units") == {"N": str(job.admission.units)}
        and record.get("window") == {"S": job.admission.window}
    )
    if admitted:
        telemetry.job(job.caller.group, job.output_type)
    return admitted


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
    except UpstreamError as error:
        telemetry.release_failed(job.request_id, error)
    _record_failure(runtime, job.job_id, why, clock)


def _record_failure(runtime: Runtime, job_id: str, why: str, clock: Clock) -> None:
    """A job's reason (it ends failed): a failure here leaves GET to report it failed after its
    finish-by time."""
    try:
        with call("dynamodb"):
            runtime.store.fail(job_id, why, now=clock.now())
    except UpstreamError as error:
        telemetry.upstream_failed(error)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, str]:
    job_id = event.get("job_id") if isinstance(event, dict) else None
    if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id):
        logger.error("not a job event")
        return {"outcome": "ignored"}
    current = runtime()  # (made on a cold start: before the remaining time is read, not out of the margin)
    outcome = run(job_id, remaining_seconds=context.get_remaining_time_in_millis() / 1000, runtime=current, clock=clock)
    return {"job_id": job_id, "outcome": outcome}
