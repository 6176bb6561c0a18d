"""The ledger's pending index: admit writes it, deliver and release remove it, the sweeper reads it;
release's condition settles a sweeper's release racing a delivery (exactly one wins)."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ai_gateway.ledger import (
    PENDING_INDEX,
    PENDING_KEY,
    PENDING_SHARDS,
    PENDING_SORT_KEY,
    Ledger,
    Pending,
    pending_shard,
)
from tests.lambdas.gateway_fixtures import TABLE, ledger_table

NOW = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield ledger_table()


@pytest.fixture
def ledger(dynamodb: Any) -> Ledger:
    return Ledger(dynamodb, TABLE)


def admit(ledger: Ledger, request_id: str, *, units: int = 2, limit: int = 10, now: dt.datetime = NOW) -> Any:
    return ledger.admit(
        request_id=request_id,
        group="gold",
        user="user-1",
        output_type="report",
        units=units,
        limit=limit,
        period="MONTH",
        unit_price_usd=0.5,
        now=now,
    )


def release(ledger: Ledger, request_id: str, units: int = 2) -> bool:
    return ledger.release(request_id, group="gold", user="user-1", output_type="report", units=units, window="2026-11")


def deliver(ledger: Ledger, request_id: str) -> None:
    ledger.deliver(request_id, group="gold", user="user-1", model="m", input_tokens=1, output_tokens=2)


def used(dynamodb: Any) -> int:
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "QUOTA#gold#report#2026-11"}})["Item"]
    return int(item["used"]["N"])


def status(ledger: Ledger, request_id: str) -> tuple[str, bool]:
    record = ledger.record(request_id, group="gold", user="user-1")
    assert record is not None
    return record["status"]["S"], PENDING_KEY in record or PENDING_SORT_KEY in record


def test_an_admission_is_pending_with_what_a_release_needs(ledger: Ledger) -> None:
    admit(ledger, "r1", units=3)
    assert ledger.pending(admitted_before=LATER, limit=10) == [
        Pending("r1", "gold", "user-1", "report", 3, "2026-11", NOW.isoformat())
    ]


def test_pending_lists_only_admissions_strictly_before_the_bound(ledger: Ledger) -> None:
    admit(ledger, "old", now=NOW - dt.timedelta(seconds=1))
    admit(ledger, "edge", now=NOW)
    admit(ledger, "new", now=NOW + dt.timedelta(seconds=1))
    assert [p.request_id for p in ledger.pending(admitted_before=NOW, limit=10)] == ["old"]
    # The bound is compared in UTC whatever zone it is given in.
    eastern = dt.timezone(dt.timedelta(hours=-5))
    in_eastern = (NOW + dt.timedelta(seconds=1)).astimezone(eastern)
    assert sorted(p.request_id for p in ledger.pending(admitted_before=in_eastern, limit=10)) == ["edge", "old"]


def test_deliver_and_release_take_a_request_out_of_the_pending_index(ledger: Ledger) -> None:
    admit(ledger, "delivered")
    admit(ledger, "released")
    admit(ledger, "open")
    deliver(ledger, "delivered")
    assert release(ledger, "released") is True
    assert status(ledger, "delivered") == ("delivered", False)
    assert status(ledger, "released") == ("released", False)
    assert status(ledger, "open") == ("admitted", True)
    assert [p.request_id for p in ledger.pending(admitted_before=LATER, limit=10)] == ["open"]


def test_readmission_after_a_release_is_pending_again(ledger: Ledger) -> None:
    admit(ledger, "r1")
    release(ledger, "r1")
    admit(ledger, "r1", now=NOW + dt.timedelta(minutes=1))
    assert ledger.pending(admitted_before=LATER, limit=10) == [
        Pending("r1", "gold", "user-1", "report", 2, "2026-11", (NOW + dt.timedelta(minutes=1)).isoformat())
    ]


def test_release_says_whether_it_gave_units_back(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "r1")
    assert used(dynamodb) == 2
    assert release(ledger, "r1") is True
    assert used(dynamodb) == 0
    assert release(ledger, "r1") is False  # once only
    assert used(dynamodb) == 0


def test_a_sweepers_release_before_the_delivery_wins_and_the_delivery_fails(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "r1")
    assert release(ledger, "r1") is True
    with pytest.raises(ClientError) as raised:
        deliver(ledger, "r1")
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert status(ledger, "r1") == ("released", False)
    assert used(dynamodb) == 0
    record = ledger.record("r1", group="gold", user="user-1")
    assert record is not None
    assert "model" not in record


def test_a_delivery_before_the_sweepers_release_wins_and_nothing_is_given_back(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "r1")
    deliver(ledger, "r1")
    assert release(ledger, "r1") is False
    assert status(ledger, "r1") == ("delivered", False)
    assert used(dynamodb) == 2


def test_pending_stops_at_the_limit_across_shards(ledger: Ledger) -> None:
    ids = [f"r{n}" for n in range(12)]
    for n, request_id in enumerate(ids):
        admit(ledger, request_id, units=1, limit=100, now=NOW + dt.timedelta(seconds=n))
    shards = {pending_shard(f"REQ#gold#user-1#{r}") for r in ids}
    assert len(shards) > 1  # the ids above land on several shards, so the limit spans shards
    page = ledger.pending(admitted_before=LATER, limit=5)
    assert len(page) == 5
    assert len({p.request_id for p in page}) == 5
    assert sorted(p.request_id for p in ledger.pending(admitted_before=LATER, limit=100)) == sorted(ids)
    assert ledger.pending(admitted_before=LATER, limit=0) == []


def test_pending_shards_are_stable_labels_within_range() -> None:
    labels = {pending_shard(f"REQ#g#u#{n}") for n in range(400)}
    assert labels == {f"PENDING#{n}" for n in range(PENDING_SHARDS)}
    assert pending_shard("REQ#g#u#1") == pending_shard("REQ#g#u#1")


class CountingClient:
    """A DynamoDB client that records the pending queries it passes on."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.queries: list[dict[str, Any]] = []

    def query(self, **kwargs: Any) -> Any:
        self.queries.append(kwargs)
        return self._client.query(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_pending_asks_each_shard_only_for_what_is_still_wanted(dynamodb: Any) -> None:
    counting = CountingClient(dynamodb)
    ledger = Ledger(counting, TABLE)
    for n in range(12):
        admit(ledger, f"r{n}", units=1, limit=100)
    ledger.pending(admitted_before=LATER, limit=3)
    limits = [q["Limit"] for q in counting.queries]
    assert limits[0] == 3
    assert all(a >= b for a, b in itertools.pairwise(limits))  # what is left, never more
    assert all(q["IndexName"] == PENDING_INDEX for q in counting.queries)
    assert len(counting.queries) <= PENDING_SHARDS


def test_the_pending_index_is_written_and_read_in_utc_whatever_the_hosts_time_zone(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    eastern = dt.timezone(dt.timedelta(hours=-5))
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        admit(ledger, "r1", now=NOW.astimezone(eastern))
        # Bounds a second after and a second before, given in another zone: right only if both
        # sides are compared as UTC text (in Tokyo's, the earlier bound would sort after it).
        after = ledger.pending(admitted_before=(NOW + dt.timedelta(seconds=1)).astimezone(eastern), limit=10)
        before = ledger.pending(admitted_before=(NOW - dt.timedelta(seconds=1)).astimezone(eastern), limit=10)
    finally:
        monkeypatch.undo()
        time.tzset()
    assert [(p.request_id, p.admitted_at) for p in after] == [("r1", "2026-11-29T18:30:00+00:00")]
    assert before == []


# --- records the sweeper cannot read ---------------------------------------------------------------


def indexed(dynamodb: Any, name: str, at: dt.datetime, **changes: Any) -> None:
    """An admitted record in the first pending shard, written as admit writes it but with
    ``changes`` (an attribute set to None is left out): what an older or hand-edited record holds."""
    item = {
        "pk": {"S": f"REQ#gold#user-1#{name}"},
        "request_id": {"S": name},
        "group": {"S": "gold"},
        "user": {"S": "user-1"},
        "output_type": {"S": "report"},
        "units": {"N": "2"},
        "window": {"S": "2026-11"},
        "status": {"S": "admitted"},
        PENDING_KEY: {"S": "PENDING#0"},
        PENDING_SORT_KEY: {"S": at.isoformat()},
    }
    item.update(changes)
    dynamodb.put_item(TableName=TABLE, Item={k: v for k, v in item.items() if v is not None})


def test_a_shard_is_read_on_past_a_page_of_unreadable_records_and_each_is_named(ledger: Ledger, dynamodb: Any) -> None:
    """Unreadable records stay in the index, oldest first: a limit of two fills a page with them,
    and the request admitted after them is still found on the next page."""
    indexed(dynamodb, "bad-units", NOW, units={"N": "0"})
    indexed(dynamodb, "bad-window", NOW + dt.timedelta(seconds=1), window=None)
    indexed(dynamodb, "bad-user", NOW + dt.timedelta(seconds=2), user={"N": "7"})
    indexed(dynamodb, "sound", NOW + dt.timedelta(seconds=3))
    problems: list[str] = []
    found = ledger.pending(admitted_before=LATER, limit=2, unreadable=problems.append)
    assert found == [
        Pending("sound", "gold", "user-1", "report", 2, "2026-11", (NOW + dt.timedelta(seconds=3)).isoformat())
    ]
    assert problems == ["units: not a whole number above 0", "window: not a string", "user: not a string"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"request_id": None}, "request_id: not a string"),
        ({"request_id": {"N": "1"}}, "request_id: not a string"),
        ({"output_type": {"NULL": True}}, "output_type: not a string"),
        ({"units": None}, "units: not a whole number above 0"),
        ({"units": {"S": "2"}}, "units: not a whole number above 0"),
        ({"units": {"N": "0"}}, "units: not a whole number above 0"),
        ({"units": {"N": "-2"}}, "units: not a whole number above 0"),
        ({"units": {"N": "2.5"}}, "units: not a whole number above 0"),
        ({"units": {"N": "1" + "0" * 18}}, "units: not a whole number above 0"),  # 19 digits
    ],
)
def test_a_record_missing_an_attribute_or_holding_another_type_is_named_not_raised(
    ledger: Ledger, dynamodb: Any, change: dict[str, Any], problem: str
) -> None:
    indexed(dynamodb, "odd", NOW, **change)
    problems: list[str] = []
    assert ledger.pending(admitted_before=LATER, limit=10, unreadable=problems.append) == []
    assert problems == [problem]


