"""Exact answers of the legacy tools' shaping and adapters, at the edges the other legacy tests pass by.

- Cursors: their wire form (unpadded URL-safe base64 of compact JSON holding the offset and the
  query's 16-hex fingerprint), a round trip at every offset size, a query's key order, the refusals.
- The byte budget at its boundary: a record or a page that weighs exactly the room is kept whole,
  one byte more and it is cut; texts with escapes (a quote is 2 bytes, "é" 6) weigh what JSON says.
- ``fit``: which values it cuts (the fewest, largest), how cut texts share what is spare, the
  smallest clip (CLIP_MARK alone), and that cutting huge values never encodes them.
- The adapters against a fake client (``get(path, params) -> (answer, bytes)``): which part of an
  answer changed, the identifiers handed from one request to the next, the query a cursor is
  bound to, the parameters sent, and a single-call tool's spec.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import tracemalloc
from collections.abc import Mapping
from typing import Any, cast

import pytest

from legacy_tools.adapters import TOOLS, Shape, registry
from legacy_tools.contract import CallArgument, SingleCallTool
from legacy_tools.shaping import CLIP_MARK, decode_cursor, encode_cursor, fit, page, single
from shared.legacy_client import LegacyClient
from shared.tool_errors import ADVICE, ToolError

EMAIL = "ada@example.com"
CUSTOMERS = {"data": {"items": [{"customerId": "C-1", "email": EMAIL}]}}
ORDERS = "/v2/customers/C-1/orders"
FIELDS = {"find_orders": {"order_id": "orderId"}, "get_customer": {"name": "customer.name", "cities": "addresses"}}
SHAPE = Shape(top_k=2, byte_budget=4000, fields=FIELDS)
DIFFERENT_QUERY = "cursor: belongs to a different query; start again without it"


class FakeClient:
    """Answers GETs by path from a table, recording each request and its parameters."""

    def __init__(self, answers: Mapping[str, Any]) -> None:
        self.answers = answers
        self.requests: list[tuple[str, dict[str, Any] | None]] = []

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, int]:
        self.requests.append((path, params))
        return self.answers[path], 0


def call(tool: str, answers: Mapping[str, Any], arguments: Any, shape: Shape = SHAPE) -> tuple[Any, FakeClient]:
    fake = FakeClient(answers)
    return TOOLS[tool](cast(LegacyClient, fake), shape, arguments), fake


def refusal(tool: str, answers: Mapping[str, Any], arguments: Any) -> tuple[dict[str, Any], FakeClient]:
    fake = FakeClient(answers)
    with pytest.raises(ToolError) as failure:
        TOOLS[tool](cast(LegacyClient, fake), SHAPE, arguments)
    return failure.value.result(), fake


def changed(what: str) -> dict[str, Any]:
    """The answer for an upstream whose answer no longer has the shape the tool reads."""
    return {
        "error": {
            "kind": "upstream_unavailable",
            "message": f"the service's answer has changed: {what}",
            "advice": ADVICE["upstream_unavailable"],
            "retry_after": 30,
        }
    }


def wire_cursor(offset: int, query: Mapping[str, Any]) -> str:
    """A cursor as the wire form is documented here, written independently of encode_cursor."""
    fingerprint = hashlib.sha256(json.dumps(query, sort_keys=True).encode()).hexdigest()[:16]
    payload = json.dumps({"o": offset, "q": fingerprint}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def weight(value: Any) -> int:
    """Compact JSON with ASCII escapes, as the answers are measured."""
    return len(json.dumps(value, separators=(",", ":")))


# Cursors ------------------------------------------------------------------------------------------


def test_a_cursor_is_unpadded_base64_of_compact_json_with_the_offset_and_a_16_hex_fingerprint() -> None:
    query = {"tool": "t", "b": 1, "a": None}
    cursor = encode_cursor(20, query)
    fingerprint = hashlib.sha256(b'{"a": null, "b": 1, "tool": "t"}').hexdigest()[:16]
    assert base64.urlsafe_b64decode(cursor + "==") == b'{"o":20,"q":"' + fingerprint.encode() + b'"}'
    assert cursor == "eyJvIjoyMCwicSI6Ijk2OTFhNWJlM2JiM2VhMGYifQ"  # 31 bytes: the "==" it would end in is cut
    assert fingerprint == "9691a5be3bb3ea0f"


@pytest.mark.parametrize(
    "offset", [0, 1, 9, 10, 99, 100, 999, 1_000, 12_345, 123_456, 1_234_567, 12_345_678, 123_456_789, 10**10, 10**11]
)
def test_a_cursor_decodes_to_its_offset_whatever_its_length(offset: int) -> None:
    """Every length the unpadded text can have (0, 2 or 3 past a multiple of 4) is padded back."""
    query = {"tool": "find_orders", "customer_email": EMAIL, "status": None}
    assert decode_cursor(encode_cursor(offset, query), query) == offset


def test_a_cursor_belongs_to_the_querys_content_not_the_order_of_its_keys() -> None:
    cursor = encode_cursor(7, {"tool": "t", "customer_id": "C-1", "status": "paid"})
    assert decode_cursor(cursor, {"status": "paid", "customer_id": "C-1", "tool": "t"}) == 7


def test_a_query_value_json_has_no_type_for_is_fingerprinted_by_its_text() -> None:
    day = {"tool": "t", "since": datetime.date(2026, 1, 2)}
    cursor = encode_cursor(3, day)
    assert decode_cursor(cursor, day) == 3
    assert decode_cursor(cursor, {"tool": "t", "since": "2026-01-02"}) == 3  # the same text
    with pytest.raises(ToolError) as failure:
        decode_cursor(cursor, {"tool": "t", "since": datetime.date(2026, 1, 3)})
    assert (failure.value.kind, failure.value.message) == ("invalid_argument", DIFFERENT_QUERY)


@pytest.mark.parametrize(
    ("cursor", "query"),
    [
        (encode_cursor(4, {"tool": "t", "status": "paid"}), {"tool": "t", "status": "shipped"}),
        (encode_cursor(-1, {"tool": "t"}), {"tool": "t"}),  # a forged negative offset
    ],
    ids=["another query", "a negative offset"],
)
def test_a_cursor_of_another_query_or_before_the_start_is_refused_in_so_many_words(
    cursor: str, query: dict[str, Any]
) -> None:
    with pytest.raises(ToolError) as failure:
        decode_cursor(cursor, query)
    assert failure.value.result() == {
        "error": {"kind": "invalid_argument", "message": DIFFERENT_QUERY, "advice": ADVICE["invalid_argument"]}
    }


# The byte budget at its boundary ----------------------------------------------------------------

# Escapes and nesting: "é" and "ö" weigh 6 bytes each (\u00e9), a quote 2; 152 bytes in all.
RECORD = {"id": "C-1", "name": 'é"', "tags": ["a", "b"], "n": 12, "addr": {"city": "Köln"}, "note": "x" * 60}


def test_a_record_that_weighs_exactly_the_room_is_kept_whole() -> None:
    assert weight(RECORD) == 152
    assert fit(RECORD, 152) == (RECORD, [])


def test_a_record_one_byte_over_the_room_has_its_largest_text_cut_to_fill_it_exactly() -> None:
    shaped, clipped = fit(RECORD, 151) or ({}, [])
    assert (shaped, clipped) == (RECORD | {"note": "x" * 21 + CLIP_MARK}, ["note"])
    assert weight(shaped) + len(',"clipped":["note"]') == 151


@pytest.mark.parametrize(
    ("text", "room", "expected"),
    [
        ("x" * 100, 42, None),  # the share is 20 bytes: not even CLIP_MARK (21 as JSON) fits
        ("x" * 100, 43, CLIP_MARK),  # exactly CLIP_MARK's 21 bytes
        ("x" * 100, 44, "x" + CLIP_MARK),
        ("x" * 100, 50, "x" * 7 + CLIP_MARK),  # 28 bytes, exactly the share
        ("é" * 100, 48, CLIP_MARK),  # "é" weighs 6: 26 bytes are not enough for one
        ("é" * 100, 49, "é" + CLIP_MARK),
        ('"' * 100, 44, CLIP_MARK),  # a quote weighs 2: 23 bytes for one
        ('"' * 100, 45, '"' + CLIP_MARK),
        ('"' * 100, 47, '""' + CLIP_MARK),
    ],
)
def test_a_lone_text_is_cut_to_the_longest_start_that_fits_with_its_mark(
    text: str, room: int, expected: str | None
) -> None:
    """{"a":…} holds the text's share: room less {"a":null}, ',"clipped":' and ["a"] (26), plus 4."""
    assert fit({"a": text}, room) == ({"a": expected}, ["a"])


