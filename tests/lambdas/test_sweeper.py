"""The ledger sweeper against moto's DynamoDB (the ledger's table with its pending index): it
releases only what is older than the bound, once, never a delivered request, within its page."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ai_gateway import sweeper
from ai_gateway.jobs_contract import SWEEPER_PAGE_LIMIT, SWEEPER_SLACK_SECONDS, SweeperSettings
from ai_gateway.ledger import PENDING_KEY, PENDING_SHARDS, Ledger, Pending
from tests.lambdas.conftest import FakeContext
from tests.lambdas.gateway_fixtures import TABLE, ledger_table

NOW = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)
BOUND = 1200


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        yield ledger_table()


@pytest.fixture
def ledger(dynamodb: Any) -> Ledger:
    return Ledger(dynamodb, TABLE)


def admit(ledger: Ledger, request_id: str, *, age_seconds: float, units: int = 2, limit: int = 10) -> None:
    ledger.admit(
        request_id=request_id,
        group="gold",
        user="user-1",
        output_type="report",
        units=units,
        limit=limit,
        period="MONTH",
        unit_price_usd=0.5,
        now=NOW - dt.timedelta(seconds=age_seconds),
    )


def used(dynamodb: Any) -> int:
    item = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "QUOTA#gold#report#2026-11"}})["Item"]
    return int(item["used"]["N"])


def status(ledger: Ledger, request_id: str) -> str:
    record = ledger.record(request_id, group="gold", user="user-1")
    assert record is not None
    return str(record["status"]["S"])


def run(ledger: Ledger, page_limit: int = 100) -> sweeper.Sweep:
    return sweeper.sweep(ledger, now=NOW, bound_seconds=BOUND, page_limit=page_limit)


def test_releases_what_is_older_than_the_bound_and_nothing_younger(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "dead", age_seconds=BOUND + 1)
    admit(ledger, "at-bound", age_seconds=BOUND)
    admit(ledger, "alive", age_seconds=BOUND - 1)
    assert used(dynamodb) == 6
    assert run(ledger) == sweeper.Sweep(candidates=1, released=1, failed=0)
    assert status(ledger, "dead") == "released"
    assert status(ledger, "at-bound") == "admitted"
    assert status(ledger, "alive") == "admitted"
    assert used(dynamodb) == 4
    # A second run finds nothing left to release: units come back once.
    assert run(ledger) == sweeper.Sweep(candidates=0, released=0, failed=0)
    assert used(dynamodb) == 4


def test_never_releases_a_delivered_or_released_request(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "delivered", age_seconds=BOUND * 2)
    admit(ledger, "released", age_seconds=BOUND * 2)
    ledger.deliver("delivered", group="gold", user="user-1", model="m", input_tokens=1, output_tokens=1)
    ledger.release("released", group="gold", user="user-1", output_type="report", units=2, window="2026-11")
    assert run(ledger) == sweeper.Sweep(candidates=0, released=0, failed=0)
    assert status(ledger, "delivered") == "delivered"
    assert used(dynamodb) == 2


class DeliverFirst:
    """A ledger whose request is delivered between the sweeper's listing and its release (the index
    still lists it): the release's condition must fail."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def pending(self, **kwargs: Any) -> Any:
        listed = self._ledger.pending(**kwargs)
        for p in listed:
            self._ledger.deliver(p.request_id, group=p.group, user=p.user, model="m", input_tokens=1, output_tokens=1)
        return listed

    def release(self, *args: Any, **kwargs: Any) -> bool:
        return self._ledger.release(*args, **kwargs)

    def settle_delivering(self, *args: Any, **kwargs: Any) -> bool:
        return self._ledger.settle_delivering(*args, **kwargs)

    def unlist_settled(self, *args: Any, **kwargs: Any) -> bool:
        return self._ledger.unlist_settled(*args, **kwargs)


def test_a_delivery_racing_ahead_of_the_sweep_keeps_its_units(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "slow", age_seconds=BOUND + 60)
    result = sweeper.sweep(DeliverFirst(ledger), now=NOW, bound_seconds=BOUND, page_limit=10)  # type: ignore[arg-type]
    assert result == sweeper.Sweep(candidates=1, released=0, failed=0)
    assert status(ledger, "slow") == "delivered"
    assert used(dynamodb) == 2


def begin(ledger: Ledger, request_id: str) -> None:
    ledger.begin_delivery(request_id, group="gold", user="user-1")


