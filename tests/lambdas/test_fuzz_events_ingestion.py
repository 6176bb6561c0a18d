"""Property: the ingestion processor accounts for every SQS record, whatever its body (not JSON,
nested past the parser, any shape, keys and version ids with odd characters or lone surrogates,
sizes of any type, Textract notifications of any shape): each one is processed, dead-lettered at
once with its body and a reason, or reported as a batch item failure (SQS retries it and moves it
to the DLQ), exactly one of the three, never dropped; its key never reaches a log line.

And the Macie responder answers any EventBridge event: a finding it can act on is acted on and
notified, anything else is logged as unusable with a reason naming the field, never raised; the
key never reaches a log line or the notification.

S3, DynamoDB and SQS are moto's (tests/lambdas/ingestion_fixtures.py); the DLQ sends are recorded
and checked against SQS's model.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError
from hypothesis import HealthCheck, event as note, example, given, settings, strategies as st

from ingestion import handler, macie
from ingestion.events import MalformedEventError, object_ref, ocr_job
from ingestion.pipeline import CuratedStore
from ingestion.registry import DEAD_LETTERED
from shared.field_paths import value_at
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import CURATED, QUARANTINE, Aws, ModelChecked, batch, s3_event, sqs_message
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(
    max_examples=100,
    deadline=None,
    # The moto world of the aws fixture lives across examples: each example uses fresh names.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECRET = "ada-secret@example.com"  # in a key: never in a log line
_ids = itertools.count()

keys = st.one_of(
    st.sampled_from([f"docs/{SECRET}.txt", "a+b%20c.txt", "..", "./x", "k" * 1025, "\ud800.txt", "a\x00b", " "]),
    hostile_text(30),
    json_values,
)
versions = (
    st.sampled_from(["3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "null", "", "a\nb", "v" * 1025, "\udfff"]) | json_values
)
sizes = st.sampled_from([0, 12, -1, 5 * 1024**4 + 1, 10**400, True, 1.5, "12"]) | json_values
buckets = st.sampled_from([LANDING, CURATED, "other-bucket", "", "A", "\ud800"]) | json_values


CURRENT = "current version"  # the test puts the event's object and sends its real version id and size
REAL_KEYS = ("docs/a.txt", f"docs/{SECRET}.txt", "a+b%20c.txt", "ü/ß.md", "docs/..txt")
real_keys = st.sampled_from(REAL_KEYS)


@st.composite
def s3_bodies(draw: st.DrawFn) -> dict[str, Any]:
    event = s3_event(draw(real_keys), CURRENT, 0)
    obj = event["detail"]["object"]
    for name, values in (("key", keys), ("version-id", versions), ("size", sizes), ("sequencer", json_values)):
        change = draw(st.integers(0, 7))
        if change == 0:
            obj[name] = draw(values)
        elif change == 1:
            del obj[name]
    if draw(st.integers(0, 5)) == 0:
        event["detail"]["bucket"] = draw(st.fixed_dictionaries({"name": buckets}) | json_values)
    if draw(st.integers(0, 7)) == 0:
        event["detail"]["object"] = draw(json_values)
    if draw(st.integers(0, 7)) == 0:
        event[draw(st.sampled_from(["source", "detail-type", "detail"]))] = draw(json_values)
    return event


def landed_body(aws: Aws, body: str | dict[str, Any]) -> str:
    """The body as sent: an event for the current version names an object put for it now."""
    obj = value_at(body, "detail.object")
    if isinstance(obj, dict) and obj.get("version-id") == CURRENT:
        if obj.get("key") in REAL_KEYS:
            put = aws.put(obj["key"], "Fine text.")
            obj["version-id"] = put["version"]
            if "size" in obj:
                obj["size"] = put["size"]
        else:
            obj["version-id"] = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"  # of an object that is not there
    return body if isinstance(body, str) else json.dumps(body)


textract = st.fixed_dictionaries(
    {"API": st.just("StartDocumentTextDetection"), "JobId": st.just("job-1") | json_values},
    optional={
        "Status": st.sampled_from(["SUCCEEDED", "FAILED", "ERROR", "PARTIAL_SUCCESS", "?"]) | json_values,
        "JobTag": st.just("0" * 32) | hostile_text(32) | json_values,
    },
).map(json.dumps)
ODD_BODIES = {
    "empty": "",
    "deep list": "[" * 5000,
    "deep object": '{"detail": ' * 3000,
    "infinite size": '{"source": "aws.s3", "detail-type": "Object Created", "size": 1e999}',
}
bodies = st.one_of(
    s3_bodies(),
    s3_bodies(),
    textract,
    json_values.map(json.dumps),
    hostile_text(40),
    st.sampled_from(sorted(ODD_BODIES)).map(ODD_BODIES.__getitem__),
)


def recorded_results(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What record_handler returned, by message id (a record that raised has none)."""
    results: dict[str, Any] = {}
    original = handler.record_handler

    def recording(record: Any, lambda_context: Any = None) -> Any:
        results[record.message_id] = original(record, lambda_context)
        return results[record.message_id]

    monkeypatch.setattr(handler, "record_handler", recording)
    return results


