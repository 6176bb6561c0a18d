"""The house Lambda function: every function in the project is one of these."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args

import jsii
from aws_cdk import (
    Annotations,
    ArnFormat,
    AssetHashType,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
    Token,
    aws_iam as iam,
    aws_kms as kms,
    aws_lambda as lambda_,
    aws_logs as logs,
)
from constructs import Construct, IConstruct

from shared.contract import FunctionSettings
from stacks.config import ConfigError, LogRetentionDays
from stacks.config.functions import DEFAULT_MEMORY_MB
from stacks.shared.bytecode import LAMBDAS_DIR, PROJECT_ROOT, copy_compiled, package_digest, packages_digest
from stacks.shared.nag import INLINE_POLICY, acknowledge_all

LAYER_DIR = PROJECT_ROOT / "build" / "layer"

# The dependency layer is built for exactly this runtime and architecture (Makefile: `layer`).
RUNTIME = lambda_.Runtime.PYTHON_3_14
ARCHITECTURE = lambda_.Architecture.ARM_64

# CloudWatch's retention periods in days, in the order CDK's enum lists them (INFINITE last).
_RETENTION: dict[int, logs.RetentionDays] = dict(
    zip(get_args(LogRetentionDays), list(logs.RetentionDays)[:-1], strict=True)
)


def log_retention(days: int) -> logs.RetentionDays:
    """CDK's enum member for a retention period in days (one of LogRetentionDays)."""
    return _RETENTION[days]


def log_group_arn(scope: IConstruct, name: str) -> str:
    """A log group's ARN from its name, *without* the ``:*`` that ``ILogGroup.logGroupArn`` ends
    in: what a ``…:log-stream:*`` resource or a log-group-level action (index policies) needs."""
    return Stack.of(scope).format_arn(
        service="logs", resource="log-group", resource_name=name, arn_format=ArnFormat.COLON_RESOURCE_NAME
    )


def environment_of(scope: IConstruct, settings: FunctionSettings) -> dict[str, str]:
    """A runtime's environment from its settings contract (lambdas/shared/contract.py): JSON
    values with sorted keys, or CloudFormation's own join where a value holds deploy-time tokens."""

    def dumps(value: Any) -> str:
        text = json.dumps(value, sort_keys=True)
        return Stack.of(scope).to_json_string(value) if Token.is_unresolved(text) else text

    return settings.environment(dumps=dumps)


# Lambda holds at most 4 KB of environment variables in all (names and values); a deploy-time
# value (an ARN, a name, a URL) is counted at what it may take once resolved.
LAMBDA_ENVIRONMENT_BYTES = 4096
TOKEN_BYTES = 128
_TOKEN = re.compile(r"[$#]\{Token\[[^\]]+\]\}")


def environment_bytes(environment: Mapping[str, str]) -> int:
    """What an environment will weigh in Lambda, deploy-time values at TOKEN_BYTES each."""
    return sum(
        len(name.encode()) + len(_TOKEN.sub("", value).encode()) + TOKEN_BYTES * len(_TOKEN.findall(value))
        for name, value in environment.items()
    )


# The house function's time limit unless a function says otherwise (its size: DEFAULT_MEMORY_MB).
DEFAULT_TIMEOUT = Duration.seconds(30)

# The alias a SnapStart function is invoked through: it follows the function's current version.
LIVE_ALIAS = "live"

# pydantic looks for plugins in every installed distribution's entry points the first time it
# builds a model (a scan of the layer and the runtime at each cold start); no function uses one.
NO_PYDANTIC_PLUGINS = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
# What this construct puts in every function's environment, outside the function's contract.
HOUSE_VARIABLES = frozenset(
    {"POWERTOOLS_SERVICE_NAME", "POWERTOOLS_METRICS_NAMESPACE", "POWERTOOLS_LOG_LEVEL", *NO_PYDANTIC_PLUGINS}
)

# Packages under lambdas/ that every function's asset carries besides its own.
SHARED_PACKAGES: tuple[str, ...] = ("shared",)


