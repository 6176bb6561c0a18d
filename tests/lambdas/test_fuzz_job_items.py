"""Property: a stored job item is read as untrusted by the worker, GET /v1/jobs/{id} and (for the
ledger records a job leaves admitted) the sweeper.

A job item may be corrupt, truncated, from an older or newer schema or hostile: an attribute
missing or of another DynamoDB type (N for S, binary, list, map), a status none of the known ones,
negative, huge or non-numeric units and expiry, an item past its expiry that TTL has not yet
deleted, a packed request or output that does not unpack, is not a JSON object or unpacks far larger
than allowed, an owner of another caller, a request naming a model that no longer exists.

- The worker never raises for such an item: the job ends ``failed`` with a reason safe to show (or
  ``succeeded``, or is skipped when it is not queued), its units are given back exactly once (by the
  worker, or by the sweeper from the ledger's own record when the item's cannot be trusted) or
  charged exactly once when the output was delivered, and an output is only ever kept on the job
  of the caller it was produced for. A job whose request, output type, units or window are not
  those the ledger admitted releases nothing itself (it would give back another counter's units).
  An output delivered that the job cannot keep (too large for its item) fails it with a reason
  saying its units were charged, never "no units were charged".
- GET answers JSON: the job's own caller a 200 with its status, a 404 once it expired, or a 500
  ``job_unreadable``; anyone else the same 404 as for a job that does not exist. Never a trace.
- The sweeper never releases a count that is not one (that would charge), and goes on past a
  record it cannot release.
- No log line carries what the item held (the SECRET planted in it).

moto holds the ledger (with its pending index) and the jobs table; Bedrock is a fake that answers
the policy's models and refuses any other.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event, example, given, settings, strategies as st
from moto import mock_aws

from ai_gateway import handler, jobs, sweeper, worker
from ai_gateway.agents import AgentClient, runtime_session_id
from ai_gateway.flow import Clock, DuplicateRequestError, Flow, GenerationRequest
from ai_gateway.guardrail import Guard
from ai_gateway.jobs_contract import GatewayJobsSettings, JobStatus
from ai_gateway.ledger import PENDING_KEY, PENDING_SORT_KEY, Admission, Ledger, Pending, pending_shard
from ai_gateway.models import Caller
from ai_gateway.router import ModelRouter
from ai_gateway.telemetry import Telemetry
from tests.lambdas.conftest import FakeContext, http_result
from tests.lambdas.gateway_fixtures import LITE, POLICY, PRO, TABLE, environment, ledger_table, model_only, rest_event
from tests.lambdas.test_fuzz_gateway import log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(
    max_examples=60,
    deadline=None,
    # capsys is read (and so emptied) at the start of each example; the world is the module's.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
JOBS_TABLE = "jobs"
NOW = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)
GOLD = Caller(user="user-1", group="customer-gold")
OTHER = Caller(user="user-2", group="customer-gold")
AUTHORIZER = {"tier": "gold", "kind": "customer"}
SECRET = "ada-secret@example.com"
JOB_SETTINGS = GatewayJobsSettings(jobs_table=JOBS_TABLE, worker_function="worker", worker_timeout_seconds=600)
QUOTA = POLICY.groups["customer-gold"].quotas["summary"].model_copy(update={"limit": 1_000_000})
ATTRIBUTES = (
    "status",
    "group",
    "user",
    "request_id",
    "output_type",
    "created_at",
    "start_by",
    "finish_by",
    "limit_seconds",
    "admission",
    "payload",
    "expires_at",
    "token",
    "result",
    "reason",
)
OWNER = {"group", "user", "request_id"}
_ids = itertools.count()
# What a failed job may show its caller: one of the jobs' reasons, an upstream named by its service.
REASONS = re.compile(
    "|".join(
        re.escape(r).replace(re.escape("{service}"), "[a-z][a-z0-9 _-]*")
        for r in (
            jobs.REASON_INTERNAL,
            jobs.REASON_STALE,
            jobs.REASON_GUARDRAIL,
            jobs.REASON_TOKEN,
            jobs.REASON_UPSTREAM,
        )
    )
)


def pack(value: Any) -> bytes:
    return zlib.compress(json.dumps(value).encode())


# A request or an output that unpacks to 17 MiB (from 17 KB): past what a job item may unpack to.
BOMB = zlib.compress(b'{"output": "' + b" " * (17 * 1024 * 1024) + b'"}', 9)


class Bedrock:
    """Bedrock answering the policy's models at once, and refusing a model that no longer exists."""

    def apply_guardrail(self, **_: Any) -> dict[str, Any]:
        return {"action": "NONE", "outputs": [], "assessments": []}

    def converse(self, *, modelId: str = "", **_: Any) -> dict[str, Any]:  # noqa: N803 - boto3's name
        if modelId not in (PRO, LITE):
            error = {"Error": {"Code": "ResourceNotFoundException", "Message": f"no model {SECRET}"}}
            raise ClientError(error, "Converse")
        return {
            "output": {"message": {"content": [{"text": "A summary."}]}},
            "usage": {"inputTokens": 5, "outputTokens": 2},
        }


