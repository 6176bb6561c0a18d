"""The jobs' worker (lambdas/ai_gateway/worker.py) at each of its decisions: it runs a job only
when the ledger holds the job's own admission, gives units back only for an output never
delivered, names the service that failed, and says on one log line per job what happened to it
(never the request's text). The fixtures are jobs_fixtures.py's: moto's ledger and jobs table,
Stubbers for Bedrock."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError

from ai_gateway import jobs, worker
from ai_gateway.contract import GENERATION_MARGIN_SECONDS, Dimension as GatewayDimension, Metric
from ai_gateway.flow import Flow
from ai_gateway.ledger import Ledger
from shared.aws_errors import UpstreamError
from shared.telemetry import CONVERSATION
from tests.lambdas.conftest import printed
from tests.lambdas.gateway_fixtures import PRO, TABLE, converse_ok, guard_output
from tests.lambdas.jobs_fixtures import (
    GOLD,
    GROUNDING,
    JOBS_TABLE,
    CapturingFlow,
    World,
    a_request,
    run,
    submitted,
)

REQUEST_KEY = {"pk": {"S": f"REQ#{GOLD.group}#{GOLD.user}#req-00000001"}}
UPSTREAM_DYNAMODB = jobs.REASON_UPSTREAM.format(service="dynamodb")


def failing(operation: str) -> ClientError:
    return ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, operation)


class CountingLedger(Ledger):
    """The ledger, counting the releases asked of it; ``fail_record``: its record read fails."""

    def __init__(self, world: World, *, fail_record: bool = False, fail_release: bool = False) -> None:
        super().__init__(world.dynamodb, TABLE)
        self.releases = 0
        self._fail_record, self._fail_release = fail_record, fail_release

    def record(self, request_id: str, *, group: str, user: str) -> dict[str, Any] | None:
        if self._fail_record:
            raise failing("GetItem")
        return super().record(request_id, group=group, user=user)

    def release(self, request_id: str, **kwargs: Any) -> bool:
        self.releases += 1
        if self._fail_release:
            raise failing("TransactWriteItems")
        return super().release(request_id, **kwargs)


class FailingStore(jobs.JobStore):
    """The jobs table, failing ``succeed`` or ``fail``."""

    def __init__(self, world: World, *, fail: str) -> None:
        super().__init__(world.dynamodb, JOBS_TABLE)
        self._fail = fail

    def succeed(self, job: str, result: bytes, *, now: Any) -> bool:
        if self._fail == "succeed":
            raise failing("UpdateItem")
        return super().succeed(job, result, now=now)

    def fail(self, job: str, reason: str, *, now: Any, running: bool = True) -> bool:
        if self._fail == "fail":
            raise failing("UpdateItem")
        return super().fail(job, reason, now=now, running=running)


def runtime(
    world: World, *, ledger: Ledger | None = None, store: jobs.JobStore | None = None, flow: Any = None
) -> worker.Runtime:
    return worker.Runtime(
        store=store or world.store,
        ledger=ledger or world.ledger,
        flow=flow or (lambda agents: world.flow),
    )


def run_with(world: World, job: str, rt: worker.Runtime, remaining: float = 900.0) -> str:
    return worker.run(job, remaining_seconds=remaining, runtime=rt, clock=world.times.clock())


def answer(world: World) -> None:
    converse_ok(world.bedrock, PRO, "A summary.")
    guard_output(world.bedrock, "A summary.", grounding=GROUNDING)


def saying(lines: list[dict[str, Any]], message: str) -> dict[str, Any]:
    """The one log line that says ``message``."""
    (line,) = [line for line in lines if line.get("message") == message]
    return line


def ended(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return saying(printed(capsys), "job ended")


# --- only the ledger's own admission runs ---------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("status", {"S": "released"}),
        ("status", {"S": "delivered"}),
        ("output_type", {"S": "report"}),
        ("units", {"N": "2"}),
        ("window", {"S": "2026-10"}),
    ],
)
def test_a_job_whose_admission_is_not_the_ledgers_fails_without_generating_or_releasing(
    world: World, capsys: pytest.CaptureFixture[str], attribute: str, value: dict[str, str]
) -> None:
    """Any one attribute of the ledger's record that differs from the job item's (a corrupt or
    hostile item, a request settled meanwhile) stops the job: no model call (the Stubber has no
    answer), no units given back by the item's word; the sweeper settles the ledger's own record."""
    job = submitted(world)
    world.dynamodb.update_item(
        TableName=TABLE,
        Key=REQUEST_KEY,
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": attribute},
        ExpressionAttributeValues={":v": value},
    )
    ledger = CountingLedger(world)
    capsys.readouterr()
    assert run_with(world, job, runtime(world, ledger=ledger)) == "failed"
    assert (ledger.releases, world.used()) == (0, 1)
    assert world.item(job)["reason"] == {"S": jobs.REASON_INTERNAL}
    lines = printed(capsys)
    (refused,) = [line for line in lines if line.get("level") == "ERROR"]
    assert refused["message"] == "job's admission is not the ledger's: failed, its units left to the sweeper"
    assert refused["job_id"] == job


def test_a_ledger_that_cannot_be_read_fails_the_job_naming_dynamodb_and_gives_the_units_back(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """The release itself checks the ledger's record (the job's units, type and window), so it is
    safe to ask for without the check before it."""
    job = submitted(world)
    ledger = CountingLedger(world, fail_record=True)
    capsys.readouterr()
    assert run_with(world, job, runtime(world, ledger=ledger)) == "failed"
    assert (ledger.releases, world.used(), world.status()) == (1, 0, "released")
    assert world.item(job)["reason"] == {"S": UPSTREAM_DYNAMODB}
    warning = saying(printed(capsys), "upstream call failed")
    assert (warning["upstream"], warning["code"]) == ("dynamodb", "InternalServerError")


# --- what a delivered output keeps -----------------------------------------------------------------


def test_a_succeeded_job_asks_for_no_release_and_records_no_failure(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submitted(world)
    answer(world)
    ledger = CountingLedger(world)
    store = FailingStore(world, fail="fail")  # a failure written would raise here
    capsys.readouterr()
    assert run_with(world, job, runtime(world, ledger=ledger, store=store)) == "succeeded"
    assert (ledger.releases, world.status(), world.used()) == (0, "delivered", 1)
    line = ended(capsys)
    assert (line["job_id"], line["outcome"], line["output_type"]) == (job, "succeeded", "summary")
    assert line[CONVERSATION] == "c" * 64  # the job's conversation on its log lines


def test_an_output_delivered_whose_job_cannot_be_marked_succeeded_is_left_running_with_it(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """Metered before the job is marked succeeded: the units stay charged, and the job is not failed
    (a failed job drops the output kept on it) but left running with its output, for GET. Each
    failure is said, and the job's line says it was left running."""
    job = submitted(world)
    answer(world)
    ledger = CountingLedger(world)
    capsys.readouterr()
    rt = runtime(world, ledger=ledger, store=FailingStore(world, fail="succeed"))
    assert run_with(world, job, rt) == "running"
    assert (ledger.releases, world.status(), world.used()) == (0, "delivered", 1)
    item = world.item(job)
    assert (item["status"], "result" in item, "reason" in item) == ({"S": "running"}, True, False)
    lines = printed(capsys)
    failures = [line for line in lines if line.get("message") == "upstream call failed"]
    assert [(line["upstream"], line["code"]) for line in failures] == [("dynamodb", "InternalServerError")] * 2
    left = saying(lines, "delivered job not marked succeeded: left running, its output kept for GET")
    assert (left["level"], left["job_id"]) == ("WARNING", job)
    line = saying(lines, "job ended")
    assert (line["job_id"], line["outcome"]) == (job, "running")


