"""The docs name what the code does: checks that read both from the repository's own files (not
from a mutation run's copy of the code, which holds every mutant's text: see tools/mutate.py)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_quarantine_reason_code_is_documented() -> None:
    raised = {
        node.args[0].value
        for module in ("documents", "pipeline")
        for node in ast.walk(ast.parse((ROOT / "lambdas" / "ingestion" / f"{module}.py").read_text()))
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", None) == "RejectedError"
        and isinstance(node.args[0], ast.Constant)
    }
    documented = (ROOT / "docs" / "ingestion.md").read_text().split("stable `reason_code`", 1)[1].split(");", 1)[0]
    assert raised == set(re.findall(r"`(\w+)`", documented))
