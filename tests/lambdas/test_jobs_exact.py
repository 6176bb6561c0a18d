"""Asynchronous outputs at their edges: the caller's token leaves the table when the job is claimed
and whenever it ends, a stored request is rebuilt exactly (or refused, naming the job), an output
is kept up to the byte a job keeps, a corrupt job is gone from the second it expires, the Prefer
header is read line by line up to its limit, and a failing or unreadable jobs table is answered as
such on a re-submit.

The fixtures are tests/lambdas/jobs_fixtures.py's (moto holds the ledger and the jobs table)."""

from __future__ import annotations

import datetime as dt
import json
import re
import zlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NoReturn

import pytest
from botocore.exceptions import ClientError

from ai_gateway import jobs, worker
from ai_gateway.ledger import Ledger
from shared.aws_errors import UpstreamError
from tests.lambdas.conftest import logged, printed
from tests.lambdas.gateway_fixtures import TABLE
from tests.lambdas.jobs_fixtures import (
    GOLD,
    JOBS_TABLE,
    NOW,
    SETTINGS,
    CapturingFlow,
    World,
    a_request,
    submitted,
)

TOKEN = "tok.en.value"  # a stand-in for the caller's bearer token
UNREADABLE = "job item cannot be read"


def stored_payload(world: World, job: str) -> dict[str, Any]:
    """The job item's request as the gateway wrote it (zlib-compressed JSON)."""
    payload: dict[str, Any] = json.loads(zlib.decompress(world.item(job)["payload"]["B"]))
    return payload


def rewrite_payload(world: World, job: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit a job item's stored request by hand, as an older writer or a bad write would leave it."""
    payload = stored_payload(world, job)
    change(payload)
    world.dynamodb.update_item(
        TableName=JOBS_TABLE,
        Key={"job_id": {"S": job}},
        UpdateExpression="SET payload = :p",
        ExpressionAttributeValues={":p": {"B": zlib.compress(json.dumps(payload).encode())}},
    )


def loaded(world: World, job: str) -> jobs.Job:
    found = world.store.get(job)
    assert found is not None
    return found


def run_capturing(world: World, job: str) -> tuple[str, CapturingFlow]:
    """Run the job with a flow that records the request it is asked to complete (and fails it)."""
    capturing = CapturingFlow()
    runtime = worker.Runtime(store=world.store, ledger=world.ledger, flow=lambda agents: capturing)  # type: ignore[arg-type,return-value]
    return worker.run(job, remaining_seconds=900, runtime=runtime, clock=world.times.clock()), capturing


class Refusing:
    """A DynamoDB client whose one operation fails as DynamoDB's own failure does; the rest pass."""

    def __init__(self, client: Any, operation: str) -> None:
        self._client = client
        self._operation = operation

    def __getattr__(self, name: str) -> Any:
        return self._refuse if name == self._operation else getattr(self._client, name)

    def _refuse(self, **_: Any) -> NoReturn:
        error = {"Code": "InternalServerError", "Message": "boom"}
        raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 500}}, self._operation)


# --- the caller's token ---------------------------------------------------------------------------


def test_a_claim_takes_the_token_out_of_the_item_at_once(world: World) -> None:
    """An agent's job holds the caller's bearer token only until the worker starts it: while the
    job runs (minutes), the table must not hold a credential anyone reading it could use."""
    job = submitted(world, a_request("report", token=TOKEN))
    claimed = world.store.claim(job, now=NOW)
    assert claimed is not None
    assert claimed.token == TOKEN  # the worker gets it from the claim itself
    item = world.item(job)
    assert item["status"] == {"S": "running"}
    assert "token" not in item


@pytest.mark.parametrize("ending", ["succeed", "fail"])
def test_an_ending_job_drops_the_token_and_the_request_an_item_still_holds(world: World, ending: str) -> None:
    """Whatever left a token in a running item (a hand edit, a half-written claim), a job that
    ended keeps neither the caller's token nor the caller's request."""
    job = submitted(world, a_request("report", token=TOKEN))
    world.store.claim(job, now=NOW)
    world.dynamodb.update_item(
        TableName=JOBS_TABLE,
        Key={"job_id": {"S": job}},
        UpdateExpression="SET #token = :t",
        ExpressionAttributeNames={"#token": "token"},
        ExpressionAttributeValues={":t": {"S": TOKEN}},
    )
    if ending == "succeed":
        world.store.succeed(job, jobs.packed_result({"output": "A report."}), now=NOW)
    else:
        world.store.fail(job, jobs.REASON_INTERNAL, now=NOW)
    item = world.item(job)
    assert item["status"] == {"S": "succeeded" if ending == "succeed" else "failed"}
    assert "token" not in item
    assert "payload" not in item


