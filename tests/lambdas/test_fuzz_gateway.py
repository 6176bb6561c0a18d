"""Property: every route of the gateway, buffered (lambda_handler) and streamed (stream_handler),
answers whatever a client sends (body, headers, query string, path) with JSON and a 2xx or a 4xx
with a reason, never a 5xx, a stack trace or an exception.

test_fuzz_gateway_bodies.py covers the bodies of /v1/chat and /v1/outputs; this covers the routes it
does not (chat completions, models, jobs, usage), the streaming entry, headers and query strings
of any shape, and path segments as a client may percent-encode them. The authorizer's context is
API Gateway's (trusted): one of the config's groups. AWS is fakes that always answer.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, example, given, settings, strategies as st

from ai_gateway import handler, jobs
from ai_gateway.jobs_contract import GatewayJobsSettings, JobStatus
from ai_gateway.ledger import Admission
from ai_gateway.models import Caller
from ai_gateway.stream_runtime import StreamedResponse
from tests.lambdas.bedrock_fakes import FakeEventStream, answer
from tests.lambdas.conftest import FakeContext, _CurrentStdout, http_result
from tests.lambdas.gateway_fixtures import (
    GOLD,
    HOSTILE_BODIES,
    LITE,
    POLICY,
    PRO,
    AnsweringBedrock,
    environment,
    model_only,
    rest_event,
)
from tests.lambdas.strategies import json_values


def hostile_text(max_size: int) -> st.SearchStrategy[str]:
    """Any text, and text of lone surrogates, controls and spaces (what JSON can carry and
    hypothesis's text() leaves out: a lone surrogate)."""
    odd = st.characters(codec=None, categories=["Cs", "Cc", "Zs", "Lo"])
    return st.text(max_size=max_size) | st.text(odd, max_size=min(max_size, 8))


SETTINGS = dict(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class StreamingBedrock(AnsweringBedrock):
    """AnsweringBedrock that also streams: ``texts`` as the answer, in both."""

    texts: tuple[str, ...] = ("Hi", ".")

    def converse(self, **_: Any) -> dict[str, Any]:
        return {
            "output": {"message": {"content": [{"text": "".join(self.texts)}]}},
            "usage": {"inputTokens": 5, "outputTokens": 2},
        }

    def converse_stream(self, **_: Any) -> dict[str, Any]:
        return {"stream": FakeEventStream(answer(list(self.texts)), [])}


BEDROCK = StreamingBedrock()


class MemoryJobs:
    """The jobs table and worker in memory: what jobs.submit and jobs.read call."""

    def __init__(self) -> None:
        self.items: dict[str, jobs.Job] = {}

    def get(self, job: str) -> jobs.Job | None:
        return self.items.get(job)

    def create(self, job: jobs.Job, **_: Any) -> bool:
        return self.items.setdefault(job.job_id, job) is job

    def start(self, job: str) -> None: ...

    def __getattr__(self, name: str) -> Any:  # anything else the store does: nothing
        return lambda *_, **__: None


@pytest.fixture(scope="module", autouse=True)
def log_lines_are_never_lost() -> Iterator[None]:
    """A log line Lambda's UTF-8 stdout cannot take (a lone surrogate, which JSON can carry) fails
    the test: logging would print a traceback to stderr and drop the line; pytest's capture would
    take it. The fuzz tests of the other entry points import it."""
    patch = pytest.MonkeyPatch()

    def utf8_only(self: _CurrentStdout, text: str) -> int:
        text.encode()
        return sys.stdout.write(text)

    def reraise(self: logging.Handler, record: logging.LogRecord) -> None:
        raise  # (what emit was handling)

    patch.setattr(_CurrentStdout, "write", utf8_only)
    patch.setattr(logging.Handler, "handleError", reraise)
    yield
    patch.undo()


@pytest.fixture(scope="module", autouse=True)
def fakes() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    deps = model_only(BEDROCK)
    patch.setattr(handler, "dependencies", lambda: deps)
    patch.setattr(handler, "policy", lambda: POLICY)
    environment(patch)
    memory = MemoryJobs()
    job_settings = GatewayJobsSettings.model_construct(
        jobs_table="jobs",
        worker_function="worker",
        max_job_bytes=350_000,
        worker_timeout_seconds=900,
        max_event_age_seconds=3600,
        job_retention_seconds=86_400,
        async_timeouts_seconds={},
    )
    fake = jobs.Jobs(memory, memory, job_settings)  # type: ignore[arg-type]
    patch.setattr(jobs, "environment", lambda: fake)
    # One job this caller's id can find, succeeded, and one of another user.
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    for caller in (Caller(user=GOLD["user"], group=GOLD["group"]), Caller(user="someone-else", group=GOLD["group"])):
        job = jobs.job_id(caller, "req-00000001")
        memory.items[job] = jobs.Job(
            job_id=job,
            status=JobStatus.SUCCEEDED,
            caller=caller,
            request_id="req-00000001",
            output_type="summary",
            created_at=now,
            start_by=now,
            finish_by=now,
            admission=Admission("req-00000001", 1, 1, 10, now, False, "2026-12"),
            limit_seconds=900,
            result={"output": "done"},
        )
    yield
    patch.undo()
    handler.settings.cache_clear()


KNOWN_JOB = jobs.job_id(Caller(user=GOLD["user"], group=GOLD["group"]), "req-00000001")

messages = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | json_values,
            "content": st.text(max_size=40) | st.just([{"type": "text", "text": "hi"}]) | json_values,
            "name": st.text(max_size=70) | json_values,
        },
    ),
    max_size=4,
)
completion = st.fixed_dictionaries(
    {"messages": st.just([{"role": "user", "content": "Hello"}]) | messages},
    optional={
        "model": st.sampled_from([PRO, LITE, "gpt-4o", ""]) | json_values,
        "stream": st.booleans() | json_values,
        "stream_options": st.just({"include_usage": True}) | json_values,
        "max_tokens": st.integers(-5, 10**20) | json_values,
        "max_completion_tokens": st.integers(-5, 5000),
        "temperature": st.floats() | json_values,
        "top_p": st.floats(),
        "stop": st.text(max_size=10) | st.lists(st.text(max_size=10), max_size=6) | json_values,
        "n": st.integers(-1, 3) | json_values,
        "response_format": st.just({"type": "text"}) | json_values,
        "metadata": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=20) | json_values,
        "output_type": st.sampled_from(["chat", "summary", "report", "nope", "Bad"]) | json_values,
        "session_id": st.sampled_from(["session-0001", "bad id"]) | json_values,
        "user": st.text(max_size=300),
        "tools": json_values,
    },
)
# Valid ones with any text: what reaches the flow, the model and the stream.
valid_completion = st.fixed_dictionaries(
    {
        "messages": st.tuples(
            st.lists(st.text(min_size=1, max_size=30), max_size=1),  # a system message, or none
            st.lists(st.tuples(st.text(max_size=30).map(lambda t: t + "?"), st.text(max_size=30)), max_size=2),
        ).map(
            lambda parts: [
                *({"role": "system", "content": text} for text in parts[0]),
                *(
                    turn
                    for asked, answered in parts[1]
                    for turn in ({"role": "user", "content": asked}, {"role": "assistant", "content": answered})
                ),
                {"role": "user", "content": "Hello"},
            ]
        )
    },
    optional={
        "model": st.sampled_from([PRO, LITE]),
        "stream": st.booleans(),
        "max_tokens": st.integers(1, 800),
        "temperature": st.floats(0, 1),
        "stop": st.lists(st.text(min_size=1, max_size=10), max_size=4),
        "output_type": st.sampled_from(["chat", "summary"]),
        "session_id": st.just("session-0001"),
    },
)
bodies = st.one_of(
    completion.map(json.dumps),
    valid_completion.map(json.dumps),
    valid_completion.map(lambda body: json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})),
    completion.map(lambda body: json.dumps(body) + " ").map(
        lambda text: text.replace('"messages"', '"messages": [], "messages"', 1)  # a duplicated key
    ),
    st.just('{"messages": [{"role": "user", "content": "hi"}], "temperature": 1e400}'),
    st.just('{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1e400, "top_p": NaN}'),
    json_values.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
    st.sampled_from(list(HOSTILE_BODIES.values())),  # nesting, huge integers, NaN, surrogates
    st.none(),
)
# A path segment as a client may send it: raw, or percent-encoded (API Gateway hands the REST
# path on decoded, but a client may encode twice, or a misrouted event may not be decoded).
segments = st.one_of(
    st.sampled_from([PRO, LITE, "gpt-4o", KNOWN_JOB, "0" * 32, "", "..", "%2F", "%00", "a\n", "a b"]),
    hostile_text(40),
    st.text(max_size=40).map(lambda s: quote(s, safe="")),
    st.text(max_size=20).map(lambda s: quote(quote(s, safe=""), safe="")),
)
routes = st.one_of(
    st.sampled_from(  # each route with its own method (chat completions most: it reads the most)
        [
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/chat/completions"),
            ("POST", "/v1/chat"),
            ("POST", "/v1/outputs/summary"),
            ("GET", "/v1/models"),
            ("GET", "/v1/usage"),
            ("GET", f"/v1/models/{PRO}"),
            ("GET", f"/v1/jobs/{KNOWN_JOB}"),
        ]
    ),
    st.tuples(
        st.sampled_from(["GET", "POST"]),
        st.tuples(st.sampled_from(["/v1/models/", "/v1/jobs/", "/v1/outputs/"]), segments).map("".join),
    ),
    st.tuples(
        st.sampled_from(["POST", "GET", "PUT", "DELETE", "OPTIONS", "HEAD", "get", ""]),
        st.sampled_from(["/v1/chat", "/v1/chat/completions", "/v1/models", "/v1/chat/", "/"]) | hostile_text(30),
    ),
)
header_names = st.sampled_from(
    [
        "Idempotency-Key",
        "X-Session-Id",
        "X-Output-Type",
        "X-Evaluation-Case",
        "Prefer",
        "Authorization",
        "Content-Type",
        "Accept",
        "idempotency-key",
        "PREFER",
    ]
) | hostile_text(20)
header_values = st.one_of(
    hostile_text(60),
    st.sampled_from(
        [
            "respond-async",
            "respond-async, wait=10",
            "client-key-0001",
            "client-key-0001\n",
            "session-0001",
            "summary",
            "report",
            "case-1",
            "Bearer x",
            "Bearer " + "a" * 5000,
            "x" * 5000,
        ]
    ),
)
queries = st.none() | st.dictionaries(hostile_text(20), hostile_text(40), max_size=4)
claims = st.sampled_from(
    [
        GOLD,
        {"user": "admin-1", "group": "platform-admins", "tier": "internal", "kind": "internal"},
        {"user": "user-2", "group": "customer-basic", "tier": "basic", "kind": "customer"},
    ]
)


