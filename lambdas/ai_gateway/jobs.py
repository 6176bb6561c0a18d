"""Asynchronous outputs: ``POST /v1/outputs/{type}`` with ``Prefer: respond-async`` becomes a job.

The gateway function screens the input and admits the units as for a synchronous request (a
blocked input is a 400, an exhausted quota a 429), writes the job (``queued``) with everything the
worker needs, invokes the worker asynchronously with the job's id alone and answers 202. The worker
(ai_gateway.worker) claims the job (``running``), produces, guards and delivers the output
(``succeeded``, with the body the synchronous route answers) or releases the units (``failed``, with
a reason safe to show). ``GET /v1/jobs/{id}`` reads a job back, for its own user in its group only.

A job's id is derived from the caller and the request id (the Idempotency-Key header, else API
Gateway's request id), so a re-submit finds the same job and is not admitted twice.

The job item holds the caller's screened (masked) messages, compressed, encrypted at rest with the
table's KMS key, and dropped once the job ends; an agent's output type also needs the caller's
token, which the worker removes when it claims the job. Every item expires (TTL) after
job_retention_seconds. A job whose worker died stays ``running``: GET reports it failed after its
finish-by time, and the sweeper (ai_gateway.sweeper) gives its units back.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from ai_gateway import clients
from ai_gateway.flow import Clock, DuplicateRequestError, Flow, GenerationRequest, TokenRequiredError
from ai_gateway.jobs_contract import PREFER_HEADER, RESPOND_ASYNC, GatewayJobsSettings, JobStatus
from ai_gateway.ledger import Admission, Ledger
from ai_gateway.models import Caller, OutputPolicy, Quota
from shared.aws_errors import UpstreamError, call
from shared.bodies import clip

JOB_ID = re.compile(r"[0-9a-f]{32}")
MAX_PREFER_CHARS = 1024  # RFC 7240 preferences are short; a longer header is not read for one
# A job's payload fields the worker rebuilds its GenerationRequest from: every field but these,
# which are recomputed (deadline), held apart (token) or rebuilt from their own keys.
_REBUILT = {"caller", "output", "quota", "deadline", "token", "grounding"}

# Reasons a failed job shows its caller: what happened, never an upstream's own message.
REASON_GUARDRAIL = "the output guardrail withheld the output; no units were charged"
REASON_TIMEOUT = "the job did not finish within its time limit; no units were charged"
REASON_STALE = "the job could not start in time; no units were charged"
REASON_UPSTREAM = "a service the job depends on failed ({service}); no units were charged"
REASON_TOKEN = "an agent acts as the caller, and the caller's token was missing; no units were charged"  # noqa: S105
REASON_INTERNAL = "the job failed; no units were charged (quote the job id)"


class JobTooLargeError(Exception):
    """The screened request does not fit in a job item."""


@dataclass(frozen=True)
class Job:
    """A job item as the gateway and the worker read it."""

    job_id: str
    status: JobStatus
    caller: Caller
    request_id: str
    output_type: str
    created_at: dt.datetime
    start_by: dt.datetime  # after this the worker refuses to start the job
    finish_by: dt.datetime  # after this a job not ended has died: GET reports it failed
    admission: Admission
    limit_seconds: int  # the most seconds the worker may spend on it
    payload: dict[str, Any] | None = None  # the request (None once the job ended)
    token: str | None = None
    result: dict[str, Any] | None = None  # the synchronous route's body, once succeeded
    reason: str | None = None  # why it failed, safe to show

    def request(self, *, deadline: float) -> GenerationRequest:
        """The GenerationRequest the job was submitted with, generating until ``deadline``."""
        if self.payload is None:
            raise ValueError(f"job {self.job_id} holds no request")
        fields = dict(self.payload["request"])
        grounding = fields.pop("grounding", None)
        fields["stop_sequences"] = tuple(fields.get("stop_sequences") or ())  # (a JSON list in the item)
        return GenerationRequest(
            caller=self.caller,
            output=OutputPolicy.model_validate(self.payload["output"]),
            quota=Quota.model_validate(self.payload["quota"]),
            deadline=deadline,
            token=self.token,
            grounding=(grounding[0], grounding[1]) if grounding else None,
            **fields,
        )

    @property
    def agents(self) -> dict[str, str]:
        """Where the job's agent runs (the policy's map when it was submitted)."""
        return dict((self.payload or {}).get("agents") or {})


def job_id(caller: Caller, request_id: str) -> str:
    """A job's id: the same for the same caller and request id, unguessable from another caller's."""
    digest = hashlib.sha256(json.dumps([caller.group, caller.user, request_id]).encode()).hexdigest()
    return digest[:32]


def respond_async(headers: Mapping[str, str]) -> bool:
    """Whether the request's Prefer header (RFC 7240) asks for an asynchronous answer."""
    prefer = headers.get(PREFER_HEADER) or ""
    if len(prefer) > MAX_PREFER_CHARS:
        return False
    preferences = (p.split(";")[0].split("=")[0].strip().lower() for p in prefer.split(","))
    return RESPOND_ASYNC in preferences


