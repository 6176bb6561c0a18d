"""OCR for PDFs without a text layer (ocr: textract): an asynchronous Textract text detection
started once per version, its notification continuing the pipeline with the detected lines under
the same PII policy and limits. Every Textract call is checked by botocore's Stubber against the
real service model."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ingestion import handler
from ingestion.events import ObjectRef, OcrJob
from ingestion.pii import PiiScanner
from ingestion.pipeline import Outcome, Pipeline, document_id
from ingestion.registry import VersionRecord
from tests.lambdas.ingestion_corpus import CUSTOM, LANDING, pdf_bytes
from tests.lambdas.ingestion_fixtures import (
    CURATED,
    MAX_RECEIVE,
    QUARANTINE,
    READERS,
    REGION,
    SETTINGS,
    Aws,
    land,
    landed,
    make,
    record_of,
    sqs_message,
)
from tests.lambdas.test_ingestion import run

TOPIC = "arn:aws:sns:us-east-1:123456789012:ocr"
ROLE = "arn:aws:iam::123456789012:role/ocr-publisher"
SCANNED = pdf_bytes(["", ""])  # two pages, no text layer
KEY = "scans/contract.pdf"


@pytest.fixture
def textract(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    """The pipeline with ocr: textract, its Textract client stubbed (no call may be left over)."""
    client = boto3.client("textract", region_name=REGION)
    settings = SETTINGS.model_copy(update={"ocr": "textract", "ocr_topic_arn": TOPIC, "ocr_role_arn": ROLE})
    scanner = PiiScanner(aws.comprehend, custom_identifiers=CUSTOM, min_score=0.8)
    pipeline = Pipeline(
        aws.s3,
        scanner,
        aws.registry,
        aws.knowledge,
        settings,
        readers=lambda: READERS,
        textract=client,
        monotonic=lambda: 0.0,  # stopped: no read's deadline passes on a busy machine
    )
    monkeypatch.setattr(handler, "pipeline", lambda: pipeline)
    aws.pipeline = pipeline
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def expect_start(stubber: Stubber, message: dict[str, Any], job: str = "job-1") -> None:
    obj = json.loads(message["body"])["detail"]["object"]
    doc = document_id(LANDING, obj["key"])
    stubber.add_response(
        "start_document_text_detection",
        {"JobId": job},
        {
            "DocumentLocation": {"S3Object": {"Bucket": LANDING, "Name": obj["key"], "Version": obj["version-id"]}},
            "ClientRequestToken": hashlib.sha256(f"{doc}\n{obj['version-id']}".encode()).hexdigest()[:64],
            "JobTag": doc,
            "NotificationChannel": {"SNSTopicArn": TOPIC, "RoleArn": ROLE},
        },
    )


def notification(key: str, status: str = "SUCCEEDED", job: str = "job-1") -> dict[str, Any]:
    """Textract's message as the queue delivers it (SNS raw message delivery)."""
    return sqs_message(
        {
            "JobId": job,
            "Status": status,
            "API": "StartDocumentTextDetection",
            "JobTag": document_id(LANDING, key),
            "Timestamp": 1795888800000,
            "DocumentLocation": {"S3ObjectName": key, "S3Bucket": LANDING},
        }
    )


def expect_page(stubber: Stubber, lines: list[str], *, token: str | None, next_token: str | None) -> None:
    response: dict[str, Any] = {
        "DocumentMetadata": {"Pages": 2},
        "JobStatus": "SUCCEEDED",
        "Blocks": [{"BlockType": "PAGE", "Id": "p"}]
        + [{"BlockType": "LINE", "Id": f"l{i}", "Text": line, "Page": 1} for i, line in enumerate(lines)],
        "DetectDocumentTextModelVersion": "1.0",
    }
    if next_token:
        response["NextToken"] = next_token
    expected: dict[str, Any] = {"JobId": "job-1", "MaxResults": 1000}
    if token:
        expected["NextToken"] = token
    stubber.add_response("get_document_text_detection", response, expected)


def pending(aws: Aws, textract: Stubber, key: str = KEY, **metadata: str) -> dict[str, Any]:
    message = landed(aws, key, SCANNED, **metadata)
    expect_start(textract, message)
    assert run(message) == []
    return message


def version_record(aws: Aws, key: str) -> dict[str, Any]:
    """The version's record (beside it, the job's pointer back to it: sk ocr#<job id>)."""
    doc = document_id(LANDING, key)
    (record,) = [i for i in aws.registry_items() if i["pk"] == doc and i["sk"].startswith("version#")]
    return record