def test_a_dead_stream_whose_text_had_left_is_settled_as_delivered_never_released(
    ledger: Ledger, dynamodb: Any
) -> None:
    admit(ledger, "streamed", age_seconds=BOUND + 1)
    begin(ledger, "streamed")
    admit(ledger, "streaming", age_seconds=BOUND - 1)  # alive: within the bound, left alone
    begin(ledger, "streaming")
    admit(ledger, "dead", age_seconds=BOUND + 2)
    assert run(ledger) == sweeper.Sweep(candidates=2, released=1, failed=0, settled=1)
    assert (status(ledger, "streamed"), status(ledger, "streaming"), status(ledger, "dead")) == (
        "delivered",
        "delivering",
        "released",
    )
    assert used(dynamodb) == 4  # the dead request's units back; the streams' kept
    # Settled once: the next run finds neither, and a late deliver of the stream still records it.
    assert run(ledger) == sweeper.Sweep(candidates=0, released=0, failed=0)
    record = ledger.record("streamed", group="gold", user="user-1") or {}
    assert record["settled_by"] == {"S": "sweeper"}


def test_a_delivering_request_is_never_released_by_anyone(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "streamed", age_seconds=10)
    begin(ledger, "streamed")
    assert not ledger.release("streamed", group="gold", user="user-1", output_type="report", units=2, window="2026-11")
    (listed,) = ledger.pending(admitted_before=NOW, limit=10)
    assert not ledger.unlist_settled(listed)  # not settled: it stays in the index for the sweeper
    assert (status(ledger, "streamed"), used(dynamodb)) == ("delivering", 2)
    # Its function lived: deliver records it, tokens and all, and takes it out of the index.
    ledger.deliver("streamed", group="gold", user="user-1", model="m", input_tokens=3, output_tokens=4)
    assert status(ledger, "streamed") == "delivered"
    assert ledger.pending(admitted_before=NOW, limit=10) == []
    assert not ledger.settle_delivering(listed)  # delivered already: nothing to settle


def test_only_an_admitted_request_begins_its_delivery(ledger: Ledger) -> None:
    admit(ledger, "released", age_seconds=10)
    ledger.release("released", group="gold", user="user-1", output_type="report", units=2, window="2026-11")
    for request_id in ("released", "never-admitted"):
        with pytest.raises(ClientError) as raised:
            begin(ledger, request_id)
        assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


SHARD_0 = {PENDING_KEY: {"S": "PENDING#0"}}  # one shard, read oldest first


def stuck(dynamodb: Any, request_id: str, **change: Any) -> None:
    """Hand-edit an admitted request's record: ``change``'s attributes set, its index keys kept."""
    names = {f"#{k}": k for k in change}
    dynamodb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"REQ#gold#user-1#{request_id}"}},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in change),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{k}": v for k, v in change.items()},
    )


