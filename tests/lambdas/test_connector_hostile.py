"""The connectors against hostile input: a push that S3 or the pipeline would refuse is a 422 before
anything lands, and an upstream whose records or paging misbehave cannot stall the pull connector
(a poison record is dead-lettered; a cursor that loops fails the run, keeping the watermark; one
that does not end within the page cap is resumed by the next run: test_connector_resume.py)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from connector_pull import handler as pull
from connector_pull.contract import Settings as PullSettings
from shared.bodies import MAX_VALUES
from shared.connector_state import CLOCK_SKEW, utc
from tests.lambdas.conftest import HttpResult, printed
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import Aws
from tests.lambdas.test_connectors import SOURCE, Clock, Invocation, post

SQS_MAX_BYTES = 256 * 1024  # body and attributes of one message


# --- push: refused before the first record lands ----------------------------------------------------


@pytest.mark.parametrize("owner", ["José Ñandú", "x\ny", "x\ry", " padded", "bell\x07"])
def test_an_owner_s3_metadata_cannot_carry_is_a_422_before_anything_lands_and_is_not_logged(
    pushing: Aws, capsys: pytest.CaptureFixture[str], owner: str
) -> None:
    records = [{"id": "ok", "body": "fine"}, {"id": "bad", "body": "fine", "owner": owner}]
    result = post("crm", {"records": records})
    assert result.status == 422
    assert result.body["message"].startswith("records.1.owner: ")
    assert pushing.landing_versions() == []  # the first record did not land either
    out = capsys.readouterr().out
    assert owner not in out
    assert json.dumps(owner)[1:-1] not in out  # nor as JSON escapes


def test_an_ascii_owner_lands_as_the_metadata_the_pipeline_reads(pushing: Aws) -> None:
    result = post("crm", {"records": [{"id": "c-1", "title": "Café — menu", "body": "x", "owner": "agent-7 (EMEA)"}]})
    assert result.status == 202
    head = pushing.s3.head_object(Bucket=LANDING, Key="realtime/crm/c-1.md")
    assert head["Metadata"]["owner"] == "agent-7 (EMEA)"


@pytest.mark.parametrize(
    ("record", "field", "why"),
    [
        ({"id": "a", "body": "\u0000"}, "records.1.body", "NUL"),
        ({"id": "a", "body": "text\u0000more"}, "records.1.body", "NUL"),
        ({"id": "a", "body": "  \n\t "}, "records.1.body", "whitespace"),
        ({"id": "a", "title": "bell\u0007", "body": "b"}, "records.1.title", "control characters"),
        ({"id": "a", "title": "\u001b[2J clear", "body": "b"}, "records.1.title", "control characters"),
        ({"id": "a", "title": "invoice \u202egpj.exe", "body": "b"}, "records.1.title", "bidirectional override"),
        ({"id": "a", "title": "a \u2066b\u2069", "body": "b"}, "records.1.title", "bidirectional override"),
        ({"id": "first", "body": "the second record of this id"}, "records.1.id", "records.0.id"),
        ({"id": "..", "body": "b"}, "records.1.id", "pattern"),  # it would land as realtime/crm/...md
    ],
)
def test_content_the_pipeline_would_refuse_is_a_422_naming_the_field(
    pushing: Aws, record: dict[str, Any], field: str, why: str
) -> None:
    result = post("crm", {"records": [{"id": "first", "body": "fine"}, record]})
    assert result.status == 422
    assert result.body["message"].startswith(f"{field}: ")
    assert why in result.body["message"]
    assert pushing.landing_versions() == []


@pytest.mark.parametrize(
    ("title", "heading"),
    [
        ("a\n# injected", b"# a # injected\n\n"),  # one heading line: the title cannot add a heading
        ("Refund request\r\n", b"# Refund request\n\n"),  # pasted with its line break
        ("\tIndented\tby  tabs ", b"# Indented by tabs\n\n"),
        ("a\u2028b\u2029\u0085c", b"# a b c\n\n"),
        (" \r\n\t", b""),  # only whitespace: no heading
        # Format characters that are text: an emoji sequence's joiners, a soft hyphen.
        ("Team \U0001f469\u200d\U0001f4bb re\u00adport", "# Team \U0001f469\u200d\U0001f4bb re\u00adport\n\n".encode()),
    ],
)
def test_a_title_s_whitespace_runs_become_one_space_on_one_heading_line(
    pushing: Aws, title: str, heading: bytes
) -> None:
    result = post("crm", {"records": [{"id": "t", "title": title, "body": "b"}]})
    assert result.status == 202
    assert pushing.s3.get_object(Bucket=LANDING, Key="realtime/crm/t.md")["Body"].read() == heading + b"b\n"


def test_a_title_is_at_most_500_characters_once_its_whitespace_is_collapsed(pushing: Aws) -> None:
    assert post("crm", {"records": [{"id": "t", "title": "x" * 499 + "\r\n", "body": "b"}]}).status == 202
    assert post("crm", {"records": [{"id": "t", "title": "x" * 501, "body": "b"}]}).status == 422


def test_a_422_lists_ten_problems_and_counts_the_rest_without_echoing_key_names(pushing: Aws) -> None:
    """60 unknown keys would answer a message of every name whole (150,000 answered 6 MB, past
    what Lambda may return)."""
    name = "k" * 100
    body = {"records": [{"id": "a", "body": "b"}], **{f"{name}{n}": 0 for n in range(60)}}
    result = post("crm", body)
    assert result.status == 422
    message = result.body["message"]
    assert message.endswith("; and 50 more")
    assert message.count("Extra inputs are not permitted") == 10
    assert len(message) < 2000
    assert name not in message  # each name cut to 64 characters
    assert pushing.landing_versions() == []


def traced_post(body: Any) -> tuple[HttpResult, int]:
    """post("crm", body) and the most memory it held at once (traced)."""
    tracemalloc.start()
    try:
        result = post("crm", body)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_body_of_150000_unknown_keys_is_refused_before_validation_holds_an_error_for_each(pushing: Aws) -> None:
    """An error per unknown key, held until worded: about 1.5 MB of keys took the function past its
    256 MB. Refused first, with the bound, and with little allocated."""
    body = {"records": [{"id": "a", "body": "b"}], **{f"k{n:07d}": 0 for n in range(150_000)}}
    result, peak = traced_post(body)
    assert result.status == 400
    assert result.body["message"] == "body: an object has 150001 keys; at most 64 are read"
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"
    assert pushing.landing_versions() == []


def test_a_push_of_millions_of_tiny_values_is_a_400_in_bounded_memory(pushing: Aws) -> None:
    """5.9 MB of "{}," (under Lambda's 6 MB request) is two million objects once parsed: two
    parses of it took a 256 MB function past its memory, where API Gateway answers a bare 502."""
    body = '{"records": [{"id": "a", "body": "x"}], "x": [' + "{}," * 2_000_000 + "{}]}"
    result, peak = traced_post(body)
    assert (result.status, result.body["message"]) == (
        400,
        f"body: holds at least 2000005 values; at most {MAX_VALUES} are read",  # 2,000,001 {} and 4 around
    )
    assert peak < 4 * len(body), f"{peak / 2**20:.0f} MiB"
    assert pushing.landing_versions() == []


def test_a_repeated_key_among_many_is_named(pushing: Aws) -> None:
    """Found in one pass (a count per key took 15 s for 40,000 keys, past API Gateway's 29 s at 0.6 MB)."""
    text = "{" + ",".join(f'"k{n:06d}":0' for n in range(40_000)) + ',"k000007":1,"records":[]}'
    result = post("crm", text)
    assert result.status == 400
    assert result.body["message"] == "body: the key 'k000007' is given twice in one object"


# --- pull: poison records, paging that does not end ----------------------------------------------


class Upstream:
    """A source that answers the pages it was given, the last one again when they run out."""

    longest_get_seconds = 3.0  # as LegacyClient states it: what a run keeps back for a page

    def __init__(self, *pages: dict[str, Any]) -> None:
        self.pages = pages
        self.requests: list[dict[str, Any]] = []

    def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
        self.requests.append(params)
        return self.pages[min(len(self.requests), len(self.pages)) - 1], 0


def article(number: str, updated: Any, body: str = "text") -> dict[str, Any]:
    return {"article": {"id": number, "title": "t", "body": {"text": body}, "audit": {"updatedAt": updated}}}


def run(
    aws: Aws, upstream: Upstream, clock: Clock | None = None, seconds_left: Callable[[], float] | None = None
) -> pull.Run:
    watermarks = pull.Watermarks(aws.dynamodb.Table("registry"))
    return pull.pull(
        upstream,  # type: ignore[arg-type]  # the one method pull calls
        SOURCE,
        s3=aws.s3,
        sqs=aws.sqs,
        watermarks=watermarks,
        dlq_url=aws.dlq_url,
        bucket=LANDING,
        clock=clock or Clock(),
        seconds_left=seconds_left,
    )


def watermark(aws: Aws) -> str | None:
    return pull.Watermarks(aws.dynamodb.Table("registry")).get(SOURCE.name)


def landed_text(aws: Aws, record_id: str) -> str:
    return str(aws.s3.get_object(Bucket=LANDING, Key=f"realtime/kb-articles/{record_id}.md")["Body"].read().decode())


@pytest.mark.parametrize(
    ("pages", "counts"),
    [
        ([[("a", "2026-11-02T09:00:00Z", "NEW")], [("a", "2026-11-02T08:00:00Z", "OLD")]], (1, 1)),  # newest first
        ([[("a", "2026-11-02T08:00:00Z", "OLD")], [("a", "2026-11-02T09:00:00Z", "NEW")]], (2, 0)),
        ([[("a", "2026-11-02T09:00:00Z", "NEW"), ("a", "2026-11-02T09:00:00Z", "SAME")]], (1, 1)),  # one page
        ([[("a", "2026-11-02T09:00:00Z", "NEW"), ("a", None, "UNDATED")]], (1, 1)),
        ([[("a", None, "UNDATED"), ("a", "2026-11-02T09:00:00Z", "NEW")]], (2, 0)),
    ],
    ids=["newest-first", "oldest-first", "same-time", "undated-after", "undated-before"],
)
def test_an_id_listed_twice_in_one_run_keeps_its_newest_version(
    aws: Aws, pages: list[list[tuple[str, str | None, str]]], counts: tuple[int, int]
) -> None:
    """Landed in page order, the older version would stay current: the watermark has passed the newer."""
    answers = [
        {
            "items": [article(i, t, body) for i, t, body in page],
            **({"next_cursor": str(n + 1)} if n + 1 < len(pages) else {}),
        }
        for n, page in enumerate(pages)
    ]
    result = run(aws, Upstream(*answers))
    assert landed_text(aws, "a").endswith("NEW\n")
    assert (result.landed, result.repeated) == counts
    assert watermark(aws) == "2026-11-02T09:00:00+00:00"


class Listing(Upstream):
    """A source that lists, on one page, its records changed at or after ``since``: its bound
    included, as many sources do."""

    def __init__(self, *items: dict[str, Any]) -> None:
        super().__init__()
        self.items = items

    def get(self, path: str, params: dict[str, Any]) -> tuple[Any, int]:
        self.requests.append(params)
        since = params.get(SOURCE.since_param)
        changed = [
            item
            for item in self.items
            if since is None
            or dt.datetime.fromisoformat(item["article"]["audit"]["updatedAt"]) >= dt.datetime.fromisoformat(since)
        ]
        return {"items": changed}, 0


def poison_article(number: str, updated: str, body: Any) -> dict[str, Any]:
    return {"article": {"id": number, "title": "t", "body": {"text": body}, "audit": {"updatedAt": updated}}}


@pytest.mark.parametrize("poisoned", ["2026-11-02T00:00:00Z", "2026-10-31T00:00:00Z"], ids=["newest", "older"])
def test_a_poison_record_with_a_change_time_is_dead_lettered_once_and_the_watermark_passes_it(
    aws: Aws, poisoned: str
) -> None:
    """Newest of its listing, it was left ahead of the watermark, which moved for landed records
    only: listed and dead-lettered again by every run (96 a day at rate(15 minutes)). Its DLQ message
    is its copy; at the watermark, with a since that includes its bound, it is saved with it, as a
    landed version is (two at one instant here: each is its own)."""
    source = Listing(
        article("ok", "2026-11-01T00:00:00Z"), poison_article("bad", poisoned, None), poison_article("bad", poisoned, 7)
    )
    runs = [run(aws, source) for _ in range(3)]
    assert [(r.landed, r.poison) for r in runs] == [(1, 2), (0, 0), (0, 0)]
    assert len(aws.dlq()) == 2
    assert watermark(aws) == max(utc(dt.datetime.fromisoformat(t)) for t in (poisoned, "2026-11-01T00:00Z")).isoformat()


@pytest.mark.parametrize("updated", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+01:00"])
def test_a_change_time_out_of_range_in_utc_is_poison_and_the_run_goes_on(aws: Aws, updated: str) -> None:
    upstream = Upstream({"items": [article("bad", updated), article("good", "2026-11-02T08:00:00Z")]})
    result = run(aws, upstream)
    assert (result.landed, result.poison) == (1, 1)
    (dead,) = aws.dlq()
    assert dead["MessageAttributes"]["reason"]["StringValue"] == (
        "poison record: updated_at: out of range once converted to UTC"
    )
    assert watermark(aws) == "2026-11-02T08:00:00+00:00"


def test_a_change_time_later_than_now_is_poison_and_never_the_watermark(aws: Aws) -> None:
    clock = Clock()
    now = dt.datetime.fromtimestamp(clock.now, dt.UTC)
    within_skew = (now + CLOCK_SKEW).isoformat()  # a source's clock a little ahead of ours
    items = [article("future", "9999-12-31T00:00:00Z"), article("late", (now + dt.timedelta(hours=1)).isoformat())]
    result = run(aws, Upstream({"items": [*items, article("ahead", within_skew)]}), clock)
    assert (result.landed, result.poison) == (1, 2)
    reasons = {d["MessageAttributes"]["reason"]["StringValue"] for d in aws.dlq()}
    assert reasons == {"poison record: updated_at: later than now (by more than 0:05:00); it would hide later changes"}
    assert watermark(aws) == within_skew


@pytest.mark.parametrize("stored", ["9999-12-31T00:00:00+00:00", "not a time"])
def test_a_stored_watermark_that_cannot_be_one_is_not_trusted(
    aws: Aws, stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One saved before future change times were poison would hide every change for good: the run
    pulls from the beginning, says so, and saves the newest change it sees."""
    pull.Watermarks(aws.dynamodb.Table("registry")).put(SOURCE.name, stored)
    upstream = Upstream({"items": [article("a", "2026-11-02T08:00:00Z")]})
    capsys.readouterr()
    result = run(aws, upstream)
    (line,) = [line for line in printed(capsys) if line.get("level") == "WARNING"]
    assert line["message"] == "stored watermark not trusted: pulling from the beginning"
    assert stored not in json.dumps(line)  # the stored text is not logged
    assert result.landed == 1
    assert upstream.requests[0][SOURCE.since_param] is None
    assert watermark(aws) == "2026-11-02T08:00:00+00:00"


def test_a_stored_watermark_within_the_skew_is_the_next_pull_s_start(aws: Aws) -> None:
    clock = Clock()
    ahead = (dt.datetime.fromtimestamp(clock.now, dt.UTC) + CLOCK_SKEW).isoformat()
    pull.Watermarks(aws.dynamodb.Table("registry")).put(SOURCE.name, ahead)
    upstream = Upstream({"items": []})
    run(aws, upstream, clock)
    assert upstream.requests[0][SOURCE.since_param] == ahead


def test_a_cursor_too_long_to_follow_fails_the_run_without_moving_the_watermark(aws: Aws) -> None:
    pull.Watermarks(aws.dynamodb.Table("registry")).put(SOURCE.name, "2026-11-01T00:00:00+00:00")
    pages = {"items": [article("a", "2026-11-02T08:00:00Z")], "next_cursor": "c" * (pull.MAX_CURSOR_CHARS + 1)}
    with pytest.raises(pull.PagingError, match="longer than 4096 characters"):
        run(aws, Upstream(pages))
    assert watermark(aws) == "2026-11-01T00:00:00+00:00"


def test_a_cursor_of_the_longest_length_is_followed(aws: Aws) -> None:
    longest = "c" * pull.MAX_CURSOR_CHARS
    upstream = Upstream({"items": [], "next_cursor": longest}, {"items": [article("a", "2026-11-02T08:00:00Z")]})
    assert (run(aws, upstream).pages, upstream.requests[1]["cursor"]) == (2, longest)


@pytest.mark.parametrize("updated", ["2026-11-02T08:00:00", "2026-11-02T09:00:00+01:00", "2026-11-02T03:00:00-05:00"])
def test_a_change_time_is_saved_in_utc_whatever_the_machine_s_time_zone(aws: Aws, updated: str) -> None:
    """Without an offset it is UTC (as on Lambda); with one it is converted to UTC, not to the
    machine's zone: watermarks are compared as text, which orders UTC ISO times only."""
    zone = os.environ.get("TZ")
    os.environ["TZ"] = "America/New_York"
    time.tzset()
    try:
        run(aws, Upstream({"items": [article("a", updated)]}))
    finally:
        if zone is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = zone
        time.tzset()
    assert watermark(aws) == "2026-11-02T08:00:00+00:00"


@pytest.mark.parametrize(
    ("cursors", "requests"),
    [
        (["c1"], 3),  # the same next cursor on every page after the first: the third page repeats it
        (["c1", "c2", "c1"], 4),  # a loop through two cursors
    ],
)
def test_a_repeated_cursor_fails_the_run_without_moving_the_watermark(
    aws: Aws, cursors: list[str], requests: int
) -> None:
    first = {"items": [article("a", "2026-11-02T08:00:00Z")], "next_cursor": "c0"}
    upstream = Upstream(first, *({"items": [], "next_cursor": cursor} for cursor in cursors))
    with pytest.raises(pull.PagingError, match="repeated a cursor"):
        run(aws, upstream)
    assert len(upstream.requests) == requests  # no round trip past the first repeat
    assert watermark(aws) is None  # although record "a" landed


def test_the_records_after_a_poison_or_a_repeated_one_on_the_same_page_land(aws: Aws) -> None:
    items = [
        article("a", "2026-11-02T09:00:00Z", "NEW"),
        article("a", "2026-11-02T08:00:00Z", "OLD"),
        article("bad id!", "2026-11-02T08:00:00Z"),
        article("a", "2026-11-02T07:00:00Z", "OLDER"),
        article("b", "2026-11-02T06:00:00Z"),
    ]
    result = run(aws, Upstream({"items": items}))
    assert (result.landed, result.poison, result.repeated) == (2, 1, 2)
    assert landed_text(aws, "a").endswith("NEW\n")
    assert landed_text(aws, "b").endswith("text\n")


def test_a_dead_letter_says_where_the_record_was_and_the_log_line_names_no_content(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    poison = article("bad id!", "2026-11-02T08:00:00Z", body="secret body text")
    first = {"items": [article("a", "2026-11-02T08:00:00Z")], "next_cursor": "c1"}
    upstream = Upstream(first, {"items": [article("b", "2026-11-02T08:00:00Z"), poison]})
    capsys.readouterr()
    assert run(aws, upstream).poison == 1
    (dead,) = aws.dlq()
    assert json.loads(dead["Body"]) == {"connector": SOURCE.name, "page": 2, "index": 1, "record": poison}
    (line,) = [line for line in printed(capsys) if line.get("message") == "poison record dead-lettered"]
    assert (line["level"], line["source"], line["page"], line["index"]) == ("WARNING", SOURCE.name, 2, 1)
    assert "secret body text" not in capsys.readouterr().out + json.dumps(line)


class Recorded:
    """The registry table, with each call the run makes to it."""

    def __init__(self, table: Any) -> None:
        self.table = table
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return getattr(self.table, name)(**kwargs)

        return call


@pytest.mark.parametrize(
    "items",
    [[], [article("a", "2026-11-01T00:00:00Z")], [article("a", None)]],
    ids=["no changes", "the watermark's own change", "undated"],
)
def test_a_run_reads_the_watermark_consistently_and_writes_it_only_when_it_moved(
    aws: Aws, items: list[dict[str, Any]]
) -> None:
    """Read consistently: an eventually consistent read right after the last run's write could
    return the watermark before it and pull its pages again. Not written when no newer change was
    seen: a write per run of a source that rarely changes (every 15 minutes) is a write for nothing."""
    stored = "2026-11-01T00:00:00+00:00"
    pull.Watermarks(aws.dynamodb.Table("registry")).put(SOURCE.name, stored)
    table = Recorded(aws.dynamodb.Table("registry"))
    pull.pull(
        Upstream({"items": items}),  # type: ignore[arg-type]
        SOURCE,
        s3=aws.s3,
        sqs=aws.sqs,
        watermarks=pull.Watermarks(table),
        dlq_url=aws.dlq_url,
        bucket=LANDING,
        clock=Clock(),
    )
    key = {"pk": f"connector#{SOURCE.name}", "sk": "watermark"}
    assert table.calls[0] == ("get_item", {"Key": key, "ConsistentRead": True})
    # All else the run writes is the claim of each dated change it lands, and the watermark only
    # to add an id whose change at the watermark itself it landed (saved without any here).
    dated = [item["article"]["id"] for item in items if item["article"]["audit"]["updatedAt"]]
    at_mark = ["watermark" for item in items if item["article"]["audit"]["updatedAt"] == "2026-11-01T00:00:00Z"]
    assert [(name, call["Item"]["sk"]) for name, call in table.calls[1:]] == [
        *(("put_item", f"landed#{i}") for i in dated),
        *(("put_item", sk) for sk in at_mark),
    ]


def test_a_pulled_title_with_tabs_and_a_line_break_lands_on_one_line(aws: Aws) -> None:
    """It was dead-lettered, never ingested."""
    item = article("a", "2026-11-02T08:00:00Z")
    item["article"]["title"] = "Reset\ta password\r\n"
    assert (run(aws, Upstream({"items": [item]})).landed, aws.dlq()) == (1, [])
    assert (
        aws.s3.get_object(Bucket=LANDING, Key="realtime/kb-articles/a.md")["Body"]
        .read()
        .startswith(b"# Reset a password\n\n")
    )


def test_a_title_with_other_control_characters_is_poison_with_the_field_named(aws: Aws) -> None:
    item = article("a", "2026-11-02T08:00:00Z")
    item["article"]["title"] = "bell\u0007"
    assert run(aws, Upstream({"items": [item]})).poison == 1
    (dead,) = aws.dlq()
    assert dead["MessageAttributes"]["reason"]["StringValue"] == (
        "poison record: title: Value error, must be text without control characters"
    )


def test_a_paging_failure_is_logged_and_counted_and_gives_the_lease_back(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = PullSettings(
        pull_source=SOURCE, landing_bucket=LANDING, registry_table="registry", dlq_url=aws.dlq_url, lease_seconds=360
    )
    monkeypatch.setattr(pull, "settings", lambda: settings)
    monkeypatch.setattr(pull, "client", lambda: Upstream({"items": [], "next_cursor": "c1"}))
    capsys.readouterr()
    with pytest.raises(pull.PullFailedError, match=r"^the pull of kb-articles failed \(PagingError\)$") as raised:
        pull.lambda_handler({}, Invocation(aws_request_id="run-1"))
    assert raised.value.__cause__ is None  # what Lambda logs of it: its own text only, no chained upstream text
    assert raised.value.__suppress_context__
    lines = printed(capsys)
    (failure,) = [line for line in lines if line.get("message") == "pull failed; the watermark stays where it was"]
    assert failure["source"] == SOURCE.name
    assert failure["error_type"] == "PagingError"
    assert "handler.py" in failure["raised_at"]
    assert "after page 1" not in json.dumps(failure)  # where it was raised (code), not its text (data)
    assert any(line.get("RunsFailed") == [1.0] or line.get("RunsFailed") == 1.0 for line in lines)
    assert pull.Lease(aws.dynamodb.Table("registry"), SOURCE.name, seconds=360).acquire("run-2")
    assert watermark(aws) is None


# --- pull: a dead letter always fits in an SQS message --------------------------------------------


@pytest.fixture
def strict_dlq(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Aws:
    """The DLQ with SQS's classic message size limit (moto's default is the larger, newer one)."""
    url = aws.sqs.create_queue(QueueName="dlq-256k", Attributes={"MaximumMessageSize": str(SQS_MAX_BYTES)})["QueueUrl"]
    monkeypatch.setattr(aws, "dlq_url", url)
    return aws


def test_a_non_ascii_poison_record_is_dead_lettered_whole_when_it_fits(strict_dlq: Aws) -> None:
    item = article("bad id!", "2026-11-02T08:00:00Z", body="é" * 50_000)  # 300 KB as \\u00e9 escapes
    assert run(strict_dlq, Upstream({"items": [item]})).poison == 1
    (dead,) = strict_dlq.dlq()
    assert json.loads(dead["Body"])["record"] == item


def test_a_poison_record_too_large_for_sqs_is_cut_with_its_size(strict_dlq: Aws) -> None:
    item = article("bad id!", "2026-11-02T08:00:00Z", body="é" * 150_000)
    assert run(strict_dlq, Upstream({"items": [item]})).poison == 1
    (dead,) = strict_dlq.dlq()
    assert len(dead["Body"].encode()) + len(dead["MessageAttributes"]["reason"]["StringValue"]) < SQS_MAX_BYTES
    letter = json.loads(dead["Body"])
    whole = json.dumps(item, ensure_ascii=False)
    assert (letter["connector"], letter["index"], letter["record_bytes"]) == (SOURCE.name, 0, len(whole.encode()))
    assert whole.startswith(letter["record_start"])
    assert len(letter["record_start"]) > 50_000