# --- the stored request ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "conversation",
    ["C" * 64, "c" * 64 + "\n", "c" * 129, "", "c-1", 42, None],
    ids=["upper case", "a newline", "too long", "empty", "a dash", "a number", "null"],
)
def test_a_stored_conversation_id_the_gateway_would_not_derive_is_refused(world: World, conversation: Any) -> None:
    """The conversation id goes on every log line of the job: one the gateway would not have
    derived (lower-case letters and digits, at most 128) is never logged; the error names the job."""
    job = submitted(world)
    rewrite_payload(world, job, lambda payload: payload["request"].update(conversation=conversation))
    with pytest.raises(ValueError, match="conversation") as refused:
        loaded(world, job).request(deadline=1020.0)
    assert str(refused.value) == f"job {job}: its conversation id is not one"


def test_a_job_whose_conversation_id_is_not_one_fails_and_releases_without_generating(world: World) -> None:
    """A job that can be read but not run is failed and its units given back, before anything is
    produced (the flow is never asked)."""
    job = submitted(world)
    rewrite_payload(world, job, lambda payload: payload["request"].update(conversation="C" * 64))
    outcome, capturing = run_capturing(world, job)
    assert outcome == "failed"
    assert capturing.requests == []
    assert world.used() == 0
    assert world.status() == "released"
    assert world.item(job)["reason"] == {"S": jobs.REASON_INTERNAL}


@pytest.mark.parametrize(
    "grounding",
    [["source", "query", "more"], ["source"], ["source", 1], "sq", {"source": "s", "query": "q"}],
    ids=["three strings", "one string", "a number", "a string", "an object"],
)
def test_stored_grounding_that_is_not_a_source_and_a_query_is_refused(world: World, grounding: Any) -> None:
    """The output guardrail grounds the output on exactly a source and a query: anything else in
    the item is refused, naming the job, rather than guarded against the wrong text."""
    job = submitted(world)
    rewrite_payload(world, job, lambda payload: payload["request"].update(grounding=grounding))
    with pytest.raises(ValueError, match="grounding") as refused:
        loaded(world, job).request(deadline=1020.0)
    assert str(refused.value) == f"job {job}: its grounding is not a source and a query"


def drop_grounding(payload: dict[str, Any]) -> None:
    del payload["request"]["grounding"]


@pytest.mark.parametrize("older", [False, True], ids=["written without grounding", "an item without the key"])
def test_a_job_without_grounding_runs_ungrounded(world: World, older: bool) -> None:
    """An output type without grounding (or an item written before grounding was kept) runs, and
    the flow is asked with no grounding at all."""
    request = a_request(grounding=None)
    job = submitted(world, request)
    if older:
        rewrite_payload(world, job, drop_grounding)
    outcome, capturing = run_capturing(world, job)
    assert outcome == "failed"  # (the capturing flow fails every job)
    assert [r.grounding for r in capturing.requests] == [None]
    assert capturing.requests[0] == replace(request, deadline=capturing.requests[0].deadline)


def test_a_jobs_stop_sequences_reach_the_flow(world: World) -> None:
    """Where the caller asked the model to stop holds for a job as for a synchronous request."""
    job = submitted(world, a_request(stop_sequences=("</summary>", "END")))
    _, capturing = run_capturing(world, job)
    assert capturing.requests[0].stop_sequences == ("</summary>", "END")


def end_job(world: World, job: str) -> None:
    world.store.fail(job, jobs.REASON_INTERNAL, now=NOW)


def no_request(world: World, job: str) -> None:
    rewrite_payload(world, job, lambda payload: payload.update(request="not a request"))


def another_request(world: World, job: str) -> None:
    rewrite_payload(world, job, lambda payload: payload["request"].update(request_id="req-00000002"))


