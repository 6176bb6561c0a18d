"""A legacy tool's answer never weighs more than its byte_budget, however large the upstream's
record: a record too large for an answer by itself is cut (its long texts end in CLIP_MARK, a
value of another shape is null) and the answer says so (``truncated``, ``clipped``); one too large
even then is left out with a ``note``. Single-record tools and list tools cut the same way."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, strategies as st

from legacy_tools.adapters import TOOLS, Shape, registry
from legacy_tools.contract import CallArgument, SingleCallTool
from legacy_tools.shaping import CLIP_MARK, LEFT_OUT, decode_cursor, page, single
from shared.legacy_client import ClientSettings, Credentials, LegacyClient
from shared.tool_errors import ToolError
from shared.tools import SECRET_READ_SECONDS, tools_function_seconds
from tests.lambdas.legacy_api import CUSTOMER, CUSTOMER_EMAIL, CUSTOMER_ID, FIELDS, Answer, LegacyApi, serve
from tests.lambdas.test_legacy_hostile import make_client

BUDGET = 4000
SHAPE = Shape(top_k=20, byte_budget=BUDGET, fields=FIELDS)
HUGE = 900_000
ORDERS = f"/v2/customers/{CUSTOMER_ID}/orders"


def weight(answer: Any) -> int:
    """What the tool's answer weighs as the tests measure it (compact JSON, ASCII escapes)."""
    return len(json.dumps(answer, separators=(",", ":")).encode())


def cut_from(value: Any, original: str) -> bool:
    return isinstance(value, str) and value.endswith(CLIP_MARK) and original.startswith(value[: -len(CLIP_MARK)])


@pytest.fixture
def api() -> Iterator[LegacyApi]:
    with serve() as running:
        yield running


def test_get_customer_cuts_a_huge_declared_text_to_the_budget(api: LegacyApi) -> None:
    display = "Ada " * (HUGE // 4)
    big = CUSTOMER | {"profile": {"name": {"display": display}}}
    api.answers[f"/v2/customers/{CUSTOMER_ID}"] = Answer(body=json.dumps({"data": big}).encode())
    result = TOOLS["get_customer"](make_client(api), SHAPE, {"customer_id": CUSTOMER_ID})
    assert weight(result) <= BUDGET  # it was 900,129 bytes
    assert result["truncated"] is True
    assert result["clipped"] == ["name"]
    record = result["record"]
    assert cut_from(record["name"], display)
    assert len(record["name"]) > BUDGET // 2  # the room left is the text's, not thrown away
    # The other declared fields are whole.
    assert record | {"name": None} == {
        "customer_id": CUSTOMER_ID,
        "name": None,
        "segment": "gold",
        "status": "active",
        "billing_city": "London",
        "shipping_city": "London",
    }


def test_a_customer_that_fits_is_answered_as_before(api: LegacyApi) -> None:
    result = TOOLS["get_customer"](make_client(api), SHAPE, {"customer_id": CUSTOMER_ID})
    assert set(result) == {"record"}
    assert result["record"]["name"] == "Ada Lovelace"


def test_find_orders_a_huge_order_comes_alone_cut_and_the_cursor_continues(api: LegacyApi) -> None:
    code = "x" * HUGE
    orders = {"data": {"orders": [{"orderId": "O-1", "status": {"code": code}}, {"orderId": "O-2"}]}}
    api.answers[ORDERS] = Answer(body=json.dumps(orders).encode())
    client = make_client(api)
    first = TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL})
    assert weight(first) <= BUDGET  # it was 900,210 bytes
    assert (first["total"], first["returned"], first["truncated"], first["clipped"]) == (2, 1, True, ["status"])
    (record,) = first["records"]
    assert record["order_id"] == "O-1"
    assert cut_from(record["status"], code)
    second = TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL, "cursor": first["next_cursor"]})
    assert second == {
        "total": 2,
        "returned": 1,
        "records": [{**dict.fromkeys(FIELDS["find_orders"]), "order_id": "O-2"}],
    }


def test_a_subtree_where_a_value_was_declared_is_null_and_named(api: LegacyApi) -> None:
    """An upstream that now puts a large object where the declaration expects an id."""
    orders = {"data": {"orders": [{"orderId": {"nested": ["y" * 1000] * 800}, "status": {"code": "paid"}}]}}
    api.answers[ORDERS] = Answer(body=json.dumps(orders).encode())
    result = TOOLS["find_orders"](make_client(api), SHAPE, {"customer_email": CUSTOMER_EMAIL})
    assert weight(result) <= BUDGET
    assert result["clipped"] == ["order_id"]
    assert result["records"][0]["order_id"] is None
    assert result["records"][0]["status"] == "paid"
    assert "next_cursor" not in result


