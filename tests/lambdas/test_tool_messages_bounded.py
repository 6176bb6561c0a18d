"""knowledge_search and the web MCP server word a bad call with the shared bounded wording
(shared.bodies.problems), as legacy_tools does: arguments of a couple of hundred unknown keys, each
a kilobyte long, get a short message naming the first few clipped, and a count of the rest; more
keys than any call holds (shared.bodies.check_counts) are refused by their count alone."""

from __future__ import annotations

import json
from typing import Any

import pytest

from knowledge_search.handler import search
from shared.bodies import MAX_FIELD_CHARS, MAX_OBJECT_KEYS, MAX_PROBLEMS
from web_mcp.server import MAX_BODY_BYTES, call

KB = "KBPROD1234"
UNKNOWN = 200  # with the known arguments, under MAX_OBJECT_KEYS
# Each key names itself in its first characters and is far longer than a message may quote.
KEYS = {f"k{n:05d}{'x' * 1000}": 0 for n in range(UNKNOWN)}
BOUND = MAX_PROBLEMS * (MAX_FIELD_CHARS + 40) + 40


class NoRetrieve:
    def retrieve(self, **request: Any) -> Any:
        raise AssertionError("a refused call must not reach Retrieve")


def _bounded(message: str, listed_before: int = 0) -> None:
    assert len(message) < BOUND, len(message)
    assert message.count("Extra inputs are not permitted") == MAX_PROBLEMS - listed_before
    assert message.endswith(f"; and {UNKNOWN + listed_before - MAX_PROBLEMS} more")
    assert f"k00000{'x' * (MAX_FIELD_CHARS - 7)}…" in message  # clipped, marked where it was cut
    assert "x" * MAX_FIELD_CHARS not in message


def test_knowledge_search_names_a_few_unknown_keys_clipped_and_counts_the_rest() -> None:
    result = search(NoRetrieve(), KB, {"query": "q", "data_classifications": ["public"], **KEYS})
    assert result["error"]["kind"] == "invalid_argument"
    _bounded(result["error"]["message"])


def test_knowledge_search_answer_stays_small_however_many_keys_it_is_sent() -> None:
    """200,000 short keys made a 7.7 MB answer, past Lambda's 6 MB response limit; they are
    refused by their count before pydantic holds an error for each."""
    arguments = {"query": "q", "data_classifications": ["public"], **{f"{n:x}": 0 for n in range(200_000)}}
    result = search(NoRetrieve(), KB, arguments)
    assert result["error"]["kind"] == "invalid_argument"
    assert len(json.dumps(result)) < 2000
    assert result["error"]["message"] == f"arguments: an object has 200002 keys; at most {MAX_OBJECT_KEYS} are read"


def test_knowledge_search_without_classifications_is_forbidden_and_says_so_first() -> None:
    """The missing scope is named before the unknown keys, so the bound never hides it."""
    result = search(NoRetrieve(), KB, {"query": "q", **KEYS})
    assert result["error"]["kind"] == "forbidden"
    assert result["error"]["message"].startswith("data_classifications: Field required; ")
    _bounded(result["error"]["message"], listed_before=1)


@pytest.mark.parametrize(
    ("scope", "why"),
    [
        ({}, "Field required"),
        # What the interceptor writes for a group without classifications, after counting the call.
        ({"data_classifications": None}, "not a list of classifications"),
        ({"data_classifications": []}, "not a list of classifications"),
    ],
    ids=["absent", "null", "empty"],
)
def test_knowledge_search_without_classifications_is_forbidden_however_many_keys_it_is_sent(
    scope: dict[str, Any], why: str
) -> None:
    flood = {f"{n:x}": 0 for n in range(MAX_OBJECT_KEYS)}
    result = search(NoRetrieve(), KB, {"query": "q", **scope, **flood})
    assert result["error"]["kind"] == "forbidden"
    keys = MAX_OBJECT_KEYS + 1 + len(scope)
    assert result["error"]["message"] == (
        f"data_classifications: {why}; arguments: an object has {keys} keys; at most {MAX_OBJECT_KEYS} are read"
    )


def test_web_mcp_names_a_few_unknown_keys_clipped_and_counts_the_rest() -> None:
    arguments = {"url": "https://example.com/", "caller_group": "researchers", **KEYS}
    assert len(json.dumps(arguments)) < 4 * MAX_BODY_BYTES  # the transport's cap is not what bounds it
    result = call(None, "web_fetch", arguments)  # type: ignore[arg-type]  # refused before the tools
    assert result.is_error
    error = (result.structured_content or {})["error"]
    assert error["kind"] == "invalid_argument"
    assert error["reason"] == "invalid_argument"
    assert error["message"].startswith("invalid arguments: ")
    _bounded(error["message"])
    # The message twice (text and structured content), escaped: a few kilobytes, never the keys.
    assert len(result.model_dump_json(by_alias=True, exclude_none=True)) < 3 * BOUND
