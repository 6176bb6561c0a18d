"""The ingestion pipeline over a fixture corpus: every object ends in exactly one of curated,
quarantine or the DLQ with a registry record saying which and why; partial batches; replays;
PII kept out of logs, the registry and curated text."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import threading
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ingestion import handler, pipeline as pipeline_module
from ingestion.copies import CopyTooSlowError
from ingestion.documents import ReadLimits
from ingestion.events import ObjectRef, object_ref
from ingestion.knowledge import KnowledgeBase
from ingestion.pii import MAX_CALL_BYTES, PiiScanner, Span, chunks, mask
from ingestion.pipeline import CuratedStore, Outcome, _newer_than, document_id
from ingestion.registry import sequencer_key
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import (
    CLEAN,
    FRENCH,
    LANDING,
    MALFORMED,
    MAX_BYTES,
    REJECTED,
    SEEDED_PII,
    WITH_PII_INTERNAL,
    WITH_PII_PUBLIC,
    FakeComprehend,
    docx_bytes,
)
from tests.lambdas.ingestion_fixtures import (
    CURATED,
    MAX_RECEIVE,
    NOW,
    QUARANTINE,
    Aws,
    batch,
    curated_versions,
    current_of,
    land,
    landed,
    make,
    record_of,
    s3_event,
    sqs_message,
)


def run(*messages: dict[str, Any]) -> list[str]:
    """Handle one SQS batch; the ids SQS is told failed."""
    return run_with(*messages, context=FakeContext())


def run_with(*messages: dict[str, Any], context: FakeContext) -> list[str]:
    response = handler.lambda_handler(batch(*messages), context)
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def version_record(aws: Aws, key: str) -> dict[str, Any]:
    items = [i for i in aws.registry_items() if i["pk"] == document_id(LANDING, key) and i["sk"] != "current"]
    assert len(items) == 1, f"{key}: {len(items)} version records"
    return items[0]


def test_every_object_ends_in_exactly_one_place_with_a_registry_record(
    aws: Aws, capsys: pytest.CaptureFixture[str]
) -> None:
    messages = []
    for key, text in {**CLEAN, **WITH_PII_INTERNAL}.items():
        messages.append(landed(aws, key, text))
    for key, text in WITH_PII_PUBLIC.items():
        messages.append(landed(aws, key, text, classification="public"))
    for key, (body, _) in REJECTED.items():
        messages.append(landed(aws, key, body))
    messages.append(landed(aws, "docs/secret.txt", "Fine text.", classification="top-secret"))
    messages.append(landed(aws, "realtime/crm/case-1.md", "# Case 1\n\nCall Alan Turing back.", origin="connector:crm"))
    deleted = aws.put("docs/withdrawn.txt", "Withdrawn before processing.")
    aws.s3.delete_object(Bucket=LANDING, Key=deleted["key"], VersionId=deleted["version"])
    messages.append(sqs_message(s3_event(deleted["key"], deleted["version"], deleted["size"])))
    malformed = [sqs_message(body, message_id=f"bad-{name}") for name, body in MALFORMED.items()]
    # SQS delivers at least once: the same events again, in another batch and in the same one.
    duplicates = [{**m, "messageId": f"again-{m['messageId']}"} for m in messages[:3]]
    everything = messages + malformed + duplicates + [{**messages[-2], "messageId": "again-same-batch"}]

    failed = []
    for start in range(0, len(everything), 10):
        failed += run(*everything[start : start + 10])

    assert failed == []
    assert aws.landing_versions() == []  # nothing left behind in landing
    curated, quarantined = aws.objects(CURATED), aws.objects(QUARANTINE)
    expected_curated = [*CLEAN, *WITH_PII_INTERNAL]
    for key in expected_curated:
        record = version_record(aws, key)
        assert record["status"] == "curated", (key, record["reason"])
        assert record["location"] == f"s3://{CURATED}/curated/{document_id(LANDING, key)}.txt"
        assert f"curated/{document_id(LANDING, key)}.txt" in curated
        assert not [q for q in quarantined if q.startswith(document_id(LANDING, key))]
    rejected = {
        **{k: (b, "personal data (EMAIL) in a public document") for k, b in WITH_PII_PUBLIC.items()},
        **REJECTED,
    }
    rejected["docs/secret.txt"] = ("", "unknown classification (allowed: public, internal, customer)")
    for key, (_, reason) in rejected.items():
        record = version_record(aws, key)
        assert record["status"] == "quarantined", (key, record)
        assert reason in record["reason"]
        assert [q for q in quarantined if q.startswith(document_id(LANDING, key))] == [
            record["location"].removeprefix(f"s3://{QUARANTINE}/")
        ]
        assert not [c for c in curated if document_id(LANDING, key) in c]
    realtime = version_record(aws, "realtime/crm/case-1.md")
    assert (realtime["status"], realtime["location"]) == (
        "curated",
        f"s3://{CURATED}/direct/{document_id(LANDING, 'realtime/crm/case-1.md')}.txt",
    )
    assert version_record(aws, "docs/withdrawn.txt")["status"] == "gone"
    dead = aws.dlq()
    assert sorted(m["MessageAttributes"]["reason"]["StringValue"] for m in dead) == sorted(
        [
            "the message body is not JSON",
            "not an S3 Object Created event",
            "the event has no version id (is the landing bucket versioned?)",
        ]
    )
    events = {i["pk"]: i for i in aws.registry_items() if i["pk"].startswith("event#")}
    assert sorted(events) == sorted(f"event#{m['messageId']}" for m in malformed)
    assert all(item["status"] == "dead_lettered" and item["reason"] for item in events.values())

    # PII never reaches the logs, the registry or curated text unmasked.
    sinks = [capsys.readouterr().out, json.dumps(aws.registry_items(), default=str)]
    sinks += [body.decode() for body in curated.values()]
    for value in SEEDED_PII:
        assert not [sink for sink in sinks if value in sink], value
    masked = curated[f"curated/{document_id(LANDING, 'hr/payroll.md')}.txt"].decode()
    assert masked == "Employee [EMPLOYEE_ID] has SSN [SSN] on file."
    assert version_record(aws, "hr/payroll.md")["pii"] == {"EMPLOYEE_ID": 1, "SSN": 1}


def test_curated_documents_carry_the_metadata_retrieval_filters_on(aws: Aws) -> None:
    assert run(landed(aws, "docs/faq.md", CLEAN["docs/faq.md"], owner="support", source="wiki")) == []
    doc = document_id(LANDING, "docs/faq.md")
    sidecar = json.loads(aws.objects(CURATED)[f"curated/{doc}.txt.metadata.json"])
    assert sidecar == {
        "metadataAttributes": {
            "document_id": doc,
            "source": "wiki",
            "owner": "support",
            "classification": "internal",
            "allowed_groups": ["platform-admins"],
        }
    }


def test_realtime_items_are_ingested_directly_with_inline_metadata(aws: Aws) -> None:
    assert run(landed(aws, "realtime/crm/case-7.md", "Customer asked about Grace Hopper's order.")) == []
    ((operation, params),) = aws.agent.calls
    doc = document_id(LANDING, "realtime/crm/case-7.md")
    assert (operation, params["dataSourceId"]) == ("IngestKnowledgeBaseDocuments", "DSCUSTOM01")
    (document,) = params["documents"]
    assert document["content"]["custom"]["customDocumentIdentifier"] == {"id": doc}
    assert (
        document["content"]["custom"]["inlineContent"]["textContent"]["data"] == "Customer asked about [NAME]'s order."
    )
    attributes = {a["key"]: a["value"] for a in document["metadata"]["inlineAttributes"]}
    assert attributes["classification"] == {"type": "STRING", "stringValue": "internal"}
    assert attributes["allowed_groups"] == {"type": "STRING_LIST", "stringListValue": ["platform-admins"]}


@pytest.mark.parametrize(
    ("key", "status", "reason"),
    [
        (
            "realtime/crm/wordy.md",
            "quarantined",
            "the masked text is 54 characters, over the 53 a Knowledge Base takes inline (real-time items are "
            "ingested directly)",
        ),
        ("docs/wordy.md", "curated", "masked 2 personal data entities"),  # a bulk copy is a file: no such limit
    ],
)
def test_a_realtime_text_that_masking_lengthens_past_the_inline_limit_is_quarantined(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, key: str, status: str, reason: str
) -> None:
    # 48 UTF-16 units; masked, 54 (53 characters: the emoji counts twice).
    text = "Call EMP-314159 or EMP-271828 about the \U0001f4de bill."
    monkeypatch.setattr(pipeline_module, "MAX_INLINE_CHARS", 53)
    outcome = make(aws).process(land(aws, key, text))
    assert (outcome.status, outcome.reason) == (status, reason)
    assert aws.agent.calls == []  # never sent to be refused, not retried into the dead letters
    assert (outcome.reason_code == "too_much_text") is (status == "quarantined")


def test_an_inline_text_of_exactly_the_limit_is_ingested(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "MAX_INLINE_CHARS", 54)
    text = "Call EMP-314159 or EMP-271828 about the \U0001f4de bill."
    outcome = make(aws).process(land(aws, "realtime/crm/edge.md", text))
    assert outcome.status == "curated"
    ((_, params),) = aws.agent.calls
    assert params["documents"][0]["content"]["custom"]["inlineContent"]["textContent"]["data"] == (
        "Call [EMPLOYEE_ID] or [EMPLOYEE_ID] about the \U0001f4de bill."
    )


def test_a_new_version_supersedes_the_old_one_and_a_quarantined_one_takes_it_out_of_the_kb(aws: Aws) -> None:
    doc = document_id(LANDING, "docs/policy.txt")
    assert run(landed(aws, "docs/policy.txt", "Version one.")) == []
    assert run(landed(aws, "docs/policy.txt", "Version two.")) == []
    versions = aws.s3.list_object_versions(Bucket=CURATED, Prefix=f"curated/{doc}.txt")
    texts = [v for v in versions.get("Versions", []) if v["Key"] == f"curated/{doc}.txt"]
    assert len(texts) == 1  # the superseded version was deleted
    assert aws.objects(CURATED)[f"curated/{doc}.txt"] == b"Version two."
    # Version three is public with PII: quarantined, and version two leaves the bucket and the KB.
    assert run(landed(aws, "docs/policy.txt", "Mail ada.lovelace@example.com", classification="public")) == []
    assert f"curated/{doc}.txt" not in aws.objects(CURATED)
    assert aws.agent.calls[-1] == (
        "DeleteKnowledgeBaseDocuments",
        {
            "knowledgeBaseId": "KB12345678",
            "dataSourceId": "DS3SOURCE1",
            "documentIdentifiers": [{"dataSourceType": "S3", "s3": {"uri": f"s3://{CURATED}/curated/{doc}.txt"}}],
        },
    )
    current = aws.registry.current(doc)
    assert current is not None
    assert current["status"] == "quarantined"


def test_for_every_failure_position_exactly_the_failed_record_is_reported(aws: Aws) -> None:
    real_get = aws.s3.get_object
    failing: set[str] = set()

    def get_object(**params: Any) -> Any:
        if params["Key"] in failing:
            raise ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")
        return real_get(**params)

    aws.s3.get_object = get_object
    for position in range(10):
        messages = [landed(aws, f"batch{position}/n{i}.txt", f"Document {i}.") for i in range(10)]
        failing.add(f"batch{position}/n{position}.txt")
        assert run(*messages) == [messages[position]["messageId"]], position
        ids = {document_id(LANDING, f"batch{position}/n{i}.txt"): i for i in range(10)}
        settled = {ids[i["pk"]] for i in aws.registry_items() if i["pk"] in ids and i["sk"] != "current"}
        assert settled == set(range(10)) - {position}


def test_a_record_failing_its_last_attempt_is_recorded_as_dead_lettered(aws: Aws) -> None:
    message = landed(aws, "docs/stuck.txt", "Stuck.")
    message["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)
    aws.comprehend.detect_dominant_language = _throttled  # type: ignore[method-assign]
    assert run(message) == [message["messageId"]]  # SQS moves it to the DLQ after this attempt
    record = version_record(aws, "docs/stuck.txt")
    assert (record["status"], record["location"], record["reason"]) == (
        "dead_lettered",
        "dlq",
        "processing failed: ThrottlingException",
    )


def _throttled(**_: Any) -> Any:
    raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "DetectDominantLanguage")


def test_an_event_replayed_five_times_has_one_side_effect(aws: Aws) -> None:
    message = landed(aws, "realtime/crm/case-9.md", "Replayed item.")
    for _ in range(5):
        assert run({**message, "messageId": f"delivery-{_}"}) == []
    doc = document_id(LANDING, "realtime/crm/case-9.md")
    versions = aws.s3.list_object_versions(Bucket=CURATED).get("Versions", [])
    assert sorted(v["Key"] for v in versions) == [f"direct/{doc}.txt", f"direct/{doc}.txt.metadata.json"]
    assert [operation for operation, _ in aws.agent.calls] == ["IngestKnowledgeBaseDocuments"]
    assert len([i for i in aws.registry_items() if i["pk"] == doc]) == 2  # current + one version


def test_a_replay_after_the_idempotency_record_expired_is_still_settled_once(aws: Aws) -> None:
    message = landed(aws, "docs/again.txt", "Again.")
    assert run(message) == []
    aws.dynamodb.Table("idempotency").delete_item(Key={"id": next(iter(_idempotency_ids(aws)))})
    assert run({**message, "messageId": "late-redelivery"}) == []
    doc = document_id(LANDING, "docs/again.txt")
    versions = [v["Key"] for v in aws.s3.list_object_versions(Bucket=CURATED).get("Versions", [])]
    assert sorted(versions) == [f"curated/{doc}.txt", f"curated/{doc}.txt.metadata.json"]  # one version each


def _idempotency_ids(aws: Aws) -> list[str]:
    return [item["id"] for item in aws.dynamodb.Table("idempotency").scan()["Items"]]


# --- PII scanning --------------------------------------------------------------------------------


def test_long_texts_are_scanned_in_chunks_under_comprehends_limit_without_missing_a_boundary() -> None:
    comprehend = FakeComprehend()
    filler = "word " * 30_000  # 150,000 bytes
    text = filler + "write to ada.lovelace@example.com today " + filler
    scan = PiiScanner(comprehend, custom_identifiers={}).scan(text)
    assert [s.type for s in scan.spans] == ["EMAIL"]
    assert text[scan.spans[0].begin : scan.spans[0].end] == "ada.lovelace@example.com"
    assert all(size <= MAX_CALL_BYTES for _, size in comprehend.calls)
    assert len([c for c in comprehend.calls if c[0] == "pii"]) == 4


def test_chunks_cover_the_text_with_overlap_and_multibyte_characters() -> None:
    text = ("é" * 10 + " ") * 50
    pieces = list(chunks(text, max_bytes=64, overlap=5))
    assert all(len(p.encode()) <= 64 for _, p in pieces)
    covered = set()
    for start, piece in pieces:
        assert text[start : start + len(piece)] == piece
        covered |= set(range(start, start + len(piece)))
    assert covered == set(range(len(text)))


def test_masking_merges_overlapping_findings() -> None:
    text = "Call Grace Hopper at +1 206 555 0143."
    spans = (Span(5, 17, "NAME"), Span(11, 17, "NAME"), Span(21, 36, "PHONE"))
    assert mask(text, spans) == "Call [NAME] at [PHONE]."


def test_the_scanner_calls_comprehend_as_its_service_model_says() -> None:
    comprehend = boto3.client("comprehend", region_name="us-east-1")
    with Stubber(comprehend) as stubber:
        stubber.add_response(
            "detect_dominant_language",
            {"Languages": [{"LanguageCode": "es", "Score": 0.98}]},
            {"Text": "Hola, soy el cliente."},
        )
        stubber.add_response(
            "detect_pii_entities",
            {"Entities": [{"Type": "NAME", "Score": 0.5, "BeginOffset": 0, "EndOffset": 4}]},
            {"Text": "Hola, soy el cliente.", "LanguageCode": "es"},
        )
        scan = PiiScanner(comprehend, custom_identifiers={}, min_score=0.8).scan("Hola, soy el cliente.")
    assert (scan.language, scan.supported, scan.spans) == ("es", True, ())  # below the score floor


def test_knowledge_base_calls_match_the_bedrock_agent_service_model() -> None:
    client = boto3.client("bedrock-agent", region_name="us-east-1")
    kb = KnowledgeBase(client, "KB12345678", "DS3SOURCE1", "DSCUSTOM01")
    with Stubber(client) as stubber:
        stubber.add_response("ingest_knowledge_base_documents", {"documentDetails": []}, None)
        stubber.add_response("delete_knowledge_base_documents", {"documentDetails": []}, None)
        stubber.add_response("delete_knowledge_base_documents", {"documentDetails": []}, None)
        kb.ingest_text("doc-1", "text", {"classification": "internal", "allowed_groups": ["a", "b"]})
        kb.remove(document_id="doc-1")
        kb.remove(uri="s3://curated-bucket/curated/doc-2.txt")
        stubber.assert_no_pending_responses()


def test_a_redriven_dead_letter_is_processed_not_skipped(aws: Aws) -> None:
    message = landed(aws, "docs/redrive.txt", "Back again.")
    message["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)
    real = aws.comprehend.detect_dominant_language
    aws.comprehend.detect_dominant_language = _throttled  # type: ignore[method-assign]
    assert run(message) == [message["messageId"]]
    assert version_record(aws, "docs/redrive.txt")["status"] == "dead_lettered"
    aws.comprehend.detect_dominant_language = real  # type: ignore[method-assign]
    redriven = {
        **message,
        "messageId": "redriven",
        "attributes": {**message["attributes"], "ApproximateReceiveCount": "1"},
    }
    assert run(redriven) == []
    assert version_record(aws, "docs/redrive.txt")["status"] == "curated"
    assert f"curated/{document_id(LANDING, 'docs/redrive.txt')}.txt" in aws.objects(CURATED)


def test_an_older_version_arriving_late_is_superseded_not_curated(aws: Aws) -> None:
    doc = document_id(LANDING, "docs/late.txt")
    older = landed(aws, "docs/late.txt", "Old text.")
    newer = landed(aws, "docs/late.txt", "New text.")
    assert run(newer) == []
    assert run(older) == []  # the retry of the older one comes last
    assert aws.objects(CURATED)[f"curated/{doc}.txt"] == b"New text."
    statuses = sorted(i["status"] for i in aws.registry_items() if i["pk"] == doc and i["sk"] != "current")
    assert statuses == ["curated", "superseded"]
    assert aws.landing_versions() == []


def test_a_version_is_read_with_its_own_metadata_not_the_latest_versions(aws: Aws) -> None:
    first = land(aws, "docs/relabelled.txt", "Mail ada.lovelace@example.com", classification="internal")
    land(aws, "docs/relabelled.txt", "Clean text.", classification="public")  # its event comes later
    outcome = make(aws).process(first)
    assert (outcome.status, outcome.reason) == ("curated", "masked 1 personal data entities")
    assert record_of(aws, first)["classification"] == "internal"  # not the public label of the newer one


def test_a_newer_version_settled_during_processing_wins_and_the_older_ones_writes_are_undone(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = document_id(LANDING, "realtime/crm/race.md")
    older = landed(aws, "realtime/crm/race.md", "Old text.")
    assert run(landed(aws, "realtime/crm/race.md", "New text.")) == []
    real_current = aws.registry.current
    first = [True]

    def current(document: str) -> Any:
        if first.pop() if first else False:
            return None  # what this worker saw before the newer version was settled
        return real_current(document)

    monkeypatch.setattr(aws.registry, "current", current)
    assert run(older) == []
    assert aws.objects(CURATED)[f"direct/{doc}.txt"] == b"New text."
    statuses = sorted(i["status"] for i in aws.registry_items() if i["pk"] == doc and i["sk"] != "current")
    assert statuses == ["curated", "superseded"]
    last_ingest = [p for op, p in aws.agent.calls if op == "IngestKnowledgeBaseDocuments"][-1]
    assert last_ingest["documents"][0]["content"]["custom"]["inlineContent"]["textContent"]["data"].startswith(
        "New text"
    )


def test_an_undone_realtime_version_indexes_the_winners_copy_with_the_winners_metadata(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loser of the race re-indexes the winning copy: with the winner's classification, readers
    and owner (its sidecar), never the loser's, or the winner's text would be read as the loser's
    classification allows."""
    key = "realtime/crm/mixed.md"
    older = landed(aws, key, "Old text.", classification="public", owner="old-team")
    assert run(landed(aws, key, "New text.", classification="internal", owner="new-team")) == []
    real_current = aws.registry.current
    first = [True]
    monkeypatch.setattr(
        aws.registry, "current", lambda d: None if (first.pop() if first else False) else real_current(d)
    )
    assert run(older) == []
    last_ingest = [p for op, p in aws.agent.calls if op == "IngestKnowledgeBaseDocuments"][-1]
    (document,) = last_ingest["documents"]
    attributes = {a["key"]: a["value"] for a in document["metadata"]["inlineAttributes"]}
    assert document["content"]["custom"]["inlineContent"]["textContent"]["data"] == "New text."
    assert attributes["classification"] == {"type": "STRING", "stringValue": "internal"}
    assert attributes["owner"] == {"type": "STRING", "stringValue": "new-team"}
    assert attributes["allowed_groups"] == {"type": "STRING_LIST", "stringListValue": ["platform-admins"]}


