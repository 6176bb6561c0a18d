"""Asynchronous jobs when something dies or repeats half-way: a worker killed between metering an
output and recording the job succeeded, a DynamoDB write botocore retried after it had landed, a
worker start that was throttled. What each must keep: units charged once and only for an output
the caller can get, and a job that runs (or can be submitted again) rather than one left orphaned.
The world they run in: tests/lambdas/jobs_fixtures.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ai_gateway import jobs, sweeper, worker
from tests.lambdas.gateway_fixtures import PRO, converse_ok, guard_output
from tests.lambdas.jobs_fixtures import (
    GOLD,
    GROUNDING,
    JOBS_TABLE,
    NOW,
    PAST_FINISH_BY,
    CapturingFlow,
    World,
    a_request,
    expect_invoke,
    run,
    submit,
    submitted,
)


class Killed(BaseException):
    """Lambda's timeout: the invocation ends where it is, nothing after it runs."""


def killed(*_: Any, **__: Any) -> Any:
    raise Killed


def answer(world: World) -> None:
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=GROUNDING)


def read(world: World, job: str) -> dict[str, Any]:
    status, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert status == 200
    return body


class RetriedAfterLanding:
    """A DynamoDB client whose ``operation`` (those whose update names ``marker``) lands, and is
    then sent again, as botocore retries a call whose first answer was lost (a read timeout, a
    500): the caller sees the second answer only."""

    def __init__(self, client: Any, operation: str, marker: str = "") -> None:
        self._client, self._operation, self._marker = client, operation, marker

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != self._operation:
            return method

        def twice(**kwargs: Any) -> Any:
            if self._marker in kwargs.get("UpdateExpression", ""):
                method(**kwargs)
            return method(**kwargs)

        return twice


def retrying(world: World, operation: str, marker: str = "") -> jobs.JobStore:
    return jobs.JobStore(RetriedAfterLanding(world.dynamodb, operation, marker), JOBS_TABLE)


# --- a worker killed after its output was metered ---------------------------------------------------


def test_a_worker_killed_after_metering_leaves_the_output_for_get(world: World) -> None:
    """The output is kept on the job before it is metered: a worker killed once the ledger has it
    delivered (charged) has not lost it, and GET serves it once the job's finish-by time says its
    worker died, rather than saying no units were charged."""
    job = submitted(world, sent="fp")
    answer(world)
    world.store.succeed = killed  # type: ignore[method-assign]
    with pytest.raises(Killed):
        run(world, job)
    assert (world.status(), world.used(), world.item(job)["status"]) == ("delivered", 1, {"S": "running"})
    assert read(world, job)["status"] == "running"  # its worker may still be finishing
    world.times.now = PAST_FINISH_BY
    body = read(world, job)
    assert (body["status"], body["output"], body["units"]) == ("succeeded", "A summary.", 1)
    assert "reason" not in body
    again = jobs.resubmitted(GOLD, "req-00000001", "fp", now=world.times.now, jobs=world.jobs)
    assert again is not None
    assert (again[0], again[1]["status"]) == (202, "succeeded")  # as GET says
    swept = sweeper.sweep(world.ledger, now=NOW + dt.timedelta(hours=1), bound_seconds=749, page_limit=200)
    assert (swept.released, world.used()) == (0, 1)


def test_a_worker_killed_after_keeping_but_before_metering_charges_nothing(world: World) -> None:
    """Kept but not metered: GET says failed and uncharged (the ledger has it admitted), the sweeper
    gives the units back, and the kept output is never shown."""
    job = submitted(world)
    answer(world)
    world.ledger.deliver = killed  # type: ignore[method-assign]
    with pytest.raises(Killed):
        run(world, job)
    assert "result" in world.item(job)
    world.times.now = PAST_FINISH_BY
    body = read(world, job)
    assert (body["status"], body["reason"]) == ("failed", jobs.REASON_TIMEOUT)
    assert "output" not in body
    swept = sweeper.sweep(world.ledger, now=NOW + dt.timedelta(hours=1), bound_seconds=749, page_limit=200)
    assert (swept.released, world.used(), world.status()) == (1, 0, "released")
    assert read(world, job)["reason"] == jobs.REASON_TIMEOUT


def test_get_without_the_ledger_never_says_a_kept_output_was_not_charged(world: World) -> None:
    job = submitted(world)
    answer(world)
    world.store.succeed = killed  # type: ignore[method-assign]
    with pytest.raises(Killed):
        run(world, job)
    world.jobs = replace(world.jobs, ledger=None)
    world.times.now = PAST_FINISH_BY
    body = read(world, job)
    assert (body["status"], body["reason"]) == ("failed", jobs.REASON_TIMEOUT_UNSETTLED)
    assert "no units were charged" not in body["reason"]


