"""The ingestion pipeline over a fixture corpus: every object ends in exactly one of curated,
quarantine or the DLQ with a registry record saying which and why; partial batches; replays;
PII kept out of logs, the registry and curated text."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from ingestion import handler
from ingestion.knowledge import KnowledgeBase
from ingestion.pii import MAX_CALL_BYTES, PiiScanner, Span, chunks, mask
from ingestion.pipeline import document_id
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import (
    CLEAN,
    LANDING,
    MALFORMED,
    REJECTED,
    SEEDED_PII,
    WITH_PII_INTERNAL,
    WITH_PII_PUBLIC,
    FakeComprehend,
)
from tests.lambdas.ingestion_fixtures import (
    CURATED,
    MAX_RECEIVE,
    QUARANTINE,
    Aws,
    batch,
    landed,
    s3_event,
    sqs_message,
)


def run(*messages: dict[str, Any]) -> list[str]:
    """Handle one SQS batch; the ids SQS is told failed."""
    response = handler.lambda_handler(batch(*messages), FakeContext())
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
    assert [v["Key"] for v in versions] == [f"direct/{doc}.txt"]
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


def test_documents_left_when_the_invocation_runs_low_are_retried_not_lost(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCUMENT_BUDGET_SECONDS", "30")
    messages = [landed(aws, f"docs/late{i}.txt", f"Document {i}.") for i in range(3)]
    done: list[str] = []
    real_process = handler.process

    def counting(obj: dict[str, Any]) -> dict[str, Any]:
        done.append(obj["key"])
        return dict(real_process(obj=obj))

    monkeypatch.setattr(handler, "process", counting)

    class Shrinking(FakeContext):
        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 120_000 if len(done) < 2 else 29_000  # the third document would not finish in time

    response = handler.lambda_handler(batch(*messages), Shrinking())
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [messages[2]["messageId"]]
    assert done == ["docs/late0.txt", "docs/late1.txt"]
    assert len(aws.landing_versions()) == 1  # still there for the retry
