"""The quota ledger against moto's DynamoDB: exact admission under concurrency, idempotency."""

from __future__ import annotations

import datetime as dt
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ai_gateway.ledger import Ledger, QuotaExceededError, Window
from tests.lambdas.gateway_fixtures import TABLE, ledger_table

NOW = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield ledger_table()


@pytest.fixture
def ledger(dynamodb: Any) -> Ledger:
    return Ledger(dynamodb, TABLE)


def admit(ledger: Ledger, request_id: str, *, limit: int = 100, units: int = 1, group: str = "gold") -> Any:
    return ledger.admit(
        request_id=request_id,
        group=group,
        user="user-1",
        output_type="report",
        units=units,
        limit=limit,
        period="MONTH",
        unit_price_usd=0.5,
        now=NOW,
    )


def test_windows_reset_at_the_next_utc_day_or_month() -> None:
    assert Window.containing(NOW, "DAY") == Window("2026-11-29", dt.datetime(2026, 11, 30, tzinfo=dt.UTC))
    assert Window.containing(NOW, "MONTH") == Window("2026-11", dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    december = dt.datetime(2026, 12, 31, 23, 59, tzinfo=dt.UTC)
    assert Window.containing(december, "MONTH").resets_at == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def test_admission_counts_units_and_writes_a_metering_record(ledger: Ledger) -> None:
    admission = admit(ledger, "r1", units=3, limit=10)
    assert (admission.used, admission.remaining, admission.replayed) == (3, 7, False)
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
    }


def test_a_replayed_request_id_adds_nothing(ledger: Ledger) -> None:
    admit(ledger, "r1", units=2, limit=10)
    for _ in range(5):
        again = admit(ledger, "r1", units=2, limit=10)
        assert again.replayed is True
    assert admit(ledger, "r2", units=1, limit=10).used == 3


def test_quota_refusal_says_what_is_left_and_when_it_resets(ledger: Ledger) -> None:
    admit(ledger, "r1", units=9, limit=10)
    with pytest.raises(QuotaExceededError) as refused:
        admit(ledger, "r2", units=2, limit=10)
    assert (refused.value.used, refused.value.remaining) == (9, 1)
    assert refused.value.resets_at == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    assert ledger.record("r2", group="gold", user="user-1") is None  # a refused request leaves no metering record
    assert admit(ledger, "r3", units=1, limit=10).remaining == 0


def test_more_units_than_the_limit_are_refused_outright(ledger: Ledger) -> None:
    with pytest.raises(QuotaExceededError):
        admit(ledger, "r1", units=11, limit=10)


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
    assert (record["status"]["S"], record["output_tokens"]["N"]) == ("delivered", "800")
    assert ledger.record("r1", group="gold", user="user-1")["status"]["S"] == "released"  # type: ignore[index]


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
    DynamoDB does when another transaction holds the same item."""

    def __init__(self, client: Any, conflicts: int, reasons: list[str] | None = None) -> None:
        self._client = client
        self.conflicts = conflicts
        self.reasons = reasons or ["None", "TransactionConflict"]

    def transact_write_items(self, **kwargs: Any) -> Any:
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


def test_a_transaction_conflict_on_the_counter_is_retried(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ai_gateway.ledger.time.sleep", lambda _: None)
    flaky = Conflicting(dynamodb, conflicts=2)
    admission = admit(Ledger(flaky, TABLE), "r1", limit=10)
    assert (admission.used, flaky.conflicts) == (1, 0)


def test_conflicts_that_outlast_the_retries_are_raised(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ai_gateway.ledger.time.sleep", lambda _: None)
    with pytest.raises(ClientError):
        admit(Ledger(Conflicting(dynamodb, conflicts=99), TABLE), "r1", limit=10)


def test_release_raises_unless_the_record_was_already_released(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ai_gateway.ledger.time.sleep", lambda _: None)
    ledger = Ledger(dynamodb, TABLE)
    admit(ledger, "r1", limit=10)
    failing = Ledger(Conflicting(dynamodb, conflicts=99, reasons=["None", "ThrottlingError"]), TABLE)
    with pytest.raises(ClientError):
        failing.release("r1", group="gold", user="user-1", output_type="report", units=1, window="2026-11")
    assert ledger.usage("gold", {"report": (10, "MONTH")}, NOW)[0].used == 1  # not silently lost
