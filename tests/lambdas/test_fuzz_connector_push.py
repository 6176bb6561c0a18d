"""Property: the push connector answers any batch an upstream system sends (any records payload,
path, headers) with JSON: a 202 once every record landed, or a 4xx naming the problem before
anything lands; never a 5xx or a stack trace. S3 is moto's, which refuses what S3 would.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from hypothesis import HealthCheck, event as event_note, given, settings, strategies as st
from moto import mock_aws

from connector_push import handler as push
from connector_push.contract import Settings as PushSettings
from tests.lambdas.conftest import FakeContext, http_result
from tests.lambdas.gateway_fixtures import HOSTILE_BODIES, rest_event
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

LANDING = "landing"
IAM_CALLER = {"principalId": "AIDA"}  # an IAM-authorized caller's context


@pytest.fixture(scope="module", autouse=True)
def landing() -> Iterator[Any]:
    patch = pytest.MonkeyPatch()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=LANDING)
        s3.put_bucket_versioning(Bucket=LANDING, VersioningConfiguration={"Status": "Enabled"})
        dynamodb = boto3.resource("dynamodb", region_name="us-east-1")
        keys = [("pk", "HASH"), ("sk", "RANGE")]
        registry = dynamodb.create_table(
            TableName="registry",
            KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in keys],
            AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )
        settings = PushSettings(
            landing_bucket=LANDING, push_sources={"crm": "customer"}, registry_table="registry", max_records=5
        )
        patch.setattr(push, "settings", lambda: settings)
        patch.setattr(push, "s3", lambda: s3)
        patch.setattr(push, "registry", lambda: registry)
        yield s3
    patch.undo()


ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True),
    st.sampled_from(["..", ".", "a/b", "../x", "a" * 129, "", "c-1", "c-1"]),
    hostile_text(20),
    json_values,
)
records = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "id": ids,
            "title": st.text(max_size=60) | st.just("a\n# b\t\x0bc") | st.just("t" * 600) | json_values,
            "body": st.text(max_size=80) | st.just("x\x00y") | st.just(" \n\t") | json_values,
            "owner": hostile_text(30) | st.sampled_from(["owner@example.com", " o", "ó", "o" * 200]) | json_values,
            "updated_at": st.sampled_from(
                [
                    "2026-11-30T10:00:00Z",
                    "2026-11-30T10:00:00",
                    "9999-12-31T23:59:59+14:00",
                    "0001-01-01T00:00:00-14:00",
                    "2026-13-01",
                    "1e400",
                ]
            )
            | st.integers()
            | st.floats()
            | json_values,
            "extra": json_values,
        },
    ),
    max_size=7,
)
# Records S3 and the pipeline take, with any text: what lands.
valid_records = st.lists(
    st.fixed_dictionaries(
        {
            "id": st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,20}", fullmatch=True),
            "body": st.text(min_size=1, max_size=80).map(lambda text: text.replace("\x00", "") + "."),
        },
        optional={
            "title": st.text(max_size=60).filter(lambda t: t.isprintable() or not t.strip()),
            "owner": st.from_regex(r"[!-~]([ -~]{0,20}[!-~])?", fullmatch=True),
            "updated_at": st.datetimes(
                timezones=st.sampled_from(
                    [dt.UTC, dt.timezone(dt.timedelta(hours=14)), dt.timezone(-dt.timedelta(hours=14))]
                )
            ).map(lambda when: when.isoformat()),
        },
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda record: record["id"],
)
# Half of them records that land (the landing and its metadata checked), half anything else.
bodies = valid_records.map(lambda batch: json.dumps({"records": batch})) | st.one_of(
    records.map(lambda batch: json.dumps({"records": batch})),
    st.fixed_dictionaries({"records": records | json_values}, optional={"more": json_values}).map(json.dumps),
    json_values.map(json.dumps),
    st.just('{"records": [{"id": "a", "body": "b"}], "records": [{"id": "a", "body": "c"}]}'),  # a duplicated key
    st.just('{"records": [{"id": "a", "body": "b", "updated_at": 1e400}]}'),
    st.just('{"records": [{"id": "a", "body": "\\ud800"}]}'),  # a lone surrogate, escaped
    st.text(max_size=100),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.sampled_from(list(HOSTILE_BODIES.values())),
    st.none(),
)
# Mostly the configured source, so most pushes reach the records' checks and the landing.
other_sources = hostile_text(20) | st.text(max_size=10).map(lambda s: quote(s, safe=""))
sources = st.sampled_from(["crm", "crm", "crm", ""]).flatmap(lambda crm: st.just(crm) if crm else other_sources)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    body=bodies,
    source=sources,
    method=st.sampled_from(["POST", "POST", "POST", "POST", "GET", "PUT"]),
    headers=st.dictionaries(hostile_text(15), hostile_text(40), max_size=3) | st.none(),
    base64_encoded=st.sampled_from([None, False, False, True]),  # a body marked base64 that is not: a 400
)
def test_any_push_gets_json_a_202_or_a_4xx(
    landing: Any,
    body: str | None,
    source: str,
    method: str,
    headers: dict[str, str] | None,
    base64_encoded: bool | None,
) -> None:
    event = rest_event(method, f"/v1/records/{source}", body, authorizer=IAM_CALLER, headers=headers or {})
    if headers is None:
        event["headers"] = None
    event["isBase64Encoded"] = base64_encoded
    response = push.lambda_handler(event, FakeContext())
    answer = http_result(response)
    event_note(f"status {answer.status}")  # `pytest --hypothesis-show-statistics` shows the spread
    assert answer.status in (202, 400, 404, 405, 413, 422), answer.body
    assert isinstance(answer.body, dict)
    assert "Traceback" not in response["body"]
    if answer.status == 202:
        assert all(set(skip) == {"id", "reason"} for skip in answer.body["skipped"])
        for landed in answer.body["documents"]:  # each is in the bucket as the answer says
            head = landing.head_object(Bucket=LANDING, Key=landed["key"], VersionId=landed["version"])
            assert head["Metadata"]["source"] == f"crm:{landed['id']}"
    else:
        assert answer.body["error"]
        assert answer.body["message"]