class NoWorker:
    def start(self, job: str) -> None: ...


class Times:
    def __init__(self) -> None:
        self.now = NOW

    def clock(self) -> Clock:
        return Clock(now=lambda: self.now, monotonic=lambda: 1000.0)


@dataclass
class World:
    dynamodb: Any
    ledger: Ledger
    store: jobs.JobStore
    jobs: jobs.Jobs
    flow: Flow
    times: Times

    def used(self) -> int:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "QUOTA#customer-gold#summary#2026-11"}})
        return int(item["Item"]["used"]["N"]) if "Item" in item else 0

    def record(self, request_id: str) -> str:
        record = self.ledger.record(request_id, group=GOLD.group, user=GOLD.user)
        assert record is not None
        return str(record["status"]["S"])

    def item(self, job: str) -> dict[str, Any]:
        return dict(self.dynamodb.get_item(TableName=JOBS_TABLE, Key={"job_id": {"S": job}})["Item"])

    def corrupt(self, job: str, changes: dict[str, dict[str, Any] | None]) -> None:
        for name, value in changes.items():
            names = {"#a": name}
            if value is None:
                self.dynamodb.update_item(
                    TableName=JOBS_TABLE,
                    Key={"job_id": {"S": job}},
                    UpdateExpression="REMOVE #a",
                    ExpressionAttributeNames=names,
                )
            else:
                self.dynamodb.update_item(
                    TableName=JOBS_TABLE,
                    Key={"job_id": {"S": job}},
                    UpdateExpression="SET #a = :v",
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues={":v": value},
                )


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with mock_aws():
        dynamodb = ledger_table()
        dynamodb.create_table(
            TableName=JOBS_TABLE,
            AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        ledger = Ledger(dynamodb, TABLE, sleep=lambda _: None)
        store = jobs.JobStore(dynamodb, JOBS_TABLE)
        times = Times()
        bedrock = Bedrock()
        flow = Flow(
            ledger=ledger,
            guard=Guard(bedrock, guardrail_id="gr-123", version="1"),
            models=ModelRouter(bedrock, attempt_seconds=20, clock=lambda: 1000.0),
            agents=AgentClient("http://127.0.0.1:9", {}),
            telemetry=Telemetry(Metrics(), worker.logger),
            clock=times.clock(),
        )
        yield World(dynamodb, ledger, store, jobs.Jobs(store, NoWorker(), JOB_SETTINGS), flow, times)  # type: ignore[arg-type]


def a_request(request_id: str) -> GenerationRequest:
    return GenerationRequest(
        caller=GOLD,
        output_type="summary",
        output=POLICY.outputs["summary"],
        quota=QUOTA,
        models=[PRO, LITE],
        request_id=request_id,
        conversation=runtime_session_id(GOLD.group, GOLD.user, request_id),
        session=request_id,
        messages=[{"role": "user", "content": [{"text": f"Mail {SECRET} about it."}]}],
        deadline=1020.0,
        grounding=(f"Mail {SECRET} about it.", "Produce the summary."),
    )


def submit(world: World, request_id: str) -> tuple[int, dict[str, Any]]:
    """jobs.submit as the gateway calls it, at the world's time."""
    return jobs.submit(
        a_request(request_id),
        flow=world.flow,
        ledger=world.ledger,
        agents={},
        clock=world.times.clock(),
        jobs=world.jobs,
    )


def submitted(world: World) -> tuple[str, str]:
    """A job submitted as the gateway submits one (its units admitted): (job id, request id)."""
    request_id = f"req-{next(_ids):08d}"
    world.times.now = NOW
    status, body = submit(world, request_id)
    assert status == 202
    return str(body["job_id"]), request_id


# --- what a corrupt attribute may hold -----------------------------------------------------------

plain_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=30) | st.just(SECRET)
times_text = st.sampled_from(
    ["2026-11-29T18:30:00", "2026-11-29T18:30:00+00:00", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59+14:00", "now"]
)
numbers = st.sampled_from(["0", "-1", "-99999999999", "1", "300", "1e30", "99999999999999999999999999999999999", "0.5"])
admissions = (
    st.fixed_dictionaries(
        {
            "request_id": st.just("?") | plain_text,
            "units": st.one_of(st.integers(-(10**30), 10**30), st.just("1"), st.none(), st.booleans()),
            "used": st.integers(-5, 10**30),
            "limit": st.integers(-5, 10**30),
            "resets_at": times_text | plain_text,
            "window": st.just("2026-11") | plain_text,
        }
    ).map(json.dumps)
    | plain_text
)
requests = st.fixed_dictionaries(
    {},
    optional={
        "request": st.one_of(
            st.fixed_dictionaries(
                {
                    "output_type": st.just("summary"),
                    "models": st.sampled_from([["gone-model"], [PRO], [], SECRET]),
                    "request_id": plain_text,
                    "conversation": st.sampled_from(["c" * 64, SECRET, ""]),
                    "session": plain_text,
                    "messages": st.just([{"role": "user", "content": [{"text": SECRET}]}]) | st.just(SECRET),
                },
                optional={"grounding": st.just([SECRET]) | st.just([SECRET, SECRET]), "newer_field": plain_text},
            ),
            st.just(SECRET),
            st.lists(st.integers(), max_size=2),
        ),
        "output": st.just(POLICY.outputs["summary"].model_dump(mode="json"))
        | st.fixed_dictionaries({"units": st.integers(-3, 10**20), "instructions": st.just(SECRET)}),
        "quota": st.just(QUOTA.model_dump(mode="json")) | st.just({"limit": SECRET}),
        "agents": st.just({"gone-agent": SECRET}) | st.just(SECRET),
    },
)
# The job's own request, one field of it changed (an older or newer writer, a config that moved on).
EDITS = {
    "models": st.sampled_from([["gone-model"], ["gone-model", PRO], [], SECRET]),
    "request_id": st.sampled_from(["req-elsewhere", ""]),
    "output_type": st.sampled_from(["gone-type", "chat"]),
    "messages": st.sampled_from([SECRET, [], [{"role": "user", "content": SECRET}]]),
    "max_tokens": st.sampled_from([-1, 10**30, SECRET]),
    "stop_sequences": st.sampled_from([SECRET, 5, [SECRET]]),
    "newer_field": plain_text,
}
edited_requests = st.sampled_from(sorted(EDITS)).flatmap(
    lambda name: EDITS[name].map(lambda value: ("request", name, value))
) | st.sampled_from(
    [
        ("output", "agent", "gone-agent"),
        ("output", "agent", SECRET),
        ("output", "units", 2),
        ("output", "max_tokens", 0),
        ("output", "max_tokens", SECRET),  # pydantic's error quotes it
        ("quota", "period", "YEAR"),
        ("agents", "gone-agent", SECRET),
        ("admission", "window", "2026-10"),
        ("admission", "units", 2),
        ("admission", "limit", 10**30),
    ]
)
packed = st.one_of(
    st.just(BOMB),
    st.binary(max_size=40),
    requests.map(pack),
    st.just(pack([SECRET])),
    st.just(pack({"output": SECRET})),
    st.just(zlib.compress(f"{{{SECRET}".encode())),
    st.just(pack({"output": SECRET})[:-3]),  # truncated
)
values = st.one_of(
    st.none(),  # the attribute removed
    plain_text.map(lambda t: {"S": t}),
    st.sampled_from(["queued", "running", "succeeded", "failed", "cancelled", "QUEUED"]).map(lambda t: {"S": t}),
    times_text.map(lambda t: {"S": t}),
    numbers.map(lambda n: {"N": n}),
    admissions.map(lambda t: {"S": t}),
    packed.map(lambda b: {"B": b}),
    st.just({"S": OTHER.user}),
    st.just({"L": [{"S": SECRET}]}),
    st.just({"M": {"S": {"S": SECRET}}}),
    st.just({"BOOL": True}),
    st.just({"NULL": True}),
    st.just({"SS": [SECRET]}),
)
changes = st.dictionaries(st.sampled_from(ATTRIBUTES), values, max_size=3)


# --- the worker ----------------------------------------------------------------------------------


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(corruption=changes, edit=st.none() | edited_requests)
@example(corruption={"payload": {"B": BOMB}}, edit=None)
@example(corruption={"admission": {"S": json.dumps({"units": -5})}}, edit=None)
@example(corruption={"user": {"S": OTHER.user}}, edit=None)
@example(corruption={"status": {"S": "cancelled"}}, edit=None)
@example(corruption={"start_by": {"S": "2026-11-29T18:35:00"}}, edit=None)  # an older writer's time without an offset
@example(corruption={"expires_at": {"N": "0"}}, edit=None)  # expired, not yet deleted
@example(corruption={}, edit=("request", "models", ["gone-model"]))
@example(corruption={}, edit=("request", "request_id", "req-elsewhere"))
@example(corruption={}, edit=("output", "units", 2))
@example(corruption={}, edit=("output", "max_tokens", SECRET))
@example(corruption={}, edit=("output", "agent", SECRET))
@example(corruption={"limit_seconds": {"S": "300"}}, edit=None)
@example(corruption={"output_type": {"S": "chat"}}, edit=None)  # another counter's
@example(corruption={}, edit=("admission", "window", "2026-10"))  # another window's counter
@example(corruption={"result": {"B": BOMB}}, edit=None)
@example(corruption={"admission": {"S": "[" * 5000 + "]" * 5000}}, edit=None)  # past the parser's recursion
def test_the_worker_ends_a_corrupt_job_and_settles_its_units_once(
    world: World,
    capsys: pytest.CaptureFixture[str],
    corruption: dict[str, dict[str, Any] | None],
    edit: tuple[str, str, Any] | None,
) -> None:
    job, request_id = submitted(world)
    before = world.used()  # (this job's unit is admitted)
    if edit is not None and edit[0] == "admission":  # the item's record of what was admitted
        _, name, value = edit
        world.corrupt(
            job, {"admission": {"S": json.dumps({**json.loads(world.item(job)["admission"]["S"]), name: value})}}
        )
    elif edit is not None:  # the request it holds
        part, name, value = edit
        payload = json.loads(zlib.decompress(world.item(job)["payload"]["B"]))
        payload[part][name] = value
        world.corrupt(job, {"payload": {"B": pack(payload)}})
    world.corrupt(job, corruption)
    queued = world.item(job).get("status") == {"S": "queued"}
    capsys.readouterr()
    world.times.now = NOW + dt.timedelta(seconds=2)

    outcome = worker.run(
        job,
        remaining_seconds=900,
        runtime=worker.Runtime(world.store, world.ledger, lambda _: world.flow),
        clock=world.times.clock(),
    )

    item = world.item(job)
    event(f"worker: {outcome} {item.get('reason', {}).get('S', '')}")
    if not queued:  # not the worker's to run: nothing changed
        assert outcome == "skipped"
    else:
        assert outcome in ("succeeded", "failed")
        assert item["status"] == {"S": outcome}  # never left running
        assert "payload" not in item
        assert "token" not in item
        if outcome == "failed":
            assert REASONS.fullmatch(item["reason"]["S"])  # one safe to show
    # What the worker left admitted, the sweeper gives back: each unit settled once.
    later = world.times.now + dt.timedelta(days=1)
    sweeper.sweep(world.ledger, now=later, bound_seconds=0, page_limit=1000)
    if outcome == "succeeded":
        assert world.record(request_id) == "delivered"
        assert world.used() == before  # charged once
        # Kept on the job of the caller it was produced for, and shown to that caller only.
        assert (item["group"], item["user"]) == ({"S": GOLD.group}, {"S": GOLD.user})
        assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[1]["output"] == "A summary."
        assert jobs.read(job, caller=OTHER, clock=world.times.clock(), jobs=world.jobs)[0] == 404
    else:
        assert world.record(request_id) == "released"
        assert world.used() == before - 1  # given back once
    assert SECRET not in capsys.readouterr().out


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(corruption=changes)
@example(corruption={"status": {"S": "cancelled"}})
@example(corruption={"user": {"S": OTHER.user}})
def test_a_resubmit_onto_a_corrupt_job_answers_json_and_admits_nothing(
    world: World, capsys: pytest.CaptureFixture[str], corruption: dict[str, dict[str, Any] | None]
) -> None:
    job, request_id = submitted(world)
    before = world.used()
    world.corrupt(job, corruption)
    capsys.readouterr()
    try:
        status, body = submit(world, request_id)
    except DuplicateRequestError:  # (the handler's 409) its expiry made past: no job, and a spent key
        status, body = 409, {}
        assert jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)[0] == 404
    if status == 202:  # the job as it stands
        assert (body["job_id"], body["status_url"]) == (job, f"/v1/jobs/{job}")
    elif status != 409:
        assert (status, body) == (
            500,
            {"error": "job_unreadable", "message": f"job {job} cannot be read; quote its id"},
        )
    assert world.used() == before  # the same job: nothing admitted again
    assert SECRET not in capsys.readouterr().out


