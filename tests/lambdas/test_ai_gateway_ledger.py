"""The quota ledger against moto's DynamoDB: exact admission under concurrency, idempotency."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws

from ai_gateway.ledger import (
    BACKOFF_SECONDS,
    CONFLICT_ATTEMPTS,
    Admission,
    Ledger,
    Period,
    QuotaExceededError,
    Window,
    pending_shard,
)
from shared.aws_errors import UpstreamError
from tests.lambdas.gateway_fixtures import TABLE, ledger_table

NOW = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield ledger_table()


@pytest.fixture
def ledger(dynamodb: Any) -> Ledger:
    return Ledger(dynamodb, TABLE)


def admit(
    ledger: Ledger,
    request_id: str,
    *,
    limit: int = 100,
    units: int = 1,
    group: str = "gold",
    period: Period = "MONTH",
    now: dt.datetime = NOW,
) -> Any:
    return ledger.admit(
        request_id=request_id,
        group=group,
        user="user-1",
        output_type="report",
        units=units,
        limit=limit,
        period=period,
        unit_price_usd=0.5,
        now=now,
    )


class Sleeps:
    """The ledger's sleep, recorded instead of slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)

    def within_backoff(self) -> bool:
        """Each sleep within its attempt's jitter ceiling (which doubles per attempt)."""
        return all(0 <= s <= BACKOFF_SECONDS * 2**attempt for attempt, s in enumerate(self.slept))


def test_windows_reset_at_the_next_utc_day_or_month() -> None:
    assert Window.containing(NOW, "DAY") == Window("2026-11-29", dt.datetime(2026, 11, 30, tzinfo=dt.UTC))
    assert Window.containing(NOW, "MONTH") == Window("2026-11", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    december = dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)
    assert Window.containing(december, "MONTH").resets_at == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_admission_counts_units_and_writes_a_metering_record(ledger: Ledger) -> None:
    admission = admit(ledger, "r1", units=3, limit=10)
    assert admission == Admission("r1", 3, 3, 10, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), False, "2026-11")
    assert admission.remaining == 7
    record = ledger.record("r1", group="gold", user="user-1")
    assert record is not None
    assert {k: v.get("S", v.get("N")) for k, v in record.items()} == {
        "pk": "REQ#gold#user-1#r1",
        "request_id": "r1",
        "group": "gold",
        "user": "user-1",
        "output_type": "report",
        "units": "3",
        "unit_price_usd": "0.5",
        "amount_usd": "1.5",
        "window": "2026-11",
        "status": "admitted",
        "created_at": "2026-11-29T18:30:00+00:00",
        "gsi1pk": "GROUP#gold",
        "gsi1sk": "2026-11-29T18:30:00+00:00#r1",
        "pending": pending_shard("REQ#gold#user-1#r1"),
        "pending_at": "2026-11-29T18:30:00+00:00",
    }


def test_a_replayed_request_id_adds_nothing(ledger: Ledger) -> None:
    admit(ledger, "r1", units=2, limit=10)
    for _ in range(5):
        again = admit(ledger, "r1", units=2, limit=10)
        assert again == Admission("r1", 2, 2, 10, dt.datetime(2026, 12, 1, tzinfo=dt.UTC), True, "2026-11")
        assert not again.delivered  # still running: it may yet be released
    assert admit(ledger, "r2", units=1, limit=10).used == 3
    ledger.deliver("r1", group="gold", user="user-1", model="m", input_tokens=1, output_tokens=1)
    assert admit(ledger, "r1", units=2, limit=10).delivered  # its answer cannot change now


def test_the_counter_records_its_window_limit(dynamodb: Any, ledger: Ledger) -> None:
    admit(ledger, "r1", units=2, limit=10)
    admit(ledger, "r2", units=1, limit=12)  # a raised limit is the counter's from then on
    counter = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "QUOTA#gold#report#2026-11"}})["Item"]
    assert {k: v["N"] for k, v in counter.items() if k != "pk"} == {"used": "3", "limit": "12"}


def test_records_are_written_in_utc_whatever_the_hosts_time_zone(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        admit(ledger, "r1", now=dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))))
    finally:
        monkeypatch.undo()
        time.tzset()
    record = ledger.record("r1", group="gold", user="user-1")
    assert record is not None
    assert (record["created_at"]["S"], record["gsi1sk"]["S"]) == (
        "2026-11-29T23:30:00+00:00",
        "2026-11-29T23:30:00+00:00#r1",
    )


