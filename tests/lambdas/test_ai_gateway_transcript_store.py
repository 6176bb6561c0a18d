"""A session's guarded transcript (lambdas/ai_gateway/transcript.py) against moto's DynamoDB:
what is stored (digests and masked text, never the client's raw text), whose it is, when it is
usable, and how a write is bounded and ordered. DynamoDB failures through botocore's Stubber."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ai_gateway.models import Caller
from ai_gateway.transcript import KEY, MAX_ITEM_BYTES, SALT_BYTES, TTL_ATTRIBUTE, Draft, Known, Transcripts
from shared.aws_errors import UpstreamError

TABLE = "transcripts"
GUARDRAIL = "g:1"
TTL_SECONDS = 3600
SESSION = "conv-1"
CALLER = Caller(user="user-1", group="gold")
EMAIL = "alice@example.com"
RAW = f"Write to me at {EMAIL}"
MASKED = "Write to me at {EMAIL}"
SYSTEM = "You are a careful assistant."


class Clock:
    """The store's ``now``, advanced by the test (never slept)."""

    def __init__(self) -> None:
        self.at = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += dt.timedelta(seconds=seconds)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        # As stacks/production/gateway.py builds it: one string hash key.
        client.create_table(
            TableName=TABLE,
            AttributeDefinitions=[{"AttributeName": KEY, "AttributeType": "S"}],
            KeySchema=[{"AttributeName": KEY, "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(dynamodb: Any, clock: Clock) -> Transcripts:
    return Transcripts(dynamodb, TABLE, guardrail=GUARDRAIL, ttl_seconds=TTL_SECONDS, now=clock)


# A turn as the flow writes it: the system text went through as sent, the user's was masked.
TURNS = [("user", SYSTEM, SYSTEM), ("user", RAW, MASKED), ("assistant", "Noted.", "Noted.")]


def raw_item(client: Any, conversation: str = SESSION) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName=TABLE, Key={KEY: {"S": conversation}})["Item"]
    return item


def written(store: Transcripts, conversation: str = SESSION, turns: Any = TURNS) -> Known:
    """The session's transcript after one written turn, read back."""
    assert store.write(conversation, CALLER, store.read(conversation, CALLER), turns) is True
    return store.read(conversation, CALLER)


def assert_nothing_usable(known: Known) -> None:
    assert known.entries == {}
    assert len(known.salt) == SALT_BYTES
    for role, sent, _ in TURNS:
        assert known.screened(role, sent) is None


# --- what is stored and read back ---------------------------------------------------------------


def test_a_written_turn_reads_back_masked_where_masked_and_as_sent_otherwise(store: Transcripts) -> None:
    known = written(store)
    assert known.version == 1
    assert known.screened("user", RAW) == MASKED
    assert known.screened("user", SYSTEM) == SYSTEM
    assert known.screened("assistant", "Noted.") == "Noted."
    assert known.screened("user", "Something never said") is None
    # The same text under another role is another text.
    assert known.screened("assistant", RAW) is None
    assert known.screened("system", SYSTEM) is None
    assert len(known.entries) == 3


def test_an_absent_item_reads_as_empty_with_a_fresh_salt(store: Transcripts) -> None:
    first, second = store.read("never-written", CALLER), store.read("never-written", CALLER)
    assert (first.version, first.entries) == (0, {})
    assert len(first.salt) == SALT_BYTES
    assert first.salt != second.salt


def test_the_clients_raw_text_is_never_stored(store: Transcripts, dynamodb: Any) -> None:
    known = written(store)
    (item,) = dynamodb.scan(TableName=TABLE)["Items"]
    stored = repr(item)
    assert EMAIL not in stored
    assert SYSTEM not in stored  # a text that went through as sent is stored as its digest only
    assert "Noted." not in stored
    assert MASKED in stored
    assert set(item) == {KEY, "group", "user", "guardrail", "salt", "version", TTL_ATTRIBUTE, "same", "masked"}
    assert item["masked"]["M"] == {known.digest("user", RAW): {"S": MASKED}}
    assert sorted(item["same"]["SS"]) == sorted([known.digest("user", SYSTEM), known.digest("assistant", "Noted.")])
    assert all(len(d) == 64 and int(d, 16) >= 0 for d in [*item["same"]["SS"], *item["masked"]["M"]])
    assert item[TTL_ATTRIBUTE]["N"] == str(int(store._now().timestamp()) + TTL_SECONDS)


def test_each_session_has_its_own_salt_so_the_same_text_has_another_digest(store: Transcripts, dynamodb: Any) -> None:
    written(store, "conv-a")
    written(store, "conv-b")
    a, b = raw_item(dynamodb, "conv-a"), raw_item(dynamodb, "conv-b")
    assert len(a["salt"]["B"]) == SALT_BYTES
    assert len(b["salt"]["B"]) == SALT_BYTES
    assert a["salt"]["B"] != b["salt"]["B"]
    assert set(a["masked"]["M"]).isdisjoint(b["masked"]["M"])
    assert set(a["same"]["SS"]).isdisjoint(b["same"]["SS"])
    known_a, known_b = store.read("conv-a", CALLER), store.read("conv-b", CALLER)
    assert known_a.digest("user", RAW) != known_b.digest("user", RAW)
    assert known_a.screened("user", RAW) == known_b.screened("user", RAW) == MASKED


# --- whose, under which guardrail, until when --------------------------------------------------


@pytest.mark.parametrize(
    "reader", [Caller(user="user-1", group="silver"), Caller(user="user-2", group="gold")], ids=["group", "user"]
)
def test_another_callers_item_reads_as_empty(store: Transcripts, reader: Caller) -> None:
    written(store)
    known = store.read(SESSION, reader)
    assert known.version == 0
    assert_nothing_usable(known)


def test_an_item_checked_by_another_guardrail_version_reads_as_empty(
    store: Transcripts, dynamodb: Any, clock: Clock
) -> None:
    stored = written(store)
    other = Transcripts(dynamodb, TABLE, guardrail="g:2", ttl_seconds=TTL_SECONDS, now=clock)
    known = other.read(SESSION, CALLER)
    assert_nothing_usable(known)
    assert known.salt != stored.salt
    assert store.read(SESSION, CALLER).screened("user", RAW) == MASKED  # still the first guardrail's


def test_an_item_past_its_expiry_reads_as_empty(store: Transcripts, clock: Clock) -> None:
    written(store)
    clock.advance(TTL_SECONDS - 1)
    assert store.read(SESSION, CALLER).screened("user", RAW) == MASKED
    clock.advance(1)  # DynamoDB deletes an expired item later: until then it is ignored
    assert_nothing_usable(store.read(SESSION, CALLER))


def test_a_turn_after_a_guardrail_change_starts_a_new_transcript(
    store: Transcripts, dynamodb: Any, clock: Clock
) -> None:
    """The new guardrail checks everything once, then its own transcript spares the next turn."""
    written(store)
    other = Transcripts(dynamodb, TABLE, guardrail="g:2", ttl_seconds=TTL_SECONDS, now=clock)
    assert other.write(SESSION, CALLER, other.read(SESSION, CALLER), TURNS) is True
    assert other.read(SESSION, CALLER).screened("user", RAW) == MASKED


def test_a_session_continued_after_its_item_expired_starts_a_new_transcript(store: Transcripts, clock: Clock) -> None:
    """DynamoDB deletes expired items days later at most: the next turn must not wait for that."""
    written(store)
    clock.advance(TTL_SECONDS + 60)
    assert store.write(SESSION, CALLER, store.read(SESSION, CALLER), TURNS) is True
    assert store.read(SESSION, CALLER).screened("user", RAW) == MASKED


# --- malformed items ----------------------------------------------------------------------------


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda item: item.pop(name)


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda item: item.__setitem__(name, value)


def _masked_value(value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(item: dict[str, Any]) -> None:
        for digest in item["masked"]["M"]:
            item["masked"]["M"][digest] = value

    return mutate


MALFORMED: dict[str, Callable[[dict[str, Any]], None]] = {
    "no salt": _drop("salt"),
    "short salt": _set("salt", {"B": b"x" * (SALT_BYTES - 1)}),
    "long salt": _set("salt", {"B": b"x" * (SALT_BYTES + 1)}),
    "salt as a string": _set("salt", {"S": "x" * SALT_BYTES}),
    "version 0": _set("version", {"N": "0"}),
    "negative version": _set("version", {"N": "-3"}),
    "version as a string": _set("version", {"S": "1"}),
    "no version": _drop("version"),
    "same as a string": _set("same", {"S": "not a set"}),
    "same as numbers": _set("same", {"NS": ["1", "2"]}),
    "masked as a string": _set("masked", {"S": MASKED}),
    "masked value a number": _masked_value({"N": "1"}),
    "masked value null": _masked_value({"NULL": True}),
    "masked value a list": _masked_value({"L": [{"S": MASKED}]}),
    "ttl a string": _set(TTL_ATTRIBUTE, {"S": "tomorrow"}),
    "ttl a fraction": _set(TTL_ATTRIBUTE, {"N": "1.5"}),
    "no ttl": _drop(TTL_ATTRIBUTE),
    "no guardrail": _drop("guardrail"),
    "group as a number": _set("group", {"N": "1"}),
    "no user": _drop("user"),
}


@pytest.mark.parametrize("mutate", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_item_reads_as_empty_and_never_raises(
    store: Transcripts, dynamodb: Any, mutate: Callable[[dict[str, Any]], None]
) -> None:
    written(store)
    item = raw_item(dynamodb)
    mutate(item)
    dynamodb.put_item(TableName=TABLE, Item=item)
    assert_nothing_usable(store.read(SESSION, CALLER))


def test_the_unmutated_item_of_the_malformed_cases_is_usable(store: Transcripts, dynamodb: Any) -> None:
    """The control for the cases above: the same item put back as it was reads in full."""
    written(store)
    dynamodb.put_item(TableName=TABLE, Item=raw_item(dynamodb))
    assert store.read(SESSION, CALLER).screened("user", RAW) == MASKED


# --- writes: over the version read, bounded -----------------------------------------------------


def test_of_two_writers_that_read_the_same_version_the_first_wins(store: Transcripts) -> None:
    written(store)
    first, second = store.read(SESSION, CALLER), store.read(SESSION, CALLER)
    assert first.version == second.version == 1
    assert store.write(SESSION, CALLER, first, [("user", "first", "first")]) is True
    assert store.write(SESSION, CALLER, second, [("user", "second", "second")]) is False
    known = store.read(SESSION, CALLER)
    assert known.version == 2
    assert known.screened("user", "first") == "first"
    assert known.screened("user", "second") is None
    # Each turn rewrites the item with its own texts only.
    assert known.screened("user", RAW) is None
    # A write after a fresh read goes through, one version on.
    assert store.write(SESSION, CALLER, known, [("user", "second", "second")]) is True
    again = store.read(SESSION, CALLER)
    assert again.version == 3
    assert again.screened("user", "second") == "second"


def test_of_two_writers_that_found_no_item_only_the_first_creates_it(store: Transcripts) -> None:
    first, second = store.read(SESSION, CALLER), store.read(SESSION, CALLER)
    assert store.write(SESSION, CALLER, first, [("user", "first", "first")]) is True
    assert store.write(SESSION, CALLER, second, [("user", "second", "second")]) is False
    known = store.read(SESSION, CALLER)
    assert (known.version, known.salt) == (1, first.salt)
    assert known.screened("user", "first") == "first"
    assert known.screened("user", "second") is None


def _turns_of_size(masked: str) -> list[tuple[str, str, str]]:
    """One masked turn and the answer: two digests (64 bytes each) and the masked text's bytes."""
    return [("user", RAW, masked), ("assistant", "ok", "ok")]


def test_a_write_at_the_size_cap_is_stored(store: Transcripts) -> None:
    masked = "x" * (MAX_ITEM_BYTES - 2 * 64)
    assert store.write(SESSION, CALLER, store.read(SESSION, CALLER), _turns_of_size(masked)) is True
    assert store.read(SESSION, CALLER).screened("user", RAW) == masked


@pytest.mark.parametrize(
    "masked",
    [
        "x" * (MAX_ITEM_BYTES - 2 * 64 + 1),  # one byte over
        # Fewer characters than the cap, three times as many bytes.
        "\u20ac" * (MAX_ITEM_BYTES // 3 + 1),
        "\U0001f600" * (MAX_ITEM_BYTES // 4 + 1),
    ],
    ids=["ascii", "euro", "emoji"],
)
def test_a_write_over_the_size_cap_is_skipped_and_the_item_kept(store: Transcripts, dynamodb: Any, masked: str) -> None:
    assert len(masked) <= MAX_ITEM_BYTES
    written(store)
    before = raw_item(dynamodb)
    known = store.read(SESSION, CALLER)
    assert store.write(SESSION, CALLER, known, _turns_of_size(masked)) is False
    assert raw_item(dynamodb) == before
    assert store.read(SESSION, CALLER).version == 1


def test_draft_save_stores_the_answer_as_delivered(store: Transcripts) -> None:
    known = store.read(SESSION, CALLER)
    draft = Draft(store, SESSION, CALLER, known, (("user", RAW, MASKED),))
    answer = "Here is the answer, as the output guardrail let it through."
    assert draft.save(answer) is True
    after = store.read(SESSION, CALLER)
    assert after.screened("assistant", answer) == answer
    assert after.screened("user", RAW) == MASKED
    assert after.screened("user", answer) is None  # stored under the assistant's role only
    assert len(after.entries) == 2


# --- DynamoDB failures --------------------------------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[Transcripts, Stubber]]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield Transcripts(client, TABLE, guardrail=GUARDRAIL, ttl_seconds=TTL_SECONDS, now=Clock()), stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("code", "status", "throttled"),
    [("ProvisionedThroughputExceededException", 400, True), ("InternalServerError", 500, False)],
)
def test_a_failed_read_is_dynamodbs_upstream_error(
    stubbed: tuple[Transcripts, Stubber], code: str, status: int, throttled: bool
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=status)
    with pytest.raises(UpstreamError) as raised:
        store.read(SESSION, CALLER)
    assert (raised.value.service, raised.value.code, raised.value.throttled) == ("dynamodb", code, throttled)


@pytest.mark.parametrize(
    ("code", "status", "throttled"),
    [("ProvisionedThroughputExceededException", 400, True), ("InternalServerError", 500, False)],
)
def test_a_failed_write_is_dynamodbs_upstream_error(
    stubbed: tuple[Transcripts, Stubber], code: str, status: int, throttled: bool
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code=code, http_status_code=status)
    with pytest.raises(UpstreamError) as raised:
        store.write(SESSION, CALLER, Known.empty(), TURNS)
    assert (raised.value.service, raised.value.code, raised.value.throttled) == ("dynamodb", code, throttled)


def test_a_lost_race_reported_by_dynamodb_is_a_skipped_write(stubbed: tuple[Transcripts, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code="ConditionalCheckFailedException", http_status_code=400)
    assert store.write(SESSION, CALLER, Known.empty(), TURNS) is False
