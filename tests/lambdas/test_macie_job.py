"""The Macie classification job's deploy-time function (lambdas/account_settings/classification_job.py),
against botocore's Stubber: every request is checked against Macie's service model, and any call a
test did not queue fails it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from account_settings import classification_job as jobs, handler
from account_settings.settings import Refused
from tests.aws_stubs import Stubbed
from tests.lambdas.conftest import FakeContext
from tests.lambdas.test_account_settings import Clock, calls_made

STACK = "arn:aws:cloudformation:us-east-1:123456789012:stack/genai-production-knowledge/5f0c2b10-aaaa-bbbb-cccc-0123456789ab"
RESOURCE = "MacieJobsClassificationJob1A2B3C4D"
JOB_A = {
    "name": "genai-production-documents",
    "description": "Sensitive data in the ingestion pipeline's buckets and the access-log archive",
    "jobType": "SCHEDULED",
    "scheduleFrequency": {"dailySchedule": {}},
    "initialRun": True,
    "samplingPercentage": 100,
    "managedDataIdentifierSelector": "RECOMMENDED",
    "s3JobDefinition": {
        "bucketDefinitions": [{"accountId": "123456789012", "buckets": ["landing-1", "curated-1", "logs-1"]}]
    },
    "customDataIdentifierIds": ["cdi-1"],
    "allowListIds": ["al-1"],
}
JOB_B = {**JOB_A, "scheduleFrequency": {"weeklySchedule": {"dayOfWeek": "MONDAY"}}}
J1, J2, J3 = "a" * 32, "b" * 32, "c" * 32
NOT_ENABLED = ("AccessDeniedException", "Macie is not enabled.", 403)


@pytest.fixture
def aws() -> Iterator[Stubbed]:
    stubbed = Stubbed()
    yield stubbed
    stubbed.done()


def event(
    request: str, job: dict[str, Any], *, request_id: str = "req-1", old: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A custom resource event of the job's resource, its properties as CloudFormation sends them
    (the job as one JSON string)."""
    raised = {
        "RequestType": request,
        "RequestId": request_id,
        "StackId": STACK,
        "LogicalResourceId": RESOURCE,
        "ResourceType": "Custom::MacieClassificationJob",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "Job": json.dumps(job)},
        **extra,
    }
    if old is not None:
        raised["OldResourceProperties"] = {"ServiceToken": "arn:aws:lambda:...", "Job": json.dumps(old)}
    return raised


def token(request_id: str) -> str:
    return hashlib.sha256(f"{STACK}/{RESOURCE}/{request_id}".encode()).hexdigest()


def named(job: dict[str, Any]) -> str:
    return str(jobs.request_of(event("Create", job), job)["name"])


def session(macie: Any, status: str | None) -> None:
    if status is None:
        macie.add_client_error("get_macie_session", *NOT_ENABLED)
    else:
        macie.add_response("get_macie_session", {"status": status}, {})


def listed(macie: Any, job: dict[str, Any], items: list[tuple[str, str]]) -> None:
    """Macie's jobs named as this resource names ``job``: (id, status) each."""
    name = named(job)
    macie.add_response(
        "list_classification_jobs",
        {"items": [{"jobId": i, "name": name, "jobStatus": s} for i, s in items]},
        {"filterCriteria": {"includes": [{"key": "name", "comparator": "EQ", "values": [name]}]}},
    )


def created(macie: Any, job: dict[str, Any], request_id: str, job_id: str) -> None:
    request = {**job, "name": named(job), "clientToken": token(request_id)}
    macie.add_response("create_classification_job", {"jobId": job_id, "jobArn": f"arn:{job_id}"}, request)


def described(macie: Any, job_id: str, status: str) -> None:
    macie.add_response("describe_classification_job", {"jobId": job_id, "jobStatus": status}, {"jobId": job_id})


def run(ev: dict[str, Any], aws: Stubbed) -> dict[str, Any]:
    return jobs.handle(ev, aws("macie2"), remaining_seconds=lambda: 300, sleep=lambda _: None)


# --- the token: one per CloudFormation request -----------------------------------------------------


def test_the_token_is_new_for_each_cloudformation_request_and_the_same_for_a_retry_of_one() -> None:
    """Macie answers a token it has seen with the job it made then: a settings change back (A, B,
    A), or a retried deploy after a rollback, must not be answered with a job CloudFormation has
    cancelled since. Each request (RequestId) asks anew; the Provider framework's retries of one
    request resend its RequestId, and make no second job."""
    first, second = event("Create", JOB_A, request_id="req-1"), event("Update", JOB_A, request_id="req-2")
    assert jobs.client_token(first) != jobs.client_token(second)
    assert jobs.client_token(first) == jobs.client_token(event("Create", JOB_A, request_id="req-1"))
    assert len(jobs.client_token(first)) == 64