def test_quota_refusal_says_what_is_left_and_when_it_resets(ledger: Ledger) -> None:
    admit(ledger, "r1", units=9, limit=10)
    with pytest.raises(QuotaExceededError) as refused:
        admit(ledger, "r2", units=2, limit=10)
    assert (refused.value.used, refused.value.limit, refused.value.remaining) == (9, 10, 1)
    assert str(refused.value) == "quota exhausted: 9 of 10 used"
    assert refused.value.resets_at == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert ledger.record("r2", group="gold", user="user-1") is None  # a refused request leaves no metering record
    assert admit(ledger, "r3", units=1, limit=10).remaining == 0


def test_more_units_than_the_limit_are_refused_outright_and_exactly_the_limit_is_admitted(ledger: Ledger) -> None:
    with pytest.raises(QuotaExceededError) as refused:
        admit(ledger, "r1", units=11, limit=10)
    assert (refused.value.used, refused.value.limit, refused.value.remaining) == (0, 10, 10)
    assert refused.value.resets_at == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert ledger.record("r1", group="gold", user="user-1") is None
    whole = admit(ledger, "r2", units=10, limit=10)
    assert (whole.used, whole.remaining, whole.replayed) == (10, 0, False)
    with pytest.raises(QuotaExceededError) as after:
        admit(ledger, "r3", units=11, limit=10)
    assert (after.value.used, after.value.remaining) == (10, 0)


@pytest.mark.parametrize("lowered", [4, 0])
def test_a_replay_is_answered_as_one_after_its_limit_was_lowered(ledger: Ledger, lowered: int) -> None:
    """Units past the limit are refused before any transaction, which is where a replay is found:
    a request the ledger holds is a replay whatever the limit is now (the gateway's 409 or the
    delivered answer), never a 429."""
    first = admit(ledger, "r1", units=5, limit=10)
    again = admit(ledger, "r1", units=5, limit=lowered)
    assert (again.replayed, again.delivered, again.used, again.limit) == (True, False, 5, lowered)
    assert (again.request_id, again.units, again.resets_at, again.window) == (
        "r1",
        5,
        first.resets_at,
        first.window,
    )
    ledger.deliver("r1", group="gold", user="user-1", model="m", input_tokens=1, output_tokens=1)
    assert admit(ledger, "r1", units=5, limit=lowered).delivered
    admit(ledger, "r2", units=5, limit=10)
    assert ledger.release("r2", group="gold", user="user-1", output_type="report", units=5, window="2026-11")
    with pytest.raises(QuotaExceededError) as refused:  # released: nothing holds it, it is new again
        admit(ledger, "r2", units=5, limit=lowered)
    assert (refused.value.used, refused.value.limit) == (5, lowered)
    with pytest.raises(QuotaExceededError):
        admit(ledger, "r3", units=5, limit=lowered)


@pytest.mark.parametrize(
    "release_failure",
    [
        ClientError({"Error": {"Code": "InternalServerError"}}, "TransactWriteItems"),
        EndpointConnectionError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com"),
    ],
)
def test_an_admission_whose_counter_read_and_release_both_fail_raises_the_reads_error(
    dynamodb: Any, release_failure: Exception
) -> None:
    """The release after the failed read is best effort (the sweeper releases what it leaves): its
    own failure must not hide the read's, which is what the caller is told."""

    class Unreachable:
        def get_item(self, **request: Any) -> Any:
            if request["Key"]["pk"]["S"].startswith("QUOTA#"):
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem")
            return dynamodb.get_item(**request)

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    class ReleaseFails(Ledger):
        def release(self, request_id: str, **kwargs: Any) -> bool:
            raise release_failure

    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        admit(ReleaseFails(Unreachable(), TABLE, sleep=Sleeps()), "r1", units=3, limit=10)


