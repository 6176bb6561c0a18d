"""Property: the account-settings adopter answers any custom resource event (any RequestType, any
ResourceProperties and OldResourceProperties shape, any physical id) within its invocation, so
CDK's Provider framework always answers CloudFormation: a result with a physical id, or an
exception whose message (the stack event's reason) names the problem in a readable length. A
delete never fails and never calls AWS.

The AWS clients answer as an account with every setting off would ({}), or refuse every call;
each request is checked against the service's model (tests/lambdas/ingestion_fixtures.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, event as note, example, given, settings, strategies as st

from account_settings import handler
from account_settings.handler import SETTINGS as SETTINGS_HANDLED
from account_settings.settings import Refused
from tests.lambdas.conftest import FakeContext
from tests.lambdas.ingestion_fixtures import ModelChecked
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(
    max_examples=150,
    deadline=None,
    # monkeypatch sets the same two names on every example.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
MAX_REASON = 2000  # CloudFormation's whole response is at most 4 KB
SETTING_NAMES = sorted(SETTINGS_HANDLED)  # every setting the handler knows, the read-only wait included
ROLE = "arn:aws:iam::123456789012:role/genai-production-foundation-Logging"


def mostly(good: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.integers(0, 3).flatmap(lambda n: odd if n == 3 else good)  # (hypothesis favours 0)


odd_values = hostile_text(20) | st.just("x" * 50_000) | json_values
property_values = {
    "ServiceToken": st.just("arn:aws:lambda:us-east-1:123456789012:function:provider"),
    "Setting": mostly(st.sampled_from(SETTING_NAMES), st.sampled_from(["guardduty", ""]) | odd_values),
    "IndexingPercentage": mostly(st.sampled_from(["1", "100", "0.5"]), st.sampled_from(["-1", "nan", "1e999"])),
    "ResourcePolicy": mostly(st.just('{"Version": "2012-10-17", "Statement": []}'), odd_values),
    "LogGroupName": mostly(st.just("genai-production-foundation-InvocationLogs"), odd_values),
    "RoleArn": mostly(st.just(ROLE), odd_values),
    "OwnedLogGroupPrefix": mostly(st.just("genai-production-foundation-"), odd_values),
    "Mode": mostly(st.sampled_from(["adopt", "manage"]), st.sampled_from(["MANAGE", ""]) | odd_values),
    "FindingPublishingFrequency": mostly(st.sampled_from(["FIFTEEN_MINUTES", "SIX_HOURS"]), odd_values),
    "JobsLogRetentionDays": mostly(st.sampled_from(["365", "1"]), st.sampled_from(["0", "1" * 30]) | odd_values),
}


@st.composite
def properties(draw: st.DrawFn) -> dict[str, Any]:
    """Every setting's properties (each setting reads its own), one sometimes missing, and an extra."""
    drawn = draw(st.fixed_dictionaries(property_values, optional={"Extra": odd_values}))
    if draw(st.integers(0, 3)) == 3:
        del drawn[draw(st.sampled_from(sorted(drawn)))]
    return drawn


events = st.fixed_dictionaries(
    {
        "RequestType": mostly(
            st.sampled_from(["Create", "Update", "Delete"]), st.sampled_from(["create", ""]) | odd_values
        ),
        "StackId": st.just("arn:aws:cloudformation:us-east-1:123456789012:stack/genai-production-foundation/abc"),
        "RequestId": st.just("r-1"),
        "ResourceProperties": mostly(properties(), json_values),
    },
    optional={
        "LogicalResourceId": mostly(st.just("AccountSettingsAdopterMacieSession"), odd_values),
        "PhysicalResourceId": mostly(
            st.sampled_from([f"account-setting-{n}" for n in SETTING_NAMES]),
            hostile_text(20) | json_values | st.text(min_size=1025, max_size=1030),
        ),
        "OldResourceProperties": mostly(properties(), json_values),
    },
)