def test_a_create_makes_the_job_with_the_requests_token_and_answers_its_id(aws: Stubbed) -> None:
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    listed(macie, JOB_A, [])
    created(macie, JOB_A, "req-1", J1)
    described(macie, J1, "RUNNING")
    answer = run(event("Create", JOB_A), aws)
    assert answer["PhysicalResourceId"] == J1
    assert answer["Data"] == {"JobId": J1, "JobName": named(JOB_A), "JobStatus": "RUNNING", "Job": "created"}
    assert len(json.dumps(answer)) < 4096


def test_a_job_macie_answers_cancelled_is_not_adopted(aws: Stubbed) -> None:
    """Macie answered this request's token with a cancelled job (cancelled during the deploy): the
    request fails by name; the stack never reports a job that does not run."""
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    listed(macie, JOB_A, [(J3, "CANCELLED")])  # an earlier job of these settings, cancelled: passed over
    created(macie, JOB_A, "req-1", J1)
    described(macie, J1, "CANCELLED")
    with pytest.raises(jobs.JobNotLive, match=f"{J1}, CANCELLED.*cancelled during the deploy"):
        run(event("Create", JOB_A), aws)


def test_a_job_made_whose_status_cannot_be_read_is_answered_not_left_without_an_owner(aws: Stubbed) -> None:
    """Macie made the job (it answered its id), then its status could not be read: failing the
    create would leave a scheduled job scanning with no resource to cancel it."""
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    listed(macie, JOB_A, [])
    created(macie, JOB_A, "req-1", J1)
    macie.add_client_error("describe_classification_job", "InternalServerException", "try again", 500)
    answer = run(event("Create", JOB_A), aws)
    assert answer["PhysicalResourceId"] == J1
    assert answer["Data"]["JobStatus"] == "unknown"


def test_an_adopted_job_whose_status_cannot_be_read_fails_the_request(aws: Stubbed) -> None:
    """A job found by name was not made by this request: nothing is left without an owner, so the
    failure is the request's."""
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    listed(macie, JOB_A, [(J1, "RUNNING")])
    macie.add_client_error("describe_classification_job", "InternalServerException", "try again", 500)
    with pytest.raises(ClientError, match="InternalServerException"):
        run(event("Create", JOB_A), aws)


def test_a_settings_change_and_back_makes_a_new_job_each_time(aws: Stubbed) -> None:
    """A to B (J2; CloudFormation's cleanup cancels J1), then back to A: J1 is cancelled, so a new
    job (J3), asked for with the new request's token."""
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    listed(macie, JOB_B, [])
    created(macie, JOB_B, "req-2", J2)
    described(macie, J2, "IDLE")
    assert (
        run(event("Update", JOB_B, request_id="req-2", old=JOB_A, PhysicalResourceId=J1), aws)["PhysicalResourceId"]
        == J2
    )
    session(macie, "ENABLED")
    listed(macie, JOB_A, [(J1, "CANCELLED")])
    created(macie, JOB_A, "req-3", J3)
    described(macie, J3, "RUNNING")
    assert (
        run(event("Update", JOB_A, request_id="req-3", old=JOB_B, PhysicalResourceId=J2), aws)["PhysicalResourceId"]
        == J3
    )


def test_a_rolled_back_update_returns_to_the_job_it_had(aws: Stubbed) -> None:
    """The update A to B made J2 and failed elsewhere; the rollback's update back to A finds J1,
    still running, by its name: no third job, and the cleanup's delete cancels J2. A new job there
    would leave J1 running with nothing to cancel it."""
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    listed(macie, JOB_A, [(J1, "IDLE")])
    described(macie, J1, "IDLE")
    answer = run(event("Update", JOB_A, request_id="req-rollback", old=JOB_B, PhysicalResourceId=J2), aws)
    assert (answer["PhysicalResourceId"], answer["Data"]["Job"]) == (J1, "adopted")


def test_the_job_it_returns_to_is_found_on_any_page_and_without_macies_name_filter(aws: Stubbed) -> None:
    """Macie pages its answer; and should it refuse the name filter, every job is listed and matched
    by name here."""
    macie = aws.stub("macie2")
    name = named(JOB_A)
    by_name = {"filterCriteria": {"includes": [{"key": "name", "comparator": "EQ", "values": [name]}]}}
    macie.add_client_error(
        "list_classification_jobs", "ValidationException", "bad filter", 400, expected_params=by_name
    )
    macie.add_response(
        "list_classification_jobs",
        {"items": [{"jobId": J3, "name": "someone-elses", "jobStatus": "IDLE"}], "nextToken": "t"},
        {},
    )
    macie.add_response(
        "list_classification_jobs", {"items": [{"jobId": J1, "name": name, "jobStatus": "RUNNING"}]}, {"nextToken": "t"}
    )
    assert jobs.live_job_named(aws("macie2"), name) == J1


