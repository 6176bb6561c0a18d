"""Pushes of one record at the same time: the registry's claim and the landing are two writes, so a
request that claimed an older change and reached S3 last would leave that older text current. The
landing is a conditional write (connector_push.newest): the newer change stays."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from botocore.exceptions import ClientError

from connector_push import handler as push
from connector_push.newest import CHANGED_METADATA, LAND_ATTEMPTS, LandingContendedError, land_newest
from shared.connector_state import claim_change
from shared.landing import Document
from tests.lambdas.conftest import HttpResult
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import Aws
from tests.lambdas.test_connectors import post

KEY = "realtime/crm/a.md"
EARLIER, OLDER, NEWER = (dt.datetime(2026, 11, 1, 0, 0, second, tzinfo=dt.UTC) for second in (0, 1, 2))
SKIPPED = [{"id": "a", "reason": "a later change of this record (updated_at) has landed"}]


def pushed(body: str, changed: dt.datetime) -> dict[str, Any]:
    return {"records": [{"id": "a", "body": body, "updated_at": changed.isoformat()}]}


def current(aws: Aws) -> tuple[bytes, str | None]:
    """The text the key holds and the change its metadata says it is."""
    got = aws.s3.get_object(Bucket=LANDING, Key=KEY)
    return got["Body"].read(), got["Metadata"].get(CHANGED_METADATA)


def versions(aws: Aws) -> int:
    return len(aws.s3.list_object_versions(Bucket=LANDING, Prefix=KEY).get("Versions", []))


@pytest.mark.parametrize("earlier", [False, True], ids=["key-holds-nothing", "key-holds-an-earlier-change"])
def test_an_older_change_reaching_s3_after_a_newer_one_it_raced_is_skipped(
    pushing: Aws, monkeypatch: pytest.MonkeyPatch, earlier: bool
) -> None:
    """The older request claims its change, then the newer request claims and lands its own before
    the older one's write (run inside the older claim: the same order every time, no threads)."""
    if earlier:
        assert post("crm", pushed("EARLIER", EARLIER)).body["accepted"] == 1
    answers: dict[str, HttpResult] = {}

    def claim_then_be_overtaken(table: Any, source: str, record_id: str, changed: dt.datetime) -> bool:
        won = claim_change(table, source, record_id, changed)
        if won and changed == OLDER:
            answers["newer"] = post("crm", pushed("NEWER", NEWER))
        return won

    monkeypatch.setattr(push, "claim_change", claim_then_be_overtaken)
    older = post("crm", pushed("OLDER", OLDER))
    newer = answers["newer"]
    assert (newer.status, newer.body["accepted"]) == (202, 1)
    assert (older.status, older.body["accepted"], older.body["skipped"]) == (202, 0, SKIPPED)
    assert current(pushing) == (b"NEWER\n", NEWER.isoformat())
    assert versions(pushing) == (2 if earlier else 1)  # the older text was never written
    claimed = pushing.dynamodb.Table("registry").get_item(Key={"pk": "connector#crm", "sk": "landed#a"})["Item"]
    assert claimed["changed"] == NEWER.isoformat()


def test_a_later_change_replaces_an_earlier_one_and_one_landed_without_a_time(pushing: Aws) -> None:
    """The ordinary case: each write is conditional on the object it read."""
    assert post("crm", {"records": [{"id": "a", "body": "UNDATED"}]}).body["accepted"] == 1
    assert post("crm", pushed("EARLIER", EARLIER)).body["accepted"] == 1
    assert current(pushing) == (b"EARLIER\n", EARLIER.isoformat())
    assert post("crm", pushed("NEWER", NEWER)).body["accepted"] == 1
    assert post("crm", pushed("NEWER again", NEWER)).body["accepted"] == 1  # the same change sent again lands
    assert current(pushing) == (b"NEWER again\n", NEWER.isoformat())


# land_newest itself, over moto's S3 (which keeps If-Match and If-None-Match as S3 does), with a
# write or a read in between, or refused as S3 may refuse a conditional write.


