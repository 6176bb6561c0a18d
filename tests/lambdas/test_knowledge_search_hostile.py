"""knowledge_search against arguments and Retrieve answers of the wrong shape: a bad argument is
the caller's invalid_argument (never sent to Retrieve), and an odd result never raises."""

from __future__ import annotations

import json
from typing import Any

import pytest

from knowledge_search.handler import search
from shared.bodies import MAX_OBJECT_KEYS
from shared.display import CONTROLS, MAX_LOCATOR_CHARS
from tests.lambdas.bedrock_fakes import answering_raw

KB = "KBPROD1234"
SCOPED = {"data_classifications": ["public"]}


class Runtime:
    """A Retrieve that answers anything, even what botocore's Stubber would refuse to queue."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.calls: list[dict[str, Any]] = []

    def retrieve(self, **request: Any) -> Any:
        self.calls.append(request)
        return self.response


GOOD = {
    "content": {"text": "Refunds within 30 days."},
    "location": {"type": "S3", "s3Location": {"uri": "s3://curated/policy.pdf"}},
    "score": 0.82,
    "metadata": {"classification": "public"},
}


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"query": "   "}, "query"),
        ({"query": "\n\t"}, "query"),
        ({"query": "q", "max_results": True}, "max_results"),
        ({"query": "q", "max_results": "5"}, "max_results"),
        ({"query": "q", "max_results": 5.0}, "max_results"),
    ],
)
def test_a_blank_query_or_a_non_integer_max_results_is_invalid_argument(arguments: dict[str, Any], field: str) -> None:
    runtime = Runtime({"retrievalResults": []})
    result = search(runtime, KB, {**arguments, **SCOPED})
    assert result["error"]["kind"] == "invalid_argument"
    assert result["error"]["message"].startswith(f"{field}:")
    assert runtime.calls == []  # refused before Retrieve, so never an upstream failure to retry


def test_more_arguments_than_any_call_holds_are_refused_before_they_are_validated() -> None:
    """As the tools gateway's interceptor refuses them: counted here too, since 600,000 unknown
    keys took this 256 MB function to 999 MB while pydantic held an error for each."""
    runtime = Runtime({"retrievalResults": []})
    flood = {f"k{i}": 1 for i in range(MAX_OBJECT_KEYS)}
    result = search(runtime, KB, {"query": "refunds", **SCOPED, **flood})
    assert result["error"]["kind"] == "invalid_argument"
    assert result["error"]["message"].startswith("arguments: an object has")
    assert runtime.calls == []


@pytest.mark.parametrize(
    "result",
    [
        {"content": None},
        {"content": "text"},
        {"content": {"text": None}},
        {"content": {"text": 42}},
        {},
        None,
        "passage",
    ],
)
def test_a_result_without_text_is_skipped(result: Any) -> None:
    runtime = Runtime({"retrievalResults": [result, GOOD]})
    answer = search(runtime, KB, {"query": "refunds", **SCOPED})
    assert answer["returned"] == 1
    assert answer["passages"][0]["source"] == "s3://curated/policy.pdf"


@pytest.mark.parametrize(
    ("odd", "passage"),
    [
        ({"location": {"type": "CUSTOM"}}, {"source": None}),
        ({"location": None}, {"source": None}),
        ({"location": {"s3Location": None}}, {"source": None}),
        ({"location": {"s3Location": {"uri": ["s3://a"]}}}, {"source": None}),
        ({"score": "high"}, {"score": None}),
        ({"score": True}, {"score": None}),
        ({"score": float("nan")}, {"score": None}),  # botocore's json.loads reads NaN and Infinity
        ({"score": float("-inf")}, {"score": None}),
    ],
)
def test_an_odd_location_metadata_or_score_reads_as_absent(odd: dict[str, Any], passage: dict[str, Any]) -> None:
    runtime = Runtime({"retrievalResults": [{**GOOD, **odd}]})
    answer = search(runtime, KB, {"query": "refunds", **SCOPED})
    expected = {
        "excerpt": "Refunds within 30 days.",
        "source": "s3://curated/policy.pdf",
        "score": 0.82,
        "classification": "public",
    }
    assert answer == {"passages": [{**expected, **passage}], "returned": 1}


@pytest.mark.parametrize(
    "metadata",
    [
        {"classification": "restricted"},  # the store did not apply the filter
        {"classification": "Public"},
        {"classification": ["public"]},
        {},
        None,
        "public",
    ],
)
def test_a_passage_of_no_classification_the_caller_may_read_is_never_returned(
    metadata: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The Retrieve filter is the Knowledge Base's to apply; its answer is checked again."""
    runtime = Runtime({"retrievalResults": [{**GOOD, "metadata": metadata}, GOOD]})
    answer = search(runtime, KB, {"query": "refunds", **SCOPED})
    assert [p["classification"] for p in answer["passages"]] == ["public"]
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if "left out" in x]
    assert (line["level"], line["left_out"]) == ("WARNING", 1)


@pytest.mark.parametrize("response", [{}, {"retrievalResults": None}, {"retrievalResults": "x"}, None])
def test_an_answer_without_a_result_list_has_no_passages(response: Any) -> None:
    answer = search(Runtime(response), KB, {"query": "refunds", **SCOPED})
    assert answer == {"passages": [], "returned": 0}


