"""The optional delivery pipeline (blueprint.pipeline, TIER=pipeline): its stages, its gates before
production, and its stages' stacks as a direct synth has them, nag-clean."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stacks.config import ConfigError, load_config, pipeline_selected
from stacks.pipeline.stack import _connection_service
from tests.conftest import ROOT
from tests.infra.cfn import props, resources, role_permissions
from tests.synth_fixtures import Assembly, Synthesizer
from tools.nag_report import acknowledgements

TOOLING, SANDBOX, PRODUCTION = "111111111111", "222222222222", "333333333333"
CONNECTION = f"arn:aws:codeconnections:us-east-1:{TOOLING}:connection/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
PIPELINE = {
    "enabled": True,
    "account": TOOLING,
    "connection_arn": CONNECTION,
    "repository": "example-org/genai-platform",
    "approval_emails": ["platform@example.com"],
}
ACCOUNTS = {"blueprint.sandbox.account": SANDBOX, "blueprint.production.account": PRODUCTION}
REQUIRED = "required when the pipeline is enabled"


@pytest.fixture(scope="module")
def pipelined(synthesize: Synthesizer) -> Assembly:
    return synthesize(tier="pipeline", **{"blueprint.pipeline": PIPELINE, **ACCOUNTS})


def stage_stacks(outdir: Path, stage: str) -> dict[str, dict[str, Any]]:
    """One stage's stacks in its nested assembly's manifest, by the name they deploy under."""
    (folder,) = outdir.glob(f"assembly-*-{stage}")
    artifacts = json.loads((folder / "manifest.json").read_text())["artifacts"]
    return {
        a["properties"].get("stackName", key): {**a, "folder": folder}
        for key, a in artifacts.items()
        if a["type"] == "aws:cloudformation:stack"
    }


def stage_templates(outdir: Path, stage: str) -> dict[str, dict[str, Any]]:
    """The templates of one stage's stacks, by the name they deploy under."""
    return {
        name: json.loads((stack["folder"] / stack["properties"]["templateFile"]).read_text())
        for name, stack in stage_stacks(outdir, stage).items()
    }


def manifest_environments(outdir: Path, stage: str) -> set[str]:
    return {stack["environment"] for stack in stage_stacks(outdir, stage).values()}


def test_the_pipeline_is_the_only_top_level_stack_and_its_stages_hold_the_tiers_stacks(
    pipelined: Assembly, assembly: Assembly
) -> None:
    assert list(pipelined.templates) == ["genai-pipeline"]
    sandbox, production = (stage_templates(pipelined.outdir, s) for s in ("Sandbox", "Production"))
    # The same stacks under the same names as a direct deploy: a tier moves to the pipeline in place.
    assert set(sandbox) | set(production) == set(assembly.templates)
    assert all(name.startswith("genai-sandbox-") for name in sandbox)
    assert manifest_environments(pipelined.outdir, "Sandbox") == {f"aws://{SANDBOX}/us-east-1"}
    assert manifest_environments(pipelined.outdir, "Production") == {f"aws://{PRODUCTION}/us-east-1"}
    # A stage's stacks are synthesized apart from the app's: the config's tags reach them all the same.
    gateway = production["genai-production-gateway"]
    function_tags = {t["Key"]: t["Value"] for t in props(gateway, "AWS::Lambda::Function", "GatewayFunction")["Tags"]}
    assert {"project": "genai-platform-blueprint", "tier": "production"}.items() <= function_tags.items()


def _stages(pipelined: Assembly) -> list[dict[str, Any]]:
    template = pipelined.templates["genai-pipeline"]
    stages: list[dict[str, Any]] = props(template, "AWS::CodePipeline::Pipeline")["Stages"]
    return stages


def test_production_waits_for_the_permissions_check_and_a_person(pipelined: Assembly) -> None:
    stages = _stages(pipelined)
    assert [s["Name"] for s in stages] == ["Source", "Build", "UpdatePipeline", "Assets", "Sandbox", "Production"]
    production = {a["Name"]: a for a in stages[-1]["Actions"]}
    # ConfirmPermissionsBroadening: a diff against the deployed stacks, and a manual step its
    # function approves itself when nothing broadens; then the person's own approval.
    check, confirm, approve = (
        production.pop(n) for n in ("ConfirmPermissions.Check", "ConfirmPermissions.Confirm", "Approve")
    )
    assert [a["ActionTypeId"]["Provider"] for a in (check, confirm, approve)] == ["CodeBuild", "Manual", "Manual"]
    deploys = list(production.values())
    assert {name.rsplit(".", 1)[1] for name in production} == {"Prepare", "Deploy"}
    assert {a["ActionTypeId"]["Provider"] for a in deploys} == {"CloudFormation"}
    # The check, then its confirmation, then the person, then every deploy of the tier.
    assert check["RunOrder"] < confirm["RunOrder"] < approve["RunOrder"] < min(a["RunOrder"] for a in deploys)
    # The sandbox has no gate.
    assert {a["ActionTypeId"]["Provider"] for a in stages[-2]["Actions"]} == {"CloudFormation"}