def test_an_admission_whose_counter_is_not_read_back_is_released_and_its_retry_admitted(dynamodb: Any) -> None:
    """The transaction committed, then the read of what is left failed: the request fails (the
    read's error), holding nothing, and its retry under the same id is admitted again."""

    class CounterUnread:
        failing = True

        def get_item(self, **request: Any) -> Any:
            if self.failing and request["Key"]["pk"]["S"].startswith("QUOTA#"):
                raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "GetItem")
            return dynamodb.get_item(**request)

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    client = CounterUnread()
    ledger = Ledger(client, TABLE, sleep=Sleeps())
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        admit(ledger, "r1", units=3, limit=10)
    assert ledger.record("r1", group="gold", user="user-1")["status"] == {"S": "released"}  # type: ignore[index]
    client.failing = False
    retried = admit(ledger, "r1", units=3, limit=10)
    assert (retried.replayed, retried.used) == (False, 3)  # the first admission's units went back


class Recording:
    """Delegates to the real client and records each call's operation and arguments."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def recorded(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return getattr(self._client, name)(**kwargs)

        return recorded


def test_every_read_of_the_ledger_is_strongly_consistent(dynamodb: Any) -> None:
    # A count read after a write must see it: an eventually consistent read could report units
    # left that another request already took, or miss a metering record just written.
    recording = Recording(dynamodb)
    ledger = Ledger(recording, TABLE)
    admit(ledger, "r1", units=9, limit=10)
    with pytest.raises(QuotaExceededError):
        admit(ledger, "r2", units=2, limit=10)
    ledger.usage("gold", QUOTAS, NOW)
    ledger.record("r1", group="gold", user="user-1")
    reads = [(name, kwargs) for name, kwargs in recording.calls if name in ("get_item", "batch_get_item")]
    assert {name for name, _ in reads} == {"get_item", "batch_get_item"}
    for name, kwargs in reads:
        consistent = kwargs["ConsistentRead"] if name == "get_item" else kwargs["RequestItems"][TABLE]["ConsistentRead"]
        assert consistent is True, name


def test_a_release_or_an_admission_failing_for_another_reason_raises_that_error(dynamodb: Any) -> None:
    class Throttled:
        def transact_write_items(self, **_: Any) -> Any:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems")

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    ledger = Ledger(Throttled(), TABLE, sleep=Sleeps())
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        ledger.release("r1", group="gold", user="user-1", output_type="report", units=1, window="2026-11")
    with pytest.raises(ClientError, match="ProvisionedThroughputExceeded"):
        admit(ledger, "r1", limit=10)


def test_backoff_doubles_its_jitter_ceiling_with_each_attempt(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    ceilings: list[tuple[float, float]] = []

    def highest(low: float, high: float) -> float:
        ceilings.append((low, high))
        return high

    monkeypatch.setattr("ai_gateway.ledger.random.uniform", highest)
    sleeps = Sleeps()
    with pytest.raises(ClientError):
        admit(Ledger(Conflicting(dynamodb, conflicts=99), TABLE, sleep=sleeps), "r1", limit=10)
    expected = [BACKOFF_SECONDS * 2**attempt for attempt in range(CONFLICT_ATTEMPTS - 1)]
    assert ceilings == [(0, ceiling) for ceiling in expected]
    assert sleeps.slept == expected


def test_groups_have_separate_counters(ledger: Ledger) -> None:
    admit(ledger, "r1", limit=1, group="gold")
    assert admit(ledger, "r2", limit=1, group="basic").used == 1


def test_release_gives_units_back_once_and_delivery_records_tokens(ledger: Ledger) -> None:
    admit(ledger, "r1", units=4, limit=10)
    for _ in range(3):
        ledger.release("r1", group="gold", user="user-1", output_type="report", units=4, window="2026-11")
    assert admit(ledger, "r2", units=1, limit=10).used == 1
    ledger.deliver("r2", group="gold", user="user-1", model="amazon.nova-pro-v1:0", input_tokens=120, output_tokens=800)
    record = ledger.record("r2", group="gold", user="user-1")
    assert record is not None
    assert (record["status"]["S"], record["model"]["S"], record["input_tokens"]["N"], record["output_tokens"]["N"]) == (
        "delivered",
        "amazon.nova-pro-v1:0",
        "120",
        "800",
    )
    assert ledger.record("r1", group="gold", user="user-1")["status"]["S"] == "released"  # type: ignore[index]


@pytest.mark.parametrize(
    "wrong",
    [{"units": 3}, {"units": 40}, {"output_type": "summary"}, {"window": "2026-10"}],
    ids=["fewer units", "more units", "another output type", "another window"],
)
def test_a_release_that_names_other_units_than_were_admitted_gives_nothing_back(
    ledger: Ledger, wrong: dict[str, Any]
) -> None:
    """Units go back only to the counter that holds them, as many as it holds: a caller that read
    them wrong (a corrupt job item, a stale record) releases nothing, and the right release still can."""
    admit(ledger, "r1", units=4, limit=10)
    admitted: dict[str, Any] = {
        "group": "gold",
        "user": "user-1",
        "output_type": "report",
        "units": 4,
        "window": "2026-11",
    }
    assert ledger.release("r1", **{**admitted, **wrong}) is False
    assert admit(ledger, "r2", units=1, limit=10).used == 5  # nothing was given back
    assert ledger.record("r1", group="gold", user="user-1")["status"]["S"] == "admitted"  # type: ignore[index]
    assert ledger.release("r1", **admitted) is True
    assert admit(ledger, "r3", units=1, limit=10).used == 2


def test_usage_reports_each_quota_of_the_group(ledger: Ledger) -> None:
    admit(ledger, "r1", units=4, limit=10)
    usage = ledger.usage("gold", {"report": (10, "MONTH"), "summary": (5, "DAY")}, NOW)
    assert [(u.output_type, u.used, u.remaining, u.resets_at.isoformat()) for u in usage] == [
        ("report", 4, 6, "2026-12-01T00:00:00+00:00"),
        ("summary", 0, 5, "2026-11-30T00:00:00+00:00"),
    ]


@pytest.fixture
def atomic_items(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """DynamoDB applies each write and each transaction atomically; moto does not lock.

    Serialize moto's write calls the way the service serializes them per item, so that the test
    measures the ledger's conditions, not moto's races. A ledger that read, then wrote, would
    still over-admit under this lock.
    """
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()  # re-entrant: a transaction reads items through get_item
    for name in ("transact_write_items", "update_item", "put_item", "get_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self: Any, *args: Any, __original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return __original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)
    # Switch threads as often as possible, so that interleavings a race needs actually happen.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def test_200_concurrent_admissions_against_a_quota_of_100_admit_exactly_100(ledger: Ledger, atomic_items: None) -> None:
    def attempt(number: int) -> bool:
        try:
            admit(ledger, f"req-{number}", limit=100)
            return True
        except QuotaExceededError:
            return False

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(attempt, range(200)))
    assert results.count(True) == 100
    assert ledger.usage("gold", {"report": (100, "MONTH")}, NOW)[0].used == 100
    # Replaying every request id, concurrently, changes nothing.
    with ThreadPoolExecutor(max_workers=32) as pool:
        replays = list(pool.map(lambda n: admit(ledger, f"req-{n}", limit=100) if results[n] else None, range(200)))
    assert all(r.replayed for r in replays if r is not None)
    assert ledger.usage("gold", {"report": (100, "MONTH")}, NOW)[0].used == 100


class Conflicting:
    """Delegates to the real client, but cancels the first ``conflicts`` transactions the way
    DynamoDB does when another transaction holds the same item; counts the transactions sent."""

    def __init__(self, client: Any, conflicts: int, reasons: list[str] | None = None) -> None:
        self._client = client
        self.conflicts = conflicts
        self.reasons = reasons or ["None", "TransactionConflict"]
        self.calls = 0

    def transact_write_items(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.conflicts:
            self.conflicts -= 1
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [{"Code": code} for code in self.reasons],
                },
                "TransactWriteItems",
            )
        return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_transaction_conflict_on_the_counter_is_retried_after_a_jittered_backoff(dynamodb: Any) -> None:
    flaky, sleeps = Conflicting(dynamodb, conflicts=2), Sleeps()
    admission = admit(Ledger(flaky, TABLE, sleep=sleeps), "r1", limit=10)
    assert (admission.used, admission.replayed, flaky.calls) == (1, False, 3)
    assert len(sleeps.slept) == 2
    assert sleeps.within_backoff()


def test_conflicts_that_outlast_the_retries_are_raised_after_every_attempt(dynamodb: Any) -> None:
    flaky, sleeps = Conflicting(dynamodb, conflicts=99), Sleeps()
    with pytest.raises(ClientError) as raised:
        admit(Ledger(flaky, TABLE, sleep=sleeps), "r1", limit=10)
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert (flaky.calls, len(sleeps.slept)) == (CONFLICT_ATTEMPTS, CONFLICT_ATTEMPTS - 1)  # no sleep after the last
    assert sleeps.within_backoff()
    assert Ledger(dynamodb, TABLE).usage("gold", {"report": (10, "MONTH")}, NOW)[0].used == 0


@pytest.mark.parametrize(
    ("reasons", "raised"),
    [
        (["TransactionConflict", "ConditionalCheckFailed"], QuotaExceededError),  # a condition failed: final
        (["None", "ThrottlingError"], ClientError),
        (["ValidationError", "None"], ClientError),
    ],
)
def test_a_cancellation_that_is_not_only_a_conflict_is_not_retried(
    dynamodb: Any, reasons: list[str], raised: type[Exception]
) -> None:
    flaky, sleeps = Conflicting(dynamodb, conflicts=99, reasons=reasons), Sleeps()
    with pytest.raises(raised):
        admit(Ledger(flaky, TABLE, sleep=sleeps), "r1", limit=10)
    assert (flaky.calls, sleeps.slept) == (1, [])


def test_release_raises_unless_the_record_was_already_released(dynamodb: Any) -> None:
    ledger = Ledger(dynamodb, TABLE)
    admit(ledger, "r1", limit=10)
    failing = Ledger(Conflicting(dynamodb, conflicts=99, reasons=["None", "ThrottlingError"]), TABLE, sleep=Sleeps())
    with pytest.raises(ClientError):
        failing.release("r1", group="gold", user="user-1", output_type="report", units=1, window="2026-11")
    assert ledger.usage("gold", {"report": (10, "MONTH")}, NOW)[0].used == 1  # not silently lost


def test_a_released_request_cannot_be_marked_delivered(ledger: Ledger) -> None:
    # Delivered with its units given back, an output would be on the books with no quota charged.
    admit(ledger, "r1", units=4, limit=10)
    ledger.release("r1", group="gold", user="user-1", output_type="report", units=4, window="2026-11")
    with pytest.raises(ClientError) as refused:
        ledger.deliver("r1", group="gold", user="user-1", model="m", input_tokens=1, output_tokens=1)
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    record = ledger.record("r1", group="gold", user="user-1")
    assert record is not None
    assert record["status"]["S"] == "released"
    assert "model" not in record
    assert ledger.usage("gold", {"report": (10, "MONTH")}, NOW)[0].used == 0


def test_a_delivered_request_is_neither_refunded_nor_delivered_twice(ledger: Ledger) -> None:
    admit(ledger, "r1", units=4, limit=10)
    ledger.deliver("r1", group="gold", user="user-1", model="m", input_tokens=1, output_tokens=2)
    ledger.release("r1", group="gold", user="user-1", output_type="report", units=4, window="2026-11")
    with pytest.raises(ClientError):
        ledger.deliver("r1", group="gold", user="user-1", model="other", input_tokens=9, output_tokens=9)
    record = ledger.record("r1", group="gold", user="user-1")
    assert record is not None
    assert (record["status"]["S"], record["model"]["S"], record["output_tokens"]["N"]) == ("delivered", "m", "2")
    assert ledger.usage("gold", {"report": (10, "MONTH")}, NOW)[0].used == 4
    assert admit(ledger, "r1", units=4, limit=10).replayed  # and its id is not admitted again


def test_a_released_request_id_may_be_admitted_again_and_counts_once(ledger: Ledger) -> None:
    admit(ledger, "r1", units=4, limit=10)
    ledger.release("r1", group="gold", user="user-1", output_type="report", units=4, window="2026-11")
    again = admit(ledger, "r1", units=4, limit=10)
    assert (again.replayed, again.used) == (False, 4)
    assert ledger.record("r1", group="gold", user="user-1")["status"]["S"] == "admitted"  # type: ignore[index]


def test_a_daily_quota_counts_per_utc_day_and_resets_at_midnight(ledger: Ledger) -> None:
    day = dict(limit=2, period="DAY")
    assert admit(ledger, "d1", **day).used == 1  # type: ignore[arg-type]
    assert admit(ledger, "d2", now=NOW + dt.timedelta(hours=5), **day).used == 2  # type: ignore[arg-type] # 23:30 UTC
    with pytest.raises(QuotaExceededError) as refused:
        admit(ledger, "d3", **day)  # type: ignore[arg-type]
    assert (refused.value.used, refused.value.limit, refused.value.remaining) == (2, 2, 0)
    assert refused.value.resets_at == dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    # The next UTC day is a new window, in the same month; its record names that day's window.
    tomorrow = admit(ledger, "d4", now=dt.datetime(2026, 11, 30, 0, 0, 1, tzinfo=dt.UTC), **day)  # type: ignore[arg-type]
    assert (tomorrow.used, tomorrow.window, tomorrow.resets_at) == (
        1,
        "2026-11-30",
        dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
    )
    assert ledger.record("d4", group="gold", user="user-1")["window"]["S"] == "2026-11-30"  # type: ignore[index]
    usage = ledger.usage("gold", {"report": (2, "DAY")}, NOW)[0]
    assert (usage.used, usage.period, usage.resets_at) == (2, "DAY", dt.datetime(2026, 11, 30, tzinfo=dt.UTC))


def test_a_window_is_read_in_utc_whatever_the_callers_or_the_hosts_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    tokyo = dt.timezone(dt.timedelta(hours=9))
    local = dt.datetime(2026, 12, 1, 8, 0, 45, 123456, tzinfo=tokyo)  # 2026-11-30 23:00:45.123456 UTC
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        day, month = Window.containing(local, "DAY"), Window.containing(local, "MONTH")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert day == Window("2026-11-30", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    assert month == Window("2026-11", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))


@pytest.mark.parametrize(
    ("now", "day", "month"),
    [
        (dt.datetime(2026, 1, 31, 23, 59, 59, 999999, tzinfo=dt.UTC), "2026-01-31", (2026, 2)),
        (dt.datetime(2028, 2, 29, 12, tzinfo=dt.UTC), "2028-02-29", (2028, 3)),
        (dt.datetime(2026, 12, 1, 0, 0, tzinfo=dt.UTC), "2026-12-01", (2027, 1)),
        (dt.datetime(2026, 11, 30, 0, 0, 0, 1, tzinfo=dt.UTC), "2026-11-30", (2026, 12)),
    ],
)
def test_windows_start_at_midnight_and_the_first_and_reset_at_the_next(
    now: dt.datetime, day: str, month: tuple[int, int]
) -> None:
    daily = Window.containing(now, "DAY")
    assert daily.key == day
    assert daily.resets_at == dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1)
    monthly = Window.containing(now, "MONTH")
    assert monthly.key == day[:7]
    assert monthly.resets_at == dt.datetime(*month, 1, tzinfo=dt.UTC)


class Unprocessed:
    """Delegates to the real client, but leaves the first key of the first ``times`` reads
    unprocessed, as DynamoDB does when a read exceeds its throughput; counts the reads."""

    def __init__(self, client: Any, times: int) -> None:
        self._client = client
        self.times = times
        self.reads: list[int] = []  # keys asked for, per read

    def batch_get_item(self, **kwargs: Any) -> Any:
        asked = kwargs["RequestItems"][TABLE]
        keys = asked["Keys"]
        self.reads.append(len(keys))
        if not self.times:
            return self._client.batch_get_item(**kwargs)
        self.times -= 1
        rest = {TABLE: {**asked, "Keys": keys[1:]}}
        answered = self._client.batch_get_item(RequestItems=rest) if keys[1:] else {"Responses": {}}
        return {**answered, "UnprocessedKeys": {TABLE: {**asked, "Keys": keys[:1]}}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


QUOTAS: dict[str, tuple[int, Period]] = {"report": (10, "MONTH"), "summary": (5, "DAY")}


def test_usage_reads_the_keys_dynamodb_left_unprocessed(dynamodb: Any) -> None:
    ledger = Ledger(dynamodb, TABLE)
    admit(ledger, "r1", units=4, limit=10)
    flaky, sleeps = Unprocessed(dynamodb, times=2), Sleeps()
    usage = Ledger(flaky, TABLE, sleep=sleeps).usage("gold", QUOTAS, NOW)
    assert [(u.output_type, u.used) for u in usage] == [("report", 4), ("summary", 0)]
    assert (flaky.reads, len(sleeps.slept)) == ([2, 1, 1], 2)
    assert sleeps.within_backoff()


def test_usage_keys_left_unprocessed_after_every_attempt_are_an_error(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("ai_gateway.ledger.random.uniform", lambda low, high: high)
    flaky, sleeps = Unprocessed(dynamodb, times=99), Sleeps()
    with pytest.raises(UpstreamError) as raised:
        Ledger(flaky, TABLE, sleep=sleeps).usage("gold", QUOTAS, NOW)
    # DynamoDB leaves keys unprocessed when throttled: the caller gets a 429 to retry, not a 500.
    assert (raised.value.service, raised.value.code, raised.value.http_status) == ("dynamodb", "UnprocessedKeys", 429)
    assert sleeps.slept == [BACKOFF_SECONDS * 2**attempt for attempt in range(CONFLICT_ATTEMPTS - 1)]
    assert (len(flaky.reads), len(sleeps.slept)) == (CONFLICT_ATTEMPTS, CONFLICT_ATTEMPTS - 1)  # none after the last
    assert sleeps.within_backoff()


def test_usage_of_more_quotas_than_one_read_takes_is_read_in_batches_of_100(dynamodb: Any) -> None:
    ledger = Ledger(dynamodb, TABLE)
    for number in (0, 100, 249):
        ledger.admit(
            request_id=f"r{number}", group="gold", user="user-1", output_type=f"type-{number}", units=number + 1,
            limit=1000, period="MONTH", unit_price_usd=0.1, now=NOW,
        )  # fmt: skip
    counting = Unprocessed(dynamodb, times=0)
    quotas: dict[str, tuple[int, Period]] = {f"type-{n}": (1000, "MONTH") for n in range(250)}
    usage = Ledger(counting, TABLE).usage("gold", quotas, NOW)
    assert counting.reads == [100, 100, 50]
    assert {u.output_type: u.used for u in usage if u.used} == {"type-0": 1, "type-100": 101, "type-249": 250}
    assert len(usage) == 250


@pytest.mark.parametrize(
    "response",
    [
        {},  # no Error block at all
        {"Error": {"Code": "TransactionCanceledException"}},  # cancelled, but without reasons
        {"Error": {"Code": "TransactionCanceledException"}, "CancellationReasons": [{"Code": "None"}]},  # one reason
    ],
)
def test_an_error_without_the_usual_fields_is_raised_as_itself(dynamodb: Any, response: dict[str, Any]) -> None:
    class Odd:
        def transact_write_items(self, **_: Any) -> Any:
            raise ClientError(response, "TransactWriteItems")

        def __getattr__(self, name: str) -> Any:
            return getattr(dynamodb, name)

    ledger = Ledger(Odd(), TABLE, sleep=Sleeps())
    with pytest.raises(ClientError):
        admit(ledger, "r1", limit=10)
    with pytest.raises(ClientError):
        ledger.release("r1", group="gold", user="user-1", output_type="report", units=1, window="2026-11")


# --- a transaction botocore sends again -------------------------------------------------------------


def tokens(recording: Recording) -> list[str]:
    return [kwargs["ClientRequestToken"] for name, kwargs in recording.calls if name == "transact_write_items"]


def test_each_transaction_carries_a_client_request_token_of_its_own(dynamodb: Any) -> None:
    """DynamoDB answers a TransactWriteItems sent again with the same token as the success it was:
    an admission that landed though its answer was lost is then not read as a replay. Each call
    (admission, release) has its own token; so has each retry of a conflict, which changed nothing."""
    recording = Recording(dynamodb)
    ledger = Ledger(recording, TABLE)
    admit(ledger, "r1", limit=10)
    ledger.release("r1", group="gold", user="user-1", output_type="report", units=1, window="2026-11")
    admit(ledger, "r2", limit=10)
    conflicting = Recording(Conflicting(dynamodb, conflicts=2))
    admit(Ledger(conflicting, TABLE, sleep=Sleeps()), "r3", limit=10)
    sent = tokens(recording) + tokens(conflicting)
    assert len(sent) == 6  # three calls, and the last one's two conflicts before it (three sent)
    assert len(set(sent)) == len(sent)
    assert all(1 <= len(token) <= 36 for token in sent)  # DynamoDB's bounds for a token


class KeepsTokens:
    """moto's DynamoDB (which ignores ClientRequestToken) with DynamoDB's documented idempotency: a
    TransactWriteItems sent again with the token of one that succeeded succeeds without changing
    anything; one with that token and other items is an IdempotentParameterMismatchException."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._succeeded: dict[str, Any] = {}

    def transact_write_items(self, **kwargs: Any) -> Any:
        token = kwargs.get("ClientRequestToken")
        if token is not None and token in self._succeeded:
            if self._succeeded[token] != kwargs["TransactItems"]:
                error = {"Error": {"Code": "IdempotentParameterMismatchException", "Message": "other items"}}
                raise ClientError(error, "TransactWriteItems")
            return {}
        answer = self._client.transact_write_items(**kwargs)
        if token is not None:
            self._succeeded[token] = kwargs["TransactItems"]
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class SentAgainAfterLanding:
    """A client whose transactions land and are then sent again, as they are (botocore's retry of
    a call whose first answer was lost: a read timeout, a 500): the caller sees the second answer."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def transact_write_items(self, **kwargs: Any) -> Any:
        self._client.transact_write_items(**kwargs)
        return self._client.transact_write_items(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_an_admission_sent_again_after_it_landed_is_admitted_not_replayed(dynamodb: Any) -> None:
    """Read as a replay, it would be answered 409 "nothing was counted again" while its unit stays
    held until the sweeper's bound. A release sent again after it landed still says it released."""
    ledger = Ledger(SentAgainAfterLanding(KeepsTokens(dynamodb)), TABLE)
    admission = admit(ledger, "r1", limit=10, units=2)
    assert (admission.replayed, admission.used) == (False, 2)
    assert (ledger.record("r1", group="gold", user="user-1") or {})["status"] == {"S": "admitted"}
    assert ledger.release("r1", group="gold", user="user-1", output_type="report", units=2, window="2026-11")
    assert ledger.usage("gold", {"report": (10, "MONTH")}, NOW)[0].used == 0


