"""Macie findings: the object is quarantined, leaves the Knowledge Base, the registry says so, and
the security team is told; a finding for an object already gone is no error."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
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


def test_a_finding_on_a_curated_sidecar_takes_its_document_out_of_the_bucket_and_the_kb(
    aws: Aws, responder: Any
) -> None:
    """The sidecar is the document's KB metadata (owner, source: the uploader's): flagged, the
    document goes with it rather than stay indexed without its classification."""
    current = curate(aws, "docs/notes.txt", "Quarterly notes.")
    key = current["location"].removeprefix(f"s3://{CURATED}/")
    sidecar = f"{key}.metadata.json"
    version = aws.s3.head_object(Bucket=CURATED, Key=sidecar)["VersionId"]
    result = macie.lambda_handler(finding_event(CURATED, sidecar, version), FakeContext())
    doc = document_id(LANDING, "docs/notes.txt")
    assert (result["action"], result["document_id"]) == ("quarantined", doc)
    assert key not in aws.objects(CURATED)
    assert sidecar not in aws.objects(CURATED)
    assert list(aws.objects(QUARANTINE)) == ["macie/finding-0001/" + sidecar.rsplit("/", 1)[1]]
    assert aws.agent.calls[-1][0] == "DeleteKnowledgeBaseDocuments"
    state = aws.registry.current(doc)
    assert state is not None
    assert state["status"] == "quarantined"


def test_a_finding_for_an_object_already_gone_is_reported_without_error(aws: Aws, responder: Any) -> None:
    _, sns = responder
    result = macie.lambda_handler(finding_event(CURATED, "curated/0123abcd.txt", "v-gone"), FakeContext())
    assert result["action"] == "already_gone"
    assert published(sns)["action"] == "already_gone"
    assert aws.objects(QUARANTINE) == {}


def test_a_finding_on_a_sidecar_version_already_gone_leaves_the_newer_document_alone(aws: Aws, responder: Any) -> None:
    """Curated twice, the document keeps its key and its sidecar gets a new version; the old
    sidecar's version expires. A finding on it quarantined nothing and yet deleted the newer,
    unflagged document (its current copy, with none kept in quarantine): now nothing is touched."""
    first = curate(aws, "docs/policy.txt", "Version one.")
    key = first["location"].removeprefix(f"s3://{CURATED}/")
    sidecar = f"{key}.metadata.json"
    old = aws.s3.head_object(Bucket=CURATED, Key=sidecar)["VersionId"]
    second = curate(aws, "docs/policy.txt", "Version two.")
    assert second["location"] == first["location"]
    aws.s3.delete_object(Bucket=CURATED, Key=sidecar, VersionId=old)
    calls = len(aws.agent.calls)
    result = macie.lambda_handler(finding_event(CURATED, sidecar, old), FakeContext())
    assert result["action"] == "already_gone"
    assert {key, sidecar} <= set(aws.objects(CURATED))
    assert len(aws.agent.calls) == calls  # nothing taken out of the KB
    state = aws.registry.current(document_id(LANDING, "docs/policy.txt"))
    assert state is not None
    assert state["status"] == "curated"


@pytest.mark.parametrize("versioned", [False, True])
def test_a_finding_on_a_curated_key_that_holds_nothing_touches_no_document(
    aws: Aws, responder: Any, versioned: bool
) -> None:
    """A curated key is read for its document id: one that names a real document's id in another
    folder, with no object there, is no copy of it."""
    current = curate(aws, "docs/notes.txt", "Quarterly notes.")
    key = current["location"].removeprefix(f"s3://{CURATED}/")
    doc = key.rsplit("/", 1)[1].split(".")[0]
    version = current["object_version"] if versioned else None
    result = macie.lambda_handler(finding_event(CURATED, f"nowhere/{doc}.txt", version), FakeContext())
    assert result["action"] == "already_gone"
    assert key in aws.objects(CURATED)
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


# --- hostile and odd finding events -------------------------------------------------------------------


def _ignored(aws: Aws, sns: ModelChecked, event: Any, capsys: pytest.CaptureFixture[str]) -> str:
    """The event is ignored, counted as unusable, and nothing is moved, recorded or told."""
    assert macie.lambda_handler(event, FakeContext()) == {"action": "ignored"}
    assert sns.calls == []
    assert aws.objects(QUARANTINE) == {}
    assert aws.registry_items() == []
    out = capsys.readouterr().out
    assert '"MacieFindingsUnusable":[1.0]' in out.replace(" ", "")
    return out


@pytest.mark.parametrize(
    "event",
    [
        None,
        [],
        "finding",
        {"detail": "x"},
        {"detail": []},
        {"detail": {"id": "f", "resourcesAffected": []}},
        {"detail": {"id": "f", "resourcesAffected": {"s3Bucket": "b", "s3Object": {"key": "k"}}}},
        {"detail": {"id": "f", "resourcesAffected": {"s3Bucket": {"name": "b"}, "s3Object": "k"}}},
        {"detail": {"id": "f", "severity": "High", "resourcesAffected": {"s3Bucket": {"name": "b"}, "s3Object": {}}}},
    ],
)
def test_a_finding_event_of_an_odd_shape_is_ignored_without_an_error(
    aws: Aws, responder: Any, capsys: pytest.CaptureFixture[str], event: Any
) -> None:
    _, sns = responder
    _ignored(aws, sns, event, capsys)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("id",), "a" * 1100),  # past DynamoDB's key limit: moved, then never recorded
        (("id",), "../../curated/x"),  # would name a folder of its choosing
        (("id",), "f 1"),
        (("id",), 1234),
        (("id",), ""),
        (("severity", "description"), "High\nInjected"),  # SNS refuses a subject with a newline
        (("severity", "description"), "Critical"),
        (("severity", "description"), ["High"]),
        (("severity",), None),
        (("resourcesAffected", "s3Object", "versionId"), 12345),
        (("resourcesAffected", "s3Object", "versionId"), ["v"]),
        (("resourcesAffected", "s3Object", "versionId"), "v\n1"),
        (("resourcesAffected", "s3Object", "key"), "k" * 1025),
        (("resourcesAffected", "s3Object", "key"), 7),
        (("resourcesAffected", "s3Bucket", "name"), ["landing-bucket"]),
        (("resourcesAffected", "s3Bucket", "name"), "landing\nbucket"),
    ],
)
def test_a_finding_with_a_field_macie_would_not_send_is_ignored_before_anything_moves(
    aws: Aws, responder: Any, capsys: pytest.CaptureFixture[str], path: tuple[str, ...], value: Any
) -> None:
    _, sns = responder
    put = aws.put("docs/raw.txt", "Raw text.")
    event = finding_event(LANDING, put["key"], put["version"])
    parent = event["detail"]
    for name in path[:-1]:
        parent = parent[name]
    parent[path[-1]] = value
    out = _ignored(aws, sns, event, capsys)
    assert [v["VersionId"] for v in aws.landing_versions()] == [put["version"]]
    if isinstance(value, str) and len(value) > 3:
        assert value not in out  # the reason names the field, never its value


def test_an_unknown_finding_type_is_reported_as_unknown(aws: Aws, responder: Any) -> None:
    _, sns = responder
    event = finding_event("log-archive", "logs/x.gz", None)
    event["detail"]["type"] = "Sensitive\nData " * 20
    assert macie.lambda_handler(event, FakeContext())["action"] == "reported"
    assert published(sns)["type"] == "unknown"


def test_a_finding_on_a_long_key_quarantines_it_within_s3s_key_limit(aws: Aws, responder: Any) -> None:
    key = "docs/" + "n" * 1015 + ".txt"  # S3's longest key: its name does not fit under the finding
    put = aws.put(key, "Raw text.")
    assert macie.lambda_handler(finding_event(LANDING, key, put["version"]), FakeContext())["action"] == "quarantined"
    (target,) = aws.objects(QUARANTINE)
    assert target.startswith("macie/finding-0001/nnn")
    assert len(target.encode()) == 1024


def test_a_key_that_needs_url_encoding_has_one_document_id_for_the_pipeline_and_macie(aws: Aws, responder: Any) -> None:
    """S3's event encodes the key ("my+doc.txt"), Macie's finding does not ("my doc.txt"): the
    registry keeps one history for the document either way."""
    from ingestion import handler
    from tests.lambdas.ingestion_fixtures import s3_event, sqs_message

    first = aws.put("docs/my doc.txt", "First words.")
    assert handler.lambda_handler(
        batch(sqs_message(s3_event("docs/my+doc.txt", first["version"], first["size"]))), FakeContext()
    ) == {"batchItemFailures": []}
    second = aws.put("docs/my doc.txt", "Second words.")
    notice = macie.lambda_handler(finding_event(LANDING, second["key"], second["version"]), FakeContext())
    assert notice["action"] == "quarantined"
    doc = document_id(LANDING, "docs/my doc.txt")
    assert notice["document_id"] == doc
    assert {i["pk"] for i in aws.registry_items()} == {doc}
    assert {i["sk"].split("#")[0] for i in aws.registry_items()} == {"current", "version", "finding"}


def policy_finding_event(bucket: str) -> dict[str, Any]:
    """A Macie policy finding as EventBridge delivers it (category POLICY): it names a bucket and no
    object (``s3Object`` is null)."""
    return {
        "version": "0",
        "source": "aws.macie",
        "detail-type": "Macie Finding",
        "detail": {
            "id": "64b917aa3a7e1d2aa5a0c3d1e0f2b3c4",
            "category": "POLICY",
            "type": "Policy:IAMUser/S3BlockPublicAccessDisabled",
            "severity": {"score": 3, "description": "High"},
            "resourcesAffected": {"s3Bucket": {"name": bucket}, "s3Object": None},
        },
    }


@pytest.mark.parametrize("bucket", [LANDING, CURATED])
def test_a_policy_finding_on_a_pipeline_bucket_is_reported_to_the_security_team(
    aws: Aws, responder: Any, bucket: str
) -> None:
    """The rule passes every finding on the pipeline's buckets: a bucket that lost its public-access
    block is the security team's to hear of, though there is no object to move."""
    _, sns = responder
    before = sorted(aws.objects(bucket))
    notice = macie.lambda_handler(policy_finding_event(bucket), FakeContext())
    assert notice == {
        "finding": "64b917aa3a7e1d2aa5a0c3d1e0f2b3c4",
        "type": "Policy:IAMUser/S3BlockPublicAccessDisabled",
        "severity": "High",
        "bucket": bucket,
        "action": "reported",
    }
    ((operation, published),) = sns.calls
    assert operation == "Publish"
    assert published["Subject"] == "Macie High finding: reported"
    assert json.loads(published["Message"]) == notice
    assert sorted(aws.objects(bucket)) == before
    assert aws.registry_items() == []