def test_the_synth_step_runs_the_whole_suite_before_the_pipelines_own_synth(pipelined: Assembly) -> None:
    template = pipelined.templates["genai-pipeline"]
    source = _stages(pipelined)[0]["Actions"][0]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert source["Configuration"]["ConnectionArn"] == CONNECTION
    # A git clone (the suite reads git history and worktrees; a zip of the commit has none).
    assert source["Configuration"]["OutputArtifactFormat"] == "CODEBUILD_CLONE_REF"
    assert (source["Configuration"]["FullRepositoryId"], source["Configuration"]["BranchName"]) == (
        "example-org/genai-platform",
        "main",
    )
    projects = resources(template, "AWS::CodeBuild::Project")
    (synth,) = [p for p in projects.values() if "make test" in p["Properties"]["Source"]["BuildSpec"]]
    spec = json.loads(synth["Properties"]["Source"]["BuildSpec"])
    assert spec["phases"]["build"]["commands"] == ["make test", "make synth TIER=pipeline"]
    assert spec["artifacts"]["base-directory"] == "cdk.out"
    environment = synth["Properties"]["Environment"]
    assert (environment["Image"], environment["ComputeType"]) == (
        "public.ecr.aws/docker/library/python:3.12-bookworm",
        "BUILD_GENERAL1_MEDIUM",
    )
    assert synth["Properties"]["TimeoutInMinutes"] == 120  # the suite and set-up outgrow CodeBuild's 60
    # The artifacts the tiers' accounts read: a customer key that rotates.
    (key,) = resources(template, "AWS::KMS::Key").values()
    assert key["Properties"]["EnableKeyRotation"] is True


def test_a_codeconnections_connection_is_usable_by_the_source_and_the_clone(pipelined: Assembly) -> None:
    """IAM matches an action's service prefix to the resource's: a connection created since July 2024
    (arn:aws:codeconnections:...) needs codeconnections:UseConnection, which CDK does not grant."""
    template = pipelined.templates["genai-pipeline"]
    users = {
        logical
        for logical in resources(template, "AWS::IAM::Role")
        if ("codeconnections:UseConnection", CONNECTION) in role_permissions(template, logical)
    }
    synth_role = next(
        p["Properties"]["ServiceRole"]["Fn::GetAtt"][0]
        for p in resources(template, "AWS::CodeBuild::Project").values()
        if "make test" in p["Properties"]["Source"]["BuildSpec"]
    )
    source_role = _stages(pipelined)[0]["Actions"][0]["RoleArn"]["Fn::GetAtt"][0]
    assert users == {synth_role, source_role}
    # CDK's own grant, for connections under the old prefix, stays beside it on both.
    for role in users:
        assert ("codestar-connections:UseConnection", CONNECTION) in role_permissions(template, role)


@pytest.mark.parametrize(
    ("arn", "service"),
    [
        (CONNECTION, "codeconnections"),
        (CONNECTION.replace("codeconnections", "codestar-connections"), "codestar-connections"),
        (CONNECTION.replace("arn:aws:", "arn:aws-us-gov:"), "codeconnections"),
    ],
)
def test_the_connections_service_prefix_is_read_from_its_arn(arn: str, service: str) -> None:
    assert _connection_service(arn) == service


def test_the_pipeline_updates_itself_with_the_pinned_cli_and_one_project_publishes_every_asset(
    pipelined: Assembly,
) -> None:
    template = pipelined.templates["genai-pipeline"]
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]  # what make runs
    (mutation,) = [
        json.loads(spec)
        for p in resources(template, "AWS::CodeBuild::Project").values()
        if isinstance(spec := p["Properties"]["Source"]["BuildSpec"], str) and "deploy genai-pipeline" in spec
    ]
    assert mutation["phases"]["install"]["commands"] == [f"npm install -g aws-cdk@{pinned}"]
    (assets,) = [s for s in _stages(pipelined) if s["Name"] == "Assets"]
    assert [a["Name"] for a in assets["Actions"]] == ["FileAssets"]