def test_an_output_kept_but_withheld_is_dropped_from_the_failed_job(world: World) -> None:
    """The ledger refused the delivery: the units are released, and the output kept before it was
    metered goes with the job's failure (it was never the caller's)."""
    job = submitted(world)
    answer(world)

    def refused(*_: Any, **__: Any) -> None:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "UpdateItem")

    world.ledger.deliver = refused  # type: ignore[method-assign]
    assert run(world, job) == "failed"
    item = world.item(job)
    assert (item["status"], world.status(), world.used()) == ({"S": "failed"}, "released", 0)
    assert "result" not in item


def test_an_output_is_not_metered_for_a_job_no_longer_its_workers(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keeping the output is conditional on the job still running under this worker's claim: a job
    ended meanwhile releases the units, and nothing is charged."""
    job = submitted(world)
    answer(world)
    store = world.store
    keep = store.keep

    def ended_first(job_id: str, result: bytes, **kwargs: Any) -> bool:
        assert store.fail(job_id, "ended elsewhere", now=NOW)
        return keep(job_id, result, **kwargs)

    monkeypatch.setattr(store, "keep", ended_first)
    assert run(world, job) == "failed"
    assert (world.status(), world.used()) == ("released", 0)
    assert world.item(job)["reason"] == {"S": "ended elsewhere"}


# --- writes botocore retried after they landed -------------------------------------------------------


def test_a_job_write_retried_after_it_landed_starts_the_worker(world: World) -> None:
    """The retried PutItem fails its condition on the item its first attempt wrote: the item's
    attempt id tells it apart from a concurrent submit's, so the job is started, its units kept."""
    world.jobs = replace(world.jobs, store=retrying(world, "put_item"))
    job = jobs.job_id(GOLD, "req-00000001")
    expect_invoke(world, job)
    status, body = submit(world)
    assert (status, body["status"]) == (202, "queued")
    assert (world.status(), world.used(), world.item(job)["status"]) == ("admitted", 1, {"S": "queued"})


def test_a_concurrent_submits_job_still_stands_and_this_admission_is_given_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another attempt's item (a concurrent submit of the same request) is not this one's."""
    job = submitted(world)
    world.ledger.release(
        "req-00000001", group=GOLD.group, user=GOLD.user, output_type="summary", units=1, window="2026-11"
    )
    monkeypatch.setattr(world.store, "get", lambda job_id: None)  # it raced in after the checks
    status, body = submit(world)
    assert (status, body["job_id"]) == (202, job)
    assert (world.status(), world.used()) == ("released", 0)  # no second job, no second charge


def test_a_claim_retried_after_it_landed_runs_the_job(world: World) -> None:
    job = submitted(world)
    answer(world)
    rt = replace(world.runtime(), store=retrying(world, "update_item", ":running"))
    assert worker.run(job, remaining_seconds=900, runtime=rt, clock=world.times.clock()) == "succeeded"
    assert (world.item(job)["status"], world.status(), world.used()) == ({"S": "succeeded"}, "delivered", 1)
    assert read(world, job)["output"] == "A summary."


def test_a_claim_retried_after_it_landed_without_the_token_it_needs_fails_and_releases_at_once(
    world: World,
) -> None:
    """The token left the table with the claim's lost first answer: the agent cannot act as the
    caller, so the job fails now (not after its finish-by time) and its units go back."""
    job = submitted(world, a_request("report", token="tok.en.value"))
    capturing = CapturingFlow()
    rt = worker.Runtime(
        store=retrying(world, "update_item", ":running"),
        ledger=world.ledger,
        flow=lambda agents: capturing,  # type: ignore[arg-type,return-value]
    )
    assert worker.run(job, remaining_seconds=900, runtime=rt, clock=world.times.clock()) == "failed"
    assert capturing.requests == []  # nothing generated
    assert world.item(job)["reason"] == {"S": jobs.REASON_TOKEN}
    assert (world.status("req-00000001"), world.used("report")) == ("released", 0)


def test_another_invocations_claim_is_not_taken_over(world: World) -> None:
    """Lambda retries an event under the same request id: a claim is its own only by its random
    owner, so an event repeated while the job runs is still skipped."""
    job = submitted(world)
    assert world.store.claim(job, now=NOW) is not None
    assert run(world, job) == "skipped"


def test_an_ending_retried_after_it_landed_is_the_jobs_outcome_not_an_error(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submitted(world)
    answer(world)
    rt = replace(world.runtime(), store=retrying(world, "update_item", "#status = :status"))
    capsys.readouterr()
    assert worker.run(job, remaining_seconds=900, runtime=rt, clock=world.times.clock()) == "succeeded"
    assert "result not kept" not in capsys.readouterr().out
    assert read(world, job)["output"] == "A summary."


# --- a worker start that was throttled --------------------------------------------------------------


def test_a_withdrawal_retried_after_it_landed_still_releases_once(world: World) -> None:
    world.jobs = replace(world.jobs, store=retrying(world, "update_item", "#status = :status"))
    world.invoke.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
    with pytest.raises(Exception, match="TooManyRequestsException"):
        submit(world)
    job = jobs.job_id(GOLD, "req-00000001")
    assert (world.item(job)["status"], world.status(), world.used()) == ({"S": "withdrawn"}, "released", 0)
