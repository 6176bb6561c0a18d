"""Macie findings: the object is quarantined, leaves the Knowledge Base, the registry says so, and
the security team is told; a finding for an object already gone is no error."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from ingestion import macie
from ingestion.knowledge import KnowledgeBase
from ingestion.pipeline import CuratedStore, document_id
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import CURATED, QUARANTINE, Aws, ModelChecked, batch, landed

TOPIC = "arn:aws:sns:us-east-1:123456789012:findings"
AT = dt.datetime(2026, 11, 29, 21, 0, tzinfo=dt.UTC)


@pytest.fixture
def responder(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> tuple[macie.Responder, ModelChecked]:
    sns = ModelChecked("sns", {"Publish": {"MessageId": "m-1"}})
    store = CuratedStore(aws.s3, aws.knowledge)
    buckets = macie.Buckets(landing=LANDING, curated=CURATED, quarantine=QUARANTINE)
    found = macie.Responder(aws.s3, store, aws.registry, sns, buckets, TOPIC)
    monkeypatch.setattr(macie, "responder", lambda: found)
    return found, sns


def finding_event(bucket: str, key: str, version: str | None, severity: str = "High") -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "path": f"{bucket}/{key}", "extension": "txt"}
    if version:
        obj["versionId"] = version
    return {
        "version": "0",
        "source": "aws.macie",
        "detail-type": "Macie Finding",
        "detail": {
            "id": "finding-0001",
            "type": "SensitiveData:S3Object/Personal",
            "severity": {"score": 3, "description": severity},
            "resourcesAffected": {"s3Bucket": {"name": bucket}, "s3Object": obj},
        },
    }


def curate(aws: Aws, key: str, text: str) -> dict[str, Any]:
    from ingestion import handler

    assert handler.lambda_handler(batch(landed(aws, key, text)), FakeContext())["batchItemFailures"] == []
    current = aws.registry.current(document_id(LANDING, key))
    assert current is not None
    return current


def published(sns: ModelChecked) -> dict[str, Any]:
    ((operation, params),) = sns.calls
    assert (operation, params["TopicArn"]) == ("Publish", TOPIC)
    return dict(json.loads(params["Message"]))


def test_a_finding_on_a_curated_document_quarantines_it_and_takes_it_out_of_the_kb(aws: Aws, responder: Any) -> None:
    _, sns = responder
    current = curate(aws, "docs/notes.txt", "Quarterly notes.")
    key = current["location"].removeprefix(f"s3://{CURATED}/")
    result = macie.lambda_handler(finding_event(CURATED, key, current["object_version"]), FakeContext())
    doc = document_id(LANDING, "docs/notes.txt")
    assert result["action"] == "quarantined"
    assert key not in aws.objects(CURATED)
    assert f"{key}.metadata.json" not in aws.objects(CURATED)
    assert list(aws.objects(QUARANTINE)) == ["macie/finding-0001/" + key.rsplit("/", 1)[1]]
    assert aws.agent.calls[-1][0] == "DeleteKnowledgeBaseDocuments"
    assert aws.agent.calls[-1][1]["documentIdentifiers"] == [
        {"dataSourceType": "S3", "s3": {"uri": current["location"]}}
    ]
    state = aws.registry.current(doc)
    assert state is not None
    assert state["status"] == "quarantined"
    assert published(sns) == {
        "action": "quarantined",
        "bucket": CURATED,
        "document_id": doc,
        "finding": "finding-0001",
        "severity": "High",
        "type": "SensitiveData:S3Object/Personal",
    }


def test_a_finding_for_an_object_already_gone_is_reported_without_error(aws: Aws, responder: Any) -> None:
    _, sns = responder
    result = macie.lambda_handler(finding_event(CURATED, "curated/0123abcd.txt", "v-gone"), FakeContext())
    assert result["action"] == "already_gone"
    assert published(sns)["action"] == "already_gone"
    assert aws.objects(QUARANTINE) == {}


def test_a_finding_in_landing_quarantines_it_before_the_pipeline_sees_it(aws: Aws, responder: Any) -> None:
    put = aws.put("docs/raw.txt", "Raw text.")
    result = macie.lambda_handler(finding_event(LANDING, put["key"], put["version"]), FakeContext())
    assert result["action"] == "quarantined"
    assert aws.landing_versions() == []
    doc = document_id(LANDING, "docs/raw.txt")
    findings = [i for i in aws.registry_items() if i["pk"] == doc and i["sk"].startswith("finding#")]
    assert [f["status"] for f in findings] == ["quarantined"]
    assert aws.registry.current(doc) is None  # nothing curated was taken out: the current state stays


def test_a_finding_on_a_superseded_version_leaves_the_current_one_indexed(aws: Aws, responder: Any) -> None:
    first = curate(aws, "docs/policy.txt", "Version one.")
    curate(aws, "docs/policy.txt", "Version two.")
    key = first["location"].removeprefix(f"s3://{CURATED}/")
    calls = len(aws.agent.calls)
    result = macie.lambda_handler(finding_event(CURATED, key, first["object_version"]), FakeContext())
    assert result["action"] == "already_gone"  # superseding deleted that version already
    assert aws.objects(CURATED)[key] == b"Version two."
    assert len(aws.agent.calls) == calls


def test_findings_elsewhere_are_reported_and_bad_events_ignored(aws: Aws, responder: Any) -> None:
    _, sns = responder
    assert macie.lambda_handler(finding_event("log-archive", "logs/x.gz", None), FakeContext())["action"] == "reported"
    assert macie.lambda_handler({"detail": {}}, FakeContext()) == {"action": "ignored"}
    assert len(sns.calls) == 1


def test_the_responder_calls_sns_and_the_kb_as_their_service_models_say(aws: Aws) -> None:
    current = curate(aws, "docs/card.txt", "Card on file.")
    key = current["location"].removeprefix(f"s3://{CURATED}/")
    agent = boto3.client("bedrock-agent", region_name="us-east-1")
    sns = boto3.client("sns", region_name="us-east-1")
    store = CuratedStore(aws.s3, KnowledgeBase(agent, "KB12345678", "DS3SOURCE1", "DSCUSTOM01"))
    buckets = macie.Buckets(landing=LANDING, curated=CURATED, quarantine=QUARANTINE)
    responder = macie.Responder(aws.s3, store, aws.registry, sns, buckets, TOPIC)
    with Stubber(agent) as kb, Stubber(sns) as topic:
        kb.add_response(
            "delete_knowledge_base_documents",
            {"documentDetails": []},
            {
                "knowledgeBaseId": "KB12345678",
                "dataSourceId": "DS3SOURCE1",
                "documentIdentifiers": [{"dataSourceType": "S3", "s3": {"uri": current["location"]}}],
            },
        )
        topic.add_response(
            "publish",
            {"MessageId": "m-1"},
            {"TopicArn": TOPIC, "Subject": "Macie High finding: quarantined", "Message": ANY},
        )
        responder.respond(macie.parse(finding_event(CURATED, key, current["object_version"])), AT)
        kb.assert_no_pending_responses()
        topic.assert_no_pending_responses()
