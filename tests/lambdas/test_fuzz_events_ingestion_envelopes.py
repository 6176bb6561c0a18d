"""Property: the ingestion processor accounts for every record of any SQS envelope, as Lambda could
deliver it or a misconfigured producer or a direct invocation could cause: records without a body,
a message id, attributes or a receipt handle; bodies that are not text; duplicate message ids;
receive counts missing, not a number or huge; records that are not objects; S3 test events,
S3 notifications, SNS-wrapped S3 events and other EventBridge events as bodies.

Each record is exactly one of: processed, dead-lettered at once with a reason (its body, or its
whole record as JSON when it has no text body or no message id to report), or reported as a batch
item failure (SQS retries it); the response is Powertools' partial batch response and names only
message ids of the batch. A record that fails on its last receive is recorded as dead-lettered in
the registry. An event that is no SQS batch at all is refused with a logged reason and an empty
response: nothing raises out of ``lambda_handler``, no key reaches a log line.

S3, DynamoDB and SQS are moto's (tests/lambdas/ingestion_fixtures.py); DLQ sends are checked
against SQS's model and recorded; documents under ``fail/`` fail with S3 throttling.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event as note, example, given, settings, strategies as st

from ingestion import handler
from ingestion.contract import LOST_RECORDS_METRIC, REFUSED_EVENTS_METRIC
from ingestion.events import ObjectRef
from ingestion.pipeline import document_id
from ingestion.registry import DEAD_LETTERED
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import MAX_RECEIVE, Aws, ModelChecked, s3_event, sqs_message
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(
    max_examples=80,
    deadline=None,
    # The moto world of the aws fixture lives across examples: each example uses fresh names.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECRET = "ada-secret@example.com"  # in every key: never in a log line
SECRETS = (SECRET, quote(SECRET), quote_plus(SECRET))
_ids = itertools.count()
RECORD_HANDLER = handler.record_handler

# --- bodies ----------------------------------------------------------------------------------------


def landing_event(kind: str) -> dict[str, Any]:
    """An Object Created event whose object the test puts (``ok``) or whose processing fails (``fail``)."""
    return {"kind": kind, "key": f"{kind}/{next(_ids)}-{SECRET}.txt"}


def s3_notification(key: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": LANDING}, "object": {"key": key, "size": 3, "versionId": "v1"}},
            }
        ]
    }


S3_TEST_EVENT = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": LANDING, "RequestId": "r"}
OTHER_EVENTBRIDGE = {"version": "0", "source": "aws.macie", "detail-type": "Macie Finding", "detail": {}}
odd_bodies: st.SearchStrategy[Any] = st.one_of(
    st.just(json.dumps(S3_TEST_EVENT)),
    st.just(json.dumps(OTHER_EVENTBRIDGE)),
    st.just(json.dumps(s3_notification(f"docs/{SECRET}.txt"))),
    st.just(  # SNS-wrapped, raw delivery off
        json.dumps({"Type": "Notification", "Message": json.dumps(s3_event(f"docs/{SECRET}.txt", "v1", 3))})
    ),
    st.just(json.dumps({"Type": "Notification", "Message": json.dumps(s3_notification(f"docs/{SECRET}.txt"))})),
    hostile_text(30),
    json_values.filter(lambda v: not isinstance(v, str)),  # a body that is not text
)
landing_events = st.sampled_from(["ok", "fail"]).map(landing_event)
bodies = st.integers(0, 1).flatmap(lambda n: landing_events if n == 0 else odd_bodies)

# --- envelopes -------------------------------------------------------------------------------------

RECEIVE_COUNTS = st.sampled_from(["1", "3", "03", "9" * 5000, "99999999999", "-1", "1e3", "x", "", "３", " 3"])
receive_counts = RECEIVE_COUNTS | st.integers(-5, 10**30) | st.booleans() | json_values
ENVELOPE_FIELDS = ("body", "messageId", "attributes", "receiptHandle", "eventSource")


@st.composite
def records(draw: st.DrawFn, message_ids: st.SearchStrategy[str]) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values.filter(lambda v: not isinstance(v, dict)))  # not an object
    record = sqs_message("placeholder", message_id=draw(message_ids))
    record["body"] = draw(bodies)
    if draw(st.integers(0, 3)) == 0:
        record["attributes"]["ApproximateReceiveCount"] = draw(receive_counts)
    if draw(st.integers(0, 5)) == 0:
        del record["attributes"]["ApproximateReceiveCount"]
    if draw(st.integers(0, 4)) == 0:  # a field gone, or of another type
        name = draw(st.sampled_from(ENVELOPE_FIELDS))
        if draw(st.booleans()):
            del record[name]
        else:
            record[name] = draw(json_values)
    return record


@st.composite
def batches(draw: st.DrawFn) -> Any:
    # Duplicate message ids now and then: SQS may deliver a message twice.
    ids = st.sampled_from(["dup-1", "dup-2"]) if draw(st.booleans()) else st.builds(lambda: f"m-{next(_ids)}")
    return {"Records": draw(st.lists(records(ids), min_size=1, max_size=4))}


NOT_BATCHES: dict[str, Any] = {
    "null": None,
    "list": [],
    "text": "Records",
    "no records": {},
    "empty records": {"Records": []},
    "records text": {"Records": "x"},
    "records object": {"Records": {"0": {}}},
    "function url": {"version": "2.0", "rawPath": "/", "body": "{}"},
    "eventbridge": OTHER_EVENTBRIDGE,
}
not_batches = st.sampled_from(sorted(NOT_BATCHES)).map(NOT_BATCHES.__getitem__) | json_values.filter(
    lambda v: not (isinstance(v, dict) and isinstance(v.get("Records"), list) and v["Records"])
)

# --- the world -------------------------------------------------------------------------------------


class Throttled:
    """The pipeline, except that documents under ``fail/`` fail as S3 throttling would."""

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline

    def locate(self, ref: ObjectRef) -> ObjectRef:
        if ref.key.startswith("fail/"):
            raise ClientError({"Error": {"Code": "SlowDown", "Message": f"slow down on {ref.key}"}}, "HeadObject")
        located: ObjectRef = self._pipeline.locate(ref)
        return located

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline, name)


@pytest.fixture
def world(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> ModelChecked:
    dlq = ModelChecked("sqs")
    monkeypatch.setattr(handler, "sqs", lambda: dlq)
    throttled = Throttled(aws.pipeline)
    monkeypatch.setattr(handler, "pipeline", lambda: throttled)
    return dlq


def landed(aws: Aws, event: dict[str, Any]) -> None:
    """Each planned landing event becomes a real one (``ok``: its object is put now)."""
    for record in event["Records"]:
        body = record.get("body") if isinstance(record, dict) else None
        if isinstance(body, dict) and set(body) == {"kind", "key"}:
            if body["kind"] == "ok":
                put = aws.put(body["key"], "Fine text.")
                record["body"] = json.dumps(s3_event(body["key"], put["version"], put["size"]))
            else:
                record["body"] = json.dumps(s3_event(body["key"], "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", 3))


def handled(monkeypatch: pytest.MonkeyPatch, event: Any) -> list[list[Any]]:
    """What record_handler did with each record of the event, by position: its result, or "raised"."""
    positions = {id(r): n for n, r in enumerate(event["Records"]) if isinstance(r, dict)}
    seen: list[list[Any]] = [[] for _ in event["Records"]]
    original = RECORD_HANDLER  # (monkeypatch lasts for all of a test's examples)

    def recording(record: Any, lambda_context: Any = None) -> Any:
        outcomes = seen[positions[id(record.raw_event)]]
        try:
            result = original(record, lambda_context)
        except Exception:
            outcomes.append("raised")
            raise
        outcomes.append(result)
        return result

    monkeypatch.setattr(handler, "record_handler", recording)
    return seen


def planned(kind: str, message_id: str) -> dict[str, Any]:
    record = sqs_message("placeholder", message_id=message_id)
    record["body"] = landing_event(kind)
    return record


def reportable(record: Any) -> bool:
    return isinstance(record, dict) and isinstance(record.get("messageId"), str) and bool(record["messageId"])


def last_receive(record: dict[str, Any]) -> bool:
    """Whether SQS says this is the message's last receive (a count it could have sent, >= max)."""
    attributes = record.get("attributes")
    count = attributes.get("ApproximateReceiveCount") if isinstance(attributes, dict) else None
    if isinstance(count, int) and not isinstance(count, bool):
        return count >= MAX_RECEIVE
    if not (isinstance(count, str) and count.isascii() and count.isdigit()):
        return False
    digits = count.lstrip("0")
    return len(digits) > 2 or int(digits or "0") >= MAX_RECEIVE


