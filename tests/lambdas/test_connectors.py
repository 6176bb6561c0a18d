"""The real-time connectors: pushed records and pulled ones become landing documents that the
pipeline ingests directly; bad records are refused (push) or dead-lettered (pull)."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest

from connector_pull import handler as pull
from connector_pull.contract import PullSource, Settings as PullSettings
from connector_push import handler as push
from connector_push.contract import PUSHES_REFUSED
from ingestion.pipeline import document_id
from shared.landing import Record, document, land
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from tests.lambdas.conftest import FakeContext, HttpResult, http_result
from tests.lambdas.gateway_fixtures import rest_event
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import Aws, batch, s3_event, sqs_message
from tests.lambdas.legacy_api import (
    ARTICLE_COUNT,
    ARTICLES_PAGE,
    CLIENT_ID,
    CLIENT_SECRET,
    POISON_ARTICLE,
    LegacyApi,
    serve,
)

SOURCE = PullSource(
    name="kb-articles",
    base_url="https://unused.example.com",
    token_path="/oauth/token",
    secret_name="unused",
    records_path="/api/v2/articles",
    schedule="rate(15 minutes)",
    classification="public",
    owner="support-content-team",
    id_field="article.id",
    title_field="article.title",
    body_field="article.body.text",
    updated_field="article.audit.updatedAt",
    items_field="items",
    next_cursor_field="next_cursor",
    since_param="updated_since",
    timeout_seconds=1,
    max_attempts=1,
    max_response_bytes=1_048_576,
)


class Clock:
    """The test's time: it moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def post(source: str, body: Any) -> HttpResult:
    event = rest_event("POST", f"/v1/records/{source}", body)
    return http_result(push.lambda_handler(event, FakeContext()))


def test_pushed_records_land_as_realtime_documents_with_their_metadata(pushing: Aws) -> None:
    records = [{"id": "case-1", "title": "Refund", "body": "Customer wants a refund."}, {"id": "case-2", "body": "x"}]
    result = post("crm", {"records": records})
    assert (result.status, result.body["accepted"]) == (202, 2)
    assert [d["key"] for d in result.body["documents"]] == ["realtime/crm/case-1.md", "realtime/crm/case-2.md"]
    head = pushing.s3.head_object(Bucket=LANDING, Key="realtime/crm/case-1.md")
    assert head["Metadata"] == {
        "classification": "customer",
        "owner": "crm",
        "source": "crm:case-1",
        "origin": "connector:crm",
    }
    assert head["ContentType"] == "text/markdown; charset=utf-8"
    assert [d["version"] for d in result.body["documents"]] == [
        pushing.s3.head_object(Bucket=LANDING, Key=f"realtime/crm/{name}.md")["VersionId"]
        for name in ("case-1", "case-2")
    ]
    body = pushing.s3.get_object(Bucket=LANDING, Key="realtime/crm/case-1.md")["Body"].read()
    assert body == b"# Refund\n\nCustomer wants a refund.\n"


def _landed_text(aws: Aws, record_id: str) -> bytes:
    return bytes(aws.s3.get_object(Bucket=LANDING, Key=f"realtime/crm/{record_id}.md")["Body"].read())


def test_an_older_change_pushed_after_a_newer_one_is_skipped_not_landed(pushing: Aws) -> None:
    """A batch sent again after a failure, or pushes out of order: the older text never goes back
    over the newer one; the same change again lands (a retry), a record without updated_at always."""
    newer = {"id": "case-1", "body": "NEW", "updated_at": "2026-01-02T00:00:00Z"}
    older = {"id": "case-1", "body": "OLD", "updated_at": "2026-01-02T01:00:00+02:00"}  # 23:00 the day before
    assert post("crm", {"records": [newer]}).status == 202
    result = post("crm", {"records": [older, {"id": "case-2", "body": "other"}]})
    assert (result.status, result.body["accepted"]) == (202, 1)
    assert result.body["skipped"] == [
        {"id": "case-1", "reason": "a later change of this record (updated_at) has landed"}
    ]
    assert [d["id"] for d in result.body["documents"]] == ["case-2"]
    assert _landed_text(pushing, "case-1") == b"NEW\n"
    again = post("crm", {"records": [{**newer, "body": "NEW, sent again"}]})
    assert (again.status, again.body["accepted"], again.body["skipped"]) == (202, 1, [])
    assert post("crm", {"records": [{"id": "case-1", "body": "no time"}]}).body["accepted"] == 1
    assert _landed_text(pushing, "case-1") == b"no time\n"
    claim = pushing.dynamodb.Table("registry").get_item(Key={"pk": "connector#crm", "sk": "landed#case-1"})["Item"]
    assert claim["changed"] == "2026-01-02T00:00:00+00:00"  # in UTC: ISO times of one zone compare as text


