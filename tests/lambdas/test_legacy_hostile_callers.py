"""Hostile callers of the legacy tools: a forged cursor, a flood of unknown arguments, a huge tool
name, a client context the gateway never sends. Each is an invalid_argument answer of bounded size,
decided before any call to the service, never an exception or "the tool failed unexpectedly".
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from legacy_tools import handler
from legacy_tools.adapters import TOOLS, Shape
from legacy_tools.contract import CallArgument, SingleCallTool
from legacy_tools.shaping import encode_cursor
from shared.bodies import MAX_FIELD_CHARS, MAX_OBJECT_KEYS, MAX_PROBLEMS
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from shared.tool_errors import ToolError
from tests.lambdas.conftest import FakeClientContext, FakeContext
from tests.lambdas.legacy_api import CLIENT_ID, CLIENT_SECRET, CUSTOMER_EMAIL, FIELDS, LegacyApi, serve
from tests.lambdas.test_legacy_tools import ARTICLES, configure

SHAPE = Shape(top_k=20, byte_budget=4000, fields=FIELDS)
NOT_OURS = "cursor: not a cursor this tool returned"


def forged(payload: bytes) -> str:
    """A cursor as encode_cursor writes one (unpadded URL-safe base64 of JSON), holding ``payload``."""
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


# Numbers JSON parses to a float no int() takes (json.loads reads Infinity and 1e999 as inf), and
# values of the wrong type: none is an offset this tool wrote.
FORGED = {
    "infinity": forged(b'{"o":Infinity,"q":"x"}'),
    "overflowing exponent": forged(b'{"o":1e999,"q":"x"}'),
    "minus infinity": forged(b'{"o":-Infinity,"q":"x"}'),
    "a float": forged(b'{"o":1.5,"q":"x"}'),
    "a boolean": forged(b'{"o":true,"q":"x"}'),
    "not an object": forged(b"[1]"),
    # A cursor this tool wrote, written otherwise: the decoder alone would take each.
    "characters appended": encode_cursor(0, {"tool": "t"}) + "!*~",
    "characters inserted": encode_cursor(0, {"tool": "t"}).replace("J", "J.", 1),
    "padded": encode_cursor(0, {"tool": "t"}) + "==",
    "spaced JSON": forged(b'{"o": 0, "q": "x"}'),
    "another key": forged(b'{"o":0,"q":"x","admin":true}'),
    "keys reordered": forged(b'{"q":"x","o":0}'),
}


@pytest.fixture
def api() -> Iterator[LegacyApi]:
    with serve() as running:
        yield running


@pytest.fixture
def client(api: LegacyApi) -> LegacyClient:
    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=1, backoff_seconds=0)
    return LegacyClient(
        settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), sleep=lambda _: None, clock=lambda: 1000.0
    )


@pytest.fixture
def served(client: LegacyClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch, {"list_articles": ARTICLES, "by_path": BY_PATH})


def refusal(arguments: dict[str, Any], client: LegacyClient) -> ToolError:
    with pytest.raises(ToolError) as failure:
        TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL, **arguments})
    return failure.value


@pytest.mark.parametrize("cursor", FORGED.values(), ids=FORGED.keys())
def test_a_forged_cursor_is_refused_before_the_chained_calls(client: LegacyClient, api: LegacyApi, cursor: str) -> None:
    error = refusal({"cursor": cursor}, client)
    assert (error.kind, error.message) == ("invalid_argument", NOT_OURS)
    assert api.requests == []


@pytest.mark.usefixtures("served")
@pytest.mark.parametrize("cursor", FORGED.values(), ids=FORGED.keys())
def test_a_forged_cursor_is_refused_before_a_single_call(api: LegacyApi, cursor: str) -> None:
    result = handler.run("list_articles", {"cursor": cursor})
    assert result["error"]["kind"] == "invalid_argument"
    assert result["error"]["message"] == NOT_OURS
    assert api.requests == []


def test_a_flood_of_unknown_arguments_is_listed_a_few_at_a_time_with_short_names(
    client: LegacyClient, api: LegacyApi
) -> None:
    """250 unknown keys of a kilobyte each (under the bound on keys): 250 KB in the message if every
    one were named whole."""
    flood = {f"k{i:04}{'x' * 1000}": 1 for i in range(250)}
    message = refusal(flood, client).message
    assert message.endswith(f"; and {250 - MAX_PROBLEMS} more")
    assert message.count("Extra inputs are not permitted") == MAX_PROBLEMS
    assert len(message) < MAX_PROBLEMS * (MAX_FIELD_CHARS + 40) + 20
    assert f"k0000{'x' * (MAX_FIELD_CHARS - 6)}…" in message
    assert api.requests == []


def test_more_arguments_than_any_call_holds_are_refused_before_they_are_validated(
    client: LegacyClient, api: LegacyApi
) -> None:
    """The tools gateway's interceptor refuses them before the target is called; the function
    counts them too, so a call that reached it another way cannot hold an error per key (600,000
    unknown keys took a 256 MB tool function to 999 MB)."""
    refused = refusal({f"k{i}": 1 for i in range(MAX_OBJECT_KEYS)}, client)  # and customer_email
    assert (refused.kind, refused.message) == (
        "invalid_argument",
        f"arguments: an object has {MAX_OBJECT_KEYS + 1} keys; at most {MAX_OBJECT_KEYS} are read",
    )
    assert api.requests == []


# A single-call tool may name an argument "path" (or "body"): it is named as such, not as the
# request body an API Gateway error would mean.
BY_PATH = SingleCallTool(
    description="A document by its path.",
    path="/v2/documents",
    arguments={"path": CallArgument(description="The document's path")},
    fields={"id": "data.id"},
)


# An integer argument is an integer: what pydantic's lax mode would turn into one is refused.
RECENT = SingleCallTool(
    description="Recent orders.",
    path="/v2/orders",
    arguments={"limit": CallArgument(description="How many", type="integer", minimum=1, maximum=50)},
    records="items",
    fields={"id": "id"},
)


@pytest.mark.parametrize("sent", [True, "7", 7.0, " 7 "])
def test_an_integer_argument_of_another_json_type_is_refused_before_any_call(
    monkeypatch: pytest.MonkeyPatch, client: LegacyClient, api: LegacyApi, sent: Any
) -> None:
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch, {"recent_orders": RECENT})
    result = handler.run("recent_orders", {"limit": sent})
    assert result["error"]["kind"] == "invalid_argument"
    assert result["error"]["message"].startswith("limit: Input should be a valid integer")
    assert api.requests == []


PROFILE_BY_ID = SingleCallTool(
    description="A customer's profile.",
    path="/v2/customers/{customer_id}",
    arguments={"customer_id": CallArgument(description="The customer id")},
    fields={"id": "data.customerId"},
)
SURROGATE = "arguments: a text holds a lone surrogate, not UTF-8 text"


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("find_orders", {"customer_email": "\ud800@example.com"}),  # a query value
        ("find_orders", {"customer_email": CUSTOMER_EMAIL, "\udfff": 1}),  # a key
        ("profile_by_id", {"customer_id": "C-\ud800"}),  # a path segment
        ("list_articles", {"updated_since": "\udc80"}),
    ],
)
def test_a_lone_surrogate_anywhere_in_the_arguments_is_the_callers_invalid_argument(
    monkeypatch: pytest.MonkeyPatch, client: LegacyClient, api: LegacyApi, tool: str, arguments: dict[str, Any]
) -> None:
    """JSON can escape half a surrogate pair; no UTF-8 (so no URL) can hold one. It was an
    unexpected failure the agent was told to retry in 30 seconds."""
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch, {"list_articles": ARTICLES, "profile_by_id": PROFILE_BY_ID})
    assert handler.run(tool, arguments) == ToolError("invalid_argument", SURROGATE).result()
    assert api.requests == []


@pytest.mark.usefixtures("served")
def test_an_argument_named_path_is_named_in_the_problem() -> None:
    assert handler.run("by_path", {})["error"]["message"] == "path: Field required"


@pytest.mark.usefixtures("served")
def test_a_huge_tool_name_is_cut_in_the_answer_and_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    name = "A" * 100_000
    context = FakeContext(client_context=FakeClientContext({"bedrockAgentCoreToolName": f"orders___{name}"}))
    error = handler.lambda_handler({}, context)["error"]
    assert (error["kind"], error["message"]) == ("invalid_argument", handler.UNKNOWN_TOOL.message)
    logged = capsys.readouterr().out
    assert f'"tool":"{"A" * (MAX_FIELD_CHARS - 1)}…"' in logged
    assert "A" * (MAX_FIELD_CHARS + 1) not in logged


@pytest.mark.usefixtures("served")
@pytest.mark.parametrize("custom", ["notadict", ["bedrockAgentCoreToolName"], 7])
def test_a_client_context_whose_custom_is_not_an_object_names_no_tool(custom: Any) -> None:
    context = FakeContext(client_context=FakeClientContext(custom))
    error = handler.lambda_handler({}, context)["error"]
    assert (error["kind"], error["message"]) == ("invalid_argument", handler.UNKNOWN_TOOL.message)
