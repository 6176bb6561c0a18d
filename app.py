#!/usr/bin/env python3
"""Builds the app: reads the config, instantiates the chosen tiers' stacks, runs cdk-nag.

cdk synth                      # every tier
cdk synth -c tier=sandbox      # one tier
"""

from __future__ import annotations

import sys

from stacks import startup  # isort: skip  # light: nothing here imports aws_cdk before start()

if __name__ == "__main__":  # run by the CDK CLI: Node and Python start up side by side
    startup.start()

from aws_cdk import App, Environment, Stack, Tags

from stacks.config import BlueprintConfig, ConfigError, Tier, load_config, selected_tiers
from stacks.production.tier import production_stacks
from stacks.sandbox.stack import SandboxStack
from stacks.shared.nag import add_rule_packs


def build_app(app: App) -> list[Stack]:
    """Add the selected tiers' stacks to ``app``; raises ConfigError on bad configuration."""
    context = app.node.get_all_context()
    config = load_config(context)
    stacks: list[Stack] = []
    for tier in selected_tiers(context):
        stacks.extend(_tier_stacks(app, tier, config))
    for tag, value in config.tags.items():
        Tags.of(app).add(tag, value)
    add_rule_packs(app)
    return stacks


def _tier_stacks(app: App, tier: Tier, config: BlueprintConfig) -> list[Stack]:
    prefix = config.prefix
    stacks: list[Stack]
    if tier is Tier.SANDBOX:
        env = Environment(account=config.sandbox.account, region=config.sandbox.region)
        stacks = []
        for name in config.workloads_in("sandbox"):  # one prototype stack per workload in sandbox stage
            prototype = SandboxStack(
                app, f"{prefix}-sandbox-{name}", prefix=prefix, workload=name, config=config.sandbox_for(name), env=env
            )
            Tags.of(prototype).add("workload", name)
            Tags.of(prototype).add("team", config.workloads[name].team)
            stacks.append(prototype)
    else:
        stacks = production_stacks(app, prefix=prefix, config=config.production)
    for stack in stacks:
        Tags.of(stack).add("tier", tier.value)
    return stacks


def main() -> None:
    # CDK's built-in validator unless start() brought the same one in a process of its own.
    app = App(builtin_cloud_formation_validation=startup.template_validator() is None)
    try:
        build_app(app)
    except ConfigError as error:
        sys.exit(f"Invalid configuration:\n{error}")
    app.synth()


if __name__ == "__main__":
    main()
