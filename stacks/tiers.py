"""The tiers' stacks under one scope (the app, or a delivery pipeline's stage), with the config's
tags and the rule packs over them: the same whichever way a tier is deployed."""

from __future__ import annotations

from aws_cdk import App, Environment, Stack, Stage, Tags

from stacks.config import BlueprintConfig, Tier
from stacks.production.tier import production_stacks
from stacks.sandbox.stack import TIER_TAG, WORKLOAD_TAG, SandboxStack
from stacks.shared.nag import add_rule_packs


def tier_stacks(scope: App | Stage, tier: Tier, config: BlueprintConfig) -> list[Stack]:
    """One tier's stacks under ``scope``, each tagged with its tier."""
    prefix = config.prefix
    stacks: list[Stack]
    if tier is Tier.SANDBOX:
        env = Environment(account=config.sandbox.account, region=config.sandbox.region)
        stacks = []
        for name in config.workloads_in("sandbox"):  # one prototype stack per workload in sandbox stage
            stack_name = f"{prefix}-sandbox-{name}"  # also in a pipeline's stage, which would prefix it
            prototype = SandboxStack(
                scope,
                stack_name,
                prefix=prefix,
                workload=name,
                config=config.sandbox_for(name),
                prompt=config.workloads[name].generation.prompt,
                env=env,
                stack_name=stack_name,
            )
            Tags.of(prototype).add(WORKLOAD_TAG, name)
            Tags.of(prototype).add("team", config.workloads[name].team)
            stacks.append(prototype)
    else:
        stacks = production_stacks(scope, prefix=prefix, config=config.production)
    for stack in stacks:
        Tags.of(stack).add(TIER_TAG, tier.value)
    return stacks


def govern(scope: App | Stage, config: BlueprintConfig) -> None:
    """The config's tags on everything under ``scope``, and cdk-nag's packs over it (a stage's
    stacks are synthesized apart from the app's: aspects and plugins on the app do not reach them)."""
    for tag, value in config.tags.items():
        Tags.of(scope).add(tag, value)
    add_rule_packs(scope)
