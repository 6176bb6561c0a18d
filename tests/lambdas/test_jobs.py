"""Asynchronous outputs: submission (admission at once, the worker started with the job id alone),
the worker (claim, complete, succeed or fail and release), reading a job back (its caller only).
The world they run in: tests/lambdas/jobs_fixtures.py."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from typing import Any, cast

import pytest
from botocore.stub import ANY

from ai_gateway import handler, jobs, worker
from ai_gateway.agents import AgentClient
from ai_gateway.contract import GENERATION_MARGIN_SECONDS
from ai_gateway.flow import (
    DuplicateRequestError,
    QuotaRefusedError,
    TokenRequiredError,
)
from ai_gateway.guardrail import Guard
from ai_gateway.jobs_contract import JOB_RETENTION_SECONDS, JobStatus
from ai_gateway.ledger import Ledger
from ai_gateway.models import Caller
from shared.aws_errors import Kind, UpstreamError
from tests.lambdas.conftest import FakeContext, HttpResult, http_result
from tests.lambdas.gateway_fixtures import (
    BLOCKED_TOPIC,
    POLICY,
    PRO,
    TABLE,
    converse_ok,
    environment,
    guard_input,
    guard_output,
    rest_event,
)
from tests.lambdas.jobs_fixtures import (
    GOLD,
    JOBS_TABLE,
    MASKED,
    NOW,
    SETTINGS,
    WORKER,
    CapturingFlow,
    World,
    a_request,
    expect_invoke,
    run,
    submit,
    submitted,
)

# --- Prefer ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefer", "wanted"),
    [
        ("respond-async", True),
        ("Respond-Async", True),
        ("handling=lenient, respond-async", True),
        ("respond-async; foo=bar, wait=10", True),
        (" respond-async ", True),
        ("respond-asyncx", False),
        ("wait=10", False),
        ("x=respond-async", False),
        ("", False),
        ("respond-async, " + "x" * 2000, False),  # longer than any real preference list: not read
        # respond-async takes no value: an empty one is none, any other is not the preference
        ("respond-async=", True),
        ('respond-async=""', True),
        ("respond-async =  ; foo=bar", True),
        ("respond-async=false", False),
        ("respond-async=0", False),
        ('respond-async="no"', False),
        ("respond-async=false, wait=10", False),
    ],
)
def test_the_prefer_header_asks_for_a_job(prefer: str, wanted: bool) -> None:
    assert jobs.respond_async([prefer]) is wanted


def test_without_a_prefer_header_the_answer_is_synchronous() -> None:
    assert jobs.respond_async([]) is False


def test_job_ids_are_per_caller_and_request() -> None:
    assert jobs.job_id(GOLD, "k-1") == jobs.job_id(GOLD, "k-1")
    assert jobs.JOB_ID.fullmatch(jobs.job_id(GOLD, "k-1"))
    assert jobs.job_id(GOLD, "k-1") != jobs.job_id(Caller(user="user-2", group=GOLD.group), "k-1")
    assert jobs.job_id(GOLD, "k-1") != jobs.job_id(Caller(user=GOLD.user, group="customer-basic"), "k-1")
    assert jobs.job_id(GOLD, "k-1") != jobs.job_id(GOLD, "k-2")


# --- submission -----------------------------------------------------------------------------------


def test_a_submission_admits_writes_the_job_starts_the_worker_and_answers_202(world: World) -> None:
    request = a_request()
    job = jobs.job_id(GOLD, request.request_id)
    expect_invoke(world, job)
    status, body = submit(world, request)
    assert (status, body) == (202, {"job_id": job, "status": "queued", "status_url": f"/v1/jobs/{job}"})
    assert world.used() == 1  # admitted at submission
    assert world.status() == "admitted"
    item = world.item(job)
    assert item["status"] == {"S": "queued"}
    assert (item["group"]["S"], item["user"]["S"], item["request_id"]["S"]) == (GOLD.group, GOLD.user, "req-00000001")
    assert item["expires_at"] == {"N": str(int(NOW.timestamp()) + JOB_RETENTION_SECONDS)}
    assert item["start_by"] == {"S": (NOW + dt.timedelta(seconds=SETTINGS.max_event_age_seconds)).isoformat()}
    assert item["finish_by"] == {"S": (NOW + dt.timedelta(seconds=SETTINGS.max_event_age_seconds + 600)).isoformat()}
    assert item["limit_seconds"] == {"N": "300"}  # the output type's own limit
    assert "token" not in item  # a model's output type needs none
    stored = world.store.get(job)
    assert stored is not None
    rebuilt = stored.request(deadline=request.deadline)
    assert rebuilt == request  # the screened messages, grounding, models, output and quota, as submitted
    assert MASKED.encode() not in item["payload"]["B"]  # held compressed


def test_a_job_a_later_release_submitted_is_rebuilt_without_the_fields_this_one_does_not_know(
    world: World,
) -> None:
    """The gateway and the worker are updated apart: a job whose output policy and quota carry
    fields only the submitting release knows still runs on a worker of this one."""
    request = a_request()
    job = submitted(world, request)
    stored = world.store.get(job)
    assert stored is not None
    assert stored.payload is not None
    payload = dict(stored.payload)
    payload["output"] = {**payload["output"], "later_release": {"x": 1}}
    payload["quota"] = {**payload["quota"], "later_release": 2}
    assert replace(stored, payload=payload).request(deadline=request.deadline) == request


def test_an_output_type_without_its_own_limit_gets_the_workers_timeout(world: World) -> None:
    job = submitted(world, a_request("chat"))
    assert world.item(job)["limit_seconds"] == {"N": "600"}


def test_a_limit_above_the_workers_timeout_is_cut_to_it(world: World) -> None:
    world.jobs = replace(world.jobs, settings=SETTINGS.model_copy(update={"async_timeouts_seconds": {"summary": 900}}))
    job = submitted(world)
    assert world.item(job)["limit_seconds"] == {"N": "600"}


def test_a_resubmit_returns_the_same_job_and_admits_nothing(world: World) -> None:
    job = submitted(world)
    assert submit(world) == (202, {"job_id": job, "status": "queued", "status_url": f"/v1/jobs/{job}"})
    assert world.used() == 1


def test_a_resubmit_of_another_request_under_the_same_request_id_is_a_422_and_admits_nothing(world: World) -> None:
    first = jobs.fingerprint("summary", "Quarterly numbers.", None, None)
    job = submitted(world, sent=first)
    other = jobs.fingerprint("report", "Other material.", None, None)
    status, body = submit(world, sent=other)
    assert (status, body["error"]) == (422, "idempotency_key_reused")
    assert body["message"] == (
        "request id req-00000001 was used for another request: send this one with a new Idempotency-Key"
    )
    assert submit(world, sent=first) == (202, {"job_id": job, "status": "queued", "status_url": f"/v1/jobs/{job}"})
    # Checked before the input is screened: the route asks first.
    assert jobs.resubmitted(GOLD, "req-00000001", other, jobs=world.jobs, now=NOW) == (status, body)
    assert jobs.resubmitted(GOLD, "req-00000001", first, jobs=world.jobs, now=NOW) == (202, body_of(job))
    assert jobs.resubmitted(GOLD, "req-00000002", first, jobs=world.jobs, now=NOW) is None
    assert world.used() == 1


def test_a_resubmit_after_the_job_expired_never_points_at_a_job_get_cannot_find(world: World) -> None:
    """Past its retention the item may linger (TTL deletes it days later): GET says 404, so a
    re-submit must not answer 202 with its status_url. The request id is spent (the ledger has it
    delivered or admitted): a 409, and nothing admitted."""
    first = jobs.fingerprint("summary", "Quarterly numbers.", None, None)
    job = submitted(world, sent=first)
    world.times.now = NOW + dt.timedelta(seconds=SETTINGS.job_retention_seconds + 1)
    assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[0] == 404
    assert jobs.resubmitted(GOLD, "req-00000001", first, jobs=world.jobs, now=world.times.now) is None
    with pytest.raises(DuplicateRequestError):
        submit(world, sent=first)
    assert world.used() == 1


def test_an_expired_job_is_written_over_by_a_new_submit_of_its_request_id(world: World) -> None:
    """Once the ledger lets the request id be admitted again (its request was released), the new
    job replaces the expired item TTL has not deleted yet."""
    job = submitted(world)
    world.store.fail(job, "why", now=NOW)
    world.ledger.release(
        "req-00000001", group=GOLD.group, user=GOLD.user, output_type="summary", units=1, window="2026-11"
    )
    world.times.now = NOW + dt.timedelta(seconds=SETTINGS.job_retention_seconds + 1)
    expect_invoke(world, job)
    assert submit(world) == (202, {"job_id": job, "status": "queued", "status_url": f"/v1/jobs/{job}"})
    assert world.item(job)["status"] == {"S": "queued"}
    assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[1]["status"] == "queued"


def test_a_resubmit_of_a_job_whose_worker_died_says_failed_as_get_does(world: World) -> None:
    job = submitted(world)
    world.times.now = NOW + dt.timedelta(days=1)  # past finish_by, the item still queued
    assert world.item(job)["status"] == {"S": "queued"}
    shown = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[1]["status"]
    assert shown == "failed"
    assert submit(world) == (202, {"job_id": job, "status": shown, "status_url": f"/v1/jobs/{job}"})
    assert world.used() == 1


def body_of(job: str) -> dict[str, Any]:
    return {"job_id": job, "status": "queued", "status_url": f"/v1/jobs/{job}"}


def test_a_resubmit_of_a_failed_job_returns_it_failed_and_admits_nothing(world: World) -> None:
    job = submitted(world)
    world.store.fail(job, "why", now=NOW)
    world.ledger.release(
        "req-00000001", group=GOLD.group, user=GOLD.user, output_type="summary", units=1, window="2026-11"
    )
    assert submit(world) == (202, {"job_id": job, "status": "failed", "status_url": f"/v1/jobs/{job}"})
    assert world.used() == 0


def test_an_exhausted_quota_is_refused_before_any_job(world: World) -> None:
    request = a_request(quota=POLICY.groups["customer-gold"].quotas["summary"].model_copy(update={"limit": 0}))
    with pytest.raises(QuotaRefusedError):
        submit(world, request)
    assert world.store.get(jobs.job_id(GOLD, request.request_id)) is None


def test_a_request_id_a_synchronous_request_used_is_a_duplicate(world: World) -> None:
    world.flow.admit(a_request())  # as the synchronous route would have
    with pytest.raises(DuplicateRequestError):
        submit(world)
    assert world.used() == 1


def test_an_agents_output_type_needs_the_callers_token_before_anything_is_admitted(world: World) -> None:
    with pytest.raises(TokenRequiredError):
        submit(world, a_request("report"))
    assert world.used("report") == 0


def test_an_agents_job_holds_the_token_and_only_its_agents_runtime(world: World) -> None:
    job = submitted(world, a_request("report", token="tok.en.value"))
    item = world.item(job)
    assert item["token"] == {"S": "tok.en.value"}
    stored = world.store.get(job)
    assert stored is not None
    assert stored.agents == {"report_writer": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rw"}


def test_a_request_too_large_for_a_job_is_a_413_and_admits_nothing(world: World) -> None:
    world.jobs = replace(world.jobs, settings=SETTINGS.model_copy(update={"max_job_bytes": 1024}))
    noise = "".join(chr(0x4E00 + (n * 7919) % 20000) for n in range(4000))  # compresses poorly
    status, body = submit(world, a_request(messages=[{"role": "user", "content": [{"text": noise}]}]))
    assert status == 413
    assert body["error"] == "too_large"
    assert "1024" in body["message"]
    assert world.used() == 0


def test_a_worker_that_cannot_be_started_releases_the_units_and_a_retry_is_admitted_anew(world: World) -> None:
    """A throttled start is the caller's 429 with Retry-After: the job is withdrawn (it reads as
    absent, its request and token dropped), so the retry under the same Idempotency-Key runs."""
    job = jobs.job_id(GOLD, "req-00000001")
    world.invoke.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
    with pytest.raises(UpstreamError) as failed:
        submit(world, sent="fp")
    assert failed.value.throttled
    assert (world.used(), world.status()) == (0, "released")
    item = world.item(job)
    assert item["status"] == {"S": "withdrawn"}
    assert item["reason"] == {"S": jobs.REASON_UPSTREAM.format(service="lambda")}
    assert "payload" not in item
    world.times.now = NOW + dt.timedelta(seconds=1)
    assert jobs.resubmitted(GOLD, "req-00000001", "fp", now=world.times.now, jobs=world.jobs) is None
    assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[0] == 404
    assert run(world, job) == "skipped"  # the first start's event, should it arrive after all
    expect_invoke(world, job)
    status, body = submit(world, sent="fp")
    assert (status, body["status"]) == (202, "queued")
    assert (world.used(), world.status(), world.item(job)["status"]) == (1, "admitted", {"S": "queued"})


class StartedThenLost:
    """The worker's asynchronous invoke went out and the worker ran the job, but the invoke's
    answer was lost (a read timeout on both attempts)."""

    def __init__(self, world: World) -> None:
        self.world = world

    def start(self, job: str) -> None:
        assert run(self.world, job) == "succeeded"
        raise UpstreamError("lambda", "ReadTimeoutError", 503, Kind.UNAVAILABLE)


def test_a_job_the_worker_took_stands_when_its_start_answered_with_an_error(world: World) -> None:
    """The job is withdrawn only while queued: one the worker claimed is its own, so its output is
    kept and charged once, and the submit is answered as accepted (it was)."""
    job = jobs.job_id(GOLD, "req-00000001")
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=("Mail {EMAIL} about it.", "Produce the summary."))
    world.jobs = replace(world.jobs, worker=cast(Any, StartedThenLost(world)))
    status, body = submit(world)
    assert (status, body["job_id"]) == (202, job)
    assert (world.status(), world.used()) == ("delivered", 1)
    assert world.item(job)["status"] == {"S": "succeeded"}
    answered, result = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert (answered, result["status"], result["output"]) == (200, "succeeded", "A summary.")


class ClaimedThenLost:
    """The worker's invoke went out and the worker has claimed the job, still running it, when the
    invoke's answer is lost."""

    def __init__(self, world: World) -> None:
        self.world = world

    def start(self, job: str) -> None:
        assert self.world.store.claim(job, now=NOW) is not None
        raise UpstreamError("lambda", "ReadTimeoutError", 503, Kind.UNAVAILABLE)