PROFILE = SingleCallTool(
    description="A customer's profile.",
    path="/v2/customers/{customer_id}",
    arguments={"customer_id": CallArgument(description="The customer id")},
    fields={"name": "data.profile.name.display", "segment": "data.account.segment"},
)
LISTING = SingleCallTool(
    description="The customer's orders.",
    path="/v2/customers/{customer_id}/orders",
    arguments={"customer_id": CallArgument(description="The customer id")},
    records="data.orders",
    fields={"id": "orderId", "status": "status.code"},
)


def test_single_call_tools_cut_the_same_way(api: LegacyApi) -> None:
    display = "é" * 150_000  # six bytes a character as the answer escapes it (two in the upstream's UTF-8)
    big = CUSTOMER | {"profile": {"name": {"display": display}}}
    api.answers[f"/v2/customers/{CUSTOMER_ID}"] = Answer(body=json.dumps({"data": big}, ensure_ascii=False).encode())
    orders = {"data": {"orders": [{"orderId": "O-1", "status": {"code": display}}, {"orderId": "O-2"}]}}
    api.answers[ORDERS] = Answer(body=json.dumps(orders, ensure_ascii=False).encode())
    tools = registry({}, {"profile": PROFILE, "listing": LISTING})
    shape = Shape(top_k=5, byte_budget=1000, fields={"profile": PROFILE.fields, "listing": LISTING.fields})
    client = make_client(api)

    one = tools["profile"](client, shape, {"customer_id": CUSTOMER_ID})
    assert weight(one) <= 1000
    assert (one["truncated"], one["clipped"], one["record"]["segment"]) == (True, ["name"], "gold")
    assert cut_from(one["record"]["name"], display)

    listed = tools["listing"](client, shape, {"customer_id": CUSTOMER_ID})
    assert weight(listed) <= 1000
    assert (listed["returned"], listed["clipped"], listed["records"][0]["id"]) == (1, ["status"], "O-1")
    rest = tools["listing"](client, shape, {"customer_id": CUSTOMER_ID, "cursor": listed["next_cursor"]})
    assert rest["records"] == [{"id": "O-2", "status": None}]


# A record whose declared names alone outweigh the budget: a deployment error no cut can mend.
CROWDED = {f"declared_field_{n:03d}_with_a_long_name": "v" * 40 for n in range(40)}


def test_a_record_too_large_even_cut_is_left_out_with_a_note() -> None:
    answer = single(CROWDED, 512)
    assert answer == {"record": None, "truncated": True, "note": LEFT_OUT}
    assert weight(answer) <= 512
    listed = page([CROWDED, {"id": "next"}], query={"q": 1}, offset=0, top_k=5, byte_budget=512)
    assert (listed["records"], listed["note"], listed["truncated"]) == ([], LEFT_OUT, True)
    assert weight(listed) <= 512
    assert decode_cursor(listed["next_cursor"], {"q": 1}) == 1  # past it: paging never sticks there


def test_cutting_a_huge_text_does_not_encode_it() -> None:
    """20 million characters would be 120 MB as escaped JSON: only what fits is ever encoded."""
    record = {"id": "C-1", "name": "é" * 20_000_000}
    tracemalloc.start()
    try:
        answer = single(record, BUDGET)
        listed = page([record], query={}, offset=0, top_k=10, byte_budget=BUDGET)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert answer["clipped"] == listed["clipped"] == ["name"]
    assert peak < 2_000_000, peak


# Records as an upstream might fill the declared fields: short and long texts (some not ASCII),
# numbers, nulls, and objects or lists where a value was expected.
values = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=20),
    st.text(min_size=200, max_size=3000),
    st.builds(lambda n, c: c * n, st.integers(0, 20_000), st.sampled_from(["x", "é", "\n", '"', "😀"])),
    st.lists(st.text(max_size=300), max_size=20),
    st.dictionaries(st.text(max_size=10), st.text(max_size=500), max_size=10),
)
records = st.dictionaries(st.text(min_size=1, max_size=24), values, min_size=1, max_size=8)


