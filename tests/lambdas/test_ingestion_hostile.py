"""Hostile inputs to the ingestion pipeline: uploader-controlled metadata and key names are data,
never trusted text; derived keys stay within S3's limits; absurd events fail validation with a
registry record; and, over generated documents and events, every object ends in exactly one
place with a reason and nothing raises out of the batch processor."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, example, given, settings, strategies as st

from ingestion import handler
from ingestion.events import MalformedEventError, object_ref
from ingestion.pipeline import document_id, quarantine_key
from ingestion.registry import MAX_VERSION_BYTES
from shared.dead_letters import MAX_DEAD_LETTER_BYTES
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import LANDING, SEEDED_PII, docx_bytes, pdf_bytes
from tests.lambdas.ingestion_fixtures import (
    CURATED,
    MAX_RECEIVE,
    QUARANTINE,
    Aws,
    batch,
    current_of,
    landed,
    s3_event,
    sqs_message,
)
from tests.lambdas.strategies import json_values
from tests.lambdas.test_ingestion import run, version_record

HOSTILE = "ada.lovelace@example.com"  # personal data an uploader puts where the pipeline reads names


def test_uploader_metadata_never_reaches_logs_reasons_or_the_sidecar_unchecked(
    aws: Aws, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    unknown = landed(aws, "docs/a.txt", "Fine text.", classification=f"secret-{HOSTILE}", origin=f"x-{HOSTILE}")
    named = landed(aws, f"docs/{HOSTILE}.exe", "Fine text.")
    curated = landed(aws, "docs/b.txt", "Fine text.", owner=f"Grace Hopper <{HOSTILE}>", source="wiki\tEMP-314159")
    assert run(unknown, named, curated) == []

    record = version_record(aws, "docs/a.txt")
    assert (record["status"], record["reason"]) == (
        "quarantined",
        "unknown classification (allowed: public, internal, customer)",
    )
    assert "classification" not in record  # the unknown value is not kept
    assert record["origin"] == "unknown"
    assert version_record(aws, f"docs/{HOSTILE}.exe")["reason"].startswith("the file name has an extension that")
    sidecar = json.loads(aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/b.txt')}.txt.metadata.json"])
    assert sidecar["metadataAttributes"]["owner"] == "[NAME] <[EMAIL]>"
    assert sidecar["metadataAttributes"]["source"] == "unknown"  # not one printable line
    logged = capsys.readouterr().out + capsys.readouterr().err + caplog.text
    reasons = " ".join(str(i.get("reason", "")) + str(i.get("classification", "")) for i in aws.registry_items())
    for sink in (logged, reasons, json.dumps(sidecar)):
        assert not [value for value in [HOSTILE, "secret-", "EMP-314159", "Grace Hopper"] if value in sink]


@pytest.mark.parametrize(
    ("key", "version"),
    [("docs/..", "v1"), ("docs/.", "v1"), ("a/" + "é" * 1500, "v1"), ("docs/x.txt", ".."), ("docs/x", "v" * 1024)],
)
def test_quarantine_keys_stay_within_s3s_limit_without_dot_segments(key: str, version: str) -> None:
    target = quarantine_key(document_id(LANDING, key), version, key)
    assert len(target.encode()) <= 1024
    assert not {".", ".."} & set(target.split("/"))
    assert target.startswith(document_id(LANDING, key) + "/")


def test_a_document_under_a_dot_dot_name_is_quarantined_under_a_plain_one(aws: Aws) -> None:
    assert run(landed(aws, "odd/..", "No extension at all.")) == []
    record = version_record(aws, "odd/..")
    assert record["location"].endswith("/object")
    assert record["location"].removeprefix(f"s3://{QUARANTINE}/") in aws.objects(QUARANTINE)


def _event(**fields: Any) -> dict[str, Any]:
    event = s3_event("docs/x.txt", "v1", 1)
    event["detail"]["object"].update(fields)
    return event


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_event(key="k" * 2000), "the event's key is not UTF-8 of at most 1024 bytes"),
        (_event(key="\ud800"), "the event's key is not UTF-8"),
        (_event(size=-1), "the event has no object size"),
        (_event(size=10**30), "the event has no object size"),
        (_event(size="12"), "the event has no object size"),
        (_event(**{"version-id": None}), "the event has no version id"),
        (_event(**{"version-id": "v" * 2000}), "the event's version id is not a version id"),
        (_event(**{"version-id": "a\nb"}), "the event's version id is not a version id"),
    ],
)
def test_absurd_event_fields_fail_validation_with_a_registry_record(
    aws: Aws, event: dict[str, Any], reason: str
) -> None:
    with pytest.raises(MalformedEventError):
        object_ref(json.dumps(event))
    message = sqs_message(event, message_id="absurd")
    assert run(message) == []
    (record,) = [i for i in aws.registry_items() if i["pk"] == "event#absurd"]
    assert (record["status"], record["location"]) == ("dead_lettered", "dlq")
    assert reason in record["reason"]


# --- properties -----------------------------------------------------------------------------------

_examples = itertools.count()
EXAMPLES = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
names = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FFF, exclude_categories=["Cs"]), max_size=30)
texts = st.text(max_size=300)
bodies = st.one_of(
    st.binary(max_size=300),
    texts.map(str.encode),
    st.lists(texts, max_size=4).map(
        lambda pages: pdf_bytes([p.encode("latin-1", "ignore").decode("latin-1") for p in pages])
    ),
    st.lists(texts, max_size=4).map(lambda paragraphs: docx_bytes([_xml_safe(p) for p in paragraphs])),
    st.binary(max_size=300).map(lambda tail: pdf_bytes(["x"])[:200] + tail),
)
ascii_values = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
metadata = st.dictionaries(st.sampled_from(["classification", "owner", "source", "origin"]), ascii_values)
extensions = st.sampled_from(["txt", "md", "csv", "json", "html", "htm", "pdf", "docx", "exe", "", "PDF", "..", "."])


def _xml_safe(text: str) -> str:
    return "".join(c for c in text if c in "\t\n\r" or (" " <= c <= "\ud7ff") or ("\ue000" <= c <= "\ufffd"))


@EXAMPLES
@given(documents=st.lists(st.tuples(names, extensions, bodies, metadata), min_size=1, max_size=3))
def test_every_generated_document_ends_in_exactly_one_place_with_a_reason(
    aws: Aws, documents: list[tuple[str, str, bytes, dict[str, str]]]
) -> None:
    n = next(_examples)
    keys = [f"fuzz/{n}/{i}/{name}.{ext}" for i, (name, ext, _, _) in enumerate(documents)]
    messages = [landed(aws, key, body, **meta) for key, (_, _, body, meta) in zip(keys, documents, strict=True)]
    assert run(*messages) == []
    curated, quarantined = aws.objects(CURATED), aws.objects(QUARANTINE)
    for key in keys:
        record = version_record(aws, key)
        assert record["status"] in ("curated", "quarantined"), record
        assert record["reason"], record
        bucket = CURATED if record["status"] == "curated" else QUARANTINE
        where = record["location"].removeprefix(f"s3://{bucket}/")
        assert where in (curated if bucket == CURATED else quarantined)
        doc = document_id(LANDING, key)
        assert len([k for k in [*curated, *quarantined] if doc in k and not k.endswith(".metadata.json")]) == 1
    assert not [v for v in aws.landing_versions() if v["Key"].startswith(f"fuzz/{n}/")]
    assert not [value for value in SEEDED_PII if value in json.dumps([*aws.objects(CURATED).values()], default=str)]


fields = st.sampled_from(["key", "size", "version-id", "sequencer"])


@EXAMPLES
@given(
    changes=st.lists(st.tuples(fields, json_values), max_size=3),
    body=st.one_of(st.none(), json_values.map(json.dumps), st.text(max_size=50)),
)
@example(changes=[("key", "0")], body=None)  # another object, which does not exist: recorded as gone
def test_no_event_raises_out_of_the_batch_processor(aws: Aws, changes: list[tuple[str, Any]], body: str | None) -> None:
    put = aws.put(f"events/{next(_examples)}.txt", "Fine text.")
    event = s3_event(put["key"], put["version"], put["size"])
    event["detail"]["object"].update(dict(changes))
    message = sqs_message(body if body is not None else event, message_id=f"e-{next(_examples)}")
    response = handler.lambda_handler(batch(message), FakeContext())  # must not raise
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    recorded = [i for i in aws.registry_items() if i["pk"] == f"event#{message['messageId']}"]
    # The document the event names: its own key, or the one a change put there (an object that may
    # not exist, recorded as gone).
    named = event["detail"]["object"].get("key")
    documents = {document_id(LANDING, key) for key in (put["key"], named) if isinstance(key, str) and key}
    settled = [i for i in aws.registry_items() if i["pk"] in documents and i["sk"] != "current"]
    assert failed or recorded or settled, "a message must fail visibly or leave a registry record"
    assert all(i["reason"] for i in [*recorded, *settled])


# --- quarantine keys and document ids ------------------------------------------------------------------

DOC = document_id(LANDING, "docs/handbook.txt")


def test_a_document_id_is_stable_across_releases() -> None:
    assert DOC == "c8dfe0b4ca1d9ce0748c20d18f64d081"  # the registry's and the Knowledge Base's key
    assert document_id("other-bucket", "docs/handbook.txt") != DOC


def _hashed(version: str) -> str:
    return "v-" + hashlib.sha256(version.encode(errors="replace")).hexdigest()[:32]


@pytest.mark.parametrize(
    ("version", "key", "target"),
    [
        ("v1", "docs/handbook.txt", f"{DOC}/v1/handbook.txt"),
        ("A.b_c-9", "handbook.txt", f"{DOC}/A.b_c-9/handbook.txt"),
        ("v" * 128, "a.txt", f"{DOC}/{'v' * 128}/a.txt"),
        ("v" * 129, "a.txt", f"{DOC}/{_hashed('v' * 129)}/a.txt"),
        ("v/1", "a.txt", f"{DOC}/{_hashed('v/1')}/a.txt"),
        ("...", "a.txt", f"{DOC}/{_hashed('...')}/a.txt"),
        (".v", "a.txt", f"{DOC}/.v/a.txt"),
        ("v1", "docs/", f"{DOC}/v1/docs"),
        ("v1", "docs/..", f"{DOC}/v1/object"),
        ("v1", "docs/.", f"{DOC}/v1/docs"),
        ("v1", "docs/a\x07b.txt", f"{DOC}/v1/object"),
        ("v1", "docs/...txt.", f"{DOC}/v1/txt"),
        ("v1", "docs/Xray.tar.X", f"{DOC}/v1/Xray.tar.X"),  # only dots are stripped
        (
            "v1",
            "docs/x" + "é" * 600,
            f"{DOC}/v1/x" + "é" * ((1024 - len(f"{DOC}/v1/x")) // 2),
        ),  # never half a character
        ("\ud800", "a.txt", f"{DOC}/{_hashed(chr(0xD800))}/a.txt"),  # a lone surrogate does not raise
        ("v1", "docs/" + "x" * 1100, f"{DOC}/v1/" + "x" * (1024 - len(f"{DOC}/v1/"))),
    ],
)
def test_quarantine_keys_keep_a_plain_file_name_under_document_and_version(version: str, key: str, target: str) -> None:
    assert quarantine_key(DOC, version, key) == target
    assert len(target.encode()) <= 1024


def test_a_quarantine_key_with_no_room_left_for_a_name_is_the_prefix_and_object() -> None:
    long_document = "d" * 1030
    assert quarantine_key(long_document, "v1", "abcdefghijklmnop.txt") == f"{long_document}/v1/object"


# --- events the processor must not act on, and keys as S3 sends them ------------------------------------


@pytest.mark.parametrize("body", ["x" * 250_000, '{"Records": "' + "é" * 120_000 + '"}'], ids=["ascii", "non-ascii"])
def test_a_malformed_message_near_sqss_limit_is_dead_lettered_cut_with_its_reason(aws: Aws, body: str) -> None:
    """Forwarded whole with its reason added, a message near SQS's 256 KiB (attributes count) was
    refused at every receive and reached the DLQ by SQS's redrive alone, with no reason, no record."""
    message = sqs_message(body)
    assert run(message) == []
    (dead,) = aws.dlq()
    assert len(dead["Body"].encode()) <= MAX_DEAD_LETTER_BYTES
    kept = json.loads(dead["Body"])
    assert kept["message_bytes"] == len(body.encode())
    assert body.startswith(kept["message_start"])
    # As UTF-8, not JSON's six-byte escapes: most of what fits is kept.
    assert len(kept["message_start"].encode()) > MAX_DEAD_LETTER_BYTES // 2
    reason = dead["MessageAttributes"]["reason"]["StringValue"]
    assert [(i["pk"], i["reason"]) for i in aws.registry_items()] == [(f"event#{message['messageId']}", reason)]


