"""A session's guarded transcript (lambdas/ai_gateway/transcript.py) against moto's DynamoDB:
texts held by position (chained digests), what is stored (digests, masked text and an owner
digest, never the client's raw text or the caller's ids), whose it is, when it is usable, and how
a write is bounded and ordered. DynamoDB failures through botocore's Stubber."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ai_gateway.models import Caller
from ai_gateway.transcript import (
    ASSISTANT,
    KEY,
    MAX_ITEM_BYTES,
    SALT_BYTES,
    TTL_ATTRIBUTE,
    Draft,
    Known,
    Transcripts,
    Turn,
)
from shared.aws_errors import UpstreamError

TABLE = "transcripts"
GUARDRAIL = "g:1"
TTL_SECONDS = 3600
SESSION = "conv-1"
CALLER = Caller(user="user-1", group="gold")
OTHER_CALLERS = [Caller(user="user-1", group="silver"), Caller(user="user-2", group="gold")]
EMAIL = "alice@example.com"
RAW = f"Write to me at {EMAIL}"
MASKED = "Write to me at {EMAIL}"
ANSWER = "Noted, I will write to you."
FOLLOW_UP = "Thanks. What else do you need?"
DIGEST = 64  # hex characters of an HMAC-SHA256

# A turn as the flow writes it, (role, text sent, text as screened): the first text was masked,
# the other two went through as sent.
TURNS = [("user", RAW, MASKED), (ASSISTANT, ANSWER, ANSWER), ("user", FOLLOW_UP, FOLLOW_UP)]
SENT: list[Turn] = [(role, sent) for role, sent, _ in TURNS]
STORED = [MASKED, ANSWER, FOLLOW_UP]


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


def raw_item(client: Any, conversation: str = SESSION) -> dict[str, Any]:
    item: dict[str, Any] = client.get_item(TableName=TABLE, Key={KEY: {"S": conversation}})["Item"]
    return item


def written(store: Transcripts, conversation: str = SESSION, turns: Sequence[tuple[str, str, str]] = TURNS) -> Known:
    """The session's transcript after one written turn, read back."""
    assert store.write(conversation, CALLER, store.read(conversation, CALLER), turns) is True
    return store.read(conversation, CALLER)


