"""The production tier's Lambda defaults, said once: retained logs under the tier key."""

from __future__ import annotations

from typing import Any

from aws_cdk import RemovalPolicy, aws_kms as kms
from constructs import Construct

from stacks.config import ProductionConfig, Tier
from stacks.shared.lambda_function import BlueprintFunction


def production_function(
    scope: Construct,
    id: str,
    *,
    prefix: str,
    config: ProductionConfig,
    key: kms.IKey,
    package: str,
    description: str,
    **options: Any,
) -> BlueprintFunction:
    """A house function with the tier's metrics namespace, log retention and KMS key, whose log
    group outlives the stack; ``options`` are BlueprintFunction's (memory, timeout, environment)."""
    return BlueprintFunction(
        scope,
        id,
        package=package,
        description=description,
        metrics_namespace=f"{prefix}/{Tier.PRODUCTION}",
        log_retention_days=config.log_retention_days,
        log_key=key,
        removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        **options,
    )