def test_a_malformed_message_within_the_bound_is_dead_lettered_whole(aws: Aws) -> None:
    message = sqs_message("not an event")
    assert run(message) == []
    (dead,) = aws.dlq()
    assert dead["Body"] == "not an event"


@pytest.mark.parametrize("bucket", [QUARANTINE, CURATED, "other-bucket"])
def test_an_event_for_a_bucket_other_than_landing_is_dead_lettered_and_nothing_there_is_touched(
    aws: Aws, bucket: str
) -> None:
    """The queue takes a message from anyone allowed to send one: a forged event for the quarantine
    bucket must not curate a quarantined object and delete its only version."""
    assert handler.settings().landing_bucket == LANDING
    if bucket == "other-bucket":
        aws.s3.create_bucket(Bucket=bucket)
        aws.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    version = aws.s3.put_object(Bucket=bucket, Key="docs/held.txt", Body=b"Held text.")["VersionId"]
    message = sqs_message(s3_event("docs/held.txt", version, 10, bucket=bucket))
    assert run(message) == []
    reason = "the event's bucket is not the landing bucket"
    (dead,) = aws.dlq()
    assert dead["MessageAttributes"]["reason"]["StringValue"] == reason
    assert [(i["pk"], i["reason"]) for i in aws.registry_items()] == [(f"event#{message['messageId']}", reason)]
    versions = aws.s3.list_object_versions(Bucket=bucket)
    assert [(v["Key"], v["VersionId"]) for v in versions["Versions"]] == [("docs/held.txt", version)]
    assert "DeleteMarkers" not in versions
    assert [k for k in aws.objects(CURATED) if k != "docs/held.txt"] == []
    assert aws.agent.calls == []


