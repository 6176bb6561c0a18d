"""Deploy-time custom resource for the knowledge stack's Macie classification job
(stacks/production/macie.py), behind CDK's Provider framework. CloudFormation has no type for
classification jobs, and a job cannot be changed once made: it is created, and cancelled.

``ResourceProperties.Job`` is CreateClassificationJob's request as JSON, without a token; its
``name`` is a stem. Create, and an update that changes the job, make the job under
``<stem>-<fingerprint>``, the fingerprint being this resource's (stack id, logical id) and the job
it asks for, and answer its id as the physical id (an update's new id: CloudFormation then deletes
the old resource, which cancels the old job). Before making one, a job of that name Macie still
runs is taken instead: the one this resource made for the same settings earlier, which a
rolled-back update returns to (its update back sends the old settings; a new job would leave the
old one running, beside the one the rollback then cancels, with nothing left to cancel it).

The idempotency token is the request's (stack id, logical id, request id): the Provider framework's
retries of one request resend its request id, so they get the job the first made; each
CloudFormation operation sends a new one, so Macie never answers a settings change, a change back
or a retried deploy with the job an earlier operation made and CloudFormation has cancelled since.
A job Macie answers that no longer runs (CANCELLED or COMPLETE) fails the request by name: for
this request's own token it can only mean the job was cancelled during the deploy (by hand, or by
suspending Macie), and making another would override that; a new deploy asks with a new token.

An update that leaves the job as it was keeps the physical id while the job still runs (one that
was cancelled meanwhile is made again; but CloudFormation sends an update only when the job's
settings change, so a job cancelled by suspending Macie is made again at its next settings change,
docs/operations.md). While Macie is suspended or off, a create fails with the
fix; an update (a rollback's too) keeps the physical id and says so: suspending Macie cancelled its
jobs and disabling it deleted them, and no job can be made until it is resumed.

Delete cancels the job, unless there is nothing to cancel: Macie off (disabling it deleted every
job), suspended (which cancelled every job), no such job, or one already cancelled or complete.

Every request looks again while a call is denied for up to ACCESS_DENIED_GRACE_SECONDS (handler.py):
the function's permissions policy is created just before the custom resource that runs it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Json, ValidationError

from account_settings.handler import _client, logger, physical_id_of, shown, until_in_place
from account_settings.settings import Outcome, Refused, macie_not_enabled
from shared.aws_errors import failure_code

# Job statuses of a job that goes on running (PAUSED: by Macie, at its monthly quota; USER_PAUSED:
# by someone, resumable) and of one that never runs again.
LIVE = frozenset({"RUNNING", "IDLE", "PAUSED", "USER_PAUSED"})
FINISHED = frozenset({"CANCELLED", "COMPLETE"})
FINGERPRINT_CHARS = 16  # of the job's name: 64 bits of (stack id, logical id, job)
GONE = frozenset({"ResourceNotFoundException", "ValidationException"})  # what Macie answers for no such job
WHAT = "the Macie classification job"


class JobNotLive(Exception):  # noqa: N818 - the deployment's failure message
    """The job Macie answered for this request does not run."""


class JobProperties(BaseModel):
    """CloudFormation passes every property as a string: the job is one, of JSON."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    Job: Json[dict[str, Any]]


def _identity(event: dict[str, Any]) -> tuple[str, str]:
    stack, resource = event.get("StackId"), event.get("LogicalResourceId")
    if not isinstance(stack, str) or not isinstance(resource, str):
        raise ValueError("the event has no StackId or LogicalResourceId")
    return stack, resource


def client_token(event: dict[str, Any]) -> str:
    """This request's idempotency token: the same for the Provider framework's retries of it, new
    for each CloudFormation operation."""
    stack, resource = _identity(event)
    request = event.get("RequestId")
    if not isinstance(request, str) or not request:
        raise ValueError("the event has no RequestId (the job request's idempotency token)")
    return hashlib.sha256(f"{stack}/{resource}/{request}".encode()).hexdigest()


def job_of(properties: Any) -> dict[str, Any]:
    """The job a resource's properties ask for: CreateClassificationJob's request, no token."""
    job = dict(JobProperties.model_validate(properties).Job)
    if not isinstance(job.get("name"), str) or not job["name"]:
        raise ValueError(f"the job has no name: {shown(job.get('name'))}")
    job.pop("clientToken", None)
    return job