def test_settled_requests_still_in_the_index_are_taken_out_and_cannot_hide_a_dead_one(
    ledger: Ledger, dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Records marked delivered by hand with their index keys left: the oldest in the index, each
    run's page would be theirs alone and the dead request behind them never released."""
    for n in range(3):
        admit(ledger, f"stuck-{n}", age_seconds=BOUND * 10)
        stuck(dynamodb, f"stuck-{n}", status={"S": "delivered"}, **SHARD_0)
    admit(ledger, "dead", age_seconds=BOUND * 2)
    stuck(dynamodb, "dead", **SHARD_0)  # behind them in the same shard
    assert used(dynamodb) == 8
    with caplog.at_level("WARNING"):
        assert run(ledger, page_limit=3) == sweeper.Sweep(candidates=3, released=0, failed=0, unlisted=3)
    assert [r.getMessage() for r in caplog.records].count(
        "a settled request was still in the pending index: taken out of it"
    ) == 3
    assert [status(ledger, f"stuck-{n}") for n in range(3)] == ["delivered"] * 3  # only unlisted
    assert run(ledger, page_limit=3) == sweeper.Sweep(candidates=1, released=1, failed=0)
    assert status(ledger, "dead") == "released"
    assert used(dynamodb) == 6  # the dead request's 2 units, and nothing for the delivered ones


def test_a_record_whose_key_is_not_its_attributes_is_never_released_and_hides_nothing(
    ledger: Ledger, dynamodb: Any
) -> None:
    """Released by its attributes, it would release another user's request (or none): it is an
    unreadable record, named on every run, and the sweep reads on past it."""
    admit(ledger, "edited", age_seconds=BOUND * 10)
    stuck(dynamodb, "edited", user={"S": "someone-else"}, **SHARD_0)
    admit(ledger, "dead", age_seconds=BOUND * 2)
    stuck(dynamodb, "dead", **SHARD_0)
    problems: list[str] = []
    ledger.pending(admitted_before=NOW, limit=10, unreadable=problems.append)
    assert problems == ["pk: not the key its group, user and request_id make"]
    assert run(ledger, page_limit=1) == sweeper.Sweep(candidates=2, released=1, failed=1)
    assert (status(ledger, "edited"), status(ledger, "dead")) == ("admitted", "released")
    assert used(dynamodb) == 2


def test_only_a_settled_request_is_taken_out_of_the_index(ledger: Ledger, dynamodb: Any) -> None:
    """unlist_settled's own guard: an admitted request stays listed (the sweeper must still see it),
    whatever a caller asks; a delivered one still listed is taken out, once."""
    admit(ledger, "alive", age_seconds=BOUND * 2)
    admit(ledger, "done", age_seconds=BOUND * 2)
    stuck(dynamodb, "done", status={"S": "delivered"})
    listed = {p.request_id: p for p in ledger.pending(admitted_before=NOW, limit=10)}
    assert ledger.unlist_settled(listed["alive"]) is False
    assert ledger.unlist_settled(listed["done"]) is True
    assert ledger.unlist_settled(listed["done"]) is False  # not listed anymore
    assert [p.request_id for p in ledger.pending(admitted_before=NOW, limit=10)] == ["alive"]
    assert (status(ledger, "alive"), status(ledger, "done")) == ("admitted", "delivered")


def test_a_delivery_after_the_sweep_fails_and_gives_nothing_back_twice(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "late", age_seconds=BOUND + 60)
    assert run(ledger).released == 1
    with pytest.raises(ClientError) as raised:
        ledger.deliver("late", group="gold", user="user-1", model="m", input_tokens=1, output_tokens=1)
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert status(ledger, "late") == "released"
    assert used(dynamodb) == 0


class StaleListing(Ledger):
    """The ledger, whose pending index answers with ``listed`` (what an overlapping run read
    before another run settled those requests)."""

    def __init__(self, client: Any, listed: list[Pending]) -> None:
        super().__init__(client, TABLE)
        self._listed = listed

    def pending(self, **_: Any) -> list[Pending]:
        return list(self._listed)


def test_a_run_with_a_stale_listing_leaves_the_request_admitted_again_under_its_id(
    ledger: Ledger, dynamodb: Any
) -> None:
    """Runs that overlap: both list a dead request, one releases it, the client's retry admits it
    again (live, within the bound); the other run, on its stale listing, must not give back the
    live request's units (its quota would be exceeded: they are charged on delivery)."""
    admit(ledger, "dead", age_seconds=BOUND + 1)
    listed = ledger.pending(admitted_before=NOW - dt.timedelta(seconds=BOUND), limit=10)
    assert run(ledger).released == 1  # run A
    admit(ledger, "dead", age_seconds=0)  # the retry: live
    assert run(StaleListing(dynamodb, listed)) == sweeper.Sweep(candidates=1, released=0, failed=0)  # run B
    assert (status(ledger, "dead"), used(dynamodb)) == ("admitted", 2)


def test_the_freed_units_admit_another_request_without_exceeding_the_quota(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "dead", age_seconds=BOUND + 1, units=5, limit=5)
    from ai_gateway.ledger import QuotaExceededError

    with pytest.raises(QuotaExceededError):
        admit(ledger, "blocked", age_seconds=0, units=5, limit=5)
    run(ledger)
    admit(ledger, "next", age_seconds=0, units=5, limit=5)
    assert used(dynamodb) == 5
    assert run(ledger).released == 0  # the new one is young
    assert used(dynamodb) == 5


def test_one_run_releases_at_most_its_page(ledger: Ledger, dynamodb: Any) -> None:
    for n in range(7):
        admit(ledger, f"dead-{n}", age_seconds=BOUND + 10 + n, units=1, limit=100)
    assert run(ledger, page_limit=3) == sweeper.Sweep(candidates=3, released=3, failed=0)
    assert used(dynamodb) == 4
    assert run(ledger, page_limit=3).released == 3
    assert run(ledger, page_limit=3) == sweeper.Sweep(candidates=1, released=1, failed=0)
    assert used(dynamodb) == 0


class FailingRelease:
    def __init__(self, ledger: Ledger, *failing: str) -> None:
        self._ledger = ledger
        self._failing = failing

    def pending(self, **kwargs: Any) -> Any:
        return self._ledger.pending(**kwargs)

    def release(self, request_id: str, **kwargs: Any) -> bool:
        if request_id in self._failing:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "TransactWriteItems")
        return self._ledger.release(request_id, **kwargs)


def test_a_release_that_fails_is_counted_and_the_rest_go_on(ledger: Ledger, dynamodb: Any) -> None:
    admit(ledger, "a", age_seconds=BOUND + 5)
    admit(ledger, "b", age_seconds=BOUND + 5)
    result = sweeper.sweep(FailingRelease(ledger, "a"), now=NOW, bound_seconds=BOUND, page_limit=10)  # type: ignore[arg-type]
    assert result == sweeper.Sweep(candidates=2, released=1, failed=1)
    assert status(ledger, "a") == "admitted"  # left for the next run
    assert status(ledger, "b") == "released"