def strings(value: Any) -> Iterator[str]:
    """Every string in a raw DynamoDB item: attribute names, map keys and values, set members."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from strings(inner)


def assert_nothing_usable(known: Known) -> None:
    assert known.entries == {}
    assert len(known.salt) == SALT_BYTES
    assert known.prefix(SENT) == []
    assert known.prefix(SENT[:1]) == []


# --- what is held, by position -------------------------------------------------------------------


def test_a_written_turn_reads_back_masked_where_masked_and_as_sent_otherwise(store: Transcripts) -> None:
    known = written(store)
    assert known.version == 1
    assert known.prefix(SENT) == STORED
    chain = known.chain(SENT)
    assert known.entries == {chain[0]: MASKED, chain[1]: None, chain[2]: None}


def test_each_text_is_chained_over_every_text_before_it() -> None:
    known = Known.empty()
    chain = known.chain(SENT)
    assert len(chain) == len(SENT) == len(set(chain))
    assert all(len(d) == DIGEST and set(d) <= set("0123456789abcdef") for d in chain)
    # A text's digest depends on what came before it, not on what follows.
    assert known.chain(SENT[:2]) == chain[:2]
    assert known.chain(SENT[1:])[0] != chain[1]
    assert known.chain([("user", "Another start"), SENT[1]])[1] != chain[1]
    # The same text at the same place under another role is another text.
    assert known.chain([(ASSISTANT, RAW)])[0] != chain[0]
    assert Known(salt=known.salt).chain(SENT) == chain  # the salt alone decides, not the instance


def test_the_chain_is_hmac_sha256_of_the_previous_digest_the_role_and_the_text() -> None:
    """The stored form, written independently: a change to it would leave every stored transcript
    unmatched (checked again once) after a deploy, so it changes only on purpose."""
    salt = bytes(range(SALT_BYTES))
    first = hmac.new(salt, f"\nuser\n{RAW}".encode(), hashlib.sha256).hexdigest()
    second = hmac.new(salt, f"{first}\n{ASSISTANT}\n{ANSWER}".encode(), hashlib.sha256).hexdigest()
    assert Known(salt=salt).chain(SENT[:2]) == [first, second]


PREFIXES: dict[str, tuple[list[Turn], list[str]]] = {
    "the same texts": (SENT, STORED),
    "the next turn after them": (
        [*SENT, (ASSISTANT, "Nothing else."), ("user", "Bye")],
        STORED,
    ),
    "the first two": (SENT[:2], STORED[:2]),
    "none": ([], []),
    "the last edited": ([*SENT[:2], ("user", "Thanks. Anything else?")], STORED[:2]),
    "the middle edited": ([SENT[0], (ASSISTANT, "Edited."), SENT[2]], STORED[:1]),
    "the first edited": ([("user", "Write to me"), *SENT[1:]], []),
    "the middle dropped": ([SENT[0], SENT[2]], STORED[:1]),
    "the first dropped": (SENT[1:], []),
    "one inserted before": ([("user", "Hello"), *SENT], []),
    "reordered": ([SENT[1], SENT[0], SENT[2]], []),
    "the first re-roled": ([(ASSISTANT, RAW), *SENT[1:]], []),
    "the middle re-roled": ([SENT[0], ("user", ANSWER), SENT[2]], STORED[:1]),
    "the masked text sent as masked": ([("user", MASKED), *SENT[1:]], []),
}


@pytest.mark.parametrize(("turns", "expected"), PREFIXES.values(), ids=PREFIXES.keys())
def test_the_prefix_is_the_leading_run_held_and_stops_at_the_first_text_not_held(
    store: Transcripts, turns: list[Turn], expected: list[str]
) -> None:
    """A text is held only at its position after the same history, under its role: whatever
    differs ends the match there, even where later texts are the same as stored."""
    known = written(store)
    assert known.prefix(turns) == expected


def test_an_absent_item_reads_as_empty_with_a_fresh_salt(store: Transcripts) -> None:
    first, second = store.read("never-written", CALLER), store.read("never-written", CALLER)
    assert (first.version, first.entries) == (0, {})
    assert len(first.salt) == SALT_BYTES
    assert first.salt != second.salt
    assert first.prefix(SENT) == []


# --- what is stored ------------------------------------------------------------------------------


def test_the_clients_raw_text_and_the_callers_ids_are_never_stored(store: Transcripts, dynamodb: Any) -> None:
    known = written(store)
    (item,) = dynamodb.scan(TableName=TABLE)["Items"]
    assert set(item) == {KEY, "owner", "guardrail", "salt", "version", TTL_ATTRIBUTE, "same", "masked"}
    chain = known.chain(SENT)
    assert item["masked"]["M"] == {chain[0]: {"S": MASKED}}
    assert sorted(item["same"]["SS"]) == sorted(chain[1:])
    assert item["salt"]["B"] == known.salt
    assert item["version"]["N"] == "1"
    assert item["guardrail"]["S"] == GUARDRAIL
    assert item[TTL_ATTRIBUTE]["N"] == str(int(store._now().timestamp()) + TTL_SECONDS)
    owner = item["owner"]["S"]
    assert owner == known.owner(CALLER)
    assert len(owner) == DIGEST
    assert set(owner) <= set("0123456789abcdef")
    assert all(owner != known.owner(other) for other in OTHER_CALLERS)
    stored = list(strings(item))
    assert MASKED in stored
    for secret in (EMAIL, ANSWER, FOLLOW_UP, CALLER.user, CALLER.group):
        assert not any(secret in text for text in stored), secret
    assert CALLER.user.encode() not in item["salt"]["B"]


@pytest.mark.parametrize(
    ("turns", "attributes"),
    [
        ([("user", "As sent", "As sent")], {"same"}),
        ([("user", RAW, MASKED)], {"masked"}),
        ([], set()),
    ],
    ids=["only as sent", "only masked", "no texts"],
)
def test_same_and_masked_are_stored_only_when_not_empty(
    store: Transcripts, dynamodb: Any, turns: list[tuple[str, str, str]], attributes: set[str]
) -> None:
    """DynamoDB refuses an empty set; an empty map would only cost bytes."""
    known = written(store, turns=turns)
    assert set(raw_item(dynamodb)) == {KEY, "owner", "guardrail", "salt", "version", TTL_ATTRIBUTE, *attributes}
    assert known.version == 1
    assert known.prefix([(role, sent) for role, sent, _ in turns]) == [screened for _, _, screened in turns]


def test_each_session_has_its_own_salt_so_the_same_turns_have_other_chains(store: Transcripts, dynamodb: Any) -> None:
    known_a, known_b = written(store, "conv-a"), written(store, "conv-b")
    a, b = raw_item(dynamodb, "conv-a"), raw_item(dynamodb, "conv-b")
    assert len(a["salt"]["B"]) == len(b["salt"]["B"]) == SALT_BYTES
    assert a["salt"]["B"] != b["salt"]["B"]
    assert set(a["masked"]["M"]).isdisjoint(b["masked"]["M"])
    assert set(a["same"]["SS"]).isdisjoint(b["same"]["SS"])
    assert set(known_a.chain(SENT)).isdisjoint(known_b.chain(SENT))
    # One caller's sessions cannot be linked by their owner either.
    assert a["owner"]["S"] != b["owner"]["S"]
    assert known_a.prefix(SENT) == known_b.prefix(SENT) == STORED
    # One session's digests mean nothing under another's salt.
    assert Known(salt=known_a.salt, version=1, entries=known_b.entries).prefix(SENT) == []


# --- whose, under which guardrail, until when ----------------------------------------------------


@pytest.mark.parametrize("reader", OTHER_CALLERS, ids=["group", "user"])
def test_another_callers_item_reads_as_empty(store: Transcripts, reader: Caller) -> None:
    stored = written(store)
    known = store.read(SESSION, reader)
    assert known.version == 0
    assert known.salt != stored.salt
    assert_nothing_usable(known)


@pytest.mark.parametrize("other", OTHER_CALLERS, ids=["group", "user"])
def test_another_caller_cannot_write_over_the_item(store: Transcripts, dynamodb: Any, other: Caller) -> None:
    """Its read found no item of its own (version 0), and the item that is there has a version: the
    condition refuses the write, so the first caller's transcript stays as it was."""
    written(store)
    before = raw_item(dynamodb)
    theirs = store.read(SESSION, other)
    assert store.write(SESSION, other, theirs, [("user", "Mine now", "Mine now")]) is False
    assert Draft(store, SESSION, other, theirs, (("user", "Mine now", "Mine now"),)).save() is False
    assert raw_item(dynamodb) == before
    assert store.read(SESSION, CALLER).prefix(SENT) == STORED
    assert_nothing_usable(store.read(SESSION, other))