def test_a_running_job_is_not_withdrawn_when_its_start_answered_with_an_error(world: World) -> None:
    """Only a queued job is withdrawn: one the worker is running keeps running, its units admitted."""
    job = jobs.job_id(GOLD, "req-00000001")
    world.jobs = replace(world.jobs, worker=cast(Any, ClaimedThenLost(world)))
    status, _ = submit(world)
    assert status == 202
    assert (world.item(job)["status"], world.status(), world.used()) == ({"S": "running"}, "admitted", 1)


def test_a_delivered_job_that_had_ended_meanwhile_is_logged_not_silent(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """No one but its worker ends a running job; should one end anyway, the output delivered (and
    charged) is not kept on it, and that is an error in the log."""
    job = submitted(world)
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=("Mail {EMAIL} about it.", "Produce the summary."))
    store = world.store

    class EndedMeanwhile:
        def succeed(self, job: str, result: bytes, *, now: dt.datetime) -> bool:
            assert store.fail(job, "ended elsewhere", now=now)
            return store.succeed(job, result, now=now)

        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

    world.store = cast(Any, EndedMeanwhile())
    capsys.readouterr()
    assert run(world, job) == "succeeded"
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines() if "result not kept" in text]
    assert (line["level"], line["message"], line["job_id"]) == (
        "ERROR",
        "delivered job had ended: its result not kept",
        job,
    )
    assert world.item(job)["status"] == {"S": "failed"}


