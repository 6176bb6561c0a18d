"""AgentCore Memory as the agent reads it, call by call (agent.memory.SessionMemory): the requests
it makes, what it keeps of the answers, and the log line of a failed call.

ListEvents answers newest first (the SDK's get_last_k_turns reads its first page as the last
turns), so asking for ``history_turns`` events gets the last ones; the agent sorts them by time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import ANY, Stubber

from agent import app as _agent_app  # noqa: F401 - the service logger memory's child logger writes through
from agent.memory import MAX_QUERY, SessionMemory
from tests.lambdas.conftest import logged

MEMORY_ID = "memory_one-a1b2c3d4e5"
ACTOR = "customer-gold/user-1"
SESSION = "session-" + "0" * 32
NAMESPACES = ("/actors/{actorId}/facts", "/actors/{actorId}/sessions/{sessionId}")


@pytest.fixture
def client() -> Iterator[tuple[Any, Stubber]]:
    made = boto3.client("bedrock-agentcore", region_name="us-east-1")
    with Stubber(made) as stubber:
        yield made, stubber
        stubber.assert_no_pending_responses()


def memory(client: Any, *, history: int = 2, recall: int = 2) -> SessionMemory:
    return SessionMemory(client, MEMORY_ID, NAMESPACES, history_turns=history, recall_records=recall)


def event(n: int, roles: tuple[str, ...] = ("USER", "ASSISTANT")) -> dict[str, Any]:
    return {
        "memoryId": MEMORY_ID,
        "actorId": ACTOR,
        "sessionId": SESSION,
        "eventId": f"e-{n}",
        "eventTimestamp": dt.datetime(2026, 11, 29, 10, n, tzinfo=dt.UTC),
        "payload": [{"conversational": {"role": role, "content": {"text": f"{role.lower()} {n}"}}} for role in roles],
    }


def listed(maximum: int) -> dict[str, Any]:
    return {
        "memoryId": MEMORY_ID,
        "actorId": ACTOR,
        "sessionId": SESSION,
        "includePayloads": True,
        "maxResults": maximum,
    }


def turn(n: int) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": [{"text": f"user {n}"}]},
        {"role": "assistant", "content": [{"text": f"assistant {n}"}]},
    ]


def summary(text: str, score: float | None) -> dict[str, Any]:
    found: dict[str, Any] = {
        "memoryRecordId": f"mem-{text.replace(' ', '-'):<40}",
        "content": {"text": text},
        "memoryStrategyId": "facts",
        "namespaces": ["/actors/x/facts"],
        "createdAt": dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
    }
    if score is not None:
        found["score"] = score
    return found


# --- history ---------------------------------------------------------------------------------------


def test_one_turn_of_history_is_one_turn(client: tuple[Any, Stubber]) -> None:
    made, stubber = client
    stubber.add_response("list_events", {"events": [event(7)]}, listed(1))
    assert memory(made, history=1).history(ACTOR, SESSION) == turn(7)


class NoCalls:
    """A client no call may reach (a call raises what the memory's best effort does not catch)."""

    def __getattr__(self, operation: str) -> Any:
        raise AssertionError(f"{operation} called")


def test_no_history_asked_is_no_call() -> None:
    assert memory(NoCalls(), history=0).history(ACTOR, SESSION) == []


def test_a_long_history_asks_for_the_most_one_call_may_return(client: tuple[Any, Stubber]) -> None:
    """ListEvents takes at most 100 results a call; a setting above it asks for 100."""
    made, stubber = client
    stubber.add_response("list_events", {"events": [event(n) for n in range(3)]}, listed(100))
    assert memory(made, history=150).history(ACTOR, SESSION) == [*turn(0), *turn(1), *turn(2)]


def test_an_event_this_agent_did_not_write_is_skipped_and_the_rest_kept(client: tuple[Any, Stubber]) -> None:
    made, stubber = client
    events = [event(1), event(2, roles=("USER",)), event(3, roles=("ASSISTANT", "USER")), event(4)]
    stubber.add_response("list_events", {"events": events}, listed(4))
    assert memory(made, history=4).history(ACTOR, SESSION) == [*turn(1), *turn(4)]


class Answering:
    """ListEvents answering what Stubber would refuse to queue: events missing what the API promises."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def list_events(self, **_: Any) -> dict[str, Any]:
        return {"events": self.events}


def test_an_event_without_a_time_or_a_text_is_skipped_not_the_turns_failure() -> None:
    """Memory is best effort: an incomplete answer loses its incomplete events, never the turn."""
    undated = {key: value for key, value in event(2).items() if key != "eventTimestamp"}
    textless = event(3)
    textless["payload"][1]["conversational"]["content"] = {}
    events = [event(1), undated, textless, {**event(4), "eventTimestamp": None}, event(5)]
    assert memory(Answering(events), history=5).history(ACTOR, SESSION) == [*turn(1), *turn(5)]


@pytest.mark.parametrize(("part", "blank"), [(0, ""), (1, " \n"), (1, "\u3000\t")])
def test_an_event_with_blank_text_is_skipped(client: tuple[Any, Stubber], part: int, blank: str) -> None:
    """Converse refuses a blank text block: read back, such an event (an answer of whitespace the
    gateway remembered) would fail every later turn of the session. It is left out."""
    made, stubber = client
    blanked = event(2)
    blanked["payload"][part]["conversational"]["content"]["text"] = blank
    events = [event(1), blanked, event(3)]
    if blank:  # the API's minimum length is 1: an empty text only from what Stubber would refuse
        stubber.add_response("list_events", {"events": events}, listed(3))
        assert memory(made, history=3).history(ACTOR, SESSION) == [*turn(1), *turn(3)]
    else:
        assert memory(Answering(events), history=3).history(ACTOR, SESSION) == [*turn(1), *turn(3)]


def test_an_answer_without_events_or_an_event_without_a_payload_is_no_history() -> None:
    class Bare:
        def __init__(self, answer: dict[str, Any]) -> None:
            self.answer = answer

        def list_events(self, **_: Any) -> dict[str, Any]:
            return self.answer

        def retrieve_memory_records(self, **_: Any) -> dict[str, Any]:
            return self.answer

    assert memory(Bare({}), history=5).history(ACTOR, SESSION) == []
    payloadless = {key: value for key, value in event(1).items() if key != "payload"}
    assert memory(Bare({"events": [payloadless, event(2)]}), history=5).history(ACTOR, SESSION) == turn(2)
    assert memory(Bare({}), recall=2).recall(ACTOR, SESSION, "where do I live?") == []


# --- recall ----------------------------------------------------------------------------------------


def test_no_records_asked_is_no_call_whatever_the_query() -> None:
    assert memory(NoCalls(), recall=0).recall(ACTOR, SESSION, "where do I live?") == []


def test_a_blank_query_is_no_call() -> None:
    assert memory(NoCalls()).recall(ACTOR, SESSION, " \n\t") == []


def test_one_record_asked_reads_each_namespace_of_the_caller_and_keeps_the_best(client: tuple[Any, Stubber]) -> None:
    made, stubber = client
    query = "q" * (MAX_QUERY + 5)
    for namespace, records in (
        (f"/actors/{ACTOR}/facts", [summary("ships to Lisbon", 0.4)]),
        (f"/actors/{ACTOR}/sessions/{SESSION}", [summary("asked about refunds", 0.7)]),
    ):
        stubber.add_response(
            "retrieve_memory_records",
            {"memoryRecordSummaries": records},
            {
                "memoryId": MEMORY_ID,
                "namespace": namespace,
                "searchCriteria": {"searchQuery": "q" * MAX_QUERY, "topK": 1},
                "maxResults": 1,
            },
        )
    assert memory(made, recall=1).recall(ACTOR, SESSION, query) == ["asked about refunds"]


def test_a_record_without_a_score_ranks_below_every_scored_one(client: tuple[Any, Stubber]) -> None:
    made, stubber = client
    stubber.add_response(
        "retrieve_memory_records",
        {"memoryRecordSummaries": [summary("unscored", None), summary("weak", 0.2), summary("strong", 0.9)]},
        {"memoryId": MEMORY_ID, "namespace": ANY, "searchCriteria": ANY, "maxResults": 3},
    )
    stubber.add_response("retrieve_memory_records", {"memoryRecordSummaries": []}, None)
    assert memory(made, recall=3).recall(ACTOR, SESSION, "anything") == ["strong", "weak", "unscored"]


# --- failures: best effort, each logged by operation and code, never the caller's text -------------


def test_a_failed_history_read_is_logged_with_its_operation_and_code(
    client: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    made, stubber = client
    capsys.readouterr()
    # A code the service model has no exception class for: the error is a plain ClientError.
    stubber.add_client_error("list_events", "RequestTimeout", http_status_code=408)
    assert memory(made).history(ACTOR, SESSION) == []
    (line,) = logged(capsys, "memory call failed")
    assert (line["level"], line["operation"], line["code"]) == ("WARNING", "list_events", "RequestTimeout")


def test_a_failed_recall_is_logged_and_the_other_namespaces_still_read(
    client: tuple[Any, Stubber], capsys: pytest.CaptureFixture[str]
) -> None:
    made, stubber = client
    capsys.readouterr()
    stubber.add_client_error("retrieve_memory_records", "AccessDeniedException", http_status_code=403)
    stubber.add_response("retrieve_memory_records", {"memoryRecordSummaries": [summary("kept", 0.5)]}, None)
    assert memory(made).recall(ACTOR, SESSION, "private question") == ["kept"]
    (line,) = logged(capsys, "memory call failed")
    assert (line["operation"], line["code"]) == ("retrieve_memory_records", "AccessDeniedException")
    assert "private question" not in str(line)


class Unreachable:
    """A client whose every call fails before an answer (no network: botocore's own error)."""

    def list_events(self, **_: Any) -> Any:
        raise EndpointConnectionError(endpoint_url="https://bedrock-agentcore.us-east-1.amazonaws.com")


def test_a_call_that_never_got_an_answer_is_logged_by_the_errors_kind(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert memory(Unreachable()).history(ACTOR, SESSION) == []
    (line,) = logged(capsys, "memory call failed")
    assert (line["operation"], line["code"]) == ("list_events", "EndpointConnectionError")
