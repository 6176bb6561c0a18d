"""Property: whichever AWS call the Macie responder makes fails, and however it fails (S3, DynamoDB,
Bedrock Agent or SNS answering AccessDenied, NoSuchKey, NoSuchBucket, Throttling or InternalError;
the endpoint unreachable; a read timing out; botocore refusing a parameter), the outcome is
explicit: the finding is acted on and notified, or the invocation fails with FindingNotHandledError
(so Lambda retries the event) after an error log line naming the step and a "failed" notification.

A failed attempt leaves nothing half done without a record: once the flagged object is gone from
its bucket, the registry says where in quarantine it went, and the copy is there. The retry that
follows (no failure this time) completes the response exactly as a run without failures would:
same action, object in quarantine, finding recorded, curated copy out of the bucket and the
Knowledge Base. The only failure that is not an error is S3 saying the object is missing when the
responder copies it: the finding is then reported as "already_gone".

The object's key (an e-mail address in it, raw or URL-encoded) reaches no log line, no notification,
and neither the message nor the traceback of the error the invocation fails with (what Lambda's
runtime logs), though every injected error's text carries it.

S3 and DynamoDB are moto's, Bedrock Agent and SNS check every request against the service model
(tests/lambdas/ingestion_fixtures.py); the faults wrap the responder's clients.
"""

from __future__ import annotations

import functools
import itertools
import json
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from hypothesis import HealthCheck, event as note, example, given, settings, strategies as st