def event(
    route: tuple[str, str],
    body: str | None,
    headers: dict[str, str] | None,
    query: dict[str, str] | None,
    authorizer: dict[str, str],
    base64_encoded: bool | None,
    with_parameters: bool,
) -> dict[str, Any]:
    method, path = route
    built = rest_event(method, path, body, authorizer=authorizer, headers=headers, request_id="api-req-0001")
    if headers is None:  # a request with no headers at all: API Gateway sends null
        built["headers"] = built["multiValueHeaders"] = None
    else:  # each also twice, the first value another (Powertools reads the last)
        built["multiValueHeaders"] = {name: ["x", value] for name, value in headers.items()}
    built["queryStringParameters"] = query
    built["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    built["isBase64Encoded"] = base64_encoded  # the body as it came: mostly not base64 at all
    if with_parameters:  # what API Gateway's resource would have read from the path
        last = path.rpartition("/")[2]
        built["pathParameters"] = {"model": last, "id": last, "type": last}
    return built


def check(result: dict[str, Any]) -> None:
    answer = http_result(result)
    assert answer.status < 500, answer.body
    assert isinstance(answer.body, dict), answer.body
    if answer.status >= 400:
        error = answer.body["error"]
        if isinstance(error, dict):  # OpenAI's shape
            assert error["message"]
            assert error["type"]
        else:
            assert error
            assert answer.body["message"]
    assert "Traceback" not in result["body"]


common = dict(
    route=routes,
    body=bodies,
    headers=st.dictionaries(header_names, header_values, max_size=4) | st.none(),
    query=queries,
    authorizer=claims,
    base64_encoded=st.booleans() | st.none(),
    with_parameters=st.booleans(),
)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(**common)
def test_lambda_handler_answers_any_request_with_json_and_no_5xx(**request: Any) -> None:
    check(handler.lambda_handler(event(**request), FakeContext()))


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(**common)
def test_stream_handler_answers_any_request_with_json_or_a_stream_and_no_5xx(**request: Any) -> None:
    response = handler.stream_handler(event(**request), FakeContext())
    if isinstance(response, StreamedResponse):
        assert response.status == 200
        sent = b"".join(response.body).decode()
        assert sent.startswith("data: "), sent
        assert sent.rstrip().endswith("data: [DONE]"), sent
        return
    check(response)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(segment=segments, route=st.sampled_from(["/v1/models/", "/v1/jobs/"]), with_parameters=st.booleans())
@example(segment="/", route="/v1/models/", with_parameters=False)  # "/v1/models//" is no model, nor the list
@example(segment="\ud800", route="/v1/models/", with_parameters=False)  # a lone surrogate: no model either
@example(segment="\n", route="/v1/models/", with_parameters=False)  # "$" matched before it: the list
def test_a_path_parameter_is_found_or_a_404(segment: str, route: str, with_parameters: bool) -> None:
    assume(segment)  # "/v1/models/" is the list ("/" ends a path as nothing would)
    request = event(("GET", route + segment), None, {}, None, GOLD, False, with_parameters)
    answer = http_result(handler.lambda_handler(request, FakeContext()))
    found = {PRO, LITE} if route == "/v1/models/" else {KNOWN_JOB}
    assert answer.status == (200 if segment in found else 404), (segment, answer.body)


completion_bodies = st.one_of(
    valid_completion.map(json.dumps),
    valid_completion.map(lambda body: json.dumps({**body, "stream": True, "stream_options": {"include_usage": True}})),
    completion.map(json.dumps),
)


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(
    body=completion_bodies,
    headers=st.dictionaries(header_names, header_values, max_size=3),
    authorizer=claims,
    streaming=st.booleans(),
)
def test_chat_completions_answer_or_refuse_in_openais_shape(
    body: str, headers: dict[str, str], authorizer: dict[str, str], streaming: bool
) -> None:
    request = event(("POST", "/v1/chat/completions"), body, headers, None, authorizer, False, False)
    response = (handler.stream_handler if streaming else handler.lambda_handler)(request, FakeContext())
    if isinstance(response, StreamedResponse):
        assert response.status == 200
        assert b"".join(response.body).decode().rstrip().endswith("data: [DONE]")
        return
    check(response)
    answer = http_result(response)
    if answer.status >= 400:
        assert set(answer.body["error"]) == {"message", "type", "param", "code"}, answer.body
    else:
        assert answer.body["object"] == "chat.completion"


def test_a_stream_the_client_left_is_metered_under_its_own_request_not_the_next(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The runtime closes a stream's body when the client goes away: the body settles its delivery
    then. Flushed before that, its metrics waited for the next invocation's flush, under that
    request's group (or were lost with the environment)."""
    body = {"messages": [{"role": "user", "content": "Hello"}], "stream": True}
    request = event(("POST", "/v1/chat/completions"), json.dumps(body), {}, None, GOLD, False, False)
    BEDROCK.texts = ("First sentence here. ", "y" * 300 + ". ", "Third one. ", "z" * 600 + ". ", "end.")
    try:
        response = handler.stream_handler(request, FakeContext())
        assert isinstance(response, StreamedResponse)
        next(response.body)
        next(response.body)
        capsys.readouterr()
        response.body.close()  # type: ignore[attr-defined]  # a generator: what the runtime loop closes when the client goes
        closed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    finally:
        BEDROCK.texts = StreamingBedrock.texts
    names = {m["Name"] for doc in closed for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"Outputs", "Units"} <= names, names  # delivered (the caller has part of the output), flushed now
    assert all(doc.get("Group") in (None, GOLD["group"]) for doc in closed)
    other = {**GOLD, "group": "customer-basic", "user": "user-9"}
    capsys.readouterr()
    handler.stream_handler(event(("GET", "/v1/usage"), None, {}, None, other, False, False), FakeContext())
    later = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    leaked = {m["Name"] for doc in later for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert not leaked & {"Outputs", "Units", "EstimatedCostUsd"}, leaked


@settings(**SETTINGS)  # type: ignore[arg-type]
@example(texts=["\ud800"], streaming=True)  # a lone surrogate once raised UnicodeEncodeError mid-stream
@given(
    texts=st.lists(
        hostile_text(20) | st.sampled_from(["\ud83d", "\ude00", "</s>", "data: [DONE]\n\n"]), min_size=1, max_size=4
    ),
    streaming=st.booleans(),
)
def test_whatever_the_model_answers_the_caller_gets_json_or_a_utf8_stream(texts: list[str], streaming: bool) -> None:
    """The model is an upstream like any other: text it streams (a lone surrogate included, which
    Bedrock's JSON events can carry) is never a 500, nor a stream cut off by an exception; the
    stream is UTF-8, each event JSON, and it ends with [DONE] or the upstream's error event."""
    body = {"messages": [{"role": "user", "content": "Hello"}], "stream": streaming}
    request = event(("POST", "/v1/chat/completions"), json.dumps(body), {}, None, GOLD, False, False)
    BEDROCK.texts = tuple(texts)
    try:
        response = handler.stream_handler(request, FakeContext())
        if isinstance(response, StreamedResponse):
            sent = b"".join(response.body).decode()  # UTF-8 throughout
            events = [line.removeprefix("data: ") for line in sent.rstrip().split("\n\n")]
            for data in events[:-1]:
                json.loads(data)
            last = sent.rstrip().rpartition("\n\n")[2]
            if last != "data: [DONE]":  # or the upstream's failure as OpenAI's error event
                assert json.loads(last.removeprefix("data: "))["error"]["code"] == "upstream_error", sent
            return
    finally:
        BEDROCK.texts = StreamingBedrock.texts
    answer = http_result(response)
    assert isinstance(answer.body, dict)
    if answer.status != 200:  # no text at all is the model's failure, not the caller's
        assert (answer.status, answer.body["error"]["code"]) == (502, "upstream_error"), answer.body
