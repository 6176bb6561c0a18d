"""Score the recorded tool-call traces against the golden set and print the table (`make eval`).

Exits 1 when tool selection or argument accuracy is below observability.tool_accuracy_floor.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]

from evaluation.evaluator import Report, calls_from, evaluate, load_golden_set  # noqa: E402
from stacks.config import load_config  # noqa: E402

TRACES = ROOT / "evals" / "recorded_traces.jsonl"


def recorded_calls(path: Path = TRACES) -> dict[str, Any]:
    """The recorded tool calls of each golden case, by case id."""
    traces = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            traces[record["case"]] = calls_from(record["tool_calls"])
    return traces


def recorded(path: Path = TRACES) -> Report:
    return evaluate(load_golden_set(), recorded_calls(path))


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


def main() -> int:
    floor = load_config(json.loads((ROOT / "cdk.json").read_text())["context"]).production.observability
    report = recorded()
    print(table(report))
    worst = min(report.tool_selection_accuracy, report.argument_accuracy)
    print(f"floor {floor.tool_accuracy_floor:.2f}: {'met' if worst >= floor.tool_accuracy_floor else 'NOT met'}")
    return 0 if worst >= floor.tool_accuracy_floor else 1


if __name__ == "__main__":
    sys.exit(main())
