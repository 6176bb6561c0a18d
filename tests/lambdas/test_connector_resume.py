"""The pull connector at its page cap: a source with more pages of changes than one run may read
(a first run, a backfill, a watermark not trusted) is read over several runs, each going on from
the cursor the last one stopped at, instead of failing every run after landing the same pages."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import pytest
import urllib3
from botocore.exceptions import ClientError

from connector_pull import handler as pull
from connector_pull.contract import Settings as PullSettings
from shared.connector_state import CLOCK_SKEW
from shared.landing import Record, document
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from shared.tool_errors import ToolError
from tests.lambdas.conftest import FakeContext, printed
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import Aws
from tests.lambdas.test_connector_hostile import Recorded, Upstream, article, run
from tests.lambdas.test_connectors import SOURCE, Clock, Invocation

KEY = {"pk": f"connector#{SOURCE.name}", "sk": "watermark"}
STORED = "2026-10-01T00:00:00+00:00"


class Paged(Upstream):
    """A source that pages by cursor: no cursor is page 0, "cN" is page N; a cursor it never gave
    is refused as the legacy client words a 400."""

    def __init__(self, *updated: str) -> None:
        super().__init__()
        self.updated = updated  # one record per page, changed at these times

    def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
        self.requests.append(params)
        cursor = params["cursor"]
        if cursor is not None and cursor not in {f"c{n}" for n in range(1, len(self.updated))}:
            raise ToolError("invalid_argument", "the service rejected the request (400)")
        page = int(cursor[1:]) if cursor else 0
        more = {"next_cursor": f"c{page + 1}"} if page + 1 < len(self.updated) else {}
        return {"items": [article(f"a{page}", self.updated[page])], **more}, 0


def stored(aws: Aws) -> dict[str, Any]:
    return dict(aws.dynamodb.Table("registry").get_item(Key=KEY).get("Item", {}))


def ids_at_watermark(aws: Aws) -> set[str]:
    """The record ids of the versions saved as landed at the watermark (<id>:<digest>)."""
    return {version.split(":")[0] for version in stored(aws).get("landed_at_watermark", set())}


def ids_of(mark: pull.Mark) -> set[str]:
    return {version.split(":")[0] for version in mark.at_watermark}


@pytest.fixture
def cap(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(pull, "MAX_PAGES", 2)
    return 2


def test_a_run_at_the_page_cap_saves_a_resume_point_and_the_next_runs_go_on_from_it(aws: Aws, cap: int) -> None:
    # A watermark as every item was before resume points: a plain one.
    aws.dynamodb.Table("registry").put_item(Item={**KEY, "updated_since": STORED})
    # The newest change is on the first page: it must survive the runs in between.
    source = Paged(
        "2026-11-05T00:00:00Z",
        "2026-11-02T00:00:00Z",
        "2026-11-03T00:00:00Z",
        "2026-11-01T00:00:00Z",
        "2026-11-04T00:00:00Z",
    )
    first = run(aws, source)
    assert (first.landed, first.pages, first.capped) == (2, 2, True)
    assert first.watermark == "2026-11-05T00:00:00+00:00"  # the newest change seen: what the log line says
    assert stored(aws) == {
        **KEY,
        "updated_since": STORED,  # not moved: pages 2 to 4 are not read yet
        "resume_cursor": "c2",
        "resume_since": STORED,
        "resume_newest": "2026-11-05T00:00:00+00:00",
    }
    second = run(aws, source)
    assert (second.pages, second.capped, stored(aws)["resume_cursor"]) == (2, True, "c4")
    third = run(aws, source)
    assert (third.landed, third.pages, third.capped) == (1, 1, False)
    assert [(r[SOURCE.since_param], r["cursor"]) for r in source.requests] == [
        (STORED, None),
        (STORED, "c1"),
        (STORED, "c2"),  # the same since as the run that stopped
        (STORED, "c3"),
        (STORED, "c4"),
    ]
    assert stored(aws) == {**KEY, "updated_since": "2026-11-05T00:00:00+00:00"}  # and no resume point
    assert len(aws.landing_versions()) == 5  # every page landed once
    run(aws, source)
    assert source.requests[5] == {SOURCE.since_param: "2026-11-05T00:00:00+00:00", "cursor": None}


def test_a_capped_run_counts_the_versions_it_did_not_land(aws: Aws, cap: int) -> None:
    newest_first = [
        {"items": [article("a", "2026-11-02T09:00:00Z")], "next_cursor": "c1"},
        {"items": [article("a", "2026-11-02T08:00:00Z")], "next_cursor": "c2"},
    ]
    result = run(aws, Upstream(*newest_first))
    assert (result.capped, result.landed, result.repeated) == (True, 1, 1)


def landed_body(aws: Aws, record_id: str) -> str:
    key = f"realtime/{SOURCE.name}/{record_id}.md"
    return str(aws.s3.get_object(Bucket=LANDING, Key=key)["Body"].read().decode())


def test_an_older_change_a_later_run_lists_is_not_landed_over_the_newer_an_earlier_run_landed(
    aws: Aws, cap: int
) -> None:
    """A listing that spans runs: the first run (capped at two pages) lands a's 09:00 change, the
    next is given a's 08:00 change on the page after the resume point. Landed, the older text would
    be left current for good, the watermark being past both."""
    source = Upstream(
        {"items": [article("a", "2026-11-02T09:00:00Z", body="newer")], "next_cursor": "c1"},
        {"items": [article("b", "2026-11-02T08:30:00Z")], "next_cursor": "c2"},
        {"items": [article("a", "2026-11-02T08:00:00Z", body="older"), article("c", "2026-11-02T08:00:00Z")]},
    )
    first = run(aws, source)
    assert (first.capped, first.landed) == (True, 2)
    second = run(aws, source)
    assert (second.capped, second.landed, second.outdated, second.repeated) == (False, 1, 1, 0)
    assert "newer" in landed_body(aws, "a")
    assert len(aws.landing_versions()) == 3  # a, b and c once each
    claimed = aws.dynamodb.Table("registry").get_item(Key={"pk": KEY["pk"], "sk": "landed#a"})["Item"]
    assert claimed["changed"] == "2026-11-02T09:00:00+00:00"


def test_a_capped_run_counts_every_change_it_did_not_land_over_a_newer_one(aws: Aws, cap: int) -> None:
    """The count a capped run reports (and logs) is each outdated record, not whether there was one."""
    source = Upstream(
        {"items": [article("a", "2026-11-02T09:00:00Z"), article("b", "2026-11-02T09:00:00Z")], "next_cursor": "c1"},
        {"items": [article("c", "2026-11-02T09:00:00Z")], "next_cursor": "c2"},
        {"items": [article("a", "2026-11-02T08:00:00Z"), article("b", "2026-11-02T08:00:00Z")], "next_cursor": "c3"},
        {"items": [article("d", "2026-11-02T09:00:00Z")], "next_cursor": "c4"},
        {"items": []},
    )
    assert run(aws, source).capped
    second = run(aws, source)
    assert (second.capped, second.landed, second.outdated) == (True, 1, 2)


def test_a_later_change_or_the_same_change_again_lands_in_a_later_run(aws: Aws) -> None:
    """The same change again: a run that failed after landing it (before its watermark) is pulled
    again whole by the next run, which lands it again (its claim is no later). A later change
    lands, and is then the one claimed."""
    first = Upstream({"items": [article("a", "2026-11-02T08:00:00Z", body="first")]})
    assert run(aws, first).landed == 1
    aws.dynamodb.Table("registry").delete_item(Key=KEY)  # as if that run had failed before its watermark
    again = run(aws, Upstream({"items": [article("a", "2026-11-02T08:00:00Z", body="first")]}))
    assert (again.landed, again.outdated, again.unchanged) == (1, 0, 0)
    later = run(aws, Upstream({"items": [article("a", "2026-11-02T08:00:00.5Z", body="later")]}))
    assert (later.landed, later.outdated) == (1, 0)
    assert "later" in landed_body(aws, "a")
    older = run(aws, Upstream({"items": [article("a", "2026-11-02T08:00:00Z", body="first")]}))
    assert (older.landed, older.outdated) == (0, 1)  # half a second older than the claim
    assert "later" in landed_body(aws, "a")


def test_the_watermarks_own_changes_are_not_landed_again_by_the_next_run(aws: Aws) -> None:
    """A source whose since includes its bound lists the watermark's changes again on every run:
    those the run that saved the watermark landed are not landed again; one more change at the
    same instant, listed later, is (and is saved with them); a later change of the same id is."""
    at = "2026-11-02T08:00:00Z"
    assert (
        run(aws, Upstream({"items": [article("a", at), article("b", at), article("c", "2026-11-01T00:00:00Z")]})).landed
        == 3
    )
    assert ids_at_watermark(aws) == {"a", "b"}
    versions = len(aws.landing_versions())
    again = run(aws, Upstream({"items": [article("a", at), article("b", at), article("d", at)]}))
    assert (again.landed, again.unchanged, again.outdated) == (1, 2, 0)
    assert len(aws.landing_versions()) == versions + 1  # d only
    assert (stored(aws)["updated_since"], ids_at_watermark(aws)) == ("2026-11-02T08:00:00+00:00", {"a", "b", "d"})
    table = Recorded(aws.dynamodb.Table("registry"))
    steady = pull.pull(
        Upstream({"items": [article("a", at), article("b", at), article("d", at)]}),  # type: ignore[arg-type]
        SOURCE, s3=aws.s3, sqs=aws.sqs, watermarks=pull.Watermarks(table), dlq_url=aws.dlq_url, bucket=LANDING,
        clock=Clock(),
    )  # fmt: skip
    assert (steady.landed, steady.unchanged) == (0, 3)
    assert [name for name, _ in table.calls] == ["get_item"]  # no claim, no watermark written
    later = run(aws, Upstream({"items": [article("a", "2026-11-02T08:00:01Z", body="later")]}))
    assert (later.landed, later.unchanged) == (1, 0)
    assert ids_at_watermark(aws) == {"a"}


def test_another_change_at_the_watermarks_instant_lands(aws: Aws) -> None:
    """A second-granular source: a record changed again within the second the run that saved the
    watermark landed it has the same time, and other text: it lands, and replaces the one saved."""
    at = "2026-11-02T08:00:00Z"
    assert run(aws, Upstream({"items": [article("a", at, body="first")]})).landed == 1
    (first,) = stored(aws)["landed_at_watermark"]
    again = run(aws, Upstream({"items": [article("a", at, body="second")]}))
    assert (again.landed, again.unchanged) == (1, 0)
    assert "second" in landed_body(aws, "a")
    assert len(stored(aws)["landed_at_watermark"]) == 1
    assert first not in stored(aws)["landed_at_watermark"]  # in its place, not beside it
    assert run(aws, Upstream({"items": [article("a", at, body="second")]})).unchanged == 1  # and no more


def test_the_ids_at_the_watermark_are_saved_only_up_to_their_cap(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """More changes at one instant than the item may hold: none saved, and they land again."""
    monkeypatch.setattr(pull, "MAX_AT_WATERMARK", 2)
    assert run(aws, Upstream({"items": [article(name, "2026-11-01T08:00:00Z") for name in "ab"]})).landed == 2
    assert ids_at_watermark(aws) == {"a", "b"}  # as many as the cap: kept
    at = "2026-11-02T08:00:00Z"
    items = [article(name, at) for name in "abc"]
    assert run(aws, Upstream({"items": items})).landed == 3
    assert "landed_at_watermark" not in stored(aws)
    assert (run(aws, Upstream({"items": items})).landed, len(aws.landing_versions())) == (3, 8)


def test_a_watermark_not_trusted_keeps_no_ids(aws: Aws) -> None:
    """Ahead of the clock (saved before future changes were poison): the run pulls from the
    beginning and lands what it lists, the ids saved beside that watermark included."""
    clock = Clock()
    ahead = (dt.datetime.fromtimestamp(clock.now, dt.UTC) + CLOCK_SKEW + dt.timedelta(minutes=1)).isoformat()
    landed = pull.landed_version("a", document(SOURCE.name, Record(id="a", body="x"), classification="public"))
    aws.dynamodb.Table("registry").put_item(Item={**KEY, "updated_since": ahead, "landed_at_watermark": {landed}})
    assert run(aws, Upstream({"items": [article("a", "2026-11-02T08:00:00Z")]}), clock).landed == 1


def test_a_claim_the_registry_fails_fails_the_run_and_keeps_the_watermark(aws: Aws) -> None:
    """Throttled, say: the run fails before landing the record, and the next run pulls it again."""
    aws.dynamodb.Table("registry").put_item(Item={**KEY, "updated_since": STORED})

    class Throttled(pull.Watermarks):
        def claim(self, source: str, record_id: str, changed: dt.datetime) -> bool:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "PutItem")

    with pytest.raises(ClientError):
        pull.pull(
            Upstream({"items": [article("a", "2026-11-02T09:00:00Z")]}),  # type: ignore[arg-type]
            SOURCE,
            s3=aws.s3,
            sqs=aws.sqs,
            watermarks=Throttled(aws.dynamodb.Table("registry")),
            dlq_url=aws.dlq_url,
            bucket=LANDING,
            clock=Clock(),
        )
    assert aws.landing_versions() == []
    assert stored(aws) == {**KEY, "updated_since": STORED}


def test_a_record_without_a_change_time_lands_whatever_an_earlier_run_landed(aws: Aws) -> None:
    """Nothing orders it against another change: it lands, as the source lists it, and claims nothing."""
    assert run(aws, Upstream({"items": [article("a", "2026-11-02T09:00:00Z", body="dated")]})).landed == 1
    undated = run(aws, Upstream({"items": [article("a", None, body="undated")]}))
    assert (undated.landed, undated.outdated) == (1, 0)
    assert "undated" in landed_body(aws, "a")
    claimed = aws.dynamodb.Table("registry").get_item(Key={"pk": KEY["pk"], "sk": "landed#a"})["Item"]
    assert claimed["changed"] == "2026-11-02T09:00:00+00:00"


def test_a_pull_from_the_beginning_resumes_from_the_beginning(aws: Aws, cap: int) -> None:
    """A watermark not trusted: the runs page with no since until the last page, then save one."""
    aws.dynamodb.Table("registry").put_item(Item={**KEY, "updated_since": "not a time"})
    source = Paged("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
    assert run(aws, source).capped
    assert "resume_since" not in stored(aws)
    assert not run(aws, source).capped
    assert [r[SOURCE.since_param] for r in source.requests] == [None, None, None]
    mark = pull.Watermarks(aws.dynamodb.Table("registry")).read(SOURCE.name)
    assert (mark.watermark, mark.resume, ids_of(mark)) == ("2026-11-03T00:00:00+00:00", None, {"a2"})


def test_a_resumed_run_asks_with_the_since_of_the_run_it_resumes(aws: Aws, cap: int) -> None:
    """The first run distrusted a watermark ahead of its clock and paged from the beginning; by the
    next run the clock has passed that time. The resumed run still asks with no since: with the
    watermark's, the pages still to read would list only changes after it, and the earlier ones
    on them would never land."""
    clock = Clock()
    ahead = dt.datetime.fromtimestamp(clock.now, dt.UTC) + CLOCK_SKEW + dt.timedelta(minutes=1)
    aws.dynamodb.Table("registry").put_item(Item={**KEY, "updated_since": ahead.isoformat()})
    source = Paged("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z")
    assert run(aws, source, clock).capped
    clock.now += 3600
    assert not run(aws, source, clock).capped
    assert [(r[SOURCE.since_param], r["cursor"]) for r in source.requests] == [(None, None), (None, "c1"), (None, "c2")]


def test_a_resume_cursor_the_source_refuses_is_dropped_and_the_run_starts_from_the_watermark(
    aws: Aws, cap: int, capsys: pytest.CaptureFixture[str]
) -> None:
    watermarks = pull.Watermarks(aws.dynamodb.Table("registry"))
    watermarks.put(SOURCE.name, STORED, pull.Resume("expired", STORED, "2026-11-09T00:00:00+00:00"))
    source = Paged("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z")
    result = run(aws, source)
    assert (result.landed, result.capped) == (2, False)
    assert [(r[SOURCE.since_param], r["cursor"]) for r in source.requests] == [
        (STORED, "expired"),
        (STORED, None),  # from the stored watermark, trusted as before
        (STORED, "c1"),
    ]
    # The newest change of the abandoned runs is not kept: their pages are read again.
    mark = watermarks.read(SOURCE.name)
    assert (mark.watermark, mark.resume, ids_of(mark)) == ("2026-11-02T00:00:00+00:00", None, {"a1"})
    (line,) = [p for p in printed(capsys) if p.get("message", "").startswith("the source refused the resume cursor")]
    assert (line["level"], line["source"], line["refusal"]) == (
        "WARNING",
        SOURCE.name,
        "the service rejected the request (400)",
    )


def test_a_refused_resume_cursor_is_dropped_even_when_the_run_then_fails(aws: Aws, cap: int) -> None:
    """The next run starts from the watermark, not from a cursor the source no longer takes."""

    class FailingLater(Paged):
        def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
            if params["cursor"] == "c1":
                raise ToolError("upstream_unavailable", "the service is unavailable (503)")
            return super().get(path, params)

    watermarks = pull.Watermarks(aws.dynamodb.Table("registry"))
    watermarks.put(SOURCE.name, STORED, pull.Resume("expired", STORED, "2026-11-09T00:00:00+00:00"))
    with pytest.raises(ToolError, match="503"):
        run(aws, FailingLater("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z"))
    assert stored(aws) == {**KEY, "updated_since": STORED}


def test_a_source_refusing_a_cursor_on_a_later_page_fails_the_run(aws: Aws, cap: int) -> None:
    """Only the resume cursor, on a run's first page, is dropped when refused: any other cursor is
    the source's own, and its refusal fails the run (a 400 for the page it just named)."""

    class RefusingLater(Paged):
        def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
            if params["cursor"] == "c2":
                raise ToolError("invalid_argument", "the service rejected the request (400)")
            return super().get(path, params)

    resume = pull.Resume("c1", STORED, None)
    pull.Watermarks(aws.dynamodb.Table("registry")).put(SOURCE.name, STORED, resume)
    with pytest.raises(ToolError, match="400"):
        run(aws, RefusingLater("2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"))
    assert pull.Watermarks(aws.dynamodb.Table("registry")).read(SOURCE.name) == pull.Mark(STORED, resume)