def no_agent_name(world: World, job: str) -> None:
    rewrite_payload(world, job, lambda payload: payload["output"].update(agent="../runtime x"))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (end_job, "job {job} holds no request"),
        (no_request, "job {job} holds no request"),
        (another_request, "job {job} holds another request than the one admitted"),
        (no_agent_name, "job {job}: its agent is not a name"),
    ],
    ids=["ended", "no request", "another request", "an agent that is no name"],
)
def test_a_job_that_cannot_give_its_request_back_says_which_job_and_why(
    world: World,
    edit: Callable[[World, str], None],
    message: str,
) -> None:
    """The worker logs why a job could not run: the error names the job and what is wrong with it,
    never the request itself (it is the caller's)."""
    job = submitted(world)
    edit(world, job)
    expected = message.format(job=job)
    with pytest.raises(ValueError, match=re.escape(expected)) as refused:
        loaded(world, job).request(deadline=1020.0)
    assert str(refused.value) == expected


# --- the kept output ------------------------------------------------------------------------------


def test_an_output_is_kept_up_to_the_byte_a_job_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """An output that fits the job item is kept; one byte more is refused (before it is metered),
    saying how large it was and what a job keeps."""
    body = {"request_id": "req-00000001", "output": "A summary.", "units": 1}
    packed = jobs.packed_result(body)
    monkeypatch.setattr(jobs, "MAX_KEPT_RESULT_BYTES", len(packed))
    assert jobs.packed_result(body) == packed
    monkeypatch.setattr(jobs, "MAX_KEPT_RESULT_BYTES", len(packed) - 1)
    with pytest.raises(jobs.JobTooLargeError) as refused:
        jobs.packed_result(body)
    assert str(refused.value) == f"the output takes {len(packed)} bytes packed; a job keeps {len(packed) - 1}"


def test_an_output_that_packs_small_but_reads_back_larger_than_a_job_answers_is_too_large(world: World) -> None:
    """7 MiB of repeated text packs to a few KB: kept, it would be charged and then unreadable (GET
    unpacks at most MAX_RESULT_BYTES). It is refused before it is metered instead."""
    body = {"output": "x" * (7 * 1024 * 1024)}
    assert len(zlib.compress(json.dumps(body).encode(), 6)) < jobs.MAX_KEPT_RESULT_BYTES
    with pytest.raises(jobs.JobTooLargeError) as refused:
        jobs.packed_result(body)
    assert str(refused.value) == f"the output takes {7 * 1024 * 1024 + 13} bytes; a job answers at most 6291456"
    at_most = {"output": "x" * (jobs.MAX_RESULT_BYTES - 13)}  # {"output":"..."} is 13 bytes beside the text
    job = submitted(world)
    world.store.claim(job, now=NOW)
    world.store.succeed(job, jobs.packed_result(at_most), now=NOW)
    status, read = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert (status, read["status"], len(read["output"])) == (200, "succeeded", jobs.MAX_RESULT_BYTES - 13)


# --- reading a corrupt job ------------------------------------------------------------------------


def test_a_corrupt_job_of_its_caller_is_gone_from_the_second_it_expires(world: World) -> None:
    """An item past its expiry is gone (TTL deletes it days late), corrupt or not, from the very
    second it expires, as for a readable job; until then its caller is told it cannot be read."""
    job = submitted(world)
    now = int(NOW.timestamp())

    def corrupt(expires_at: int) -> None:
        world.dynamodb.update_item(
            TableName=JOBS_TABLE,
            Key={"job_id": {"S": job}},
            UpdateExpression="SET #status = :bogus, expires_at = :e",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":bogus": {"S": "cancelled"}, ":e": {"N": str(expires_at)}},
        )

    corrupt(now)
    assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs) == (
        404,
        {"error": "not_found", "message": f"no job {job} for this caller"},
    )
    corrupt(now + 1)
    assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs) == (
        500,
        {"error": "job_unreadable", "message": f"job {job} cannot be read; quote its id"},
    )


# --- Prefer ---------------------------------------------------------------------------------------


def at_length(line: str, length: int) -> str:
    return line + "x" * (length - len(line))