class LongBedrock(Bedrock):
    """Bedrock answering an output that packs to more than a job item keeps (hex of random bytes)."""

    def converse(self, **_: Any) -> dict[str, Any]:
        text = random.Random(7).randbytes(400_000).hex()
        return {"output": {"message": {"content": [{"text": text}]}}, "usage": {"inputTokens": 5, "outputTokens": 9}}


def test_an_output_too_large_for_its_job_fails_it_before_it_is_charged(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    job, request_id = submitted(world)
    before = world.used()
    long = LongBedrock()
    flow = Flow(
        ledger=world.ledger,
        guard=Guard(long, guardrail_id="gr-123", version="1"),
        models=ModelRouter(long, attempt_seconds=20, clock=lambda: 1000.0),
        agents=AgentClient("http://127.0.0.1:9", {}),
        telemetry=Telemetry(Metrics(), worker.logger),
        clock=world.times.clock(),
    )
    capsys.readouterr()
    runtime = worker.Runtime(world.store, world.ledger, lambda _: flow)
    assert worker.run(job, remaining_seconds=900, runtime=runtime, clock=world.times.clock()) == "failed"
    assert world.item(job)["reason"] == {"S": jobs.REASON_TOO_LARGE}
    assert world.record(request_id) == "released"  # never metered: the caller never gets it
    assert world.used() == before - 1
    status, body = jobs.read(job, caller=GOLD, clock=world.times.clock(), jobs=world.jobs)
    assert (status, body["status"], body["reason"]) == (200, "failed", jobs.REASON_TOO_LARGE)
    assert "no units were charged" in jobs.REASON_TOO_LARGE


# --- GET /v1/jobs/{id} ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def routes(world: World) -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    deps = model_only(Bedrock())
    patch.setattr(handler, "dependencies", lambda: deps)
    patch.setattr(handler, "policy", lambda: POLICY)
    patch.setattr(handler, "clock", world.times.clock())
    patch.setattr(jobs, "environment", lambda: world.jobs)
    environment(patch)
    yield
    patch.undo()


def stored(world: World, state: JobStatus) -> str:
    """A job item as the gateway and the worker write one, in ``state`` (no units admitted)."""
    request_id = f"read-{next(_ids):08d}"
    job = jobs.job_id(GOLD, request_id)
    resets = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    queued = jobs.Job(
        job_id=job,
        status=JobStatus.QUEUED,
        caller=GOLD,
        request_id=request_id,
        output_type="summary",
        created_at=NOW,
        start_by=NOW + dt.timedelta(seconds=300),
        finish_by=NOW + dt.timedelta(seconds=900),
        admission=Admission(request_id, 1, 1, 1000, resets, replayed=False, window="2026-11"),
        limit_seconds=300,
        payload={"request": {"messages": SECRET}},
        token=SECRET,
    )
    assert world.store.create(queued, expires_at=NOW + dt.timedelta(days=7), max_bytes=300_000)
    if state is not JobStatus.QUEUED:
        world.store.claim(job, now=NOW)
    if state is JobStatus.SUCCEEDED:
        world.store.succeed(job, jobs.packed_result({"request_id": request_id, "output": "A summary."}), now=NOW)
    if state is JobStatus.FAILED:
        world.store.fail(job, jobs.REASON_GUARDRAIL, now=NOW)
    return job


def get(job: str, caller: Caller) -> Any:
    event = rest_event("GET", f"/v1/jobs/{job}", authorizer={"user": caller.user, "group": caller.group, **AUTHORIZER})
    return http_result(handler.lambda_handler({**event, "resource": "/v1/jobs/{id}"}, FakeContext()))


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(state=st.sampled_from(list(JobStatus)), corruption=changes, minutes=st.integers(0, 60 * 24 * 8))
@example(state=JobStatus.SUCCEEDED, corruption={"result": {"B": BOMB}}, minutes=1)
@example(state=JobStatus.SUCCEEDED, corruption={"result": {"B": pack([SECRET])}}, minutes=1)
@example(state=JobStatus.QUEUED, corruption={"finish_by": {"S": "2026-11-29T18:35:00"}}, minutes=60)
@example(state=JobStatus.FAILED, corruption={"expires_at": {"N": "-1"}}, minutes=0)
@example(state=JobStatus.QUEUED, corruption={"status": {"S": "cancelled"}}, minutes=0)
@example(state=JobStatus.QUEUED, corruption={"group": {"N": "1"}}, minutes=0)
@example(state=JobStatus.QUEUED, corruption={"expires_at": {"N": "1e30"}}, minutes=0)
def test_a_job_read_answers_json_and_only_its_own_caller_sees_it(
    world: World,
    routes: None,
    capsys: pytest.CaptureFixture[str],
    state: JobStatus,
    corruption: dict[str, dict[str, Any] | None],
    minutes: int,
) -> None:
    job = stored(world, state)
    world.corrupt(job, corruption)
    world.times.now = NOW + dt.timedelta(minutes=minutes)
    capsys.readouterr()

    mine, theirs = get(job, GOLD), get(job, OTHER)

    # Anyone else: the 404 a job that does not exist gets, whatever the item holds.
    assert (theirs.status, theirs.body) == (404, {"error": "not_found", "message": f"no job {job} for this caller"})
    event(f"read: {mine.status} {(mine.body or {}).get('status', '')}")
    assert mine.status in (200, 404, 500)
    assert mine.headers["Content-Type"] == "application/json"
    expiry = corruption.get("expires_at", {"N": str(int((NOW + dt.timedelta(days=7)).timestamp()))})
    expired = expiry is not None and "N" in expiry and float(expiry["N"]) <= world.times.now.timestamp()
    if OWNER.isdisjoint(corruption) and not expired:  # still the caller's: never a 404
        assert mine.status in (200, 500)
    if expired:
        assert mine.status == 404
    if mine.status == 200:
        assert mine.body["job_id"] == job
        assert mine.body["status"] in {s.value for s in JobStatus}
        if mine.body["status"] == "failed":
            assert mine.body["reason"]
    elif mine.status == 500:
        assert mine.body == {"error": "job_unreadable", "message": f"job {job} cannot be read; quote its id"}
    else:
        assert mine.body == theirs.body
    assert SECRET not in capsys.readouterr().out


# --- the sweeper ---------------------------------------------------------------------------------


class SweptLedger:
    """The pending index as a corrupt ledger could list it; releases recorded, some refused."""

    def __init__(self, pending: list[Pending], refused: set[str]) -> None:
        self._pending = pending
        self._refused = refused
        self.released: list[tuple[str, int]] = []

    def pending(self, **_: Any) -> list[Pending]:
        return self._pending

    def release(self, request_id: str, *, units: int, **_: Any) -> bool:
        if request_id in self._refused:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": SECRET}}, "TransactWriteItems")
        self.released.append((request_id, units))
        return True


pendings = st.lists(
    st.builds(
        Pending,
        request_id=st.from_regex(r"r-[0-9]{4}", fullmatch=True),
        group=st.just("customer-gold"),
        user=plain_text,
        output_type=st.just("summary"),
        units=st.integers(-(10**20), 10**20),
        window=st.just("2026-11"),
        admitted_at=st.just(NOW.isoformat()),
    ),
    max_size=8,
    unique_by=lambda p: p.request_id,
)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(pending=pendings, refused=st.sets(st.from_regex(r"r-[0-9]{4}", fullmatch=True), max_size=3))
@example(pending=[Pending("r-0001", "customer-gold", "u", "summary", -3, "2026-11", NOW.isoformat())], refused=set())
def test_the_sweeper_never_releases_a_count_that_is_not_one_and_goes_on_past_it(
    capsys: pytest.CaptureFixture[str], pending: list[Pending], refused: set[str]
) -> None:
    ledger = SweptLedger(pending, refused)
    capsys.readouterr()
    result = sweeper.sweep(ledger, now=NOW, bound_seconds=60, page_limit=100)  # type: ignore[arg-type]
    releasable = [(p.request_id, p.units) for p in pending if p.units >= 1 and p.request_id not in refused]
    assert ledger.released == releasable  # every other one, in order: a bad one stops nothing
    assert result == sweeper.Sweep(
        candidates=len(pending), released=len(releasable), failed=len(pending) - len(releasable)
    )
    assert SECRET not in capsys.readouterr().out


def release_leftovers(world: World) -> None:
    """Release what earlier tests left admitted in the shared world, so a test counts its own."""
    for request in world.ledger.pending(admitted_before=NOW, limit=1000):
        world.ledger.release(
            request.request_id,
            group=request.group,
            user=request.user,
            output_type=request.output_type,
            units=request.units,
            window=request.window,
        )


def admitted_record(world: World, request_id: str, **attributes: dict[str, Any]) -> None:
    """A ledger record the pending index lists, admitted a day before NOW, with ``attributes``."""
    key = f"REQ#customer-gold#user-1#{request_id}"
    item = {
        "pk": {"S": key},
        "request_id": {"S": request_id},
        "group": {"S": "customer-gold"},
        "user": {"S": "user-1"},
        "output_type": {"S": "summary"},
        "units": {"N": "1"},
        "window": {"S": "2026-11"},
        "status": {"S": "admitted"},
        PENDING_KEY: {"S": pending_shard(key)},
        PENDING_SORT_KEY: {"S": (NOW - dt.timedelta(days=1)).isoformat()},
        **attributes,
    }
    world.dynamodb.put_item(TableName=TABLE, Item={k: v for k, v in item.items() if v})


def test_the_sweeper_gives_back_nothing_for_a_record_of_negative_units(world: World) -> None:
    release_leftovers(world)
    before = world.used()
    admitted_record(world, "negative", units={"N": "-3"})
    admitted_record(world, "sound")
    result = sweeper.sweep(world.ledger, now=NOW, bound_seconds=60, page_limit=100)
    assert (result.released, result.failed) == (1, 1)
    assert world.used() == before - 1  # the sound one given back; the negative one never charged
    assert world.record("negative") == "admitted"


@pytest.mark.parametrize(
    "corruption",
    [{"units": {}}, {"units": {"S": "1"}}, {"user": {}}, {"window": {"N": "1"}}, {"units": {"N": "1.5"}}],
    ids=["no units", "units a string", "no user", "window a number", "units not whole"],
)
def test_the_sweeper_goes_on_past_a_ledger_record_it_cannot_read(world: World, corruption: dict[str, Any]) -> None:
    release_leftovers(world)
    already = sweeper.sweep(world.ledger, now=NOW, bound_seconds=60, page_limit=100).failed  # earlier tests' records
    name = f"corrupt-{next(_ids)}"
    admitted_record(world, name, **corruption)
    admitted_record(world, f"sound-{name}")
    try:
        result = sweeper.sweep(world.ledger, now=NOW, bound_seconds=60, page_limit=100)
    finally:
        world.dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": f"REQ#customer-gold#user-1#{name}"}})
    assert (result.released, result.failed) == (1, already + 1)  # the unreadable one counted, left for a person
    assert world.record(f"sound-{name}") == "released"


def test_unreadable_records_do_not_hide_the_requests_admitted_after_them(world: World) -> None:
    """The pending index lists a shard oldest first, unreadable records too (they stay): a sweep
    reads on past a page of them to the requests behind."""
    release_leftovers(world)
    shard = {PENDING_KEY: {"S": "PENDING#0"}}
    names = [f"old-corrupt-{next(_ids)}" for _ in range(3)]
    for name in names:
        admitted_record(world, name, units={"S": "1"}, **shard)
    sound = f"later-{next(_ids)}"
    admitted_record(world, sound, **shard, **{PENDING_SORT_KEY: {"S": (NOW - dt.timedelta(hours=1)).isoformat()}})
    problems: list[str] = []
    try:
        found = world.ledger.pending(admitted_before=NOW, limit=2, unreadable=problems.append)
    finally:
        for name in [*names, sound]:
            world.dynamodb.delete_item(TableName=TABLE, Key={"pk": {"S": f"REQ#customer-gold#user-1#{name}"}})
    assert [p.request_id for p in found] == [sound]
    assert len(problems) >= 3  # ours, and any an earlier test left in the shared world
    assert set(problems) == {"units: not a whole number above 0"}