def test_a_value_cut_to_null_that_leaves_nothing_spare_is_answered() -> None:
    record = {"d": {"k": "v" * 50}}
    assert fit(record, 26) == ({"d": None}, ["d"])  # {"d":null} 10, ',"clipped":' 11, ["d"] 5
    assert fit(record, 25) is None


def test_the_largest_value_is_cut_first_and_a_smaller_one_is_left_whole() -> None:
    """tags is first in the record and first by name (reversed): neither decides, the weight does."""
    record = {"tags": ["a", "b"], "big": "x" * 200}
    assert fit(record, 80) == ({"tags": ["a", "b"], "big": "x" * 16 + CLIP_MARK}, ["big"])


def test_cut_texts_share_the_spare_bytes_the_lighter_first_and_the_heavier_gets_what_is_left() -> None:
    """Both texts must be cut (61 bytes spare). b, longer than the room, counts as lighter than a,
    which is exactly the room long and weighs 102: b is cut first to half (13 characters), and a
    takes the rest (14); the record then weighs exactly the room."""
    record = {"a": "x" * 100, "b": "y" * 105}
    shaped, clipped = fit(record, 100) or ({}, [])
    assert (shaped, clipped) == ({"a": "x" * 14 + CLIP_MARK, "b": "y" * 13 + CLIP_MARK}, ["a", "b"])
    assert weight(shaped) + len(',"clipped":["a","b"]') == 100