def landing_keys(aws: Aws) -> list[str]:
    return [v["Key"] for v in aws.landing_versions()]


def test_with_ocr_off_a_pdf_without_text_is_quarantined_as_needing_ocr(aws: Aws) -> None:
    assert run(landed(aws, KEY, SCANNED)) == []
    record = version_record(aws, KEY)
    assert (record["status"], record["reason"]) == ("quarantined", "the PDF has no text layer (scanned pages need OCR)")
    assert record["reason_code"] == "needs_ocr"


def test_with_textract_one_text_detection_starts_and_the_version_is_pending(aws: Aws, textract: Stubber) -> None:
    pending(aws, textract)
    record = version_record(aws, KEY)
    assert (record["status"], record["ocr_job"]) == ("ocr_pending", "job-1")
    assert landing_keys(aws) == [KEY]  # Textract reads it where it is
    assert aws.objects(QUARANTINE) == {}
    assert aws.objects(CURATED) == {}


def test_a_replay_of_the_event_starts_no_second_job(aws: Aws, textract: Stubber) -> None:
    message = pending(aws, textract)
    assert run({**message, "messageId": "again"}) == []  # the idempotency layer's replay
    obj = json.loads(message["body"])["detail"]["object"]
    ref = ObjectRef(bucket=LANDING, key=obj["key"], version=obj["version-id"], size=obj["size"])
    outcome = aws.pipeline.process(ref)  # past idempotency (expired): the registry says pending
    assert (outcome.status, outcome.replayed) == ("ocr_pending", True)