def test_the_name_is_this_resources_and_the_jobs_so_no_other_resource_finds_it() -> None:
    """Another stack (a destroyed and redeployed one: a new stack id), another logical id, or other
    settings name their job differently: only this resource's own job is ever taken."""
    base = named(JOB_A)
    assert base.startswith("genai-production-documents-")
    assert len(base) == len("genai-production-documents-") + jobs.FINGERPRINT_CHARS
    other_stack = jobs.request_of({**event("Create", JOB_A), "StackId": f"{STACK}x"}, JOB_A)["name"]
    other_resource = jobs.request_of({**event("Create", JOB_A), "LogicalResourceId": "Other"}, JOB_A)["name"]
    assert len({base, other_stack, other_resource, named(JOB_B)}) == 4


def test_an_update_that_leaves_the_job_as_it_was_keeps_it(aws: Stubbed) -> None:
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    described(macie, J1, "IDLE")
    same = {**JOB_A}  # the same job in other JSON (key order): not a change
    answer = run(event("Update", dict(reversed(list(same.items()))), old=JOB_A, PhysicalResourceId=J1), aws)
    assert (answer["PhysicalResourceId"], answer["Data"]) == (J1, {"JobId": J1, "Job": "unchanged"})


def test_an_unchanged_job_someone_cancelled_is_made_again_at_the_next_update(aws: Stubbed) -> None:
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    described(macie, J1, "CANCELLED")
    listed(macie, JOB_A, [(J1, "CANCELLED")])
    created(macie, JOB_A, "req-1", J2)
    described(macie, J2, "RUNNING")
    assert run(event("Update", JOB_A, old=JOB_A, PhysicalResourceId=J1), aws)["PhysicalResourceId"] == J2


@pytest.mark.parametrize("status", ["PAUSED", None])
def test_a_create_while_macie_is_suspended_or_off_fails_with_the_fix(aws: Stubbed, status: str | None) -> None:
    made = calls_made(aws, "macie2")
    session(aws.stub("macie2"), status)
    with pytest.raises(Refused, match=r"Macie is (suspended|not enabled).*account_settings\.macie to off"):
        run(event("Create", JOB_A), aws)
    assert made == ["macie2:GetMacieSession"]


@pytest.mark.parametrize("status", ["PAUSED", None])
def test_an_update_while_macie_is_suspended_or_off_keeps_the_job_and_says_so(aws: Stubbed, status: str | None) -> None:
    """A rollback's update too: failing it would leave the stack UPDATE_ROLLBACK_FAILED. No job can
    be made meanwhile (suspending Macie cancelled its jobs; disabling it deleted them)."""
    made = calls_made(aws, "macie2")
    session(aws.stub("macie2"), status)
    answer = run(event("Update", JOB_B, old=JOB_A, PhysicalResourceId=J1), aws)
    assert answer["PhysicalResourceId"] == J1
    assert answer["Data"]["Job"].startswith("kept: Macie")
    assert made == ["macie2:GetMacieSession"]


# --- delete: cancel, unless nothing is left to cancel ------------------------------------------------


def test_delete_cancels_a_job_that_runs(aws: Stubbed) -> None:
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    described(macie, J1, "IDLE")
    macie.add_response("update_classification_job", {}, {"jobId": J1, "jobStatus": "CANCELLED"})
    answer = run(event("Delete", JOB_A, PhysicalResourceId=J1), aws)
    assert answer == {"PhysicalResourceId": J1, "Data": {"Cancelled": J1}}


def test_delete_with_macie_disabled_succeeds_without_cancelling(aws: Stubbed) -> None:
    """docs/operations.md tells operators how to disable Macie, which deletes every job: a destroy
    afterwards must not fail (DELETE_FAILED) on the job it can no longer cancel."""
    made = calls_made(aws, "macie2")
    session(aws.stub("macie2"), None)
    answer = run(event("Delete", JOB_A, PhysicalResourceId=J1), aws)
    assert answer["PhysicalResourceId"] == J1
    assert "not enabled" in answer["Data"]["Cancelled"]
    assert made == ["macie2:GetMacieSession"]


def test_delete_with_macie_suspended_succeeds_without_cancelling(aws: Stubbed) -> None:
    made = calls_made(aws, "macie2")
    session(aws.stub("macie2"), "PAUSED")
    assert "suspended" in run(event("Delete", JOB_A, PhysicalResourceId=J1), aws)["Data"]["Cancelled"]
    assert made == ["macie2:GetMacieSession"]