def test_cut_texts_share_by_weight_not_by_name() -> None:
    """a is the lighter here: it comes first, takes half of the 61 spare bytes, and b the rest."""
    record = {"a": "x" * 101, "b": "y" * 100}
    assert fit(record, 100) == ({"a": "x" * 13 + CLIP_MARK, "b": "y" * 14 + CLIP_MARK}, ["a", "b"])


# Single records and pages at the budget --------------------------------------------------------

ZOE = {"id": "C-1", "name": 'Zoë "Z" ' + "x" * 40}  # 77 bytes; the answer {"record":…} adds 12


def test_a_single_record_that_fits_its_room_exactly_is_answered_whole() -> None:
    """The room keeps space for ,"truncated":true (so 28 bytes of envelope in all)."""
    assert weight(ZOE) == 77
    assert single(ZOE, 105) == {"record": ZOE}


def test_a_single_record_one_byte_over_is_cut_and_says_so() -> None:
    answer = single(ZOE, 104)
    assert answer == {"record": {"id": "C-1", "name": 'Zoë "Z" x' + CLIP_MARK}, "truncated": True, "clipped": ["name"]}
    assert weight(answer) == 104


ROWS = [{"id": "r0", "v": "é"}, {"id": "r1", "v": '"q"\\'}, {"id": "r2", "v": "x" * 20}, {"id": "r3"}]
QUERY = {"tool": "rows"}


def test_a_page_whose_records_fill_the_room_exactly_returns_them_all() -> None:
    """24 + 25 + 38 bytes of records, 2 commas, the envelope {"total":4,"returned":3,"records":[]}
    (37) and the cursor's allowance (128): 254."""
    assert [weight(row) for row in ROWS[:3]] == [24, 25, 38]
    assert page(ROWS, query=QUERY, offset=0, top_k=3, byte_budget=254) == {
        "total": 4,
        "returned": 3,
        "records": ROWS[:3],
        "next_cursor": wire_cursor(3, QUERY),
    }


def test_a_page_one_byte_short_ends_before_the_record_that_does_not_fit_and_continues_there() -> None:
    assert page(ROWS, query=QUERY, offset=0, top_k=3, byte_budget=253) == {
        "total": 4,
        "returned": 2,
        "records": ROWS[:2],
        "truncated": True,
        "next_cursor": wire_cursor(2, QUERY),
    }


def test_the_last_page_has_no_cursor() -> None:
    assert page(ROWS, query=QUERY, offset=3, top_k=3, byte_budget=512) == {
        "total": 4,
        "returned": 1,
        "records": [{"id": "r3"}],
    }


# Huge values are never encoded -----------------------------------------------------------------


def peak_bytes(work: Any) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_cutting_two_huge_texts_encodes_neither() -> None:
    """5 million "é" is 30 MB escaped: while the first is cut, the second is still in the record."""
    record = {"a": "é" * 5_000_000, "b": "é" * 5_000_001}
    answers: list[Any] = []
    assert peak_bytes(lambda: answers.append(fit(record, 400))) < 2_000_000
    # 361 bytes spare: a (first of two as heavy) takes 183 of its 184, 27 escaped "é"; b gets 186.
    assert answers == [({"a": "é" * 27 + CLIP_MARK, "b": "é" * 27 + CLIP_MARK}, ["a", "b"])]


