"""The legacy API tools against a real loopback HTTP server standing in for the product API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from legacy_tools import handler
from legacy_tools.adapters import TOOLS, Shape
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from shared.tool_errors import ToolError
from tests.lambdas.conftest import FakeContext
from tests.lambdas.legacy_api import (
    CLIENT_ID,
    CLIENT_SECRET,
    CUSTOMER_EMAIL,
    CUSTOMER_ID,
    FIELDS,
    ORDER_COUNT,
    LegacyApi,
    serve,
)

SHAPE = Shape(top_k=20, byte_budget=4000, fields=FIELDS)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[LegacyApi]:
    with serve() as running:
        yield running


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(api: LegacyApi, clock: Clock) -> LegacyClient:
    settings = ClientSettings(base_url=api.url, timeout_seconds=0.2, max_attempts=3, backoff_seconds=0.001)
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
        assert set(record) == set(FIELDS["find_orders"]) and None not in record.values()


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
    assert first["truncated"] is True and first["returned"] < 20
    assert len(json.dumps(first, separators=(",", ":")).encode()) <= 1200
    second = TOOLS["find_orders"](client, tight, {"customer_email": CUSTOMER_EMAIL, "cursor": first["next_cursor"]})
    assert second["records"][0]["order_id"] == f"O-{first['returned']:05d}"


def test_status_filter_is_passed_upstream_and_part_of_the_cursor(client: LegacyClient) -> None:
    shipped = find_orders(client, status="shipped")
    assert shipped["total"] == ORDER_COUNT // 5 and {r["status"] for r in shipped["records"]} == {"shipped"}
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


def test_a_timeout_is_upstream_unavailable(client: LegacyClient, api: LegacyApi) -> None:
    find_orders(client)  # token first
    api.delay_seconds = 0.3  # the client gives up after 0.2 s
    with pytest.raises(ToolError) as failure:
        find_orders(client)
    assert failure.value.kind == "upstream_unavailable"


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
    monkeypatch.setattr(handler, "configuration", lambda: (None, SHAPE, "secret"))
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


def test_wrong_credentials_are_forbidden(api: LegacyApi) -> None:
    settings = ClientSettings(base_url=api.url, timeout_seconds=0.5)
    bad = LegacyClient(settings, lambda: Credentials(CLIENT_ID, "wrong"))
    with pytest.raises(ToolError) as failure:
        find_orders(bad)
    assert failure.value.kind == "forbidden"


def test_the_handler_reads_the_tool_name_the_gateway_sends(
    client: LegacyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "client", lambda: client)
    monkeypatch.setattr(handler, "configuration", lambda: (None, SHAPE, "secret"))
    context = FakeContext()
    context.client_context = SimpleNamespace(custom={"bedrockAgentCoreToolName": "orders___find_orders"})  # type: ignore[attr-defined]
    assert handler.lambda_handler({"customer_email": CUSTOMER_EMAIL}, context)["total"] == ORDER_COUNT
    context.client_context = SimpleNamespace(custom={"bedrockAgentCoreToolName": "orders___drop_tables"})  # type: ignore[attr-defined]
    assert handler.lambda_handler({}, context)["error"]["message"].startswith("unknown tool drop_tables")
    assert handler.lambda_handler(["not", "an", "object"], FakeContext())["error"]["kind"] == "invalid_argument"
