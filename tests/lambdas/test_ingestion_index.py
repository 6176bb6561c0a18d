"""The Knowledge Base's per-document statuses: IngestKnowledgeBaseDocuments and
DeleteKnowledgeBaseDocuments answer 200 and say in ``documentDetails[].status`` whether the index
took the change. A refusal fails the version (SQS retries it; its last attempt records it
dead-lettered with the status), and never leaves it recorded curated, or taken out, while the
index says otherwise. AWS's statusReason can quote the request: it is never recorded."""

from __future__ import annotations

import itertools
import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ingestion import handler, macie
from ingestion.knowledge import IndexRefusedError, KnowledgeBase
from ingestion.pipeline import CuratedStore, document_id
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import (
    CURATED,
    MAX_RECEIVE,
    NOW,
    QUARANTINE,
    Aws,
    ModelChecked,
    batch,
    curated_versions,
    current_of,
    land,
    landed,
    make,
    record_of,
)

REALTIME = "realtime/crm/case-9.md"
TEXT = "Customer asked about the order of case nine."
# What a statusReason might quote of the request: it must reach no registry record.
QUOTED = "could not index 'Customer asked about the order'"


def detail(status: str, *, bulk: bool = False) -> dict[str, Any]:
    """One document's status, shaped as the service model's KnowledgeBaseDocumentDetail."""
    identifier = (
        {"dataSourceType": "S3", "s3": {"uri": f"s3://{CURATED}/curated/x.txt"}}
        if bulk
        else {"dataSourceType": "CUSTOM", "custom": {"id": "x"}}
    )
    return {
        "knowledgeBaseId": "KB12345678",
        "dataSourceId": "DS3SOURCE1" if bulk else "DSCUSTOM01",
        "status": status,
        "statusReason": QUOTED,
        "identifier": identifier,
    }


def answers(aws: Aws, operation: str, *statuses: str, bulk: bool = False) -> None:
    """The agent answers ``operation`` with these statuses in turn (the last one from then on)."""
    aws.agent.responses[operation] = [{"documentDetails": [detail(s, bulk=bulk)]} for s in statuses]


def run(message: dict[str, Any]) -> list[str]:
    response = handler.lambda_handler(batch(message), FakeContext())
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def items_of(aws: Aws, key: str) -> list[dict[str, Any]]:
    return [i for i in aws.registry_items() if i["pk"] == document_id(LANDING, key)]


