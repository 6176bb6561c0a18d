"""Asynchronous jobs where the caller's units meet the output: an output the ledger has charged is
never dropped, whatever fails after its metering (the job's success, the telemetry, the ledger's
own read), and a job write whose every answer was lost leaves no queued job that no worker will
ever run. The world they run in: tests/lambdas/jobs_fixtures.py."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ai_gateway import jobs, sweeper
from ai_gateway.ledger import Ledger
from shared.aws_errors import UpstreamError
from tests.lambdas.gateway_fixtures import PRO, TABLE, converse_ok, guard_output
from tests.lambdas.jobs_fixtures import (
    GOLD,
    GROUNDING,
    JOBS_TABLE,
    NOW,
    PAST_FINISH_BY,
    World,
    a_request,
    expect_invoke,
    run,
    submit,
    submitted,
)
from tests.lambdas.test_ai_gateway_ledger import KeepsTokens, SentAgainAfterLanding

JOB = jobs.job_id(GOLD, "req-00000001")


def answer(world: World) -> None:
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=GROUNDING)


def throttled(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "x"}}, operation)


def read(world: World, job: str) -> dict[str, Any]:
    status, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert status == 200
    return body


def swept(world: World) -> sweeper.Sweep:
    return sweeper.sweep(world.ledger, now=NOW + dt.timedelta(hours=1), bound_seconds=749, page_limit=200)


# --- an output the ledger has delivered is never dropped ---------------------------------------------


def test_a_delivered_output_whose_job_cannot_be_marked_succeeded_is_served_once_its_worker_is_done(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's success fails on every try (throttled past botocore's retries): the output was
    charged, so the job is not failed (which would drop the output kept on it) but left running
    with it, and GET serves it once the job's finish-by time has passed."""
    job = submitted(world, sent="fp")
    answer(world)
    tries: list[str] = []

    def refused(job_id: str, result: bytes, **_: Any) -> bool:
        tries.append(job_id)
        raise throttled("UpdateItem")

    monkeypatch.setattr(world.store, "succeed", refused)
    assert run(world, job) == "running"
    assert tries == [job, job]  # once after the delivery, once more when the ledger says it was delivered
    item = world.item(job)
    assert (item["status"], "result" in item, "reason" in item) == ({"S": "running"}, True, False)
    assert (world.status(), world.used()) == ("delivered", 1)
    assert read(world, job)["status"] == "running"
    world.times.now = PAST_FINISH_BY
    body = read(world, job)
    assert (body["status"], body["output"], body["units"]) == ("succeeded", "A summary.", 1)
    again = jobs.resubmitted(GOLD, "req-00000001", "fp", now=world.times.now, jobs=world.jobs)
    assert again is not None
    assert (again[0], again[1]["status"]) == (202, "succeeded")
    assert (swept(world).released, world.used()) == (0, 1)  # charged once, never given back


def test_a_success_that_fails_once_is_written_again_once_the_ledger_says_delivered(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = submitted(world)
    answer(world)
    succeed = world.store.succeed
    failures = [throttled("UpdateItem")]

    def once(job_id: str, result: bytes, **kwargs: Any) -> bool:
        if failures:
            raise failures.pop()
        return succeed(job_id, result, **kwargs)

    monkeypatch.setattr(world.store, "succeed", once)
    assert run(world, job) == "succeeded"
    assert world.item(job)["status"] == {"S": "succeeded"}
    assert read(world, job)["output"] == "A summary."
    assert (world.status(), world.used()) == ("delivered", 1)


def test_what_raises_after_the_delivery_was_recorded_does_not_fail_the_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The telemetry of the delivery raised once the ledger had it delivered: the caller was charged,
    so the caller gets the output (not "failed; no units were charged")."""
    job = submitted(world)
    answer(world)

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("metrics backend")

    monkeypatch.setattr(world.flow._telemetry, "delivered", broken)
    assert run(world, job) == "succeeded"
    body = read(world, job)
    assert (body["status"], body["output"], "reason" in body) == ("succeeded", "A summary.", False)
    assert (world.status(), world.used()) == ("delivered", 1)


def test_a_ledger_that_cannot_be_read_after_the_output_was_kept_leaves_the_job_to_get_and_the_sweeper(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the output was charged cannot be told: the job keeps its output and stays running.
    Past its finish-by time GET asks the ledger, which has it delivered: served."""
    job = submitted(world)
    answer(world)
    record = world.ledger.record

    def unreadable(*_: Any, **__: Any) -> Any:
        raise throttled("GetItem")

    def broken(*_: Any, **__: Any) -> None:  # after the delivery: from here the ledger cannot be read
        monkeypatch.setattr(world.ledger, "record", unreadable)
        raise RuntimeError("metrics backend")

    monkeypatch.setattr(world.flow._telemetry, "delivered", broken)
    assert run(world, job) == "running"
    item = world.item(job)
    assert (item["status"], "result" in item) == ({"S": "running"}, True)
    monkeypatch.setattr(world.ledger, "record", record)
    world.times.now = PAST_FINISH_BY
    assert (read(world, job)["status"], world.status(), world.used()) == ("succeeded", "delivered", 1)


# --- a job write whose every answer was lost ------------------------------------------------------------


class LandsThenFails:
    """A DynamoDB client whose PutItem lands, and whose every answer is then lost (botocore's
    attempts exhausted): the caller sees an error though the item was written. ``lands``: False,
    the write never reaches the table."""

    def __init__(self, client: Any, *, lands: bool = True) -> None:
        self._client, self._lands = client, lands

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)
        if name != "put_item":
            return method

        def lost(**kwargs: Any) -> Any:
            if self._lands:
                method(**kwargs)
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "PutItem")

        return lost


