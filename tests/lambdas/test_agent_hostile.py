"""The agent against hostile bodies: what the runtime's JSON parser cannot read, and refusals that
would echo whatever the caller sent. Each gets a short JSON 4xx in the agent's own shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3

from tests.lambdas.test_agent import (  # noqa: F401 - the agent's fixtures
    ACTOR,
    MEMORY_ID,
    NAMESPACES,
    SESSION,
    Captured,
    Runtime,
    agentcore,
    converse,
    runtime,
)


def post_raw(agent: Runtime, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    response = urllib3.PoolManager().request(
        "POST",
        f"{agent.base}/invocations",
        body=body,
        headers={"Content-Type": "application/json", **headers},
        timeout=30,
    )
    return response.status, response.data


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="arrays-nested-past-the-recursion-limit"),
        pytest.param(b'{"a":' * 50_000 + b"1" + b"}" * 50_000, id="objects-nested-past-the-recursion-limit"),
        pytest.param(b'{"prompt": "hi", "max_tokens": ' + b"9" * 5_000 + b"}", id="an-integer-of-5000-digits"),
        pytest.param(b'{"prompt": "\xff\xfe"}', id="not-utf-8"),
        pytest.param(b"", id="empty"),
        pytest.param(b"{nope", id="not-json"),
    ],
)
def test_a_body_the_parser_cannot_read_is_a_json_400_in_the_agents_shape(
    runtime: Runtime,  # noqa: F811 - the agent tests' fixture, imported above
    body: bytes,
    capfd: pytest.CaptureFixture[str],
) -> None:
    status, raw = post_raw(runtime, body, runtime.caller())
    answer = json.loads(raw)
    assert (status, answer["error"], answer["session_id"]) == (400, "invalid_request", SESSION)
    assert "Traceback" not in "".join(capfd.readouterr())
    assert runtime.tools.seen == []


def test_a_body_that_reads_is_still_answered_after_the_check(
    runtime: Runtime,  # noqa: F811 - the agent tests' fixture, imported above
) -> None:
    # Past the middleware the runtime still gets the whole body: the agent's own 400 for a list.
    status, answer = runtime.post([1, 2], runtime.caller())
    assert (status, answer["error"]) == (400, "invalid_request")


def test_a_refused_model_list_is_echoed_cut_short(
    runtime: Runtime,  # noqa: F811 - the agent tests' fixture, imported above
) -> None:
    models: list[Any] = ["m" * 1_000_000, *(f"model-{n}" for n in range(50))]
    status, raw = post_raw(runtime, json.dumps({"prompt": "hi", "models": models}).encode(), runtime.caller())
    answer = json.loads(raw)
    assert (status, answer["error"]) == (403, "model_forbidden")
    assert len(raw) < 1_000
    assert f"{'m' * 63}…" in answer["message"]
    assert "m" * 64 not in answer["message"]
    assert "model-49" not in answer["message"]


def test_a_model_id_utf_8_cannot_encode_is_refused_as_a_403_not_a_500(
    runtime: Runtime,  # noqa: F811 - the agent tests' fixture, imported above
    capfd: pytest.CaptureFixture[str],
) -> None:
    """JSON carries a lone surrogate ("\\ud800"); echoed in the refusal, the response could not be
    encoded and the runtime answered its own 500, a stack trace in the log."""
    status, raw = post_raw(runtime, b'{"prompt": "hi", "models": ["m\\ud800x"]}', runtime.caller())
    answer = json.loads(raw)
    assert (status, answer["error"]) == (403, "model_forbidden")
    assert answer["message"].endswith("m?x")
    assert "Traceback" not in "".join(capfd.readouterr())


@pytest.mark.parametrize("content", ["", "   ", "\n\t"])
def test_a_blank_message_is_refused_before_any_tool_or_model_call(
    runtime: Runtime,  # noqa: F811 - the agent tests' fixture, imported above
    content: str,
) -> None:
    """As a blank prompt is: Bedrock refuses blank text, but only after the tools session is open."""
    status, answer = runtime.post({"messages": [{"role": "user", "content": content}]}, runtime.caller())
    assert (status, answer["error"]) == (400, "invalid_request")
    assert runtime.tools.seen == []


def _turns(count: int) -> list[dict[str, str]]:
    """``count`` messages, alternating, the last one the user's."""
    return [{"role": "user" if (count - n) % 2 else "assistant", "content": f"turn {n}"} for n in range(count)]


def test_more_messages_than_the_gateway_ever_sends_are_refused_before_any_tool_or_model_call(
    runtime: Runtime,  # noqa: F811 - the agent tests' fixture, imported above
) -> None:
    """An 11 MB body of tiny messages took about 215 MB before the model call; the gateway, the only
    caller, sends at most MAX_MESSAGES (its routes refuse more)."""
    from shared.bodies import MAX_MESSAGES

    status, answer = runtime.post({"messages": _turns(MAX_MESSAGES + 1)}, runtime.caller())
    assert (status, answer["error"], answer["message"]) == (400, "invalid_request", f"messages: at most {MAX_MESSAGES}")
    assert runtime.tools.seen == []
    # As many as the gateway sends: a turn like any other (no history is read: the caller sent it).
    for template in NAMESPACES:
        runtime.memory.add_response(
            "retrieve_memory_records",
            {"memoryRecordSummaries": []},
            {
                "memoryId": MEMORY_ID,
                "namespace": template.format(actorId=ACTOR, sessionId=SESSION),
                "searchCriteria": {"searchQuery": f"turn {MAX_MESSAGES - 1}", "topK": 2},
                "maxResults": 2,
            },
        )
    seen = Captured()
    converse(runtime.model, [{"text": "Done."}], "end_turn", messages=seen)
    status, answer = runtime.post({"messages": _turns(MAX_MESSAGES)}, runtime.caller())
    assert (status, answer["answer"]) == (200, "Done.")
    assert len(seen.values[0]) == MAX_MESSAGES
