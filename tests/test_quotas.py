"""Account quotas (stacks/config/quotas.py): what a config takes of each, a hard one passed fails
synth naming the key, and 80% of any is a warning before a deploy meets it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.scale_config import scaled_context
from stacks.config import ConfigError, ProductionConfig, load_config
from stacks.config.quotas import WARN_AT, quota_problems, quota_usage
from stacks.production.tool_binding import GATEWAY_ARN_CHARS, bindings, cedar_permits
from stacks.production.web_tools import web_policy
from tests.infra.cfn import resources
from tests.synth_fixtures import Assembly
from tests.variant_config import suite_context


def production(context: dict[str, Any]) -> ProductionConfig:
    return load_config({**context, "tier": "production"}).production


def taken(config: ProductionConfig) -> dict[str, int]:
    return {quota.name: used for quota, used in quota_usage(config)}


def test_the_suites_config_and_the_100_group_target_are_inside_every_quota() -> None:
    for config in (production(suite_context()), production(scaled_context(100))):
        assert quota_problems(config) == ([], [])


def test_what_the_100_group_target_takes() -> None:
    config = production(scaled_context(100))
    usage = taken(config)
    assert usage["API keys per account and region"] == len(config.groups) == 100
    assert usage["usage plans per account and region"] == len({g.usage_plan for g in config.groups.values()})
    assert usage["policies per policy engine"] == sum(1 for g in config.groups.values() if g.tools)
    # One runtime per agent and the web tools' MCP server; a target per legacy API, knowledge, web.
    assert usage["agent runtimes per account"] == len(config.agents) + 1 >= 21
    assert usage["online evaluation configurations per account"] == len(config.agents)
    assert usage["targets per gateway"] == len(config.legacy_apis) + 2


def test_the_cedar_policies_together_are_counted_with_the_gateways_arn_at_its_longest() -> None:
    config = production(scaled_context(100))
    permits = cedar_permits(bindings(config), "a" * GATEWAY_ARN_CHARS)
    used = taken(config)["bytes of Cedar policies per gateway"]
    assert used == sum(len(permit.encode()) for permit in permits.values())
    assert used > 100 * 1000  # at 100 groups of 10 to 20 tools, over half the 200 KB an engine holds


def test_cedar_policies_past_what_a_gateway_holds_fail_synth_naming_the_key() -> None:
    """Every group bound to every tool, 30 groups more than the target: each permit fits its own
    10,000 characters; together they pass the 200 KB a gateway's policies hold (not adjustable)."""
    context = copy.deepcopy(scaled_context(130))
    blueprint = context["blueprint"]["production"]
    every = sorted({tool for group in blueprint["groups"].values() for tool in group.get("tools", [])})[:40]
    for group in blueprint["groups"].values():
        group["tools"] = every
    errors, _ = quota_problems(production(context))
    (error,) = [e for e in errors if "Cedar" in e]
    assert error.startswith("blueprint.production.groups.*.tools: ")
    assert error.endswith(
        "of AgentCore's 200,000 bytes of Cedar policies per gateway (not adjustable): more than AWS allows"
    )


# What each AgentCore counter counts: the resources of that type the production tier's stacks make.
COUNTED = {
    "agent runtimes per account": "AWS::BedrockAgentCore::Runtime",
    "targets per gateway": "AWS::BedrockAgentCore::GatewayTarget",
    "online evaluation configurations per account": "AWS::BedrockAgentCore::OnlineEvaluationConfig",
    "policies per policy engine": "AWS::BedrockAgentCore::Policy",
}


