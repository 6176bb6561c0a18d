"""What every production stack and construct is built from, in one object."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, cast

from aws_cdk import Duration, RemovalPolicy, aws_cognito as cognito, aws_kms as kms, aws_logs as logs
from constructs import Construct

from stacks.config import FunctionName, ProductionConfig, Tier
from stacks.config.functions import DEFAULT_MEMORY_MB, SNAP_START_DEFAULTS
from stacks.shared.lambda_function import DEFAULT_TIMEOUT, BlueprintFunction, log_retention
from stacks.shared.runtime_config import ConfigEnvironment, ConfigStore


@dataclass(frozen=True)
class Identity:
    """The user pool callers sign in with, the app client whose tokens the tier accepts, and the
    KMS HMAC key of the AI gateway's passages to the tools gateway (lambdas/shared/passage.py)."""

    user_pool: cognito.IUserPool
    client: cognito.IUserPoolClient
    passage_key: kms.IKey


@dataclass(frozen=True)
class ProductionContext:
    """The names' prefix, the tier's config, KMS key and runtime-config store, and (from the
    identity stack on) its identity. The foundation stack makes the key and the store; the
    identity stack adds the identity."""

    prefix: str
    config: ProductionConfig
    key: kms.IKey
    config_store: ConfigStore
    _identity: Identity | None = None

    @property
    def name(self) -> str:
        """The tier's name, the stem of its stacks' and resources' names."""
        return f"{self.prefix}-{Tier.PRODUCTION}"

    @property
    def metrics_namespace(self) -> str:
        return f"{self.prefix}/{Tier.PRODUCTION}"

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            raise ValueError("this production context has no identity yet (the identity stack adds it)")
        return self._identity

    def with_identity(self, identity: Identity) -> ProductionContext:
        return replace(self, _identity=identity)

    def config_environment(self, scope: Construct, part: str) -> ConfigEnvironment:
        """The AppConfig environment of one part of the tier (a stack's functions), named ``part``."""
        return ConfigEnvironment(
            scope,
            "RuntimeConfig",
            store=self.config_store,
            environment_name=part,
            metrics_namespace=self.metrics_namespace,
        )

    def log_group(
        self,
        scope: Construct,
        id: str,
        *,
        log_group_name: str | None = None,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
    ) -> logs.LogGroup:
        """A log group of the tier: its retention, encrypted with its key, kept past the stack unless
        ``removal_policy`` says otherwise."""
        return logs.LogGroup(
            scope,
            id,
            log_group_name=log_group_name,
            retention=log_retention(self.config.log_retention_days),
            encryption_key=self.key,
            removal_policy=removal_policy,
        )

    def timeout(self, function: FunctionName, default: Duration = DEFAULT_TIMEOUT) -> Duration:
        """A function's timeout: ``production.functions.<function>.timeout_seconds``, else ``default``.
        What depends on a function's time (a queue's visibility, a lease) is derived from this."""
        configured = self.config.functions.get(function)
        seconds = configured.timeout_seconds if configured else None
        return Duration.seconds(seconds) if seconds is not None else default

    def reserved_concurrency(self, function: FunctionName) -> int | None:
        """``production.functions.<function>.reserved_concurrency``: None unless config reserves it."""
        configured = self.config.functions.get(function)
        return configured.reserved_concurrency if configured else None

    def function(
        self,
        scope: Construct,
        id: str,
        *,
        package: str,
        description: str,
        sizing: FunctionName | None = None,
        memory_size: int = DEFAULT_MEMORY_MB,
        timeout: Duration = DEFAULT_TIMEOUT,
        reserved: bool = True,
        **options: Any,
    ) -> BlueprintFunction:
        """A house function with the tier's metrics namespace, log retention and KMS key, whose log
        group outlives the stack; memory and timeout from ``production.functions.<sizing>`` (sizing
        defaults to the package) where set, else the values given; SnapStart from
        ``production.functions.<sizing>.snap_start`` for the functions that offer it (SNAP_START_DEFAULTS),
        whose invokers must call ``invoke_target``; reserved concurrency from
        ``production.functions.<sizing>.reserved_concurrency`` where set (none otherwise), unless not
        ``reserved`` (a function a reservation would throttle into lost work). ``options`` are
        BlueprintFunction's (settings, module, snap_start)."""
        name = cast(FunctionName, sizing or package)  # a package the config does not size is simply absent
        configured = self.config.functions.get(name)
        memory = configured.memory_mb if configured and configured.memory_mb is not None else memory_size
        if reserved:
            options["reserved_concurrent_executions"] = self.reserved_concurrency(name)
        if name in SNAP_START_DEFAULTS:  # invoked through invoke_target, its alias with SnapStart
            chosen = configured.snap_start if configured else None
            options["snap_start"] = SNAP_START_DEFAULTS[name] if chosen is None else chosen
        return BlueprintFunction(
            scope,
            id,
            package=package,
            description=description,
            metrics_namespace=self.metrics_namespace,
            log_retention_days=self.config.log_retention_days,
            log_key=self.key,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
            memory_size=memory,
            timeout=self.timeout(name, timeout),
            **options,
        )