@pytest.mark.parametrize(
    ("lines", "wanted"),
    [
        ([at_length("respond-async, wait=", jobs.MAX_PREFER_CHARS)], True),
        ([at_length("respond-async, wait=", jobs.MAX_PREFER_CHARS + 1)], False),
        (["respond-async, " + "x" * 2000, "respond-async"], True),
        (["wait=5,respond-async"], True),
        (["wait=5", "respond-async"], True),
    ],
    ids=[
        "a line of the longest length read",
        "one character longer",
        "a line too long, then one that asks",
        "preferences without a space after the comma",
        "the preference on its own line",
    ],
)
def test_each_prefer_line_up_to_the_limit_is_read_for_respond_async(lines: list[str], wanted: bool) -> None:
    """RFC 7240 lets a client send preferences on one line or several, separated by a comma with
    or without spaces; a line too long to be preferences is skipped, not the lines after it."""
    assert jobs.respond_async(lines) is wanted


# --- re-submits -----------------------------------------------------------------------------------


def test_a_resubmit_onto_an_unreadable_job_is_the_callers_500_and_is_logged(
    world: World,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The route asks before screening anything: a job item at the request's id that cannot be
    read answers its caller a 500 to quote, and the operator finds the job and the attribute in the
    log (never its value)."""
    sent = jobs.fingerprint("summary", "Quarterly numbers.", None, None)
    job = submitted(world, sent=sent)
    world.dynamodb.update_item(
        TableName=JOBS_TABLE,
        Key={"job_id": {"S": job}},
        UpdateExpression="SET #status = :bogus",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":bogus": {"S": "cancelled"}},
    )
    capsys.readouterr()
    assert jobs.resubmitted(GOLD, "req-00000001", sent, jobs=world.jobs, now=NOW) == (
        500,
        {"error": "job_unreadable", "message": f"job {job} cannot be read; quote its id"},
    )
    lines = logged(capsys, UNREADABLE)
    assert [(line["level"], line["job_id"], line["field"]) for line in lines] == [("ERROR", job, "status")]
    assert world.used() == 1  # nothing admitted again


def test_a_jobs_table_that_fails_a_resubmit_check_is_the_tables_upstream_error(world: World) -> None:
    """The caller gets the typed answer for DynamoDB's failure (a 5xx naming the service), not the
    gateway's own 500."""
    failing = jobs.Jobs(jobs.JobStore(world.dynamodb, "no-such-table"), world.jobs.worker, SETTINGS)
    with pytest.raises(UpstreamError) as failed:
        jobs.resubmitted(GOLD, "req-00000001", "sent", jobs=failing, now=NOW)
    assert (failed.value.service, failed.value.code) == ("dynamodb", "ResourceNotFoundException")
    assert failed.value.public_message == "dynamodb failed with ResourceNotFoundException"


def test_a_submit_whose_clean_up_fails_raises_its_own_failure_and_leaves_the_rest_to_the_sweeper(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """When the worker cannot be started and giving the units back or failing the job fails too,
    the caller still gets the first failure (the worker's): the units stay admitted for the
    sweeper, and GET reports the job failed after its finish-by time."""
    job = jobs.job_id(GOLD, "req-00000001")
    world.invoke.add_client_error("invoke", service_error_code="TooManyRequestsException", http_status_code=429)
    store = jobs.JobStore(Refusing(world.dynamodb, "update_item"), JOBS_TABLE)
    with pytest.raises(UpstreamError) as failed:
        jobs.submit(
            a_request(),
            flow=world.flow,
            ledger=Ledger(Refusing(world.dynamodb, "transact_write_items"), TABLE),
            agents={},
            clock=world.times.clock(),
            jobs=jobs.Jobs(store, world.jobs.worker, SETTINGS),
        )
    assert failed.value.service == "lambda"
    assert (world.used(), world.status()) == (1, "admitted")
    lines = printed(capsys)
    (release,) = [line for line in lines if line.get("message") == "release failed: units stay admitted"]
    (record,) = [line for line in lines if line.get("message") == "job's failure not recorded"]
    assert (release["request_id"], release["upstream"], release["code"]) == (
        "req-00000001",
        "dynamodb",
        "InternalServerError",
    )
    assert (record["job_id"], record["upstream"], record["code"]) == (job, "dynamodb", "InternalServerError")
    assert world.item(job)["status"] == {"S": "queued"}
    world.times.now = NOW + dt.timedelta(seconds=SETTINGS.max_event_age_seconds + 600, microseconds=1)
    _, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert (body["status"], body["reason"]) == ("failed", jobs.REASON_TIMEOUT)