@pytest.mark.parametrize(
    ("updated_at", "problem"),
    [
        ("2026-12-07T12:05:01Z", "later than this service's clock allows (at most 0:05:00 ahead)"),
        ("0001-01-01T00:00:00+14:00", "a time outside the years 1 to 9999 in UTC"),
        ("9999-12-31T23:59:59-14:00", "a time outside the years 1 to 9999 in UTC"),
    ],
)
def test_an_updated_at_past_the_clock_or_outside_utc_is_refused_and_nothing_lands(
    pushing: Aws, monkeypatch: pytest.MonkeyPatch, updated_at: str, problem: str
) -> None:
    """Landed, a change dated ahead would hold back its id's every real change until then."""
    monkeypatch.setattr(push, "now", lambda: dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC))
    records = [{"id": "ok", "body": "x"}, {"id": "late", "body": "y", "updated_at": updated_at}]
    result = post("crm", {"records": records})
    assert (result.status, result.body["message"]) == (422, f"records.1.updated_at: {problem}")
    assert "Contents" not in pushing.s3.list_objects_v2(Bucket=LANDING, Prefix="realtime/")
    on_time = post("crm", {"records": [{"id": "ok", "body": "x", "updated_at": "2026-12-07T12:05:00Z"}]})
    assert on_time.status == 202


def test_a_body_the_api_passes_as_base64_is_read_as_its_bytes(pushing: Aws) -> None:
    """API Gateway base64-encodes a body whose content type is one of the API's binary media types."""
    event = rest_event(
        "POST", "/v1/records/crm", base64.b64encode(b'{"records": [{"id": "b-1", "body": "x"}]}').decode()
    )
    event["isBase64Encoded"] = True
    result = http_result(push.lambda_handler(event, FakeContext()))
    assert (result.status, result.body["accepted"]) == (202, 1)


def test_a_document_landed_in_a_bucket_without_versioning_has_no_version(aws: Aws) -> None:
    aws.s3.create_bucket(Bucket="unversioned")
    assert land(aws.s3, document("crm", Record(id="c-1", body="x"), classification="customer"), "unversioned") == ""


def test_a_refused_push_is_counted_once_and_an_accepted_one_not(
    pushing: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert post("crm", "{nope").status == 400  # the lowest refusal
    assert post("crm", {"records": [{"id": "ok", "body": "x"}]}).status == 202
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    refused = [document for document in documents if PUSHES_REFUSED in document]
    assert len(documents) == 2
    assert [document[PUSHES_REFUSED] for document in refused] in ([1.0], [[1.0]])
    (directive,) = refused[0]["_aws"]["CloudWatchMetrics"]
    assert {"Name": PUSHES_REFUSED, "Unit": "Count"} in directive["Metrics"]


def test_a_batch_repeating_an_id_is_refused_naming_each_repeat(pushing: Aws) -> None:
    """A second record under one id would replace the first in landing: the batch is refused."""
    result = post("crm", {"records": [{"id": "case-1", "body": "x"}] * 3})
    assert (result.status, result.body["message"]) == (
        422,
        "records.1.id: the same id as records.0.id (one record per id in a batch); "
        "records.2.id: the same id as records.0.id (one record per id in a batch)",
    )
    assert pushing.s3.list_objects_v2(Bucket=LANDING).get("KeyCount") == 0


@pytest.mark.parametrize(
    ("source", "body", "status", "message"),
    [
        ("erp", {"records": [{"id": "1", "body": "x"}]}, 404, "unknown source"),
        ("crm", "{nope", 400, "body: not JSON"),
        ("crm", '{"records": [{"id": "1", "body": NaN}]}', 400, "body: not JSON"),  # not JSON's, Python's
        ("crm", {"records": []}, 422, "records: List should have at least 1 item"),
        ("crm", {"records": [{"id": "ok", "body": "x"}, {"id": "bad id!", "body": "x"}]}, 422, "records.1.id"),
        ("crm", {"records": [{"id": "1"}]}, 422, "records.0.body: Field required"),
        ("crm", {"records": [{"id": str(n), "body": "x"} for n in range(4)]}, 413, "at most 3 records"),
    ],
)
def test_a_bad_push_is_a_4xx_naming_the_record_and_nothing_lands(
    pushing: Aws, source: str, body: Any, status: int, message: str
) -> None:
    result = post(source, body)
    assert result.status == status
    assert message in result.body["message"]
    assert pushing.landing_versions() == []  # all or nothing


def test_a_pushed_record_goes_through_the_pipeline_into_the_kb_directly(pushing: Aws) -> None:
    from ingestion import handler as ingestion

    post("crm", {"records": [{"id": "case-3", "body": "Call ada.lovelace@example.com back."}]})
    (version,) = pushing.landing_versions()
    message = sqs_message(s3_event("realtime/crm/case-3.md", version["VersionId"], version["Size"]))
    assert ingestion.lambda_handler(batch(message), FakeContext())["batchItemFailures"] == []
    ((operation, params),) = pushing.agent.calls
    content = params["documents"][0]["content"]["custom"]
    assert operation == "IngestKnowledgeBaseDocuments"
    assert content["inlineContent"]["textContent"]["data"] == "Call [EMAIL] back.\n"
    assert content["customDocumentIdentifier"]["id"] == document_id(LANDING, "realtime/crm/case-3.md")


@pytest.fixture
def source_api() -> Iterator[LegacyApi]:
    with serve() as api:
        yield api


def run_pull(aws: Aws, api: LegacyApi) -> tuple[pull.Run, LegacyClient]:
    client = LegacyClient(
        ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=2, backoff_seconds=0),
        lambda: Credentials(CLIENT_ID, CLIENT_SECRET),
        clock=Clock(),  # deadlines on a clock that stands still: no test depends on the machine's speed
    )
    watermarks = pull.Watermarks(aws.dynamodb.Table("registry"))
    run = pull.pull(client, SOURCE, s3=aws.s3, sqs=aws.sqs, watermarks=watermarks, dlq_url=aws.dlq_url, bucket=LANDING)
    return run, client