@pytest.mark.parametrize("status", ["FAILED", "IGNORED", "METADATA_UPDATE_FAILED", "NOT_FOUND"])
def test_a_realtime_item_the_index_refuses_is_retried_then_dead_lettered_with_the_status(aws: Aws, status: str) -> None:
    answers(aws, "IngestKnowledgeBaseDocuments", status)
    message = landed(aws, REALTIME, TEXT)
    assert run(message) == [message["messageId"]]  # SQS retries it
    assert items_of(aws, REALTIME) == []  # not curated
    assert curated_versions(aws) == []  # no copy left that the index does not hold
    assert len(aws.landing_versions()) == 1  # still there for the retry
    message["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)
    assert run(message) == [message["messageId"]]  # SQS moves it to the DLQ
    (record,) = items_of(aws, REALTIME)
    assert (record["status"], record["location"], record["reason"]) == (
        "dead_lettered",
        "dlq",
        f"the Knowledge Base refused the document: ingest into the custom data source answered {status}",
    )
    recorded = json.dumps(aws.registry_items(), default=str)
    assert QUOTED not in recorded
    assert TEXT not in recorded


def test_a_dead_lettered_refusal_redriven_when_the_index_takes_it_is_curated(aws: Aws) -> None:
    answers(aws, "IngestKnowledgeBaseDocuments", "FAILED", "STARTING")
    message = landed(aws, REALTIME, TEXT)
    message["attributes"]["ApproximateReceiveCount"] = str(MAX_RECEIVE)
    assert run(message) == [message["messageId"]]
    assert run({**message, "messageId": "redriven", "attributes": {"ApproximateReceiveCount": "1"}}) == []
    ((record,),) = [[i for i in items_of(aws, REALTIME) if i["sk"] != "current"]]
    assert record["status"] == "curated"
    assert current_of(aws, REALTIME)["status"] == "curated"


@pytest.mark.parametrize("status", ["STARTING", "PENDING", "IN_PROGRESS", "INDEXED", "PARTIALLY_INDEXED"])
def test_an_ingest_under_way_or_done_is_curated(aws: Aws, status: str) -> None:
    answers(aws, "IngestKnowledgeBaseDocuments", status)
    outcome = make(aws).process(land(aws, REALTIME, TEXT))
    assert outcome.status == "curated"
    assert aws.agent.calls[-1][0] == "IngestKnowledgeBaseDocuments"


def test_a_refused_new_version_leaves_the_indexed_versions_copy_the_latest(aws: Aws) -> None:
    """The copy a later undo indexes again is the bucket's latest: it must be one the index took."""
    pipeline = make(aws)
    pipeline.process(land(aws, REALTIME, "Old text."))
    before = curated_versions(aws)
    answers(aws, "IngestKnowledgeBaseDocuments", "IGNORED")
    second = land(aws, REALTIME, "New text.")
    with pytest.raises(IndexRefusedError):
        pipeline.process(second)
    assert curated_versions(aws) == before
    assert aws.objects(CURATED)[f"direct/{document_id(LANDING, REALTIME)}.txt"] == b"Old text."
    assert current_of(aws, REALTIME)["version"] != second.version


def test_an_undo_the_index_refuses_fails_the_losing_version_not_superseded(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older version losing the race indexes the newer one's copy again: refused, the older one
    fails (SQS retries it), its own copy deleted, rather than be recorded superseded while the
    index holds its text."""
    older = land(aws, REALTIME, "Old text.")
    newer = land(aws, REALTIME, "New text.")
    pipeline = make(aws)
    assert pipeline.process(newer).status == "curated"
    before = curated_versions(aws)
    real, looks = aws.registry.current, itertools.count()
    # The first look (before reading) sees no state yet; the one before recording sees the newer one's.
    monkeypatch.setattr(aws.registry, "current", lambda doc: None if next(looks) < 1 else real(doc))
    answers(aws, "IngestKnowledgeBaseDocuments", "STARTING", "FAILED")  # its own ingest, then the undo's
    with pytest.raises(IndexRefusedError, match="ingest into the custom data source answered FAILED"):
        pipeline.process(older)
    ingested = [p for op, p in aws.agent.calls if op == "IngestKnowledgeBaseDocuments"]
    assert ingested[-1]["documents"][0]["content"]["custom"]["inlineContent"]["textContent"]["data"] == "New text."
    assert curated_versions(aws) == before
    assert [i for i in items_of(aws, REALTIME) if i["sk"] == f"version#{older.version}"] == []
    assert current_of(aws, REALTIME)["version"] == newer.version


@pytest.mark.parametrize("status", ["FAILED", "IGNORED"])
@pytest.mark.parametrize("key", ["docs/moving.txt", REALTIME])
def test_a_delete_the_index_refuses_keeps_the_curated_state_until_a_retry_takes_it_out(
    aws: Aws, key: str, status: str
) -> None:
    pipeline = make(aws)
    first = land(aws, key, "Clean text.")
    pipeline.process(first)
    bulk = key.startswith("docs/")
    answers(aws, "DeleteKnowledgeBaseDocuments", status, "DELETE_IN_PROGRESS", bulk=bulk)
    flagged = land(aws, key, "Mail ada.lovelace@example.com", classification="public")
    source = "S3" if bulk else "custom"
    with pytest.raises(IndexRefusedError, match=f"^the Knowledge Base refused the document: delete from the {source}"):
        pipeline.process(flagged)
    state = current_of(aws, key)
    assert (state["status"], state["version"]) == ("curated", first.version)  # the index still holds it
    outcome = pipeline.process(flagged)  # SQS's retry
    assert outcome.status == "quarantined"
    assert current_of(aws, key)["status"] == "quarantined"
    assert record_of(aws, flagged)["status"] == "quarantined"


@pytest.mark.parametrize("status", ["DELETING", "DELETE_IN_PROGRESS", "NOT_FOUND"])
def test_a_delete_under_way_or_of_nothing_takes_the_document_out(aws: Aws, status: str) -> None:
    pipeline = make(aws)
    pipeline.process(land(aws, REALTIME, "Clean text."))
    answers(aws, "DeleteKnowledgeBaseDocuments", status)
    outcome = pipeline.process(land(aws, REALTIME, "Mail ada.lovelace@example.com", classification="public"))
    assert outcome.status == "quarantined"
    assert aws.agent.calls[-1][0] == "DeleteKnowledgeBaseDocuments"


def test_a_macie_finding_whose_delete_the_index_refuses_is_not_handled_and_stays_curated(aws: Aws) -> None:
    """Lambda retries the finding; the registry does not say quarantined while the index holds it."""
    ref = land(aws, "docs/flagged.txt", "Clean text.")
    make(aws).process(ref)
    current = current_of(aws, ref.key)
    answers(aws, "DeleteKnowledgeBaseDocuments", "FAILED", bulk=True)
    sns = ModelChecked("sns", {"Publish": {"MessageId": "m-1"}})
    buckets = macie.Buckets(landing=LANDING, curated=CURATED, quarantine=QUARANTINE)
    responder = macie.Responder(aws.s3, CuratedStore(aws.s3, aws.knowledge), aws.registry, sns, buckets, "arn:t")
    key = str(current["location"]).removeprefix(f"s3://{CURATED}/")
    version = str(current["object_version"])
    finding = macie.Finding("finding-0001", "SensitiveData:S3Object/Personal", "High", CURATED, key, version)
    with pytest.raises(macie.FindingNotHandledError, match=r"retire the curated copy failed \(IndexRefusedError\)"):
        responder.respond(finding, NOW)
    assert current_of(aws, ref.key)["status"] == "curated"


def test_refusals_are_read_from_the_response_the_service_model_describes() -> None:
    """Stubber checks each answer against bedrock-agent's model: the statuses are where it says."""
    client = boto3.client("bedrock-agent", region_name="us-east-1")
    kb = KnowledgeBase(client, "KB12345678", "DS3SOURCE1", "DSCUSTOM01")
    with Stubber(client) as stubber:
        stubber.add_response("ingest_knowledge_base_documents", {"documentDetails": [detail("IGNORED")]})
        stubber.add_response("ingest_knowledge_base_documents", {"documentDetails": [detail("STARTING")]})
        stubber.add_response("delete_knowledge_base_documents", {"documentDetails": [detail("FAILED")]})
        stubber.add_response("delete_knowledge_base_documents", {"documentDetails": [detail("FAILED", bulk=True)]})
        stubber.add_response("delete_knowledge_base_documents", {"documentDetails": [detail("DELETING")]})
        with pytest.raises(IndexRefusedError) as refused:
            kb.ingest_text("doc-1", "text", {"classification": "internal"})
        assert str(refused.value) == (
            "the Knowledge Base refused the document: ingest into the custom data source answered IGNORED"
        )
        kb.ingest_text("doc-1", "text", {"classification": "internal"})
        with pytest.raises(IndexRefusedError, match=r"delete from the custom data source answered FAILED$"):
            kb.remove(document_id="doc-1")
        with pytest.raises(IndexRefusedError, match=r"delete from the S3 data source answered FAILED$"):
            kb.remove(uri=f"s3://{CURATED}/curated/doc-2.txt")
        kb.remove(document_id="doc-1")
        stubber.assert_no_pending_responses()
