"""Property: any body, claims or path on any route gets a JSON answer, never a 5xx.

AWS is replaced by fakes that always answer, so a request that passes validation succeeds.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ai_gateway import handler
from tests.lambdas.conftest import FakeContext, http_result
from tests.lambdas.gateway_fixtures import (
    GOLD,
    HOSTILE_BODIES,
    POLICY,
    AnsweringBedrock,
    environment,
    model_only,
    rest_event,
)
from tests.lambdas.strategies import json_values


@pytest.fixture(scope="module", autouse=True)
def fakes() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    deps = model_only(AnsweringBedrock())
    patch.setattr(handler, "dependencies", lambda: deps)
    patch.setattr(handler, "policy", lambda: POLICY)
    environment(patch)
    yield
    patch.undo()
    handler.settings.cache_clear()


messages = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "system"]) | json_values,
            "content": st.text(max_size=50) | json_values,
        },
    ),
    max_size=4,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "messages": messages | json_values,
            "model": st.sampled_from(["amazon.nova-pro-v1:0", "x"]) | json_values,
            "session_id": st.sampled_from(["session-0001", "bad id"]) | json_values,
        },
    ).map(json.dumps),
    st.fixed_dictionaries(
        {},
        optional={"material": st.text(max_size=100) | json_values, "instructions": st.text(max_size=50) | json_values},
    ).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.just(json.dumps({"messages": [{"role": "user", "content": "x" * 25_000}]})),
    st.sampled_from(list(HOSTILE_BODIES.values())),  # nesting, huge integers, NaN, surrogates
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)
claims = st.one_of(
    st.just(GOLD),
    st.dictionaries(st.sampled_from(["user", "group", "tier", "kind"]), st.text(max_size=20), max_size=4),
)
routes = st.sampled_from(
    [
        ("POST", "/v1/chat"),
        *[("POST", f"/v1/outputs/{name}") for name in POLICY.outputs],
        ("POST", "/v1/outputs/nope"),
        ("GET", "/v1/usage"),
        ("PUT", "/v1/chat"),
    ]
) | st.tuples(st.sampled_from(["POST", "GET"]), st.text(max_size=30).map(lambda s: "/v1/outputs/" + s))


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    route=routes,
    body=bodies,
    authorizer=claims,
    headers=st.dictionaries(
        st.sampled_from(["Idempotency-Key", "X-Evaluation-Case", "Authorization", "X-Other"]),
        st.text(max_size=40) | st.sampled_from(["client-key-0001\n", "case-1\n", "Bearer x\n"]),
        max_size=3,
    ),
    base64_encoded=st.booleans(),
)
def test_every_route_answers_json_and_never_a_5xx(
    route: tuple[str, str], body: str, authorizer: dict[str, str], headers: dict[str, str], base64_encoded: bool
) -> None:
    method, path = route
    event = rest_event(method, path, body, authorizer=authorizer, headers=headers)
    event["isBase64Encoded"] = base64_encoded  # the body as it came: mostly not base64 at all
    result = http_result(handler.lambda_handler(event, FakeContext()))
    assert result.status < 500, result.body
    assert isinstance(result.body, dict)
    if result.status >= 400:
        assert result.body["error"]
        assert result.body["message"]