def test_a_huge_key_in_an_upstreams_object_is_never_encoded() -> None:
    record = {"id": "C-1", "extra": {"é" * 5_000_000: 1}}
    answers: list[Any] = []
    assert peak_bytes(lambda: answers.append(single(record, 512))) < 2_000_000
    assert answers == [{"record": {"id": "C-1", "extra": None}, "truncated": True, "clipped": ["extra"]}]


# Adapters against a fake client ----------------------------------------------------------------


def test_find_orders_cursor_is_bound_to_the_tool_the_email_and_the_status() -> None:
    orders = {"data": {"orders": [{"orderId": f"O-{n}"} for n in range(3)]}}
    answers = {"/v2/customers": CUSTOMERS, ORDERS: orders}
    first, fake = call("find_orders", answers, {"customer_email": EMAIL})
    query = {"tool": "find_orders", "customer_email": EMAIL, "status": None}
    assert first == {
        "total": 3,
        "returned": 2,
        "records": [{"order_id": "O-0"}, {"order_id": "O-1"}],
        "next_cursor": wire_cursor(2, query),
    }
    assert fake.requests == [("/v2/customers", {"email": EMAIL}), (ORDERS, {"status": None})]
    second, _ = call("find_orders", answers, {"customer_email": EMAIL, "cursor": first["next_cursor"]})
    assert second == {"total": 3, "returned": 1, "records": [{"order_id": "O-2"}]}


@pytest.mark.parametrize(
    ("listing", "what"),
    [
        (["not", "an", "object"], "the answer is not an object"),
        ({"data": ["orders"]}, "data is not an object"),
        ({"data": {"orders": {"O-1": {}}}}, "data.orders is not a list"),
    ],
)
def test_find_orders_says_which_part_of_the_listing_changed(listing: Any, what: str) -> None:
    answer, fake = refusal("find_orders", {"/v2/customers": CUSTOMERS, ORDERS: listing}, {"customer_email": EMAIL})
    assert answer == changed(what)
    assert [path for path, _ in fake.requests] == ["/v2/customers", ORDERS]


@pytest.mark.parametrize(
    ("customer", "addresses", "what"),
    [
        ({"data": {}}, "addresses", "the answer is not an object"),
        ({"data": {}}, {"data": "addresses"}, "data is not an object"),
        ({"data": {}}, {"data": {"items": {"home": {}}}}, "data.items is not a list"),
        (["a", "list"], {"data": {"items": []}}, "the answer is not an object"),  # the customer's own answer
    ],
)
def test_get_customer_says_which_part_of_an_answer_changed(customer: Any, addresses: Any, what: str) -> None:
    answers = {"/v2/customers/C-1": customer, "/v2/customers/C-1/addresses": addresses}
    answer, _ = refusal("get_customer", answers, {"customer_id": "C-1"})
    assert answer == changed(what)


@pytest.mark.parametrize("customer_id", ["C-1", "XXXX", "x", "A" * 64])
def test_get_customer_fetches_any_valid_id_as_one_segment(customer_id: str) -> None:
    customer = {"data": {"name": "Ada"}}
    addresses = {"data": {"items": [{"city": "London"}]}}
    answers = {f"/v2/customers/{customer_id}": customer, f"/v2/customers/{customer_id}/addresses": addresses}
    result, fake = call("get_customer", answers, {"customer_id": customer_id})
    assert result == {"record": {"name": "Ada", "cities": [{"city": "London"}]}}
    assert [path for path, _ in fake.requests] == list(answers)


@pytest.mark.parametrize("customer_id", ["", ".", "..", "x" * 257, 10**257])
def test_a_customer_id_that_is_not_one_segment_of_at_most_256_is_a_changed_answer(customer_id: Any) -> None:
    customers = {"data": {"items": [{"customerId": customer_id, "email": EMAIL}]}}
    answer, fake = refusal("find_orders", {"/v2/customers": customers}, {"customer_email": EMAIL})
    assert answer == changed("customerId is not an identifier")
    assert [path for path, _ in fake.requests] == ["/v2/customers"]


