"""Legacy API tools in config: a chained tool names its fields, a single-call tool is declared whole."""

from __future__ import annotations

import json

import pytest

from legacy_tools.contract import SingleCallTool
from stacks.config import LEGACY_TOOLS
from tests.test_config import error_lines, load

GET_ORDER = {
    "description": "One order. The record has: {fields}.",
    "path": "/v2/orders/{order_id}",
    "arguments": {"order_id": {"description": "The order id", "pattern": "^O-[0-9]{5}$"}},
    "fields": {"order_id": "data.orderId"},
}
TOOLS = "production.legacy_apis.orders.tools"


def test_a_single_call_tool_is_declared_in_config_alone() -> None:
    api = load({f"{TOOLS}.get_order": json.dumps(GET_ORDER)}).production.legacy_apis["orders"]
    assert set(api.chained_tools()) == {"find_orders"}
    (name, declared), *_ = api.single_call_tools().items()
    assert name == "get_order"
    assert isinstance(declared, SingleCallTool)
    assert api.declared_fields("get_order") == ["order_id"]
    assert declared.spec(name).input_schema()["required"] == ["order_id"]


def test_a_field_map_must_name_a_chained_tool_in_code() -> None:
    (line,) = error_lines({f"{TOOLS}.get_order": json.dumps({"order_id": "data.orderId"})})
    assert line.startswith(f"blueprint.{TOOLS}.get_order")
    assert "no code implements this chained tool (a single-call tool declares a path)" in line
    assert all(tool in line for tool in LEGACY_TOOLS)


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({"path": "/v2/orders/{id}"}, "", "path placeholder {id} must be a required argument"),
        ({"path": "/v2/orders?id=1"}, ".path", "must be a path such as /v2/orders/{order_id}"),
        ({"fields": {"total": "pricing..amount"}}, ".fields.total", "must be a field path"),
        ({"arguments": {"Order": {"description": "x"}}}, ".arguments", "this name must be 1 to 64 lowercase"),
        (
            {"arguments": {f"a{n}": {"description": "x"} for n in range(65)}, "path": "/v2/orders"},
            ".arguments",
            "Dictionary should have at most 64 items",
        ),
    ],
)
def test_a_bad_single_call_tool_is_named_with_its_key_in_words(
    change: dict[str, object], key: str, expected: str
) -> None:
    lines = error_lines({f"{TOOLS}.get_order": json.dumps(GET_ORDER | change)})
    assert any(line.startswith(f"blueprint.{TOOLS}.get_order{key}") and expected in line for line in lines), lines
    assert not any("single_call" in line or "chained" in line.split(":")[0] for line in lines), lines