def test_a_finding_without_an_object_that_is_not_a_policy_finding_is_still_unusable(responder: Any) -> None:
    event = policy_finding_event(LANDING)
    event["detail"]["category"] = "CLASSIFICATION"
    assert macie.lambda_handler(event, FakeContext()) == {"action": "ignored"}
    assert responder[1].calls == []


class CopyObjectLimit:
    """S3 as it treats CopyObject: a source over ``limit`` bytes is refused (InvalidRequest)."""

    def __init__(self, s3: Any, limit: int) -> None:
        self._s3, self._limit = s3, limit

    def copy_object(self, **params: Any) -> Any:
        source = params["CopySource"]
        size = self._s3.head_object(**source)["ContentLength"]
        if size > self._limit:
            message = (
                f"The specified copy source is larger than the maximum allowable size for a copy source: {self._limit}"
            )
            raise ClientError({"Error": {"Code": "InvalidRequest", "Message": message}}, "CopyObject")
        return self._s3.copy_object(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._s3, name)


def limited_responder(aws: Aws, limit: int) -> tuple[macie.Responder, ModelChecked]:
    sns = ModelChecked("sns", {"Publish": {"MessageId": "m-1"}})
    s3 = CopyObjectLimit(aws.s3, limit)
    buckets = macie.Buckets(landing=LANDING, curated=CURATED, quarantine=QUARANTINE)
    found = macie.Responder(
        s3, CuratedStore(aws.s3, aws.knowledge), aws.registry, sns, buckets, TOPIC, copy_limit=limit
    )
    return found, sns


