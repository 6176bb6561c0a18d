"""The delivery pipeline (optional, ``blueprint.pipeline``): CDK Pipelines on CodePipeline in a
tooling account.

    source (CodeConnections, the branch) -> synth (make test, make synth TIER=pipeline)
      -> update the pipeline itself -> publish assets
      -> Sandbox stage: the sandbox tier, into its account
      -> Production stage: a permissions-broadening check (IAM or security-group changes wait for a
         person), then a manual approval, then the production tier into its account

Each stage holds the same stacks a direct deploy does (stacks.tiers), under the same names, with
the config's tags and cdk-nag's packs of its own (a stage's stacks are synthesized apart from the
app's). Each tier's account is bootstrapped to trust the tooling account once:
``cdk bootstrap aws://<account>/<region> --trust <tooling account>
--cloudformation-execution-policies <policy>`` (docs/operations.md).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aws_cdk import (
    CfnResource,
    Duration,
    Environment,
    Stack,
    Stage,
    aws_codebuild as codebuild,
    aws_codepipeline as codepipeline,
    aws_iam as iam,
    aws_kms as kms,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
    pipelines,
)
from constructs import Construct, IConstruct

from stacks.config import BlueprintConfig, PipelineConfig, Tier
from stacks.shared.expect import default_child, expect, present
from stacks.shared.nag import (
    acknowledge,
    acknowledge_all,
    acknowledge_inline_policy,
    nag_account,
    nag_arn,
    nag_attribute,
)
from stacks.tiers import govern, tier_stacks

# The synth step's own set-up: Node.js and npm for the CDK CLI (make installs the pinned one).
INSTALL_COMMANDS = (
    "apt-get update -qq",
    "apt-get install -y -qq --no-install-recommends nodejs npm make > /dev/null",
)
# The whole suite, then the pipeline's own assembly (its stages' stacks inside it).
SYNTH_COMMANDS = ("make test", "make synth TIER=pipeline")
# Set-up, the suite and the synth: about 20 minutes on a medium machine (CodeBuild's default: 60).
SYNTH_TIMEOUT = Duration.minutes(120)
# The CDK CLI the pipeline's self-update runs: the one package.json pins for `make`, so the pipeline
# updates itself with the CLI the suite was run with. (CDK Pipelines' permissions check installs
# the latest CLI whatever this says; asset publishing runs cdk-assets.)
CLI_VERSION: str = json.loads((Path(__file__).resolve().parents[2] / "package.json").read_text())["devDependencies"][
    "aws-cdk"
]


class TierStage(Stage):
    """One tier's stacks as a pipeline stage, deployed into the tier's account and region."""

    def __init__(self, scope: Construct, id: str, *, tier: Tier, config: BlueprintConfig) -> None:
        where = config.sandbox if tier is Tier.SANDBOX else config.production
        super().__init__(scope, id, env=Environment(account=where.account, region=where.region))
        self.stacks = tier_stacks(self, tier, config)
        govern(self, config)


class DeliveryPipelineStack(Stack):
    """The pipeline, in the tooling account (see the module's docstring)."""

    def __init__(self, scope: Construct, id: str, *, config: BlueprintConfig, **kwargs: Any) -> None:
        settings = config.pipeline
        super().__init__(scope, id, env=Environment(account=settings.account, region=settings.region), **kwargs)
        # PipelineConfig requires both when the pipeline is enabled.
        connection_arn = present(settings.connection_arn, "pipeline.connection_arn")
        repository = present(settings.repository, "pipeline.repository")
        # A clone, not CodePipeline's zip of the commit: the suite reads git (ls-files, worktrees)
        # and the checkout keeps the scripts' executable bits.
        source = pipelines.CodePipelineSource.connection(
            repository, settings.branch, connection_arn=connection_arn, code_build_clone_output=True
        )
        self.pipeline = pipelines.CodePipeline(
            self,
            "Pipeline",
            pipeline_name=f"{config.prefix}-delivery",
            pipeline_type=codepipeline.PipelineType.V2,
            cross_account_keys=True,  # the tiers' accounts read the artifacts
            enable_key_rotation=True,
            synth=pipelines.ShellStep(
                "Synth",
                input=source,
                install_commands=list(INSTALL_COMMANDS),
                commands=list(SYNTH_COMMANDS),
                primary_output_directory="cdk.out",
            ),
            synth_code_build_defaults=pipelines.CodeBuildOptions(
                build_environment=_build_environment(settings), timeout=SYNTH_TIMEOUT
            ),
            cli_version=CLI_VERSION,
            # One CodeBuild project publishes every file asset: one action in the Assets stage however
            # many functions and agents there are, and one build (not one per asset) to wait for.
            publish_assets_in_parallel=False,
        )
        # No sandbox stage once every workload is promoted (a stage must hold a stack).
        self.sandbox: TierStage | None = None
        if config.workloads_in("sandbox"):
            self.sandbox = TierStage(self, "Sandbox", tier=Tier.SANDBOX, config=config)
            self.pipeline.add_stage(self.sandbox)
        self.production = TierStage(self, "Production", tier=Tier.PRODUCTION, config=config)
        check = pipelines.ConfirmPermissionsBroadening(
            "ConfirmPermissions", stage=self.production, notification_topic=self._approvals_topic(settings)
        )
        approve = pipelines.ManualApprovalStep(
            "Approve",
            comment="Deploy the production tier: read the review report of this change (make review) first.",
        )
        approve.add_step_dependency(check)
        self.pipeline.add_stage(self.production, pre=[check, approve])
        self.pipeline.build_pipeline()  # now, so its constructs exist for the acknowledgements below
        self._use_connection(connection_arn)
        _acknowledge_pipeline(self, self.pipeline)

    def _use_connection(self, connection_arn: str) -> None:
        """CDK grants ``codestar-connections:UseConnection`` to the source action and to the synth
        project (which clones with the connection); IAM matches an action's service prefix to the
        resource's, and connections created since July 2024 have ``codeconnections`` ARNs, which
        that grant does not reach (Developer Tools' "Connections rename"). Such a connection gets
        the renamed action too, on the same connection only."""
        if _connection_service(connection_arn) != "codeconnections":
            return
        use = iam.PolicyStatement(actions=["codeconnections:UseConnection"], resources=[connection_arn])
        self.pipeline.synth_project.add_to_role_policy(use)
        source = self.pipeline.pipeline.node.find_child("Source").node.children[0]
        role = expect(source.node.find_child("CodePipelineActionRole"), iam.Role, "the source action's role")
        role.add_to_principal_policy(use)

    def _approvals_topic(self, settings: PipelineConfig) -> sns.ITopic | None:
        if not settings.approval_emails:
            return None
        topic = sns.Topic(
            self,
            "Approvals",
            display_name="Production deploys waiting for a person",
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
            enforce_ssl=True,
        )
        for address in settings.approval_emails:
            topic.add_subscription(subscriptions.EmailSubscription(address))
        return topic


# --- cdk-nag: what CDK Pipelines writes itself, acknowledged where it sits -------------------------

ARTIFACT_ACCESS = (
    "CDK Pipelines' grant on its own artifact bucket and key: the stage reads and writes the "
    "pipeline's build artifacts, which are named by CodePipeline at run time."
)
ARTIFACT_READ = (
    "CDK Pipelines' read grant on its own artifact bucket and key: the step reads the cloud assembly "
    "the synth step wrote, under names CodePipeline picks at run time."
)


def _acknowledge_pipeline(stack: Stack, pipeline: pipelines.CodePipeline) -> None:
    """Each finding on the resources CDK Pipelines builds (not this project's code), with why."""
    bucket = pipeline.pipeline.artifact_bucket
    objects = f"{nag_attribute(bucket, 'Arn')}/*"

    def at(path: str) -> IConstruct:
        node: IConstruct = pipeline
        for part in path.split("/"):
            node = node.node.find_child(part)
        return node

    def project_logs(project: IConstruct) -> list[tuple[str, str]]:
        cfn = default_child(project, CfnResource)
        logical = f"<{stack.resolve(cfn.logical_id)}>"
        why = "CodeBuild names the project's own log streams and test reports at run time, under its name."
        return [
            (f"Resource::{nag_arn(stack, 'codebuild', f'report-group/{logical}-*')}", why),
            (f"Resource::{nag_arn(stack, 'logs', f'log-group:/aws/codebuild/{logical}:*')}", why),
        ]

    read = [
        (f"Action::{action}", ARTIFACT_READ)
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*", "s3:GetBucket*", "s3:GetObject*", "s3:List*")
    ]
    write = [
        *read,
        ("Action::s3:Abort*", ARTIFACT_ACCESS),
        ("Action::s3:DeleteObject*", ARTIFACT_ACCESS),
        (f"Resource::{objects}", ARTIFACT_ACCESS),
    ]
    unscoped = (
        "Resource::*",
        "CDK Pipelines' step reads the cloud assembly and assumes the bootstrap roles of the target "
        "accounts, which it names only at run time (cdk-assets, cdk deploy).",
    )
    synth = pipeline.synth_project
    mutation = pipeline.self_mutation_project
    security = at("PipelinesSecurityCheck/CDKSecurityCheck")
    approve = at("PipelinesSecurityCheck/CDKPipelinesAutoApprove")
    granular: dict[IConstruct, list[tuple[str, str]]] = {
        pipeline.pipeline.role: write,
        at("Pipeline/Source").node.children[0].node.find_child("CodePipelineActionRole"): write,
        synth.role: [*write, *project_logs(synth)],  # type: ignore[dict-item]
        mutation.role: [  # type: ignore[dict-item]
            *read,
            (f"Resource::{objects}", ARTIFACT_READ),
            unscoped,
            (
                f"Resource::arn:*:iam::{nag_account(stack)}:role/*",
                "CDK Pipelines' self-mutation assumes the bootstrap's deploy roles (cdk-<qualifier>-deploy-role-...)"
                " of this account to update the pipeline stack; their names carry the bootstrap qualifier.",
            ),
            *project_logs(mutation),
        ],
        at("Assets/FileRole"): [
            *read[2:],
            (f"Resource::{objects}", ARTIFACT_READ),
            unscoped,
            (
                f"Resource::{nag_arn(stack, 'codebuild', 'report-group/*')}",
                "CDK Pipelines' asset-publishing projects share this role; CodeBuild names their reports at run time.",
            ),
            (
                f"Resource::{nag_arn(stack, 'logs', 'log-group:/aws/codebuild/*')}",
                "CDK Pipelines' asset-publishing projects share this role; CodeBuild names their logs at run time.",
            ),
        ],
        security.node.find_child("Role"): [
            *read,
            (f"Resource::{objects}", ARTIFACT_READ),
            unscoped,
            (
                f"Resource::{nag_attribute(approve, 'Arn')}:*",
                "The permissions check invokes CDK Pipelines' auto-approve function (any version of it).",
            ),
            (
                f"Resource::{nag_arn(stack, 'kms', 'key/*')}",
                "The permissions check decrypts the target accounts' bootstrap assets it diffs, under keys named at "
                "run time.",
            ),
            *project_logs(security),
        ],
        approve.node.find_child("ServiceRole"): [
            (
                "Resource::*",
                "codepipeline:PutApprovalResult has no resource-level permissions beyond the pipeline, which CDK "
                "Pipelines names only at run time in the approval token.",
            )
        ],
    }
    for role, findings in granular.items():
        acknowledge_inline_policy(role)
        acknowledge_all(role, [(f"AwsSolutions-IAM5[{finding}]", reason) for finding, reason in findings])
    for role in (at("CodeBuildActionRole"), at("Pipeline/Production/ConfirmPermissions.Check").node.children[0]):
        acknowledge_inline_policy(role)
    acknowledge(
        approve.node.find_child("ServiceRole"),
        "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
        "CDK Pipelines' auto-approve function writes its own logs with the basic execution role.",
    )
    acknowledge_all(
        approve,
        [
            ("NIST.800.53.R5-LambdaDLQ", "The permissions check invokes it synchronously and reads its answer."),
            (
                "NIST.800.53.R5-LambdaInsideVPC",
                "It calls CodePipeline's public API to approve the manual step; no private network resource.",
            ),
            (
                "NIST.800.53.R5-LambdaConcurrency",
                "It runs once per production deploy with broadened permissions; nothing else invokes it.",
            ),
        ],
    )
    acknowledge(
        approve.node.find_child("LogGroup"),
        "NIST.800.53.R5-CloudWatchLogGroupEncrypted",
        "CDK Pipelines' auto-approve function logs only approval outcomes (no data); CloudWatch encrypts at rest.",
    )
    acknowledge_all(
        bucket,
        [
            (
                "AwsSolutions-S1",
                "CDK Pipelines' artifact bucket: build outputs rebuilt from the repository on every run, "
                "reached only by the pipeline's roles; CloudTrail records their access.",
            ),
            (
                "NIST.800.53.R5-S3BucketLoggingEnabled",
                "CDK Pipelines' artifact bucket holds build outputs rebuilt on every run; CloudTrail records access.",
            ),
            (
                "NIST.800.53.R5-S3BucketReplicationEnabled",
                "CDK Pipelines' artifact bucket holds build outputs the repository rebuilds; nothing to replicate.",
            ),
            (
                "NIST.800.53.R5-S3BucketVersioningEnabled",
                "CDK Pipelines' artifact bucket: each run writes new, content-named artifacts; none is overwritten.",
            ),
        ],
    )
    acknowledge(
        synth,
        "AwsSolutions-CB5",
        "The synth step needs a Debian image with Python 3.11+ (make fetches the Lambda runtime's CPython from a "
        "Debian archive): pipeline.build_image, a public image, not a CodeBuild-curated one.",
    )


def _connection_service(connection_arn: str) -> str:
    """The service prefix of a connection's ARN: ``codeconnections`` or ``codestar-connections``."""
    match = re.match(r"^arn:[^:]+:([^:]+):", connection_arn)
    if match is None:  # PipelineConfig's pattern admits none
        raise ValueError(f"not a connection ARN: {connection_arn!r}")
    return match.group(1)


def _build_environment(settings: PipelineConfig) -> codebuild.BuildEnvironment:
    return codebuild.BuildEnvironment(
        build_image=codebuild.LinuxBuildImage.from_docker_registry(settings.build_image),
        compute_type=getattr(codebuild.ComputeType, settings.compute),  # MEDIUM or LARGE
    )
