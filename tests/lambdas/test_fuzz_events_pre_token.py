"""Property: the pre-token trigger, given any event Cognito could deliver (user attributes a user
partly controls: any text, lone surrogates, huge values, missing keys, wrong types; any group
list, response or version), answers in the event's own version with the claims of exactly one
configured group the user is in (the lowest precedence), or with none; never a claim from
anywhere else, and never a claim left over from the event's response.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from pre_token import handler as pre_token
from pre_token.contract import GatewayGroups, GroupClaims
from shared.claims import GROUP_CLAIM, KIND_CLAIM, TIER_CLAIM
from shared.runtime_config import DocumentReader
from tests.lambdas.conftest import FakeContext
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

GROUPS = GatewayGroups(
    groups={
        "platform-admins": GroupClaims(precedence=0, tier="internal", kind="internal"),
        "customer-gold": GroupClaims(precedence=10, tier="gold", kind="customer"),
        "customer-basic": GroupClaims(precedence=20, tier="basic", kind="customer"),
        "a": GroupClaims(precedence=20, tier="basic", kind="customer"),  # ties break on the name
    }
)
SETTINGS = dict(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def groups() -> Any:
    patch = pytest.MonkeyPatch()
    patch.setattr(pre_token, "reader", lambda: DocumentReader.static(GROUPS))
    yield
    patch.undo()


names = st.sampled_from([*GROUPS.groups, "Platform-Admins", "admins ", "", "\ud800"]) | hostile_text(12)
group_lists = st.lists(names | json_values, max_size=8) | json_values
attributes = st.dictionaries(
    hostile_text(20) | st.sampled_from(["email", "custom:gateway_group", GROUP_CLAIM, "cognito:groups"]),
    hostile_text(40) | st.just("x" * 100_000) | json_values,
    max_size=6,
)
# A response as the event might carry it, claims in the wrong version's key included.
stale = {GROUP_CLAIM: "platform-admins", TIER_CLAIM: "internal", KIND_CLAIM: "internal"}
responses = st.one_of(
    st.just({"claimsAndScopeOverrideDetails": None}),
    st.just({"claimsOverrideDetails": {"claimsToAddOrOverride": stale}}),
    st.just({"claimsAndScopeOverrideDetails": {"idTokenGeneration": {"claimsToAddOrOverride": stale}}}),
    json_values,
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    group_configuration = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "groupsToOverride": group_lists,
                "iamRolesToOverride": json_values,
                "preferredRole": json_values,
            },
        )
        | json_values
    )
    request = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "userAttributes": attributes | json_values,
                "groupConfiguration": st.just(group_configuration),
                "clientMetadata": json_values,
                "scopes": json_values,
            },
        )
        | json_values
    )
    event = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "version": st.sampled_from(["1", "2", "3", 1, 2, None, "", "\ud800"]) | json_values,
                "triggerSource": st.sampled_from(["TokenGeneration_Authentication", "TokenGeneration_RefreshTokens"])
                | hostile_text(10),
                "userName": hostile_text(20),
                "request": st.just(request),
                "response": responses,
            },
        )
    )
    return event


def expected(event: dict[str, Any]) -> dict[str, str]:
    """The claims of the configured group, among the user's string group names, of the lowest precedence."""
    listed = event.get("request")
    listed = listed.get("groupConfiguration") if isinstance(listed, dict) else None
    listed = listed.get("groupsToOverride") if isinstance(listed, dict) else None
    mine = (
        [name for name in listed if isinstance(name, str) and name in GROUPS.groups] if isinstance(listed, list) else []
    )
    if not mine:
        return {}
    chosen = min(mine, key=lambda name: (GROUPS.groups[name].precedence, name))
    group = GROUPS.groups[chosen]
    return {GROUP_CLAIM: chosen, TIER_CLAIM: group.tier, KIND_CLAIM: group.kind}


def every_claim(value: Any) -> list[dict[str, Any]]:
    """Every claimsToAddOrOverride anywhere in ``value``."""
    if isinstance(value, dict):
        found = [value["claimsToAddOrOverride"]] if "claimsToAddOrOverride" in value else []
        return found + [claims for child in value.values() for claims in every_claim(child)]
    if isinstance(value, list):
        return [claims for child in value for claims in every_claim(child)]
    return []


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=events())
@example(
    event={
        "version": "2",
        "request": {"groupConfiguration": {"groupsToOverride": ["customer-basic"]}},
        "response": {"claimsOverrideDetails": {"claimsToAddOrOverride": stale}},
    }
)
@example(
    event={
        "version": "1",
        "request": {"groupConfiguration": {"groupsToOverride": []}},
        "response": {"claimsAndScopeOverrideDetails": {"accessTokenGeneration": {"claimsToAddOrOverride": stale}}},
    }
)
def test_the_claims_are_only_ever_those_of_a_configured_group_the_user_is_in(event: dict[str, Any]) -> None:
    want = expected(event)
    response = pre_token.lambda_handler(event, FakeContext())["response"]
    assert isinstance(response, dict)
    if str(event.get("version")) == "1":
        assert response["claimsOverrideDetails"] == {"claimsToAddOrOverride": want}
    else:
        details = response["claimsAndScopeOverrideDetails"]
        assert details["idTokenGeneration"] == details["accessTokenGeneration"] == {"claimsToAddOrOverride": want}
    # Whatever the event's response held, no other claims travel back to Cognito.
    assert all(claims == want for claims in every_claim(response))