# --- the worker -----------------------------------------------------------------------------------


def test_the_worker_completes_a_job_and_get_answers_what_the_synchronous_route_would(world: World) -> None:
    job = submitted(world)
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=("Mail {EMAIL} about it.", "Produce the summary."))
    world.times.now = NOW + dt.timedelta(seconds=2)
    assert run(world, job) == "succeeded"
    assert world.status() == "delivered"
    assert world.used() == 1
    status, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert status == 200
    assert body == {
        "job_id": job,
        "status": "succeeded",
        "status_url": f"/v1/jobs/{job}",
        "output_type": "summary",
        "created_at": NOW.isoformat(),
        "request_id": "req-00000001",
        "model": PRO,
        "output": "A summary.",
        "guardrail": "none",
        "units": 1,
        "remaining": 999,
        "resets_at": "2026-12-01T00:00:00+00:00",
    }
    assert "payload" not in world.item(job)  # the request is not kept past the job


def test_a_job_runs_once_whatever_events_repeat(world: World) -> None:
    job = submitted(world)
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=("Mail {EMAIL} about it.", "Produce the summary."))
    assert run(world, job) == "succeeded"
    assert run(world, job) == "skipped"  # no second generation (the Stubber has no more answers)
    assert world.used() == 1


def test_an_output_the_guardrail_blocks_fails_the_job_and_releases_once(world: World) -> None:
    job = submitted(world)
    converse_ok(world.bedrock, PRO, "Buy these shares.")
    guard_output(
        world.bedrock, "Buy these shares.", BLOCKED_TOPIC, grounding=("Mail {EMAIL} about it.", "Produce the summary.")
    )
    assert run(world, job) == "failed"
    assert world.status() == "released"
    assert world.used() == 0
    status, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert (status, body["status"], body["reason"]) == (200, "failed", jobs.REASON_GUARDRAIL)
    assert "output" not in body