@pytest.mark.parametrize(
    ("key", "sent"),
    [
        ("docs/my doc.txt", "docs/my+doc.txt"),  # S3 URL-encodes event keys
        ("docs/c++ notes.txt", "docs/c%2B%2B+notes.txt"),
        ("docs/c++.txt", "docs/c++.txt"),  # a key sent as it is is found as sent
        ("docs/100%.txt", "docs/100%.txt"),  # not an escape: as sent
        ("docs/caf%E9.txt", "docs/caf%E9.txt"),  # an escape, but of no UTF-8 key: as sent
    ],
)
def test_a_document_id_comes_from_the_objects_real_key_however_the_event_encodes_it(
    aws: Aws, key: str, sent: str
) -> None:
    put = aws.put(key, "Plain words.")
    event = s3_event(sent, put["version"], put["size"])
    assert run(sqs_message(event)) == []
    doc = document_id(LANDING, key)
    record = version_record(aws, key)
    assert (record["pk"], record["status"], record["source"]) == (doc, "curated", f"s3://{LANDING}/{key}")
    assert f"curated/{doc}.txt" in aws.objects(CURATED)
    # The same event again (a new message, the landing slot emptied): the same version, replayed.
    assert run(sqs_message(event)) == []
    assert {i["pk"] for i in aws.registry_items()} == {doc}


