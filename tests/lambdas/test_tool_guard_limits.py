"""The tools gateway's interceptor holds what a caller chooses to bounds (a probe's findings).

A batch's size is capped before any message in it is looked at, and a call's arguments before
any target validates them; the conversation header is used
only when it is a conversation id; a tool name is cut wherever it is echoed; an answer to a plain
tool call that carries a tools list is filtered like a listing; and a string answer leaves as JSON
even when it came with NaN or an infinity in it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any, NoReturn

import pytest

from shared.headers import CONVERSATION_HEADER
from shared.telemetry import CONVERSATION
from shared.tools import CONVERSATION_ARGUMENT
from tests.lambdas.test_tool_binding import SEARCH
from tests.lambdas.test_tool_guard_hostile import (  # noqa: F401 - interceptor, deployed: fixtures
    FOREIGN,
    LIST,
    OTHER,
    SHADOW,
    answer,
    auth,
    call,
    deployed,
    emitted,
    entries,
    forwarded,
    handled,
    interceptor,
    listing_answer,
    refused,
    request,
)
from tool_guard import handler as guard

STRANGERS = [*FOREIGN, SHADOW]


def strict(text: str) -> Any:
    """JSON as a strict reader takes it: NaN and the infinities are no JSON."""

    def refuse(constant: str) -> NoReturn:
        raise ValueError(f"{constant} in the output")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the interceptor's logger writes (its JSON lines, appended keys and all) from here on."""
    handler = guard.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


# A batch's size


def test_a_batch_over_the_cap_is_refused_whole_with_one_error_before_any_message_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unexpected(message: Any, caller: Any) -> NoReturn:
        raise AssertionError("a message of an oversized batch was checked")

    batch = [call(OTHER, {}, id=n) for n in range(guard.MAX_BATCH + 1)]
    monkeypatch.setattr(guard, "_checked", unexpected)
    assert refused(request(batch)) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32600, "message": f"a batch may carry at most {guard.MAX_BATCH} messages"},
    }


def test_a_batch_at_the_cap_passes() -> None:
    batch = [call(OTHER, {}, id=n) for n in range(guard.MAX_BATCH)]
    assert forwarded(request(batch)) == batch


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_an_oversized_batch_of_refused_calls_costs_one_log_line_and_no_metrics(
    deployed: None,  # noqa: F811
    logged: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    error = refused(handled([call(SHADOW, id=n) for n in range(20_000)]))
    assert error["error"]["code"] == -32600
    assert emitted(capsys.readouterr().out) == []
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["batch refused: too many messages"]


# Arguments' size


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({f"k{n}": 0 for n in range(600_000)}, "arguments: an object has 600000 keys; at most 256 are read"),
        ({"query": "q", "filters": [0] * 5_000}, "arguments: an array has 5000 items; at most 1000 are read"),
        (
            {"query": "q", "deep": [{"x": {f"k{n}": 0 for n in range(300)}}]},
            "arguments: an object has 300 keys; at most 256 are read",
        ),
    ],
    ids=["keys", "items", "nested"],
)
def test_arguments_larger_than_any_tool_takes_are_refused_before_a_target_validates_them(
    arguments: dict[str, Any], message: str
) -> None:
    """A tool function's validation held an error for each unknown key: 600,000 took the knowledge
    search from 109 MB to 999 MB (it has 256 MB). The interceptor refuses them first, for every
    target, with the bound."""
    for tool in (SEARCH, OTHER):
        assert refused(request(call(tool, arguments))) == {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {"code": -32602, "message": message},
        }


@pytest.mark.parametrize("arguments", [{"query": "\ud800"}, {"\udfff": 1}, {"query": "q", "deep": [{"x": "a\udc80b"}]}])
def test_a_lone_surrogate_anywhere_in_the_arguments_is_refused_for_every_target(arguments: dict[str, Any]) -> None:
    """JSON can escape half a surrogate pair; no UTF-8 can hold one: a legacy tool failed such a call
    as unexpected (retry in 30 s), so every target's call is refused here, as invalid params."""
    for tool in (SEARCH, OTHER):
        assert refused(request(call(tool, arguments))) == {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {"code": -32602, "message": "arguments: a text holds a lone surrogate, not UTF-8 text"},
        }