def test_a_failing_model_fails_the_job_with_a_reason_safe_to_show(world: World) -> None:
    job = submitted(world)
    # A refusal of the request is not one a fallback model would answer differently: no fallback.
    world.bedrock.add_client_error(
        "converse", service_error_code="ValidationException", http_status_code=400, service_message="secret detail"
    )
    assert run(world, job) == "failed"
    assert world.used() == 0
    _, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert body["reason"] == jobs.REASON_UPSTREAM.format(service="bedrock-runtime")
    assert "secret" not in json.dumps(body)


def test_a_job_whose_start_window_passed_is_failed_and_released_without_generating(world: World) -> None:
    job = submitted(world)
    world.times.now = NOW + dt.timedelta(seconds=SETTINGS.max_event_age_seconds + 1)
    assert run(world, job) == "failed"
    assert world.used() == 0
    assert world.item(job)["reason"] == {"S": jobs.REASON_STALE}


def test_a_job_starts_right_up_to_its_start_by_time(world: World) -> None:
    job = submitted(world)
    world.times.now = NOW + dt.timedelta(seconds=SETTINGS.max_event_age_seconds)
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=("Mail {EMAIL} about it.", "Produce the summary."))
    assert run(world, job) == "succeeded"


@pytest.mark.parametrize(("remaining", "expected"), [(900.0, 300.0), (120.0, 120.0)])
def test_generation_ends_a_margin_before_the_earlier_of_the_functions_time_and_the_types_limit(
    world: World, remaining: float, expected: float
) -> None:
    job = submitted(world, a_request(token=None))
    capturing = CapturingFlow()
    runtime = worker.Runtime(store=world.store, ledger=world.ledger, flow=lambda agents: capturing)  # type: ignore[arg-type,return-value]
    assert worker.run(job, remaining_seconds=remaining, runtime=runtime, clock=world.times.clock()) == "failed"
    assert capturing.requests[0].deadline == world.times.monotonic + expected - GENERATION_MARGIN_SECONDS
    # An exception outside the flow's own release: the worker releases the units itself, once.
    assert world.used() == 0
    assert world.item(job)["reason"] == {"S": jobs.REASON_INTERNAL}