def test_a_located_key_is_not_decoded_again(aws: Aws) -> None:
    """A plus in a real key, sent as %2B, of an object deleted before processing: the document is
    the real key's ("docs/a+b.txt"), not a second decoding's ("docs/a b.txt")."""
    put = aws.put("docs/a+b.txt", "Plain words.")
    aws.s3.delete_object(Bucket=LANDING, Key="docs/a+b.txt", VersionId=put["version"])
    assert run(sqs_message(s3_event("docs/a%2Bb.txt", put["version"], put["size"]))) == []
    (item,) = [i for i in aws.registry_items() if i["pk"] != f"doc#{document_id(LANDING, 'docs/a b.txt')}"]
    assert item["pk"] == document_id(LANDING, "docs/a+b.txt")
    assert (item["status"], item["source"]) == ("gone", f"s3://{LANDING}/docs/a+b.txt")


def test_a_first_version_sent_under_another_documents_key_is_not_taken_for_it(aws: Aws) -> None:
    """ "docs/a+b.txt" (sent as "docs/a%2Bb.txt") is curated; then "docs/a b.txt" is uploaded, sent as
    "docs/a+b.txt": the other document's key. It is a document of its own: the first one's copy,
    knowledge base entry and registry state stay as they were."""
    plus = aws.put("docs/a+b.txt", "Plus words.")
    assert run(sqs_message(s3_event("docs/a%2Bb.txt", plus["version"], plus["size"]))) == []
    plus_state = current_of(aws, "docs/a+b.txt")
    spaced = aws.put("docs/a b.txt", "Spaced words.", classification="public")
    assert run(sqs_message(s3_event("docs/a+b.txt", spaced["version"], spaced["size"]))) == []
    assert current_of(aws, "docs/a+b.txt") == plus_state
    assert current_of(aws, "docs/a b.txt")["version"] == spaced["version"]
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/a+b.txt')}.txt"] == b"Plus words."
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/a b.txt')}.txt"] == b"Spaced words."


