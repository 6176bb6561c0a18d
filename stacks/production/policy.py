"""The gateway policy document: what the AI gateway function needs to know of the config.

Written to an SSM parameter by the gateway stack and read by lambdas/ai_gateway (models.py
GatewayPolicy), so prices, quotas and model lists change with a deploy, never with code.
"""

from __future__ import annotations

from typing import Any

from stacks.config import ProductionConfig


def gateway_policy(config: ProductionConfig) -> dict[str, Any]:
    return {
        "groups": {
            name: {
                "kind": group.kind,
                "tier": group.tier,
                "models": group.models.model_dump(mode="json"),
                "quotas": {output: quota.model_dump(mode="json") for output, quota in group.output_quotas.items()},
            }
            for name, group in config.groups.items()
        },
        "outputs": {name: output.model_dump(mode="json") for name, output in config.output_types.items()},
    }


def pre_token_groups(config: ProductionConfig) -> dict[str, dict[str, Any]]:
    """What the pre-token-generation trigger needs to pick a user's gateway group."""
    return {
        name: {"precedence": group.precedence, "tier": group.tier, "kind": group.kind}
        for name, group in config.groups.items()
    }
