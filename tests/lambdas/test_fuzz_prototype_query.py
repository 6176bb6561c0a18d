"""Property: the prototype query answers any request (headers, method, path, query string, body)
and any failure of its upstreams with JSON, never a 5xx the caller caused or a stack trace; a
refusal of the platform's own set-up (model access, a knowledge base or index that is not there)
is a 502, never a 4xx that blames the caller.

AWS is fakes that always answer, or fail as told.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError
from hypothesis import HealthCheck, event as event_note, example, given, settings, strategies as st

from prototype_query import handler
from shared.aws_errors import PLATFORM_CODES, THROTTLING_CODES
from tests.lambdas.conftest import FakeContext, function_url_event, http_result
from tests.lambdas.gateway_fixtures import HOSTILE_BODIES
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class AnyCall:
    """Answers every AWS call with a valid canned response, so valid requests succeed."""

    def retrieve_and_generate(self, **_: Any) -> dict[str, Any]:
        return {"output": {"text": "An answer."}, "citations": []}

    def retrieve(self, **_: Any) -> dict[str, Any]:
        return {"ResultItems": [{"Content": "A passage.", "DocumentURI": "s3://b/documents/a", "DocumentTitle": "A"}]}

    def converse(self, **_: Any) -> dict[str, Any]:
        return {"output": {"message": {"role": "assistant", "content": [{"text": "An answer [1]."}]}}}


class Failing(AnyCall):
    """AnyCall whose every call raises ``error`` (None: answers)."""

    error: Exception | None = None

    def _fail(self) -> None:
        if self.error is not None:
            raise self.error

    def retrieve_and_generate(self, **kwargs: Any) -> dict[str, Any]:
        self._fail()
        return super().retrieve_and_generate(**kwargs)

    def retrieve(self, **kwargs: Any) -> dict[str, Any]:
        self._fail()
        return super().retrieve(**kwargs)

    def converse(self, **kwargs: Any) -> dict[str, Any]:
        self._fail()
        return super().converse(**kwargs)


FAKE = Failing()


@pytest.fixture(scope="module", autouse=True)
def fake_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    prompt = tmp_path_factory.mktemp("prompt-layer") / "system_prompt.txt"  # the workload's, as its layer holds it
    prompt.write_text("Answer from the passages, briefly.", encoding="utf-8")
    patch = pytest.MonkeyPatch()
    for name, value in {
        "KNOWLEDGE_BASE_ID": "KB1",
        "GENERATION_MODEL_ARN": "arn:model",
        "KENDRA_INDEX_ID": "idx",
        "SYSTEM_PROMPT_FILE": str(prompt),
    }.items():
        patch.setenv(name, value)
    handler.settings.cache_clear()
    handler.prompt.cache_clear()
    patch.setattr(handler, "clients", lambda: handler.Clients(agent_runtime=FAKE, kendra=FAKE, bedrock=FAKE))
    yield
    FAKE.error = None
    patch.undo()
    handler.settings.cache_clear()
    handler.prompt.cache_clear()


def check(response: dict[str, Any]) -> Any:
    answer = http_result(response)
    assert isinstance(answer.body, dict), answer.body
    assert "Traceback" not in response["body"]
    if answer.status >= 400:
        assert answer.body["error"]
        assert answer.body["message"]
    return answer


request_like = st.fixed_dictionaries(
    {},
    optional={
        "question": st.one_of(st.text(max_size=1200), json_values),
        "source": st.one_of(st.sampled_from(["knowledge_base", "kendra"]), json_values),
        "extra": json_values,
    },
)
any_bodies = st.one_of(
    request_like.map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.just("x" * 200_000),
    st.sampled_from(list(HOSTILE_BODIES.values())),  # nesting, huge integers, NaN, surrogates
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=any_bodies, base64_encoded=st.booleans())
def test_any_body_gets_json_with_200_or_a_4xx_reason(body: str, base64_encoded: bool) -> None:
    FAKE.error = None
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


headers = st.dictionaries(
    st.sampled_from(["content-type", "content-length", "host", "x-forwarded-for", "cookie", "authorization"])
    | hostile_text(20),
    hostile_text(60) | st.sampled_from(["application/json", "text/plain", "x" * 5000, "-1"]),
    max_size=5,
)
bodies = st.one_of(
    st.fixed_dictionaries({"question": st.text(min_size=1, max_size=100)}).map(json.dumps),
    json_values.map(json.dumps),
    st.text(max_size=100),
    st.sampled_from(list(HOSTILE_BODIES.values())),
    st.none(),
)


# Mostly the function's one route, so the hostile headers, cookies and query strings reach it.
other_routes = st.tuples(
    st.sampled_from(["POST", "GET", "PUT", "OPTIONS", "post", ""]),
    st.sampled_from(["/query", "/query/", "/", "/Query", "/query\n"]) | hostile_text(30),
)
routes = st.sampled_from([True, True, True, False]).flatmap(
    lambda usual: st.just(("POST", "/query")) if usual else other_routes
)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(
    body=bodies,
    headers=headers | st.none(),
    route=routes,
    query=hostile_text(60),
    cookies=st.none() | st.lists(hostile_text(30), max_size=3),
    base64_encoded=st.booleans() | st.none(),
)
def test_any_request_gets_json_and_no_5xx(
    body: str | None,
    headers: dict[str, str] | None,
    route: tuple[str, str],
    query: str,
    cookies: list[str] | None,
    base64_encoded: bool | None,
) -> None:
    FAKE.error = None
    method, path = route
    event = function_url_event(body, path=path, method=method)
    event["headers"] = headers
    event["rawQueryString"] = query
    event["queryStringParameters"] = dict(part.partition("=")[::2] for part in query.split("&")) if query else None
    if cookies is not None:
        event["cookies"] = cookies
    event["isBase64Encoded"] = base64_encoded
    answer = check(handler.lambda_handler(event, FakeContext()))
    event_note(f"status {answer.status}")  # `pytest --hypothesis-show-statistics` shows the spread
    assert answer.status < 500, answer.body


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")


codes = st.sampled_from(
    [
        *sorted(PLATFORM_CODES | THROTTLING_CODES),
        *["ValidationException", "ConflictException", "InternalServerException", "ModelErrorException", "Weird"],
    ]
) | st.text(max_size=30)
failures = st.one_of(
    st.builds(client_error, codes, st.sampled_from([0, 400, 401, 403, 404, 408, 409, 424, 429, 500, 503, 599])),
    st.builds(client_error, codes, st.integers(-1, 1000)),
    st.just(EndpointConnectionError(endpoint_url="https://x")),
    st.just(ConnectTimeoutError(endpoint_url="https://x")),
)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(failure=failures, source=st.sampled_from(["knowledge_base", "kendra"]))
def test_an_upstream_failure_is_never_a_5xx_without_json_nor_the_platforms_fault_as_a_4xx(
    failure: Exception, source: str
) -> None:
    FAKE.error = failure
    try:
        answer = check(
            handler.lambda_handler(function_url_event(json.dumps({"question": "Q?", "source": source})), FakeContext())
        )
    finally:
        FAKE.error = None
    assert answer.status in (400, 401, 403, 404, 408, 409, 413, 422, 424, 429, 502), answer.body
    code = failure.response["Error"]["Code"] if isinstance(failure, ClientError) else ""
    if code in PLATFORM_CODES and answer.status != 429:  # (a 429 is throttling, whatever the code)
        assert (answer.status, answer.body["error"]) == (502, "upstream_error"), answer.body
    if 400 <= answer.status < 500 and answer.status != 429:
        assert answer.body["error"] == "upstream_rejected"
        assert code not in PLATFORM_CODES


class Answering(AnyCall):
    """AnyCall answering ``response`` (any shape) to every call."""

    response: Any = None

    def retrieve_and_generate(self, **_: Any) -> Any:
        return self.response

    def retrieve(self, **_: Any) -> Any:
        return self.response

    def converse(self, **_: Any) -> Any:
        return self.conversed

    conversed: Any = None


def shaped_like(example: dict[str, Any]) -> st.SearchStrategy[Any]:
    """``example`` with any of its values (at any depth) replaced by any JSON value."""
    if isinstance(example, dict):
        return st.fixed_dictionaries({key: shaped_like(value) | json_values for key, value in example.items()})
    if isinstance(example, list):
        return st.lists(shaped_like(example[0]) | json_values, max_size=3) if example else st.just([])
    return st.just(example) | json_values


knowledge_base_answers = shaped_like(
    {
        "output": {"text": "An answer."},
        "citations": [
            {
                "retrievedReferences": [
                    {"content": {"text": "A passage."}, "location": {"s3Location": {"uri": "s3://b/a"}}}
                ]
            }
        ],
    }
)
model_texts = st.sampled_from(["An answer [1].", "[2] and [0] and [-1]", "[" + "9" * 5000 + "]", "[١]", ""]) | st.text(
    max_size=30
)
converse_answers = st.builds(
    lambda text, shaped: shaped if text is None else {"output": {"message": {"content": [{"text": text}]}}},
    st.none() | model_texts,
    shaped_like({"output": {"message": {"content": [{"text": "An answer [1]."}]}}}),
)
kendra_answers = shaped_like(
    {"ResultItems": [{"Content": "A passage.", "DocumentURI": "s3://b/documents/a", "DocumentTitle": "A"}]}
)


@settings(**SETTINGS)  # type: ignore[arg-type]
@example(  # an answer citing a passage number int() will not read (4,301 digits and more)
    response={"ResultItems": [{"Content": "A passage."}]},
    conversed={"output": {"message": {"content": [{"text": "[" + "9" * 5000 + "]"}]}}},
    source="kendra",
)
@given(
    response=knowledge_base_answers | kendra_answers | json_values,
    conversed=converse_answers,
    source=st.sampled_from(["knowledge_base", "kendra"]),
)
def test_an_upstream_answer_of_any_shape_is_a_200_or_a_502_never_a_500(
    response: Any, conversed: Any, source: str
) -> None:
    """What RetrieveAndGenerate, Retrieve or Converse answer is the upstream's: an answer of the
    wrong shape is its failure (a 502), never the function's (a 500)."""
    answering = Answering()
    answering.response, answering.conversed = response, conversed
    clients = handler.Clients(agent_runtime=answering, kendra=answering, bedrock=answering)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(handler, "clients", lambda: clients)
        result = handler.lambda_handler(
            function_url_event(json.dumps({"question": "Q?", "source": source})), FakeContext()
        )
    answer = check(result)
    assert answer.status in (200, 502), answer.body
    if answer.status == 502:
        assert answer.body["error"] == "upstream_error", answer.body
