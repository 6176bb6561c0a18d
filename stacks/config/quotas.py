"""Account and service quotas the production tier's config uses, checked before a deploy meets them.

Each :class:`Quota` is a documented default (docs/operations.md §1 lists them at the target size);
:func:`quota_usage` counts what one config takes of each. :func:`quota_problems` turns that into
words: a quota AWS will not raise that the config passes is an error (synth stops, naming the
key); one at :data:`WARN_AT` or more of its default is a warning (synth goes on, saying which
increase to request). Account-wide quotas are shared with everything else in the account and
region: the count here is this tier's share only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shared.tools import BUILTIN_TOOLS
from stacks.config.production import ProductionConfig
from stacks.config.tools import all_tools

WARN_AT = 0.8  # of a quota's default


@dataclass(frozen=True)
class Quota:
    service: str
    name: str
    default: int
    adjustable: bool
    key: str  # the config key that drives the count
    count: Callable[[ProductionConfig], int]


def _usage_plans(config: ProductionConfig) -> int:
    return len({group.usage_plan for group in config.groups.values()})


# AgentCore runtimes the tier runs besides one per agent: the web tools' MCP server
# (stacks/production/web_tools.py), which the tools stack always creates (production.web has caps,
# no switch).
TOOL_RUNTIMES = 1


def _runtimes(config: ProductionConfig) -> int:
    """One per agent (its own stack), and the web tools' server."""
    return len(config.agents) + TOOL_RUNTIMES


def _online_evaluations(config: ProductionConfig) -> int:
    """One per agent, where Transaction Search is on (an agent stack makes none without spans)."""
    return len(config.agents) if config.account_settings.transaction_search != "off" else 0


def _gateway_targets(config: ProductionConfig) -> int:
    """The tools gateway's targets: one per legacy API, and the built-in ones (knowledge, web)."""
    return len(set(config.legacy_apis) | set(BUILTIN_TOOLS.values()))


def _policies(config: ProductionConfig) -> int:
    return sum(1 for group in config.groups.values() if group.tools)


def _cedar_bytes(config: ProductionConfig) -> int:
    """The gateway's Cedar policies together, in bytes, as the policy engine holds them: every
    permit names the gateway, counted at what its ARN may take once deployed."""
    # The stacks' own permits (not a copy): imported here, as the production stacks import config.
    from stacks.production.tool_binding import GATEWAY_ARN_CHARS, bindings, cedar_permits

    return sum(len(s.encode()) for s in cedar_permits(bindings(config), "a" * GATEWAY_ARN_CHARS).values())


def _largest_target(config: ProductionConfig) -> int:
    targets: dict[str, int] = {}
    for target in all_tools(config.legacy_apis).values():
        targets[target] = targets.get(target, 0) + 1
    return max(targets.values(), default=0)


# Functions ai_gateway's reservation applies to: the gateway and its streaming function
# (stacks/production/gateway.py), not the jobs worker nor the ledger sweeper (gateway_jobs.py).
GATEWAY_RESERVED_FUNCTIONS = 2


def functions_reserved_by(config: ProductionConfig, name: str) -> int:
    """At most how many functions one production.functions name's reservation applies to (one per
    legacy API or pull source for those; a name whose function the config leaves out still counts one)."""
    per_entry = {"legacy_tools": len(config.legacy_apis), "connector_pull": len(config.connectors.pull)}
    return GATEWAY_RESERVED_FUNCTIONS if name == "ai_gateway" else per_entry.get(name, 1)


def _reserved_concurrency(config: ProductionConfig) -> int:
    return sum(
        function.reserved_concurrency * functions_reserved_by(config, name)
        for name, function in config.functions.items()
        if function.reserved_concurrency is not None
    )


QUOTAS: tuple[Quota, ...] = (
    Quota("API Gateway", "usage plans per account and region", 300, True, "groups.*.usage_plan", _usage_plans),
    Quota("API Gateway", "API keys per account and region", 10_000, False, "groups", lambda c: len(c.groups)),
    Quota("Cognito", "groups per user pool", 10_000, False, "groups", lambda c: len(c.groups)),
    Quota("AgentCore", "agent runtimes per account", 1_000, True, "agents", _runtimes),
    Quota("AgentCore", "online evaluation configurations per account", 1_000, False, "agents", _online_evaluations),
    Quota("AgentCore", "targets per gateway", 100, True, "legacy_apis", _gateway_targets),
    Quota("AgentCore", "tools per gateway target", 1_000, True, "legacy_apis.*.tools", _largest_target),
    Quota("AgentCore", "policies per policy engine", 1_000, False, "groups.*.tools", _policies),
    # "200 KB combined across all policies per resource": every permit is on the one gateway.
    Quota("AgentCore", "bytes of Cedar policies per gateway", 200_000, False, "groups.*.tools", _cedar_bytes),
    Quota("AgentCore", "entries per gateway rate limit", 1_000, False, "groups", lambda c: len(c.groups)),
    # Lambda keeps 100 of the account's concurrency (1,000 by default) unreserved.
    Quota(
        "Lambda",
        "concurrent executions that may be reserved (1,000 less 100 unreserved)",
        900,
        True,
        "functions.*.reserved_concurrency",
        _reserved_concurrency,
    ),
)


def quota_usage(config: ProductionConfig) -> list[tuple[Quota, int]]:
    """Every quota with what this config takes of it."""
    return [(quota, quota.count(config)) for quota in QUOTAS]


def quota_problems(config: ProductionConfig) -> tuple[list[str], list[str]]:
    """(errors, warnings): quotas the config passes that AWS will not raise, and quotas it takes
    WARN_AT or more of (an increase to request, or a hard limit coming)."""
    errors: list[str] = []
    warnings: list[str] = []
    for quota, used in quota_usage(config):
        line = (
            f"blueprint.production.{quota.key}: {used:,} of {quota.service}'s {quota.default:,} {quota.name}"
            f" ({'adjustable' if quota.adjustable else 'not adjustable'})"
        )
        if used > quota.default and not quota.adjustable:
            errors.append(f"{line}: more than AWS allows")
        elif used >= WARN_AT * quota.default:
            advice = "request an increase before deploying" if quota.adjustable else "a hard limit is near"
            warnings.append(f"{line}: {advice}")
    return errors, warnings