def test_arguments_at_the_bounds_pass() -> None:
    arguments = {"query": "q", **{f"k{n}": 0 for n in range(250)}, "list": [0] * 1_000}
    assert forwarded(request(call(OTHER, arguments)))["params"]["arguments"] == arguments


# The conversation header


@pytest.mark.parametrize(
    "value",
    [
        "c" * 257,  # more than knowledge search takes: every search would fail
        "c" * 5000,
        "conv 7",
        "conv-7\n",
        "conv-7\x00",
        "conv/7",
        "ü" * 10,
        '{"level": "ERROR"}',
    ],
)
def test_a_conversation_header_not_of_a_conversation_ids_form_is_neither_written_nor_logged(
    value: str, logged: io.StringIO
) -> None:
    guard.logger.remove_keys([CONVERSATION])  # (tests calling intercept() directly leave keys behind)
    headers = {"Authorization": auth(), CONVERSATION_HEADER: value}
    sent = forwarded(request(call(SEARCH, {"query": "q"}), headers))
    assert CONVERSATION_ARGUMENT not in sent["params"]["arguments"]
    refused(request(call(SHADOW), headers))  # a log line after the header was seen
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    assert "tool call refused" in [line["message"] for line in lines]
    assert not [line for line in lines if CONVERSATION in line or value in json.dumps(line)]


@pytest.mark.parametrize(
    "value",
    [
        "s" + "0123456789abcdef" * 4,  # what the AI gateway issues (runtime_session_id)
        "6f1c1b9e-3f5a-4c57-9a52-0d9f3a1f2c11",
        "c" * 256,
    ],
)
def test_a_conversation_id_is_written_into_a_search(value: str) -> None:
    sent = forwarded(request(call(SEARCH, {"query": "q"}), {"Authorization": auth(), CONVERSATION_HEADER: value}))
    assert sent["params"]["arguments"][CONVERSATION_ARGUMENT] == value


# Tool names echoed


def test_a_refused_tool_name_is_cut_in_the_error_and_the_log(caplog: pytest.LogCaptureFixture) -> None:
    error = refused(request(call("A" * 1_000_000, {})))
    assert error["error"]["message"] == f"tool {'A' * (guard.SHOWN - 1)}… is not available to this caller"
    (record,) = [record for record in caplog.records if record.getMessage() == "tool call refused"]
    assert vars(record)["tool"] == f"{'A' * (guard.SHOWN - 1)}…"


# A tools list in an answer to a call


def smuggled(answer_id: int = 5) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": answer_id, "result": {"content": [], "tools": entries(*STRANGERS, OTHER)}}


def sse(message: Any) -> str:
    return f"event: message\ndata: {json.dumps(message)}\n\n"


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(lambda message: message, id="object"),
        pytest.param(json.dumps, id="string of JSON"),
        pytest.param(sse, id="SSE"),
        pytest.param(lambda message: [message], id="batch"),
    ],
)
def test_a_tools_list_in_an_answer_to_a_call_is_filtered_to_the_callers_tools(shape: Any) -> None:
    body = answer(call(OTHER, {}, id=5), shape(smuggled()))
    text = body if isinstance(body, str) else json.dumps(body)
    assert not [name for name in STRANGERS if name in text]
    assert OTHER in text


def test_an_answer_to_a_call_without_a_tools_list_passes_unchanged_in_any_shape() -> None:
    result = {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "tools"}]}}
    for body in (result, json.dumps(result), sse(result), "not json at all", "", None):
        assert answer(call(OTHER), body) == body


# Answers that are no JSON


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_a_string_answer_with_a_non_finite_number_is_refused_as_unreadable(number: str) -> None:
    text = json.dumps(listing_answer(entries(OTHER))).replace('"properties": {}', f'"default": {number}')
    body = answer(LIST, text)
    assert strict(body if isinstance(body, str) else json.dumps(body, allow_nan=False)) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32603, "message": "the tools list could not be read"},
    }


def test_an_sse_event_with_a_non_finite_number_becomes_an_error_event() -> None:
    good = listing_answer(entries(OTHER))
    bad = json.dumps(good).replace('"properties": {}', '"default": NaN')
    body = answer(LIST, f"data: {bad}\n\n{sse(good)}")
    events = [strict(line.removeprefix("data: ")) for line in body.splitlines() if line.startswith("data: ")]
    assert events[0]["error"]["code"] == -32603
    assert [tool["name"] for tool in events[1]["result"]["tools"]] == [OTHER]
