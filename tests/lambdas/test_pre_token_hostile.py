"""The pre-token trigger against events of odd shapes, and against a V1_0 event.

An odd shape counts as no groups, the least privilege the trigger gives: no claims, which the
gateway's authorizer refuses. The answer is in the event's own version, since a V1_0 trigger
reads only ``claimsOverrideDetails``.
"""

from __future__ import annotations

from typing import Any

import pytest

from pre_token import handler as pre_token
from pre_token.contract import GatewayGroups, GroupClaims
from shared.runtime_config import DocumentReader
from tests.lambdas.conftest import FakeContext

# "a" is there so that a string read letter by letter would find a group.
GROUPS = GatewayGroups(
    groups={
        "admins": GroupClaims(precedence=0, tier="internal", kind="internal"),
        "a": GroupClaims(precedence=5, tier="basic", kind="customer"),
    }
)
ADMIN = {"gateway_group": "admins", "gateway_tier": "internal", "gateway_kind": "internal"}


@pytest.fixture(autouse=True)
def groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pre_token, "reader", lambda: DocumentReader.static(GROUPS))


def v2_claims(event: dict[str, Any]) -> dict[str, Any]:
    details = pre_token.lambda_handler(event, FakeContext())["response"]["claimsAndScopeOverrideDetails"]
    assert details["idTokenGeneration"] == details["accessTokenGeneration"]
    claims: dict[str, Any] = details["accessTokenGeneration"]["claimsToAddOrOverride"]
    return claims


@pytest.mark.parametrize(
    "request_",
    [
        None,
        "admins",
        {"groupConfiguration": None},
        {"groupConfiguration": "admins"},
        {"groupConfiguration": {"groupsToOverride": None}},
        {"groupConfiguration": {"groupsToOverride": "admins"}},  # not a list: never read as letters
        {"groupConfiguration": {"groupsToOverride": {"admins": 1}}},
        {"groupConfiguration": {"groupsToOverride": [{"x": 1}]}},
        {"groupConfiguration": {"groupsToOverride": [["admins"]]}},
    ],
)
def test_an_odd_event_counts_as_no_groups(request_: Any) -> None:
    assert v2_claims({"version": "2", "request": request_, "response": {}}) == {}


@pytest.mark.parametrize(("event", "kind"), [(None, "NoneType"), (["admins"], "list"), ("admins", "str"), (7, "int")])
def test_an_event_that_is_not_an_object_fails_the_trigger_naming_its_type_only(event: Any, kind: str) -> None:
    """Not Cognito's: the invocation fails (no token is issued), with a typed error, not an
    AttributeError from inside the handler."""
    with pytest.raises(pre_token.NotATriggerEventError) as raised:
        pre_token.lambda_handler(event, FakeContext())
    assert str(raised.value) == f"not a Cognito token generation event: {kind}, not an object"


def test_non_string_entries_are_ignored_and_the_rest_still_count() -> None:
    event = {"version": "2", "request": {"groupConfiguration": {"groupsToOverride": [{"x": 1}, 7, "admins"]}}}
    assert v2_claims(event) == ADMIN


@pytest.mark.parametrize("response", [None, "x", []])
def test_an_odd_response_is_replaced(response: Any) -> None:
    event = {"version": "2", "request": {"groupConfiguration": {"groupsToOverride": ["admins"]}}, "response": response}
    assert v2_claims(event) == ADMIN


@pytest.mark.parametrize("version", ["2", "3", None])
def test_a_v2_or_v3_event_gets_both_tokens(version: str | None) -> None:
    event = {"version": version, "request": {"groupConfiguration": {"groupsToOverride": ["admins"]}}, "response": {}}
    assert v2_claims(event) == ADMIN


def test_a_v1_event_is_answered_in_v1() -> None:
    event = {
        "version": "1",
        "triggerSource": "TokenGeneration_Authentication",
        "request": {"groupConfiguration": {"groupsToOverride": ["admins"]}},
        "response": {"claimsOverrideDetails": None},
    }
    response = pre_token.lambda_handler(event, FakeContext())["response"]
    assert response == {"claimsOverrideDetails": {"claimsToAddOrOverride": ADMIN}}