def status_url(job: str) -> str:
    return f"/v1/jobs/{job}"


class JobStore:
    """The jobs table: one item per job, keyed by ``job_id``."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._jobs_table = table

    def create(self, job: Job, *, expires_at: dt.datetime, max_bytes: int) -> bool:
        """Write a queued job unless one with its id exists; False when one does."""
        payload = _pack(job.payload or {})
        if len(payload) > max_bytes:
            raise JobTooLargeError(f"the request takes {len(payload)} bytes compressed; a job holds {max_bytes}")
        item = {
            "job_id": {"S": job.job_id},
            "status": {"S": JobStatus.QUEUED},
            "group": {"S": job.caller.group},
            "user": {"S": job.caller.user},
            "request_id": {"S": job.request_id},
            "output_type": {"S": job.output_type},
            "created_at": {"S": _iso(job.created_at)},
            "start_by": {"S": _iso(job.start_by)},
            "finish_by": {"S": _iso(job.finish_by)},
            "limit_seconds": {"N": str(job.limit_seconds)},
            "admission": {"S": _admission_json(job.admission)},
            "payload": {"B": payload},
            "expires_at": {"N": str(int(expires_at.timestamp()))},
            **({"token": {"S": job.token}} if job.token else {}),
        }
        try:
            self._client.put_item(
                TableName=self._jobs_table,
                Item=item,
                ConditionExpression="attribute_not_exists(job_id)",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def get(self, job: str) -> Job | None:
        response = self._client.get_item(TableName=self._jobs_table, Key={"job_id": {"S": job}}, ConsistentRead=True)
        item = response.get("Item")
        return _job(item) if item else None

    def claim(self, job: str, *, now: dt.datetime) -> Job | None:
        """Move a queued job to running and take its token out of the table; the job as it was
        (with the token), or None when it is not queued (a repeated event: someone claimed it)."""
        try:
            response = self._client.update_item(
                TableName=self._jobs_table,
                Key={"job_id": {"S": job}},
                UpdateExpression="SET #status = :running, updated_at = :now REMOVE #token",
                ConditionExpression="#status = :queued",
                ExpressionAttributeNames={"#status": "status", "#token": "token"},
                ExpressionAttributeValues={
                    ":running": {"S": JobStatus.RUNNING},
                    ":queued": {"S": JobStatus.QUEUED},
                    ":now": {"S": _iso(now)},
                },
                ReturnValues="ALL_OLD",
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return None
            raise
        return _job(response["Attributes"])

    def succeed(self, job: str, body: dict[str, Any], *, now: dt.datetime) -> None:
        """A running job's output delivered: keep the body, drop the request."""
        self._end(job, JobStatus.SUCCEEDED, "result", {"B": _pack(body)}, now, (JobStatus.RUNNING,))

    def fail(self, job: str, reason: str, *, now: dt.datetime) -> None:
        """A queued or running job ended without an output: keep the reason, drop the request."""
        self._end(job, JobStatus.FAILED, "reason", {"S": reason}, now, (JobStatus.QUEUED, JobStatus.RUNNING))

    def _end(
        self,
        job: str,
        status: JobStatus,
        name: str,
        value: dict[str, Any],
        now: dt.datetime,
        from_statuses: tuple[JobStatus, ...],
    ) -> None:
        values = {f":from{n}": {"S": s.value} for n, s in enumerate(from_statuses)}
        try:
            self._client.update_item(
                TableName=self._jobs_table,
                Key={"job_id": {"S": job}},
                UpdateExpression="SET #status = :status, #value = :value, updated_at = :now REMOVE payload, #token",
                ConditionExpression=f"#status IN ({', '.join(values)})",
                ExpressionAttributeNames={"#status": "status", "#value": name, "#token": "token"},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":value": value,
                    ":now": {"S": _iso(now)},
                    **values,
                },
            )
        except ClientError as error:
            # Already ended (a repeated event, or the worker's own outcome first): the first one stands.
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