def failing_ref(record: dict[str, Any]) -> tuple[str, str] | None:
    """The document id and version of a record whose processing fails (under ``fail/``)."""
    try:
        obj = json.loads(record["body"])["detail"]["object"]
    except (KeyError, TypeError, ValueError):
        return None
    return (document_id(LANDING, obj["key"]), obj["version-id"]) if obj["key"].startswith("fail/") else None


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=batches())
@example(event={"Records": [5, "x", None, {"body": "{}"}]})
@example(event={"Records": [{**sqs_message("{}", message_id="m-x"), "body": {"detail": {}}}]})
@example(event={"Records": [planned("fail", "dup-1"), planned("fail", "dup-1"), planned("ok", "dup-1")]})
def test_every_record_of_any_envelope_is_processed_dead_lettered_or_failed_exactly_once(
    aws: Aws,
    world: ModelChecked,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, Any],
) -> None:
    capsys.readouterr()
    world.calls.clear()
    event = json.loads(json.dumps(event))  # each record its own object (an example may repeat one)
    landed(aws, event)
    seen = handled(monkeypatch, event)
    response = handler.lambda_handler(event, FakeContext())
    out = capsys.readouterr().out

    assert set(response) == {"batchItemFailures"}
    failed = [f["itemIdentifier"] for f in response["batchItemFailures"]]
    assert all(set(f) == {"itemIdentifier"} for f in response["batchItemFailures"])
    sent = Counter(
        (params["MessageBody"], params["MessageAttributes"]["reason"]["StringValue"])
        for operation, params in world.calls
        if operation == "SendMessage"
    )
    expected: Counter[tuple[str, str]] = Counter()
    raised_ids = set()
    for record, outcomes in zip(event["Records"], seen, strict=True):
        if not reportable(record):  # nothing SQS could retry: dead-lettered as a whole, at once
            assert outcomes == []
            note("record: undeliverable")
            whole = handler._as_json(record)
            assert json.loads(whole) == record
            reasons = [r for (b, r) in sent if b == whole]
            assert reasons
            assert reasons[0] in ("the SQS record is not an object", "the SQS record has no message id")
            expected[(whole, reasons[0])] += 1
            continue
        (outcome,) = outcomes  # handled exactly once
        note(f"record: {outcome if outcome == 'raised' else outcome['status']}")
        if outcome == "raised":
            raised_ids.add(record["messageId"])
            ref = failing_ref(record)
            assert ref is not None, record  # only a document that may succeed later is retried
            state = aws.registry.version(*ref)
            assert (state is not None and state.status == DEAD_LETTERED) == last_receive(record), (state, record)
            continue
        assert isinstance(outcome.get("status"), str)
        body = record.get("body")
        if outcome["status"] == DEAD_LETTERED:
            assert outcome["reason"]
            if not isinstance(body, str):  # its whole record, as JSON
                assert outcome["reason"] == "the SQS record has no text body"
                body = handler._as_json(record)
                assert json.loads(body) == record
            expected[(body, outcome["reason"])] += 1
        else:
            assert isinstance(body, str)
    assert sent == expected  # nothing else sent
    assert set(failed) == raised_ids  # each failure reported, only failures, only ids of the batch
    assert len(failed) == len(set(failed))
    assert not any(secret in out for secret in SECRETS)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=batches())
