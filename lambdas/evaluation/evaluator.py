"""Scoring recorded tool calls against a golden set, without a judge model.

For each golden case (a prompt, the tool it should lead to with its arguments, and allowed
alternatives):

- **tool selection**: 1 when the agent's first tool call is the expected tool or an allowed
  alternative, 0.5 when it gets there only after another call, 0 when it never does;
- **argument accuracy**: for the first right call, the share of argument keys (expected or
  sent, minus the ignored ones such as paging cursors) whose values match, so a call with one
  of two arguments right scores 0.5 and an invented extra argument costs too; the best-scoring
  accepted answer counts;
- **call success**: the share of the case's tool calls that did not fail; a case is *answered* when
  at least one call of an accepted tool succeeded (a right tool that only ever failed helped no one).

The aggregates are the means over cases (call success over all calls).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GOLDEN_SET = Path(__file__).with_name("golden_set.json")


@dataclass(frozen=True)
class Expected:
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class GoldenCase:
    id: str
    prompt: str
    group: str
    expected: Expected
    alternatives: tuple[Expected, ...] = ()
    ignore_arguments: tuple[str, ...] = ("cursor",)

    @property
    def accepted(self) -> tuple[Expected, ...]:
        return (self.expected, *self.alternatives)


@dataclass(frozen=True)
class Call:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


@dataclass(frozen=True)
class CaseScore:
    case_id: str
    selection: float
    arguments: float
    success: float
    calls: int
    ok_calls: int
    answered: bool  # an accepted tool's call succeeded


@dataclass(frozen=True)
class Report:
    cases: tuple[CaseScore, ...]

    @property
    def tool_selection_accuracy(self) -> float:
        return _mean(c.selection for c in self.cases)

    @property
    def argument_accuracy(self) -> float:
        return _mean(c.arguments for c in self.cases)

    @property
    def unanswered(self) -> tuple[str, ...]:
        """The cases where no call of an accepted tool succeeded."""
        return tuple(c.case_id for c in self.cases if not c.answered)

    @property
    def call_success_rate(self) -> float:
        calls = sum(c.calls for c in self.cases)
        return sum(c.ok_calls for c in self.cases) / calls if calls else 0.0


def load_golden_set(path: Path = GOLDEN_SET) -> list[GoldenCase]:
    return golden_set(json.loads(path.read_text(encoding="utf-8")))


def golden_set(raw: Any) -> list[GoldenCase]:
    """The cases of a golden set's JSON: a list of case objects with distinct ids. KeyError for a
    missing key, ValueError for anything else that is wrong, with a note saying which case."""
    if not isinstance(raw, list):
        raise ValueError(f"a JSON {_kind(raw)}, not a list")
    cases: list[GoldenCase] = []
    for number, item in enumerate(raw, start=1):
        try:
            cases.append(golden_case(item))
        except (KeyError, ValueError) as error:
            error.add_note(f"case {number}")
            raise
        if any(case.id == cases[-1].id for case in cases[:-1]):
            # Traces and workloads name cases by id: the second would silently stand for both.
            twice = ValueError(f'id "{cases[-1].id}" given twice')
            twice.add_note(f"case {number}")
            raise twice
    return cases


def golden_case(raw: Any) -> GoldenCase:
    """One case of the golden set; KeyError for a missing key, ValueError naming a field whose value
    is not what it should be (a misread one would score the agent against something else)."""
    if not isinstance(raw, Mapping):
        raise ValueError(f"a case that is a JSON {_kind(raw)}, not an object")
    case_id, prompt, group = _text(raw, "id"), _text(raw, "prompt"), _text(raw, "group")
    expected = _answer(raw["expected"], '"expected"')
    alternatives = raw.get("alternatives", [])
    if not isinstance(alternatives, list):
        raise ValueError(f'"alternatives" is {_excerpt(alternatives)}, not a list of {{"tool", "arguments"}}')
    # A text here would be read as its letters, and the argument it names no longer ignored.
    ignored = raw.get("ignore_arguments", ["cursor"])
    if not isinstance(ignored, list) or not all(isinstance(name, str) for name in ignored):
        raise ValueError(f'"ignore_arguments" is {_excerpt(ignored)}, not a list of argument names')
    return GoldenCase(
        id=case_id,
        prompt=prompt,
        group=group,
        expected=expected,
        alternatives=tuple(_answer(answer, f'"alternatives"[{n}]') for n, answer in enumerate(alternatives)),
        ignore_arguments=tuple(ignored),
    )


def _answer(raw: Any, where: str) -> Expected:
    if not isinstance(raw, Mapping):
        raise ValueError(f'{where} is {_excerpt(raw)}, not {{"tool", "arguments"}}')
    arguments = raw.get("arguments", {})
    if not isinstance(arguments, Mapping):
        raise ValueError(f'{where}: "arguments" is {_excerpt(arguments)}, not an object')
    return Expected(_text(raw, "tool", where), dict(arguments))


def _text(raw: Mapping[str, Any], key: str, where: str = "") -> str:
    value = raw[key]
    named = f'{where}: "{key}"' if where else f'"{key}"'
    if not isinstance(value, str):
        raise ValueError(f"{named} is {_excerpt(value)}, not text")
    if not value.strip():
        raise ValueError(f"{named} is blank")
    return value


def _kind(value: Any) -> str:
    return {dict: "object", list: "list", str: "text", bool: "true/false", type(None): "null"}.get(
        type(value), "number"
    )


def _excerpt(value: Any) -> str:
    """``value`` as JSON, cut short (the message is one line)."""
    try:
        text = json.dumps(value)
    except RecursionError:  # nested about as deep as json.loads goes
        return f"a deeply nested {_kind(value)}"
    return text if len(text) <= 40 else f"{text[:37]}..."


def calls_from(raw: Iterable[Any]) -> list[Call]:
    """Recorded tool calls (``name``, ``arguments``, ``ok``); ValueError when one is not a call: not
    an object, no name, or arguments that are not an object."""
    calls = []
    for n, call in enumerate(raw):
        if not isinstance(call, Mapping):
            raise ValueError(f"tool call {n} is not an object")
        name, arguments = call.get("name"), call.get("arguments")
        if not isinstance(name, str) or not name:
            raise ValueError(f"tool call {n} has no name")
        if arguments is not None and not isinstance(arguments, Mapping):
            raise ValueError(f"tool call {n}'s arguments are not an object")
        calls.append(Call(name, dict(arguments or {}), call.get("ok") is True))  # a success only when it says so
    return calls


def score(case: GoldenCase, calls: Sequence[Call]) -> CaseScore:
    ok_calls = sum(1 for call in calls if call.ok)
    success = ok_calls / len(calls) if calls else 0.0
    tools = {answer.tool for answer in case.accepted}
    position = next((i for i, call in enumerate(calls) if call.name in tools), None)
    if position is None:
        return CaseScore(case.id, 0.0, 0.0, success, len(calls), ok_calls, answered=False)
    chosen = calls[position]
    arguments = max(
        argument_score(answer.arguments, chosen.arguments, case.ignore_arguments)
        for answer in case.accepted
        if answer.tool == chosen.name
    )
    answered = any(call.ok and call.name in tools for call in calls)
    return CaseScore(case.id, 1.0 if position == 0 else 0.5, arguments, success, len(calls), ok_calls, answered)


def argument_score(expected: Mapping[str, Any], sent: Mapping[str, Any], ignore: Sequence[str] = ()) -> float:
    keys = (set(expected) | set(sent)) - set(ignore)
    if not keys:
        return 1.0
    matched = sum(1 for key in keys if key in expected and key in sent and same(expected[key], sent[key]))
    return matched / len(keys)


def same(expected: Any, sent: Any) -> bool:
    """Equal after the normalization a person would apply: case and surrounding space in text,
    int vs float, order in lists (each item matched once). A boolean equals only a boolean
    (Python's ``True == 1`` would score an argument the tools refuse as right)."""
    if isinstance(expected, bool) or isinstance(sent, bool):
        return type(expected) is type(sent) and expected == sent
    if isinstance(expected, str) and isinstance(sent, str):
        return expected.strip().casefold() == sent.strip().casefold()
    if isinstance(expected, int | float) and isinstance(sent, int | float):
        # Python compares an int with a float exactly; float() of a huge int would overflow.
        return bool(expected == sent)
    if isinstance(expected, list) and isinstance(sent, list):
        return len(expected) == len(sent) and _matched_once(expected, sent)
    return bool(expected == sent)


def _matched_once(expected: list[Any], sent: list[Any]) -> bool:
    """Each expected item matches a sent item no other expected item took (``same`` is an
    equivalence, so taking the first match never blocks a later one)."""
    left = list(sent)
    for item in expected:
        match = next((i for i, candidate in enumerate(left) if same(item, candidate)), None)
        if match is None:
            return False
        del left[match]
    return True


def evaluate(cases: Sequence[GoldenCase], traces: Mapping[str, Sequence[Call]]) -> Report:
    return Report(tuple(score(case, traces.get(case.id, ())) for case in cases))


def _mean(values: Iterable[float]) -> float:
    numbers = list(values)
    return sum(numbers) / len(numbers) if numbers else 0.0