def _throttled(**_: Any) -> Any:
    raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "DetectDominantLanguage")


def test_a_redriven_version_stays_with_the_document_it_was_recorded_under(aws: Aws) -> None:
    """A version of "docs/a b.txt" (sent as "docs/a+b.txt") failed its last attempt and was recorded
    under its own id; meanwhile a document really named "docs/a+b.txt" was curated. The redriven
    event is that version of "docs/a b.txt" again, not a version of the other document."""
    spaced = aws.put("docs/a b.txt", "Spaced words.")
    message = sqs_message(s3_event("docs/a+b.txt", spaced["version"], spaced["size"]), receive_count=MAX_RECEIVE)
    real = aws.comprehend.detect_dominant_language
    aws.comprehend.detect_dominant_language = _throttled  # type: ignore[method-assign]
    assert run(message) == [message["messageId"]]
    assert version_record(aws, "docs/a b.txt")["status"] == "dead_lettered"
    aws.comprehend.detect_dominant_language = real  # type: ignore[method-assign]
    plus = aws.put("docs/a+b.txt", "Plus words.")
    assert run(sqs_message(s3_event("docs/a%2Bb.txt", plus["version"], plus["size"]))) == []
    plus_state = current_of(aws, "docs/a+b.txt")

    redriven = {
        **message,
        "messageId": "redriven",
        "attributes": {**message["attributes"], "ApproximateReceiveCount": "1"},
    }
    assert run(redriven) == []
    assert version_record(aws, "docs/a b.txt")["status"] == "curated"
    assert version_record(aws, "docs/a+b.txt")["version"] == plus["version"]  # its only version record
    assert current_of(aws, "docs/a+b.txt") == plus_state
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/a b.txt')}.txt"] == b"Spaced words."
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/a+b.txt')}.txt"] == b"Plus words."


