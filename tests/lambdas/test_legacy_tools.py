"""The legacy API tools against a real loopback HTTP server standing in for the product API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from legacy_tools import handler
from legacy_tools.adapters import TOOLS, Shape, registry
from legacy_tools.contract import CallArgument, LegacyApi as ApiSettings, Settings, SingleCallTool, SingleCallTools
from shared import legacy_client
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from shared.runtime_config import ConfigLocation, DocumentReader
from shared.tool_errors import ToolError
from shared.tools import TOOL_NAME_KEY, split, unqualified
from tests.lambdas.conftest import FakeClientContext, FakeContext
from tests.lambdas.legacy_api import (
    ARTICLE_COUNT,
    ARTICLES_PAGE,
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER_EMAIL,
    CUSTOMER_ID,
    FIELDS,
    ORDER_COUNT,
    Answer,
    LegacyApi,
    article,
    serve,
)
from tests.test_config import error_lines

SHAPE = Shape(top_k=20, byte_budget=4000, fields=FIELDS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def configure(
    monkeypatch: pytest.MonkeyPatch, single_calls: dict[str, SingleCallTool] | None = None, *, top_k: int = SHAPE.top_k
) -> None:
    """The handler's environment as the stack writes it (Settings.environment), its single-call
    tools served as the runtime document would be, caches cleared."""
    api = ApiSettings(
        base_url="https://unused.example.com",
        token_path="/oauth/token",
        secret_name="secret",
        timeout_seconds=1,
        max_attempts=3,
        top_k=top_k,
        byte_budget=SHAPE.byte_budget,
        fields={tool: dict(fields) for tool, fields in FIELDS.items()},
    )
    location = ConfigLocation(application="a", environment="e", profile="p", environment_name="tools")
    for name, value in Settings(api_name="orders", legacy_api=api, single_call_tools=location).environment().items():
        monkeypatch.setenv(name, value)
    document = DocumentReader.static(SingleCallTools(apis={"orders": single_calls or {}}))
    monkeypatch.setattr(handler, "single_call_tools", lambda: document)
    for cached in (handler.settings, handler.served):
        cached.cache_clear()


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    yield
    for cached in (handler.settings, handler.served):
        cached.cache_clear()


@pytest.fixture
def api() -> Iterator[LegacyApi]:
    with serve() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(api: LegacyApi, clock: Clock) -> LegacyClient:
    # The deadline runs on the test's clock, which stands still: the generous real bound on a socket
    # wait only matters to a server that never answers, so a busy machine never fails a test.
    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=3, backoff_seconds=0.001)
    return LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=clock, sleep=lambda _: None)


def find_orders(client: LegacyClient, **arguments: Any) -> dict[str, Any]:
    return TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL, **arguments})


def test_one_call_chains_the_lookup_and_the_listing_and_projects_declared_fields(
    client: LegacyClient, api: LegacyApi
) -> None:
    result = find_orders(client)
    assert api.requests == ["/v2/customers", f"/v2/customers/{CUSTOMER_ID}/orders"]
    assert result["total"] == ORDER_COUNT
    assert result["records"][0] == {
        "order_id": "O-00000",
        "status": "placed",
        "placed_at": "2026-01-01T10:00:00Z",
        "total": 100.0,
        "currency": "EUR",
        "tracking_number": "TRK0000000000",
    }
    for record in result["records"]:
        assert set(record) == set(FIELDS["find_orders"])
        assert None not in record.values()


def test_the_token_is_fetched_once_and_reused_until_it_expires(
    client: LegacyClient, api: LegacyApi, clock: Clock
) -> None:
    for _ in range(3):
        find_orders(client)
    assert api.token_requests == 1
    clock.now += api.token_ttl - 29  # inside the 30 s skew: treated as expired
    find_orders(client)
    assert api.token_requests == 2


def test_cursor_paging_returns_every_record_exactly_once(client: LegacyClient) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        result = find_orders(client, **({"cursor": cursor} if cursor else {}))
        pages += 1
        seen += [r["order_id"] for r in result["records"]]
        assert len(json.dumps(result, separators=(",", ":")).encode()) <= SHAPE.byte_budget
        cursor = result.get("next_cursor")
        if cursor is None:
            break
    assert seen == [f"O-{n:05d}" for n in range(ORDER_COUNT)]
    assert pages >= ORDER_COUNT // SHAPE.top_k


def test_the_byte_budget_cuts_a_page_with_a_marker_and_the_cursor_continues(client: LegacyClient) -> None:
    tight = Shape(top_k=20, byte_budget=1200, fields=FIELDS)
    first = TOOLS["find_orders"](client, tight, {"customer_email": CUSTOMER_EMAIL})
    assert first["truncated"] is True
    assert first["returned"] < 20
    assert len(json.dumps(first, separators=(",", ":")).encode()) <= 1200
    second = TOOLS["find_orders"](client, tight, {"customer_email": CUSTOMER_EMAIL, "cursor": first["next_cursor"]})
    assert second["records"][0]["order_id"] == f"O-{first['returned']:05d}"


def test_status_filter_is_passed_upstream_and_part_of_the_cursor(client: LegacyClient) -> None:
    shipped = find_orders(client, status="shipped")
    assert shipped["total"] == ORDER_COUNT // 5
    assert {r["status"] for r in shipped["records"]} == {"shipped"}
    with pytest.raises(ToolError, match="cursor: belongs to a different query"):
        find_orders(client, status="paid", cursor=shipped["next_cursor"])


def test_a_401_refreshes_the_token_once(client: LegacyClient, api: LegacyApi) -> None:
    find_orders(client)
    api.revoke_tokens()  # the service restarted and forgot every token
    assert find_orders(client)["total"] == ORDER_COUNT
    assert api.token_requests == 2


def test_5xx_is_retried_then_reported_as_upstream_unavailable_with_retry_after(
    client: LegacyClient, api: LegacyApi
) -> None:
    api.faults = [503]
    assert find_orders(client)["total"] == ORDER_COUNT  # one transient failure: retried
    api.faults = [503, 502, 500]
    with pytest.raises(ToolError) as failure:
        find_orders(client)
    assert failure.value.result() == {
        "error": {
            "kind": "upstream_unavailable",
            "message": "the service answered 500",
            "advice": "The system behind this tool is unavailable; retry after retry_after seconds.",
            "retry_after": 7,
        }
    }


def test_a_timeout_is_upstream_unavailable(api: LegacyApi) -> None:
    """A server that never answers: the outcome does not depend on how fast the machine is.

    The deadline runs on the test's clock. It stands still while the token is fetched and each
    request goes out (10 s a socket wait: ample for a server that answers, however busy the
    machine), and once the server holds a request more than the whole deadline has gone, so the
    client gives up on the silent server at its next deadline check: no real timeout to race.
    """

    def clock() -> float:  # the server records a request before it sends the headers
        return 1000.0 + 11.0 * api.requests.count("/v2/customers")

    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=2, backoff_seconds=0)
    client = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=clock, sleep=lambda _: None)
    api.answers["/v2/customers"] = Answer(hold=True, content_length="none")  # headers, then silence
    with pytest.raises(ToolError) as failure:
        find_orders(client)
    assert failure.value.kind == "upstream_unavailable"
    assert failure.value.message == "the service did not answer in time"
    assert api.token_requests == 1  # the token came; each of the two attempts was held
    assert api.requests == ["/v2/customers"] * 2


@pytest.mark.parametrize(
    ("tool", "arguments", "kind", "message"),
    [
        ("find_orders", {"customer_email": "nobody@example.com"}, "not_found", "no customer has that e-mail address"),
        (
            "find_orders",
            {"customer_email": "not-an-email"},
            "invalid_argument",
            "customer_email: String should match pattern",
        ),
        (
            "find_orders",
            {"customer_email": CUSTOMER_EMAIL, "cursor": "garbage!"},
            "invalid_argument",
            "cursor: not a cursor",
        ),
        (
            "find_orders",
            {"customer_email": CUSTOMER_EMAIL, "limit": 5},
            "invalid_argument",
            "limit: Extra inputs are not permitted",
        ),
        ("get_customer", {"customer_id": "C-9999"}, "not_found", "no such record"),
        ("get_customer", {}, "invalid_argument", "customer_id: Field required"),
    ],
)
def test_failures_map_to_the_taxonomy(
    tool: str, arguments: dict[str, Any], kind: str, message: str, client: LegacyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch)
    result = handler.run(tool, arguments)
    assert result["error"]["kind"] == kind
    assert result["error"]["message"].startswith(message), result


def test_get_customer_chains_the_profile_and_addresses(client: LegacyClient, api: LegacyApi) -> None:
    result = TOOLS["get_customer"](client, SHAPE, {"customer_id": CUSTOMER_ID})
    assert result == {
        "record": {
            "customer_id": CUSTOMER_ID,
            "name": "Ada Lovelace",
            "segment": "gold",
            "status": "active",
            "billing_city": "London",
            "shipping_city": "London",
        }
    }
    assert api.requests == [f"/v2/customers/{CUSTOMER_ID}", f"/v2/customers/{CUSTOMER_ID}/addresses"]


def test_wrong_credentials_are_forbidden(api: LegacyApi, clock: Clock) -> None:
    settings = ClientSettings(base_url=api.url, timeout_seconds=10)
    bad = LegacyClient(settings, lambda: Credentials(CLIENT_ID, "wrong"), clock=clock)
    with pytest.raises(ToolError) as failure:
        find_orders(bad)
    assert failure.value.kind == "forbidden"


@pytest.mark.parametrize(
    ("client_id", "client_secret"),
    [("svc:orders", "p+w%2F/é:x y"), ("gateway client", "100%+"), (CLIENT_ID, CLIENT_SECRET)],
)
def test_credentials_are_form_urlencoded_before_basic_auth(
    api: LegacyApi, clock: Clock, client_id: str, client_secret: str
) -> None:
    """RFC 6749 2.3.1: a colon, %, + or space in the id or the secret reaches the token endpoint as
    itself (the fake decodes the header as the RFC says a server does), not as a wrong client."""
    api.client = (client_id, client_secret)
    settings = ClientSettings(base_url=api.url, timeout_seconds=10)
    encoded = LegacyClient(settings, lambda: Credentials(client_id, client_secret), clock=clock)
    assert find_orders(encoded)["total"] == ORDER_COUNT
    assert api.token_requests == 1


def test_the_handler_reads_the_tool_name_the_gateway_sends(
    client: LegacyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch)
    find = FakeContext(client_context=FakeClientContext({"bedrockAgentCoreToolName": "orders___find_orders"}))
    assert handler.lambda_handler({"customer_email": CUSTOMER_EMAIL}, find)["total"] == ORDER_COUNT
    drop = FakeContext(client_context=FakeClientContext({"bedrockAgentCoreToolName": "orders___drop_tables"}))
    assert handler.lambda_handler({}, drop) == handler.UNKNOWN_TOOL.result()
    assert handler.lambda_handler(["not", "an", "object"], FakeContext())["error"]["kind"] == "invalid_argument"


def named(name: str) -> FakeContext:
    return FakeContext(client_context=FakeClientContext({TOOL_NAME_KEY: name}))


@pytest.mark.parametrize(
    ("name", "target", "tool"),
    [
        ("orders___find_orders", "orders", "find_orders"),
        ("orders___report___summary", "orders", "report___summary"),
        ("x___orders___find_orders", "x", "orders___find_orders"),
        ("find_orders", None, "find_orders"),
        ("", None, ""),
    ],
)
def test_a_gateway_tool_name_is_split_at_its_first_separator(name: str, target: str | None, tool: str) -> None:
    """As the gateway's policies and interceptor read it: a target's name holds no _ (issue 14)."""
    assert split(name) == (target, tool)
    assert unqualified(name) == tool


@pytest.mark.parametrize(
    "name",
    [
        "orders___report___summary",  # authorized as report___summary: summary must not run
        "customers___summary",  # another target's tool of the same name
        "other___orders___summary",  # this API's name further in
        "summary",  # no target: the gateway always names one
    ],
)
def test_the_handler_runs_only_the_tool_its_own_target_is_named_with(
    name: str, api: LegacyApi, client: LegacyClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A name the gateway authorized as one tool never runs another here (issue 14): the tool part
    is what follows the first separator, and the target before it must be this function's API."""
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch, {"summary": PROFILE})
    context = named("orders___summary")
    assert handler.lambda_handler({"customer_id": CUSTOMER_ID}, context)["record"]["name"] == "Ada Lovelace"
    api.requests.clear()
    capsys.readouterr()
    assert handler.lambda_handler({"customer_id": CUSTOMER_ID}, named(name)) == handler.UNKNOWN_TOOL.result()
    assert api.requests == []


