"""Property: the gateway's Lambda tools (knowledge_search, legacy_tools) answer any arguments the
AgentCore gateway could deliver (any JSON the agent wrote, parsed as Lambda parses it, so lone
surrogates included) with a result or an error of the taxonomy (shared.tool_errors), never an
exception; and, with every service behind them healthy, never "upstream_unavailable": a bad
argument is the caller's invalid_argument (or not_found), not a failure to retry.

The legacy API is the loopback fake of test_legacy_tools.py; Retrieve is a fake that answers.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from knowledge_search import handler as knowledge
from legacy_tools import handler as legacy
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from shared.tool_errors import ADVICE
from shared.tools import TOOL_NAME_KEY
from tests.lambdas.conftest import FakeClientContext, FakeContext
from tests.lambdas.legacy_api import CLIENT_ID, CLIENT_SECRET, CUSTOMER_EMAIL, CUSTOMER_ID, serve
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import log_lines_are_never_lost  # noqa: F401 - every log line is written
from tests.lambdas.test_legacy_hostile_callers import BY_PATH
from tests.lambdas.test_legacy_tools import ARTICLES, PROFILE, configure

SETTINGS = dict(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Text as JSON can carry it: a lone surrogate ("\ud800") parses to a str UTF-8 cannot encode.
texts = st.text(max_size=40) | st.text(st.characters(codec=None, categories=["Cs", "Ll", "Nd"]), max_size=6)


def cursor_of(payload: str) -> str:
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


cursors = st.one_of(
    texts,
    st.sampled_from(["", "=", "e30", cursor_of('{"o": 1e999, "q": "x"}'), cursor_of("[" * 380 + "]" * 0)]),
    json_values.map(lambda value: cursor_of(json.dumps(value))),
    st.fixed_dictionaries({"o": st.integers() | json_values, "q": st.text(max_size=16)}).map(
        lambda value: cursor_of(json.dumps(value))
    ),
)


def argument_values(*examples: str) -> st.SearchStrategy[Any]:
    return st.sampled_from(examples) | texts | json_values


# Each tool's arguments: its own names with good, odd and wrong values, and names it does not take.
tool_arguments = {
    "find_orders": {
        "customer_email": argument_values(CUSTOMER_EMAIL, "a@b.c", "\ud800@x.y", "x@y.z" * 60),
        "status": argument_values("paid", "PAID", "a" * 40),
        "cursor": cursors,
    },
    "get_customer": {"customer_id": argument_values(CUSTOMER_ID, "..", ".", "a/b", "C-404")},
    "get_profile": {"customer_id": argument_values(CUSTOMER_ID, "..", "%2e%2e", "a/b", "\ud800", "x" * 300)},
    "list_articles": {"updated_since": argument_values("2026-01-01", "2026-1-1"), "cursor": cursors},
    "by_path": {"path": argument_values("/a/b", "..", "\ud800"), "cursor": cursors},
}
extra = st.dictionaries(texts, json_values, max_size=3)
tools = st.sampled_from(sorted(tool_arguments))


@st.composite
def calls(draw: st.DrawFn) -> tuple[str, Any]:
    name = draw(st.one_of(tools, tools, tools, texts))  # mostly a tool this function serves
    fields = tool_arguments.get(name, {})
    arguments: Any = draw(st.fixed_dictionaries({}, optional=fields)) | draw(extra)
    return name, draw(st.just(arguments) | json_values) if draw(st.integers(0, 9)) == 0 else arguments


def assert_taxonomy(result: Any) -> None:
    assert isinstance(result, dict), result
    json.dumps(result)  # what Lambda sends back: JSON it can serialize
    if "error" in result:
        error = result["error"]
        assert error["kind"] in ADVICE, error
        assert error["advice"] == ADVICE[error["kind"]]
        assert isinstance(error["message"], str)
        assert len(error["message"]) < 2000, error["message"]  # bounded, never the arguments whole
        assert error["kind"] != "upstream_unavailable", error  # every service here is healthy


@pytest.fixture(scope="module")
def legacy_api() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    with serve() as api:
        settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=1, backoff_seconds=0)
        client = LegacyClient(
            settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), sleep=lambda _: None, clock=lambda: 1000.0
        )
        patch.setattr(legacy, "client", lambda: client)
        configure(patch, {"get_profile": PROFILE, "list_articles": ARTICLES, "by_path": BY_PATH})
        yield
    patch.undo()
    for cached in (legacy.settings, legacy.served):
        cached.cache_clear()


@pytest.mark.usefixtures("legacy_api")
@settings(**SETTINGS)  # type: ignore[arg-type]
@given(call=calls(), qualified=st.booleans())
@example(call=("\ud800", {}), qualified=True)  # a tool name with a lone surrogate: its log line was lost
def test_legacy_tools_answer_any_arguments_within_the_taxonomy(call: tuple[str, Any], qualified: bool) -> None:
    name, arguments = call
    context = FakeContext(client_context=FakeClientContext({TOOL_NAME_KEY: f"orders___{name}" if qualified else name}))
    assert_taxonomy(legacy.lambda_handler(arguments, context))


class Retrieve:
    """Retrieve answering one passage, of the first classification its filter names, to any
    request botocore would send."""

    def retrieve(self, **request: Any) -> dict[str, Any]:
        json.dumps(request).encode()  # (what botocore would send: UTF-8 JSON)
        classification = request["retrievalConfiguration"]["vectorSearchConfiguration"]["filter"]["in"]["value"][0]
        passage = {"content": {"text": "A passage."}, "score": 0.5, "metadata": {"classification": classification}}
        return {"retrievalResults": [passage]}


@pytest.fixture(scope="module")
def knowledge_base() -> Iterator[None]:
    patch = pytest.MonkeyPatch()
    patch.setenv("KNOWLEDGE_BASE_ID", "KB1")
    knowledge.settings.cache_clear()
    patch.setattr(knowledge, "client", lambda: Retrieve())
    yield
    patch.undo()
    knowledge.settings.cache_clear()


search_arguments = st.fixed_dictionaries(
    {},
    optional={
        "query": argument_values("refund policy", " ", "q" * 1001),
        "max_results": st.integers(-3, 30) | json_values,
        "data_classifications": st.just(["public"]) | st.lists(texts, max_size=25) | json_values,
        "conversation_id": argument_values("conv-1", "c" * 300),
    },
)


@pytest.mark.usefixtures("knowledge_base")
@settings(**SETTINGS)  # type: ignore[arg-type]
@given(
    arguments=st.one_of(search_arguments, st.tuples(search_arguments, extra).map(lambda p: p[1] | p[0]), json_values)
)
def test_knowledge_search_answers_any_arguments_within_the_taxonomy(arguments: Any) -> None:
    result = knowledge.lambda_handler(arguments, FakeContext())
    assert_taxonomy(result)
    if "error" not in result:
        assert result["returned"] == 1
