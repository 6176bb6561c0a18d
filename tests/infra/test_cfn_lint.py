"""cfn-lint over every synthesized template, against CloudFormation's own resource schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT
from tests.infra.conftest import Assembly


def cfn_lint(assembly: Assembly) -> None:
    """cfn-lint over every template of ``assembly``; fails the test with its findings."""
    templates = sorted(str(p) for p in assembly.outdir.glob("*.template.json"))
    assert len(templates) == len(assembly.templates)
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--config-file", str(ROOT / ".cfnlintrc.yaml"), "--", *templates],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_template_passes_cfn_lint(assembly: Assembly) -> None:
    cfn_lint(assembly)
