"""`python app.py` as the CDK CLI runs it: a bad config stops synth with one clear line each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import ROOT


def run_app(context: dict[str, Any], outdir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps(context), "CDK_OUTDIR": str(outdir)}
    env["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    return subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def test_bad_config_exits_with_the_key_value_and_allowed_values_and_no_traceback(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    result = run_app(
        {**cdk_context, "blueprint.sandbox.kendra.edition": "CHEAP", "blueprint.sandbox.log_retention_days": "10"},
        tmp_path,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(("Invalid", "blueprint."))]
    assert lines == [
        "Invalid configuration:",
        "blueprint.sandbox.log_retention_days = 10: Input should be 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, "
        "400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653",
        "blueprint.sandbox.kendra.edition = 'CHEAP': Input should be 'DEVELOPER_EDITION' or 'ENTERPRISE_EDITION'",
    ]
    assert not list(tmp_path.glob("*.template.json"))


def test_unknown_tier_exits_naming_the_allowed_tiers(cdk_context: dict[str, Any], tmp_path: Path) -> None:
    result = run_app({**cdk_context, "tier": "staging"}, tmp_path)
    assert result.returncode == 1
    assert "tier = 'staging': allowed values are all, sandbox, production, pipeline" in result.stderr