def test_who_confirms_broadened_permissions_is_told_on_an_encrypted_topic(pipelined: Assembly) -> None:
    template = pipelined.templates["genai-pipeline"]
    topic = props(template, "AWS::SNS::Topic", "Approvals")
    assert "alias/aws/sns" in json.dumps(topic["KmsMasterKeyId"])
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert (subscription["Properties"]["Protocol"], subscription["Properties"]["Endpoint"]) == (
        "email",
        "platform@example.com",
    )


def test_with_every_workload_promoted_there_is_no_sandbox_stage_and_without_emails_no_topic(
    synthesize: Synthesizer,
) -> None:
    """`make promote` of the last sandbox workload leaves the sandbox tier empty: the pipeline still
    synthesizes, production behind the same gates."""
    quiet = {key: value for key, value in PIPELINE.items() if key != "approval_emails"}
    promoted = synthesize(
        tier="pipeline", **{"blueprint.pipeline": quiet, "blueprint.workloads.support.stage": "production", **ACCOUNTS}
    )
    stages = _stages(promoted)
    assert [s["Name"] for s in stages] == ["Source", "Build", "UpdatePipeline", "Assets", "Production"]
    assert {"ConfirmPermissions.Check", "Approve"} <= {a["Name"] for a in stages[-1]["Actions"]}
    assert not resources(promoted.templates["genai-pipeline"], "AWS::SNS::Topic")
    assert not list(promoted.outdir.glob("assembly-*-Sandbox"))


# --- configuration --------------------------------------------------------------------------------


def test_tier_pipeline_needs_the_pipeline_enabled(cdk_context: dict[str, Any]) -> None:
    # Off here whatever cdk.json says: a repository that enables its pipeline runs this suite too.
    context = {**cdk_context, "tier": "pipeline", "blueprint.pipeline": {"enabled": False}}
    with pytest.raises(ConfigError, match=r"^tier = 'pipeline': blueprint.pipeline.enabled is false; allowed: "):
        pipeline_selected(context, load_config(context))


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        *[
            ({"blueprint.pipeline": {**PIPELINE, key: None}, **ACCOUNTS}, f"blueprint.pipeline.{key}: {REQUIRED}")
            for key in ("account", "connection_arn", "repository")
        ],
        (
            {"blueprint.pipeline": PIPELINE, "blueprint.sandbox.account": SANDBOX},
            f"blueprint.production.account: {REQUIRED}",
        ),
        (
            {"blueprint.pipeline": PIPELINE, "blueprint.production.account": PRODUCTION},
            f"blueprint.sandbox.account: {REQUIRED}",
        ),
        (
            {"blueprint.pipeline": {**PIPELINE, "connection_arn": "arn:aws:s3:::bucket"}, **ACCOUNTS},
            "blueprint.pipeline.connection_arn",
        ),
        ({"blueprint.pipeline": {**PIPELINE, "branch": "a//b"}, **ACCOUNTS}, "blueprint.pipeline.branch"),
    ],
)
def test_an_incomplete_pipeline_is_refused_naming_the_key(
    cdk_context: dict[str, Any], overrides: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_config({**cdk_context, **overrides})
    assert expected in str(refused.value)


def test_what_cdk_pipelines_builds_is_acknowledged_where_it_sits_with_specific_reasons(pipelined: Assembly) -> None:
    """Synth has passed both packs (a finding fails it): every acknowledgement it needed sits on a
    resource of the pipeline's, never on the stack, and says why."""
    acks = acknowledgements(pipelined.outdir)  # the stages' too (the tiers' own, as in a direct synth)
    assert {path.split("/")[2] for path, _, _ in acks} == {"Pipeline", "Sandbox", "Production"}
    for path, rule, reason in acks:
        assert path.count("/") >= 3, f"{rule} at {path}"
        assert len(reason) >= 60, f"{rule} at {path}: reason too thin: {reason!r}"


def test_the_stages_acknowledge_exactly_what_a_direct_synth_does(pipelined: Assembly, assembly: Assembly) -> None:
    """The tiers in the pipeline's stages carry the same controls: the same findings acknowledged,
    rule by rule (with the accounts named, a finding written for the token alone would fail)."""

    def by_rule(acks: list[tuple[str, str, str]]) -> Counter[str]:
        return Counter(re.sub(r"\[.*\]$", "", rule) for _, rule, _ in acks)

    staged = [ack for ack in acknowledgements(pipelined.outdir) if ack[0].split("/")[2] != "Pipeline"]
    assert by_rule(staged) == by_rule(acknowledgements(assembly.outdir))