def test_an_excerpt_loses_its_control_characters_and_a_source_shows_them_encoded() -> None:
    """An uploaded document is someone else's text: an escape sequence, C1 controls and bidi
    overrides would change how the agent's transcript or a reader's terminal shows it. Whitespace
    controls still separate words; every other control goes."""
    text = "Refunds\x1b[2J within\x1f30\u202edays\x85ok\x9b.\u2066"
    uri = "s3://curated/a\x1b]0;x\x07\u202e.pdf"
    runtime = Runtime(
        {"retrievalResults": [{**GOOD, "content": {"text": text}, "location": {"s3Location": {"uri": uri}}}]}
    )
    passage = search(runtime, KB, {"query": "refunds", **SCOPED})["passages"][0]
    assert passage["excerpt"] == "Refunds[2J within 30days ok."
    assert passage["source"] == "s3://curated/a%1B]0;x%07%E2%80%AE.pdf"
    assert not CONTROLS.search(passage["excerpt"] + passage["source"])


def test_text_with_a_lone_surrogate_is_answered_as_utf_8_can_carry_it() -> None:
    """JSON can escape half a surrogate pair ("\\ud83d"); the runtime encodes the tool's answer as
    UTF-8, which cannot hold one, so the invocation would fail with no tool error at all."""
    runtime = Runtime(
        {
            "retrievalResults": [
                {
                    "content": {"text": "Refunds \ud83d in 30 days"},
                    "location": {"s3Location": {"uri": "s3://curated/\udc00.pdf"}},
                    "metadata": {"classification": "public"},  # (one with a surrogate is no caller's)
                }
            ]
        }
    )
    answer = search(runtime, KB, {"query": "refunds", **SCOPED})
    (passage,) = answer["passages"]
    assert (passage["excerpt"], passage["source"], passage["classification"]) == (
        "Refunds \ufffd in 30 days",
        "s3://curated/\ufffd.pdf",
        "public",
    )
    json.dumps(answer, ensure_ascii=False).encode()  # as the runtime sends it


def test_a_locator_of_exactly_the_limit_is_returned_whole() -> None:
    uri = "s3://curated/" + "a" * (MAX_LOCATOR_CHARS - len("s3://curated/"))
    result = {**GOOD, "location": {"s3Location": {"uri": uri}}}
    (passage,) = search(Runtime({"retrievalResults": [result]}), KB, {"query": "q", **SCOPED})["passages"]
    assert passage["source"] == uri


def test_an_answer_of_more_results_than_asked_or_of_huge_locators_stays_within_bounds() -> None:
    """Lambda returns at most 6 MB: 20,000 results for 2 asked, or a 7 MB URI, would fail the
    invocation instead of answering."""
    result = {**GOOD, "location": {"s3Location": {"uri": "s3://curated/" + "a" * 7_000_000}}}
    answer = search(Runtime({"retrievalResults": [result] * 20_000}), KB, {"query": "q", "max_results": 2, **SCOPED})
    assert answer["returned"] == 2
    assert [len(passage["source"]) for passage in answer["passages"]] == [MAX_LOCATOR_CHARS] * 2
    assert answer["passages"][0]["source"].endswith("a…")
    assert len(json.dumps(answer)) < 10_000


@pytest.mark.parametrize(
    "body",
    [
        b'{"retrievalResults": [{"content": {"text": "x"}, "score": "high"}]}',
        b'{"retrievalResults": [{"content": {"text": "x"}, "score": ' + b"9" * 401 + b"}]}",
        b'{"retrievalResults": [{"content": "x"}]}',
        b'{"retrievalResults": {"a": 1}}',
    ],
    ids=["a score of text", "a score past a float", "a content of text", "results of an object"],
)
def test_an_answer_botocore_cannot_read_is_the_knowledge_bases_failure_not_a_crash(body: bytes) -> None:
    """botocore's parser raises int()'s and float()'s own errors, not botocore's: the call failed."""
    answer = search(answering_raw("bedrock-agent-runtime", "Retrieve", body), KB, {"query": "q", **SCOPED})
    assert answer["error"]["kind"] == "upstream_unavailable"
    assert answer["error"]["message"] == "knowledge base failed with InvalidResponse"
    assert "retry_after" not in answer["error"]


@pytest.mark.parametrize(
    ("code", "status", "retry_after"),
    [
        ("ThrottlingException", 429, 5),
        ("ServiceUnavailableException", 503, 5),
        ("AccessDeniedException", 403, None),
        ("ValidationException", 400, None),
        ("Bad\nCode\u202e" * 500, 400, None),
    ],
)
def test_only_a_throttled_or_unavailable_knowledge_base_is_worth_a_retry(
    code: str, status: int, retry_after: int | None
) -> None:
    """A refusal (access, validation) fails the same way again; an error code that is not one
    (a newline, a bidi override, 6,000 characters) is named as a ClientError, never echoed."""
    body = json.dumps({"__type": code, "message": "no"}).encode()
    answer = search(answering_raw("bedrock-agent-runtime", "Retrieve", body, status), KB, {"query": "q", **SCOPED})
    shown = code if retry_after or code.isalnum() else "ClientError"
    assert answer["error"]["message"] == f"knowledge base failed with {shown}"
    assert answer["error"].get("retry_after") == retry_after
