#!/usr/bin/env python3
"""Builds the app: reads the config, instantiates the chosen tiers' stacks, runs cdk-nag.

cdk synth                      # every tier
cdk synth -c tier=sandbox      # one tier
cdk synth -c tier=pipeline     # the delivery pipeline, its stages holding both tiers (blueprint.pipeline)
"""

from __future__ import annotations

import sys

from stacks import startup  # isort: skip  # light: nothing here imports aws_cdk before start()

if __name__ == "__main__":  # run by the CDK CLI: Node and Python start up side by side
    startup.start()

from aws_cdk import App, Stack

from stacks.config import ConfigError, load_config, pipeline_selected, selected_tiers
from stacks.tiers import govern, tier_stacks


def build_app(app: App) -> list[Stack]:
    """Add the selected tiers' stacks (or the delivery pipeline, whose stages hold them) to ``app``;
    raises ConfigError on bad configuration."""
    context = app.node.get_all_context()
    config = load_config(context)
    stacks: list[Stack] = []
    for tier in selected_tiers(context):
        stacks.extend(tier_stacks(app, tier, config))
    if pipeline_selected(context, config):
        from stacks.pipeline.stack import DeliveryPipelineStack  # CDK Pipelines and CodeBuild: only here

        stacks.append(DeliveryPipelineStack(app, f"{config.prefix}-pipeline", config=config))
    govern(app, config)
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