def test_an_item_checked_by_another_guardrail_version_is_not_used_but_written_over(
    store: Transcripts, dynamodb: Any, clock: Clock
) -> None:
    """The new guardrail checks everything once; then its own transcript spares the next turn."""
    stored = written(store)
    other = Transcripts(dynamodb, TABLE, guardrail="g:2", ttl_seconds=TTL_SECONDS, now=clock)
    known = other.read(SESSION, CALLER)
    assert_nothing_usable(known)
    assert known.version == 1  # what the next write goes over
    assert known.salt != stored.salt
    assert store.read(SESSION, CALLER).prefix(SENT) == STORED  # still the first guardrail's
    assert other.write(SESSION, CALLER, known, TURNS) is True
    after = other.read(SESSION, CALLER)
    assert (after.version, after.salt) == (2, known.salt)
    assert after.prefix(SENT) == STORED
    assert raw_item(dynamodb)["guardrail"]["S"] == "g:2"
    assert_nothing_usable(store.read(SESSION, CALLER))  # the first guardrail's is gone


def test_an_item_past_its_expiry_is_not_used_but_written_over(store: Transcripts, dynamodb: Any, clock: Clock) -> None:
    """DynamoDB deletes an expired item later, days at most: until then it is ignored, and the
    session's next turn must not wait for the deletion."""
    written(store)
    clock.advance(TTL_SECONDS - 1)
    assert store.read(SESSION, CALLER).prefix(SENT) == STORED
    clock.advance(1)
    known = store.read(SESSION, CALLER)
    assert_nothing_usable(known)
    assert known.version == 1
    assert store.write(SESSION, CALLER, known, TURNS) is True
    after = store.read(SESSION, CALLER)
    assert after.version == 2
    assert after.prefix(SENT) == STORED
    assert raw_item(dynamodb)[TTL_ATTRIBUTE]["N"] == str(int(clock().timestamp()) + TTL_SECONDS)