@pytest.mark.parametrize(
    ("customer_id", "segment"),
    [("x" * 256, "x" * 256), (10**255, "1" + "0" * 255), ("a/b?c#%2e", "a%2Fb%3Fc%23%252e"), ("X.Y", "X.Y")],
)
def test_a_customer_id_of_up_to_256_characters_is_sent_as_one_encoded_segment(customer_id: Any, segment: str) -> None:
    customers = {"data": {"items": [{"customerId": customer_id, "email": EMAIL}]}}
    listing = f"/v2/customers/{segment}/orders"
    result, fake = call(
        "find_orders", {"/v2/customers": customers, listing: {"data": {"orders": []}}}, {"customer_email": EMAIL}
    )
    assert result == {"total": 0, "returned": 0, "records": []}
    assert [path for path, _ in fake.requests] == ["/v2/customers", listing]


@pytest.mark.parametrize(("tool", "model"), [("find_orders", "FindOrders"), ("get_customer", "GetCustomer")])
@pytest.mark.parametrize("arguments", [["customer_email"], "customer_id=C-1", None])
def test_arguments_that_are_not_an_object_are_named_as_the_arguments(tool: str, model: str, arguments: Any) -> None:
    answer, fake = refusal(tool, {}, arguments)
    assert answer == {
        "error": {
            "kind": "invalid_argument",
            "message": f"arguments: Input should be a valid dictionary or instance of {model}",
            "advice": ADVICE["invalid_argument"],
        }
    }
    assert fake.requests == []


LISTING = SingleCallTool(
    description="A customer's orders. Each record has: {fields}.",
    path="/v2/customers/{customer_id}/orders",
    arguments={
        "customer_id": CallArgument(description="The customer id"),
        "status": CallArgument(description="Only this status", required=False, pattern="[a-z]+"),
    },
    records="data.orders",
    fields={"id": "orderId"},
)
LISTED = {"data": {"orders": [{"orderId": "O-1"}, {"orderId": "O-2"}, {"orderId": "O-3"}]}}


def single_call(arguments: dict[str, Any], answer: Any = LISTED) -> tuple[dict[str, Any], FakeClient]:
    fake = FakeClient({ORDERS: answer})
    tool = registry({}, {"orders_of": LISTING})["orders_of"]
    return tool(cast(LegacyClient, fake), Shape(top_k=2, fields={"orders_of": LISTING.fields}), arguments), fake


@pytest.mark.parametrize(
    ("arguments", "params", "query"),
    [
        ({"customer_id": "C-1"}, None, {"tool": "orders_of", "customer_id": "C-1"}),
        ({"customer_id": "C-1", "status": "paid"}, {"status": "paid"}, {"tool": "orders_of", "customer_id": "C-1"}),
    ],
)
def test_a_single_call_sends_only_the_arguments_given_and_binds_its_cursor_to_them(
    arguments: dict[str, Any], params: dict[str, Any] | None, query: dict[str, Any]
) -> None:
    result, fake = single_call(arguments)
    bound = query | (params or {})
    assert result == {
        "total": 3,
        "returned": 2,
        "records": [{"id": "O-1"}, {"id": "O-2"}],
        "next_cursor": wire_cursor(2, bound),
    }
    assert fake.requests == [(ORDERS, params)]
    rest, _ = single_call(arguments | {"cursor": result["next_cursor"]})
    assert rest == {"total": 3, "returned": 1, "records": [{"id": "O-3"}]}


@pytest.mark.parametrize("answer", [{"data": {"orders": {"O-1": {}}}}, {"data": None}, ["O-1"]])
def test_a_single_call_answer_without_its_list_is_upstream_unavailable_naming_the_path(answer: Any) -> None:
    with pytest.raises(ToolError) as failure:
        single_call({"customer_id": "C-1"}, answer)
    assert failure.value.result() == {
        "error": {
            "kind": "upstream_unavailable",
            "message": "the service's answer holds no list at data.orders: it has changed",
            "advice": ADVICE["upstream_unavailable"],
        }
    }


def test_a_path_naming_an_argument_twice_fills_each_of_its_segments() -> None:
    """Config takes such a path; each placeholder is the argument, encoded as a segment."""
    line = SingleCallTool(
        description="An order's line. It has: {fields}.",
        path="/v2/orders/{order_id}/lines/{order_id}",
        arguments={"order_id": CallArgument(description="The order id")},
        fields={"id": "data.id"},
    )
    fake = FakeClient({"/v2/orders/O%2F1/lines/O%2F1": {"data": {"id": "O/1"}}})
    tool = registry({}, {"order_line": line})["order_line"]
    result = tool(cast(LegacyClient, fake), Shape(fields={"order_line": line.fields}), {"order_id": "O/1"})
    assert (result, fake.requests) == ({"record": {"id": "O/1"}}, [("/v2/orders/O%2F1/lines/O%2F1", None)])