def test_a_succeeded_job_is_read_page_by_page_and_curated_with_personal_data_masked(
    aws: Aws, textract: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    pending(aws, textract)
    expect_page(
        textract, ["Scanned contract", "Escalations go to ada.lovelace@example.com"], token=None, next_token="t2"
    )
    expect_page(textract, ["Employee EMP-314159"], token="t2", next_token=None)
    assert run(notification(KEY)) == []
    record = version_record(aws, KEY)
    assert (record["status"], record["pii"]) == ("curated", {"EMAIL": 1, "EMPLOYEE_ID": 1})
    assert "ocr_job" not in record
    text = aws.objects(CURATED)[f"curated/{document_id(LANDING, KEY)}.txt"].decode()
    assert text == "Scanned contract\nEscalations go to [EMAIL]\nEmployee [EMPLOYEE_ID]"
    assert landing_keys(aws) == []
    assert "ada.lovelace" not in capsys.readouterr().out


def test_a_succeeded_job_in_a_classification_that_quarantines_pii_is_quarantined(aws: Aws, textract: Stubber) -> None:
    pending(aws, textract, classification="public")
    expect_page(textract, ["Press: ada.lovelace@example.com"], token=None, next_token=None)
    assert run(notification(KEY)) == []
    record = version_record(aws, KEY)
    assert (record["status"], record["reason"]) == ("quarantined", "personal data (EMAIL) in a public document")


@pytest.mark.parametrize("status", ["FAILED", "ERROR"])
def test_a_failed_job_quarantines_the_document_as_ocr_failed(aws: Aws, textract: Stubber, status: str) -> None:
    pending(aws, textract)
    assert run(notification(KEY, status)) == []
    record = version_record(aws, KEY)
    assert (record["status"], record["reason"], record["reason_code"]) == (
        "quarantined",
        f"text detection (OCR) did not succeed ({status})",
        "ocr_failed",
    )
    assert list(aws.objects(QUARANTINE))
    assert landing_keys(aws) == []


def test_a_notification_for_a_settled_version_or_an_unknown_job_is_ignored(
    aws: Aws, textract: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    pending(aws, textract)
    assert run(notification(KEY, "FAILED")) == []
    settled = version_record(aws, KEY)
    capsys.readouterr()
    assert run(notification(KEY)) == []  # a late or repeated SUCCEEDED: no Textract call (Stubber)
    assert run(notification("other.pdf", job="job-9")) == []
    assert version_record(aws, KEY) == settled
    logs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [entry["message"] for entry in logs if entry.get("message") == "OCR notification ignored"] == [
        "OCR notification ignored"
    ] * 2


def test_text_past_max_extracted_chars_is_quarantined_with_the_limit(aws: Aws, textract: Stubber) -> None:
    pending(aws, textract)
    expect_page(textract, ["word " * 300], token=None, next_token="t2")
    expect_page(textract, ["word " * 300], token="t2", next_token=None)
    assert run(notification(KEY)) == []
    record = version_record(aws, KEY)
    assert (record["status"], record["reason"]) == (
        "quarantined",
        f"the text is over the {SETTINGS.max_extracted_chars} character limit",
    )


def test_a_malformed_textract_notification_is_dead_lettered(aws: Aws) -> None:
    message = notification(KEY)
    body = json.loads(message["body"])
    message["body"] = json.dumps({**body, "JobTag": "../not-a-document"})
    assert run(message) == []
    (dead,) = aws.dlq()
    assert (
        dead["MessageAttributes"]["reason"]["StringValue"] == "the Textract notification's job tag is not a document id"
    )


# --- OCR decisions, one pipeline call at a time --------------------------------------------------------------------------------------------------


@pytest.fixture
def stubber() -> Iterator[Stubber]:
    client = boto3.client("textract", region_name=REGION)
    with Stubber(client) as stub:
        yield stub
        stub.assert_no_pending_responses()


def ocr(aws: Aws, stubber: Stubber, ticks: list[float] | None = None, **settings: Any) -> Pipeline:
    clock = iter(ticks or [])
    return make(
        aws,
        textract=stubber.client,
        monotonic=(lambda: next(clock)) if ticks is not None else None,
        ocr="textract",
        ocr_topic_arn=TOPIC,
        ocr_role_arn=ROLE,
        **settings,
    )


def started(aws: Aws, stubber: Stubber, pipeline: Pipeline, key: str = "scans/a b.pdf", **metadata: str) -> ObjectRef:
    """Start OCR on an event with the key URL-encoded; the object as the pipeline knows it (real key)."""
    ref = land(aws, key, pdf_bytes(["", ""]), event_key=key.replace(" ", "+"), **metadata)
    doc = document_id(LANDING, key)
    stubber.add_response(
        "start_document_text_detection",
        {"JobId": "job-1"},
        {
            "DocumentLocation": {"S3Object": {"Bucket": LANDING, "Name": key, "Version": ref.version}},
            "ClientRequestToken": hashlib.sha256(f"{doc}\n{ref.version}".encode()).hexdigest()[:64],
            "JobTag": doc,
            "NotificationChannel": {"SNSTopicArn": TOPIC, "RoleArn": ROLE},
        },
    )
    outcome = pipeline.process(pipeline.locate(ref))  # as the handler does
    assert (outcome.status, outcome.reason) == (
        "ocr_pending",
        "the PDF has no text layer: text detection (OCR) started",
    )
    assert outcome.document_id == doc
    return replace(ref, key=key)


def page(
    stubber: Stubber,
    blocks: list[dict[str, Any]] | None,
    *,
    pages: int | None = 2,
    metadata: bool = True,
    status: str = "SUCCEEDED",
    token: str | None = None,
    next_token: str | None = None,
) -> None:
    """One GetDocumentTextDetection page; blocks None: no Blocks, pages None: no page count,
    metadata False: no DocumentMetadata (all optional in Textract's model)."""
    response: dict[str, Any] = {"JobStatus": status}
    if metadata:
        response["DocumentMetadata"] = {} if pages is None else {"Pages": pages}
    if blocks is not None:
        response["Blocks"] = blocks
    if next_token:
        response["NextToken"] = next_token
    expected: dict[str, Any] = {"JobId": "job-1", "MaxResults": 1000, **({"NextToken": token} if token else {})}
    stubber.add_response("get_document_text_detection", response, expected)


def lines(*texts: str) -> list[dict[str, Any]]:
    return [{"BlockType": "LINE", "Id": f"l{i}", "Text": text} for i, text in enumerate(texts)]


def finished(aws: Aws, pipeline: Pipeline, ref: ObjectRef, status: str = "SUCCEEDED") -> Outcome | None:
    return pipeline.ocr_finished(OcrJob("job-1", status, document_id(LANDING, ref.key)))


def test_a_pending_version_keeps_the_decoded_key_and_its_event_order(aws: Aws, stubber: Stubber) -> None:
    pipeline = ocr(aws, stubber)
    ref = started(aws, stubber, pipeline)
    record = record_of(aws, ref)
    assert (record["status"], record["source"], record["ocr_job"], record["sequencer"]) == (
        "ocr_pending",
        f"s3://{LANDING}/scans/a b.pdf",
        "job-1",
        ref.sequencer,
    )
    replay = pipeline.process(ref)
    assert (replay.status, replay.replayed) == ("ocr_pending", True)
    # The event again, key encoded as sent: the same version of the same document (the registry says so).
    replay = pipeline.process(pipeline.locate(replace(ref, key="scans/a+b.pdf")))
    assert (replay.status, replay.replayed, replay.document_id) == ("ocr_pending", True, document_id(LANDING, ref.key))
    page(
        stubber,
        [
            {"BlockType": "PAGE", "Id": "p"},
            {"BlockType": "WORD", "Id": "w", "Text": "Word"},
            *lines("A"),
            {"BlockType": "LINE", "Id": "e"},
            *lines("B"),
        ],
    )
    outcome = finished(aws, pipeline, ref)
    assert outcome is not None
    assert (outcome.status, outcome.reason) == ("curated", "no personal data found")
    record = record_of(aws, ref)
    assert "ocr_job" not in record
    assert "sequencer" not in record
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, ref.key)}.txt"] == b"A\n\nB"  # LINE blocks only
    assert aws.landing_versions() == []
    assert finished(aws, pipeline, ref) is None  # settled: a repeated notification is ignored


