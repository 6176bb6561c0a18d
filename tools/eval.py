"""Score the recorded tool-call traces against the golden set and print the table (`make eval`).

Exits 1 when tool selection or argument accuracy is below observability.tool_accuracy_floor, or a
case never got an answer from a right tool (every such call failed), or when the config, the golden
set or the traces cannot be read (the problem on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]

from evaluation.evaluator import GOLDEN_SET, GoldenCase, Report, calls_from, evaluate, golden_set  # noqa: E402
from stacks.config import ConfigError, load_config  # noqa: E402
from tools.inputs import cdk_context, read_json  # noqa: E402

TRACES = ROOT / "evals" / "recorded_traces.jsonl"


class EvalInputError(Exception):
    """The golden set or the trace file is missing or not what it should be (the message names it)."""


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EvalInputError(f"{_shown(path)}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EvalInputError(f"{_shown(path)}: cannot be read ({error})") from None


def golden_cases(path: Path = GOLDEN_SET) -> list[GoldenCase]:
    """The golden set, or EvalInputError naming the file, the case and what is wrong with it."""
    raw = read_json(path, EvalInputError, _shown(path))
    try:
        return golden_set(raw)  # evaluation.evaluator.load_golden_set, on the text read once
    except (KeyError, ValueError) as error:
        detail = f"missing key {error}" if isinstance(error, KeyError) else str(error)
        where = "".join(f" in {note}" for note in getattr(error, "__notes__", ()))
        raise EvalInputError(f"{_shown(path)}: not a list of golden cases ({detail}){where}") from None


def recorded_calls(path: Path = TRACES) -> dict[str, Any]:
    """The recorded tool calls of each golden case, by case id (EvalInputError: the file and line
    that cannot be read, or that records a case a line before it did: which one counted would
    depend on the lines' order)."""
    traces: dict[str, Any] = {}
    for number, line in enumerate(_read(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise EvalInputError(f"{_shown(path)}: line {number} is not JSON ({error.msg})") from None
        except (ValueError, RecursionError):  # a number past Python's digit limit, nesting past its recursion
            raise EvalInputError(f"{_shown(path)}: line {number} is not JSON this reader can take") from None
        try:
            case = record["case"]
            if not isinstance(case, str) or not case:
                raise ValueError(f'"case" is {json.dumps(case)[:40]}, not a case id')
            if case in traces:
                raise ValueError(f'case "{case[:40]}" is recorded by an earlier line too')
            traces[case] = calls_from(record["tool_calls"])
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            detail = f"no {error}" if isinstance(error, KeyError) else str(error)
            raise EvalInputError(
                f'{_shown(path)}: line {number} is not a trace {{"case", "tool_calls"}} ({detail})'
            ) from None
    return traces


def recorded(path: Path = TRACES, golden: Path = GOLDEN_SET) -> Report:
    return evaluate(golden_cases(golden), recorded_calls(path))


def shortfall(report: Report, floor: float) -> str | None:
    """Why ``report`` does not meet ``floor`` (None when it does): tool selection or argument
    accuracy below it, or cases no right tool's call answered."""
    score = min(report.tool_selection_accuracy, report.argument_accuracy)
    if score < floor:
        # Two decimals, or as many as it takes for the two not to read as equal.
        digits = next((d for d in range(2, 17) if f"{score:.{d}f}" != f"{floor:.{d}f}"), 17)
        return f"scored {score:.{digits}f}, floor {floor:.{digits}f}"
    if report.unanswered:
        return f"no call of a right tool succeeded in {', '.join(report.unanswered)}"
    return None


def table(report: Report) -> str:
    rows = [f"{'case':<22} {'selection':>9} {'arguments':>9} {'success':>8} {'calls':>5}"]
    rows += [
        f"{c.case_id:<22} {c.selection:>9.2f} {c.arguments:>9.2f} {c.success:>8.2f} {c.calls:>5}" for c in report.cases
    ]
    rows.append(
        f"{'all (' + str(len(report.cases)) + ' cases)':<22} {report.tool_selection_accuracy:>9.3f} "
        f"{report.argument_accuracy:>9.3f} {report.call_success_rate:>8.3f}"
    )
    return "\n".join(rows)


def main(
    argv: Sequence[str] | None = None,
    *,
    context: Mapping[str, Any] | None = None,
    traces: Path = TRACES,
    golden: Path = GOLDEN_SET,
) -> int:
    """``context``: cdk.json's unless given (tests)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.parse_args(argv)
    try:
        context = cdk_context() if context is None else context
        floor = load_config(context).production.observability.tool_accuracy_floor
        report = recorded(traces, golden)
    except (ConfigError, EvalInputError) as error:
        print(f"eval: {error}", file=sys.stderr)
        return 1
    print(table(report))
    short = shortfall(report, floor)
    print(f"floor {floor:.2f}: " + ("met" if short is None else f"NOT met ({short})"))
    return 0 if short is None else 1


if __name__ == "__main__":
    sys.exit(main())