def test_the_time_the_claim_and_the_ledger_read_take_comes_out_of_generations_not_the_margin(world: World) -> None:
    """Each DynamoDB call may take seconds (an attempt that timed out, then its retry): counted from
    after them, the deadline would give that time to generation again, past the function's end."""
    slow = 4.0

    class SlowStore(jobs.JobStore):
        def claim(self, job: str, *, now: dt.datetime) -> jobs.Job | None:
            world.times.monotonic += slow
            return super().claim(job, now=now)

    class SlowLedger(Ledger):
        def record(self, request_id: str, *, group: str, user: str) -> Any:
            world.times.monotonic += slow
            return super().record(request_id, group=group, user=user)

    job = submitted(world, a_request(token=None))
    capturing = CapturingFlow()
    runtime = worker.Runtime(
        store=SlowStore(world.dynamodb, JOBS_TABLE),
        ledger=SlowLedger(world.dynamodb, TABLE),
        flow=lambda agents: capturing,  # type: ignore[arg-type,return-value]
    )
    began = world.times.monotonic
    worker.run(job, remaining_seconds=120.0, runtime=runtime, clock=world.times.clock())
    assert capturing.requests[0].deadline == began + 120.0 - GENERATION_MARGIN_SECONDS


def test_the_worker_takes_the_token_out_of_the_table_when_it_claims_the_job(world: World) -> None:
    job = submitted(world, a_request("report", token="tok.en.value"))
    capturing = CapturingFlow()
    runtime = worker.Runtime(store=world.store, ledger=world.ledger, flow=lambda agents: capturing)  # type: ignore[arg-type,return-value]
    worker.run(job, remaining_seconds=900, runtime=runtime, clock=world.times.clock())
    assert capturing.requests[0].token == "tok.en.value"
    assert "token" not in world.item(job)


