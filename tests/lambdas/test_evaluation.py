"""The deterministic tool-call evaluator: its arithmetic on hand-built traces, and the recorded
traces held to the configured floor."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from evaluation import handler
from evaluation.evaluator import (
    Call,
    Expected,
    GoldenCase,
    argument_score,
    calls_from,
    evaluate,
    load_golden_set,
    same,
    score,
)
from stacks.config import all_tools, load_config
from stacks.production.tool_binding import bindings, qualified
from tests.lambdas.conftest import FakeContext
from tools.eval import EvalInputError, recorded, recorded_calls, shortfall, table

ORDERS = "orders___find_orders"
SEARCH = "knowledge___knowledge_search"
CASE = GoldenCase(
    id="c",
    prompt="p",
    group="g",
    expected=Expected(ORDERS, {"customer_email": "ada@example.com", "status": "shipped"}),
    alternatives=(Expected(SEARCH, {"query": "order status"}),),
)


@pytest.mark.parametrize(
    ("calls", "selection", "arguments", "success"),
    [
        ([Call(ORDERS, {"customer_email": "ada@example.com", "status": "shipped"})], 1.0, 1.0, 1.0),
        # Normalized values match: case and spaces in text.
        ([Call(ORDERS, {"customer_email": " ADA@example.com", "status": "Shipped"})], 1.0, 1.0, 1.0),
        # Partial credit: one of two arguments right.
        ([Call(ORDERS, {"customer_email": "ada@example.com", "status": "placed"})], 1.0, 0.5, 1.0),
        # A missing argument and an invented one both cost: 1 of 3 keys right.
        ([Call(ORDERS, {"customer_email": "ada@example.com", "limit": 5})], 1.0, 1 / 3, 1.0),
        # The cursor is ignored.
        ([Call(ORDERS, {"customer_email": "ada@example.com", "status": "shipped", "cursor": "x"})], 1.0, 1.0, 1.0),
        # An allowed alternative counts as the right tool.
        ([Call(SEARCH, {"query": "Order status"})], 1.0, 1.0, 1.0),
        # The right tool only after a wrong one: half credit for selection.
        (
            [Call("customers___get_customer", {"customer_id": "C-1"}), Call(ORDERS, CASE.expected.arguments)],
            0.5,
            1.0,
            1.0,
        ),
        # Never the right tool.
        ([Call("customers___get_customer", {"customer_id": "C-1"}, ok=False)], 0.0, 0.0, 0.0),
        # No call at all.
        ([], 0.0, 0.0, 0.0),
        # A failed call, then the same call succeeding.
        ([Call(ORDERS, CASE.expected.arguments, ok=False), Call(ORDERS, CASE.expected.arguments)], 1.0, 1.0, 0.5),
    ],
)
def test_a_case_is_scored_on_selection_arguments_and_success(
    calls: list[Call], selection: float, arguments: float, success: float
) -> None:
    result = score(CASE, calls)
    assert (result.selection, result.arguments, result.success) == pytest.approx((selection, arguments, success))


def test_the_best_accepted_answer_for_the_chosen_tool_counts() -> None:
    case = GoldenCase(
        id="k",
        prompt="p",
        group="g",
        expected=Expected(SEARCH, {"query": "return window"}),
        alternatives=(Expected(SEARCH, {"query": "refund policy"}),),
    )
    assert score(case, [Call(SEARCH, {"query": "Refund policy"})]).arguments == 1.0
    assert argument_score({}, {}) == 1.0
    assert argument_score({"ids": [1, 2]}, {"ids": [2, 1.0]}) == 1.0


def test_numbers_too_large_for_a_float_are_compared_not_overflowed() -> None:
    assert same(10**400, 10**400)
    assert not same(10**400, 1.5)
    assert not same(1e308, 10**400)
    assert same(3, 3.0)


@pytest.mark.parametrize(
    ("expected", "sent", "equal"),
    [
        (1, True, False),  # a boolean is no number: the tools refuse one where a number goes
        (True, 1, False),
        (0, False, False),
        (True, True, True),
        ([True], [1], False),
        (["a", "a"], ["a", "b"], False),  # each item matched once
        (["a", "b"], ["b", "A "], True),
        ([1, 1, 2], [2, 1, 1.0], True),
    ],
)
def test_values_match_as_a_person_would_read_them_and_no_more(expected: Any, sent: Any, equal: bool) -> None:
    assert same(expected, sent) is equal


def test_a_case_no_right_tool_answered_is_unanswered() -> None:
    """Right tool, right arguments, but every call of it failed: it helped no one."""
    failed = [Call(ORDERS, CASE.expected.arguments, ok=False)]
    report = evaluate([CASE], {"c": [*failed, Call("customers___get_customer", {}, ok=True)]})
    assert (report.tool_selection_accuracy, report.argument_accuracy, report.unanswered) == (1.0, 1.0, ("c",))
    assert evaluate([CASE], {"c": [*failed, Call(SEARCH, {"query": "q"})]}).unanswered == ()  # an alternative did
    assert shortfall(evaluate([CASE], {"c": failed}), 0.8) == "no call of a right tool succeeded in c"
    assert shortfall(evaluate([CASE], {"c": [Call(ORDERS, CASE.expected.arguments)]}), 0.8) is None


def test_a_score_below_the_floor_never_reads_as_equal_to_it() -> None:
    half = [Call(ORDERS, {"customer_email": "ada@example.com", "status": "placed"})]  # arguments 0.5
    other = GoldenCase(id="d", prompt="p", group="g", expected=Expected(ORDERS, CASE.expected.arguments))
    report = evaluate([CASE, other, other], {"c": half, "d": [Call(ORDERS, CASE.expected.arguments)]})
    assert report.argument_accuracy == pytest.approx(5 / 6)
    assert shortfall(report, 0.8334) == "scored 0.8333, floor 0.8334"
    assert shortfall(report, 0.9) == "scored 0.83, floor 0.90"


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            [{"case": "c", "tool_calls": []}, {"case": "c", "tool_calls": []}],
            'line 2 is not a trace {"case", "tool_calls"} (case "c" is recorded by an earlier line too)',
        ),
        ([{"case": None, "tool_calls": []}], 'line 1 is not a trace {"case", "tool_calls"} ("case" is null, not a'),
        ([{"case": "", "tool_calls": []}], 'line 1 is not a trace {"case", "tool_calls"} ("case" is "", not a'),
    ],
)
def test_a_trace_file_recording_a_case_twice_or_no_case_is_refused(
    tmp_path: Path, lines: list[dict[str, Any]], problem: str
) -> None:
    """Recorded twice, which line counted would depend on their order: a failing recording
    could hide behind a passing one."""
    traces = tmp_path / "traces.jsonl"
    traces.write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(EvalInputError) as refused:
        recorded_calls(traces)
    assert str(refused.value).startswith(f"{traces}: {problem}")


def test_aggregates_are_means_over_cases_and_success_over_calls() -> None:
    other = GoldenCase(id="d", prompt="p", group="g", expected=Expected(SEARCH, {"query": "q"}))
    report = evaluate(
        [CASE, other],
        {
            "c": [Call(ORDERS, {"customer_email": "ada@example.com", "status": "placed"})],
            "d": [Call(ORDERS, {}, ok=False)] * 3,
        },
    )
    assert report.tool_selection_accuracy == pytest.approx(0.5)  # (1 + 0) / 2
    assert report.argument_accuracy == pytest.approx(0.25)  # (0.5 + 0) / 2
    assert report.call_success_rate == pytest.approx(0.25)  # 1 ok call of 4


def test_the_golden_set_names_only_tools_that_exist_and_groups_that_may_use_them(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context).production
    tools = {qualified(target, tool) for tool, target in all_tools(config.legacy_apis).items()}
    allowed = bindings(config)
    cases = load_golden_set()
    assert len({c.id for c in cases}) == len(cases) >= 10
    for case in cases:
        for answer in case.accepted:
            assert answer.tool in tools, (case.id, answer.tool)
            assert answer.tool in allowed[case.group], (case.id, case.group, answer.tool)


def test_recorded_traces_meet_the_configured_floor(cdk_context: dict[str, Any]) -> None:
    floor = load_config(cdk_context).production.observability
    report = recorded()
    assert len(report.cases) == len(load_golden_set())
    assert report.tool_selection_accuracy >= floor.tool_accuracy_floor, table(report)
    assert report.argument_accuracy >= floor.tool_accuracy_floor, table(report)


def subscription_event(messages: list[str]) -> dict[str, Any]:
    data = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": "/aws/lambda/gateway",
        "logStream": "s",
        "subscriptionFilters": ["agent-turns"],
        "logEvents": [{"id": str(n), "timestamp": 1795888800000, "message": m} for n, m in enumerate(messages)],
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(data).encode())).decode()}}


def test_live_turns_become_tool_metrics_and_golden_replays_are_scored(capsys: pytest.CaptureFixture[str]) -> None:
    turn = {"message": "agent turn", "agent": "support_assistant"}
    live = {**turn, "tool_calls": [{"name": ORDERS, "ok": True}, {"name": SEARCH, "ok": False}]}
    replay = {
        **turn,
        "evaluation_case": "orders-shipped",
        "tool_calls": [
            {"name": ORDERS, "arguments": {"customer_email": "ada@example.com", "status": "placed"}, "ok": True}
        ],
    }
    event = subscription_event([json.dumps(live), "not json", json.dumps({"message": "other"}), json.dumps(replay)])
    # "not json" cannot be a turn the subscription meant to deliver: it counts as rejected.
    assert handler.lambda_handler(event, FakeContext()) == {"turns": 2, "golden_cases": 1, "rejected": 1}
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    by_name: dict[tuple[str, str], float] = {}
    for document in emitted:
        (declared,) = document["_aws"]["CloudWatchMetrics"]
        (dimensions,) = declared["Dimensions"]
        assert dimensions in (["Tool"], ["Agent"])  # exactly what the dashboard and alarms address
        for metric in declared["Metrics"]:
            value = document[metric["Name"]]
            by_name[(metric["Name"], document[dimensions[0]])] = value[0] if isinstance(value, list) else value
    assert by_name[("ToolErrors", SEARCH)] == 1.0
    assert by_name[("ToolErrors", ORDERS)] == 0.0
    assert by_name[("ToolSelectionAccuracy", "support_assistant")] == 100.0
    assert by_name[("ToolArgumentAccuracy", "support_assistant")] == 50.0


def emitted_metrics(out: str) -> list[tuple[str, str, float]]:
    """(metric, dimension value, value) of every EMF document in ``out``."""
    found = []
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        (declared,) = document["_aws"]["CloudWatchMetrics"]
        (dimensions,) = declared["Dimensions"]
        for metric in declared["Metrics"]:
            value = document[metric["Name"]]
            found.append((metric["Name"], document[dimensions[0]], value[0] if isinstance(value, list) else value))
    return found


SECRET = "ada-secret@example.com"


@pytest.mark.parametrize(
    "bad",
    [
        json.dumps({"message": "agent turn", "agent": "a", "tool_calls": [{"name": SECRET, "ok": True}, None]}),
        '{"message": "agent turn", "tool_calls": [], "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        json.dumps({"message": "agent turn", "evaluation_case": "orders-shipped", "tool_calls": [{"ok": True}]}),
        json.dumps(
            {
                "message": "agent turn",
                "evaluation_case": "orders-shipped",
                "tool_calls": [{"name": ORDERS, "arguments": SECRET}],
            }
        ),
    ],
    ids=["call-not-an-object", "nested-too-deep", "replayed-call-without-name", "arguments-not-an-object"],
)
def test_a_bad_turn_is_rejected_and_counted_and_the_rest_of_the_batch_is_scored(
    capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    """One bad record used to fail the whole batch: every other turn's metrics lost, and retried."""
    good = json.dumps({"message": "agent turn", "agent": "support_assistant", "tool_calls": [{"name": SEARCH}]})
    replay = json.dumps(
        {
            "message": "agent turn",
            "agent": "support_assistant",
            "evaluation_case": "orders-shipped",
            "tool_calls": [{"name": ORDERS, "arguments": {"customer_email": "ada@example.com", "status": "shipped"}}],
        }
    )
    answer = handler.lambda_handler(subscription_event([good, bad, replay]), FakeContext())
    assert answer["golden_cases"] == 1
    assert answer["rejected"] == 1
    out = capsys.readouterr().out
    metrics = emitted_metrics(out)
    assert ("ToolCalls", SEARCH, 1.0) in metrics
    assert ("ToolSelectionAccuracy", "support_assistant", 100.0) in metrics
    assert all(tool in (SEARCH, ORDERS, "support_assistant") for _, tool, _ in metrics)  # nothing of the bad turn
    assert SECRET not in out  # the log says what kind of fault, not what the turn held


