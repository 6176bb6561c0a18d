"""The production tier at scale: a generated 30-group config (bench/scale_config.py: 15 tools, 15
workloads, 6 agents besides the sample's) synthesizes with cdk-nag on, every stack keeps 40% of
each CloudFormation limit free, and nothing in a template or an environment grows as groups x
tools. `make bench` measures 3, 30 and 100 groups (bench/scale_bench.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.scale_config import HEADROOM, TEMPLATE_LIMITS as LIMITS, scaled_context
from stacks.config import load_config
from tests.infra.cfn import render, resources
from tests.infra.conftest import STACK_SUFFIXES, Assembly
from tools.synth import synthesize

GROUPS = 30
# Names and ids only: what an environment variable may hold whatever the config's size.
ENVIRONMENT_VALUE_CHARS = 1_024


@pytest.fixture(scope="module")
def scaled(tmp_path_factory: pytest.TempPathFactory) -> Assembly:
    outdir = tmp_path_factory.mktemp("scaled.out")
    return Assembly(outdir=outdir, templates=synthesize(outdir, {**scaled_context(GROUPS), "tier": "production"}))


def usage(outdir: Path, name: str, template: dict[str, Any]) -> dict[str, float]:
    """How much of each limit a stack's template takes (0 to 1)."""
    taken = {
        "resources": len(template["Resources"]),
        "bytes": (outdir / f"{name}.template.json").stat().st_size,
        "outputs": len(template.get("Outputs", {})),
        "parameters": len(template.get("Parameters", {})),
    }
    return {limit: taken[limit] / LIMITS[limit] for limit in LIMITS}


def over(assembly: Assembly) -> list[str]:
    return [
        f"{name}: {limit} at {share:.0%}"
        for name, template in assembly.templates.items()
        for limit, share in usage(assembly.outdir, name, template).items()
        if share > HEADROOM
    ]


def test_every_stack_of_the_30_group_config_keeps_its_headroom(scaled: Assembly) -> None:
    assert over(scaled) == []


def test_every_stack_of_the_suites_config_keeps_its_headroom(assembly: Assembly) -> None:
    assert over(assembly) == []


def test_the_headroom_check_sees_a_stack_near_a_limit(scaled: Assembly) -> None:
    name, template = next(iter(scaled.templates.items()))
    crowded = {**template, "Outputs": {f"O{i}": {"Value": "x"} for i in range(130)}}  # 65% of 200
    assert over(Assembly(outdir=scaled.outdir, templates={name: crowded})) == [f"{name}: outputs at 65%"]


def environments(assembly: Assembly) -> Iterator[tuple[str, str, str]]:
    """(resource, variable, value rendered) for every Lambda function and agent runtime."""
    for stack, template in assembly.templates.items():
        for logical, resource in template["Resources"].items():
            properties = resource.get("Properties", {})
            variables = properties.get("Environment", {}).get("Variables") or properties.get("EnvironmentVariables")
            for variable, value in (variables or {}).items():
                text = value if isinstance(value, str) else json.dumps(render(value))
                yield f"{stack}/{logical}", variable, text


def test_no_environment_grows_with_the_config(scaled: Assembly, assembly: Assembly) -> None:
    """What grows with groups, tools, prices and prompts is in AppConfig; environments hold names and ids."""
    for app in (scaled, assembly):
        long = [(where, variable, len(text)) for where, variable, text in environments(app)]
        assert [entry for entry in long if entry[2] > ENVIRONMENT_VALUE_CHARS] == []


def test_resources_grow_with_groups_only_where_the_service_needs_one_each(scaled: Assembly) -> None:
    config = load_config({**scaled_context(GROUPS), "tier": "production"}).production
    keys = scaled.template(STACK_SUFFIXES["gateway_keys"])
    tools = scaled.template("-production-tools")
    # One key per group (a usage plan applies its limits per key), plans per distinct limits.
    assert len(resources(keys, "AWS::ApiGateway::ApiKey")) == len(config.groups)
    assert len(resources(keys, "AWS::ApiGateway::UsagePlan")) == len({g.usage_plan for g in config.groups.values()})
    # One Cedar permit per group with tools, naming them all: not one per group and tool.
    permits = resources(tools, "AWS::BedrockAgentCore::Policy").values()
    assert len(permits) == sum(1 for g in config.groups.values() if g.tools)
    actions = sum(len(re.findall(r"AgentCore::Action::", str(render(p["Properties"]["Definition"])))) for p in permits)
    assert actions == sum(len(g.tools) for g in config.groups.values())
    # Per-group alarms are one rule and one alarm, whatever the number of groups: none names a group.
    alarms = resources(scaled.template("-production-observability"), "AWS::CloudWatch::Alarm").values()
    assert not [a for a in alarms if any(d["Name"] == "Group" for d in a["Properties"].get("Dimensions", []))]
    assert len([a for a in alarms if "INSIGHT_RULE_METRIC" in json.dumps(a["Properties"])]) == 1


def test_the_gateway_stack_is_flat_in_groups_and_its_keys_stack_holds_two_per_group(
    scaled: Assembly, assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    """What grows with the groups at the front door (an API key and its usage-plan key each) is the
    gateway keys stack's: the gateway stack holds as many resources at 30 groups as at the suite's
    (but for one per agent, which the scaled config also has more of)."""
    small = load_config(cdk_context).production
    large = load_config({**scaled_context(GROUPS), "tier": "production"}).production
    assert len(large.groups) > len(small.groups)

    def count(app: Assembly, suffix: str) -> int:
        return len(app.template(suffix)["Resources"])

    def plans(config: Any) -> int:
        return len({g.usage_plan for g in config.groups.values()})

    # (The gateway's own per-agent resource: each runtime's policy that only the gateway invokes it.)
    assert count(scaled, "-production-gateway") - len(large.agents) == count(assembly, "-production-gateway") - len(
        small.agents
    )
    # Per group: its key and its usage-plan key; besides, one plan per distinct limits.
    grown = count(scaled, STACK_SUFFIXES["gateway_keys"]) - count(assembly, STACK_SUFFIXES["gateway_keys"])
    assert grown == 2 * (len(large.groups) - len(small.groups)) + plans(large) - plans(small)