def losing(world: World, *, lands: bool = True) -> None:
    world.jobs = replace(world.jobs, store=jobs.JobStore(LandsThenFails(world.dynamodb, lands=lands), JOBS_TABLE))


def test_a_job_written_though_its_answers_were_lost_is_withdrawn_and_its_retry_admitted_anew(world: World) -> None:
    """No worker was started for it: left queued, a retry under its Idempotency-Key would be told
    202 queued for a job that never runs. It is withdrawn, its units given back, and the retry runs."""
    losing(world)
    with pytest.raises(UpstreamError) as raised:
        submit(world, sent="fp")  # no invoke is stubbed: the Stubber would fail if the worker were started
    assert (raised.value.service, raised.value.code) == ("dynamodb", "InternalServerError")
    assert (world.item(JOB)["status"], world.status(), world.used()) == ({"S": "withdrawn"}, "released", 0)
    assert jobs.resubmitted(GOLD, "req-00000001", "fp", now=NOW, jobs=world.jobs) is None  # absent
    world.jobs = replace(world.jobs, store=world.store)
    expect_invoke(world, JOB)
    status, body = submit(world, sent="fp")
    assert (status, body["status"]) == (202, "queued")
    assert (world.item(JOB)["status"], world.status(), world.used()) == ({"S": "queued"}, "admitted", 1)


def test_a_job_write_that_never_landed_leaves_nothing_behind(world: World) -> None:
    losing(world, lands=False)
    with pytest.raises(UpstreamError):
        submit(world, sent="fp")
    assert "Item" not in world.dynamodb.get_item(TableName=JOBS_TABLE, Key={"job_id": {"S": JOB}})
    assert (world.status(), world.used()) == ("released", 0)


def test_a_lost_job_write_withdraws_no_other_submits_job(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another submit's job under the same id (one that raced in after this one's checks, its own
    admission given back meanwhile) is that submit's: only this write's own item is withdrawn."""
    job = submitted(world)
    world.ledger.release(
        "req-00000001", group=GOLD.group, user=GOLD.user, output_type="summary", units=1, window="2026-11"
    )
    losing(world, lands=False)
    monkeypatch.setattr(world.jobs.store, "get", lambda job_id: None)  # it raced in after the checks
    with pytest.raises(UpstreamError):
        submit(world, a_request())
    assert world.item(job)["status"] == {"S": "queued"}  # still the other submit's, for its worker
    assert (world.status(), world.used()) == ("released", 0)


# --- an admission botocore sent again after it landed -----------------------------------------------


def test_a_submit_whose_admission_was_sent_again_after_it_landed_is_queued_not_refused(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read as a replay, the submit would be a 409 "nothing was counted again" with its unit held
    until the sweeper's bound; with its token answered by DynamoDB as the success it was, it runs."""
    ledger = Ledger(SentAgainAfterLanding(KeepsTokens(world.dynamodb)), TABLE)
    world.ledger = ledger
    monkeypatch.setattr(world.flow, "_ledger", ledger)
    expect_invoke(world, JOB)
    status, body = submit(world, sent="fp")
    assert (status, body["status"]) == (202, "queued")
    assert (world.status(), world.used(), world.item(JOB)["status"]) == ("admitted", 1, {"S": "queued"})
