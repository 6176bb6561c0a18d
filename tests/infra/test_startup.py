"""The app's start-up (stacks/startup.py, stacks/jsii_node.py): the template validator it builds
early is the one CDK runs, over every stack, and what it imports beside it never calls into Node."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stacks import jsii_node, startup
from tests.conftest import ROOT

ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}


def run_python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env={**ENV, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_node_options_add_the_preload_once_after_the_users_own() -> None:
    option = jsii_node.node_options(None)
    assert option == f'--require "{jsii_node.PRELOAD}"'
    assert jsii_node.node_options("--max-old-space-size=100") == f"--max-old-space-size=100 {option}"
    assert jsii_node.node_options(f"--trace-warnings {option}") == f"--trace-warnings {option}"
    spaced = jsii_node.node_options(None, Path('/a dir/with "quote"/x.cjs'))
    assert spaced == '--require "/a dir/with \\"quote\\"/x.cjs"'


def test_node_loads_the_preload_from_node_options() -> None:
    """The options as start() sets them: Node parses them and runs the preload (a wrong path or
    quoting would stop Node before it runs anything)."""
    result = subprocess.run(
        ["node", "-e", "console.log(JSON.stringify(Object.keys(require.cache)))"],
        env={**ENV, **jsii_node.configure({})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert str(jsii_node.PRELOAD) in json.loads(result.stdout)


def test_modules_imported_beside_the_validator_never_call_into_node() -> None:
    """Every jsii kernel request made while PURE_MODULES are imported is counted: none may be, or
    the importing thread would talk to Node while start() waits on it."""
    result = run_python(
        """
        import json
        import aws_cdk  # started and loaded first, as in start()
        from jsii._kernel.providers import process
        from stacks.startup import PURE_MODULES, _import_pure_modules
        import sys

        requests = []
        send = process._NodeProcess.send
        process._NodeProcess.send = lambda self, request, kind: requests.append(type(request).__name__) or send(
            self, request, kind
        )
        _import_pure_modules()
        print(json.dumps({"requests": requests, "missing": [m for m in PURE_MODULES if m not in sys.modules]}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"requests": [], "missing": []}


def test_the_config_package_does_not_import_jsii() -> None:
    result = run_python("import sys, stacks.config; print('jsii' in sys.modules, 'aws_cdk' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]


# Two stacks, each with a property CloudFormation's schema does not have (E3002) on a resource no
# cdk-nag rule looks at; the rule packs as the app registers them.
VALIDATED_APP = """
    import json, os, sys
    from stacks import startup
    startup.start()
    from aws_cdk import App, CfnResource, Stack
    from stacks.shared.nag import add_rule_packs

    app = App(outdir=sys.argv[1] if len(sys.argv) > 1 else os.environ["OUTDIR"])
    for name in ("One", "Two"):
        CfnResource(Stack(app, name), "Parameter", type="AWS::SSM::Parameter",
                    properties={"Type": "String", "Value": "v", "NotAProperty": name})
    add_rule_packs(app)
    validator = startup.template_validator()
    # The app's own plugins (CDK's built-in validator is not among them); the only reader jsii has.
    registered = [plugin.name for plugin in app.policy_validation_beta1]
    app.synth()
    print(json.dumps({"built_early": validator is not None, "registered": registered}))
"""


def validation_report(outdir: Path) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = json.loads((outdir / "validation-report.json").read_text())["pluginReports"]
    return reports


def test_the_early_validator_runs_over_every_stack_and_is_the_only_one(tmp_path: Path) -> None:
    result = run_python(VALIDATED_APP, OUTDIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "built_early": True,
        "registered": ["AwsSolutions", "NIST.800.53.R5", "CloudFormation Validate"],
    }
    reports = [r for r in validation_report(tmp_path) if r["pluginName"] == "CloudFormation Validate"]
    assert len(reports) == 1, "CDK built a second validator beside the app's"
    flagged = {
        construct["cloudFormationResource"]["templatePath"]
        for violation in reports[0]["violations"]
        if "NotAProperty" in violation["description"]
        for construct in violation["violatingConstructs"]
    }
    assert flagged == {"One.template.json", "Two.template.json"}


def test_with_validation_off_no_validator_is_built_or_run(tmp_path: Path) -> None:
    result = run_python(VALIDATED_APP, OUTDIR=str(tmp_path), CDK_VALIDATION="false")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "built_early": False,
        "registered": ["AwsSolutions", "NIST.800.53.R5"],
    }
    assert "CloudFormation Validate" not in json.dumps(validation_report(tmp_path))


@pytest.mark.parametrize("setting", ["true", None])
def test_without_start_there_is_no_early_validator(setting: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests and tools build the app without start(): CDK's own validator applies as before."""
    if setting is None:
        monkeypatch.delenv("CDK_VALIDATION", raising=False)
    else:
        monkeypatch.setenv("CDK_VALIDATION", setting)
    assert startup.template_validator() is None