def test_a_job_that_ended_keeps_its_first_outcome(world: World) -> None:
    job = submitted(world)
    world.store.claim(job, now=NOW)
    world.store.succeed(job, jobs.packed_result({"output": "x"}), now=NOW)
    world.store.fail(job, "late", now=NOW)
    assert world.item(job)["status"] == {"S": "succeeded"}
    assert "reason" not in world.item(job)


def test_the_worker_ignores_an_event_without_a_job_id(world: World) -> None:
    assert worker.lambda_handler({"job_id": "../x"}, FakeContext()) == {"outcome": "ignored"}
    assert worker.lambda_handler({}, FakeContext()) == {"outcome": "ignored"}


# --- reading a job --------------------------------------------------------------------------------


def test_a_queued_job_reads_as_queued_until_its_finish_by_time_then_failed(world: World) -> None:
    job = submitted(world)
    status, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert (status, body["status"]) == (200, "queued")
    assert "reason" not in body
    world.times.now = NOW + dt.timedelta(seconds=SETTINGS.max_event_age_seconds + 600)
    assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[1]["status"] == "queued"
    world.times.now += dt.timedelta(microseconds=1)
    _, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert (body["status"], body["reason"]) == ("failed", jobs.REASON_TIMEOUT)


def test_a_running_job_reads_as_running(world: World) -> None:
    job = submitted(world)
    world.store.claim(job, now=NOW)
    assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[1]["status"] == JobStatus.RUNNING


