"""Property: the live tool-call evaluator answers any CloudWatch Logs subscription event (any
payload, base64 or gzip corrupted or not, any log event message: the gateway's own JSON lines,
whose tool names and arguments the model wrote) with its counts, never an exception: what it
cannot read is counted as rejected and logged by kind, never by content; a metric's dimension is
a tool or agent name, ``invalid`` or ``unknown``, never anything else the turn held.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
from typing import Any

from hypothesis import HealthCheck, example, given, settings, strategies as st

from evaluation import handler
from tests.lambdas.conftest import FakeContext
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written

SETTINGS = dict(
    max_examples=150,
    deadline=None,
    # capsys is read (and so emptied) at the start of each example.
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
SECRET = "ada-secret@example.com"  # what a caller's arguments hold: never in a log line
ORDERS = "orders___find_orders"
NAMES = re.compile(r"[A-Za-z0-9_.:-]{1,128}")

tool_names = st.sampled_from([ORDERS, "knowledge___knowledge_search", "", "n" * 200, "two words"]) | hostile_text(10)
calls = st.fixed_dictionaries(
    {},
    optional={
        "name": tool_names | json_values,
        "arguments": st.just({"customer_email": SECRET})
        | st.dictionaries(st.text(max_size=8), json_values)
        | json_values,
        "ok": st.booleans() | json_values,
    },
)
turns = st.fixed_dictionaries(
    {"message": st.just("agent turn")},
    optional={
        "tool_calls": st.lists(calls | json_values, max_size=4) | json_values,
        "evaluation_case": st.sampled_from(["orders-shipped", "refund-policy", "nope"]) | json_values,
        "agent": st.sampled_from(["support_assistant", "", "a b"]) | hostile_text(10) | json_values,
        "prompt": st.just(SECRET),
    },
)


def line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value


ODD_MESSAGES = {
    "empty": "",
    "deep list": "[" * 5000,
    "deep tool calls": '{"message": "agent turn", "tool_calls": [' + "[" * 3000 + "]}",
}
messages = st.one_of(
    turns.map(line),
    turns.map(json.dumps),  # with \\ud800 escapes: a lone surrogate once parsed
    json_values.map(json.dumps),
    hostile_text(30),
    st.sampled_from(sorted(ODD_MESSAGES)).map(ODD_MESSAGES.__getitem__),
)
log_events = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=5) | json_values,
        "timestamp": st.integers() | json_values,
        "message": messages | messages | json_values,
    },
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "messageType": st.sampled_from(["DATA_MESSAGE", "CONTROL_MESSAGE"]) | json_values,
        "owner": st.just("123456789012"),
        "logGroup": st.just("/aws/lambda/gateway") | hostile_text(10),
        "logEvents": st.lists(log_events | json_values, max_size=5) | json_values,
    },
)


def wrapped(raw: bytes) -> dict[str, Any]:
    return {"awslogs": {"data": base64.b64encode(gzip.compress(raw)).decode()}}


@st.composite
def subscription_events(draw: st.DrawFn) -> Any:
    """An event as the subscription sends it, or one corrupted at any of its layers."""
    payload = draw(payloads | json_values)
    raw = draw(st.just(json.dumps(payload).encode()) | st.binary(max_size=64))
    layer = draw(st.integers(0, 9))
    if layer == 0:  # the gzip corrupted: flipped, cut short or trailing bytes
        compressed = bytearray(gzip.compress(raw))
        at = draw(st.integers(0, len(compressed) - 1))
        compressed[at] ^= draw(st.integers(1, 255))
        cut = draw(st.integers(0, len(compressed)))
        return {"awslogs": {"data": base64.b64encode(bytes(compressed[:cut])).decode()}}
    if layer == 1:  # not base64, or not gzip
        data = draw(hostile_text(40) | st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()))
        return {"awslogs": {"data": data}}
    if layer == 2:  # not the envelope
        return draw(
            json_values | st.fixed_dictionaries({"awslogs": json_values | st.fixed_dictionaries({"data": json_values})})
        )
    return wrapped(raw)


def decoded_messages(event: Any) -> list[Any] | None:
    try:
        payload = json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"], validate=True)))
        if payload.get("messageType") == "CONTROL_MESSAGE":  # the subscription's health check: nothing to read
            return []
        return [e.get("message") if isinstance(e, dict) else None for e in payload["logEvents"]]
    except Exception:
        return None


def emitted_dimensions(out: str) -> list[str]:
    found = []
    for printed_line in out.splitlines():
        if '"_aws"' in printed_line:
            document = json.loads(printed_line)
            for declared in document["_aws"]["CloudWatchMetrics"]:
                found += [document[name] for names in declared["Dimensions"] for name in names]
    return found


@settings(**SETTINGS)  # type: ignore[arg-type]
@given(event=subscription_events())
@example(event={"awslogs": {"data": "not base64!"}})
@example(event=wrapped(b"\x1f\x8b"))
@example(event=wrapped(json.dumps({"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1", "message": 7}]}).encode()))
@example(event=wrapped(json.dumps({"messageType": "DATA_MESSAGE", "logEvents": [{"id": "1"}]}).encode()))
@example(event=wrapped(json.dumps({"messageType": "DATA_MESSAGE", "logEvents": None}).encode()))
@example(event=wrapped(b"[" * 100_000))
@example(event=[])
def test_any_subscription_event_is_counted_never_raised(event: Any, capsys: Any) -> None:
    capsys.readouterr()
    answer = handler.lambda_handler(event, FakeContext())
    assert set(answer) == {"turns", "golden_cases", "rejected"}
    assert all(isinstance(count, int) and count >= 0 for count in answer.values())
    out = capsys.readouterr().out
    assert SECRET not in out
    for value in emitted_dimensions(out):
        assert value in ("invalid", "unknown") or NAMES.fullmatch(value), value
    messages = decoded_messages(event)
    if messages is None:
        # An unreadable batch is counted, not dropped.
        assert answer["turns"] == 0
        assert answer["rejected"] >= 1


def test_a_payload_that_expands_past_the_bound_is_rejected_not_decompressed(capsys: Any) -> None:
    """A gzip bomb: 17 MiB of one character is some 17 KB compressed."""
    bomb = gzip.compress(b'{"logEvents": ["' + b"a" * (handler.MAX_BATCH_BYTES + 1024) + b'"]}')
    answer = handler.lambda_handler({"awslogs": {"data": base64.b64encode(bomb).decode()}}, FakeContext())
    assert answer == {"turns": 0, "golden_cases": 0, "rejected": 1}
    (rejected,) = [json.loads(out) for out in capsys.readouterr().out.splitlines() if "log batch rejected" in out]
    assert rejected["error"] == "too large"


def test_the_subscriptions_control_message_is_no_rejected_turn() -> None:
    control = {
        "messageType": "CONTROL_MESSAGE",
        "logEvents": [{"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination"}],
    }
    assert handler.lambda_handler(wrapped(json.dumps(control).encode()), FakeContext()) == {
        "turns": 0,
        "golden_cases": 0,
        "rejected": 0,
    }