class DependencyLayer(lambda_.LayerVersion):
    """Third-party runtime dependencies (lambdas/requirements.txt), one layer per stack.

    Built without Docker by `make layer`: pip with ``--platform manylinux2014_aarch64
    --only-binary=:all:`` into build/layer/python, byte-compiled for the runtime; its asset hash is
    the digest `make layer` wrote (``build_digest``). Use ``DependencyLayer.of(scope)``.
    """

    @classmethod
    def of(cls, scope: Construct) -> DependencyLayer:
        stack = Stack.of(scope)
        existing = stack.node.try_find_child("DependencyLayer")
        return existing if isinstance(existing, DependencyLayer) else cls(stack, "DependencyLayer")

    def __init__(self, scope: Construct, id: str) -> None:
        if not (LAYER_DIR / "python").is_dir():
            raise FileNotFoundError(
                f"Lambda dependency layer not built at {LAYER_DIR}: run `make layer` (or `make synth`)"
            )
        super().__init__(
            scope,
            id,
            code=lambda_.Code.from_asset(
                str(LAYER_DIR), asset_hash=build_digest(LAYER_DIR), asset_hash_type=AssetHashType.CUSTOM
            ),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description="Powertools, pydantic and pinned boto3 from lambdas/requirements.txt",
        )


def build_digest(directory: Path) -> str:
    """The digest of a bundle ``make`` built (tools/tree_digest.py, beside it as <name>.sha256): its
    asset hash, so synth does not read the whole tree again to fingerprint it."""
    recorded = directory.with_name(f"{directory.name}.sha256")
    if not recorded.is_file():
        raise FileNotFoundError(f"no digest of {directory} at {recorded}: run `make setup` (or `make synth`)")
    return recorded.read_text().strip()


@jsii.implements(ILocalBundling)
class FunctionBundle:
    """A function's code asset: its package and the shared packages, each with the runtime's
    bytecode (stacks/shared/bytecode.py), so no cold start compiles them. The asset's hash is
    the packages' digests, read once here (known before bundling: a staged asset is not built
    again), and bundling ships the packages only as they were when read."""

    def __init__(self, package: str) -> None:
        self.digests = [(part, package_digest(part)) for part in (package, *SHARED_PACKAGES)]
        self.asset_hash = packages_digest(self.digests)

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        copy_compiled(self.digests, Path(output_dir))
        return True


def function_code(package: str) -> lambda_.Code:
    """The asset for one function: lambdas/<package>/ plus the shared packages, compiled, nothing else."""
    if not (LAMBDAS_DIR / package / "__init__.py").is_file():
        raise FileNotFoundError(f"no Lambda package at {LAMBDAS_DIR / package}")
    return locally_bundled(LAMBDAS_DIR / package, FunctionBundle(package))


def locally_bundled(source: Path, bundle: Any) -> lambda_.Code:
    """A code asset ``bundle`` (an ILocalBundling with its ``asset_hash``) writes at synth, without
    Docker; ``source`` is what CDK names as the asset's origin (the bundle decides its content)."""
    return lambda_.Code.from_asset(
        str(source),
        asset_hash=bundle.asset_hash,
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused-local-bundling"),
            # (``bundle`` is Any: jsii hands try_bundle the options as one positional struct, not
            # the typed keywords ILocalBundling declares.)
            local=bundle,
        ),
    )