def test_the_same_token_with_other_items_is_refused_by_the_fake_as_by_dynamodb(dynamodb: Any) -> None:
    """The fake above keeps DynamoDB's rule (so the test before it cannot pass by a fake that
    answers every token alike)."""
    client = KeepsTokens(dynamodb)
    put = {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "x"}}}}
    client.transact_write_items(TransactItems=[put], ClientRequestToken="t")
    client.transact_write_items(TransactItems=[put], ClientRequestToken="t")
    with pytest.raises(ClientError, match="IdempotentParameterMismatch"):
        client.transact_write_items(
            TransactItems=[{"Put": {**put["Put"], "Item": {"pk": {"S": "y"}}}}], ClientRequestToken="t"
        )


class AnswerLost:
    """A raw HTTP answer (botocore reads its body through ``stream``)."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def test_botocore_sends_a_transaction_again_with_the_same_token(dynamodb: Any) -> None:
    """What the token rests on, with botocore's own retry: the admission's first attempt lands (moto
    applies it) and its answer is replaced by a 500; botocore sends the call again carrying the very
    token the first attempt did. (moto ignores tokens, so what it answers the second attempt is not
    DynamoDB's answer: the outcome is the test above's.)"""
    from botocore.awsrequest import AWSResponse

    sent: list[str] = []

    def first_answer_lost(request: Any, **_: Any) -> AWSResponse | None:
        sent.append(json.loads(request.body)["ClientRequestToken"])
        if len(sent) > 1:
            return None  # moto's answer
        body = b'{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"lost"}'
        return AWSResponse(request.url, 500, {}, AnswerLost(body))

    event = "before-send.dynamodb.TransactWriteItems"
    dynamodb.meta.events.register_first(event, first_answer_lost)
    try:
        admit(Ledger(dynamodb, TABLE), "r1", limit=10)
    finally:
        dynamodb.meta.events.unregister(event, first_answer_lost)
    assert len(sent) == 2
    assert sent[0] == sent[1]