def test_a_single_call_tool_carries_its_declared_spec() -> None:
    tool = registry({}, {"orders_of": LISTING})["orders_of"]
    declared = LISTING.spec("orders_of")
    assert (tool.spec.name, tool.spec.description) == ("orders_of", declared.description)
    assert tool.spec.input_schema() == declared.input_schema()
    assert tool.spec.describe(["id"]) == "A customer's orders. Each record has: id."


# find_orders uses the customer of exactly the address asked for: the service's lookup may match
# loosely (by prefix, by a wildcard, or not at all), and the first item it answers may be anyone's.


@pytest.mark.parametrize(
    "items",
    [
        [{"customerId": "C-2", "email": "bob@example.com"}, {"customerId": "C-1", "email": EMAIL}],
        [{"customerId": "C-2"}, {"customerId": "C-1", "email": "ADA@Example.com"}],  # any case
        [None, {"customerId": "C-2", "email": [EMAIL]}, {"customerId": "C-1", "email": EMAIL}],
    ],
)
def test_find_orders_lists_the_orders_of_the_customer_with_the_address_asked_for(items: list[Any]) -> None:
    listing = {"data": {"orders": [{"orderId": "O-1"}]}}
    result, fake = call(
        "find_orders", {"/v2/customers": {"data": {"items": items}}, ORDERS: listing}, {"customer_email": EMAIL}
    )
    assert result["records"] == [{"order_id": "O-1"}]
    assert [path for path, _ in fake.requests] == ["/v2/customers", ORDERS]


@pytest.mark.parametrize(
    "items",
    [
        [{"customerId": "C-2", "email": "bob@example.com"}],  # a lookup that ignored the filter
        [{"customerId": "C-2", "email": "ada@example.com.evil"}, {"customerId": "C-3", "email": "xada@example.com"}],
        [{"customerId": "C-2"}],  # no address to tell
    ],
)
def test_find_orders_finds_no_customer_when_none_has_the_address_asked_for(items: list[Any]) -> None:
    answer, fake = refusal("find_orders", {"/v2/customers": {"data": {"items": items}}}, {"customer_email": EMAIL})
    assert answer["error"]["kind"] == "not_found"
    assert answer["error"]["message"] == "no customer has that e-mail address"
    assert [path for path, _ in fake.requests] == ["/v2/customers"]  # no one's orders were asked for


def test_find_orders_refuses_an_address_that_several_customers_have() -> None:
    items = [{"customerId": "C-1", "email": EMAIL}, {"customerId": "C-2", "email": EMAIL.upper()}]
    answer, fake = refusal("find_orders", {"/v2/customers": {"data": {"items": items}}}, {"customer_email": EMAIL})
    assert answer == {
        "error": {
            "kind": "invalid_argument",
            "message": "customer_email: more than one customer has that e-mail address",
            "advice": ADVICE["invalid_argument"],
        }
    }
    assert [path for path, _ in fake.requests] == ["/v2/customers"]


@pytest.mark.parametrize(
    "email",
    [
        "*@example.com",
        "%@example.com",
        "a*b@example.com",
        "ada@exa%mple.com",
        'a"b@example.com',
        "a b@example.com",
        "ada@example",
    ],
)
def test_find_orders_refuses_an_address_with_a_wildcard_or_another_mark_no_address_holds(email: str) -> None:
    answer, fake = refusal("find_orders", {}, {"customer_email": email})
    assert answer["error"]["kind"] == "invalid_argument"
    assert answer["error"]["message"].startswith("customer_email: String should match pattern")
    assert fake.requests == []


@pytest.mark.parametrize(
    "email", ["ada@example.com", "Ada.Lovelace+orders@mail.example.co.uk", "o'brien@example.com", "a_b-c@ex-ample.io"]
)
def test_find_orders_takes_the_addresses_people_have(email: str) -> None:
    items = [{"customerId": "C-1", "email": email}]
    answers = {"/v2/customers": {"data": {"items": items}}, ORDERS: {"data": {"orders": []}}}
    assert call("find_orders", answers, {"customer_email": email})[0]["total"] == 0
