"""shared.bodies: the bounds on a JSON body's objects and arrays, checked before a model's
validation could hold an error for each of their keys or items."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from shared.bodies import MAX_ARRAY_ITEMS, MAX_OBJECT_KEYS, BodyError, check_counts, json_bytes


def keys(count: int) -> dict[str, int]:
    return {f"{n:x}": 0 for n in range(count)}


@pytest.mark.parametrize(
    "value",
    [
        keys(MAX_OBJECT_KEYS),
        [0] * MAX_ARRAY_ITEMS,
        {"a": [keys(MAX_OBJECT_KEYS)] * 3, "b": [[0] * MAX_ARRAY_ITEMS]},
        "text",
        None,
        5,
    ],
    ids=["keys-at-the-bound", "items-at-the-bound", "nested-at-the-bounds", "text", "null", "number"],
)
def test_values_within_the_bounds_pass(value: Any) -> None:
    check_counts(value)
    data = json.dumps(value).encode()
    assert json_bytes(data.decode(), False) == data


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (keys(MAX_OBJECT_KEYS + 1), "body: an object has 257 keys; at most 256 are read"),
        ([0] * (MAX_ARRAY_ITEMS + 1), "body: an array has 1001 items; at most 1000 are read"),
        ({"a": [{"b": [keys(300)]}]}, "body: an object has 300 keys; at most 256 are read"),
        ({"a": [[0, [0] * 5000]]}, "body: an array has 5000 items; at most 1000 are read"),
    ],
    ids=["keys", "items", "nested-keys", "nested-items"],
)
def test_an_object_or_array_past_its_bound_is_refused_wherever_it_is(value: Any, message: str) -> None:
    with pytest.raises(BodyError) as refused:
        check_counts(value)
    assert str(refused.value) == message
    with pytest.raises(BodyError) as refused:
        json_bytes(json.dumps(value), False)
    assert str(refused.value) == message


def test_the_bounds_are_the_callers_to_choose() -> None:
    check_counts({"a": [0, 0]}, max_keys=1, max_items=2)
    with pytest.raises(BodyError, match="at most 1 are read"):
        json_bytes('{"a": 0, "b": 0}', False, max_keys=1)
    with pytest.raises(BodyError, match="at most 2 are read"):
        json_bytes("[0, 0, 0]", False, max_items=2)


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_nan_or_infinity_does_not_switch_the_count_off(token: str) -> None:
    """pydantic's model_validate_json reads them: a count that could not would let a body of
    500,000 unknown keys and one NaN through to a model that holds an error per key."""
    body = json.dumps(keys(MAX_OBJECT_KEYS + 1))[:-1] + f', "x": {token}}}'
    with pytest.raises(BodyError, match="258 keys; at most 256"):
        json_bytes(body, False)


def test_text_that_is_not_json_is_left_for_the_model_to_name() -> None:
    text = "{" + "x" * 5000
    assert json_bytes(text, False) == text.encode()


def test_the_transport_is_undone_first() -> None:
    """Base64 and UTF-8 are checked as body_bytes checks them, then the bound on what they hold."""
    encoded = base64.b64encode(json.dumps(keys(MAX_OBJECT_KEYS + 1)).encode()).decode()
    with pytest.raises(BodyError, match="257 keys"):
        json_bytes(encoded, True)
    with pytest.raises(BodyError, match="not valid base64"):
        json_bytes("{not base64", True)
