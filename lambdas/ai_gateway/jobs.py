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
finish-by time, and the sweeper (ai_gateway.sweeper) gives its units back; unless the worker had
kept its output on the item (it does so before the output is metered) and the ledger has it
delivered: then GET serves it, as succeeded. A worker start that fails withdraws the queued job
(``withdrawn``, read as absent), as does a job write whose every answer was lost (it may have
landed, and no worker was started for it): a retry under its request id is admitted anew.

A job item is read as untrusted (an older or newer schema, a bad write, a hand edit): every
attribute is checked for its DynamoDB type and its shape, a packed request or output unpacks to a
bounded size, and the item must be its caller's (its id derived from its own group, user and request
id). One that is not is a CorruptJobError naming the attribute (never its value): GET answers its
caller a 500 ``job_unreadable`` (anyone else a 404, as for any job not theirs) and the worker fails it
without releasing units it cannot trust (the sweeper releases the ledger's own record). An item past
its expiry (DynamoDB's TTL deletes up to days late) is gone: a 404, and a job the worker refuses.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import re
import secrets
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config
from botocore.exceptions import ClientError

from ai_gateway import clients
from ai_gateway.contract import Settings
from ai_gateway.flow import Clock, DuplicateRequestError, Flow, GenerationRequest, TokenRequiredError
from ai_gateway.jobs_contract import RESPOND_ASYNC, TTL_ATTRIBUTE, GatewayJobsSettings, JobStatus
from ai_gateway.ledger import DELIVERED, Admission, Ledger
from ai_gateway.models import Caller, OutputPolicy, Quota
from shared.aws_errors import UpstreamError, call
from shared.bodies import shown

logger = Logger(child=True)
JOB_ID = re.compile(r"[0-9a-f]{32}")
# An output type's or an agent's name as the config allows it (what a job item's must be).
OUTPUT_TYPE = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A conversation id as the gateway derives it (agents.runtime_session_id); it goes on every log line.
CONVERSATION = re.compile(r"[a-z0-9]{1,128}")
# The most bytes a job item's packed request or output unpacks to (zlib packs up to ~1000:1, so a
# 400 KB item could otherwise unpack to hundreds of MB): a request is at most Lambda's 6 MB payload,
# JSON-escaped; an output is answered in one Lambda response (6 MB).
MAX_REQUEST_BYTES = 16 * 1024 * 1024
MAX_RESULT_BYTES = 6 * 1024 * 1024
# The most bytes of packed output a job item keeps (DynamoDB items are at most 400 KB, its other
# attributes included).
MAX_KEPT_RESULT_BYTES = 350_000
MAX_PREFER_CHARS = 1024  # RFC 7240 preferences are short; a longer header is not read for one
# A job's payload fields the worker rebuilds its GenerationRequest from: every field but these,
# which are recomputed (deadline), held apart (token) or rebuilt from their own keys.
_REBUILT = {"caller", "output", "quota", "deadline", "token", "grounding"}

# Reasons a failed job shows its caller: what happened, never an upstream's own message.
REASON_GUARDRAIL = "the output guardrail withheld the output; no units were charged"
REASON_TIMEOUT = "the job did not finish within its time limit; no units were charged"
# A job whose worker died after keeping its output, when the ledger cannot say whether it was metered.
REASON_TIMEOUT_UNSETTLED = (
    "the job did not finish within its time limit after producing its output, which may have been charged "
    "(quote the job id)"
)
REASON_STALE = "the job could not start in time; no units were charged"
REASON_UPSTREAM = "a service the job depends on failed ({service}); no units were charged"
REASON_TOKEN = "an agent acts as the caller, and the caller's token was missing; no units were charged"  # noqa: S105
REASON_INTERNAL = "the job failed; no units were charged (quote the job id)"
REASON_TOO_LARGE = (
    f"the output was larger than a job keeps ({MAX_RESULT_BYTES:,} bytes, {MAX_KEPT_RESULT_BYTES:,} packed); "
    "no units were charged"
)


class JobTooLargeError(Exception):
    """The screened request does not fit in a job item."""


class CorruptJobError(Exception):
    """A job item that cannot be read as a job: ``field`` names the attribute (never its value);
    ``owner``: the caller whose job it is, when that much can be read (its group, user and request
    id, from which its id derives); ``expires_at``: when it expires (infinity: never)."""

    def __init__(self, job: str, field: str, *, owner: Caller | None = None, expires_at: float = math.inf) -> None:
        super().__init__(f"job {job}: its {field} cannot be read")
        self.job_id = job
        self.field = field
        self.owner = owner
        self.expires_at = expires_at


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
    expires_at: float | None = None  # when DynamoDB's TTL deletes it (epoch seconds), when known
    fingerprint: str | None = None  # the request as the caller sent it (fingerprint()), when known
    claimed_by: str | None = None  # the claim's owner, as claim() returns the job (keep() needs it)

    def expired(self, now: dt.datetime) -> bool:
        """Whether the item is past its expiry (still present only because TTL deletes lazily)."""
        return self.expires_at is not None and now.timestamp() >= self.expires_at

    def request(self, *, deadline: float) -> GenerationRequest:
        """The GenerationRequest the job was submitted with, generating until ``deadline``."""
        if self.payload is None:
            raise ValueError(f"job {self.job_id} holds no request")
        stored = self.payload.get("request")
        if not isinstance(stored, dict):
            raise ValueError(f"job {self.job_id} holds no request")  # (never the payload: it is the caller's)
        fields = dict(stored)
        # The request the units were admitted for, and no other: the ledger meters it by these.
        if (fields.get("request_id"), fields.get("output_type")) != (self.request_id, self.output_type):
            raise ValueError(f"job {self.job_id} holds another request than the one admitted")
        conversation = fields.get("conversation")
        if not isinstance(conversation, str) or not CONVERSATION.fullmatch(conversation):
            raise ValueError(f"job {self.job_id}: its conversation id is not one")  # it goes on every log line
        # The policy as the submitting gateway had it; read like the document it came from (a
        # later release's fields ignored: shared/runtime_config.py).
        output = OutputPolicy.model_validate(self.payload.get("output"), extra="ignore")
        if output.agent is not None and not OUTPUT_TYPE.fullmatch(output.agent):
            raise ValueError(f"job {self.job_id}: its agent is not a name")  # it names the upstream in logs
        grounding = fields.pop("grounding", None)
        if grounding is not None and not (
            isinstance(grounding, list) and len(grounding) == 2 and all(isinstance(g, str) for g in grounding)
        ):
            raise ValueError(f"job {self.job_id}: its grounding is not a source and a query")
        fields["stop_sequences"] = tuple(fields.get("stop_sequences") or ())  # (a JSON list in the item)
        return GenerationRequest(
            caller=self.caller,
            output=output,
            quota=Quota.model_validate(self.payload.get("quota"), extra="ignore"),
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


def respond_async(prefer: Sequence[str]) -> bool:
    """Whether the request's Prefer header lines (RFC 7240: preferences may come in one line or
    several) ask for an asynchronous answer; a line too long to be one is not read.
    ``respond-async`` takes no value (an empty one is the same as none): with one, such as
    ``respond-async=false``, it is not the preference RFC 7240 defines, and is ignored."""
    for line in prefer:
        if len(line) > MAX_PREFER_CHARS:
            continue
        for preference in line.split(","):
            name, _, value = preference.split(";")[0].partition("=")
            if name.strip().lower() == RESPOND_ASYNC and value.strip() in ("", '""'):
                return True
    return False


def status_url(job: str) -> str:
    return f"/v1/jobs/{job}"


class JobStore:
    """The jobs table: one item per job, keyed by ``job_id``."""

    def __init__(self, client: Any, table: str) -> None:
        self._client = client
        self._jobs_table = table

    def create(self, job: Job, *, expires_at: dt.datetime, max_bytes: int, attempt: str | None = None) -> bool:
        """Write a queued job unless one with its id exists; False when one does. One past its
        expiry (TTL deletes lazily, up to days later) or withdrawn is not a job anymore: it is
        written over. The item carries an attempt id (``attempt``, else a random one): a write
        botocore retried after it had landed fails its condition on this very item, and is told
        apart by it (written, not raced); and a write whose every answer was lost can be withdrawn
        by it (withdraw's ``attempt``) without touching another submit's job."""
        attempt = attempt or secrets.token_hex(16)
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
            "attempt": {"S": attempt},
            TTL_ATTRIBUTE: {"N": str(int(expires_at.timestamp()))},
            **({"fingerprint": {"S": job.fingerprint}} if job.fingerprint else {}),
            **({"token": {"S": job.token}} if job.token else {}),
        }
        try:
            self._client.put_item(
                TableName=self._jobs_table,
                Item=item,
                ConditionExpression="attribute_not_exists(job_id) OR expires_at <= :now OR #status = :withdrawn",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":now": {"N": str(int(job.created_at.timestamp()))},
                    ":withdrawn": {"S": JobStatus.WITHDRAWN},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            return _old(error).get("attempt") == {"S": attempt}  # this write's own item: written
        return True

    def get(self, job: str) -> Job | None:
        """The job, or None when there is none (or only a withdrawn one); CorruptJobError when its
        item cannot be read."""
        response = self._client.get_item(TableName=self._jobs_table, Key={"job_id": {"S": job}}, ConsistentRead=True)
        item = response.get("Item")
        found = _job(item, job) if isinstance(item, dict) and item else None
        return None if found is None or found.status is JobStatus.WITHDRAWN else found

    def claim(self, job: str, *, now: dt.datetime) -> Job | None:
        """Move a queued job to running and take its token out of the table; the job as it was
        (with the token, and ``claimed_by`` the claim's random owner, which keep() names), or None
        when it is not queued (a repeated event: someone claimed it). A claim botocore retried after
        it had landed finds the job running under its own owner: it is this claim's, and the job is
        returned as the item holds it (without the token, which the lost first answer carried). The
        owner is random, not the Lambda request id: Lambda retries an event under the same request
        id, and such a retry must not take over a claim its predecessor may have metered under.
        CorruptJobError when the claimed item cannot be read (it is then running: fail it)."""
        owner = secrets.token_hex(16)
        try:
            response = self._client.update_item(
                TableName=self._jobs_table,
                Key={"job_id": {"S": job}},
                UpdateExpression="SET #status = :running, claimed_by = :owner, updated_at = :now REMOVE #token",
                ConditionExpression="#status = :queued",
                ExpressionAttributeNames={"#status": "status", "#token": "token"},
                ExpressionAttributeValues={
                    ":running": {"S": JobStatus.RUNNING},
                    ":queued": {"S": JobStatus.QUEUED},
                    ":owner": {"S": owner},
                    ":now": {"S": _iso(now)},
                },
                ReturnValues="ALL_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            old = _old(error)
            if old.get("status") == {"S": JobStatus.RUNNING} and old.get("claimed_by") == {"S": owner}:
                return dataclasses.replace(_job(old, job), claimed_by=owner)
            return None
        return dataclasses.replace(_job(response.get("Attributes") or {}, job), claimed_by=owner)

    def keep(self, job: str, result: bytes, *, now: dt.datetime, owner: str) -> bool:
        """A running job's output (packed_result), kept on its item before it is metered: a worker
        that dies once it is metered leaves it there for GET (which serves it only once the ledger
        has it delivered). False when the job is not running, claimed by ``owner``."""
        try:
            self._client.update_item(
                TableName=self._jobs_table,
                Key={"job_id": {"S": job}},
                UpdateExpression="SET #result = :result, updated_at = :now",
                ConditionExpression="#status = :running AND claimed_by = :owner",
                ExpressionAttributeNames={"#status": "status", "#result": "result"},
                ExpressionAttributeValues={
                    ":result": {"B": result},
                    ":running": {"S": JobStatus.RUNNING},
                    ":owner": {"S": owner},
                    ":now": {"S": _iso(now)},
                },
            )
        except ClientError as error:
            if not _condition_failed(error):
                raise
            return False
        return True

    def succeed(self, job: str, result: bytes, *, now: dt.datetime) -> bool:
        """A running job's output delivered: keep its packed body (packed_result; the one keep()
        wrote already, which costs no more: an update is charged by the larger of the item's sizes),
        drop the request. False when the job was not running (ended already)."""
        return self._end(job, JobStatus.SUCCEEDED, "result", {"B": result}, now, (JobStatus.RUNNING,))

    def fail(self, job: str, reason: str, *, now: dt.datetime, running: bool = True) -> bool:
        """A queued or (``running``) running job ended without an output: keep the reason, drop the
        request and any output kept before it was metered (it was not, or not for good). False when
        the job was in neither state (ended already, or running)."""
        statuses = (JobStatus.QUEUED, JobStatus.RUNNING) if running else (JobStatus.QUEUED,)
        return self._end(job, JobStatus.FAILED, "reason", {"S": reason}, now, statuses)

    def withdraw(self, job: str, reason: str, *, now: dt.datetime, attempt: str | None = None) -> bool:
        """A queued job whose worker could not be started taken back: it reads as absent, and a
        re-submit under its request id writes over it. False when the job is not queued (the worker
        claimed it); with ``attempt``, also when there is no job or it is not that create's write."""
        return self._end(job, JobStatus.WITHDRAWN, "reason", {"S": reason}, now, (JobStatus.QUEUED,), attempt)

    def _end(
        self,
        job: str,
        status: JobStatus,
        name: str,
        value: dict[str, Any],
        now: dt.datetime,
        from_statuses: tuple[JobStatus, ...],
        attempt: str | None = None,
    ) -> bool:
        values: dict[str, Any] = {f":from{n}": {"S": s.value} for n, s in enumerate(from_statuses)}
        condition = f"#status IN ({', '.join(values)})"
        if attempt is not None:  # only the write of that create (see create)
            condition += " AND attempt = :attempt"
            values[":attempt"] = {"S": attempt}
        names = {"#status": "status", "#value": name, "#token": "token"}
        removed = "payload, #token"
        if status is not JobStatus.SUCCEEDED:  # an output kept before metering is never a failed job's
            names["#result"] = "result"
            removed += ", #result"
        try:
            self._client.update_item(
                TableName=self._jobs_table,
                Key={"job_id": {"S": job}},
                UpdateExpression=f"SET #status = :status, #value = :value, updated_at = :now REMOVE {removed}",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":value": value,
                    ":now": {"S": _iso(now)},
                    **values,
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            # Already ended (a repeated event, or the worker's own outcome first): the first one
            # stands. The same ending found is this write's own, landed before botocore retried it.
            if not _condition_failed(error):
                raise
            old = _old(error)
            return old.get("status") == {"S": status} and old.get(name) == value
        return True


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
    """What the gateway's job routes use: the table, the worker, the settings, and the ledger (GET
    asks it whether a job whose worker died had its kept output metered; None: it cannot tell)."""

    store: JobStore
    worker: Worker
    settings: GatewayJobsSettings
    ledger: Ledger | None = None


@cache
def environment() -> Jobs:
    """The gateway function's jobs, from its environment (GatewayJobsSettings, and the ledger's
    table from its own Settings)."""
    settings = GatewayJobsSettings.from_environ()
    ledger_table = Settings.from_environ().ledger_table
    dynamodb = clients.dynamodb()
    # An asynchronous invoke only queues the event: it answers at once.
    invoker = boto3.client(
        "lambda",
        config=Config(connect_timeout=1, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 2}),
    )
    return Jobs(
        JobStore(dynamodb, settings.jobs_table),
        Worker(invoker, settings.worker_function),
        settings,
        Ledger(dynamodb, ledger_table),
    )


# --- the gateway's routes ------------------------------------------------------------------------


def fingerprint(*sent: str | None) -> str:
    """A digest of a request as its caller sent it (output type, material, instructions, model):
    a re-submit under the same request id must be the same request."""
    return hashlib.sha256(json.dumps(sent).encode()).hexdigest()


def resubmitted(
    caller: Caller, request_id: str, sent: str, *, now: dt.datetime, jobs: Jobs | None = None
) -> tuple[int, dict[str, Any]] | None:
    """The answer to a re-submit, before anything is screened or admitted: (202, the job) for the
    same request, 422 for another request under the same request id (its Idempotency-Key reused),
    None when no job has the id (or only an expired one: GET would not find it). ``now``: the
    time the request came in."""
    jobs = jobs or environment()
    try:
        with call("dynamodb"):
            existing = jobs.store.get(job_id(caller, request_id))
    except CorruptJobError as error:
        return _unreadable(error)
    if existing is None or existing.expired(now):
        return None
    return _resubmit(existing, sent, now, jobs.ledger)


def _resubmit(existing: Job, sent: str | None, now: dt.datetime, ledger: Ledger | None) -> tuple[int, dict[str, Any]]:
    if sent is not None and existing.fingerprint is not None and existing.fingerprint != sent:
        message = (
            f"request id {existing.request_id} was used for another request: send this one with a new Idempotency-Key"
        )
        return 422, {"error": "idempotency_key_reused", "message": message}
    return 202, _accepted(existing, now, ledger)


def submit(
    request: GenerationRequest,
    *,
    flow: Flow,
    ledger: Ledger,
    agents: Mapping[str, str],
    clock: Clock,
    jobs: Jobs | None = None,
    sent: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Admit a screened request's units and queue it as a job: (202, the job's status body).

    Raises what the flow's admission raises (QuotaRefusedError: 429; DuplicateRequestError: 409 when
    the request id was used by a synchronous request), TokenRequiredError (401) for an agent's
    output type without the caller's token, and UpstreamError. A request too large for a job item
    is a 413, before anything is admitted. A job item at the request's id that cannot be read is a
    500 ``job_unreadable``, and nothing is admitted (the id is the caller's: nothing of anyone else's
    is told). ``sent``: the request's fingerprint(), kept with the job so that a re-submit under the
    same request id that is another request is a 422."""
    try:
        return _submit(
            request, flow=flow, ledger=ledger, agents=agents, clock=clock, jobs=jobs or environment(), sent=sent
        )
    except CorruptJobError as error:  # (raised only by reading the job: nothing is left admitted)
        return _unreadable(error)


def _submit(
    request: GenerationRequest,
    *,
    flow: Flow,
    ledger: Ledger,
    agents: Mapping[str, str],
    clock: Clock,
    jobs: Jobs,
    sent: str | None,
) -> tuple[int, dict[str, Any]]:
    settings = jobs.settings
    job = job_id(request.caller, request.request_id)
    with call("dynamodb"):
        existing = jobs.store.get(job)
    if existing is not None and not existing.expired(clock.now()):  # a re-submit: nothing admitted again
        return _resubmit(existing, sent, clock.now(), jobs.ledger)
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
        if existing is None or existing.expired(clock.now()):
            raise  # the request id was a synchronous request's, or an expired job's (its key is spent)
        return _resubmit(existing, sent, clock.now(), jobs.ledger)
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
        fingerprint=sent,
    )
    written = False
    attempt = secrets.token_hex(16)
    try:
        expires = created + dt.timedelta(seconds=settings.job_retention_seconds)
        with call("dynamodb"):
            written = jobs.store.create(queued, expires_at=expires, max_bytes=settings.max_job_bytes, attempt=attempt)
        if written:
            jobs.worker.start(job)
    except BaseException as error:
        # The job is withdrawn while still queued (the worker claims only a queued job): then no job
        # will run, and its units go back (once). One the worker has claimed is its own (the
        # invocation went out, its answer was lost): it stands, and is answered as submitted.
        if _claimed(jobs.store, job, _reason(error), clock.now(), written=written, attempt=attempt):
            logger.warning("the worker's start failed after it took the job", extra={"job_id": job})
            return 202, _accepted(queued, created)
        _release(ledger, request, admission)
        raise
    if not written:
        # A concurrent submit of the same request wrote its job first (after a release let this one
        # admit again): that job stands, and this admission is given back.
        _release(ledger, request, admission)
        with call("dynamodb"):
            existing = jobs.store.get(job)
        return _resubmit(existing or queued, sent, clock.now(), jobs.ledger)
    return 202, _accepted(queued, created)


def read(job: str, *, caller: Caller, clock: Clock, jobs: Jobs | None = None) -> tuple[int, dict[str, Any]]:
    """A job's status for its own user in its group: (200, body); (404, error) for anyone else's
    job, a job that does not exist and an id that cannot be one alike."""
    jobs = jobs or environment()
    now = clock.now()
    missing = 404, {"error": "not_found", "message": f"no job {shown(job)} for this caller"}
    found = None
    if JOB_ID.fullmatch(job):
        try:
            with call("dynamodb"):  # a failure is the table's (a typed 5xx), not the gateway's
                found = jobs.store.get(job)
        except CorruptJobError as error:
            # Whose it is decides first: anyone else learns nothing of it, not even that it is corrupt.
            if error.owner != caller or error.expires_at <= now.timestamp():
                return missing
            return _unreadable(error)
    if found is None or found.caller != caller or found.expired(now):
        return missing
    body: dict[str, Any] = {
        "job_id": found.job_id,
        "status": found.status.value,
        "status_url": status_url(found.job_id),
        "output_type": found.output_type,
        "created_at": found.created_at.isoformat(),
    }
    status, result, why = _outcome(found, now, jobs.ledger)
    if status is JobStatus.SUCCEEDED:
        return 200, {**body, **(result or {}), "job_id": found.job_id, "status": status.value}
    if status is JobStatus.FAILED:
        return 200, {**body, "status": status.value, "reason": why or REASON_INTERNAL}
    return 200, body


def _outcome(job: Job, now: dt.datetime, ledger: Ledger | None) -> tuple[JobStatus, dict[str, Any] | None, str | None]:
    """A job's status as GET shows it, with its output or its reason. A job not ended past its
    finish-by time has died: failed, its units given back by the sweeper; unless its worker died
    after keeping its output (kept before it is metered): then the ledger tells whether it was
    delivered (charged: shown) or not (never to be)."""
    if job.status is JobStatus.SUCCEEDED:
        return job.status, job.result, None
    if job.status is JobStatus.FAILED:
        return job.status, None, job.reason or REASON_INTERNAL
    if now <= job.finish_by:
        return job.status, None, None
    if job.result is None:  # nothing was metered: an output is kept before it is
        return JobStatus.FAILED, None, REASON_TIMEOUT
    if ledger is None:
        return JobStatus.FAILED, None, REASON_TIMEOUT_UNSETTLED
    with call("dynamodb"):  # a failure is the ledger's 5xx: an answer now could be wrong for good
        record = ledger.record(job.request_id, group=job.caller.group, user=job.caller.user) or {}
    if record.get("status") == {"S": DELIVERED}:
        return JobStatus.SUCCEEDED, job.result, None
    return JobStatus.FAILED, None, REASON_TIMEOUT


# --- what the routes and the worker share -------------------------------------------------------


def packed_result(body: dict[str, Any]) -> bytes:
    """A job's output body as its item keeps it; JobTooLargeError when it does not fit, packed
    or as GET reads it back (checked before the output is metered: ai_gateway.worker). An output
    of repeated text packs small: kept past MAX_RESULT_BYTES, it would be charged and unreadable."""
    text = _json(body)
    if len(text) > MAX_RESULT_BYTES:
        raise JobTooLargeError(f"the output takes {len(text)} bytes; a job answers at most {MAX_RESULT_BYTES}")
    packed = zlib.compress(text)
    if len(packed) > MAX_KEPT_RESULT_BYTES:
        raise JobTooLargeError(f"the output takes {len(packed)} bytes packed; a job keeps {MAX_KEPT_RESULT_BYTES}")
    return packed


def reason(error: BaseException) -> str:
    """What a failed job shows its caller for ``error``."""
    return _reason(error)


def _reason(error: BaseException) -> str:
    if isinstance(error, UpstreamError):
        return REASON_UPSTREAM.format(service=error.service)
    if isinstance(error, TokenRequiredError):
        return REASON_TOKEN
    if isinstance(error, JobTooLargeError):
        return REASON_TOO_LARGE
    return REASON_INTERNAL


def _unreadable(error: CorruptJobError) -> tuple[int, dict[str, Any]]:
    logger.error("job item cannot be read", extra={"job_id": error.job_id, "field": error.field})
    return 500, {"error": "job_unreadable", "message": f"job {error.job_id} cannot be read; quote its id"}


def _accepted(job: Job, now: dt.datetime, ledger: Ledger | None = None) -> dict[str, Any]:
    """The job as a submit answers it: with the status GET shows now (a job whose worker died is
    failed, though its item still says queued or running)."""
    status, _, _ = _outcome(job, now, ledger)
    return {"job_id": job.job_id, "status": status.value, "status_url": status_url(job.job_id)}


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
    except UpstreamError as error:  # the sweeper releases what is left admitted
        logger.error(
            "release failed: units stay admitted",
            extra={"request_id": request.request_id, "upstream": error.service, "code": error.code},
        )


def _claimed(store: JobStore, job: str, why: str, now: dt.datetime, *, written: bool, attempt: str) -> bool:
    """Whether a submitted job whose write or worker start failed is the worker's (claimed) anyway;
    if not, it is withdrawn. A write that failed has an unknown outcome: it may have landed though
    every answer was lost. No worker was started for it, so a job it left queued would never run,
    yet a retry under its request id would find it (202, queued): it is withdrawn, if it is there,
    by its attempt id (another submit's job is not this one's to withdraw)."""
    if written:
        return not _withdrawn(store, job, why, now)
    _withdrawn(store, job, why, now, attempt=attempt)
    return False


def _withdrawn(store: JobStore, job: str, why: str, now: dt.datetime, *, attempt: str | None = None) -> bool:
    """A submitted job withdrawn while still queued (it reads as absent: a retry under its request
    id, as the error invites, is admitted anew): False when the worker has claimed it (or, with
    ``attempt``, when no job is that create's write). A failure to record it counts as withdrawn
    (GET reports it failed after its finish-by time, and a worker that claims it later finds its
    units released: nothing is delivered)."""
    try:
        with call("dynamodb"):
            return store.withdraw(job, why, now=now, attempt=attempt)
    except UpstreamError as error:
        extra = {"job_id": job, "upstream": error.service, "code": error.code}
        logger.warning("job's failure not recorded", extra=extra)
        return True


def _condition_failed(error: ClientError) -> bool:
    return bool(error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")


def _old(error: ClientError) -> dict[str, Any]:
    """The item a failed condition was checked on (ReturnValuesOnConditionCheckFailure=ALL_OLD);
    empty when there was none."""
    item = error.response.get("Item")
    return item if isinstance(item, dict) else {}


def _pack(value: dict[str, Any]) -> bytes:
    return zlib.compress(_json(value))


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _unpack(data: bytes, limit: int) -> dict[str, Any]:
    """A packed JSON object, unpacked to at most ``limit`` bytes (ValueError beyond, or for anything
    but a whole zlib stream of a JSON object)."""
    inflater = zlib.decompressobj()
    text = inflater.decompress(data, limit + 1)
    if len(text) > limit or inflater.unconsumed_tail or not inflater.eof:
        raise ValueError("not a packed JSON object within the limit")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a packed JSON object")
    return value


def _readable(data: bytes, limit: int) -> dict[str, Any] | None:
    """A stored request or output, or None when it cannot be read."""
    try:
        return _unpack(data, limit)
    except (zlib.error, ValueError, RecursionError):
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


def _string(item: Mapping[str, Any], name: str) -> str | None:
    value = item.get(name)
    text = value.get("S") if isinstance(value, dict) and len(value) == 1 else None
    return text if isinstance(text, str) else None


def _expiry(item: Mapping[str, Any]) -> float:
    """When the item expires (epoch seconds); infinity when it holds no readable expiry (DynamoDB's
    TTL ignores one that is not a number: such an item is never deleted)."""
    value = item.get(TTL_ATTRIBUTE)
    number = value.get("N") if isinstance(value, dict) and len(value) == 1 else None
    try:
        seconds = float(number) if isinstance(number, str) else math.inf
    except ValueError:
        return math.inf
    return seconds if math.isfinite(seconds) else math.inf


class _Item:
    """A stored job item's attributes, each read for its DynamoDB type and shape: CorruptJobError
    names the first one missing or of another type or shape."""

    def __init__(self, item: Mapping[str, Any], job: str) -> None:
        self._item = item
        self._job = job
        self.owner: Caller | None = None  # once the item is known to be the job of its caller
        self.expires_at = _expiry(item)

    def corrupt(self, name: str) -> CorruptJobError:
        return CorruptJobError(self._job, name, owner=self.owner, expires_at=self.expires_at)

    def has(self, name: str) -> bool:
        return name in self._item

    def string(self, name: str) -> str:
        text = _string(self._item, name)
        if text is None:
            raise self.corrupt(name)
        return text

    def optional(self, name: str) -> str | None:
        return self.string(name) if name in self._item else None

    def whole(self, name: str) -> int:
        value = self._item.get(name)
        number = value.get("N") if isinstance(value, dict) and len(value) == 1 else None
        if not isinstance(number, str) or not re.fullmatch(r"-?[0-9]{1,12}", number):
            raise self.corrupt(name)
        return int(number)

    def moment(self, name: str, text: str | None = None) -> dt.datetime:
        try:
            value = dt.datetime.fromisoformat(self.string(name) if text is None else text)
        except (ValueError, TypeError):
            raise self.corrupt(name) from None
        # An older writer's time without an offset is UTC (every writer here writes UTC).
        return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)

    def packed(self, name: str, limit: int) -> dict[str, Any] | None:
        if name not in self._item:
            return None
        value = self._item[name]
        data = value.get("B") if isinstance(value, dict) and len(value) == 1 else None
        unpacked = _readable(bytes(data), limit) if isinstance(data, bytes | bytearray) else None
        if unpacked is None:
            raise self.corrupt(name)
        return unpacked


def _job(stored: Mapping[str, Any], job: str) -> Job:
    """The job ``job``'s item read as untrusted (see _Item)."""
    item = _Item(stored, job)
    caller = Caller(user=item.string("user"), group=item.string("group"))
    request_id = item.string("request_id")
    if item.string("job_id") != job or job_id(caller, request_id) != job:
        raise item.corrupt("job_id")  # not the job of the caller and request it names
    item.owner = caller
    try:
        status = JobStatus(item.string("status"))
    except ValueError:
        raise item.corrupt("status") from None
    output_type = item.string("output_type")
    if not OUTPUT_TYPE.fullmatch(output_type):
        raise item.corrupt("output_type")
    admission = _admission(item, request_id)
    payload = None
    if item.has("payload"):  # a request that cannot be read fails the job (Job.request raises)
        try:
            payload = item.packed("payload", MAX_REQUEST_BYTES)
        except CorruptJobError:
            payload = None
    output = (payload or {}).get("output")
    if isinstance(output, dict) and output.get("units") != admission.units:
        raise item.corrupt("admission")  # which one is right cannot be told: release neither
    return Job(
        job_id=job,
        status=status,
        caller=caller,
        request_id=request_id,
        output_type=output_type,
        created_at=item.moment("created_at"),
        start_by=item.moment("start_by"),
        finish_by=item.moment("finish_by"),
        admission=admission,
        limit_seconds=item.whole("limit_seconds"),
        payload=payload,
        token=item.optional("token"),
        result=item.packed("result", MAX_RESULT_BYTES),
        reason=item.optional("reason"),
        expires_at=item.expires_at if math.isfinite(item.expires_at) else None,
        fingerprint=item.optional("fingerprint"),
    )


def _admission(item: _Item, request_id: str) -> Admission:
    """The admission a job item records: the units the worker releases, so they must be what the
    gateway wrote (a positive count within the limit, for the job's own request)."""
    try:
        value = json.loads(item.string("admission"))
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's recursion
        raise item.corrupt("admission") from None
    if not isinstance(value, dict):
        raise item.corrupt("admission")
    units, used, limit, window, resets_at = (value.get(k) for k in ("units", "used", "limit", "window", "resets_at"))
    if (
        value.get("request_id") != request_id
        or type(units) is not int
        or type(used) is not int
        or type(limit) is not int
        or not 1 <= units <= limit
        or not isinstance(window, str)
        or not window
        or not isinstance(resets_at, str)
    ):
        raise item.corrupt("admission")
    return Admission(
        request_id=request_id,
        units=units,
        used=used,
        limit=limit,
        resets_at=item.moment("admission", resets_at),
        replayed=False,
        window=window,
    )
