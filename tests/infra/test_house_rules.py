"""Rules every stack keeps: one house Lambda construct, cdk-nag clean with specific reasons."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack, aws_s3 as s3

from stacks.config import load_config
from stacks.shared import lambda_function
from stacks.shared.nag import add_rule_packs
from stacks.shared.naming import pascal_case
from tests.conftest import ROOT
from tests.infra.cfn import render, resources
from tests.infra.conftest import Assembly
from tools.nag_report import acknowledgements

# CDK's own deploy-time functions: S3 auto-delete, AwsCustomResource, the Provider framework.
CDK_INTERNAL = re.compile(r"^(CustomS3AutoDeleteObjects|AWS679f53fac002430cb0da5b7982bd2287|\w+Providerframework)")


def project_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: f for n, f in resources(template, "AWS::Lambda::Function").items() if not CDK_INTERNAL.match(n)}


def test_every_project_function_is_a_house_function(assembly: Assembly) -> None:
    functions = [f for t in assembly.templates.values() for f in project_functions(t).values()]
    assert functions
    for fn in functions:
        p = fn["Properties"]
        assert (p["Runtime"], p["Architectures"]) == ("python3.14", ["arm64"])
        assert p["TracingConfig"] == {"Mode": "Active"}
        assert p["LoggingConfig"]["LogFormat"] == "JSON"
        assert "LogGroup" in p["LoggingConfig"]
        assert "<DependencyLayer>" in render(p["Layers"])
        variables = p["Environment"]["Variables"]
        assert {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE"} <= set(variables)
        assert variables["PYDANTIC_DISABLE_PLUGINS"] == "__all__"


def test_makefile_builds_the_layer_for_the_house_runtime() -> None:
    makefile = (ROOT / "Makefile").read_text()
    (version,) = re.findall(r"^LAMBDA_PYTHON := (\S+)$", makefile, re.MULTILINE)
    assert lambda_function.RUNTIME.name == f"python{version}"
    assert "manylinux2014_aarch64" in makefile
    assert lambda_function.ARCHITECTURE.name == "arm64"


def test_acknowledgements_sit_on_resources_with_specific_reasons(assembly: Assembly) -> None:
    acks = acknowledgements(assembly.outdir)
    assert acks
    stacks = {f"/{name}" for name in assembly.templates}
    for path, rule, reason in acks:
        assert path not in stacks, f"stack-wide acknowledgement of {rule} at {path}"
        assert path.count("/") >= 2, path
        assert len(reason) >= 60, f"{rule} at {path}: reason too thin: {reason!r}"
        assert rule.startswith(("AwsSolutions-", "NIST.800.53.R5-")), rule


# Acknowledgements every agent brings (its execution role and its online evaluation's role, which writes
# its results to a log group of its own).
PER_AGENT = {"AwsSolutions-IAM5": 17, "NIST.800.53.R5-IAMNoInlinePolicy": 2}


def test_acknowledgement_count_by_rule_is_known(assembly: Assembly, cdk_context: dict[str, Any]) -> None:
    """A new acknowledgement must be a decision: update this table (or PER_AGENT) with it."""
    config = load_config(cdk_context)
    agents = {pascal_case(name) for name in config.production.agents}
    # Each agent's own stack (<prefix>-production-agent-<name>) holds what it acknowledges.
    stacks = {f"/{config.prefix}-production-agent-{name.replace('_', '-')}/": name for name in config.production.agents}

    def agent_of(path: str) -> str | None:
        stack = next((s for s in stacks if path.startswith(s)), None)
        if stack is None:
            return None
        construct, agent = path.removeprefix(stack).split("/")[0], pascal_case(stacks[stack])
        return agent if construct in (agent, f"{agent}Evaluation") else None

    by_agent: dict[str | None, Counter[str]] = defaultdict(Counter)
    for path, rule, _ in acknowledgements(assembly.outdir):
        by_agent[agent_of(path)][re.sub(r"\[.*\]$", "", rule)] += 1
    assert {agent: dict(by_agent[agent]) for agent in agents} == dict.fromkeys(agents, PER_AGENT)
    assert by_agent[None] == {
        "AwsSolutions-APIG3": 1,
        "AwsSolutions-COG4": 2,
        "AwsSolutions-IAM4": 3,
        # 2: the gateway jobs' worker and sweeper roles; 11: the web tools' runtime, OAuth; 1: the keys
        # stack's AppConfig monitor role; 2: the Macie responder sending to its encrypted DLQ; 2: each KB
        # role on its vector bucket's indexes (a replaced KB's data source deletes from the old one); none for
        # the knowledge search tool, which the tools gateway may invoke through its SnapStart alias only; 1: the
        # account-settings adopter's Application Signals CloudTrail channel
        "AwsSolutions-IAM5": 72,  # 72 with the sandbox's Kendra switched on (its two roles)
        "AwsSolutions-L1": 2,
        "AwsSolutions-S1": 2,
        "AwsSolutions-SQS3": 1,
        "NIST.800.53.R5-APIGWAssociatedWithWAF": 1,
        "NIST.800.53.R5-APIGWCacheEnabledAndEncrypted": 2,
        "NIST.800.53.R5-APIGWSSLEnabled": 2,
        "NIST.800.53.R5-CloudWatchAlarmAction": 6,  # each AppConfig environment's rollback alarm (gateway-keys too)
        "AwsSolutions-DDB3": 1,  # the gateway's session transcripts (an expiring cache of checks)
        "NIST.800.53.R5-DynamoDBInBackupPlan": 5,  # 1: the jobs table (requests in flight, TTL); 1: transcripts
        "NIST.800.53.R5-DynamoDBPITREnabled": 1,  # the gateway's session transcripts
        # 1: the web tools' runtime role; 2: the keys stack's monitor role and its read grant to the authorizer
        "NIST.800.53.R5-IAMNoInlinePolicy": 37,  # 37 with Kendra on
        "NIST.800.53.R5-LambdaConcurrency": 20,  # 2 each: the worker and the sweeper
        "NIST.800.53.R5-LambdaDLQ": 20,
        "NIST.800.53.R5-LambdaInsideVPC": 20,
        "NIST.800.53.R5-S3BucketLoggingEnabled": 2,
        "NIST.800.53.R5-S3BucketReplicationEnabled": 6,
        "NIST.800.53.R5-S3DefaultEncryptionKMS": 2,
    }


def test_rule_packs_fail_synth_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    """The nag wiring is live: an unencrypted, unlogged bucket stops synthesis."""
    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Bad")
    s3.Bucket(stack, "Plain")
    add_rule_packs(app)
    with pytest.raises(Exception, match=r"AwsSolutions-S1|AwsSolutions-S10"):
        app.synth()


def test_validation_report_of_the_app_lists_no_violation(assembly: Assembly) -> None:
    report = json.loads((assembly.outdir / "validation-report.json").read_text())
    assert [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])] == []