def test_a_source_that_refuses_the_credentials_keeps_the_resume_point(aws: Aws, cap: int) -> None:
    class Refusing(Paged):
        def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
            raise ToolError("forbidden", "the service refused the request")

    watermarks = pull.Watermarks(aws.dynamodb.Table("registry"))
    resume = pull.Resume("c1", STORED, None)
    watermarks.put(SOURCE.name, STORED, resume)
    with pytest.raises(ToolError):
        run(aws, Refusing("2026-11-01T00:00:00Z"))
    assert watermarks.read(SOURCE.name) == pull.Mark(STORED, resume)


def test_a_resumed_run_whose_source_gives_the_resume_cursor_again_fails(aws: Aws, cap: int) -> None:
    class Looping(Paged):
        def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
            self.requests.append(params)
            return {"items": [], "next_cursor": "c1"}, 0

    watermarks = pull.Watermarks(aws.dynamodb.Table("registry"))
    resume = pull.Resume("c1", STORED, None)
    watermarks.put(SOURCE.name, STORED, resume)
    with pytest.raises(pull.PagingError, match="repeated a cursor after page 1"):
        run(aws, Looping())
    assert watermarks.read(SOURCE.name) == pull.Mark(STORED, resume)


def test_a_capped_run_is_logged_and_counted_and_gives_the_lease_back(
    aws: Aws, cap: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = PullSettings(
        pull_source=SOURCE, landing_bucket=LANDING, registry_table="registry", dlq_url=aws.dlq_url, lease_seconds=360
    )
    monkeypatch.setattr(pull, "settings", lambda: settings)
    monkeypatch.setattr(pull, "client", lambda: Paged(*["2026-11-01T00:00:00Z"] * 3))
    capsys.readouterr()
    answer = pull.lambda_handler({}, Invocation(aws_request_id="run-1"))
    assert answer == {
        "landed": 2,
        "poison": 0,
        "pages": 2,
        "capped": True,
        "repeated": 0,
        "outdated": 0,
        "unchanged": 0,
    }
    lines = printed(capsys)
    (capped,) = [line for line in lines if line.get("message") == "pull stopped at the page cap; the next run resumes"]
    assert (capped["level"], capped["source"], capped["pages"]) == ("WARNING", SOURCE.name, 2)
    # One EMF document with what the falling-behind alarm divides (stacks/production/ingestion.py):
    # the run capped, and the run counted (RecordsPulled's one value per finished run), under the
    # dimension set the alarm names.
    (document,) = [line for line in lines if "RunsCapped" in line]
    assert (document["RunsCapped"], document["RecordsPulled"], document["Source"]) in [
        (1.0, 2.0, SOURCE.name),
        ([1.0], [2.0], SOURCE.name),
    ]
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert [sorted(dimensions) for dimensions in directive["Dimensions"]] == [["Source", "service"]]
    assert {"RunsCapped", "RecordsPulled"} <= {metric["Name"] for metric in directive["Metrics"]}
    # the function's POWERTOOLS_SERVICE_NAME, which tests/infra/test_ingestion.py matches to the alarm's
    assert document["service"] == os.environ["POWERTOOLS_SERVICE_NAME"]
    assert not any("RunsFailed" in line for line in lines)
    assert pull.Lease(aws.dynamodb.Table("registry"), SOURCE.name, seconds=360).acquire("run-2")


class Budget:
    """One invocation's remaining time: ``total`` seconds, each page it fetches taking ``per_page``."""

    def __init__(self, total: float, per_page: float, source: Paged) -> None:
        self.total, self.per_page, self.source = total, per_page, source
        self.before = len(source.requests)  # pages fetched by earlier invocations

    def __call__(self) -> float:
        return self.total - self.per_page * (len(self.source.requests) - self.before)


def test_a_run_short_of_time_saves_a_resume_point_before_the_timeout_and_the_next_goes_on_from_it(aws: Aws) -> None:
    """A slow source or a long backfill: a run Lambda ended at its timeout saved nothing, so every
    later run started again at page one and landed the same pages again. Here each page takes 40 s
    of a 300 s invocation: after the sixth, 60 s are left, less than another page and the save
    need (40 + 35, SAVE_SECONDS), so the run stops there with a resume point; the next run lands
    the rest, each page once."""
    source = Paged(*[f"2026-11-{day:02d}T00:00:00Z" for day in range(1, 11)])

    def one_run() -> pull.Run:
        return run(aws, source, seconds_left=Budget(300, 40, source))

    assert pull.SAVE_SECONDS == 35  # 3 x (2 + 5) s, backoffs of at most 1 + 5 and 2 + 5 s, 1 s to answer
    first = one_run()
    assert (first.pages, first.capped) == (6, True)
    assert stored(aws)["resume_cursor"] == "c6"
    second = one_run()
    assert (second.pages, second.capped) == (4, False)
    assert [r["cursor"] for r in source.requests] == [None, *[f"c{n}" for n in range(1, 10)]]
    assert len(aws.landing_versions()) == 10  # every page landed once
    # With the id whose change at the watermark it landed (a9, on the last page).
    assert ids_at_watermark(aws) == {"a9"}
    assert {k: v for k, v in stored(aws).items() if k != "landed_at_watermark"} == {
        **KEY,
        "updated_since": "2026-11-10T00:00:00+00:00",
    }


def test_the_deployed_handler_stops_for_time_by_its_invocations_remaining_time(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """lambda_handler passes the invocation's remaining time: 50 s at the start and 9 s a page
    leave 41 s after the first page, less than another page and the save (9 + 35), so it stops
    there with a resume point, says why, and gives the lease back."""
    settings = PullSettings(
        pull_source=SOURCE, landing_bucket=LANDING, registry_table="registry", dlq_url=aws.dlq_url, lease_seconds=360
    )
    source = Paged(*["2026-11-01T00:00:00Z"] * 3)
    monkeypatch.setattr(pull, "settings", lambda: settings)
    monkeypatch.setattr(pull, "client", lambda: source)

    class Short(FakeContext):
        def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
            return 50_000 - 9_000 * len(source.requests)  # each page takes 9 s

    capsys.readouterr()
    answer = pull.lambda_handler({}, Short(aws_request_id="run-1"))
    assert answer == {
        "landed": 1,
        "poison": 0,
        "pages": 1,
        "capped": True,
        "repeated": 0,
        "outdated": 0,
        "unchanged": 0,
    }
    (line,) = [
        line
        for line in printed(capsys)
        if line.get("message") == "pull stopped before the function's timeout; the next run resumes"
    ]
    assert (line["level"], line["pages"]) == ("WARNING", 1)
    assert stored(aws)["resume_cursor"] == "c1"
    assert pull.Lease(aws.dynamodb.Table("registry"), SOURCE.name, seconds=360).acquire("run-2")


def test_a_run_keeps_back_the_longest_a_call_may_take_even_when_its_pages_are_fast(aws: Aws) -> None:
    """Fast pages say nothing about the next call, which may retry to its limit: 1 s pages, a call
    that may take 60 s and 100 s to run stop after the 6th page (94 s left, under 60 + 35)."""
    source = Paged(*[f"2026-11-01T00:{n // 60:02d}:{n % 60:02d}Z" for n in range(200)])
    source.longest_get_seconds = 60.0
    result = run(aws, source, seconds_left=Budget(100, 1, source))
    assert (result.pages, result.capped) == (6, True)
    assert stored(aws)["resume_cursor"] == "c6"


def test_a_run_of_instant_pages_keeps_back_only_the_reserve_and_the_save(aws: Aws) -> None:
    """A source stated to answer within half a second, pages taking no time: 35.6 s left hold
    another page (0.5 s) and the save (35 s), so the run reads every page."""
    source = Paged(*[f"2026-11-{day:02d}T00:00:00Z" for day in range(1, 6)])
    source.longest_get_seconds = 0.5
    result = run(aws, source, seconds_left=Budget(35.6, 0, source))
    assert (result.pages, result.capped) == (5, False)


def test_the_legacy_client_states_the_longest_a_get_may_take() -> None:
    """Every attempt's exchange and two token fetches at the deadline each, and the backoffs."""
    client = LegacyClient(
        ClientSettings(base_url="https://api.example.com", timeout_seconds=10, max_attempts=3, backoff_seconds=0.2),
        lambda: Credentials(client_id="id", client_secret="secret"),
    )
    assert client.longest_get_seconds == pytest.approx(5 * 10 + 0.2 * 7)


class _SlowestUpstream:
    """Every exchange takes just under its deadline on a fake clock; tokens live 30 s (no longer
    than the client's refresh skew: due again at once); GETs time out until the last attempt."""

    def __init__(self, clock: list[float], attempts: int, timeout: float) -> None:
        self.clock, self.attempts, self.timeout = clock, attempts, timeout
        self.gets = self.tokens = 0

    def request(self, method: str, url: str, **_: Any) -> Any:
        self.clock[0] += self.timeout - 0.01
        if method == "POST":
            self.tokens += 1
            return _Answer(b'{"access_token": "t", "expires_in": 30}')
        self.gets += 1
        if self.gets < self.attempts:
            raise urllib3.exceptions.ReadTimeoutError(None, url, "timed out")  # type: ignore[arg-type]
        return _Answer(b'{"items": []}')


class _Answer:
    def __init__(self, body: bytes) -> None:
        self.status, self.connection, self._body = 200, None, body
        self.headers: dict[str, str] = {}

    def read1(self, _: int) -> bytes:
        body, self._body = self._body, b""
        return body

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


@pytest.mark.parametrize("attempts", [1, 3, 5])
def test_a_get_takes_no_longer_than_the_longest_it_states_even_when_its_token_is_always_due(attempts: int) -> None:
    """The run keeps back ``longest_get_seconds``: a token due again at once (or expiring while the
    call retries) is fetched once per call, not before every attempt (5 attempts of 20 s took 200 s
    against the 146 s stated, and the run outlived its invocation with no resume point)."""
    clock = [0.0]
    upstream = _SlowestUpstream(clock, attempts, timeout=20.0)
    client = LegacyClient(
        ClientSettings(base_url="https://api.example.com", timeout_seconds=20, max_attempts=attempts),
        lambda: Credentials(client_id="id", client_secret="secret"),
        http=upstream,  # type: ignore[arg-type]
        clock=lambda: clock[0],
        sleep=lambda seconds: clock.__setitem__(0, clock[0] + seconds),
    )
    assert client.get("/articles") == ({"items": []}, 13)
    assert (upstream.gets, upstream.tokens) == (attempts, 1)
    assert clock[0] <= client.longest_get_seconds


# --- what was landed at the watermark, across resume points ----------------------------------------

AT = "2026-11-02T08:00:00Z"
AT_STORED = "2026-11-02T08:00:00+00:00"


class Resuming(Upstream):
    """Refuses the resume cursor "expired", then answers its pages (``failing``: a 503 instead)."""

    def __init__(self, *pages: dict[str, Any], failing: bool = False) -> None:
        super().__init__(*pages)
        self.failing = failing

    def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
        if params["cursor"] == "expired":
            raise ToolError("invalid_argument", "the service rejected the request (400)")
        if self.failing:
            raise ToolError("upstream_unavailable", "the service is unavailable (503)")
        return super().get(path, params)


def landed_at(aws: Aws, *names: str) -> frozenset[str]:
    """A run lands ``names`` at AT; the watermark is then AT with their versions, and a resume
    point is put beside it (a cursor the source will refuse): what each run below starts from."""
    assert run(aws, Upstream({"items": [article(name, AT) for name in names]})).landed == len(names)
    saved = frozenset(stored(aws)["landed_at_watermark"])
    resume = pull.Resume("expired", AT_STORED, "2026-11-09T00:00:00+00:00")
    pull.Watermarks(aws.dynamodb.Table("registry")).put(SOURCE.name, AT_STORED, resume, saved)
    return saved


def test_a_refused_resume_cursor_keeps_the_versions_landed_at_the_watermark(aws: Aws) -> None:
    """Pulling again from the watermark: what the run that saved it landed at its instant is still
    not landed again, and one more change at that instant is saved beside them."""
    landed_at(aws, "a", "b")
    again = run(aws, Resuming({"items": [article("a", AT), article("c", AT)]}))
    assert (again.landed, again.unchanged) == (1, 1)
    assert (stored(aws)["updated_since"], ids_at_watermark(aws)) == (AT_STORED, {"a", "b", "c"})
    assert "resume_cursor" not in stored(aws)


def test_a_refused_resume_cursor_keeps_the_versions_landed_at_the_watermark_when_the_run_then_fails(
    aws: Aws,
) -> None:
    saved = landed_at(aws, "a", "b")
    with pytest.raises(ToolError, match="503"):
        run(aws, Resuming(failing=True))
    assert stored(aws) == {**KEY, "updated_since": AT_STORED, "landed_at_watermark": set(saved)}


def test_a_capped_run_keeps_the_versions_landed_at_the_watermark_beside_its_resume_point(aws: Aws, cap: int) -> None:
    """The next run resumes with them: the watermark's own changes on its pages are still not landed again."""
    saved = landed_at(aws, "a", "b")
    aws.dynamodb.Table("registry").put_item(
        Item={**KEY, "updated_since": AT_STORED, "landed_at_watermark": set(saved)}
    )  # no resume point
    pages: list[dict[str, Any]] = [
        {"items": [article("a", AT)], "next_cursor": "c1"},
        {"items": [article("d", "2026-11-03T00:00:00Z")], "next_cursor": "c2"},
        {"items": [article("b", AT)]},
    ]
    first = run(aws, Upstream(*pages))
    assert (first.capped, first.landed, first.unchanged) == (True, 1, 1)
    assert (stored(aws)["resume_cursor"], frozenset(stored(aws)["landed_at_watermark"])) == ("c2", saved)
    second = run(aws, Upstream(pages[2]))
    assert (second.capped, second.landed, second.unchanged) == (False, 0, 1)


def test_a_resumed_run_saves_no_versions_of_an_older_watermark_at_its_newer_one(aws: Aws, cap: int) -> None:
    """The versions saved beside a watermark are those landed at its instant: a resumed run that
    moves the watermark on to the newest change of the runs saves none of the old instant's."""
    saved = landed_at(aws, "a")
    newest = "2026-11-05T00:00:00+00:00"
    pull.Watermarks(aws.dynamodb.Table("registry")).put(
        SOURCE.name, AT_STORED, pull.Resume("c1", AT_STORED, newest), saved
    )
    assert run(aws, Paged("2026-11-04T00:00:00Z", "2026-11-04T00:00:00Z")).landed == 1
    assert stored(aws) == {**KEY, "updated_since": newest}


def test_a_change_of_what_lands_at_the_watermarks_instant_lands_again_though_its_text_is_the_same(aws: Aws) -> None:
    """A version is the text and the metadata landed: the source reclassified in config, the record
    listed again at the watermark's instant lands again with its new classification."""
    landed_at(aws, "a")
    again = pull.pull(
        Upstream({"items": [article("a", AT)]}),  # type: ignore[arg-type]
        SOURCE.model_copy(update={"classification": "confidential"}),
        s3=aws.s3, sqs=aws.sqs, watermarks=pull.Watermarks(aws.dynamodb.Table("registry")), dlq_url=aws.dlq_url,
        bucket=LANDING, clock=Clock(),
    )  # fmt: skip
    assert (again.landed, again.unchanged) == (1, 0)
    key = f"realtime/{SOURCE.name}/a.md"
    assert aws.s3.head_object(Bucket=LANDING, Key=key)["Metadata"]["classification"] == "confidential"