def test_a_tool_name_no_tool_can_have_is_one_invalid_dimension_value(capsys: pytest.CaptureFixture[str]) -> None:
    """The model chooses tool names; CloudWatch rejects a document with a dimension value over
    1,024 characters, and every odd name would be a metric of its own."""
    names = ["n" * 5000, "two words", ORDERS, None]
    turn = {"message": "agent turn", "tool_calls": [{"name": name} for name in names]}
    handler.lambda_handler(subscription_event([json.dumps(turn)]), FakeContext())
    calls = {tool: n for metric, tool, n in emitted_metrics(capsys.readouterr().out) if metric == "ToolCalls"}
    assert calls == {"invalid": 2.0, ORDERS: 1.0, "unknown": 1.0}  # the invalid names counted as one


def test_a_turns_calls_are_one_metric_document_per_tool_however_many_calls_it_lists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A document per call let 2.5 KB of repeated calls write 480,000 log lines; the counts are the
    same as summed per call (the dashboard's statistic is Sum)."""
    calls = [{"name": SEARCH, "ok": n % 3 != 0} for n in range(30_000)] + [{"name": ORDERS, "ok": True}] * 5
    event = subscription_event([json.dumps({"message": "agent turn", "agent": "a", "tool_calls": calls})])
    assert handler.lambda_handler(event, FakeContext()) == {"turns": 1, "golden_cases": 0, "rejected": 0}
    metrics = emitted_metrics(capsys.readouterr().out)
    assert sorted(metrics) == sorted(
        [
            ("ToolCalls", SEARCH, 30_000.0),
            ("ToolErrors", SEARCH, 10_000.0),
            ("ToolCalls", ORDERS, 5.0),
            ("ToolErrors", ORDERS, 0.0),
        ]
    )


def test_a_turn_naming_more_tools_than_any_group_has_counts_the_rest_as_other(
    capsys: pytest.CaptureFixture[str],
) -> None:
    calls = [{"name": f"target___tool{n}", "ok": True} for n in range(handler.MAX_TOOLS_PER_TURN + 36)]
    event = subscription_event([json.dumps({"message": "agent turn", "agent": "a", "tool_calls": calls})])
    handler.lambda_handler(event, FakeContext())
    counted = {tool: value for name, tool, value in emitted_metrics(capsys.readouterr().out) if name == "ToolCalls"}
    assert len(counted) == handler.MAX_TOOLS_PER_TURN + 1
    assert counted[handler.OTHER] == 36.0
    assert counted["target___tool0"] == 1.0


@pytest.mark.parametrize(
    "tail",
    [gzip.compress(b'{"messageType": "DATA_MESSAGE", "logEvents": []}'), b"trailing bytes"],
    ids=["member", "junk"],
)
def test_data_after_the_gzip_stream_rejects_the_batch(tail: bytes, capsys: pytest.CaptureFixture[str]) -> None:
    """CloudWatch Logs sends one gzip member: what follows it was dropped unread and uncounted."""
    event = subscription_event([json.dumps({"message": "agent turn", "agent": "a", "tool_calls": []})])
    data = base64.b64decode(event["awslogs"]["data"]) + tail
    event["awslogs"]["data"] = base64.b64encode(data).decode()
    assert handler.lambda_handler(event, FakeContext()) == {"turns": 0, "golden_cases": 0, "rejected": 1}
    assert '"error":"data after the gzip stream"' in capsys.readouterr().out.replace(": ", ":")


@pytest.mark.parametrize("ok", [None, "true", 1])
def test_a_call_that_does_not_say_it_succeeded_is_a_failure_to_the_score(ok: Any) -> None:
    """As the live metrics count it (ToolErrors): only ``"ok": true`` is a success, so one turn
    line is never an error in one metric and a success in another."""
    call: dict[str, Any] = {"name": ORDERS, "arguments": {}}
    if ok is not None:
        call["ok"] = ok
    assert [c.ok for c in calls_from([call, {**call, "ok": True}])] == [False, True]


@pytest.mark.parametrize("ok", [None, "true", 1])
def test_a_call_that_does_not_say_it_succeeded_is_a_tool_error_in_the_metrics(
    ok: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    call: dict[str, Any] = {"name": ORDERS}
    if ok is not None:
        call["ok"] = ok
    turn = {"message": "agent turn", "agent": "a", "tool_calls": [call, {"name": ORDERS, "ok": True}]}
    handler.lambda_handler(subscription_event([json.dumps(turn)]), FakeContext())
    assert sorted(emitted_metrics(capsys.readouterr().out)) == [("ToolCalls", ORDERS, 2.0), ("ToolErrors", ORDERS, 1.0)]
