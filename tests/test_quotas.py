"""Account quotas (stacks/config/quotas.py): what a config takes of each, a hard one passed fails
synth naming the key, and 80% of any is a warning before a deploy meets it."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench.scale_config import scaled_context
from stacks.config import ConfigError, ProductionConfig, load_config
from stacks.config.quotas import WARN_AT, quota_problems, quota_usage
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
    assert usage["agent runtimes per account"] == len(config.agents) >= 20


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