# --- malformed items -----------------------------------------------------------------------------


def _drop(name: str) -> Callable[[dict[str, Any]], None]:
    return lambda item: item.pop(name)


def _set(name: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda item: item.__setitem__(name, value)


def _salted(salt: bytes) -> Callable[[dict[str, Any]], None]:
    """Another salt, with the owner signed under it: only the salt's length is wrong."""

    def mutate(item: dict[str, Any]) -> None:
        item["salt"] = {"B": salt}
        item["owner"] = {"S": Known(salt=salt).owner(CALLER)}

    return mutate


def _masked_value(value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(item: dict[str, Any]) -> None:
        for digest in item["masked"]["M"]:
            item["masked"]["M"][digest] = value

    return mutate


# Cases where whose the item is cannot be established (salt, owner or version unreadable): it is
# neither used nor written over, by anyone, until DynamoDB deletes it.
UNOWNED: dict[str, Callable[[dict[str, Any]], None]] = {
    "no salt": _drop("salt"),
    "salt as a string": _set("salt", {"S": "x" * SALT_BYTES}),
    "another salt, owner not signed under it": _set("salt", {"B": b"x" * SALT_BYTES}),
    "short salt, owner not signed under it": _set("salt", {"B": b"x" * (SALT_BYTES - 1)}),
    "no owner": _drop("owner"),
    "owner as a number": _set("owner", {"N": "1"}),
    "owner as binary": _set("owner", {"B": b"x" * DIGEST}),
    "owner not ascii": _set("owner", {"S": "\u00e9" * DIGEST}),
    "owner of another caller": lambda item: item.__setitem__(
        "owner", {"S": Known(salt=item["salt"]["B"]).owner(OTHER_CALLERS[0])}
    ),
    "version as a string": _set("version", {"S": "1"}),
    "version a fraction": _set("version", {"N": "1.5"}),
    "no version": _drop("version"),
}
# Cases where the item is this caller's but otherwise unusable: nothing of it is used, and this
# caller's next write goes over the version it holds.
STALE: dict[str, Callable[[dict[str, Any]], None]] = {
    "short salt": _salted(b"x" * (SALT_BYTES - 1)),
    "long salt": _salted(b"x" * (SALT_BYTES + 1)),
    "empty salt": _salted(b""),
    "version 0": _set("version", {"N": "0"}),
    "negative version": _set("version", {"N": "-3"}),
    "same as a string": _set("same", {"S": "not a set"}),
    "same as numbers": _set("same", {"NS": ["1", "2"]}),
    "same as a list": _set("same", {"L": [{"S": "a"}]}),
    "masked as a string": _set("masked", {"S": MASKED}),
    "masked as a string set": _set("masked", {"SS": [MASKED]}),
    "masked value a number": _masked_value({"N": "1"}),
    "masked value null": _masked_value({"NULL": True}),
    "masked value a list": _masked_value({"L": [{"S": MASKED}]}),
    "masked value a map": _masked_value({"M": {"S": {"S": MASKED}}}),
    "ttl a string": _set(TTL_ATTRIBUTE, {"S": "tomorrow"}),
    "ttl a fraction": _set(TTL_ATTRIBUTE, {"N": "1.5"}),
    "no ttl": _drop(TTL_ATTRIBUTE),
    "no guardrail": _drop("guardrail"),
    "guardrail as a number": _set("guardrail", {"N": "1"}),
}


def _malformed(store: Transcripts, dynamodb: Any, mutate: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    written(store)
    item = raw_item(dynamodb)
    mutate(item)
    dynamodb.put_item(TableName=TABLE, Item=item)
    return raw_item(dynamodb)


@pytest.mark.parametrize("mutate", UNOWNED.values(), ids=UNOWNED.keys())
def test_an_item_of_unknown_owner_reads_as_empty_and_is_not_written_over(
    store: Transcripts, dynamodb: Any, mutate: Callable[[dict[str, Any]], None]
) -> None:
    before = _malformed(store, dynamodb, mutate)
    known = store.read(SESSION, CALLER)
    assert known.version == 0
    assert_nothing_usable(known)
    assert store.write(SESSION, CALLER, known, TURNS) is False
    assert raw_item(dynamodb) == before


@pytest.mark.parametrize("mutate", [pytest.param(mutate, id=name) for name, mutate in STALE.items()])
def test_a_malformed_item_of_this_caller_reads_as_empty_and_is_written_over(
    store: Transcripts, dynamodb: Any, mutate: Callable[[dict[str, Any]], None]
) -> None:
    before = _malformed(store, dynamodb, mutate)
    known = store.read(SESSION, CALLER)
    assert_nothing_usable(known)
    assert known.version == int(before["version"]["N"])
    assert known.salt != before["salt"]["B"]
    assert store.write(SESSION, CALLER, known, TURNS) is True
    after = store.read(SESSION, CALLER)
    # Usable at once: one version on, or 1 after a version that was never valid.
    assert after.version == max(known.version, 0) + 1
    assert after.prefix(SENT) == STORED


def test_the_unmutated_item_of_the_malformed_cases_is_usable(store: Transcripts, dynamodb: Any) -> None:
    """The control for the cases above: the same item put back as it was reads in full."""
    written(store)
    dynamodb.put_item(TableName=TABLE, Item=raw_item(dynamodb))
    known = store.read(SESSION, CALLER)
    assert known.version == 1
    assert known.prefix(SENT) == STORED


# --- writes: over the version read, bounded ------------------------------------------------------


def test_of_two_writers_that_read_the_same_version_the_first_wins(store: Transcripts) -> None:
    written(store)
    first, second = store.read(SESSION, CALLER), store.read(SESSION, CALLER)
    assert first.version == second.version == 1
    assert store.write(SESSION, CALLER, first, [("user", "first", "first")]) is True
    assert store.write(SESSION, CALLER, second, [("user", "second", "second")]) is False
    known = store.read(SESSION, CALLER)
    assert known.version == 2
    assert known.prefix([("user", "first")]) == ["first"]
    assert known.prefix([("user", "second")]) == []
    # Each turn rewrites the item with its own texts only.
    assert known.prefix(SENT) == []
    assert len(known.entries) == 1
    # A write after a fresh read goes through, one version on.
    assert store.write(SESSION, CALLER, known, [("user", "second", "second")]) is True
    again = store.read(SESSION, CALLER)
    assert again.version == 3
    assert again.prefix([("user", "second")]) == ["second"]


def test_of_two_writers_that_found_no_item_only_the_first_creates_it(store: Transcripts) -> None:
    first, second = store.read(SESSION, CALLER), store.read(SESSION, CALLER)
    assert store.write(SESSION, CALLER, first, [("user", "first", "first")]) is True
    assert store.write(SESSION, CALLER, second, [("user", "second", "second")]) is False
    known = store.read(SESSION, CALLER)
    assert (known.version, known.salt) == (1, first.salt)
    assert known.prefix([("user", "first")]) == ["first"]
    assert known.prefix([("user", "second")]) == []


def _masked_turns(masked: str) -> list[tuple[str, str, str]]:
    """One masked text and an answer as sent: two digests and the masked text's bytes."""
    return [("user", RAW, masked), (ASSISTANT, "ok", "ok")]


AT_CAP = {
    "ascii": "x" * (MAX_ITEM_BYTES - 2 * DIGEST),
    # Three and four bytes a character: a third and a quarter as many characters.
    "euro": "\u20ac" * ((MAX_ITEM_BYTES - 2 * DIGEST) // 3),
    "emoji": "\U0001f600" * ((MAX_ITEM_BYTES - 2 * DIGEST) // 4),
}


@pytest.mark.parametrize("masked", AT_CAP.values(), ids=AT_CAP.keys())
def test_a_write_at_the_size_cap_is_stored(store: Transcripts, masked: str) -> None:
    assert len(masked.encode()) == MAX_ITEM_BYTES - 2 * DIGEST
    assert store.write(SESSION, CALLER, store.read(SESSION, CALLER), _masked_turns(masked)) is True
    assert store.read(SESSION, CALLER).prefix([("user", RAW), (ASSISTANT, "ok")]) == [masked, "ok"]


@pytest.mark.parametrize(
    "masked",
    [
        AT_CAP["ascii"] + "x",  # one byte over
        # Fewer characters than the cap allows bytes, but more bytes.
        "\u20ac" * (MAX_ITEM_BYTES // 3 + 1),
        "\U0001f600" * (MAX_ITEM_BYTES // 4 + 1),
        AT_CAP["euro"] + "x",  # still one byte over
    ],
    ids=["ascii", "euro", "emoji", "mixed"],
)
def test_a_write_over_the_size_cap_is_skipped_and_the_item_kept(store: Transcripts, dynamodb: Any, masked: str) -> None:
    assert len(masked) <= MAX_ITEM_BYTES < len(masked.encode()) + 2 * DIGEST
    written(store)
    before = raw_item(dynamodb)
    known = store.read(SESSION, CALLER)
    assert store.write(SESSION, CALLER, known, _masked_turns(masked)) is False
    assert raw_item(dynamodb) == before
    assert store.read(SESSION, CALLER).version == 1


def test_a_text_that_went_as_sent_costs_only_its_digest(store: Transcripts, dynamodb: Any) -> None:
    """Only masked texts are stored as text: a long text that went through as sent is not."""
    long = "y" * (2 * MAX_ITEM_BYTES)
    assert store.write(SESSION, CALLER, store.read(SESSION, CALLER), [("user", long, long)]) is True
    assert store.read(SESSION, CALLER).prefix([("user", long)]) == [long]
    assert long not in repr(raw_item(dynamodb))


@pytest.mark.parametrize(("count", "stored"), [(MAX_ITEM_BYTES // DIGEST, True), (MAX_ITEM_BYTES // DIGEST + 1, False)])
def test_every_texts_digest_counts_towards_the_cap(store: Transcripts, count: int, stored: bool) -> None:
    turns = [("user" if i % 2 == 0 else ASSISTANT, f"t{i}", f"t{i}") for i in range(count)]
    assert store.write(SESSION, CALLER, store.read(SESSION, CALLER), turns) is stored
    known = store.read(SESSION, CALLER)
    assert known.version == (1 if stored else 0)
    assert len(known.entries) == (count if stored else 0)


# --- a turn's draft ------------------------------------------------------------------------------


def test_draft_save_stores_exactly_the_drafts_turns(store: Transcripts, dynamodb: Any) -> None:
    """The answer is not among them: it passed only the output guardrail."""
    known = store.read(SESSION, CALLER)
    draft = Draft(store, SESSION, CALLER, known, tuple(TURNS))
    assert draft.save() is True
    after = store.read(SESSION, CALLER)
    assert (after.version, after.salt) == (1, known.salt)
    assert set(after.entries) == set(known.chain(SENT))
    assert after.prefix(SENT) == STORED
    item = raw_item(dynamodb)
    assert len(item["same"]["SS"]) + len(item["masked"]["M"]) == len(TURNS)


def test_the_next_turn_continues_the_chain_from_the_saved_turns(store: Transcripts) -> None:
    """The answer joins on the next turn, once checked resent; the next turn's new text after it."""
    assert Draft(store, SESSION, CALLER, store.read(SESSION, CALLER), tuple(TURNS)).save() is True
    answer, question = "Nothing else, thank you.", f"Then write to {EMAIL} again"
    resent: list[Turn] = [*SENT, (ASSISTANT, answer), ("user", question)]
    known = store.read(SESSION, CALLER)
    assert known.prefix(resent) == STORED  # the answer and the question are checked
    # The flow's draft of that turn: the stored prefix, then the checked answer and question.
    second = (*TURNS, (ASSISTANT, answer, answer), ("user", question, "Then write to {EMAIL} again"))
    assert Draft(store, SESSION, CALLER, known, second).save() is True
    after = store.read(SESSION, CALLER)
    assert after.version == 2
    assert after.salt == known.salt  # one salt for the session's life: the chain goes on
    assert after.prefix([*resent, (ASSISTANT, "Done.")]) == [*STORED, answer, "Then write to {EMAIL} again"]
    assert len(after.entries) == len(resent)


# --- DynamoDB failures ---------------------------------------------------------------------------


@pytest.fixture
def stubbed() -> Iterator[tuple[Transcripts, Stubber]]:
    client = boto3.client("dynamodb", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield Transcripts(client, TABLE, guardrail=GUARDRAIL, ttl_seconds=TTL_SECONDS, now=Clock()), stubber
        stubber.assert_no_pending_responses()


FAILURES = pytest.mark.parametrize(
    ("code", "status", "throttled"),
    [("ProvisionedThroughputExceededException", 400, True), ("InternalServerError", 500, False)],
)


def test_a_read_is_strongly_consistent(stubbed: tuple[Transcripts, Stubber]) -> None:
    """A client's next turn can follow its last at once: an eventually consistent read could miss
    the transcript that turn wrote, check every text again, and lose the write to the version."""
    store, stubber = stubbed
    stubber.add_response("get_item", {}, {"TableName": TABLE, "Key": {KEY: {"S": SESSION}}, "ConsistentRead": True})
    assert store.read(SESSION, CALLER).entries == {}


@FAILURES
def test_a_failed_read_is_dynamodbs_upstream_error(
    stubbed: tuple[Transcripts, Stubber], code: str, status: int, throttled: bool
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("get_item", service_error_code=code, http_status_code=status)
    with pytest.raises(UpstreamError) as raised:
        store.read(SESSION, CALLER)
    assert (raised.value.service, raised.value.code, raised.value.throttled) == ("dynamodb", code, throttled)


@FAILURES
def test_a_failed_write_is_dynamodbs_upstream_error(
    stubbed: tuple[Transcripts, Stubber], code: str, status: int, throttled: bool
) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code=code, http_status_code=status)
    with pytest.raises(UpstreamError) as raised:
        store.write(SESSION, CALLER, Known.empty(), TURNS)
    assert (raised.value.service, raised.value.code, raised.value.throttled) == ("dynamodb", code, throttled)


def test_a_failed_draft_save_is_dynamodbs_upstream_error(stubbed: tuple[Transcripts, Stubber]) -> None:
    store, stubber = stubbed
    stubber.add_client_error("put_item", service_error_code="InternalServerError", http_status_code=500)
    with pytest.raises(UpstreamError) as raised:
        Draft(store, SESSION, CALLER, Known.empty(), tuple(TURNS)).save()
    assert (raised.value.service, raised.value.code) == ("dynamodb", "InternalServerError")


def test_a_lost_race_reported_by_dynamodb_is_a_skipped_write(stubbed: tuple[Transcripts, Stubber]) -> None:
    store, stubber = stubbed
    known = Known.empty()
    stubber.add_client_error(
        "put_item",
        service_error_code="ConditionalCheckFailedException",
        http_status_code=400,
        expected_params={
            "TableName": TABLE,
            "Item": {
                KEY: {"S": SESSION},
                "owner": {"S": known.owner(CALLER)},
                "guardrail": {"S": GUARDRAIL},
                "salt": {"B": known.salt},
                "version": {"N": "1"},
                TTL_ATTRIBUTE: {"N": str(int(Clock()().timestamp()) + TTL_SECONDS)},
                "same": {"SS": sorted(known.chain(SENT)[1:])},
                "masked": {"M": {known.chain(SENT)[0]: {"S": MASKED}}},
            },
            "ConditionExpression": "attribute_not_exists(#key) OR #version = :read",
            "ExpressionAttributeNames": {"#key": KEY, "#version": "version"},
            "ExpressionAttributeValues": {":read": {"N": "0"}},
        },
    )
    assert store.write(SESSION, CALLER, known, TURNS) is False