def test_units_of_up_to_eighteen_digits_are_read(ledger: Ledger, dynamodb: Any) -> None:
    largest = "9" * 18
    indexed(dynamodb, "large", NOW, units={"N": largest})
    problems: list[str] = []
    (found,) = ledger.pending(admitted_before=LATER, limit=10, unreadable=problems.append)
    assert (found.units, problems) == (int(largest), [])


# --- a stale listing (sweeper runs that overlap) ------------------------------------------------------


def test_a_stale_listing_neither_releases_nor_settles_the_request_admitted_again_under_its_id(
    ledger: Ledger, dynamodb: Any
) -> None:
    """A sweeper run lists a dead request; another run releases it; the client's retry admits it
    again under its id (a live request). The first run's listing names the old admission: its
    release gives nothing back, and the live request is delivered as usual."""
    admit(ledger, "r1")
    (listed,) = ledger.pending(admitted_before=LATER, limit=10)
    assert release(ledger, "r1") is True  # the other run
    assert admit(ledger, "r1", now=LATER).replayed is False  # the retry, live
    stale = ledger.release(
        listed.request_id,
        group=listed.group,
        user=listed.user,
        output_type=listed.output_type,
        units=listed.units,
        window=listed.window,
        admitted_at=listed.admitted_at,
    )
    assert stale is False
    assert (status(ledger, "r1"), used(dynamodb)) == (("admitted", True), 2)
    ledger.begin_delivery("r1", group="gold", user="user-1")  # a live stream's text leaving
    assert ledger.settle_delivering(listed) is False
    assert status(ledger, "r1") == ("delivering", True)
    deliver(ledger, "r1")
    assert (status(ledger, "r1"), used(dynamodb)) == (("delivered", False), 2)


def test_a_listing_of_the_admission_itself_still_releases_it(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "r1")
    (listed,) = ledger.pending(admitted_before=LATER, limit=10)
    assert ledger.release(
        "r1",
        group="gold",
        user="user-1",
        output_type="report",
        units=2,
        window="2026-11",
        admitted_at=listed.admitted_at,
    )
    assert (status(ledger, "r1"), used(dynamodb)) == (("released", False), 0)