def test_a_notification_for_a_job_this_pipeline_did_not_start_is_ignored(aws: Aws, stubber: Stubber) -> None:
    assert ocr(aws, stubber).ocr_finished(OcrJob("job-1", "SUCCEEDED", document_id(LANDING, "x.pdf"))) is None


def test_an_ocr_version_a_newer_version_overtook_is_superseded_without_reading_the_job(
    aws: Aws, stubber: Stubber
) -> None:
    pipeline = ocr(aws, stubber)
    ref = started(aws, stubber, pipeline, key="scans/c.pdf")
    newer = land(aws, "scans/c.pdf", pdf_bytes(["Typed text"]))
    assert pipeline.process(newer).status == "curated"
    outcome = finished(aws, pipeline, ref)
    assert outcome is not None
    assert (outcome.status, outcome.reason) == (
        "superseded",
        f"version {newer.version} of this document is newer and was settled first",
    )


def test_other_rejections_with_ocr_on_are_quarantined_without_a_job(aws: Aws, stubber: Stubber) -> None:
    ref = land(aws, "bad/broken.pdf", b"%PDF-1.7 binary")
    outcome = ocr(aws, stubber).process(ref)
    assert (outcome.status, outcome.reason) == ("quarantined", "the pdf document could not be read (PdfStreamError)")


@pytest.mark.parametrize(
    ("ticks", "responses", "outcome"),
    [
        ([0, 7, 7], [{"blocks": lines("Fine")}], ("curated", "no personal data found", "")),
        ([0, 8], [], ("quarantined", "reading the text took longer than 7 seconds", "too_slow")),
        (
            [0, 1, 8],
            [{"blocks": lines("Fine"), "next_token": "t2"}],
            ("quarantined", "reading the text took longer than 7 seconds", "too_slow"),
        ),
        ([0, 1], [{"blocks": lines("Fine"), "pages": 3}], ("curated", "no personal data found", "")),
        (
            [0, 1, 1],
            [{"blocks": None, "metadata": False, "next_token": "t2"}, {"blocks": lines("Fine"), "pages": None}],
            ("curated", "no personal data found", ""),
        ),
        (
            [0, 1],
            [{"blocks": lines("Fine"), "pages": 4}],
            ("quarantined", "4 pages is over the 3 page limit", "too_many_pages"),
        ),
        (
            [0, 1],
            [{"blocks": lines("Fine"), "status": "IN_PROGRESS"}],
            ("quarantined", "text detection (OCR) did not succeed (IN_PROGRESS)", "ocr_failed"),
        ),
        ([0, 1], [{"blocks": lines("x" * 1999)}], ("curated", "no personal data found", "")),
        ([0, 1], [{"blocks": lines("x" * 999, "x" * 999)}], ("curated", "no personal data found", "")),
        (
            [0, 1],
            [{"blocks": lines("x" * 999, "x" * 1000)}],
            ("quarantined", "the text is over the 2000 character limit", "too_much_text"),
        ),
        (
            [0, 1],
            [{"blocks": lines(" ", "")}],
            ("quarantined", "text detection (OCR) found no text in the document", "empty"),
        ),
        ([0, 1], [{"blocks": []}], ("quarantined", "text detection (OCR) found no text in the document", "empty")),
    ],
)
def test_ocr_text_is_read_within_the_time_page_and_character_limits(
    aws: Aws, stubber: Stubber, ticks: list[float], responses: list[dict[str, Any]], outcome: tuple[str, str, str]
) -> None:
    pipeline = ocr(aws, stubber, ticks, read_seconds=7)
    ref = started(aws, stubber, pipeline)
    token = None
    for response in responses:
        options = dict(response)
        page(stubber, options.pop("blocks"), token=token, **options)
        token = options.get("next_token")
    result = finished(aws, pipeline, ref)
    assert result is not None
    assert (result.status, result.reason, result.reason_code) == outcome
    assert record_of(aws, ref).get("reason_code", "") == outcome[2]  # the registry keeps the same code