class Worker:
    """The worker function, invoked asynchronously (InvocationType Event) with a job's id alone."""

    def __init__(self, client: Any, function: str) -> None:
        self._client = client
        self._worker_function = function

    def start(self, job: str) -> None:
        with call("lambda"):
            self._client.invoke(
                FunctionName=self._worker_function, InvocationType="Event", Payload=json.dumps({"job_id": job}).encode()
            )


@dataclass(frozen=True)
class Jobs:
    """What the gateway's job routes use: the table, the worker, the settings."""

    store: JobStore
    worker: Worker
    settings: GatewayJobsSettings


@cache
def environment() -> Jobs:
    """The gateway function's jobs, from its environment (GatewayJobsSettings)."""
    settings = GatewayJobsSettings.from_environ()
    dynamodb = clients.dynamodb()
    # An asynchronous invoke only queues the event: it answers at once.
    invoker = boto3.client(
        "lambda",
        config=Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2}),
    )
    return Jobs(JobStore(dynamodb, settings.jobs_table), Worker(invoker, settings.worker_function), settings)


# --- the gateway's routes ------------------------------------------------------------------------


def submit(
    request: GenerationRequest,
    *,
    flow: Flow,
    ledger: Ledger,
    agents: Mapping[str, str],
    clock: Clock,
    jobs: Jobs | None = None,
) -> tuple[int, dict[str, Any]]:
    """Admit a screened request's units and queue it as a job: (202, the job's status body).

    Raises what the flow's admission raises (QuotaRefusedError: 429; DuplicateRequestError: 409 when
    the request id was used by a synchronous request), TokenRequiredError (401) for an agent's
    output type without the caller's token, and UpstreamError. A request too large for a job item
    is a 413, before anything is admitted."""
    jobs = jobs or environment()
    settings = jobs.settings
    job = job_id(request.caller, request.request_id)
    with call("dynamodb"):
        existing = jobs.store.get(job)
    if existing is not None:  # a re-submit: the same job, nothing admitted again
        return 202, _accepted(existing)
    if request.output.agent is not None and request.token is None:
        raise TokenRequiredError("Authorization: Bearer <access token> is required")
    payload = _payload(request, agents)
    size = len(_pack(payload))
    if size > settings.max_job_bytes:  # checked before admission: nothing to give back
        return 413, {
            "error": "too_large",
            "message": f"the request takes {size} bytes compressed; a job holds {settings.max_job_bytes}",
        }
    try:
        admission = flow.admit(request)
    except DuplicateRequestError:
        with call("dynamodb"):
            existing = jobs.store.get(job)  # a concurrent re-submit admitted it and wrote the job
        if existing is None:
            raise  # the request id was a synchronous request's
        return 202, _accepted(existing)
    created = clock.now()
    limit = min(
        settings.async_timeouts_seconds.get(request.output_type, settings.worker_timeout_seconds),
        settings.worker_timeout_seconds,
    )
    start_by = created + dt.timedelta(seconds=settings.max_event_age_seconds)
    queued = Job(
        job_id=job,
        status=JobStatus.QUEUED,
        caller=request.caller,
        request_id=request.request_id,
        output_type=request.output_type,
        created_at=created,
        start_by=start_by,
        finish_by=start_by + dt.timedelta(seconds=settings.worker_timeout_seconds),
        admission=admission,
        limit_seconds=limit,
        payload=payload,
        token=request.token,
    )
    written = False
    try:
        expires = created + dt.timedelta(seconds=settings.job_retention_seconds)
        with call("dynamodb"):
            written = jobs.store.create(queued, expires_at=expires, max_bytes=settings.max_job_bytes)
        if written:
            jobs.worker.start(job)
    except BaseException as error:
        # No job will run: give the units back (once), and end the job if it was written.
        _release(ledger, request, admission)
        if written:
            _fail_quietly(jobs.store, job, _reason(error), clock.now())
        raise
    if not written:
        # A concurrent submit of the same request wrote its job first (after a release let this one
        # admit again): that job stands, and this admission is given back.
        _release(ledger, request, admission)
        with call("dynamodb"):
            existing = jobs.store.get(job)
        return 202, _accepted(existing or queued)
    return 202, _accepted(queued)


