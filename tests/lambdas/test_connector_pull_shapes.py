"""The pull connector against answers not in the shape its config describes: a page without a list
of records where ``items_field`` says fails the run (an empty list is an honest "no changes"), a
next cursor neither text nor an integer fails it rather than be sent as Python's text, and a record
field of the wrong JSON type makes a poison record rather than land as Python's text of it. Each
message names the field and the JSON type found, never the source's text."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from connector_pull import handler as pull
from connector_pull.contract import Settings as PullSettings
from tests.lambdas.conftest import printed
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import Aws
from tests.lambdas.test_connector_hostile import Upstream, article, run, watermark
from tests.lambdas.test_connectors import SOURCE, Invocation

STORED = "2026-11-01T00:00:00+00:00"  # the watermark of an earlier run
UPSTREAM_TEXT = "maintenance window"  # what a source's error answer says: never in a message


def store_watermark(aws: Aws) -> None:
    pull.Watermarks(aws.dynamodb.Table("registry")).put(SOURCE.name, STORED)


def reasons(aws: Aws) -> list[str]:
    return [dead["MessageAttributes"]["reason"]["StringValue"] for dead in aws.dlq()]


# --- the list of records --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "found", "whole"),
    [
        pytest.param(
            {"data": [article("a", "2026-11-02T08:00:00Z")]}, "nothing (missing or null)", "an object", id="renamed"
        ),
        pytest.param({"items": {"a": article("a", "2026-11-02T08:00:00Z")}}, "an object", "an object", id="object"),
        pytest.param([article("a", "2026-11-02T08:00:00Z")], "nothing (missing or null)", "an array", id="bare list"),
        pytest.param({"error": UPSTREAM_TEXT}, "nothing (missing or null)", "an object", id="error with 200"),
        pytest.param({"items": None}, "nothing (missing or null)", "an object", id="null"),
        pytest.param({"items": UPSTREAM_TEXT}, "a string", "an object", id="string"),
        pytest.param(UPSTREAM_TEXT, "nothing (missing or null)", "a string", id="answer a string"),
    ],
)
def test_an_answer_without_a_list_of_records_fails_the_run_keeping_the_watermark(
    aws: Aws, answer: Any, found: str, whole: str
) -> None:
    store_watermark(aws)
    upstream = Upstream(answer)
    with pytest.raises(pull.AnswerShapeError) as raised:
        run(aws, upstream)
    assert (
        str(raised.value) == f"page 1: the answer ({whole}) holds {found} at items_field 'items', not a list of records"
    )
    error = raised.value
    assert (error.page, error.field, error.path, error.found, error.answer) == (1, "items_field", "items", found, whole)
    assert UPSTREAM_TEXT not in str(raised.value)
    assert watermark(aws) == STORED  # the next run asks for the same changes again
    assert (aws.landing_versions(), aws.dlq(), len(upstream.requests)) == ([], [], 1)


def test_a_page_of_more_records_than_a_run_can_land_fails_the_run_before_any_lands(aws: Aws) -> None:
    """Each record is an S3 write (or an SQS send) before the run can stop for time: 500,000 of them
    (1 MB of zeros) outlast any invocation, which would then save nothing and start over each run."""
    store_watermark(aws)
    upstream = Upstream({"items": [0] * (pull.MAX_PAGE_RECORDS + 1)})
    with pytest.raises(pull.AnswerShapeError) as raised:
        run(aws, upstream)
    assert str(raised.value) == (
        f"page 1: the answer (an object) holds an array at items_field 'items', not a list of at most "
        f"{pull.MAX_PAGE_RECORDS} records ({pull.MAX_PAGE_RECORDS + 1}: ask for smaller pages)"
    )
    assert watermark(aws) == STORED
    assert (aws.landing_versions(), aws.dlq()) == ([], [])  # not one record landed or dead-lettered


def test_a_page_at_the_record_limit_lands_whole(aws: Aws) -> None:
    store_watermark(aws)
    items = [article(f"a{n}", "2026-11-02T08:00:00Z") for n in range(pull.MAX_PAGE_RECORDS)]
    assert run(aws, Upstream({"items": items})).landed == pull.MAX_PAGE_RECORDS


def test_an_empty_list_is_a_run_with_no_changes(aws: Aws) -> None:
    store_watermark(aws)
    result = run(aws, Upstream({"items": []}))
    assert (result.landed, result.poison, result.pages) == (0, 0, 1)
    assert watermark(aws) == STORED


def test_a_later_page_without_its_list_keeps_the_watermark_and_the_next_run_reads_again(aws: Aws) -> None:
    store_watermark(aws)
    first = {"items": [article("a", "2026-11-02T08:00:00Z")], "next_cursor": "c1"}
    with pytest.raises(pull.AnswerShapeError, match=r"^page 2: "):
        run(aws, Upstream(first, {"records": [article("b", "2026-11-03T08:00:00Z")]}))
    assert watermark(aws) == STORED  # although record "a" landed: page 2's changes were never read
    again = Upstream(first, {"items": [article("b", "2026-11-03T08:00:00Z")]})
    assert run(aws, again).landed == 2
    assert again.requests[0][SOURCE.since_param] == STORED
    assert watermark(aws) == "2026-11-03T08:00:00+00:00"


@pytest.fixture
def scheduled(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Aws:
    settings = PullSettings(
        pull_source=SOURCE, landing_bucket=LANDING, registry_table="registry", dlq_url=aws.dlq_url, lease_seconds=360
    )
    monkeypatch.setattr(pull, "settings", lambda: settings)
    return aws


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (
            {"error": UPSTREAM_TEXT},
            "page 1: the answer (an object) holds nothing (missing or null) at items_field 'items', "
            "not a list of records",
        ),
        (
            {"items": [], "next_cursor": {"after": UPSTREAM_TEXT}},
            "page 1: the answer (an object) holds an object at next_cursor_field 'next_cursor', not text a URL can carry, or an integer",
        ),
    ],
)
def test_an_answer_of_the_wrong_shape_is_logged_as_an_error_and_counted(
    scheduled: Aws,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answer: dict[str, Any],
    reason: str,
) -> None:
    store_watermark(scheduled)
    monkeypatch.setattr(pull, "client", lambda: Upstream(answer))
    capsys.readouterr()
    with pytest.raises(pull.PullFailedError, match=r"^the pull of kb-articles failed \(AnswerShapeError\)$"):
        pull.lambda_handler({}, Invocation(aws_request_id="run-1"))
    lines = printed(capsys)
    (failure,) = [line for line in lines if str(line.get("message", "")).startswith("pull failed")]
    assert (failure["level"], failure["source"], failure["error_type"]) == ("ERROR", SOURCE.name, "AnswerShapeError")
    assert failure["reason"] == reason
    assert UPSTREAM_TEXT not in json.dumps(lines)
    (emitted,) = [line for line in lines if "_aws" in line]
    assert (emitted["AnswersUnusable"], emitted["RunsFailed"], emitted["Source"]) == ([1.0], [1.0], SOURCE.name)
    assert "RecordsPulled" not in emitted  # not a finished run
    assert pull.Lease(scheduled.dynamodb.Table("registry"), SOURCE.name, seconds=360).acquire("run-2")
    assert watermark(scheduled) == STORED


def test_other_failures_are_not_counted_as_unusable_answers(
    scheduled: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(pull, "client", lambda: Upstream({"items": [], "next_cursor": "c1"}))  # loops
    capsys.readouterr()
    with pytest.raises(pull.PullFailedError, match=r"\(PagingError\)$"):
        pull.lambda_handler({}, Invocation(aws_request_id="run-1"))
    (emitted,) = [line for line in printed(capsys) if "_aws" in line]
    assert "AnswersUnusable" not in emitted
    assert emitted["RunsFailed"] == [1.0]


# --- the next cursor ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cursor", "found"),
    [
        (False, "a boolean"),  # a common way to say "last page": Python's "False" was asked for
        (True, "a boolean"),
        ({"after": "A-9"}, "an object"),
        (["c1"], "an array"),
        (2.5, "a number"),
        ("c\ud800", "a string"),  # JSON's escape of a lone surrogate: no encoding takes it, no URL holds it
    ],
)
def test_a_cursor_neither_text_nor_an_integer_ends_paging_naming_the_field(aws: Aws, cursor: Any, found: str) -> None:
    store_watermark(aws)
    upstream = Upstream({"items": [article("a", "2026-11-02T08:00:00Z")], "next_cursor": cursor}, {"items": []})
    with pytest.raises(pull.AnswerShapeError) as raised:
        run(aws, upstream)
    assert str(raised.value) == (
        f"page 1: the answer (an object) holds {found} at next_cursor_field 'next_cursor', not text a URL can carry, "
        "or an integer"
    )
    assert raised.value.field == "next_cursor_field"
    assert len(upstream.requests) == 1  # no page was asked for with Python's text of the value
    assert watermark(aws) == STORED


@pytest.mark.parametrize(("cursor", "sent"), [(2, "2"), (0, "0"), ("A-9", "A-9")])
def test_a_text_or_integer_cursor_is_followed_as_its_text(aws: Aws, cursor: Any, sent: str) -> None:
    upstream = Upstream({"items": [], "next_cursor": cursor}, {"items": [article("a", "2026-11-02T08:00:00Z")]})
    assert run(aws, upstream).landed == 1
    assert [request["cursor"] for request in upstream.requests] == [None, sent]


@pytest.mark.parametrize("last", [{"next_cursor": None}, {"next_cursor": ""}, {}])
def test_a_null_empty_or_absent_cursor_is_the_last_page(aws: Aws, last: dict[str, Any]) -> None:
    upstream = Upstream({"items": [article("a", "2026-11-02T08:00:00Z")], **last})
    assert (run(aws, upstream).pages, len(upstream.requests)) == (1, 1)
    assert watermark(aws) == "2026-11-02T08:00:00+00:00"


# --- the fields of a record -----------------------------------------------------------------------


def with_field(name: str, value: Any) -> dict[str, Any]:
    item = article("bad", "2026-11-02T08:00:00Z")
    inner = item["article"]
    if name == "body":
        inner["body"]["text"] = value
    elif name == "updated_at":
        inner["audit"]["updatedAt"] = value
    else:
        inner[name] = value
    return item


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("body", {"html": "<p>x</p>"}, "body: an object at article.body.text, not text"),
        ("body", False, "body: a boolean at article.body.text, not text"),
        ("body", ["a", "b"], "body: an array at article.body.text, not text"),
        ("body", None, "body: nothing (missing or null) at article.body.text, not text"),
        ("body", 5, "body: an integer at article.body.text, not text"),
        ("id", True, "id: a boolean at article.id, not text or an integer"),
        ("id", {"v": "A-1"}, "id: an object at article.id, not text or an integer"),
        ("id", 1.5, "id: a number at article.id, not text or an integer"),
        ("id", None, "id: nothing (missing or null) at article.id, not text or an integer"),
        ("title", {"en": "Hi"}, "title: an object at article.title, not text"),
        ("title", ["Hi"], "title: an array at article.title, not text"),
        ("title", False, "title: a boolean at article.title, not text"),
        ("title", 2026, "title: an integer at article.title, not text"),
        ("updated_at", {"at": "2026-11-02"}, "updated_at: an object at article.audit.updatedAt, not a time"),
        ("updated_at", True, "updated_at: a boolean at article.audit.updatedAt, not a time"),
        ("updated_at", ["2026-11-02"], "updated_at: an array at article.audit.updatedAt, not a time"),
    ],
)
def test_a_field_of_the_wrong_json_type_is_poison_naming_it_and_never_lands(
    aws: Aws, name: str, value: Any, reason: str
) -> None:
    item = with_field(name, value)
    result = run(aws, Upstream({"items": [item, article("good", "2026-11-03T08:00:00Z")]}))
    assert (result.landed, result.poison) == (1, 1)
    assert [v["Key"] for v in aws.landing_versions()] == ["realtime/kb-articles/good.md"]
    assert reasons(aws) == [f"poison record: {reason}"]
    (dead,) = aws.dlq()
    assert json.loads(dead["Body"])["record"] == item  # the record as the source sent it
    assert watermark(aws) == "2026-11-03T08:00:00+00:00"


@pytest.mark.parametrize(
    ("item", "found"), [("A-1", "a string"), (["A-1"], "an array"), (None, "nothing (missing or null)")]
)
def test_an_item_that_is_not_an_object_is_poison(aws: Aws, item: Any, found: str) -> None:
    assert run(aws, Upstream({"items": [item]})).poison == 1
    assert reasons(aws) == [f"poison record: record: {found}, not an object"]


def test_an_integer_id_lands_as_its_digits_and_a_null_title_as_no_heading(aws: Aws) -> None:
    item = with_field("id", 42)
    item["article"]["title"] = None
    assert run(aws, Upstream({"items": [item]})).landed == 1
    landed = aws.s3.get_object(Bucket=LANDING, Key="realtime/kb-articles/42.md")
    assert landed["Body"].read() == b"text\n"
    assert landed["Metadata"]["source"] == "kb-articles:42"


def test_a_numeric_change_time_is_still_read_as_seconds_since_1970(aws: Aws) -> None:
    run(aws, Upstream({"items": [with_field("updated_at", 1_790_000_000)]}))
    assert watermark(aws) == "2026-09-21T14:13:20+00:00"


def test_a_value_no_json_parser_makes_is_named_by_its_python_type(aws: Aws) -> None:
    """A client other than LegacyClient (a test's, another SDK's) may hand over its own values."""
    with pytest.raises(pull.AnswerShapeError) as raised:
        run(aws, Upstream({"items": Decimal("1.5")}))
    assert raised.value.found == "Decimal"