def test_each_agentcore_count_is_what_the_synthesized_production_tier_makes(
    assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    """The session's app (the suite's config) against the counters: runtimes include the web tools'
    MCP server, targets its ``web`` target and knowledge's, beside each agent's and legacy API's."""
    production_templates = [t for name, t in assembly.templates.items() if "-production-" in name]
    made = {quota: sum(len(resources(t, type_)) for t in production_templates) for quota, type_ in COUNTED.items()}
    usage = taken(production(cdk_context))
    assert {quota: usage[quota] for quota in COUNTED} == made
    assert made["agent runtimes per account"] > len(production(cdk_context).agents)  # the web server counted


def test_online_evaluations_are_counted_only_where_the_tier_makes_them() -> None:
    context = copy.deepcopy(suite_context())
    context["blueprint"]["production"].setdefault("account_settings", {})["transaction_search"] = "off"
    usage = taken(production(context))
    assert usage["online evaluation configurations per account"] == 0  # no spans, no online evaluation
    assert usage["agent runtimes per account"] == len(production(context).agents) + 1


def test_the_100_group_target_binds_web_tools_and_gives_groups_domains_of_their_own() -> None:
    config = production(scaled_context(100))
    web_groups = web_policy(config).groups
    assert len(web_groups) >= len(config.groups) // 2  # the web policy document grows with the groups
    assert len({domain for group in web_groups.values() for domain in group.allow}) >= len(web_groups) // 2
    assert len({domain for group in web_groups.values() for domain in group.deny}) >= len(web_groups) // 2
    assert any(set(g.tools) >= {"web_fetch", "web_browse"} for g in config.groups.values())
    assert any("web_fetch" in g.tools and "web_browse" not in g.tools for g in config.groups.values())
    assert any(not {"web_fetch", "web_browse"} & set(g.tools) for g in config.groups.values())


RESERVED = "concurrent executions that may be reserved (1,000 less 100 unreserved)"


def with_reservations(reservations: dict[str, int]) -> ProductionConfig:
    context = copy.deepcopy(suite_context())
    context["blueprint"]["production"]["functions"] = {
        name: {"reserved_concurrency": count} for name, count in reservations.items()
    }
    return production(context)


def test_reserved_concurrency_counts_each_function_a_name_sizes() -> None:
    assert taken(production(suite_context()))[RESERVED] == 0  # none unless config reserves it
    config = with_reservations({"ai_gateway": 10, "legacy_tools": 3, "connector_pull": 5, "pre_token": 2})
    assert len(config.legacy_apis) > 1
    assert config.connectors.pull
    # The gateway and its streaming function (not the jobs worker); one per legacy API and pull source.
    expected = 2 * 10 + 3 * len(config.legacy_apis) + 5 * len(config.connectors.pull) + 2
    assert taken(config)[RESERVED] == expected


def test_reservations_near_what_an_account_may_reserve_warn() -> None:
    assert quota_problems(with_reservations({"ai_gateway": 359})) == ([], [])  # 718 of 900
    errors, warnings = quota_problems(with_reservations({"ai_gateway": 360}))  # 720: 80%
    assert errors == []
    assert warnings == [
        f"blueprint.production.functions.*.reserved_concurrency: 720 of Lambda's 900 {RESERVED} (adjustable): "
        "request an increase before deploying"
    ]


def with_groups(count: int, **changes: Any) -> ProductionConfig:
    """The suite's config with ``count`` copies of its first group (each changed by ``changes``)."""
    context = copy.deepcopy(suite_context())
    groups = context["blueprint"]["production"]["groups"]
    template = next(iter(groups.values()))
    for index in range(count):
        groups[f"copy-{index:04d}"] = {**copy.deepcopy(template), "precedence": 100 + index % 900, **changes}
    return production(context)


def test_passing_a_quota_aws_will_not_raise_is_an_error_naming_the_key() -> None:
    errors, _ = quota_problems(with_groups(1_001))  # one Cedar permit each: the engine holds 1,000
    assert any(
        e.startswith("blueprint.production.groups.*.tools: ") and "policies per policy engine" in e for e in errors
    )


def test_coming_near_a_quota_warns_with_what_to_do() -> None:
    # Each copy with limits of its own: a usage plan each, against the region's 300 (adjustable).
    near = int(300 * WARN_AT)
    config = with_groups(near, usage_plan={"rate_limit": 1, "burst_limit": 1, "quota_limit": 1})
    assert taken(config)["usage plans per account and region"] < near  # copies share one set of limits
    distinct = copy.deepcopy(suite_context())
    groups = distinct["blueprint"]["production"]["groups"]
    template = next(iter(groups.values()))
    for index in range(near):
        plan = {"rate_limit": 1, "burst_limit": 1, "quota_limit": 1 + index}
        groups[f"copy-{index:04d}"] = {**copy.deepcopy(template), "precedence": 100 + index, "usage_plan": plan}
    errors, warnings = quota_problems(production(distinct))
    assert errors == []
    assert any("usage plans per account and region" in w and "request an increase" in w for w in warnings)


def test_the_foundation_stack_refuses_a_config_past_a_hard_quota() -> None:
    from aws_cdk import App

    from stacks.production.foundation import FoundationStack

    with pytest.raises(ConfigError, match="policies per policy engine"):
        FoundationStack(App(), "Foundation", prefix="genai", config=with_groups(1_001))