def names_an_object(body: str) -> bool:
    """Whether the body names a landing object or a Textract job (else it can never succeed)."""
    try:
        return ocr_job(body) is not None or object_ref(body).bucket == LANDING
    except (MalformedEventError, RecursionError):
        return False


@pytest.fixture
def dlq(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> ModelChecked:
    sent = ModelChecked("sqs")
    monkeypatch.setattr(handler, "sqs", lambda: sent)
    return sent


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(messages=st.lists(bodies, min_size=1, max_size=3))
@example(messages=["[" * 100_000])
@example(messages=['{"API": "StartDocumentTextDetection", "JobId": ' + "[" * 100_000 + "]" * 100_000 + "}"])
@example(messages=[json.dumps(s3_event("\ud800", "v1", 1)), json.dumps(s3_event("k", "v1", 1, bucket="other"))])
def test_every_record_is_processed_dead_lettered_or_failed_exactly_once(
    aws: Aws,
    dlq: ModelChecked,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    messages: list[str | dict[str, Any]],
) -> None:
    capsys.readouterr()
    dlq.calls.clear()
    results = recorded_results(monkeypatch)
    records = [sqs_message(landed_body(aws, body), message_id=f"m-{next(_ids)}") for body in messages]
    response = handler.lambda_handler(batch(*records), FakeContext())
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    sent = Counter(
        (params["MessageBody"], params["MessageAttributes"]["reason"]["StringValue"])
        for operation, params in dlq.calls
        if operation == "SendMessage"
    )
    dead_lettered: Counter[tuple[str, str]] = Counter()
    for record in records:
        message_id = record["messageId"]
        assert (message_id in failed) != (message_id in results), message_id  # one or the other, never neither
        result = results.get(message_id)
        note(f"record: {result['status'] if result else 'failed'}")
        if result is None:  # retried: only a message naming an object, which a retry may process
            assert names_an_object(record["body"]), record["body"][:200]
            continue
        assert isinstance(result.get("status"), str)
        assert result.get("reason") or result["status"] not in (DEAD_LETTERED, "quarantined"), result
        if result["status"] == DEAD_LETTERED:
            dead_lettered[(record["body"], result["reason"])] += 1
    assert sent == dead_lettered  # each dead-lettered record's body is in the DLQ with its reason
    assert SECRET not in capsys.readouterr().out


# --- Macie ---------------------------------------------------------------------------------------------

FINDING_ID = "5f1c1a6e2a0b4c8d9e0f1a2b3c4d5e6f"


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field Macie would send seven times in eight, anything else the eighth."""
    return st.integers(0, 7).flatmap(lambda n: odd if n == 7 else good)  # (hypothesis favours 0)


@st.composite
def finding_events(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 19)) == 0:
        return draw(json_values)
    obj = draw(
        st.fixed_dictionaries(
            {"key": mostly(st.sampled_from(["docs/a.txt", f"curated/{SECRET}.txt"]), keys)},
            optional={"versionId": mostly(st.none() | st.just(CURRENT), versions), "size": sizes},
        )
    )
    bucket = draw(mostly(st.sampled_from([LANDING, CURATED, QUARANTINE, "log-archive"]), buckets))
    detail = {
        "id": draw(mostly(st.just(FINDING_ID), st.sampled_from(["", "../x", "f" * 129]) | hostile_text(20))),
        "type": draw(mostly(st.just("SensitiveData:S3Object/Personal"), hostile_text(20) | json_values)),
        "severity": {"description": draw(mostly(st.sampled_from(["Low", "Medium", "High"]), json_values))},
        "resourcesAffected": {"s3Bucket": {"name": bucket}, "s3Object": obj},
    }
    if draw(st.integers(0, 3)) == 0:  # a field gone, or of another type
        name = draw(st.sampled_from(sorted(detail)))
        if draw(st.booleans()):
            del detail[name]
        else:
            detail[name] = draw(json_values)
    return {"version": "0", "source": "aws.macie", "detail-type": "Macie Finding", "detail": detail}


@pytest.fixture
def responder(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> ModelChecked:
    sns = ModelChecked("sns", {"Publish": {"MessageId": "1"}})
    buckets = macie.Buckets(LANDING, CURATED, QUARANTINE)
    store = CuratedStore(aws.s3, aws.knowledge)
    responding = macie.Responder(aws.s3, store, aws.registry, sns, buckets, "arn:aws:sns:us-east-1:123456789012:f")
    monkeypatch.setattr(macie, "responder", lambda: responding)
    return sns


def finding(bucket: str, key: str) -> dict[str, Any]:
    detail = {
        "id": FINDING_ID,
        "type": "SensitiveData:S3Object/Personal",
        "severity": {"description": "High"},
        "resourcesAffected": {"s3Bucket": {"name": bucket}, "s3Object": {"key": key}},
    }
    return {"version": "0", "source": "aws.macie", "detail-type": "Macie Finding", "detail": detail}


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=finding_events())
@example(event=finding(CURATED, "curated/"))  # a curated key without a file name: no document id
@example(event=finding(CURATED, ".hidden"))
@example(event=finding(LANDING, "\ud800"))
def test_any_finding_event_is_acted_on_or_ignored_with_a_reason_never_raised(
    aws: Aws, responder: ModelChecked, capsys: pytest.CaptureFixture[str], event: Any
) -> None:
    capsys.readouterr()
    responder.calls.clear()
    obj = value_at(event, "detail.resourcesAffected.s3Object")
    bucket = value_at(event, "detail.resourcesAffected.s3Bucket.name")
    if isinstance(obj, dict) and bucket in (LANDING, CURATED) and isinstance(obj.get("key"), str):
        try:  # the flagged object exists (its current version, when the finding names that)
            put = aws.s3.put_object(Bucket=bucket, Key=obj["key"], Body=b"Fine text.")
        except (ClientError, ParamValidationError, UnicodeEncodeError):
            put = {"VersionId": "unknown"}
        if obj.get("versionId") == CURRENT:
            obj["versionId"] = put["VersionId"]
    answer = macie.lambda_handler(event, FakeContext())
    out = capsys.readouterr().out
    note(f"finding: {answer['action']}")
    if answer == {"action": "ignored"}:
        (unusable,) = [json.loads(line) for line in out.splitlines() if "unusable finding event" in line]
        assert unusable["reason"]
        assert not responder.calls  # nothing notified, and (parse runs first) nothing moved
    else:
        assert answer["action"] in ("quarantined", "already_gone", "already_quarantined", "reported")
        ((operation, published),) = responder.calls
        assert operation == "Publish"
        assert SECRET not in published["Message"]
    assert SECRET not in out