@pytest.mark.parametrize(
    "caller",
    [Caller(user="user-2", group="customer-gold"), Caller(user="user-1", group="customer-basic")],
    ids=["another user of the group", "the same user in another group"],
)
def test_only_the_jobs_own_user_in_its_group_may_read_it(world: World, caller: Caller) -> None:
    job = submitted(world)
    status, body = jobs.read(job, caller=caller, clock=world.times.clock(), jobs=world.jobs)
    assert status == 404
    assert body["error"] == "not_found"
    assert jobs.read("0" * 32, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[1] == {
        "error": "not_found",
        "message": f"no job {'0' * 32} for this caller",
    }


@pytest.mark.parametrize("job", ["", "ABC", "0" * 31, "0" * 33, "g" * 32, "0" * 31 + "\n", "x" * 10_000])
def test_an_id_that_cannot_be_a_job_is_a_404_without_a_lookup(world: World, job: str) -> None:
    status, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert status == 404
    assert len(body["message"]) < 100  # the id is echoed cut short


def test_a_job_whose_request_cannot_be_read_fails_and_releases(world: World) -> None:
    job = submitted(world)
    world.dynamodb.update_item(
        TableName=JOBS_TABLE,
        Key={"job_id": {"S": job}},
        UpdateExpression="SET payload = :p",
        ExpressionAttributeValues={":p": {"B": b"not zlib"}},
    )
    assert run(world, job) == "failed"
    assert world.used() == 0
    assert world.item(job)["reason"] == {"S": jobs.REASON_INTERNAL}


def test_a_job_with_less_time_left_than_the_margin_fails_without_generating(world: World) -> None:
    job = submitted(world)
    assert run(world, job, remaining=GENERATION_MARGIN_SECONDS) == "failed"
    assert world.used() == 0
    assert world.item(job)["reason"] == {"S": jobs.REASON_STALE}


# --- the routes (handler.py) -----------------------------------------------------------------------


def test_the_outputs_route_answers_a_job_and_the_jobs_route_shows_it_to_its_caller_only(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    bedrock = world.bedrock.client
    deps = handler.Dependencies(
        ledger=world.ledger,
        guard=Guard(bedrock, guardrail_id="gr-123", version="1"),
        bedrock=bedrock,
        agents=AgentClient("http://127.0.0.1:9", {}),
    )
    monkeypatch.setattr(handler, "dependencies", lambda: deps)
    monkeypatch.setattr(handler, "policy", lambda: POLICY)
    monkeypatch.setattr(handler, "clock", world.times.clock())
    monkeypatch.setattr(jobs, "environment", lambda: world.jobs)
    environment(monkeypatch)
    guard_input(world.bedrock, ["Quarterly numbers."])
    world.invoke.add_response(
        "invoke", {"StatusCode": 202}, {"FunctionName": WORKER, "InvocationType": "Event", "Payload": ANY}
    )
    event = rest_event(
        "POST",
        "/v1/outputs/summary",
        {"material": "Quarterly numbers."},
        headers={"Prefer": "wait=5"},
        request_id="req-route-001",
    )
    # RFC 7240 lets a client send its preferences on two lines; API Gateway's `headers` keeps the last.
    event["multiValueHeaders"] = {"Prefer": ["respond-async", "wait=5"]}
    submitted = http_result(handler.lambda_handler(event, FakeContext()))
    assert submitted.status == 202, submitted.body
    job = submitted.body["job_id"]
    assert (submitted.body["status"], submitted.body["status_url"]) == ("queued", f"/v1/jobs/{job}")
    assert world.status("req-route-001") == "admitted"  # admitted at submission, produced by the worker

    def read(authorizer: dict[str, str], path: str = f"/v1/jobs/{job}", **event: Any) -> HttpResult:
        request = {**rest_event("GET", path, authorizer=authorizer), "resource": "/v1/jobs/{id}", **event}
        return http_result(handler.lambda_handler(request, FakeContext()))

    me = {"user": "user-1", "group": "customer-gold", "tier": "gold", "kind": "customer"}
    mine = read(me)
    assert (mine.status, mine.body["status"], mine.body["job_id"]) == (200, "queued", job)
    assert read(me, pathParameters={"id": job}).status == 200  # as API Gateway sends it
    # The id whole: Powertools' "$" matches before a final newline and leaves it out of job_id.
    assert read(me, f"/v1/jobs/{job}\n").status == 404
    assert read(me, f"/v1/jobs/{job}\n", pathParameters={"id": f"{job}\n"}).status == 404
    theirs = read({"user": "user-2", "group": "customer-gold", "tier": "gold", "kind": "customer"})
    assert (theirs.status, theirs.body["error"]) == (404, "not_found")


def test_a_job_table_that_fails_a_read_is_the_tables_upstream_error(world: World) -> None:
    failing = jobs.Jobs(jobs.JobStore(world.dynamodb, "no-such-table"), world.jobs.worker, SETTINGS)
    with pytest.raises(UpstreamError) as failed:
        jobs.read("0" * 32, caller=GOLD, clock=world.times.clock(), jobs=failing)
    assert (failed.value.service, failed.value.code) == ("dynamodb", "ResourceNotFoundException")
