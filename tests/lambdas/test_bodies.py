"""shared.bodies: the bounds on a JSON body's objects and arrays, checked before a model's
validation could hold an error for each of their keys or items."""

from __future__ import annotations

import base64
import json
import re
import tracemalloc
from typing import Any

import pytest
from hypothesis import example, given, strategies as st
from pydantic import BaseModel, ValidationError

from shared.bodies import (
    _STRING,
    MAX_ARGUMENT_DEPTH,
    MAX_ARRAY_ITEMS,
    MAX_OBJECT_KEYS,
    MAX_PROBLEMS,
    MAX_VALUES,
    BodyError,
    Problem,
    body_bytes,
    check_arguments,
    check_counts,
    check_values,
    clip,
    field,
    first_problems,
    json_bytes,
    listing,
    problems,
    shown,
)


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


def nested(depth: int) -> list[Any]:
    """Arrays nested ``depth`` levels deep (a list within a list ...)."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (keys(MAX_OBJECT_KEYS + 1), "arguments: an object has 257 keys; at most 256 are read"),
        ({"ids": [0] * (MAX_ARRAY_ITEMS + 1)}, "arguments: an array has 1001 items; at most 1000 are read"),
        ({"q": "a\ud800b"}, "arguments: a text holds a lone surrogate, not UTF-8 text"),
        ({"\udfff": 1}, "arguments: a text holds a lone surrogate, not UTF-8 text"),
        ({"a": [{"b": ["\ud83d"]}]}, "arguments: a text holds a lone surrogate, not UTF-8 text"),
        (
            {"a": nested(MAX_ARGUMENT_DEPTH)},
            f"arguments: objects and arrays nest deeper than {MAX_ARGUMENT_DEPTH} levels",
        ),
        # Deeper than json.dumps recurses (a RecursionError out of the interceptor, were it not refused first).
        ({"a": nested(5_000)}, f"arguments: objects and arrays nest deeper than {MAX_ARGUMENT_DEPTH} levels"),
    ],
    ids=["keys", "items", "surrogate-value", "surrogate-key", "surrogate-nested", "too-deep", "deeper-than-encoding"],
)
def test_tool_arguments_past_a_bound_or_not_utf8_are_named_as_the_arguments(arguments: Any, message: str) -> None:
    with pytest.raises(BodyError) as refused:
        check_arguments(arguments)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "arguments",
    [
        None,
        {},
        keys(MAX_OBJECT_KEYS),
        {"q": "caf\u00e9 \U0001f600 \u202e", "n": [1.5, None, True]},
        {"a": nested(MAX_ARGUMENT_DEPTH - 1)},
    ],
    ids=["none", "empty", "keys-at-the-bound", "any-utf8-text", "depth-at-the-bound"],
)
def test_tool_arguments_within_the_bounds_in_utf8_pass(arguments: Any) -> None:
    check_arguments(arguments)


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


# A body of millions of tiny values is refused on its bytes: a parser would build a Python object for
# each (6 MB of "{}," is two million dicts, over 200 MB) before any bound on an object or array.
@pytest.mark.parametrize(
    ("data", "values"),
    [
        (b"[" + b"{}," * 2_000_000 + b"{}]", 2_000_002),  # the array and its 2,000,001 objects
        (b'{"records": [], "x": [' + b"0," * 300_000 + b"0]}", 300_002),  # the 300,001 zeros and "records"
        (b"[" * 300_000 + b"]" * 300_000, 300_000),
    ],
    ids=["empty-objects", "numbers", "nesting"],
)
def test_a_body_of_more_values_than_any_request_holds_is_refused_before_it_is_parsed(data: bytes, values: int) -> None:
    tracemalloc.start()
    try:
        with pytest.raises(BodyError) as refused:
            json_bytes(data.decode(), False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(refused.value) == f"body: holds at least {values} values; at most {MAX_VALUES} are read"
    assert peak < 5 * len(data), f"{peak / 2**20:.0f} MiB"  # copies of the text, no parsed values


def test_separators_inside_strings_are_not_values() -> None:
    """A long text full of commas and brackets, escaped quotes included, is one value."""
    text = json.dumps({"body": '",[{' * 500_000 + "\\" + '"'})
    check_values(text.encode())
    assert json_bytes(text, False) == text.encode()


@given(st.binary(max_size=200))
@example(b"\\")  # a lone backslash at the end
@example(b"\\\n")  # an escaped line break: JSON has none, the count must still not fail
def test_a_string_once_started_always_matches_so_the_count_is_linear(rest: bytes) -> None:
    """re.sub tries the string pattern at every quote: a match that could fail after scanning to
    the end (a string that never closes, as in 500 KB of \\" pairs) would make the count scan from
    every quote again, the square of the length. One that never closes runs to the end instead."""
    match = _STRING.match(b'"' + rest)
    assert match is not None
    if b'"' not in rest.replace(b"\\\\", b"").replace(b'\\"', b""):  # no quote that closes it
        assert match.end() == 1 + len(rest)


PLAIN_STRING = re.compile(rb'"[^"\\]*(?:\\.?[^"\\]*)*(?:"|\Z)', re.DOTALL)  # the same, backtracking


@given(st.binary(max_size=200).map(lambda b: b.replace(b"x", b'"').replace(b"y", b"\\")))
def test_the_possessive_string_pattern_finds_what_the_plain_one_does(data: bytes) -> None:
    assert [m.span() for m in _STRING.finditer(data)] == [m.span() for m in PLAIN_STRING.finditer(data)]


def test_a_string_of_escapes_is_counted_in_memory_that_does_not_grow_with_it() -> None:
    """A plain repeat kept backtracking state per escape: 90 bytes of memory per byte of body."""
    data = b'["' + b"\\a" * 1_000_000 + b'"]'  # 2 MB
    tracemalloc.start()
    try:
        assert _STRING.sub(b'""', data) == b'[""]'
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # not a copy of the body, let alone 90 of them


def test_a_body_of_quotes_that_never_close_is_counted_as_one_string() -> None:
    data = b"[" + b'\\"' * 250_001 + b"]"  # over 2 * MAX_VALUES bytes: the count runs
    assert _STRING.sub(b'""', data) == b'[\\""'  # the first quote opens a string that runs to the end
    check_values(data)  # then the model refuses it: it is not JSON


def test_a_listing_names_the_first_ten_and_counts_the_rest() -> None:
    texts = [f"records.{n}.id: a repeat" for n in range(25)]
    assert listing(texts) == "; ".join(texts[:MAX_PROBLEMS]) + "; and 15 more"
    assert listing(texts[:MAX_PROBLEMS]) == "; ".join(texts[:MAX_PROBLEMS])
    assert listing(texts[:3], 40) == "; ".join(texts[:3]) + "; and 37 more"  # the first of 40 only


def test_the_values_bound_is_the_callers_to_choose() -> None:
    check_values(b"[0, 0, 0]", max_values=3)
    with pytest.raises(BodyError, match=r"^arguments: holds at least 4 values; at most 3 are read$"):
        check_values(b"[0, 0, 0, 0]", max_values=3, whole="arguments")


# --- the reading and the wording, one function at a time (make mutate TARGET=bodies) -------------


@pytest.mark.parametrize(
    ("body", "encoded", "message"),
    [
        ("\ud800", False, "body: not UTF-8 text"),  # a lone surrogate: no client could have sent it
        ("aGk=!!", True, "body: not valid base64"),  # outside the alphabet: refused, not skipped
        ("aGk", True, "body: not valid base64"),  # padding missing
        ("/w==", True, "body: not UTF-8 text"),  # valid base64 of the byte 0xff
        ("\u00e9", True, "body: not valid base64"),  # base64 is ASCII
    ],
)
def test_a_body_that_is_not_text_says_which(body: str, encoded: bool, message: str) -> None:
    with pytest.raises(BodyError) as refused:
        body_bytes(body, encoded)
    assert str(refused.value) == message


def test_a_body_is_its_bytes_and_no_body_is_empty() -> None:
    assert body_bytes(None, False) == b""
    assert body_bytes(None, True) == b""
    assert body_bytes("aGk=", True) == b"hi"
    assert body_bytes("caf\u00e9", None) == "caf\u00e9".encode()


def test_text_that_is_not_json_is_counted_as_if_it_were() -> None:
    """From two bytes a value the count runs (three commas are four values); below, nothing is
    counted, not even five commas (a parser refuses them, holding nothing)."""
    with pytest.raises(BodyError, match=r"^body: holds at least 4 values; at most 3 are read$"):
        check_values(b"0,0,0,", max_values=3)
    check_values(b",,,,,", max_values=3)


def test_the_counts_run_from_the_smallest_body_that_could_break_one() -> None:
    """An array's item takes two bytes at least: nine bytes hold four items, one past three."""
    with pytest.raises(BodyError, match=r"^body: an array has 4 items; at most 3 are read$"):
        json_bytes("[0,0,0,0]", False, max_items=3)
    with pytest.raises(BodyError, match=r"^body: an array has 4 items; at most 3 are read$"):
        json_bytes("[NaN,NaN,Infinity,NaN]", False, max_items=3)  # the grammar the models read


@pytest.mark.parametrize(
    ("loc", "kwargs", "named"),
    [
        (("body", "messages", 0, "content"), {}, "messages.0.content"),
        (("path", "output_type"), {}, "output_type"),
        (("body",), {}, "body"),  # the value itself: not JSON, not an object
        (("body", 0), {}, "body"),  # an item of a top-level list has no field's name
        ((), {"whole": "arguments"}, "arguments"),
        (("body", "a", "b"), {"envelope": ()}, "body.a.b"),  # "body" may be a field's own name
        (("x" * 80,), {}, "x" * 63 + "…"),
        (("a\nb",), {}, "a?b"),
    ],
)
def test_a_field_is_named_by_its_path(loc: tuple[Any, ...], kwargs: dict[str, Any], named: str) -> None:
    assert field(loc, **kwargs) == named


def test_a_callers_text_is_clipped_to_its_limit_with_the_last_character_a_mark() -> None:
    assert clip("a" * 64) == "a" * 64
    assert clip("a" * 65) == "a" * 63 + "…"
    assert shown("b" * 60) == "b" * 60
    assert shown("b" * 61) == "b" * 59 + "…"
    assert shown("c" * 20 + "\x1b", 10) == "c" * 9 + "…"
    assert shown("c\u202ed", 10) == "c?d"


class _Pair(BaseModel):
    a: int
    b: int


def test_problems_name_the_field_the_message_and_the_type_never_the_input() -> None:
    with pytest.raises(ValidationError) as invalid:
        _Pair.model_validate({"b": "secret-value"})
    listed, count = first_problems(invalid.value)
    assert (count, listed) == (
        2,
        [
            Problem("a", "Field required", "missing"),
            Problem("b", "Input should be a valid integer, unable to parse string as an integer", "int_parsing"),
        ],
    )
    assert "secret-value" not in problems(invalid.value)


def test_problems_of_a_value_that_is_no_object_are_the_wholes() -> None:
    with pytest.raises(ValidationError) as invalid:
        _Pair.model_validate_json("[1, 2]")
    assert problems(invalid.value) == "body: Input should be an object"
    assert problems(invalid.value, whole="arguments") == "arguments: Input should be an object"
    assert first_problems(invalid.value, whole="arguments")[0][0].field == "arguments"
    assert first_problems(invalid.value)[0][0].field == "body"


def test_problems_keep_a_leading_body_when_there_is_no_envelope() -> None:
    class Wrapped(BaseModel):
        body: _Pair

    with pytest.raises(ValidationError) as invalid:
        Wrapped.model_validate({"body": {"a": 1}})
    assert problems(invalid.value) == "b: Field required"  # "body" read as the request's envelope
    assert problems(invalid.value, envelope=()) == "body.b: Field required"
    assert first_problems(invalid.value, envelope=())[0][0].field == "body.b"