def test_a_new_version_is_not_taken_for_a_document_first_seen_under_the_key_as_sent(aws: Aws) -> None:
    """Two documents, "docs/a b.txt" (sent as "docs/a+b.txt") and "docs/a+b.txt" (sent as
    "docs/a%2Bb.txt"): the next version of the first supersedes the first, though the key as sent
    names the second."""
    spaced = aws.put("docs/a b.txt", "Spaced words.")
    assert run(sqs_message(s3_event("docs/a+b.txt", spaced["version"], spaced["size"]))) == []
    plus = aws.put("docs/a+b.txt", "Plus words.")
    assert run(sqs_message(s3_event("docs/a%2Bb.txt", plus["version"], plus["size"]))) == []
    plus_state = current_of(aws, "docs/a+b.txt")

    newer = aws.put("docs/a b.txt", "Newer spaced words.")
    assert run(sqs_message(s3_event("docs/a+b.txt", newer["version"], newer["size"]))) == []
    assert current_of(aws, "docs/a b.txt")["version"] == newer["version"]
    assert current_of(aws, "docs/a+b.txt") == plus_state
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/a b.txt')}.txt"] == b"Newer spaced words."
    assert aws.objects(CURATED)[f"curated/{document_id(LANDING, 'docs/a+b.txt')}.txt"] == b"Plus words."


def test_an_escape_that_decodes_to_no_utf8_key_is_no_decoding_of_the_key(aws: Aws) -> None:
    """S3 keys are UTF-8: "%E9" decoded is a lone byte, so the key as sent is the only key. An object
    deleted before processing is recorded gone under it, not under a key with U+FFFD in it."""
    put = aws.put("docs/caf%E9.txt", "Plain words.")
    aws.s3.delete_object(Bucket=LANDING, Key="docs/caf%E9.txt", VersionId=put["version"])
    assert run(sqs_message(s3_event("docs/caf%E9.txt", put["version"], put["size"]))) == []
    (item,) = aws.registry_items()
    assert (item["pk"], item["status"], item["source"]) == (
        document_id(LANDING, "docs/caf%E9.txt"),
        "gone",
        f"s3://{LANDING}/docs/caf%E9.txt",
    )


def test_an_encoded_key_of_an_object_already_gone_gets_the_decoded_keys_id(aws: Aws) -> None:
    put = aws.put("docs/my doc.txt", "Plain words.")
    aws.s3.delete_object(Bucket=LANDING, Key="docs/my doc.txt", VersionId=put["version"])
    assert run(sqs_message(s3_event("docs/my+doc.txt", put["version"], put["size"]))) == []
    record = version_record(aws, "docs/my doc.txt")
    assert (record["status"], record["source"]) == ("gone", f"s3://{LANDING}/docs/my doc.txt")


@pytest.mark.parametrize(("length", "dead_lettered"), [(MAX_VERSION_BYTES, False), (MAX_VERSION_BYTES + 1, True)])
def test_a_version_id_too_long_for_the_registrys_key_is_dead_lettered_at_once(
    aws: Aws, length: int, dead_lettered: bool
) -> None:
    """S3 allows 1,024 bytes; the registry's sort key (version#<id>) allows that much in all. A
    longer id could never be recorded, not even as dead-lettered: it is a malformed event."""
    put = aws.put("docs/a.txt", "hello")
    version = "v" * length
    failed = run(sqs_message(s3_event("docs/a.txt", version, put["size"])))
    assert failed == []
    sent = aws.dlq()
    if dead_lettered:
        assert [m["MessageAttributes"]["reason"]["StringValue"] for m in sent] == [
            "the event's version id is not a version id"
        ]
    else:
        assert sent == []
        assert any(item["sk"] == f"version#{version}" for item in aws.registry_items())