def test_an_unknown_tool_is_told_no_tool_of_the_api_and_the_log_says_which(
    client: LegacyClient, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The function serves every tool of its API, other groups' too: the agent is not told them;
    the log line names what was asked and what is served (issue 14)."""
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch, {"get_profile": PROFILE})
    capsys.readouterr()
    error = handler.lambda_handler({}, named("orders___payroll_export"))["error"]
    assert error == {
        "kind": "invalid_argument",
        "message": "unknown tool; call one of the tools your tools list shows",
        "advice": "Fix the named argument and call the tool again.",
    }
    (line,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"unknown tool"' in line]
    assert (line["tool"], line["tools"]) == ("payroll_export", ["find_orders", "get_customer", "get_profile"])


def test_declarations_that_cannot_be_read_are_a_retryable_tool_error_not_a_failed_invocation(
    client: LegacyClient, api: LegacyApi, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """AppConfig unreachable (or nothing deployed yet) at a cold start: the gateway gets the
    taxonomy's upstream_unavailable with a retry time, the upstream is never called, and the next
    invocation, with the store back, answers."""
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch)
    store: dict[str, str] = {}

    def fetch(location: ConfigLocation) -> str:
        if "document" not in store:
            raise ConnectionError("appconfigdata unreachable")
        return store["document"]

    location = ConfigLocation(application="a", environment="e", profile="p", environment_name="tools")
    reader = DocumentReader(location, SingleCallTools, fetch=fetch)
    monkeypatch.setattr(handler, "single_call_tools", lambda: reader)
    find = FakeContext(client_context=FakeClientContext({"bedrockAgentCoreToolName": "orders___find_orders"}))
    assert handler.lambda_handler({"customer_email": CUSTOMER_EMAIL}, find) == {
        "error": {
            "kind": "upstream_unavailable",
            "message": "the tool's declarations are not available yet; retry",
            "advice": ToolError("upstream_unavailable", "").result()["error"]["advice"],
            "retry_after": 30,
        }
    }
    assert api.requests == []
    failed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"level":"ERROR"' in line]
    assert [(line["message"], line["why"]) for line in failed] == [
        ("tool declarations not readable", "runtime config p: not readable (ConnectionError)")
    ]
    store["document"] = SingleCallTools(apis={"orders": {}}).model_dump_json()
    assert handler.lambda_handler({"customer_email": CUSTOMER_EMAIL}, find)["total"] == ORDER_COUNT


# Config-only tools: one GET each, declared as the sample config would.
PROFILE = SingleCallTool(
    description="A customer's profile. The record has: {fields}.",
    path="/v2/customers/{customer_id}",
    arguments={"customer_id": CallArgument(description="The customer id")},
    fields={"name": "data.profile.name.display", "segment": "data.account.segment"},
)
ARTICLES = SingleCallTool(
    description="Help-centre articles changed since a date.",
    path="/api/v2/articles",
    arguments={
        "updated_since": CallArgument(description="ISO date", required=False, pattern=r"^\d{4}-\d{2}-\d{2}$"),
    },
    records="items",
    fields={"id": "article.id", "title": "article.title"},
)


@pytest.fixture
def single_calls(client: LegacyClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "client", lambda: client)
    configure(monkeypatch, {"get_profile": PROFILE, "list_articles": ARTICLES}, top_k=7)


@pytest.mark.usefixtures("single_calls")
def test_a_single_call_tool_is_config_only(api: LegacyApi) -> None:
    result = handler.run("get_profile", {"customer_id": CUSTOMER_ID})
    assert result == {"record": {"name": "Ada Lovelace", "segment": "gold"}}
    assert api.requests[-1] == f"/v2/customers/{CUSTOMER_ID}"
    # The chained tools the config names are still served beside it.
    assert handler.run("get_customer", {"customer_id": CUSTOMER_ID})["record"]["name"] == "Ada Lovelace"


@pytest.mark.usefixtures("single_calls")
def test_a_path_argument_is_one_encoded_segment(api: LegacyApi) -> None:
    result = handler.run("get_profile", {"customer_id": "../../admin?drop=1"})
    assert result["error"]["kind"] == "not_found"
    assert api.requests[-1] == "/v2/customers/..%2F..%2Fadmin%3Fdrop%3D1"


@pytest.mark.usefixtures("single_calls")
@pytest.mark.parametrize("value", ["", ".", ".."])
def test_a_path_argument_never_names_another_path(api: LegacyApi, value: str) -> None:
    """Dot segments and an empty segment would reach the parent or the collection: refused."""
    result = handler.run("get_profile", {"customer_id": value})
    assert result["error"]["kind"] == "invalid_argument"
    assert result["error"]["message"].startswith("customer_id")
    assert api.requests == []


def test_a_declared_pattern_must_match_the_whole_value(client: LegacyClient, api: LegacyApi) -> None:
    """A pattern without anchors is anchored: a value that merely contains a match is refused."""
    loose = SingleCallTool.model_validate(
        {
            "description": "d",
            "path": "/v2/customers/{customer_id}",
            "arguments": {"customer_id": {"description": "id", "pattern": "C-[0-9]{4}"}},
            "fields": {"name": "data.profile.name.display"},
        }
    )
    tool = registry({}, {"loose": loose})["loose"]
    shape = Shape(fields={"loose": loose.fields})
    with pytest.raises(ToolError, match="customer_id"):
        tool(client, shape, {"customer_id": f"../{CUSTOMER_ID}"})
    assert tool(client, shape, {"customer_id": CUSTOMER_ID})["record"] == {"name": "Ada Lovelace"}
    assert api.requests == [f"/v2/customers/{CUSTOMER_ID}"]


@pytest.mark.usefixtures("single_calls")
def test_a_single_call_list_is_paged_with_its_query(api: LegacyApi) -> None:
    since = "2026-11-20"
    changed = [a["article"] for a in map(article, range(ARTICLE_COUNT)) if a["article"]["audit"]["updatedAt"] >= since]
    expected = [{"id": a["id"], "title": a["title"]} for a in changed[:ARTICLES_PAGE]]  # one call: the API's first page
    pages = [handler.run("list_articles", {"updated_since": since})]
    while "next_cursor" in pages[-1]:
        pages.append(handler.run("list_articles", {"updated_since": since, "cursor": pages[-1]["next_cursor"]}))
    assert [r for p in pages for r in p["records"]] == expected
    assert len(pages) == -(-len(expected) // 7)
    assert all(p["total"] == len(expected) for p in pages)
    assert api.requests == ["/api/v2/articles"] * len(pages)
    # A cursor belongs to its query; an argument outside the declared pattern is refused.
    other = handler.run("list_articles", {"cursor": pages[0].get("next_cursor", "x")})
    assert other["error"]["kind"] == "invalid_argument"
    refused = handler.run("list_articles", {"updated_since": "yesterday"})
    assert refused["error"]["kind"] == "invalid_argument"
    assert "updated_since" in refused["error"]["message"]
    assert handler.run("get_profile", {"customer_id": CUSTOMER_ID, "extra": 1})["error"]["kind"] == "invalid_argument"


def test_a_single_call_tools_schema_comes_from_its_arguments() -> None:
    schema = ARTICLES.spec("list_articles").input_schema()
    assert schema == {
        "type": "object",
        "properties": {
            "updated_since": {"type": "string", "description": "ISO date"},
            "cursor": {"type": "string", "description": "next_cursor of the previous page"},
        },
        "required": [],
    }
    assert PROFILE.spec("get_profile").input_schema()["required"] == ["customer_id"]


@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"path": "/v2/{missing}"}, "path placeholder {missing} must be a required argument"),
        ({"arguments": {"cursor": {"description": "x"}}}, "argument cursor is reserved"),
        ({"arguments": {"data_classifications": {"description": "x"}}}, "argument data_classifications is reserved"),
        ({"path": "/v2/../admin"}, "path segments . and .. are not allowed"),
        ({"path": "/v2/things?admin=1"}, "must be a path such as /v2/orders/{order_id}"),
        ({"arguments": {"q": {"description": "x", "pattern": "("}}}, "pattern: does not compile: missing ),"),
        # Python's re takes look-arounds; the engine that matches arguments does not, and says why.
        (
            {"arguments": {"q": {"description": "x", "pattern": "(?!admin)[a-z]+"}}},
            "pattern: does not compile: look-around, including look-ahead and look-behind, is not supported",
        ),
        # Declarations no call could ever satisfy, and JSON kinds pydantic would have guessed at.
        ({"arguments": {"q": {"description": "x", "pattern": ""}}}, "pattern: blank; allowed: a regular expression"),
        ({"arguments": {"q": {"description": "x", "pattern": "  "}}}, "pattern: blank"),
        (
            {"arguments": {"n": {"description": "x", "type": "integer", "minimum": 10, "maximum": 1}}},
            "minimum: 10 is above maximum 1",
        ),
        ({"arguments": {"q": {"description": "x", "required": 1}}}, "not true or false"),
        ({"arguments": {"q": {"description": "x", "required": "no"}}}, "not true or false"),
        ({"arguments": {"q": {"description": "x", "max_length": True}}}, "not a whole number"),
        ({"arguments": {"n": {"description": "x", "type": "integer", "minimum": False}}}, "not a whole number"),
        ({"arguments": {"q": {"description": "   "}}}, "blank; allowed: text, not only spaces"),
        ({"description": "Orders of {customer}."}, "only {fields} may stand in braces"),
    ],
)
def test_a_bad_single_call_declaration_is_refused(declared: dict[str, Any], message: str) -> None:
    base = {"description": "d", "path": "/v2/things", "fields": {"id": "id"}}
    with pytest.raises(ValueError, match=re.escape(message)):
        SingleCallTool.model_validate(base | declared)


@pytest.mark.parametrize(
    ("argument", "key", "expected"),
    [
        ({"pattern": ""}, "order_id.pattern:", "blank; allowed: a regular expression"),
        ({"pattern": "(?=O)O-[0-9]{5}"}, "order_id.pattern:", "look-around, including look-ahead and look-behind"),
        ({"type": "integer", "minimum": 10, "maximum": 1}, "order_id.minimum:", "10 is above maximum 1"),
        ({"required": 1}, "order_id.required = 1:", "not true or false"),
        ({"max_length": True}, "order_id.max_length = True:", "not a whole number"),
        ({"description": "   "}, "order_id.description = '   ':", "blank"),
    ],
)
def test_a_bad_argument_declaration_in_config_names_its_key(argument: dict[str, Any], key: str, expected: str) -> None:
    """The config error line names the argument's key and keeps the reason whole (one line)."""
    declared = {
        "description": "One order.",
        "path": "/v2/orders",
        "arguments": {"order_id": {"description": "The order id"} | argument},
        "fields": {"order_id": "data.orderId"},
    }
    tools = "production.legacy_apis.orders.tools"
    lines = error_lines({f"{tools}.get_order": json.dumps(declared)})
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"blueprint.{tools}.get_order.arguments.{key}"), lines
    assert expected in lines[0]


def test_a_client_for_an_endpoint_reads_its_secret_only_when_it_needs_a_token(
    api: LegacyApi, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[str] = []

    def secret(name: str) -> Credentials:
        read.append(name)
        return Credentials(CLIENT_ID, CLIENT_SECRET)

    monkeypatch.setattr(legacy_client, "secret_credentials", secret)
    endpoint = ApiSettings(
        base_url=api.url,
        token_path="/oauth/token",
        secret_name="team/orders",
        timeout_seconds=10,  # on the test's clock, which stands still: ample for a busy machine
        max_attempts=1,
        top_k=5,
        byte_budget=4000,
        fields={},
    )
    client = legacy_client.client_for(endpoint, clock=clock)
    assert read == []
    body, _ = client.get(f"/v2/customers/{CUSTOMER_ID}")
    assert body["data"]["customerId"] == CUSTOMER_ID
    assert read == ["team/orders"]
    assert api.token_requests == 1