class BlueprintFunction(lambda_.Function):
    """A Python Lambda function with the house defaults.

    Code is the package ``lambdas/<package>/`` and the handler ``<package>.<module>.lambda_handler``
    (``module`` is ``handler`` unless a package serves several functions).
    Defaults: Python 3.14 on arm64; the dependency layer; 256 MB; 30 s; X-Ray active tracing;
    JSON logs (application INFO, system WARN) to its own log group with the given retention (days)
    and removal policy, encrypted with ``log_key`` when one is given; its own role, allowed to
    write only that log group and traces; Powertools environment (service name = package,
    metrics namespace, log level) and the function's own ``settings`` (its contract model,
    ``lambdas/<package>/contract.py``): a function has no other environment.

    ``snap_start`` (default off): Lambda SnapStart on published versions. The function then has
    its ``current_version`` (a new version each deploy that changes its code or configuration;
    the one it replaces is deleted once the deploy succeeds, so no superseded snapshot stays
    cached and billed) and the alias ``live`` on it, which invokers must call: $LATEST never
    resumes a snapshot. ``invoke_target`` is what to hand an invoker (an integration, an
    authorizer, a grant): the alias with SnapStart, the function itself without. SnapStart needs
    ephemeral storage of at most 512 MB (the default here) and no provisioned concurrency or EFS,
    none of which this construct sets.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        package: str,
        description: str,
        metrics_namespace: str,
        log_retention_days: int,
        removal_policy: RemovalPolicy,
        settings: FunctionSettings | None = None,
        memory_size: int = DEFAULT_MEMORY_MB,
        reserved_concurrent_executions: int | None = None,
        timeout: Duration | None = None,
        log_key: kms.IKey | None = None,
        layers: Sequence[lambda_.ILayerVersion] = (),
        module: str = "handler",
        snap_start: bool = False,
    ) -> None:
        # Its own role instead of AWSLambdaBasicExecutionRole, which may write to any log group.
        role = iam.Role(
            scope,
            f"{id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Lambda function {package}",
        )
        log_group = logs.LogGroup(
            scope,
            f"{id}Logs",
            retention=log_retention(log_retention_days),
            encryption_key=log_key,
            removal_policy=removal_policy,
        )
        environment = {
            "POWERTOOLS_SERVICE_NAME": package,
            "POWERTOOLS_METRICS_NAMESPACE": metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": "INFO",
            **NO_PYDANTIC_PLUGINS,
            **(environment_of(scope, settings) if settings else {}),
        }
        # The same settings with deploy-time values left as placeholders, to weigh them before a deploy does.
        weighed = {**environment, **(settings.environment() if settings else {})}
        if environment_bytes(weighed) > LAMBDA_ENVIRONMENT_BYTES:
            largest = sorted(weighed, key=lambda name: -len(weighed[name]))[:3]
            raise ConfigError(
                f"{id} ({package}): its environment would take about {environment_bytes(weighed)} bytes; Lambda "
                f"holds {LAMBDA_ENVIRONMENT_BYTES} (largest: {', '.join(largest)}); shorten what config puts there"
            )
        super().__init__(
            scope,
            id,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            code=function_code(package),
            handler=f"{package}.{module}.lambda_handler",
            description=description,
            memory_size=memory_size,
            reserved_concurrent_executions=reserved_concurrent_executions,
            timeout=timeout or DEFAULT_TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
            role=role,
            layers=[DependencyLayer.of(scope), *layers],
            environment=environment,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
            # Rollback: a failed deploy moves the alias back to the version it replaced, which is
            # deleted only in the cleanup after a successful one.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.DESTROY)
            if snap_start
            else None,
        )
        self.live_alias: lambda_.Alias | None = None
        if snap_start:
            self.live_alias = lambda_.Alias(self, "Live", alias_name=LIVE_ALIAS, version=self.current_version)
            Annotations.of(self).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "Its current version is published with every change and invoked through the alias live.",
            )
        log_group.grant_write(role)
        self.execution_role: iam.IRole = role  # what `role` is, without its Optional type
        acknowledge_all(
            role,
            (
                INLINE_POLICY,
                (
                    "AwsSolutions-IAM5[Resource::*]",
                    "Active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords have no resource type.",
                ),
            ),
        )

    @property
    def invoke_target(self) -> lambda_.IFunction:
        """What invokers call: the ``live`` alias with SnapStart (a snapshot resumes only for a
        published version), else the function ($LATEST)."""
        return self.live_alias if self.live_alias is not None else self