def test_a_notification_that_fails_every_attempt_records_its_version_dead_lettered_on_the_last(
    aws: Aws, textract: Stubber
) -> None:
    pending(aws, textract)
    for attempt in range(1, MAX_RECEIVE + 1):
        textract.add_client_error("get_document_text_detection", "ThrottlingException")
        message = notification(KEY)
        message["attributes"]["ApproximateReceiveCount"] = str(attempt)
        assert run(message) == [message["messageId"]]  # failed: SQS retries it, then moves it to the DLQ
        expected = "ocr_pending" if attempt < MAX_RECEIVE else "dead_lettered"
        assert version_record(aws, KEY)["status"] == expected
    record = version_record(aws, KEY)
    assert (record["reason"], record["location"]) == ("processing failed: ThrottlingException", "dlq")
    # A late success after that is one no version waits for.
    assert run(notification(KEY)) == []
    assert version_record(aws, KEY)["status"] == "dead_lettered"


def test_a_pending_version_of_a_document_named_by_its_key_as_sent_is_dead_lettered_under_that_document(
    aws: Aws, textract: Stubber
) -> None:
    """A document an earlier release named by its key as S3 sent it ("scans/my+scan.pdf" for
    "scans/my scan.pdf") keeps that id; its record's source is the real key. A notification that
    fails its last attempt marks that version dead-lettered, not a version of another document."""
    real, sent = "scans/my scan.pdf", "scans/my+scan.pdf"
    put = aws.put(real, SCANNED)
    textract.add_response("start_document_text_detection", {"JobId": "job-1"})
    ref = ObjectRef(LANDING, sent, put["version"], put["size"], "0055AED6DCD90281E5")
    assert aws.pipeline.process(ref).status == "ocr_pending"
    named = document_id(LANDING, sent)
    assert [(i["pk"], i["status"]) for i in aws.registry_items() if i["sk"].startswith("version#")] == [
        (named, "ocr_pending")
    ]
    for attempt in range(1, MAX_RECEIVE + 1):
        textract.add_client_error("get_document_text_detection", "ThrottlingException")
        failing = notification(real)
        failing["body"] = failing["body"].replace(document_id(LANDING, real), named)  # the JobTag it was started with
        failing["attributes"]["ApproximateReceiveCount"] = str(attempt)
        assert run(failing) == [failing["messageId"]]
    assert [(i["pk"], i["status"]) for i in aws.registry_items() if i["sk"].startswith("version#")] == [
        (named, "dead_lettered")
    ]


def test_a_version_an_earlier_release_left_pending_without_a_sequencer_is_dead_lettered_with_why(
    aws: Aws, textract: Stubber
) -> None:
    """Its event had no sequencer (events were once let through without one): where it stands among
    the document's versions is unknown, so its notification fails, unread, and its last attempt
    records the version dead-lettered with the reason rather than let it become the current state."""
    put = aws.put(KEY, SCANNED)
    doc = document_id(LANDING, KEY)
    aws.registry.ocr_started(
        VersionRecord(
            document_id=doc,
            version=put["version"],
            status="ocr_pending",
            reason="the PDF has no text layer: text detection (OCR) started",
            source=f"s3://{LANDING}/{KEY}",
            size=put["size"],
            ocr_job="job-1",
        )
    )
    for attempt in range(1, MAX_RECEIVE + 1):
        message = notification(KEY)
        message["attributes"]["ApproximateReceiveCount"] = str(attempt)
        assert run(message) == [message["messageId"]]  # no Textract call: the stubber has none to answer
    record = version_record(aws, KEY)
    assert (record["status"], record["location"], record["reason"]) == (
        "dead_lettered",
        "dlq",
        "the version's S3 event had no sequencer of S3's (hex, at most 20 digits): "
        "its order among the document's versions is unknown",
    )
    assert aws.registry.current(doc) is None
    assert landing_keys(aws) == [KEY]