def read(job: str, *, caller: Caller, clock: Clock, jobs: Jobs | None = None) -> tuple[int, dict[str, Any]]:
    """A job's status for its own user in its group: (200, body); (404, error) for anyone else's
    job, a job that does not exist and an id that cannot be one alike."""
    jobs = jobs or environment()
    found = None
    if JOB_ID.fullmatch(job):
        with call("dynamodb"):  # a failure is the table's (a typed 5xx), not the gateway's
            found = jobs.store.get(job)
    if found is None or found.caller != caller:
        return 404, {"error": "not_found", "message": f"no job {clip(job)} for this caller"}
    body: dict[str, Any] = {
        "job_id": found.job_id,
        "status": found.status.value,
        "status_url": status_url(found.job_id),
        "output_type": found.output_type,
        "created_at": found.created_at.isoformat(),
    }
    if found.status is JobStatus.SUCCEEDED:
        return 200, {**body, **(found.result or {}), "job_id": found.job_id, "status": found.status.value}
    if found.status is JobStatus.FAILED:
        return 200, {**body, "reason": found.reason or REASON_INTERNAL}
    if clock.now() > found.finish_by:  # its worker died: the sweeper gives the units back
        return 200, {**body, "status": JobStatus.FAILED.value, "reason": REASON_TIMEOUT}
    return 200, body


# --- what the routes and the worker share -------------------------------------------------------


def reason(error: BaseException) -> str:
    """What a failed job shows its caller for ``error``."""
    return _reason(error)


def _reason(error: BaseException) -> str:
    if isinstance(error, UpstreamError):
        return REASON_UPSTREAM.format(service=error.service)
    if isinstance(error, TokenRequiredError):
        return REASON_TOKEN
    return REASON_INTERNAL


def _accepted(job: Job) -> dict[str, Any]:
    return {"job_id": job.job_id, "status": job.status.value, "status_url": status_url(job.job_id)}


def _payload(request: GenerationRequest, agents: Mapping[str, str]) -> dict[str, Any]:
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request) if f.name not in _REBUILT}
    agent = request.output.agent
    return {
        "request": {**fields, "grounding": list(request.grounding) if request.grounding else None},
        "output": request.output.model_dump(mode="json"),
        "quota": request.quota.model_dump(mode="json"),
        # Only the runtime of the agent the job needs, as the policy named it at submission.
        "agents": {agent: agents[agent]} if agent and agent in agents else {},
    }


def _release(ledger: Ledger, request: GenerationRequest, admission: Admission) -> None:
    try:
        with call("dynamodb"):
            ledger.release(
                request.request_id,
                group=request.caller.group,
                user=request.caller.user,
                output_type=request.output_type,
                units=request.output.units,
                window=admission.window,
            )
    except UpstreamError:
        pass  # the sweeper releases what is left admitted


def _fail_quietly(store: JobStore, job: str, why: str, now: dt.datetime) -> None:
    try:
        with call("dynamodb"):
            store.fail(job, why, now=now)
    except UpstreamError:
        pass  # GET reports it failed after its finish-by time


def _pack(value: dict[str, Any]) -> bytes:
    return zlib.compress(json.dumps(value, separators=(",", ":")).encode(), 6)


def _unpack(data: bytes) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(zlib.decompress(data))
    return value


def _readable(data: bytes) -> dict[str, Any] | None:
    """A stored request, or None when it cannot be read (the worker then fails the job)."""
    try:
        return _unpack(data)
    except (zlib.error, ValueError):
        return None


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat()


def _admission_json(admission: Admission) -> str:
    return json.dumps(
        {
            "request_id": admission.request_id,
            "units": admission.units,
            "used": admission.used,
            "limit": admission.limit,
            "resets_at": _iso(admission.resets_at),
            "window": admission.window,
        }
    )


def _job(item: dict[str, Any]) -> Job:
    admission = json.loads(item["admission"]["S"])
    return Job(
        job_id=item["job_id"]["S"],
        status=JobStatus(item["status"]["S"]),
        caller=Caller(user=item["user"]["S"], group=item["group"]["S"]),
        request_id=item["request_id"]["S"],
        output_type=item["output_type"]["S"],
        created_at=dt.datetime.fromisoformat(item["created_at"]["S"]),
        start_by=dt.datetime.fromisoformat(item["start_by"]["S"]),
        finish_by=dt.datetime.fromisoformat(item["finish_by"]["S"]),
        admission=Admission(
            request_id=admission["request_id"],
            units=admission["units"],
            used=admission["used"],
            limit=admission["limit"],
            resets_at=dt.datetime.fromisoformat(admission["resets_at"]),
            replayed=False,
            window=admission["window"],
        ),
        limit_seconds=int(item["limit_seconds"]["N"]),
        payload=_readable(item["payload"]["B"]) if "payload" in item else None,
        token=item["token"]["S"] if "token" in item else None,
        result=_unpack(item["result"]["B"]) if "result" in item else None,
        reason=item["reason"]["S"] if "reason" in item else None,
    )