class Clock:
    """The invocation's time: each sleep spends it."""

    def __init__(self, seconds: float) -> None:
        self.left = self.total = seconds

    def sleep(self, seconds: float) -> None:
        self.left -= seconds

    def elapsed(self) -> float:
        return self.total - self.left


class TimedContext(FakeContext):
    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return int(self._clock.left * 1000)


ADOPT = handler.adopt_until_in_place


def paced(clock: Clock) -> Any:
    """adopt_until_in_place sleeping on, and reading, the test's clock (a denial is asked again for
    a while: refused throughout, the invocation still answers in time)."""
    return lambda *args, **kwargs: ADOPT(*args, **kwargs, sleep=clock.sleep, clock=clock.elapsed)


@pytest.fixture(scope="module")
def models() -> dict[str, ModelChecked]:
    """One model-checked client per service (making a botocore client is the slow part)."""
    return {
        service: ModelChecked(service)
        for service in ("xray", "logs", "application-signals", "bedrock", "macie2", "apigateway")
    }


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=mostly(events, json_values), refuse=st.booleans())
@example(event={"RequestType": "Create", "ResourceProperties": {"Setting": "x" * 50_000}}, refuse=False)
@example(event={"RequestType": "Create", "ResourceProperties": {"Setting": {"x": ["y" * 50_000]}}}, refuse=False)
@example(event={"RequestType": "Update", "ResourceProperties": "macie"}, refuse=False)
@example(event={"RequestType": "Create"}, refuse=False)
@example(event={"RequestType": "Delete", "PhysicalResourceId": "\ud800"}, refuse=False)
@example(event={"RequestType": "Update", "PhysicalResourceId": "\ud800", "ResourceProperties": {}}, refuse=False)
@example(event={"RequestType": "x" * 50_000}, refuse=False)
@example(event={"RequestType": "Delete", "PhysicalResourceId": {"a": 1}}, refuse=False)
@example(event={"RequestType": "Delete", "PhysicalResourceId": "x" * 5_000}, refuse=False)
def test_any_event_gets_an_answer_or_a_readable_reason_within_the_invocation(
    models: dict[str, ModelChecked], monkeypatch: pytest.MonkeyPatch, event: Any, refuse: bool
) -> None:
    called: list[str] = []

    def client(service: str) -> ModelChecked:
        called.append(service)
        model = models[service]
        model.fail_with = "AccessDeniedException" if refuse else None
        return model

    clock = Clock(120.0)
    monkeypatch.setattr(handler, "_client", client)
    monkeypatch.setattr(handler, "adopt_until_in_place", paced(clock))
    request = event.get("RequestType") if isinstance(event, dict) else None
    answer: Any = None
    error: Exception | None = None
    try:
        answer = handler.lambda_handler(event, TimedContext(clock))
    except Exception as raised:  # the Provider framework answers FAILED with its message
        error = raised
    if error is not None:
        assert request != "Delete", "a delete must never fail"
        # A refusal of the event or of its properties, the account's state, or AWS's answer: never
        # a KeyError or TypeError whose message would be a bare key or a Python detail.
        assert isinstance(error, ValueError | handler.NotInPlace | Refused | ClientError), repr(error)[:300]
        reason = str(error)
        note(f"failed: {type(error).__name__}")
        assert reason.strip(), repr(error)
        assert len(reason) <= MAX_REASON, reason[:300]
        return
    assert isinstance(answer, dict)
    note(f"answered {request}")
    if request == "Delete":
        assert not called
        sent = event.get("PhysicalResourceId")
        # Only an id CloudFormation could have sent is answered back (text of 1 to 1,024 characters).
        assert answer == ({"PhysicalResourceId": sent} if isinstance(sent, str) and 0 < len(sent) <= 1024 else {})
        return
    physical_id = answer["PhysicalResourceId"]
    assert isinstance(physical_id, str)
    assert 0 < len(physical_id) <= 1024
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in answer["Data"].items())