from ingestion import handler, macie
from ingestion.knowledge import KnowledgeBase
from ingestion.pipeline import MISSING, CuratedStore, document_id
from ingestion.registry import QUARANTINED, Registry
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import CURATED, QUARANTINE, Aws, ModelChecked, batch, landed
from tests.lambdas.test_fuzz_gateway import log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(
    max_examples=80,
    deadline=None,
    # The moto world of the aws fixture lives across examples: each example uses fresh names.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TOPIC = "arn:aws:sns:us-east-1:123456789012:findings"
SECRET = "ada-secret@example.com"  # in every flagged key
SECRETS = (SECRET, quote(SECRET), quote_plus(SECRET), quote(SECRET, safe=""))
_ids = itertools.count()

# --- failures ----------------------------------------------------------------------------------------

CODES = ("AccessDenied", "NoSuchKey", "NoSuchBucket", "Throttling", "InternalError")


def failure(kind: str, operation: str, key: str) -> Exception:
    """An error of this kind, its text carrying the key as AWS's and botocore's can."""
    url = f"https://{LANDING}.s3.us-east-1.amazonaws.com/{quote(key)}"
    error: Exception
    if kind in CODES:
        error = ClientError({"Error": {"Code": kind, "Message": f"{kind} on {key}", "Key": key}}, operation)
    elif kind == "EndpointConnectionError":
        error = EndpointConnectionError(endpoint_url=url)
    elif kind == "ReadTimeoutError":
        error = ReadTimeoutError(endpoint_url=url)
    elif kind == "ConnectTimeoutError":
        error = ConnectTimeoutError(endpoint_url=url)
    else:
        error = ParamValidationError(report=f"Invalid type for parameter Key, value: {key}, type: <class 'str'>")
    return error


KINDS = (*CODES, "EndpointConnectionError", "ReadTimeoutError", "ConnectTimeoutError", "ParamValidationError")


class Faults:
    """Every AWS call of the responder's clients, in order; the one at ``fail_at`` raises ``error``."""

    def __init__(self, fail_at: int | None, make_error: Callable[[str], Exception]) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at
        self.make_error = make_error
        self.fired: tuple[str, Exception] | None = None

    def wrap(self, service: str, target: Any) -> Any:
        return _Faulty(self, service, target)


class _Faulty:
    def __init__(self, faults: Faults, service: str, target: Any) -> None:
        self._faults, self._service, self._target = faults, service, target

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute
        faults = self._faults

        def call(*args: Any, **kwargs: Any) -> Any:
            faults.calls.append(f"{self._service}.{name}")
            if len(faults.calls) - 1 == faults.fail_at:
                error = faults.make_error(name)
                faults.fired = (f"{self._service}.{name}", error)
                raise error
            return attribute(*args, **kwargs)

        return call


# --- findings ------------------------------------------------------------------------------------------

EXPECTED = {
    "landing": "quarantined",
    "landing, no version": "quarantined",
    "curated": "quarantined",
    "gone": "already_gone",
    "quarantine": "already_quarantined",
    "log archive": "reported",
}


def finding_event(bucket: str, key: str, version: str | None) -> dict[str, Any]:
    obj = {"key": key} | ({"versionId": version} if version else {})
    detail = {
        "id": f"finding-{next(_ids)}",
        "type": "SensitiveData:S3Object/Personal",
        "severity": {"score": 3, "description": "High"},
        "resourcesAffected": {"s3Bucket": {"name": bucket}, "s3Object": obj},
    }
    return {"version": "0", "source": "aws.macie", "detail-type": "Macie Finding", "detail": detail}


def flagged(aws: Aws, scenario: str) -> tuple[dict[str, Any], str]:
    """The finding event of a scenario, its object put (or curated) now; and its landing key."""
    key = f"docs/{next(_ids)}-{SECRET}.txt"
    if scenario == "curated":
        assert handler.lambda_handler(batch(landed(aws, key, "Quarterly notes.")), FakeContext()) == {
            "batchItemFailures": []
        }
        current = aws.registry.current(document_id(LANDING, key))
        assert current is not None
        curated_key = current["location"].removeprefix(f"s3://{CURATED}/")
        return finding_event(CURATED, curated_key, current["object_version"]), key
    if scenario.startswith("landing"):
        put = aws.put(key, "Raw text.")
        return finding_event(LANDING, key, None if "no version" in scenario else put["version"]), key
    bucket = {"gone": LANDING, "quarantine": QUARANTINE, "log archive": "log-archive"}[scenario]
    return finding_event(bucket, key, "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"), key


@functools.cache
def topic() -> ModelChecked:
    return ModelChecked("sns", {"Publish": {"MessageId": "m-1"}})  # (a client's model takes long to load)


def responding(aws: Aws, faults: Faults) -> tuple[macie.Responder, ModelChecked, Registry]:
    sns = topic()
    sns.calls.clear()
    s3 = faults.wrap("s3", aws.s3)
    knowledge = KnowledgeBase(faults.wrap("bedrock-agent", aws.agent), "KB12345678", "DS3SOURCE1", "DSCUSTOM01")
    registry = Registry(faults.wrap("dynamodb", aws.dynamodb.Table("registry")))
    buckets = macie.Buckets(landing=LANDING, curated=CURATED, quarantine=QUARANTINE)
    return (
        macie.Responder(s3, CuratedStore(s3, knowledge), registry, faults.wrap("sns", sns), buckets, TOPIC),
        sns,
        registry,
    )


def notices(sns: ModelChecked) -> list[dict[str, Any]]:
    return [json.loads(params["Message"]) for operation, params in sns.calls if operation == "Publish"]


def source_version_exists(aws: Aws, event: dict[str, Any]) -> bool:
    """Whether the flagged object (its version, or a current one) is still in its bucket."""
    bucket = event["detail"]["resourcesAffected"]["s3Bucket"]["name"]
    obj = event["detail"]["resourcesAffected"]["s3Object"]
    listed = aws.s3.list_object_versions(Bucket=bucket, Prefix=obj["key"])
    versions = [v for v in listed.get("Versions", []) if v["Key"] == obj["key"]]
    if "versionId" in obj:
        return any(v["VersionId"] == obj["versionId"] for v in versions)
    return any(v["IsLatest"] for v in versions)


def exists(aws: Aws, bucket: str, key: str) -> bool:
    listed = aws.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
    return any(o["Key"] == key for o in listed)


def quarantined_at(aws: Aws, location: str) -> bool:
    return location.startswith(f"s3://{QUARANTINE}/") and exists(aws, QUARANTINE, location.split("/", 3)[3])


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert not any(secret in text for secret in SECRETS), text[:500]


def assert_completed(aws: Aws, scenario: str, event: dict[str, Any], answer: dict[str, str], key: str) -> None:
    """The state a run without failures leaves."""
    assert answer["action"] == EXPECTED[scenario]
    if answer["action"] != "quarantined":
        return
    doc = answer["document_id"]
    location = Registry(aws.dynamodb.Table("registry")).finding_location(doc, event["detail"]["id"])
    assert location is not None
    assert quarantined_at(aws, location)
    assert not source_version_exists(aws, event)
    if scenario == "curated":
        current = aws.registry.current(document_id(LANDING, key))
        assert current is not None
        assert current["status"] == QUARANTINED
        curated_key = event["detail"]["resourcesAffected"]["s3Object"]["key"]
        assert not exists(aws, CURATED, curated_key)
        removed = [p for op, p in aws.agent.calls if op == "DeleteKnowledgeBaseDocuments"]
        assert any(p["documentIdentifiers"][0]["s3"]["uri"] == f"s3://{CURATED}/{curated_key}" for p in removed)


CALLS = {  # the AWS calls a finding of each scenario takes without failures
    "landing": 5,  # copy, record, delete, record, notify
    "landing, no version": 5,
    "curated": 11,  # copy, record, delete, read the current state, retire (3 deletes, the KB), record twice, notify
    "gone": 3,  # copy (missing), read the record of an earlier attempt, notify
    "quarantine": 1,
    "log archive": 1,
}


@st.composite
def failures(draw: st.DrawFn) -> tuple[str, int, str]:
    scenario = draw(st.sampled_from(sorted(CALLS)))
    return scenario, draw(st.integers(0, CALLS[scenario])), draw(st.sampled_from(KINDS))


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(case=failures())
@example(case=("landing", 2, "Throttling"))  # the flagged object deleted, then the write fails
@example(case=("curated", 7, "InternalError"))  # out of the bucket, the KB removal fails
@example(case=("curated", 9, "EndpointConnectionError"))  # SNS unreachable after all is done
def test_an_aws_failure_in_any_step_completes_or_fails_loudly_and_a_retry_completes(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: tuple[str, int, str]
) -> None:
    note(respond_failing(aws, monkeypatch, capsys, *case))


def test_every_call_of_every_scenario_fails_once(
    aws: Aws, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each call of each scenario failing, one at a time (each kind of failure in turn)."""
    kinds = itertools.cycle(KINDS)
    failed = []
    for scenario, calls in CALLS.items():
        for fail_at in range(calls + 1):  # and one past the last: no failure
            failed.append(respond_failing(aws, monkeypatch, capsys, scenario, fail_at, next(kinds)))
    assert sum("no call" not in label for label in failed) == sum(CALLS.values())  # the counts are right


def respond_failing(
    aws: Aws,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    scenario: str,
    fail_at: int,
    kind: str,
) -> str:
    """A finding of the scenario whose call number ``fail_at`` fails with ``kind``; then its retry."""
    event, key = flagged(aws, scenario)
    capsys.readouterr()
    faults = Faults(fail_at, lambda operation: failure(kind, operation, key))
    responder, sns, _ = responding(aws, faults)
    monkeypatch.setattr(macie, "responder", lambda: responder)
    raised: Exception | None = None
    answer: dict[str, str] = {}
    try:
        answer = macie.lambda_handler(event, FakeContext())
    except Exception as error:
        raised = error
    captured = capsys.readouterr()
    label = f"{scenario}: {faults.fired[0] if faults.fired else 'no call'} #{fail_at} failed"
    label += f" -> {answer.get('action', 'raised')}"
    assert_no_secret(captured.out, captured.err, *(params["Message"] for _, params in sns.calls))

    if faults.fired is None:  # fewer calls than fail_at: a run without failures
        assert raised is None
        assert [n["action"] for n in notices(sns)] == [EXPECTED[scenario]]
        assert_completed(aws, scenario, event, answer, key)
        return label
    call, injected = faults.fired
    if raised is None:  # only S3 saying the object is missing as it is copied
        assert (call, kind in MISSING) == ("s3.copy_object", True), kind
        assert answer["action"] in ("already_gone", "quarantined")
        assert [n["action"] for n in notices(sns)] == [answer["action"]]
        return label

    # Failed loudly: a typed error, logged with its step, the security team told.
    assert isinstance(raised, macie.FindingNotHandledError), repr(raised)
    assert_no_secret(str(raised), "".join(traceback.format_exception(raised)))
    code = kind if isinstance(injected, ClientError) else type(injected).__name__
    assert raised.notice["error"] == code
    assert raised.notice["finding"] == event["detail"]["id"]
    lines = [json.loads(line) for line in captured.out.splitlines() if line.startswith("{")]
    (logged,) = [line for line in lines if line.get("message") == "macie finding not handled"]
    assert (logged["level"], logged["step"], logged["error"]) == ("ERROR", raised.notice["step"], code)
    assert '"MacieFindingsFailed":[1.0]' in captured.out.replace(" ", "")
    assert notices(sns)[-1] == raised.notice
    assert raised.notice["action"] == "failed"

    # Nothing half done without a record: an object gone from its bucket is recorded where it went.
    if (scenario.startswith("landing") or scenario == "curated") and not source_version_exists(aws, event):
        doc = raised.notice["document_id"]
        location = Registry(aws.dynamodb.Table("registry")).finding_location(doc, event["detail"]["id"])
        assert location is not None, raised.notice["step"]
        assert quarantined_at(aws, location), raised.notice["step"]

    # Lambda retries the event: it completes as a run without failures would.
    faults.fail_at = None
    sns.calls.clear()
    retried = macie.lambda_handler(event, FakeContext())
    assert [n["action"] for n in notices(sns)] == [EXPECTED[scenario]]
    assert_completed(aws, scenario, event, retried, key)
    assert_no_secret(capsys.readouterr().out)
    return label
