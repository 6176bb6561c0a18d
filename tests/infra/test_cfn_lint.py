"""cfn-lint over every synthesized template, against CloudFormation's own resource schemas."""

from __future__ import annotations

import json
from pathlib import Path

from tests.infra.conftest import Assembly
from tools.synth import cfn_lint as lint


def cfn_lint(assembly: Assembly) -> None:
    """cfn-lint over every template of ``assembly``; fails the test with its findings."""
    templates = sorted(assembly.outdir.glob("*.template.json"))
    assert len(templates) == len(assembly.templates)
    assert lint(templates) == []


def test_every_template_passes_cfn_lint(assembly: Assembly) -> None:
    cfn_lint(assembly)


def test_a_template_cfn_lint_refuses_is_a_finding_and_a_broken_linter_is_not_a_clean_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.template.json"
    bad.write_text(json.dumps({"Resources": {"B": {"Type": "AWS::S3::Bucket", "Properties": {"NoSuchProperty": 1}}}}))
    (finding,) = [line for line in lint([bad]) if line.startswith("E")]
    assert finding.startswith("E3002")
    missing = tmp_path / "missing.template.json"
    assert lint([missing])  # cfn-lint fails on a file it cannot read: that is a finding, not clean
