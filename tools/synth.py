"""The app synthesized in-process, as `cdk synth` would: one way for the tools, benchmarks and tests.

One jsii start-up per process instead of the CLI's own; schema validation off (`make synth` and
cfn-lint do it, and it does not change a template).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)] if str(ROOT) not in sys.path else []
from tools.inputs import cdk_context  # noqa: E402

# What the CDK CLI adds to the context (cdk.json sets versionReporting off), so the in-process
# synth writes the same templates as `cdk synth` (tests/infra/test_determinism.py checks it).
CLI_CONTEXT = {"aws:cdk:enable-path-metadata": True, "aws:cdk:enable-asset-metadata": True}
Templates = dict[str, dict[str, Any]]


def templates_in(outdir: Path) -> Templates:
    """The templates of a cloud assembly, by stack name."""
    return {
        path.name.removesuffix(".template.json"): json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(outdir.glob("*.template.json"))
    }


def synthesize(outdir: Path, context: Mapping[str, Any] | None = None) -> Templates:
    """The app (``context``, cdk.json's unless given) synthesized into ``outdir``, cdk-nag on
    (a finding raises); its templates by stack name."""
    # jsii reads this when it starts, at the first import of aws_cdk.
    os.environ.setdefault("CDK_VALIDATION", "false")
    sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "lambdas")) if p not in sys.path]
    from aws_cdk import App

    from app import build_app

    app = App(context={**(cdk_context() if context is None else context), **CLI_CONTEXT}, outdir=str(outdir))
    build_app(app)
    app.synth()
    return templates_in(outdir)


def cfn_lint(paths: Sequence[str | Path]) -> list[str]:
    """cfn-lint's findings on the templates at ``paths``, with the project's settings
    (.cfnlintrc.yaml): none when they are clean. A run that fails without a finding (cfn-lint
    missing or broken) is a finding too, never a clean result."""
    linter = Path(sys.executable).with_name("cfn-lint")  # the venv's
    try:
        result = subprocess.run(  # noqa: S603 - the venv's cfn-lint over our own templates
            [str(linter), "--config-file", str(ROOT / ".cfnlintrc.yaml"), "--", *map(str, paths)],
            capture_output=True,
            text=True,
            check=False,
            cwd=ROOT,
        )
    except OSError as error:
        return [f"cfn-lint could not run: {error}"]
    if result.returncode == 0:
        return []
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    problem = (result.stderr.strip().splitlines() or ["no output"])[-1]
    return findings or [f"cfn-lint exited {result.returncode} without a finding: {problem}"]
