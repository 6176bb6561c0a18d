"""One map group -> tools drives everything that enforces it.

From ``groups.<name>.tools`` in config this module derives the qualified tool names the gateway
uses (``<target>___<tool>``, three underscores), the Cedar permits of the gateway's policy engine
(one per group, naming its tools; nothing else), and the map the interceptors read (lambdas/tool_guard).
"""

from __future__ import annotations

import hashlib
import re

from shared.claims import GROUP_CLAIM
from shared.tools import qualified
from stacks.config import ConfigError, ProductionConfig, all_tools

__all__ = ["GROUP_CLAIM", "bindings", "cedar_permits", "classifications", "qualified"]


def bindings(config: ProductionConfig) -> dict[str, list[str]]:
    """group -> the qualified names of the tools it may list and call (sorted)."""
    targets = all_tools(config.legacy_apis)
    return {group: sorted(qualified(targets[tool], tool) for tool in g.tools) for group, g in config.groups.items()}


def classifications(config: ProductionConfig) -> dict[str, list[str]]:
    """group -> the document classifications its knowledge searches are filtered to."""
    return {group: list(g.data_classifications) for group, g in config.groups.items()}


# A Cedar statement holds 10,000 characters (CreatePolicy); the gateway's ARN is counted at
# what it may take once deployed.
CEDAR_STATEMENT_LIMIT = 10_000
GATEWAY_ARN_CHARS = 128


def cedar_permits(tool_bindings: dict[str, list[str]], gateway_arn: str) -> dict[str, str]:
    """Policy name -> Cedar statement: permit one group its tools on this gateway, and no more.

    One policy per group naming its set of actions (``action in [...]``), so the policy engine
    holds as many policies as there are groups, not groups x tools. A group bound to no tool has
    none: the engine denies by default."""
    permits: dict[str, str] = {}
    for group, tools in sorted(tool_bindings.items()):
        if not tools:
            continue
        actions = ",\n".join(f'    AgentCore::Action::"{tool}"' for tool in sorted(tools))
        statement = (
            "permit(\n"
            "  principal is AgentCore::OAuthUser,\n"
            f"  action in [\n{actions}\n  ],\n"
            f'  resource == AgentCore::Gateway::"{gateway_arn}"\n'
            ") when {\n"
            f'  principal.hasTag("{GROUP_CLAIM}") && principal.getTag("{GROUP_CLAIM}") == "{group}"\n'
            "};"
        )
        weight = len(statement) - len(gateway_arn) + GATEWAY_ARN_CHARS
        if weight > CEDAR_STATEMENT_LIMIT:
            raise ConfigError(
                f"blueprint.production.groups.{group}.tools: its Cedar permit would take about {weight} "
                f"characters; a policy statement holds {CEDAR_STATEMENT_LIMIT} (bind fewer tools, or shorter names)"
            )
        permits[_policy_name(group)] = statement
    return permits


def _policy_name(group: str) -> str:
    """Policy names allow letters, digits and underscores (48 at most)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"permit_{group}")
    digest = hashlib.sha256(group.encode()).hexdigest()[:8]  # stable across synths
    return name if len(name) <= 48 else f"{name[:39]}_{digest}"
