"""One map group -> tools drives everything that enforces it.

From ``groups.<name>.tools`` in config this module derives the qualified tool names the gateway
uses (``<target>___<tool>``, three underscores), the Cedar permits of the gateway's policy engine
(one per group and tool, nothing else), and the map the interceptors read (lambdas/tool_guard).
"""

from __future__ import annotations

import hashlib
import re

from shared.claims import GROUP_CLAIM
from shared.tools import qualified
from stacks.config import ProductionConfig, all_tools

__all__ = ["GROUP_CLAIM", "bindings", "cedar_permits", "classifications", "qualified"]


def bindings(config: ProductionConfig) -> dict[str, list[str]]:
    """group -> the qualified names of the tools it may list and call (sorted)."""
    targets = all_tools(config.legacy_apis)
    return {group: sorted(qualified(targets[tool], tool) for tool in g.tools) for group, g in config.groups.items()}


def classifications(config: ProductionConfig) -> dict[str, list[str]]:
    """group -> the document classifications its knowledge searches are filtered to."""
    return {group: list(g.data_classifications) for group, g in config.groups.items()}


def cedar_permits(tool_bindings: dict[str, list[str]], gateway_arn: str) -> dict[str, str]:
    """Policy name -> Cedar statement: permit one group one tool on this gateway, and no more."""
    permits: dict[str, str] = {}
    for group, tools in sorted(tool_bindings.items()):
        for tool in tools:
            name = _policy_name(group, tool)
            permits[name] = (
                "permit(\n"
                "  principal is AgentCore::OAuthUser,\n"
                f'  action == AgentCore::Action::"{tool}",\n'
                f'  resource == AgentCore::Gateway::"{gateway_arn}"\n'
                ") when {\n"
                f'  principal.hasTag("{GROUP_CLAIM}") && principal.getTag("{GROUP_CLAIM}") == "{group}"\n'
                "};"
            )
    return permits


def _policy_name(group: str, tool: str) -> str:
    """Policy names allow letters, digits and underscores (48 at most)."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"permit_{group}_{tool}")
    digest = hashlib.sha256(f"{group}/{tool}".encode()).hexdigest()[:8]  # stable across synths
    return name if len(name) <= 48 else f"{name[:39]}_{digest}"