def failure(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": ""}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


@dataclass
class Scripted:
    """``s3``, with faults raised in place of the next puts or heads, and ``after_head`` run once
    after the next head has read the key (another request's write between this one's read and its
    write). ``conditions`` are the puts' IfMatch/IfNoneMatch, in order."""

    s3: Any
    put_faults: list[tuple[str, int]] = field(default_factory=list)
    head_faults: list[tuple[str, int]] = field(default_factory=list)
    after_head: Callable[[], Any] | None = None
    conditions: list[dict[str, str]] = field(default_factory=list)

    def put_object(self, **call: Any) -> Any:
        self.conditions.append({name: call[name] for name in ("IfMatch", "IfNoneMatch") if name in call})
        if self.put_faults:
            raise failure(*self.put_faults.pop(0), "PutObject")
        return self.s3.put_object(**call)

    def head_object(self, **call: Any) -> Any:
        if self.head_faults:
            raise failure(*self.head_faults.pop(0), "HeadObject")
        head = self.s3.head_object(**call)
        hook, self.after_head = self.after_head, None
        if hook:
            hook()
        return head


def doc(text: str) -> Document:
    return Document(key=KEY, body=f"{text}\n".encode(), metadata={"source": "crm:a"})


def test_a_write_whose_object_changed_after_it_was_read_reads_again_and_gives_way(aws: Aws) -> None:
    """The earlier change is there; the older change's request reads it, the newer change lands,
    and the older one's write (If-Match on what it read) is refused: it reads again and stops."""
    land_newest(aws.s3, doc("EARLIER"), LANDING, EARLIER)
    s3 = Scripted(aws.s3, after_head=lambda: land_newest(aws.s3, doc("NEWER"), LANDING, NEWER))
    assert land_newest(s3, doc("OLDER"), LANDING, OLDER) is None
    assert current(aws) == (b"NEWER\n", NEWER.isoformat())
    assert [list(c) for c in s3.conditions] == [["IfNoneMatch"], ["IfMatch"]]


@pytest.mark.parametrize(
    ("put_faults", "head_faults", "conditions"),
    [
        ([("ConditionalRequestConflict", 409)], [], ["IfNoneMatch", "IfNoneMatch"]),  # another write at once
        # An object was there, and gone when read (the pipeline emptied the key): 404, or 403
        # without s3:ListBucket. The next write asks again for nothing there.
        ([("PreconditionFailed", 412)], [("404", 404)], ["IfNoneMatch", "IfNoneMatch"]),
        ([("PreconditionFailed", 412)], [("403", 403)], ["IfNoneMatch", "IfNoneMatch"]),
    ],
    ids=["409", "gone-404", "gone-403"],
)
def test_a_write_another_came_before_is_tried_again(
    aws: Aws, put_faults: list[tuple[str, int]], head_faults: list[tuple[str, int]], conditions: list[str]
) -> None:
    s3 = Scripted(aws.s3, put_faults=put_faults, head_faults=head_faults)
    assert land_newest(s3, doc("OLDER"), LANDING, OLDER)
    assert current(aws) == (b"OLDER\n", OLDER.isoformat())
    assert [name for c in s3.conditions for name in c] == conditions


def test_a_key_that_changes_under_every_write_fails_the_landing_after_a_bounded_number(aws: Aws) -> None:
    land_newest(aws.s3, doc("EARLIER"), LANDING, EARLIER)
    s3 = Scripted(aws.s3, put_faults=[("PreconditionFailed", 412)] * 100)
    with pytest.raises(LandingContendedError):
        land_newest(s3, doc("OLDER"), LANDING, OLDER)
    assert len(s3.conditions) == LAND_ATTEMPTS
    assert current(aws) == (b"EARLIER\n", EARLIER.isoformat())


def test_a_failure_that_is_not_a_lost_race_is_raised_at_once(aws: Aws) -> None:
    s3 = Scripted(aws.s3, put_faults=[("AccessDenied", 403)])
    with pytest.raises(ClientError, match="AccessDenied"):
        land_newest(s3, doc("OLDER"), LANDING, OLDER)
    assert len(s3.conditions) == 1