@example(event={"Records": [5, {"body": "{}"}, {**sqs_message("{}", message_id="m-y"), "body": None}]})
def test_when_the_dlq_refuses_no_record_is_lost_silently(
    aws: Aws,
    world: ModelChecked,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    event: dict[str, Any],
) -> None:
    """Each record not processed is reported as a failure (SQS retries it, then its redrive policy
    moves it), or, when there is no message id to report, is an error log line with its reason."""
    capsys.readouterr()
    event = json.loads(json.dumps(event))
    landed(aws, event)
    seen = handled(monkeypatch, event)
    world.fail_with = "InternalError"
    try:
        response = handler.lambda_handler(event, FakeContext())
    finally:
        world.fail_with = None
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    lost = [line for line in lines if line.get("message") == "a record without a message id could not be dead-lettered"]
    failed = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    unreportable = [record for record in event["Records"] if not reportable(record)]
    assert len(lost) == len(unreportable)
    assert all(line["level"] == "ERROR" and line["reason"] and line["error"] == "InternalError" for line in lost)
    counted = [line[LOST_RECORDS_METRIC] for line in lines if "_aws" in line and LOST_RECORDS_METRIC in line]
    # the metric the knowledge stack alarms on (tests/infra/test_ingestion.py), once per record lost
    assert sum(len(value) if isinstance(value, list) else 1 for value in counted) == len(unreportable)
    raised = set()
    for record, outcomes in zip(event["Records"], seen, strict=True):
        if reportable(record):
            (outcome,) = outcomes
            if outcome == "raised":
                raised.add(record["messageId"])
            else:
                assert outcome["status"] != DEAD_LETTERED  # nothing claims a DLQ that refused it
    assert failed == raised
    assert not any(secret in out for secret in SECRETS)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=not_batches)
def test_an_event_that_is_no_sqs_batch_is_refused_with_a_logged_reason(
    aws: Aws, world: ModelChecked, capsys: pytest.CaptureFixture[str], event: Any
) -> None:
    capsys.readouterr()
    world.calls.clear()
    before = aws.registry_items()
    assert handler.lambda_handler(event, FakeContext()) == {"batchItemFailures": []}
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    (refusal,) = [line for line in lines if line.get("message") == "event refused: not an SQS batch"]
    assert refusal["level"] == "ERROR"
    assert refusal["reason"]
    # counted as the knowledge stack's alarm reads it (tests/infra/test_ingestion.py)
    (counted,) = [line[REFUSED_EVENTS_METRIC] for line in lines if "_aws" in line and REFUSED_EVENTS_METRIC in line]
    assert counted in (1.0, [1.0])
    assert world.calls == []
    assert aws.registry_items() == before