@pytest.mark.parametrize(
    "describe",
    [
        ("CANCELLED", None),
        ("COMPLETE", None),
        (None, ("ResourceNotFoundException", "no such job", 404)),
        (None, ("ValidationException", "not a job id", 400)),  # a physical id that was never a job's
    ],
)
def test_delete_of_a_job_already_stopped_or_gone_cancels_nothing(
    aws: Stubbed, describe: tuple[str | None, tuple[str, str, int] | None]
) -> None:
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    status, error = describe
    if error is None:
        described(macie, J1, str(status))
    else:
        macie.add_client_error("describe_classification_job", *error, expected_params={"jobId": J1})
    assert run(event("Delete", JOB_A, PhysicalResourceId=J1), aws)["Data"]["Cancelled"].startswith("nothing")


@pytest.mark.parametrize(
    "error",
    [("ValidationException", "The job can't be cancelled", 400), ("ConflictException", "job status changed", 409)],
)
def test_delete_of_a_job_that_stops_meanwhile_succeeds(aws: Stubbed, error: tuple[str, str, int]) -> None:
    """Macie takes CANCELLED only from a job that still runs: one cancelled between the look and
    the cancel is refused, and is what the delete wanted."""
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    described(macie, J1, "RUNNING")
    macie.add_client_error("update_classification_job", *error)
    described(macie, J1, "CANCELLED")
    assert run(event("Delete", JOB_A, PhysicalResourceId=J1), aws)["PhysicalResourceId"] == J1


def test_a_cancel_refused_for_a_job_that_still_runs_fails_the_delete(aws: Stubbed) -> None:
    macie = aws.stub("macie2")
    session(macie, "ENABLED")
    described(macie, J1, "RUNNING")
    macie.add_client_error("update_classification_job", "ValidationException", "something else", 400)
    described(macie, J1, "RUNNING")
    with pytest.raises(ClientError, match="something else"):
        run(event("Delete", JOB_A, PhysicalResourceId=J1), aws)


# --- IAM propagation -----------------------------------------------------------------------------


def test_a_first_create_denied_while_iam_propagates_then_allowed_completes(aws: Stubbed) -> None:
    """The function's policy is created just before the job's resource: its first calls may be
    denied a while (CDK's AwsCustomResource failed the deploy there). Asked again, the create
    completes; a denial is not taken for Macie being off."""
    macie = aws.stub("macie2")
    denied = ("AccessDeniedException", "User is not authorized to perform: macie2:GetMacieSession", 403)
    macie.add_client_error("get_macie_session", *denied)
    macie.add_client_error("get_macie_session", *denied)
    session(macie, "ENABLED")
    listed(macie, JOB_A, [])
    created(macie, JOB_A, "req-1", J1)
    described(macie, J1, "RUNNING")
    clock = Clock()
    answer = jobs.handle(
        event("Create", JOB_A), aws("macie2"), remaining_seconds=lambda: 300, sleep=clock.sleep, clock=lambda: clock.now
    )
    assert answer["PhysicalResourceId"] == J1
    assert clock.naps == [handler.POLL_SECONDS] * 2


def test_a_denial_that_outlasts_iam_propagation_fails(aws: Stubbed) -> None:
    macie = aws.stub("macie2")
    looks = int(handler.ACCESS_DENIED_GRACE_SECONDS / handler.POLL_SECONDS) + 1
    for _ in range(looks):
        macie.add_client_error("get_macie_session", "AccessDeniedException", "not authorized", 403)
    clock = Clock()
    with pytest.raises(ClientError, match="AccessDenied"):
        jobs.handle(
            event("Create", JOB_A),
            aws("macie2"),
            remaining_seconds=lambda: 300,
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert clock.now == handler.ACCESS_DENIED_GRACE_SECONDS


# --- the entry point ------------------------------------------------------------------------------


def test_the_entry_point_answers_the_provider_framework(aws: Stubbed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_client", aws)
    session(aws.stub("macie2"), None)
    answer = jobs.lambda_handler(event("Delete", JOB_A, PhysicalResourceId=J1), FakeContext())
    assert answer["PhysicalResourceId"] == J1


def test_an_unknown_request_type_is_refused_by_name(aws: Stubbed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "_client", aws)  # no response queued: any call fails the test
    with pytest.raises(ValueError, match="unknown RequestType 'Bogus'"):
        jobs.lambda_handler(event("Bogus", JOB_A), FakeContext())


@pytest.mark.parametrize(
    "properties",
    [{}, {"Job": "not json"}, {"Job": json.dumps({**JOB_A, "name": ""})}],
)
def test_properties_that_are_no_job_are_refused_before_any_call(aws: Stubbed, properties: dict[str, str]) -> None:
    made = calls_made(aws, "macie2")
    with pytest.raises(ValueError, match=r"Job|name"):
        run({**event("Create", JOB_A), "ResourceProperties": properties}, aws)
    assert made == []