def test_documents_left_when_the_invocation_runs_low_are_retried_not_lost(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCUMENT_BUDGET_SECONDS", "30")
    messages = [landed(aws, f"docs/late{i}.txt", f"Document {i}.") for i in range(3)]
    done: list[str] = []
    real_process = handler.process

    def counting(obj: dict[str, Any], **more: Any) -> dict[str, Any]:
        done.append(obj["key"])
        return dict(real_process(obj=obj, **more))

    monkeypatch.setattr(handler, "process", counting)

    class Shrinking(FakeContext):
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 120_000 if len(done) < 2 else 29_000  # the third document would not finish in time

    response = handler.lambda_handler(batch(*messages), Shrinking())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [messages[2]["messageId"]]
    assert done == ["docs/late0.txt", "docs/late1.txt"]
    assert len(aws.landing_versions()) == 1  # still there for the retry


def test_a_document_deferred_on_its_messages_last_receive_goes_back_to_the_queue_not_to_the_dead_letters(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deferred for time, a message still spends a receive: on its last one SQS would move it to
    the dead letters never tried (heavy batches can defer the same message every time). It is sent
    to the queue again as a new message, and this one is done; before its last receive, SQS retries it."""
    early, last = landed(aws, "docs/early.txt", "Early."), landed(aws, "docs/last.txt", "Last.")
    last["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)

    class Short(FakeContext):
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 29_000  # less than a document's budget: nothing is tried

    response = handler.lambda_handler(batch(early, last), Short())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [early["messageId"]]
    (sent,) = aws.sqs.receive_message(QueueUrl=aws.queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])[
        "Messages"
    ]
    assert sent["Body"] == last["body"]  # the same S3 event, as a new message
    assert sent["MessageAttributes"]["requeues"] == {"StringValue": "1", "DataType": "Number"}
    assert aws.dlq() == []
    assert aws.registry_items() == []  # nothing recorded dead-lettered
    assert len(aws.landing_versions()) == 2  # both still there for their next try


class NoTimeLeft(FakeContext):
    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 29_000  # less than a document's budget: nothing is tried


@pytest.mark.parametrize(
    ("requeues", "failure"),
    [
        (str(handler.MAX_REQUEUES), f"sent to the queue again {handler.MAX_REQUEUES} times"),
        ("99999", f"sent to the queue again {handler.MAX_REQUEUES} times"),  # past any count it wrote
        (None, "sending it again failed: AWS.SimpleQueueService.NonExistentQueue"),
    ],
)
def test_a_document_deferred_too_often_or_not_sent_again_is_recorded_dead_lettered_with_why(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, requeues: str | None, failure: str
) -> None:
    """Sent again a few times at most (Lambda's own loop detection would stop it at 16 with no reason
    recorded), and never lost when the send fails: its version is recorded dead-lettered, and SQS
    moves the message to the dead letters."""
    message = landed(aws, "docs/late.txt", "Late.")
    message["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)
    if requeues is not None:
        message["messageAttributes"] = {"requeues": {"stringValue": requeues, "dataType": "Number"}}
    else:
        aws.sqs.delete_queue(QueueUrl=aws.queue_url)
    assert run_with(message, context=NoTimeLeft()) == [message["messageId"]]
    (record,) = [i for i in aws.registry_items() if i["sk"] != "current"]
    assert record["status"] == "dead_lettered"
    assert failure in record["reason"]


def _deferred_for_the_last_time(message: dict[str, Any]) -> dict[str, Any]:
    message["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)
    message["messageAttributes"] = {"requeues": {"stringValue": str(handler.MAX_REQUEUES), "dataType": "Number"}}
    return message


def test_a_scan_that_would_outrun_the_invocation_stops_and_its_document_is_left_for_later(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document is started with a budget left (sized for ~50 Comprehend calls); a text of more
    calls, or a slow Comprehend, ran on until the function timed out with its whole batch. Between
    two calls with less than half a budget left, the scan stops: nothing is written, the message
    is retried (deferred, as a document not started is), and with time enough it is curated."""
    monkeypatch.setattr(
        handler, "pipeline", lambda: make(aws, max_document_bytes=1_000_000, max_extracted_chars=1_000_000)
    )
    message = landed(aws, "docs/long.txt", "Plain words and more of them. " * 9_000)  # 270 KB: 3 scan calls

    def scans() -> int:
        return sum(1 for kind, _ in aws.comprehend.calls if kind == "pii")

    class Running(FakeContext):
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 30_000 if scans() == 0 else 14_900  # the budget is 30 s: under half of it after one call

    assert run_with(message, context=Running()) == [message["messageId"]]
    assert scans() == 1
    assert [i for i in aws.registry_items() if i["sk"] != "event"] == []
    assert curated_versions(aws) == []
    assert len(aws.landing_versions()) == 1  # still there for the retry
    assert run(message) == []  # 30 s left throughout
    assert version_record(aws, "docs/long.txt")["status"] == "curated"


def test_a_document_deferred_to_the_dead_letters_is_recorded_under_its_real_key(aws: Aws) -> None:
    """S3 URL-encodes an event's key ("docs/my doc.txt" arrives as "docs/my+doc.txt"): the dead
    letter is recorded under the document it belongs to, as a failed one is, not under a made-up
    one (which a redrive would then process the real object under)."""
    put = aws.put("docs/my doc.txt", "Plain words.")
    message = _deferred_for_the_last_time(sqs_message(s3_event("docs/my+doc.txt", put["version"], put["size"])))
    assert run_with(message, context=NoTimeLeft()) == [message["messageId"]]
    assert {i["pk"] for i in aws.registry_items()} == {document_id(LANDING, "docs/my doc.txt")}
    assert version_record(aws, "docs/my doc.txt")["status"] == "dead_lettered"


def test_a_settled_versions_duplicate_deferred_to_the_dead_letters_leaves_its_record(aws: Aws) -> None:
    """SQS and EventBridge deliver at least once: a second delivery of a curated version that runs
    out of time on every receive goes to the dead letters, and the version stays curated (processed,
    the duplicate would have been a replay that changes nothing)."""
    message = landed(aws, "docs/plain.txt", "Plain words.")
    duplicate = json.loads(json.dumps(message))
    assert run_with(message, context=FakeContext()) == []
    assert run_with(_deferred_for_the_last_time(duplicate), context=NoTimeLeft()) == [duplicate["messageId"]]
    assert version_record(aws, "docs/plain.txt")["status"] == "curated"


class FailsFirstVersionRecord:
    """The registry table, throttled once: on the first version record it is asked to write."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self.failed = False

    def put_item(self, **params: Any) -> Any:
        if not self.failed and str(params["Item"]["sk"]).startswith("version#"):
            self.failed = True
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}}
            raise ClientError(error, "PutItem")
        return self._table.put_item(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


@pytest.mark.parametrize(("text", "status"), [("Plain words.", "curated"), ("", "quarantined")])
def test_a_retry_after_the_version_record_failed_settles_the_version_as_the_first_attempt_did(
    aws: Aws, text: str, status: str
) -> None:
    """The registry's two writes (the current state, then the version's record): the first attempt
    wrote the state and failed on the record, and SQS delivers the message again. The retry is
    this version's own, not a newer one's: it writes the state again and the record, and keeps its
    copy (taking it for a newer version's would undo it, and leave the registry naming a copy
    that is gone)."""
    message = landed(aws, "docs/a.txt", text)
    aws.registry._table = FailsFirstVersionRecord(aws.registry._table)
    assert run(message) == [message["messageId"]]  # failed: SQS delivers it again
    assert run(json.loads(json.dumps(message))) == []
    record = version_record(aws, "docs/a.txt")
    current = aws.registry.current(document_id(LANDING, "docs/a.txt"))
    assert current is not None
    assert (record["status"], current["status"], current["version"]) == (status, status, record["version"])
    bucket, _, key = str(current["location"]).removeprefix("s3://").partition("/")
    assert aws.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == text.encode()


class StaleReads:
    """The registry as a duplicate delivery running beside the first saw it: its first reads of the
    version's record and the document's state are from before the first settled it."""

    def __init__(self, registry: Any, *, versions: int = 1, currents: int = 2) -> None:
        self._registry, self._versions, self._currents = registry, versions, currents

    def version(self, *args: Any) -> Any:
        self._versions -= 1
        return None if self._versions >= 0 else self._registry.version(*args)

    def current(self, *args: Any) -> Any:
        self._currents -= 1
        return None if self._currents >= 0 else self._registry.current(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._registry, name)


def delivered_twice(aws: Aws, ref: ObjectRef) -> tuple[Outcome, Outcome]:
    """One version processed by two deliveries at once: the second reads the registry as it was
    before the first settled (StaleReads), and the first has not emptied landing yet."""
    pipeline = make(aws)
    pipeline._empty_landing = lambda *_: None  # type: ignore[method-assign]  # the first has not got there yet
    first = pipeline.process(ref)
    duplicate = make(aws)
    duplicate._registry = StaleReads(aws.registry)  # type: ignore[assignment]
    return first, duplicate.process(ref)


def test_a_duplicate_delivery_settling_the_same_version_beside_the_first_keeps_the_firsts_state(aws: Aws) -> None:
    """SQS delivers at least once: a second copy of the message, processed at the same time, writes
    its curated copy and finds the version's state written since it read it. Its copy is undone,
    the first's state and record stand, and it answers as a replay."""
    ref = land(aws, "docs/twice.txt", "Plain words.")
    first, second = delivered_twice(aws, ref)
    state = aws.registry.current(document_id(LANDING, "docs/twice.txt"))
    assert state is not None
    assert (second.status, second.replayed, state["version"]) == ("curated", True, ref.version)
    assert record_of(aws, ref)["status"] == "curated"  # not superseded by itself
    bucket, _, key = str(state["location"]).removeprefix("s3://").partition("/")
    versions = aws.s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    copies = [v["VersionId"] for v in versions if v["Key"] == key]
    assert copies == [state["object_version"]]  # the duplicate's copy undone
    assert first.location == state["location"]


# --- the classification policy: which classification, mask or quarantine, what a curated copy carries -----------------------

EMAIL_AND_PHONE = "Reach ada.lovelace@example.com or +1 206 555 0143."


@pytest.mark.parametrize(
    ("metadata", "text", "status", "reason", "pii", "classification", "groups"),
    [
        ({}, "Plain words.", "curated", "no personal data found", {}, "internal", ["platform-admins"]),
        (
            {"classification": "public"},
            "Plain words.",
            "curated",
            "no personal data found",
            {},
            "public",
            ["customer-basic", "customer-gold"],
        ),
        (
            {"classification": "public"},
            EMAIL_AND_PHONE,
            "quarantined",
            "personal data (EMAIL, PHONE) in a public document",
            {"EMAIL": 1, "PHONE": 1},
            "public",
            None,
        ),
        (
            {"classification": "internal"},
            EMAIL_AND_PHONE,
            "curated",
            "masked 2 personal data entities",
            {"EMAIL": 1, "PHONE": 1},
            "internal",
            ["platform-admins"],
        ),
        (
            {"classification": "customer"},
            EMAIL_AND_PHONE,
            "curated",
            "masked 2 personal data entities",
            None,
            "customer",
            [],
        ),
        (
            {"classification": "Public"},
            "Plain words.",
            "quarantined",
            "unknown classification (allowed: public, internal, customer)",
            {},
            None,
            None,
        ),
    ],
)
def test_each_classification_gets_its_policy_its_readers_and_a_recorded_reason(
    aws: Aws,
    metadata: dict[str, str],
    text: str,
    status: str,
    reason: str,
    pii: dict[str, int] | None,
    classification: str | None,
    groups: list[str] | None,
) -> None:
    ref = land(aws, "docs/note.txt", text, **metadata)
    outcome = make(aws).process(ref)
    doc = document_id(LANDING, "docs/note.txt")
    bucket = CURATED if status == "curated" else QUARANTINE
    where = f"curated/{doc}.txt" if status == "curated" else f"{doc}/{ref.version}/note.txt"
    location = f"s3://{bucket}/{where}"
    expected_pii = {"EMAIL": 1, "PHONE": 1} if pii is None else pii
    code = "" if status == "curated" else "pii" if reason.startswith("personal data") else "unknown_classification"
    assert outcome == Outcome(doc, ref.version, status, reason, location, expected_pii, False, code)
    record = record_of(aws, ref)
    assert (record["status"], record["reason"], record["location"]) == (status, reason, location)
    assert record.get("reason_code") == (code or None)
    assert record.get("classification") == classification
    assert record.get("pii", {}) == expected_pii
    assert (record["origin"], record["size"], record["source"]) == (
        "upload",
        len(text),
        f"s3://{LANDING}/docs/note.txt",
    )
    read = classification is not None  # an unknown classification is quarantined unread
    assert record.get("content_hash") == (hashlib.sha256(text.encode()).hexdigest() if read else None)
    assert (record["received_at"], record["processed_at"]) == (NOW.isoformat(), NOW.isoformat())
    assert aws.landing_versions() == []
    current = current_of(aws, "docs/note.txt")
    assert (current["status"], current["version"], current["location"], current["updated_at"]) == (
        status,
        ref.version,
        location,
        NOW.isoformat(),
    )
    stored = aws.objects(bucket)
    if status == "quarantined":
        assert stored == {where: text.encode()}  # as it came
        assert aws.objects(CURATED) == {}
        return
    sidecar = json.loads(stored[f"{where}.metadata.json"])["metadataAttributes"]
    assert sidecar.pop("allowed_groups", []) == groups  # an empty list attribute is left out
    assert sidecar == {
        "document_id": doc,
        "source": f"s3://{LANDING}/docs/note.txt",
        "owner": "unknown",
        "classification": classification,
    }
    versions = {v["Key"]: v["VersionId"] for v in aws.s3.list_object_versions(Bucket=CURATED)["Versions"]}
    assert (current["mode"], current["classification"], current["object_version"]) == (
        "bulk",
        classification,
        versions[where],
    )
    assert aws.s3.head_object(Bucket=CURATED, Key=where)["ContentType"] == "text/plain; charset=utf-8"
    assert aws.s3.head_object(Bucket=CURATED, Key=f"{where}.metadata.json")["ContentType"] == "application/json"
    if pii:
        assert stored[where] == b"Reach [EMAIL] or [PHONE]."


def test_the_default_clock_records_utc(aws: Aws) -> None:
    ref = land(aws, "docs/utc.txt", "Plain words.")
    aws.pipeline.process(ref)
    record = record_of(aws, ref)
    for stamp in (record["received_at"], record["processed_at"]):
        assert dt.datetime.fromisoformat(stamp).utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("origin", "recorded"),
    [(None, "upload"), ("connector:crm", "connector:crm"), ("connector:CRM", "unknown"), ("uploads", "unknown")],
)
def test_the_origin_is_recorded_only_when_it_is_a_known_one(aws: Aws, origin: str | None, recorded: str) -> None:
    ref = land(aws, "docs/origin.txt", "Plain words.", **({"origin": origin} if origin else {}))
    make(aws).process(ref)
    assert record_of(aws, ref)["origin"] == recorded