@given(st.lists(records, max_size=12), st.integers(512, 6000), st.integers(1, 100))
def test_every_page_holds_the_budget_and_the_pages_hand_out_every_record_once(
    listing: list[dict[str, Any]], budget: int, top_k: int
) -> None:
    query = {"tool": "t"}
    offset, seen = 0, 0
    while True:
        answer = page(listing, query=query, offset=offset, top_k=top_k, byte_budget=budget)
        assert weight(answer) <= budget
        assert answer["total"] == len(listing)
        assert answer["returned"] == len(answer["records"])
        originals = listing[offset : offset + answer["returned"]]
        clipped = answer.get("clipped", [])
        for shown, original in zip(answer["records"], originals, strict=True):
            assert list(shown) == list(original)  # every declared field, in order
            for name, value in shown.items():
                if name in clipped:
                    assert value is None or cut_from(value, original[name])
                else:
                    assert value == original[name]
        if clipped or "note" in answer:  # only a record too large by itself, alone on its page
            assert answer["truncated"] is True
            assert answer["returned"] == (0 if "note" in answer else 1)
        seen += answer["returned"] + (1 if "note" in answer else 0)
        if "next_cursor" not in answer:
            break
        offset = answer["returned"] + offset + (1 if "note" in answer else 0)
        assert answer["returned"] or "note" in answer  # a page always moves on
    assert seen == len(listing)


@given(records, st.integers(512, 6000))
def test_a_single_record_answer_holds_the_budget(record: dict[str, Any], budget: int) -> None:
    answer = single(record, budget)
    assert weight(answer) <= budget
    if answer["record"] is None:
        assert answer["note"] == LEFT_OUT
        return
    clipped = answer.get("clipped", [])
    assert ("truncated" in answer) == bool(clipped)
    assert list(answer["record"]) == list(record)
    for name, value in answer["record"].items():
        assert (value is None or cut_from(value, record[name])) if name in clipped else value == record[name]


# --- the function's time -----------------------------------------------------------------------------


class _Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


class _Answer:
    def __init__(self, status: int, body: bytes = b"") -> None:
        self.status, self._body = status, body
        self.headers = {"Content-Length": str(len(body))}

    def read1(self, amount: int) -> bytes:
        chunk, self._body = self._body[:amount], self._body[amount:]
        return chunk

    def close(self) -> None: ...

    def release_conn(self) -> None: ...


class _SlowestApi:
    """Every exchange answers just inside its deadline: each call's first answer a 401 (a service
    that restarted and forgot its tokens), then 503s, the customer's lookup answered at its last
    attempt: the longest a chained tool's two calls can take."""

    def __init__(self, clock: _Clock, seconds: float, gets: Iterator[_Answer]) -> None:
        self.clock, self.seconds, self.gets = clock, seconds, gets

    def request(self, method: str, url: str, **_: Any) -> _Answer:
        self.clock.now += self.seconds - 0.01
        if method == "POST":
            return _Answer(200, json.dumps({"access_token": "t", "expires_in": 3600}).encode())
        return next(self.gets)


@pytest.mark.parametrize(("attempts", "seconds"), [(5, 25.0), (3, 8.0), (1, 1.0)])
def test_a_chained_tool_at_its_slowest_ends_within_its_functions_timeout(attempts: int, seconds: float) -> None:
    """The function's timeout (stacks/production/tools.py) is tools_function_seconds: past it,
    Lambda would end the tool and the gateway get no error of the taxonomy."""
    customers = json.dumps({"data": {"items": [{"customerId": "C-1", "email": CUSTOMER_EMAIL}]}}).encode()
    lookup = [_Answer(401), *[_Answer(503)] * (attempts - 2), _Answer(200, customers)] if attempts > 1 else []
    lookup = lookup or [_Answer(200, customers)]
    orders = [_Answer(401), *[_Answer(503)] * attempts]
    clock = _Clock()

    def sleep(wait: float) -> None:
        clock.now += wait

    client = LegacyClient(
        ClientSettings(base_url="https://api.example.com", timeout_seconds=seconds, max_attempts=attempts),
        lambda: Credentials("id", "secret"),
        http=_SlowestApi(clock, seconds, iter(lookup + orders)),  # type: ignore[arg-type]
        clock=clock,
        sleep=sleep,
    )
    with pytest.raises(ToolError) as failed:
        TOOLS["find_orders"](client, SHAPE, {"customer_email": CUSTOMER_EMAIL})
    assert failed.value.kind == "upstream_unavailable"
    assert clock.now <= tools_function_seconds(seconds, attempts) - SECRET_READ_SECONDS - 10  # and the shaping
