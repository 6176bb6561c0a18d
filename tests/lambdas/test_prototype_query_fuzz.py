"""Property: whatever arrives in the body, the answer is JSON and a 200 or a 4xx with a reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prototype_query import handler
from tests.lambdas.conftest import FakeContext, function_url_event, http_result
from tests.lambdas.gateway_fixtures import HOSTILE_BODIES
from tests.lambdas.strategies import json_values


class AnyCall:
    """Answers every AWS call with a valid canned response, so valid requests succeed."""

    def retrieve_and_generate(self, **_: Any) -> dict[str, Any]:
        return {"output": {"text": "An answer."}, "citations": []}

    def retrieve(self, **_: Any) -> dict[str, Any]:
        return {"ResultItems": [{"Content": "A passage.", "DocumentURI": "s3://b/documents/a", "DocumentTitle": "A"}]}

    def converse(self, **_: Any) -> dict[str, Any]:
        return {"output": {"message": {"role": "assistant", "content": [{"text": "An answer [1]."}]}}}


@pytest.fixture(scope="module", autouse=True)
def fake_aws() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    for name, value in {
        "KNOWLEDGE_BASE_ID": "KB1",
        "GENERATION_MODEL_ARN": "arn:model",
        "KENDRA_INDEX_ID": "idx",
    }.items():
        patch.setenv(name, value)
    handler.settings.cache_clear()
    fake = AnyCall()
    patch.setattr(handler, "clients", lambda: handler.Clients(agent_runtime=fake, kendra=fake, bedrock=fake))
    yield
    patch.undo()
    handler.settings.cache_clear()


request_like = st.fixed_dictionaries(
    {},
    optional={
        "question": st.one_of(st.text(max_size=1200), json_values),
        "source": st.one_of(st.sampled_from(["knowledge_base", "kendra"]), json_values),
        "extra": json_values,
    },
)
bodies = st.one_of(
    request_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.just("x" * 200_000),
    st.sampled_from(list(HOSTILE_BODIES.values())),  # nesting, huge integers, NaN, surrogates
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, base64_encoded=st.booleans())
def test_any_body_gets_json_with_200_or_a_4xx_reason(body: str, base64_encoded: bool) -> None:
    event = function_url_event(body)
    event["isBase64Encoded"] = base64_encoded  # the body as it came: mostly not base64 at all
    result = http_result(handler.lambda_handler(event, FakeContext()))
    assert result.status in (200, 422), (result.status, result.body)
    assert isinstance(result.body, dict)
    if result.status == 200:
        assert result.body["answer"]
    else:
        assert result.body["error"] == "invalid_request"
        assert result.body["message"]