def test_the_registry_records_the_objects_size_not_the_size_an_event_claims(aws: Aws) -> None:
    """The queue takes messages from anyone allowed to send: the event's size is its sender's word."""
    put = aws.put("docs/small.txt", "Refunds take thirty days.")
    assert run(sqs_message(s3_event(put["key"], put["version"], 4_999_999_999))) == []
    assert version_record(aws, "docs/small.txt")["size"] == len("Refunds take thirty days.")


@pytest.mark.parametrize(("size", "status"), [(MAX_BYTES, "curated"), (MAX_BYTES + 1, "quarantined")])
def test_the_byte_limit_lets_a_document_of_exactly_that_size_through(aws: Aws, size: int, status: str) -> None:
    ref = land(aws, "docs/size.txt", "a" * size)
    outcome = make(aws, max_extracted_chars=MAX_BYTES).process(ref)  # its text is as long: only the bytes count
    assert outcome.status == status
    if status == "quarantined":
        assert (outcome.reason, outcome.reason_code) == (
            f"{size} bytes is over the {MAX_BYTES} byte limit",
            "too_large",
        )
        assert record_of(aws, ref)["reason_code"] == "too_large"


def test_an_upload_at_one_copys_limit_is_quarantined_in_one_copy(aws: Aws) -> None:
    """An object of exactly the pipeline's copy limit (128 MiB; lowered here) is one CopyObject."""
    body = bytes(range(256)) * (MAX_BYTES // 256 + 64)
    put = aws.s3.put_object(Bucket=LANDING, Key="docs/big.txt", Body=body, Metadata={"classification": "public"})
    ref = ObjectRef(LANDING, "docs/big.txt", put["VersionId"], len(body), "0066AED6DCD90281E501")
    operations: list[str] = []
    aws.s3.meta.events.register("before-call.s3.*", lambda model, **_: operations.append(model.name))
    outcome = make(aws, copy_limit=len(body)).process(ref)
    assert (outcome.status, outcome.reason_code) == ("quarantined", "too_large")
    assert ("CopyObject" in operations, "UploadPartCopy" in operations) == (True, False)


def test_an_upload_over_one_copys_limit_is_quarantined_in_parts_as_it_is(aws: Aws) -> None:
    """Above the copy limit (lowered here) the version is copied in parts (a copy that can be
    stopped for time), with the content type and user metadata CopyObject would have kept."""
    body = bytes(range(256)) * (MAX_BYTES // 256 + 64)
    put = aws.s3.put_object(
        Bucket=LANDING, Key="docs/huge.txt", Body=body, ContentType="text/plain", Metadata={"classification": "public"}
    )
    ref = ObjectRef(LANDING, "docs/huge.txt", put["VersionId"], len(body), "0066AED6DCD90281E500")
    operations: list[str] = []
    aws.s3.meta.events.register("before-call.s3.*", lambda model, **_: operations.append(model.name))
    outcome = make(aws, copy_limit=len(body) - 1).process(ref)
    assert (outcome.status, outcome.reason_code) == ("quarantined", "too_large")
    assert "UploadPartCopy" in operations
    assert "CopyObject" not in operations
    (target,) = [k for k in aws.objects(QUARANTINE) if k.startswith(document_id(LANDING, "docs/huge.txt"))]
    copied = aws.s3.get_object(Bucket=QUARANTINE, Key=target)
    assert (copied["Body"].read(), copied["ContentType"], copied["Metadata"]) == (
        body,
        "text/plain",
        {"classification": "public"},
    )


class StalledParts:
    """Part copies that wait, as a slow copy's would, until the test's copy is cancelled (then
    they end, and s3transfer cleans up as it would on AWS): no copy can finish before its
    deadline, whatever the machine's speed."""

    def __init__(self, aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
        from s3transfer.futures import TransferFuture

        self.cancelled = threading.Event()
        real_cancel = TransferFuture.cancel

        def cancel(future: TransferFuture) -> None:
            real_cancel(future)
            self.cancelled.set()

        monkeypatch.setattr(TransferFuture, "cancel", cancel)
        aws.s3.meta.events.register("before-call.s3.UploadPartCopy", self._wait)

    def _wait(self, **_: Any) -> None:
        # A bound for a copy that is never cancelled (a bug), so it fails rather than hangs: a copy
        # that is cancelled is released at once.
        assert self.cancelled.wait(10), "the copy was never cancelled"


def _huge(aws: Aws, key: str) -> tuple[dict[str, Any], int]:
    """A landing upload over the byte limit, and a copy limit it is over (its copy goes in parts)."""
    message = landed(aws, key, bytes(range(256)) * (MAX_BYTES // 256 + 64), classification="public")
    size = json.loads(message["body"])["detail"]["object"]["size"]
    return message, size - 1


def test_a_copy_to_quarantine_still_running_when_time_is_up_is_stopped_and_aborted(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A copy that would outlast the invocation is stopped, its parts aborted, and nothing is
    recorded for the version: the failure is the message's, which SQS retries."""
    message, limit = _huge(aws, "docs/stalled.txt")
    stalled = StalledParts(aws, monkeypatch)
    ref = object_ref(message["body"])
    with pytest.raises(CopyTooSlowError) as raised:
        make(aws, copy_limit=limit).process(ref, lambda: 0.0)
    assert stalled.cancelled.is_set()
    assert str(raised.value) == (
        f"{ref.size} bytes is over the {MAX_BYTES} byte limit; its copy to quarantine did not finish in the "
        "invocation's time and was stopped (the object stays in the landing bucket)"
    )
    assert aws.objects(QUARANTINE) == {}
    assert aws.s3.list_multipart_uploads(Bucket=QUARANTINE).get("Uploads", []) == []
    assert (
        aws.s3.head_object(Bucket=LANDING, Key="docs/stalled.txt", VersionId=ref.version)["ContentLength"] == ref.size
    )
    assert [i for i in aws.registry_items() if i["pk"] == document_id(LANDING, "docs/stalled.txt")] == []


def test_a_copy_in_parts_that_fails_fails_the_message_with_nothing_recorded(aws: Aws) -> None:
    """A part refused (S3 throttling, say) is the copy's failure, not a quarantine without its copy."""
    message, limit = _huge(aws, "docs/refused.txt")

    def refuse(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "SlowDown", "Message": "x"}}, "UploadPartCopy")

    aws.s3.meta.events.register("before-call.s3.UploadPartCopy", refuse)
    with pytest.raises(ClientError, match="SlowDown"):
        make(aws, copy_limit=limit).process(object_ref(message["body"]), lambda: 60.0)
    assert aws.objects(QUARANTINE) == {}
    assert aws.s3.list_multipart_uploads(Bucket=QUARANTINE).get("Uploads", []) == []
    assert [i for i in aws.registry_items() if i["pk"] == document_id(LANDING, "docs/refused.txt")] == []


class _Minutes(FakeContext):
    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 600_000


def test_a_copy_stopped_for_time_fails_its_message_is_dead_lettered_with_the_reason_last_and_redriven_later(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In the handler, the copy may take the invocation's time less a document's budget (none is
    left with FakeContext's 30 s): the message fails and is retried; on its last receive the
    version is recorded dead-lettered with the reason; redriven with time enough, it is quarantined."""
    message, limit = _huge(aws, "docs/stalled.txt")
    monkeypatch.setattr(handler, "pipeline", lambda: make(aws, copy_limit=limit))
    StalledParts(aws, monkeypatch)
    assert run(message) == [message["messageId"]]
    assert [i for i in aws.registry_items() if i["pk"] == document_id(LANDING, "docs/stalled.txt")] == []
    message["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)
    assert run(message) == [message["messageId"]]
    record = version_record(aws, "docs/stalled.txt")
    assert (record["status"], record["location"]) == ("dead_lettered", "dlq")
    assert record["reason"].endswith(
        "its copy to quarantine did not finish in the invocation's time and was "
        "stopped (the object stays in the landing bucket)"
    )
    aws.s3.meta.events.unregister("before-call.s3.UploadPartCopy")
    assert run_with(message, context=_Minutes()) == []
    assert version_record(aws, "docs/stalled.txt")["status"] == "quarantined"


@pytest.mark.parametrize(
    ("policy", "status", "reason", "code", "pii"),
    [
        (
            "quarantine",
            "quarantined",
            "PII detection does not support the document's language (fr)",
            "unsupported_language",
            {"EMPLOYEE_ID": 1},
        ),
        ("custom_only", "curated", "masked 1 personal data entities", "", {"EMPLOYEE_ID": 1}),
    ],
)
def test_an_unsupported_language_is_quarantined_or_checked_with_the_custom_identifiers_only(
    aws: Aws, policy: str, status: str, reason: str, code: str, pii: dict[str, int]
) -> None:
    ref = land(aws, "intl/rapport.txt", f"{FRENCH} EMP-314159")
    outcome = make(aws, unsupported_language=policy).process(ref)
    assert (outcome.status, outcome.reason, outcome.reason_code, outcome.pii) == (status, reason, code, pii)
    assert record_of(aws, ref).get("reason_code", "") == code
    if status == "curated":
        text = aws.objects(CURATED)[f"curated/{document_id(LANDING, 'intl/rapport.txt')}.txt"].decode()
        assert text == f"{FRENCH} [EMPLOYEE_ID]"
    assert [c for c in aws.comprehend.calls if c[0] == "pii"] == []  # Comprehend never saw French


def test_the_limits_a_pipeline_reads_with_are_its_settings(aws: Aws) -> None:
    bomb = docx_bytes(["Hi"], extra={"word/media/pad.bin": bytes(1_100_000)})
    assert len(bomb) <= MAX_BYTES
    ref = land(aws, "bomb/parts.docx", bomb)
    outcome = make(aws, max_expanded_bytes=900_000, max_compression_ratio=150).process(ref)
    assert (outcome.status, outcome.reason) == (
        "quarantined",
        "the DOCX's parts expand past 900000 bytes or 150 times their compressed size",
    )
    ref = land(aws, "bomb/allowed.docx", bomb)
    assert make(aws, max_expanded_bytes=5_000_000, max_compression_ratio=10_000).process(ref).status == "curated"


def test_pdf_and_docx_are_read_within_every_limit_the_settings_name(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ReadLimits field comes from its setting (distinct values, none the default)."""
    read: list[ReadLimits] = []

    def text_of(data: bytes, fmt: str, limits: ReadLimits) -> str:
        read.append(limits)
        return "Plain words."

    monkeypatch.setattr(pipeline_module, "text_of", text_of)
    pipeline = make(
        aws,
        max_pages=7,
        max_extracted_chars=1_234,
        read_seconds=9,
        max_expanded_bytes=4_321_000,
        max_compression_ratio=77,
        max_page_bytes=654_321,
        read_memory_bytes=98_765_432,
    )
    assert pipeline.process(land(aws, "docs/limits.pdf", b"%PDF-1.7")).status == "curated"
    assert read == [
        ReadLimits(
            max_pages=7,
            max_chars=1_234,
            seconds=9,
            max_expanded_bytes=4_321_000,
            max_compression_ratio=77,
            max_page_bytes=654_321,
            max_memory_bytes=98_765_432,
        )
    ]


def test_the_event_version_is_read_and_quarantined_not_the_latest(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    copies: list[dict[str, Any]] = []
    real_copy = aws.s3.copy_object

    def copy_object(**params: Any) -> Any:
        copies.append(params)
        return real_copy(**params)

    monkeypatch.setattr(aws.s3, "copy_object", copy_object)
    older = land(aws, "docs/v.txt", "Mail ada.lovelace@example.com", classification="public")
    newer = land(aws, "docs/v.txt", "Clean text.", classification="public")
    assert make(aws).process(older).status == "quarantined"
    quarantined = aws.objects(QUARANTINE)
    doc = document_id(LANDING, "docs/v.txt")
    assert quarantined == {f"{doc}/{older.version}/v.txt": b"Mail ada.lovelace@example.com"}
    directive = aws.s3.meta.service_model.operation_model("CopyObject").input_shape.members["MetadataDirective"]
    assert [c["MetadataDirective"] for c in copies] == ["COPY"]
    assert set(directive.enum) == {"COPY", "REPLACE"}  # S3 refuses any other spelling
    head = aws.s3.head_object(Bucket=QUARANTINE, Key=f"{doc}/{older.version}/v.txt")
    assert head["Metadata"] == {"classification": "public"}  # the uploader's metadata goes with it
    assert make(aws).process(newer).status == "curated"
    assert aws.objects(CURATED)[f"curated/{doc}.txt"] == b"Clean text."
    assert record_of(aws, newer)["content_hash"] == hashlib.sha256(b"Clean text.").hexdigest()


def test_the_size_is_the_objects_not_the_events(aws: Aws) -> None:
    put = aws.put("docs/claims.txt", "a" * (MAX_BYTES + 1))
    ref = ObjectRef(LANDING, "docs/claims.txt", put["version"], 10, "1")  # the event claims 10 bytes
    outcome = make(aws).process(ref)
    assert (outcome.status, outcome.reason) == (
        "quarantined",
        f"{MAX_BYTES + 1} bytes is over the {MAX_BYTES} byte limit",
    )


def test_a_classification_the_readers_document_does_not_name_has_no_reader_groups(aws: Aws) -> None:
    ref = land(aws, "docs/unnamed.txt", "Plain words.", classification="public")
    assert make(aws, readers={"internal": ["platform-admins"]}).process(ref).status == "curated"
    sidecar = aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/unnamed.txt')}.txt.metadata.json"]
    assert "allowed_groups" not in json.loads(sidecar)["metadataAttributes"]


def test_an_older_version_processed_first_is_curated_from_its_own_bytes(aws: Aws) -> None:
    older = land(aws, "docs/w.txt", "Old text.")
    land(aws, "docs/w.txt", "New text.")
    make(aws).process(older)
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/w.txt')}.txt"] == b"Old text."
    assert record_of(aws, older)["content_hash"] == hashlib.sha256(b"Old text.").hexdigest()


# --- uploader metadata in the sidecar ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "kept"),
    [("o" * 256, "o" * 256), ("o" * 257, "unknown"), ("Grace Hopper", "[NAME]"), ("tab\there", "unknown")],
)
def test_an_owner_is_kept_when_it_is_one_printable_line_of_at_most_256_characters(
    aws: Aws, owner: str, kept: str
) -> None:
    ref = land(aws, "docs/owned.txt", "Plain words.", owner=owner, source="wiki")
    make(aws).process(ref)
    sidecar = aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/owned.txt')}.txt.metadata.json"]
    attributes = json.loads(sidecar)["metadataAttributes"]
    assert (attributes["owner"], attributes["source"]) == (kept, "wiki")
    # The fields are scanned in the document's language: one language detection per document.
    assert [c[0] for c in aws.comprehend.calls].count("language") == 1


def test_a_finding_across_two_fields_makes_both_unknown(aws: Aws) -> None:
    ref = land(aws, "docs/joined.txt", "Plain words.", source="wiki-a", owner="b-team")
    make(aws, custom={"glue": r"a\nb"}).process(ref)
    sidecar = aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/joined.txt')}.txt.metadata.json"]
    attributes = json.loads(sidecar)["metadataAttributes"]
    assert (attributes["source"], attributes["owner"]) == ("unknown", "unknown")


# --- replays, deleted objects, keys as events send them -----------------------------------------------


def test_a_replay_after_a_crash_before_the_landing_slot_was_emptied_empties_it_and_does_nothing_else(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = land(aws, "docs/crash.txt", "Plain words.")
    pipeline = make(aws)
    real_delete = aws.s3.delete_object

    def crash(**params: Any) -> Any:
        if params["Bucket"] == LANDING:
            raise ClientError({"Error": {"Code": "InternalError", "Message": "x"}}, "DeleteObject")
        return real_delete(**params)

    monkeypatch.setattr(aws.s3, "delete_object", crash)
    with pytest.raises(ClientError):
        pipeline.process(ref)
    monkeypatch.setattr(aws.s3, "delete_object", real_delete)
    first = record_of(aws, ref)
    assert len(aws.landing_versions()) == 1
    replay = pipeline.process(ref)
    assert replay == Outcome(
        first["document_id"], ref.version, "curated", "no personal data found", first["location"], {}, replayed=True
    )
    assert aws.landing_versions() == []  # the version itself is gone, no delete marker left
    assert len(curated_versions(aws)) == 2  # text and sidecar, written once
    assert record_of(aws, ref) == first


def test_an_object_deleted_before_processing_is_recorded_gone_with_the_reason(aws: Aws) -> None:
    ref = land(aws, "docs/withdrawn.txt", "Withdrawn.")
    aws.s3.delete_object(Bucket=LANDING, Key=ref.key, VersionId=ref.version)
    outcome = make(aws).process(ref)
    assert (outcome.status, outcome.reason, outcome.location) == (
        "gone",
        "the object was deleted before it was processed",
        "",
    )
    assert record_of(aws, ref)["processed_at"] == NOW.isoformat()
    assert aws.registry.current(document_id(LANDING, ref.key)) is None


def test_an_object_deleted_as_uploaders_delete_before_processing_is_recorded_gone_not_curated(aws: Aws) -> None:
    """The landing bucket is versioned: an ordinary delete adds a delete marker and keeps the
    version, which a HEAD of the event's version still finds. It was curated all the same; it is
    gone, and its version emptied from landing (the marker is the uploader's)."""
    ref = land(aws, "docs/withdrawn.txt", "Withdrawn words.")
    marker = aws.s3.delete_object(Bucket=LANDING, Key=ref.key)["VersionId"]
    outcome = make(aws).process(ref)
    assert (outcome.status, outcome.reason, outcome.location) == (
        "gone",
        "the object was deleted before it was processed",
        "",
    )
    assert curated_versions(aws) == []
    assert aws.objects(QUARANTINE) == {}
    assert aws.registry.current(document_id(LANDING, ref.key)) is None
    assert [v["VersionId"] for v in aws.landing_versions()] == [marker]
    assert make(aws).process(ref) == replace(outcome, replayed=True)


def test_an_older_version_behind_a_newer_current_one_is_still_processed_in_the_registrys_order(aws: Aws) -> None:
    """Only a delete marker withdraws a version: a newer upload being the current version is not
    this one's end until it is settled (the registry orders them), so the older is curated first
    and the newer replaces it."""
    older = land(aws, "docs/two.txt", "Old text.")
    newer = land(aws, "docs/two.txt", "New text.")
    assert make(aws).process(older).status == "curated"
    assert make(aws).process(newer).status == "curated"
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/two.txt')}.txt"] == b"New text."


def test_an_object_the_pipeline_may_not_read_fails_to_be_retried_not_recorded_gone(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    ref = land(aws, "docs/denied.txt", "Plain words.")

    def denied(**_: Any) -> Any:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "x"}}, "HeadObject")

    monkeypatch.setattr(aws.s3, "head_object", denied)
    with pytest.raises(ClientError):
        make(aws).process(ref)
    assert aws.registry_items() == []


def test_a_url_encoded_key_in_the_event_is_found_decoded(aws: Aws) -> None:
    ref = land(aws, "docs/my file.txt", "Plain words.", event_key="docs/my+file.txt")
    outcome = make(aws).process(ref)
    assert outcome.status == "curated"
    assert aws.landing_versions() == []


# --- stale versions ----------------------------------------------------------------------------------


def _sees_nothing_then_real(aws: Aws, monkeypatch: pytest.MonkeyPatch, blind: int) -> None:
    """The worker reads no current state for its first ``blind`` looks (a newer version is settled
    meanwhile); only the registry's conditional write can then tell it is stale."""
    real = aws.registry.current
    looks = itertools.count()

    def current(document: str) -> Any:
        return None if next(looks) < blind else real(document)

    monkeypatch.setattr(aws.registry, "current", current)


@pytest.mark.parametrize("blind", [1, 2])  # 1: seen before recording; 2: refused by the registry
@pytest.mark.parametrize(
    ("key", "older_text", "metadata"),
    [
        ("docs/race.txt", "Old text.", {}),
        ("realtime/crm/race.md", "Old text.", {}),
        ("docs/race.txt", "Old ada.lovelace@example.com", {"classification": "public"}),
    ],
)
def test_an_older_version_losing_the_race_undoes_its_writes_and_is_superseded(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, blind: int, key: str, older_text: str, metadata: dict[str, str]
) -> None:
    older = land(aws, key, older_text, **metadata)
    newer = land(aws, key, "New text.")
    pipeline = make(aws)
    assert pipeline.process(newer).status == "curated"
    before = curated_versions(aws)
    _sees_nothing_then_real(aws, monkeypatch, blind)
    outcome = pipeline.process(older)
    assert (outcome.status, outcome.reason) == (
        "superseded",
        f"version {newer.version} of this document is newer and was settled first",
    )
    assert curated_versions(aws) == before  # each written version deleted again
    assert stored(aws, QUARANTINE) == []  # a quarantine copy's version too: no unmasked copy left behind
    prefix = "direct/" if key.startswith("realtime/") else "curated/"
    assert aws.objects(CURATED)[f"{prefix}{document_id(LANDING, key)}.txt"] == b"New text."
    assert current_of(aws, key)["version"] == newer.version
    assert aws.landing_versions() == []


def stored(aws: Aws, bucket: str) -> list[tuple[str, str]]:
    """Every version and delete marker in a versioned bucket: (kind, key)."""
    listed = aws.s3.list_object_versions(Bucket=bucket)
    return [("version", v["Key"]) for v in listed.get("Versions", [])] + [
        ("delete marker", m["Key"]) for m in listed.get("DeleteMarkers", [])
    ]


def test_a_quarantine_copy_undone_when_a_newer_version_settles_during_it_leaves_no_version(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quarantine bucket is versioned: deleting the copy's key left the unmasked copy as a
    noncurrent version behind a delete marker, readable by version for good."""
    older = land(aws, "docs/report.txt", "Press contact: ada.lovelace@example.com", classification="public")
    newer = land(aws, "docs/report.txt", "Fixed text, no personal data.", classification="public")
    real_copy = aws.s3.copy_object

    def copy_then_the_newer_settles(**params: Any) -> Any:
        copied = real_copy(**params)
        monkeypatch.setattr(aws.s3, "copy_object", real_copy)
        assert make(aws).process(newer).status == "curated"
        return copied

    monkeypatch.setattr(aws.s3, "copy_object", copy_then_the_newer_settles)
    assert make(aws).process(older).status == "superseded"
    assert stored(aws, QUARANTINE) == []


def test_a_quarantine_copy_in_parts_undone_leaves_no_version(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    """A copy in parts is undone by its own version too (S3's answer to completing the upload)."""
    older, limit = _huge(aws, "docs/huge.txt")
    newer = land(aws, "docs/huge.txt", "New text.")
    assert make(aws).process(newer).status == "curated"
    _sees_nothing_then_real(aws, monkeypatch, 1)
    assert make(aws, copy_limit=limit).process(object_ref(older["body"])).status == "superseded"
    assert stored(aws, QUARANTINE) == []


def test_a_duplicate_delivery_quarantining_the_same_version_beside_the_first_leaves_the_firsts_copy(
    aws: Aws,
) -> None:
    """Both deliveries copy the version to the same key; the one refused by the registry undoes
    its own copy's version. A delete of the key hid the copy the registry names behind a marker."""
    ref = land(aws, "docs/twice.txt", "Press contact: ada.lovelace@example.com", classification="public")
    first, second = delivered_twice(aws, ref)
    assert (first.status, second.status, second.replayed, second.location) == (
        "quarantined",
        "quarantined",
        True,
        first.location,
    )
    _, _, key = first.location.removeprefix("s3://").partition("/")
    assert aws.s3.get_object(Bucket=QUARANTINE, Key=key)["Body"].read() == b"Press contact: ada.lovelace@example.com"
    assert stored(aws, QUARANTINE) == [("version", key)]


def test_a_late_older_event_is_superseded_before_it_is_read(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> None:
    older = land(aws, "docs/late.txt", "Old text.")
    newer = land(aws, "docs/late.txt", "New text.")
    pipeline = make(aws)
    pipeline.process(newer)
    monkeypatch.setattr(aws.s3, "head_object", None)  # not looked at
    outcome = pipeline.process(older)
    assert (outcome.status, outcome.location) == ("superseded", "")
    assert record_of(aws, older)["processed_at"] == NOW.isoformat()


@pytest.mark.parametrize(
    ("recorded", "sequencer", "newer"),
    [
        (None, "A1", False),
        ("", "A1", False),
        (sequencer_key("A2"), "", True),  # an event without a sequencer never outranks a recorded one
        (sequencer_key("A2"), "A1", True),
        (sequencer_key("A1"), "A1", False),
        (sequencer_key("A1"), "a2", False),
        (sequencer_key("FF"), "100", False),  # hex of different lengths compares by value
    ],
)
def test_a_current_state_is_newer_only_when_its_event_came_later(
    recorded: str | None, sequencer: str, newer: bool
) -> None:
    current = None if recorded is None else {"sequencer": recorded}
    assert _newer_than(current, ObjectRef(LANDING, "k", "v", 1, sequencer)) is newer


# --- retiring curated copies ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["docs/moving.txt", "realtime/crm/moving.md"])
def test_a_quarantined_new_version_takes_the_curated_copy_out_of_the_bucket_and_the_kb(aws: Aws, key: str) -> None:
    pipeline = make(aws)
    pipeline.process(land(aws, key, "Clean text."))
    aws.agent.calls.clear()
    pipeline.process(land(aws, key, "Mail ada.lovelace@example.com", classification="public"))
    doc = document_id(LANDING, key)
    assert aws.objects(CURATED) == {}
    bulk = key.startswith("docs/")
    prefix = "curated" if bulk else "direct"
    assert curated_versions(aws) == [f"{prefix}/{doc}.txt.metadata.json"]  # past versions
    if bulk:
        identifier = {"dataSourceType": "S3", "s3": {"uri": f"s3://{CURATED}/curated/{doc}.txt"}}
        source = "DS3SOURCE1"
    else:
        identifier = {"dataSourceType": "CUSTOM", "custom": {"id": doc}}
        source = "DSCUSTOM01"
    assert aws.agent.calls == [
        (
            "DeleteKnowledgeBaseDocuments",
            {"knowledgeBaseId": "KB12345678", "dataSourceId": source, "documentIdentifiers": [identifier]},
        )
    ]


@pytest.fixture
def curated_doc(aws: Aws) -> tuple[str, dict[str, Any]]:
    ref = land(aws, "docs/flagged.txt", "Clean text.")
    make(aws).process(ref)
    aws.agent.calls.clear()
    return ref.key, current_of(aws, ref.key)


@pytest.mark.parametrize("which", ["current", "any"])
@pytest.mark.parametrize("key", ["docs/flagged.txt", "realtime/crm/flagged.md"])
def test_retire_current_takes_out_the_current_curated_copy(aws: Aws, which: str, key: str) -> None:
    make(aws).process(land(aws, key, "Clean text."))
    aws.agent.calls.clear()
    current = current_of(aws, key)
    store = CuratedStore(aws.s3, aws.knowledge)
    doc = document_id(LANDING, key)
    version = str(current["object_version"]) if which == "current" else None
    assert store.retire_current(doc, aws.registry.current(doc), object_version=version) == current
    assert aws.objects(CURATED) == {}
    if key.startswith("docs/"):
        source, identifier = "DS3SOURCE1", {"dataSourceType": "S3", "s3": {"uri": f"s3://{CURATED}/curated/{doc}.txt"}}
    else:
        source, identifier = "DSCUSTOM01", {"dataSourceType": "CUSTOM", "custom": {"id": doc}}
    assert aws.agent.calls == [
        (
            "DeleteKnowledgeBaseDocuments",
            {"knowledgeBaseId": "KB12345678", "dataSourceId": source, "documentIdentifiers": [identifier]},
        )
    ]


def test_retire_current_leaves_a_copy_that_is_not_the_flagged_one_or_not_curated(
    aws: Aws, curated_doc: tuple[str, dict[str, Any]]
) -> None:
    key, _ = curated_doc
    store = CuratedStore(aws.s3, aws.knowledge)
    doc = document_id(LANDING, key)
    before = aws.objects(CURATED)
    assert store.retire_current(doc, aws.registry.current(doc), object_version="an-older-copy") is None
    never = document_id(LANDING, "docs/never-seen.txt")
    assert store.retire_current(never, aws.registry.current(never)) is None
    assert aws.objects(CURATED) == before
    make(aws).process(land(aws, key, "Mail ada.lovelace@example.com", classification="public"))
    aws.agent.calls.clear()
    assert store.retire_current(doc, aws.registry.current(doc)) is None  # quarantined now: nothing curated to take out
    assert aws.agent.calls == []


# --- the PII scanner ---------------------------------------------------------------------------------


class Recording:
    """Comprehend answering ``languages`` and ``entities`` (per call), recording every text it gets."""

    def __init__(self, languages: list[dict[str, Any]] | None = None, entities: dict[str, Any] | None = None) -> None:
        self.languages = [{"LanguageCode": "en", "Score": 0.9}] if languages is None else languages
        self.entities = {"Entities": []} if entities is None else entities
        self.calls: list[tuple[str, str]] = []

    def detect_dominant_language(self, *, Text: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self.calls.append(("language", Text))
        return {"Languages": self.languages} if self.languages else {}

    def detect_pii_entities(self, *, Text: str, LanguageCode: str) -> dict[str, Any]:  # noqa: N803
        self.calls.append((f"pii-{LanguageCode}", Text))
        return self.entities


def test_entities_are_kept_from_the_default_score_floor_up() -> None:
    entities = [
        {"Type": "NAME", "BeginOffset": 0, "EndOffset": 3, "Score": 0.8},
        {"Type": "EMAIL", "BeginOffset": 4, "EndOffset": 7, "Score": 0.79},
        {"Type": "PHONE", "BeginOffset": 8, "EndOffset": 11},
    ]
    scan = PiiScanner(Recording(entities={"Entities": entities}), custom_identifiers={}).scan("abc def ghi")
    assert scan.spans == (Span(0, 3, "NAME"),)
    assert PiiScanner(Recording(entities={}), custom_identifiers={}).scan("abc").spans == ()


@pytest.mark.parametrize(
    ("languages", "language", "supported"),
    [
        ([], "und", False),
        ([{"LanguageCode": "fr", "Score": 0.3}, {"LanguageCode": "es", "Score": 0.6}], "es", True),
        ([{"LanguageCode": "fr"}, {"LanguageCode": "en", "Score": 0.1}], "en", True),
        ([{"LanguageCode": "de", "Score": 0.9}, {"LanguageCode": "en", "Score": 0.1}], "de", False),
    ],
)
def test_the_best_scoring_language_decides_and_custom_identifiers_run_in_every_language(
    languages: list[dict[str, Any]], language: str, supported: bool
) -> None:
    comprehend = Recording(languages)
    scan = PiiScanner(comprehend, custom_identifiers={"ticket": r"T-\d+"}).scan("see T-42 now")
    assert (scan.language, scan.supported) == (language, supported)
    assert Span(4, 8, "TICKET") in scan.spans
    assert [name for name, _ in comprehend.calls] == ["language"] + [f"pii-{language}"] * supported


def test_a_given_language_is_not_detected_again_and_the_samples_are_5000_characters_from_start_to_end() -> None:
    comprehend = Recording()
    text = "".join(f"{i} " for i in range(3000))  # 13,890 characters
    PiiScanner(comprehend, custom_identifiers={}).scan(text, language="es")
    assert [name for name, _ in comprehend.calls] == ["pii-es"]
    PiiScanner(comprehend, custom_identifiers={}).languages(text)
    assert comprehend.calls[1:] == [
        ("language", text[:5000]),
        ("language", text[4445:9445]),
        ("language", text[-5000:]),
    ]
    comprehend.calls.clear()
    PiiScanner(comprehend, custom_identifiers={}).languages(text[:5000])  # no longer than a sample: one
    assert comprehend.calls == [("language", text[:5000])]


def test_a_document_in_another_language_behind_a_preface_in_english_is_in_that_language(aws: Aws) -> None:
    """The unsupported-language policy (quarantine here) holds for the whole text, not its start."""
    preface = ("The quarterly report covers sales in every region. " * 100)[:5_000]
    body = "\n".join([FRENCH] * 20)  # FakeComprehend: French wherever it sees "Bonjour"
    outcome = make(aws, max_document_bytes=100_000, max_extracted_chars=100_000).process(
        land(aws, "docs/fr-preface.txt", preface + "\n" + body)
    )
    assert (outcome.status, outcome.reason_code) == ("quarantined", "unsupported_language")


ENGLISH = ("The quarterly report covers sales in every region. " * 100)[:5_000]


def test_a_document_partly_in_a_language_the_scan_does_not_support_is_scanned_in_the_one_it_does(aws: Aws) -> None:
    """With unsupported_language custom_only, a French appendix does not take the Comprehend pass
    away from the English text before it: the e-mail address there is masked."""
    body = ENGLISH + "\nWrite to jane@example.com.\n" + "\n".join([FRENCH] * 20)
    ref = land(aws, "docs/bilingual.txt", body)
    pipeline = make(aws, max_document_bytes=100_000, max_extracted_chars=100_000, unsupported_language="custom_only")
    outcome = pipeline.process(ref)
    assert (outcome.status, outcome.pii) == ("curated", {"EMAIL": 1})  # (Comprehend's finding)


@pytest.mark.parametrize("answers", [["en", "und", "en"], ["und", "en", "und"]])
def test_a_sample_comprehend_names_no_language_for_does_not_decide_the_documents(answers: list[str]) -> None:
    """A middle of numbers or blank cells gets no language ("und"): the others decide."""
    comprehend = Recording()
    scanner = PiiScanner(comprehend, custom_identifiers={})
    scanner.languages = lambda _: answers  # type: ignore[method-assign,assignment]
    scan = scanner.scan("text")
    assert (scan.language, scan.supported, scan.unsupported) == ("en", True, None)


def test_chunks_start_200_characters_before_the_last_one_ended_and_offsets_count_from_the_text() -> None:
    words = " ".join(f"w{i}" for i in range(40_000))  # about 270,000 bytes, no two words alike
    comprehend = Recording(entities={"Entities": [{"Type": "X", "BeginOffset": 1, "EndOffset": 3, "Score": 1}]})
    scan = PiiScanner(comprehend, custom_identifiers={}).scan(words, language="en")
    texts = [text for _, text in comprehend.calls]
    assert len(texts) == 3
    start = 0
    starts = []
    for text in texts:
        assert len(text.encode()) <= 100_000
        assert words[start : start + len(text)] == text
        starts.append(start)
        start += len(text) - 200
    assert [s.begin for s in scan.spans] == [s + 1 for s in starts]


@pytest.mark.parametrize(
    ("text", "max_bytes", "overlap", "expected"),
    [
        ("", 10, 2, []),
        ("abcdef", 2, 5, [(0, "ab"), (1, "bc"), (2, "cd"), (3, "de"), (4, "ef")]),
        ("a b c d", 3, 0, [(0, "a "), (2, "b "), (4, "c d")]),
        ("ab cdefgh", 8, 0, [(0, "ab cdefg"), (8, "h")]),  # a space only in the first half: cut at the limit
        ("abcd\nefgh ij", 8, 0, [(0, "abcd\n"), (5, "efgh ij")]),
        ("ab cd", 5, 0, [(0, "ab cd")]),  # exactly the limit: one chunk
        ("aaaa bbbb cccc", 10, 3, [(0, "aaaa bbbb "), (7, "bb cccc")]),
        ("éé éé", 5, 0, [(0, "éé "), (3, "éé")]),  # never half a character
        ("abc de", 5, 0, [(0, "abc "), (4, "de")]),
        ("abcd \nefgh", 8, 0, [(0, "abcd \n"), (6, "efgh")]),  # the later of a space and a newline
        ("abcd e f gh", 8, 0, [(0, "abcd e "), (7, "f gh")]),  # the last space, not the first
        ("abcd\ne\nf gh", 8, 0, [(0, "abcd\ne\n"), (7, "f gh")]),  # the last newline, not the first
        ("ab\ncdefgh", 8, 0, [(0, "ab\ncdefg"), (8, "h")]),  # a newline only in the first half: no cut
        ("ab cd\nef", 7, 0, [(0, "ab cd\n"), (6, "ef")]),
    ],
)
def test_chunks_are_cut_at_whitespace_within_the_byte_limit(
    text: str, max_bytes: int, overlap: int, expected: list[tuple[int, str]]
) -> None:
    assert list(chunks(text, max_bytes, overlap)) == expected


@pytest.mark.parametrize(
    ("spans", "masked"),
    [
        ((Span(0, 3, "A"), Span(3, 6, "B")), "[A][B]gh"),  # adjacent findings are both masked
        ((Span(3, 6, "B"), Span(0, 3, "A")), "[A][B]gh"),
        ((Span(0, 6, "A"), Span(2, 4, "B")), "[A]gh"),  # one inside another
        ((Span(1, 4, "A"), Span(2, 6, "B")), "a[A]gh"),  # overlapping: the first type wins
        ((Span(0, 3, "A"), Span(3, 3, "B")), "[A]defgh"),
        (
            (Span(0, 4, "A"), Span(1, 2, "B"), Span(5, 7, "C")),
            "[A]e[C]h",
        ),  # a finding after a swallowed one  # an empty finding where one ended
        ((), "abcdefgh"),
    ],
)
def test_masking_replaces_every_finding_once(spans: tuple[Span, ...], masked: str) -> None:
    assert mask("abcdefgh", spans) == masked


def test_the_idempotency_store_calls_dynamodb_within_the_same_bounded_time_as_every_client() -> None:
    config = handler.persistence.client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (handler.AWS.connect_timeout, handler.AWS.read_timeout)
    assert config.retries == handler.AWS.retries


@pytest.mark.parametrize(("groups", "listed"), [(10, True), (11, False)])
def test_allowed_groups_is_written_only_within_bedrocks_limit_on_a_list_attribute(
    aws: Aws, groups: int, listed: bool
) -> None:
    """Bedrock takes 1 to 10 values in a list attribute (the custom data source refuses more):
    past that the document is curated with its classification alone, which retrieval filters on."""
    readers = {"public": [f"group-{n}" for n in range(groups)], "internal": [], "customer": []}
    outcome = make(aws, readers=readers).process(land(aws, "docs/note.txt", "Plain words.", classification="public"))
    assert outcome.status == "curated"
    doc = document_id(LANDING, "docs/note.txt")
    attributes = json.loads(aws.objects(CURATED)[f"curated/{doc}.txt.metadata.json"])["metadataAttributes"]
    assert attributes["classification"] == "public"
    assert attributes.get("allowed_groups") == (readers["public"] if listed else None)