def test_a_flagged_object_over_copy_objects_limit_is_quarantined_in_parts(aws: Aws) -> None:
    """Over CopyObject's 5 GiB (lowered here) S3 refuses the copy: the object is copied in parts,
    with its content type and metadata, then deleted, as any flagged object is."""
    body = b"ada@example.com " * 4096
    put = aws.s3.put_object(
        Bucket=LANDING, Key="docs/huge.txt", Body=body, ContentType="text/plain", Metadata={"owner": "ops"}
    )
    responder, _ = limited_responder(aws, len(body) - 1)
    notice = responder.respond(macie.parse(finding_event(LANDING, "docs/huge.txt", put["VersionId"])), AT)
    assert notice["action"] == "quarantined"
    copied = aws.s3.get_object(Bucket=QUARANTINE, Key="macie/finding-0001/huge.txt")
    assert (copied["Body"].read(), copied["ContentType"], copied["Metadata"]) == (body, "text/plain", {"owner": "ops"})
    assert "docs/huge.txt" not in aws.objects(LANDING)


def test_any_other_refused_copy_fails_the_finding_with_its_step(aws: Aws) -> None:
    put = aws.s3.put_object(Bucket=LANDING, Key="docs/small.txt", Body=b"ada@example.com")
    responder, _ = limited_responder(aws, 0)  # refuses every copy, yet the object is within the limit
    responder._copy_limit = 1 << 20
    with pytest.raises(macie.FindingNotHandledError) as raised:
        responder.respond(macie.parse(finding_event(LANDING, "docs/small.txt", put["VersionId"])), AT)
    assert (raised.value.notice["step"], raised.value.notice["error"]) == (
        "copy to quarantine in parts",
        "InvalidRequest",
    )
    assert "docs/small.txt" in aws.objects(LANDING)