def request_of(event: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    """The job as this resource makes it: named after its stem and its fingerprint."""
    stack, resource = _identity(event)
    fingerprint = hashlib.sha256(
        json.dumps({"stack": stack, "resource": resource, "job": job}, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return {**job, "name": f"{job['name']}-{fingerprint[:FINGERPRINT_CHARS]}"}


def macie_status(macie: Any) -> str | None:
    """The Macie session's status (ENABLED or PAUSED), or None when Macie is off."""
    try:
        return str(macie.get_macie_session().get("status") or "") or None
    except ClientError as error:
        if macie_not_enabled(error):
            return None
        raise


def job_status(macie: Any, job_id: str) -> str | None:
    """The job's status, or None when Macie has no such job (or is off: it then has none)."""
    try:
        return str(macie.describe_classification_job(jobId=job_id).get("jobStatus") or "") or None
    except ClientError as error:
        if failure_code(error) in GONE or macie_not_enabled(error):
            return None
        raise


def live_job_named(macie: Any, name: str) -> str | None:
    """The id of a job named ``name`` that still runs: this resource's, for the same settings.
    Macie is asked for that name; if it refuses the filter, every job is listed and matched here."""
    criteria: dict[str, Any] | None = {"includes": [{"key": "name", "comparator": "EQ", "values": [name]}]}
    page: dict[str, Any] = {}
    while True:
        try:
            listed = macie.list_classification_jobs(**({"filterCriteria": criteria} if criteria else {}), **page)
        except ClientError as error:
            if criteria is None or failure_code(error) != "ValidationException":
                raise
            criteria, page = None, {}
            continue
        for item in listed.get("items", []):
            if item.get("name") == name and item.get("jobStatus") in LIVE and item.get("jobId"):
                return str(item["jobId"])
        if not listed.get("nextToken"):
            return None
        page = {"nextToken": listed["nextToken"]}


def _previous_job(event: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return job_of(event.get("OldResourceProperties"))
    except (ValidationError, ValueError):
        return None  # an earlier template's: the update goes on as a change


def put_job(macie: Any, event: dict[str, Any]) -> Outcome:
    """Create, or Update: the job this resource asks for, its id in ``JobId``."""
    updating = event.get("RequestType") == "Update"
    job = job_of(event.get("ResourceProperties"))
    current = physical_id_of(event) if updating else None
    session = macie_status(macie)
    if session != "ENABLED":
        state = "suspended" if session == "PAUSED" else "not enabled"
        if not updating or current is None:
            raise Refused(
                f"Macie is {state} in this account and region: the classification job needs it on. "
                + (
                    "Resume it (aws macie2 update-macie-session --status ENABLED)"
                    if session == "PAUSED"
                    else "Enable it (deploying the foundation stack with account_settings.macie adopt turns it on)"
                )
                + " or set blueprint.production.account_settings.macie to off, then deploy again."
            )
        logger.warning(
            f"Macie is {state}: the job is kept as it is until its settings change once Macie is on again",
            extra={"job_id": current},
        )
        return Outcome(True, {"JobId": current, "Job": f"kept: Macie {state}"})
    if updating and current is not None and _previous_job(event) == job and job_status(macie, current) in LIVE:
        return Outcome(True, {"JobId": current, "Job": "unchanged"})
    request = request_of(event, job)
    job_id = live_job_named(macie, request["name"])
    made = "adopted" if job_id else "created"
    if job_id is None:
        job_id = str(macie.create_classification_job(clientToken=client_token(event), **request)["jobId"])
    try:
        status = job_status(macie, job_id)
    except ClientError as error:
        if made == "adopted":
            raise
        # Macie made the job (its id is its answer): failing the request now would leave a scheduled
        # job scanning and billing with no resource to cancel it (a failed create has no physical id
        # for the rollback to delete). Its status is read again at the resource's next update.
        logger.warning(
            "classification job made; its status could not be read",
            extra={"job_id": job_id, "code": failure_code(error)},
        )
        return Outcome(True, {"JobId": job_id, "JobName": request["name"], "JobStatus": "unknown", "Job": made})
    if status not in LIVE:
        raise JobNotLive(
            f"Macie answered this request with job {job_id}, {status or 'not found'}: it was cancelled during the "
            "deploy. Deploy again: a new deploy asks for a new job."
        )
    return Outcome(True, {"JobId": job_id, "JobName": request["name"], "JobStatus": status, "Job": made})


def cancel_job(macie: Any, event: dict[str, Any]) -> Outcome:
    """Delete: the job cancelled, unless nothing is left to cancel."""
    job_id = physical_id_of(event)
    if job_id is None:
        return Outcome(True, {"Cancelled": "nothing: no job id"})
    session = macie_status(macie)
    if session is None:
        return Outcome(True, {"Cancelled": "nothing: Macie is not enabled (disabling it deleted its jobs)"})
    if session == "PAUSED":
        return Outcome(True, {"Cancelled": "nothing: Macie is suspended (suspending it cancelled its jobs)"})
    status = job_status(macie, job_id)
    if status is None or status in FINISHED:
        return Outcome(True, {"Cancelled": f"nothing: the job is {status or 'gone'}"})
    try:
        macie.update_classification_job(jobId=job_id, jobStatus="CANCELLED")
    except ClientError as error:
        # Gone, or Macie switched off, meanwhile; or cancelled or finished meanwhile: Macie takes
        # CANCELLED only from a job that still runs, and its refusal is looked at again.
        gone = macie_not_enabled(error) or failure_code(error) == "ResourceNotFoundException"
        if not (gone or job_status(macie, job_id) in (None, *FINISHED)):
            raise
        return Outcome(True, {"Cancelled": "nothing: the job stopped meanwhile"})
    return Outcome(True, {"Cancelled": job_id})


def handle(
    event: dict[str, Any],
    macie: Any,
    *,
    remaining_seconds: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """The Provider framework's answer to one request: the physical id (the job's) and ``Data``."""
    request = event.get("RequestType")
    if request not in ("Create", "Update", "Delete"):
        raise ValueError(f"unknown RequestType {shown(request)}: expected Create, Update or Delete")
    attempt = (lambda: cancel_job(macie, event)) if request == "Delete" else (lambda: put_job(macie, event))
    outcome = until_in_place(attempt, what=WHAT, remaining_seconds=remaining_seconds, sleep=sleep, clock=clock)
    logger.info(f"classification job: {request}", extra=outcome.data)
    job_id = physical_id_of(event) if request == "Delete" else outcome.data.get("JobId")
    # Without one (a delete CloudFormation sent none), the Provider framework keeps the event's own.
    return {"PhysicalResourceId": job_id, "Data": outcome.data} if job_id else {"Data": outcome.data}


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise ValueError(f"not a custom resource event: {shown(event)}")
    return handle(event, _client("macie2"), remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000)