def test_releases_that_fail_on_every_run_cannot_hide_the_other_shards_for_good(ledger: Ledger, dynamodb: Any) -> None:
    """A page filled with requests whose release is refused on every run (a hand-edited counter, a
    record the ledger's conditions never accept), oldest first in one shard: a run that starts at
    another shard reaches the dead request there. The handler starts each run at a random one."""
    for n in range(3):
        admit(ledger, f"refused-{n}", age_seconds=BOUND * 10)
        stuck(dynamodb, f"refused-{n}", **SHARD_0)
    admit(ledger, "dead", age_seconds=BOUND * 2)
    stuck(dynamodb, "dead", **{PENDING_KEY: {"S": "PENDING#7"}})
    refusing = FailingRelease(ledger, *(f"refused-{n}" for n in range(3)))
    result = sweeper.sweep(refusing, now=NOW, bound_seconds=BOUND, page_limit=3)  # type: ignore[arg-type]
    assert (result.failed, status(ledger, "dead")) == (3, "admitted")  # from shard 0: the page is theirs
    result = sweeper.sweep(refusing, now=NOW, bound_seconds=BOUND, page_limit=3, first_shard=7)  # type: ignore[arg-type]
    assert (result.released, status(ledger, "dead")) == (1, "released")
    assert ledger.pending(admitted_before=NOW, limit=10, first_shard=5)[-1].request_id == "refused-2"  # all read


def test_the_shards_are_read_from_the_first_one_on_in_order(ledger: Ledger, dynamodb: Any) -> None:
    """Shard 0 first unless told otherwise, then each next one, wrapping round: a page that is full
    ends the reading where it stops."""
    for name, shard in (("in-0", 0), ("in-1", 1), ("in-6", 6), ("in-7", 7)):
        admit(ledger, name, age_seconds=BOUND * 2)
        stuck(dynamodb, name, **{PENDING_KEY: {"S": f"PENDING#{shard}"}})
    assert [p.request_id for p in ledger.pending(admitted_before=NOW, limit=1)] == ["in-0"]
    assert [p.request_id for p in ledger.pending(admitted_before=NOW, limit=2, first_shard=7)] == ["in-7", "in-0"]
    assert [p.request_id for p in ledger.pending(admitted_before=NOW, limit=4, first_shard=1)] == [
        "in-1",
        "in-6",
        "in-7",
        "in-0",
    ]


def test_the_bound_is_the_longest_lifetime_plus_the_slack() -> None:
    settings = SweeperSettings(ledger_table="t", lifetimes_seconds=(29, 1229, 900))
    assert settings.bound_seconds == 1229 + SWEEPER_SLACK_SECONDS
    assert settings.page_limit == SWEEPER_PAGE_LIMIT
    with pytest.raises(ValueError, match="lifetimes_seconds"):
        SweeperSettings(ledger_table="t", lifetimes_seconds=())
    with pytest.raises(ValueError, match="slack_seconds"):
        SweeperSettings(ledger_table="t", lifetimes_seconds=(29,), slack_seconds=10)


def test_the_handler_sweeps_with_its_settings_and_emits_its_counts(
    ledger: Ledger, dynamodb: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = SweeperSettings(ledger_table=TABLE, lifetimes_seconds=(600, 900), slack_seconds=100, page_limit=5)
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    sweeper.settings.cache_clear()
    monkeypatch.setattr(sweeper, "ledger", lambda: ledger)
    monkeypatch.setattr(sweeper, "now", lambda: NOW)
    picked: list[int] = []

    def pick(shards: int) -> int:
        picked.append(shards)
        return 5

    monkeypatch.setattr(random, "randrange", pick)
    admit(ledger, "dead", age_seconds=1001)
    admit(ledger, "alive", age_seconds=999)  # within the bound of 900 + 100
    admit(ledger, "streamed", age_seconds=1002)
    begin(ledger, "streamed")
    capsys.readouterr()
    assert sweeper.lambda_handler({}, FakeContext()) == {"candidates": 2, "released": 1, "settled": 1, "failed": 0}
    assert picked == [PENDING_SHARDS]  # each run starts at a shard of its own
    sweeper.settings.cache_clear()
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    metrics = {
        m["Name"]: doc[m["Name"]]
        for doc in documents
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
        if doc.get("Function") == "LedgerSweeper"
    }
    assert metrics == {"SweptReleases": [1.0], "SweptCandidates": [2.0], "SweptSettlements": [1.0]}
    assert status(ledger, "alive") == "admitted"