def test_the_pull_connector_lands_every_changed_record_once_and_dead_letters_poison(
    aws: Aws, source_api: LegacyApi
) -> None:
    run, client = run_pull(aws, source_api)
    pages = -(-ARTICLE_COUNT // ARTICLES_PAGE)
    assert (run.landed, run.poison, run.pages) == (ARTICLE_COUNT - 1, 1, pages)
    assert client.token_fetches == 1  # one token for every page
    keys = sorted(v["Key"] for v in aws.landing_versions())
    assert keys == sorted(f"realtime/kb-articles/A-{n:03d}.md" for n in range(ARTICLE_COUNT) if n != POISON_ARTICLE)
    head = aws.s3.head_object(Bucket=LANDING, Key="realtime/kb-articles/A-001.md")
    assert head["Metadata"]["classification"] == "public"
    assert head["Metadata"]["owner"] == "support-content-team"
    (dead,) = aws.dlq()
    assert json.loads(dead["Body"])["record"]["article"]["id"] == f"A-{POISON_ARTICLE:03d}"
    assert dead["MessageAttributes"]["reason"]["StringValue"].startswith("poison record: body:")
    assert run.watermark == "2026-11-28T08:00:00+00:00"


def test_the_next_pull_asks_only_for_changes_since_the_watermark(aws: Aws, source_api: LegacyApi) -> None:
    run_pull(aws, source_api)
    landed_before = len(aws.landing_versions())
    again, _ = run_pull(aws, source_api)
    # The source lists changes at or after updated_since: those on the 28th, the watermark day,
    # again. The run that saved the watermark landed them: none lands again.
    newest = [n for n in range(ARTICLE_COUNT) if 1 + n % 28 == 28]
    assert (again.landed, again.unchanged, again.pages) == (0, len(newest), 1)
    assert len(aws.landing_versions()) == landed_before


def test_an_upstream_outage_fails_the_run_and_keeps_the_watermark(aws: Aws, source_api: LegacyApi) -> None:
    from shared.tool_errors import ToolError

    source_api.faults = [503, 503]
    with pytest.raises(ToolError):
        run_pull(aws, source_api)
    assert pull.Watermarks(aws.dynamodb.Table("registry")).get(SOURCE.name) is None


def test_a_page_over_the_sources_byte_cap_fails_the_run_and_keeps_the_watermark(
    aws: Aws, source_api: LegacyApi
) -> None:
    """connectors.pull.<name>.max_response_bytes: a page larger than it is refused as it streams,
    the run fails with nothing landed and the watermark where it was, and the same page under a
    larger cap lands."""
    from shared.tool_errors import ToolError

    client = LegacyClient(
        ClientSettings(base_url=source_api.url, max_attempts=1, max_response_bytes=2_000),
        lambda: Credentials(CLIENT_ID, CLIENT_SECRET),
        clock=Clock(),
    )
    watermarks = pull.Watermarks(aws.dynamodb.Table("registry"))
    with pytest.raises(ToolError, match="larger than 2000 bytes"):
        pull.pull(client, SOURCE, s3=aws.s3, sqs=aws.sqs, watermarks=watermarks, dlq_url=aws.dlq_url, bucket=LANDING)
    assert (aws.landing_versions(), watermarks.get(SOURCE.name)) == ([], None)
    assert run_pull(aws, source_api)[0].landed == ARTICLE_COUNT - 1  # ClientSettings' default cap: 1 MiB


def test_a_record_normalizes_to_markdown_with_its_source() -> None:
    doc = document("crm", Record(id="c-9", body="text", owner="agent-7"), classification="customer")
    assert (doc.key, doc.body, doc.metadata["owner"], doc.metadata["source"]) == (
        "realtime/crm/c-9.md",
        b"text\n",
        "agent-7",
        "crm:c-9",
    )


# --- one run at a time: the lease -----------------------------------------------------------------


def test_a_lease_admits_one_run_until_it_is_given_back_or_runs_out(aws: Aws) -> None:
    clock = Clock()
    table = aws.dynamodb.Table("registry")
    lease = pull.Lease(table, SOURCE.name, seconds=360, clock=clock)
    other_source = pull.Lease(table, "crm-cases", seconds=360, clock=clock)
    assert lease.acquire("run-1")
    assert not lease.acquire("run-2")  # a concurrent run of the same source ends at once
    assert other_source.acquire("run-9")  # another source is not held up
    clock.now += 360
    assert not lease.acquire("run-2")  # not a second early
    clock.now += 1
    assert lease.acquire("run-2")  # run-1 was killed: its lease ran out
    lease.release("run-1")  # run-1's late give-back must not free run-2's lease
    assert not lease.acquire("run-3")
    lease.release("run-2")
    assert lease.acquire("run-3")
    item = table.get_item(Key={"pk": f"connector#{SOURCE.name}", "sk": "lease"})["Item"]
    assert (item["holder"], int(item["expires_at"])) == ("run-3", int(clock.now) + 360)


class Invocation(FakeContext):
    """A scheduled run's invocation: the pull function's 300 s to its timeout (PULL_TIMEOUT)."""

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 300_000


@pytest.fixture
def scheduled(aws: Aws, source_api: LegacyApi, monkeypatch: pytest.MonkeyPatch) -> LegacyApi:
    """The pull connector's handler as its schedule invokes it, against the local source API."""
    settings = PullSettings(
        pull_source=SOURCE, landing_bucket=LANDING, registry_table="registry", dlq_url=aws.dlq_url, lease_seconds=360
    )
    monkeypatch.setattr(pull, "settings", lambda: settings)
    # A call may take 15 s (three exchanges of 5 s): within a scheduled run's time (Invocation) with the save.
    client = LegacyClient(
        ClientSettings(base_url=source_api.url, timeout_seconds=5, max_attempts=1, backoff_seconds=0),
        lambda: Credentials(CLIENT_ID, CLIENT_SECRET),
        clock=Clock(),
    )
    monkeypatch.setattr(pull, "client", lambda: client)
    return source_api


def test_a_scheduled_run_that_finds_the_lease_held_ends_without_calling_the_source(
    aws: Aws, scheduled: LegacyApi
) -> None:
    pull.Lease(aws.dynamodb.Table("registry"), SOURCE.name, seconds=360).acquire("a-run-in-progress")
    answer = pull.lambda_handler({}, Invocation(aws_request_id="next-run"))
    assert answer == {"skipped": "another run of this source is in progress"}
    assert scheduled.requests == []
    assert aws.landing_versions() == []


def test_a_scheduled_run_gives_the_lease_back_whether_it_lands_or_fails(aws: Aws, scheduled: LegacyApi) -> None:

    key = {"pk": f"connector#{SOURCE.name}", "sk": "lease"}
    answer = pull.lambda_handler({}, Invocation(aws_request_id="run-1"))
    assert answer["landed"] == ARTICLE_COUNT - 1
    assert "Item" not in aws.dynamodb.Table("registry").get_item(Key=key)
    scheduled.faults = [503]
    with pytest.raises(pull.PullFailedError, match=r"\(ToolError\)$"):
        pull.lambda_handler({}, Invocation(aws_request_id="run-2"))
    assert "Item" not in aws.dynamodb.Table("registry").get_item(Key=key)