def test_a_ledger_unread_once_the_output_was_kept_leaves_the_job_running_and_releases_nothing(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether the kept output was charged cannot be told: nothing is given back (it may have been
    delivered) and nothing is failed (that would drop it); GET and the sweeper settle it later."""
    job = submitted(world)
    answer(world)
    ledger = CountingLedger(world)
    real = ledger.deliver

    def deliver_then_lose_the_ledger(request_id: str, **kwargs: Any) -> None:
        real(request_id, **kwargs)
        ledger._fail_record = True  # the ledger's reads fail from here on

    ledger.deliver = deliver_then_lose_the_ledger  # type: ignore[method-assign]
    monkeypatch.setattr(world.flow, "_ledger", ledger)
    capsys.readouterr()
    rt = runtime(world, ledger=ledger, store=FailingStore(world, fail="succeed"))
    assert run_with(world, job, rt) == "running"
    assert (ledger.releases, world.status(), world.used()) == (0, "delivered", 1)
    assert world.item(job)["status"] == {"S": "running"}
    left = saying(printed(capsys), "job's metering unknown: left running, its output kept for GET")
    assert left["job_id"] == job


def test_a_release_that_fails_is_logged_with_the_request_id_and_the_job_still_fails(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submitted(world, a_request(token=None))
    ledger = CountingLedger(world, fail_release=True)
    capsys.readouterr()
    assert run_with(world, job, runtime(world, ledger=ledger, flow=lambda agents: CapturingFlow())) == "failed"
    assert (ledger.releases, world.used()) == (1, 1)  # the sweeper gives them back
    assert world.item(job)["reason"] == {"S": jobs.REASON_INTERNAL}
    lines = printed(capsys)
    released = saying(lines, "release failed: units stay admitted")
    assert (released["request_id"], released["upstream"], released["code"]) == (
        "req-00000001",
        "dynamodb",
        "InternalServerError",
    )
    failed = saying(lines, "job failed")
    assert (failed["job_id"], failed["error_type"]) == (job, "RuntimeError")


def test_a_failure_that_cannot_be_recorded_is_logged_naming_dynamodb(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    """GET reports the job failed after its finish-by time; the units are given back now."""
    job = submitted(world, a_request(token=None))
    capsys.readouterr()
    rt = runtime(world, store=FailingStore(world, fail="fail"), flow=lambda agents: CapturingFlow())
    assert run_with(world, job, rt) == "failed"
    assert world.used() == 0
    warning = saying(printed(capsys), "upstream call failed")
    assert (warning["upstream"], warning["code"]) == ("dynamodb", "InternalServerError")


# --- the job's metrics -------------------------------------------------------------------------------


def request_metrics(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The worker's own request metrics as its handler's flush writes them: the EMF lines holding
    Outputs or UpstreamErrors, each with the dimension set of its directive."""
    worker.metrics.flush_metrics()  # the handler's log_metrics, at the end of the invocation
    found = []
    for line in printed(capsys):
        for directive in line.get("_aws", {}).get("CloudWatchMetrics", []):
            names = {metric["Name"] for metric in directive["Metrics"]}
            if names & {Metric.OUTPUTS, Metric.UPSTREAM_ERRORS}:
                found.append({**line, "dimensions": directive["Dimensions"]})
    return found


def test_a_jobs_outputs_and_units_carry_its_group_and_output_type(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's "Outputs by group and type" reads Outputs by service, Group and OutputType,
    as the gateway writes a request's: an asynchronous output is counted there too, and no second
    request is counted for it."""
    monkeypatch.setattr(world.flow, "_telemetry", worker.telemetry)  # the worker's flow, as runtime() builds it
    job = submitted(world)
    answer(world)
    request_metrics(capsys)  # nothing held from before
    assert run(world, job) == "succeeded"
    (line,) = request_metrics(capsys)
    assert [sorted(dimensions) for dimensions in line["dimensions"]] == [
        sorted(["service", GatewayDimension.GROUP, GatewayDimension.OUTPUT_TYPE])
    ]
    assert (line[GatewayDimension.GROUP], line[GatewayDimension.OUTPUT_TYPE]) == (GOLD.group, "summary")
    assert (line[Metric.OUTPUTS], line[Metric.UNITS]) == ([1.0], [1.0])
    assert Metric.REQUESTS not in line


def test_a_job_the_ledger_does_not_vouch_for_names_no_group_on_its_metrics(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a group and output type the ledger admitted become dimensions (a job item is untrusted:
    it could mint series), and none is left over from the invocation's last job."""
    monkeypatch.setattr(world.flow, "_telemetry", worker.telemetry)
    job = submitted(world)
    answer(world)
    assert run(world, job) == "succeeded"
    other = submitted(world, a_request(request_id="req-00000002"))
    world.dynamodb.update_item(  # the ledger's record says other units than the job item
        TableName=TABLE,
        Key={"pk": {"S": f"REQ#{GOLD.group}#{GOLD.user}#req-00000002"}},
        UpdateExpression="SET #a = :v",
        ExpressionAttributeNames={"#a": "units"},
        ExpressionAttributeValues={":v": {"N": "2"}},
    )
    request_metrics(capsys)
    # Its failure cannot be recorded either: the one metric the job writes, UpstreamErrors.
    assert run_with(world, other, runtime(world, store=FailingStore(world, fail="fail"))) == "failed"
    (line,) = request_metrics(capsys)
    assert line["dimensions"] == [["service"]]
    assert GatewayDimension.GROUP not in line
    assert GatewayDimension.OUTPUT_TYPE not in line


# --- time, agents, repeats and unreadable items ----------------------------------------------------


def test_a_job_with_any_time_left_past_the_margin_runs(world: World) -> None:
    job = submitted(world, a_request(token=None))
    capturing = CapturingFlow()
    rt = runtime(world, flow=lambda agents: capturing)
    assert run_with(world, job, rt, remaining=GENERATION_MARGIN_SECONDS + 0.5) == "failed"
    assert capturing.requests[0].deadline == world.times.monotonic + 0.5


def test_an_agents_job_runs_with_the_flow_of_its_own_agents(world: World) -> None:
    job = submitted(world, a_request("report", token="tok.en.value"))
    asked: list[Mapping[str, str]] = []

    def flow(agents: Mapping[str, str]) -> Flow:
        asked.append(agents)
        return CapturingFlow()  # type: ignore[return-value]

    run_with(world, job, runtime(world, flow=flow))
    assert asked == [{"report_writer": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rw"}]


def test_a_repeated_event_is_logged_and_skipped(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    job = submitted(world, a_request(token=None))
    world.store.claim(job, now=world.times.now)
    capsys.readouterr()
    assert run(world, job) == "skipped"
    line = saying(printed(capsys), "job not queued: a repeated event")
    assert line["job_id"] == job


def test_a_claimed_item_that_cannot_be_read_is_failed_and_logged_naming_the_attribute(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    job = submitted(world)
    world.dynamodb.update_item(
        TableName=JOBS_TABLE,
        Key={"job_id": {"S": job}},
        UpdateExpression="SET output_type = :n",
        ExpressionAttributeValues={":n": {"N": "7"}},
    )
    capsys.readouterr()
    assert run(world, job) == "failed"
    assert world.used() == 1  # left to the sweeper
    assert world.item(job)["reason"] == {"S": jobs.REASON_INTERNAL}
    (line,) = [line for line in printed(capsys) if line.get("level") == "ERROR"]
    assert line["message"] == "job item cannot be read: failed, its units left to the sweeper"
    assert (line["job_id"], line["field"]) == (job, "output_type")


def test_a_claim_that_fails_is_raised_naming_dynamodb_so_that_lambda_retries_the_event(world: World) -> None:
    """Nothing is claimed yet: the retried event finds the job still queued."""

    class Unclaimable(jobs.JobStore):
        def claim(self, job: str, *, now: Any) -> jobs.Job | None:
            raise failing("UpdateItem")

    job = submitted(world)
    rt = runtime(world, store=Unclaimable(world.dynamodb, JOBS_TABLE))
    with pytest.raises(UpstreamError) as raised:
        run_with(world, job, rt)
    assert (raised.value.service, raised.value.code) == ("dynamodb", "InternalServerError")
    assert world.item(job)["status"] == {"S": "queued"}
