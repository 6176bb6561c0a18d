"""Versions of a document in S3's order: every S3 event carries its key's sequencer (hex, typically
16 to 18 digits), and only a later one replaces the document's current state. An event without
one, or with one longer than 20 digits, is dead-lettered at once; no current state is written
without one; a Macie finding keeps the stored one."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from ingestion import handler
from ingestion.events import object_ref
from ingestion.pipeline import document_id
from ingestion.registry import UnsequencedError, VersionRecord, sequencer_key
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import (
    NOW,
    QUARANTINE,
    Aws,
    batch,
    current_of,
    land,
    make,
    record_of,
    s3_event,
    sqs_message,
)

KEY = "team/notes.txt"
REFUSED = "the event has no sequencer of S3's (hex, at most 20 digits) to order it by"
ABSENT = object()  # the event has no "sequencer" at all


@pytest.mark.parametrize(
    "sequencer", [ABSENT, None, "", 1234, "0x12", "12 34", "G1", "1" * 21, "F" * 32, "1" * 33, "F" * 64]
)
def test_an_event_without_a_sequencer_of_s3s_is_dead_lettered_at_once_with_the_reason(aws: Aws, sequencer: Any) -> None:
    put = aws.put(KEY, "Old text, sent again by something other than S3.")
    event = s3_event(put["key"], put["version"], put["size"])
    if sequencer is ABSENT:
        del event["detail"]["object"]["sequencer"]
    else:
        event["detail"]["object"]["sequencer"] = sequencer
    message = sqs_message(event)
    response = handler.lambda_handler(batch(message), FakeContext())
    assert response == {"batchItemFailures": []}  # no retry can give it one
    (dead,) = aws.dlq()
    assert dead["MessageAttributes"]["reason"]["StringValue"] == REFUSED
    (recorded,) = aws.registry_items()
    assert (recorded["pk"], recorded["status"], recorded["reason"]) == (
        f"event#{message['messageId']}",
        "dead_lettered",
        REFUSED,
    )
    assert len(aws.landing_versions()) == 1  # nothing read, nothing deleted


@pytest.mark.parametrize("sequencer", ["1", "0055AED6DCD90281E5", "0055aed6dcd90281e5", "F" * 20])
def test_a_sequencer_of_1_to_20_hex_digits_orders_the_event(sequencer: str) -> None:
    event = s3_event(KEY, "v1", 1)
    event["detail"]["object"]["sequencer"] = sequencer
    assert object_ref(json.dumps(event)).sequencer == sequencer


def test_an_unsequenced_old_version_never_replaces_the_newer_current_one(aws: Aws) -> None:
    """What a message without a sequencer did: the older text curated over the newer, and the
    stored sequencer dropped, so any older version after it was curated too."""
    pipeline = make(aws)
    old = land(aws, KEY, "Stale text, version three.")
    new = land(aws, KEY, "Newest text, version four.")
    assert pipeline.process(new).status == "curated"
    with pytest.raises(UnsequencedError):
        pipeline.process(replace(old, sequencer=""))
    state = current_of(aws, KEY)
    assert (state["version"], state["sequencer"]) == (new.version, sequencer_key(new.sequencer))
    assert aws.objects("curated-bucket")[f"curated/{document_id(LANDING, KEY)}.txt"] == b"Newest text, version four."
    assert [i for i in aws.registry_items() if i["sk"] == f"version#{old.version}"] == []  # failed, not settled


def test_a_forged_sequencer_past_s3s_length_cannot_freeze_the_document(aws: Aws) -> None:
    """64 F's outranked every real event on the key: each later upload was superseded and its
    landing copy deleted."""
    pipeline = make(aws)
    forged = land(aws, KEY, "Text one.")
    with pytest.raises(UnsequencedError):
        pipeline.process(replace(forged, sequencer="F" * 64))
    later = land(aws, KEY, "Text two, a real later upload.")
    outcome = pipeline.process(later)
    assert outcome.status == "curated"
    assert current_of(aws, KEY)["version"] == later.version


def test_a_forged_event_of_32_fs_is_dead_lettered_and_later_uploads_are_curated(aws: Aws) -> None:
    """32 hex digits were let through, and 32 F's outrank every event S3 sends for the key (18
    digits): the forged event curated the version, and each genuine later upload was superseded."""
    first = aws.put(KEY, "Old policy text.")
    forged = s3_event(KEY, first["version"], first["size"])
    forged["detail"]["object"]["sequencer"] = "F" * 32
    message = sqs_message(forged)
    assert handler.lambda_handler(batch(message), FakeContext()) == {"batchItemFailures": []}
    (dead,) = aws.dlq()
    assert dead["MessageAttributes"]["reason"]["StringValue"] == REFUSED
    assert aws.registry.current(document_id(LANDING, KEY)) is None
    later = aws.put(KEY, "New policy text.")
    genuine = sqs_message(s3_event(KEY, later["version"], later["size"]))
    assert handler.lambda_handler(batch(genuine), FakeContext()) == {"batchItemFailures": []}
    state = current_of(aws, KEY)
    assert (state["status"], state["version"]) == ("curated", later["version"])
    settled = aws.registry.version(document_id(LANDING, KEY), later["version"])
    assert settled is not None
    assert settled.status == "curated"


@pytest.mark.parametrize("sequencer", ["", "F" * 21, "not hex"])
def test_the_registry_writes_no_current_state_without_a_sequencer(aws: Aws, sequencer: str) -> None:
    doc = document_id(LANDING, KEY)
    record = VersionRecord(document_id=doc, version="v1", status="curated", reason="r", source=f"s3://{LANDING}/{KEY}")
    with pytest.raises(UnsequencedError):
        aws.registry.record(record, current={"status": "curated", "version": "v1"}, sequencer=sequencer)
    assert aws.registry_items() == []  # neither the state nor the version's record


def test_a_macie_quarantine_keeps_the_documents_order_so_a_late_older_version_is_superseded(aws: Aws) -> None:
    """Macie's finding rewrote the current state without its sequencer: the next older event
    found nothing to be older than, and was curated over the quarantine."""
    pipeline = make(aws)
    older = land(aws, KEY, "Older text.")
    newer = land(aws, KEY, "Newer text.")
    pipeline.process(newer)
    doc = document_id(LANDING, KEY)
    location = f"s3://{QUARANTINE}/macie/finding-1/{doc}.txt"
    aws.registry.finding(doc, "finding-1", reason="Macie finding", location=location, at=NOW, current=True)
    state = current_of(aws, KEY)
    assert (state["status"], state["location"], state["updated_at"]) == ("quarantined", location, NOW.isoformat())
    assert (state["version"], state["sequencer"]) == (newer.version, sequencer_key(newer.sequencer))
    assert "object_version" not in state  # the copy it named is gone
    assert "mode" not in state
    outcome = pipeline.process(older)
    assert outcome.status == "superseded"
    assert current_of(aws, KEY)["status"] == "quarantined"
    assert record_of(aws, older)["status"] == "superseded"
