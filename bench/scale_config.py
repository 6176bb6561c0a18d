"""A generated deployment config at a given size, for the scaling benchmark and tests.

``scaled_context(groups)`` starts from cdk.json's context and grows it together: ``groups`` groups
(the sample's three plus copies of customer-gold), half as many tools (single-call tools of a
generated legacy API, besides the sample's), half as many production workloads each selling one
output type, two in five of them with an agent; every group bound to 10 to 20 tools (fewer when
there are fewer) and given a quota for a share of the outputs. Two in three generated groups have
web tools (both, or web_fetch alone) and every one has web domains of its own (``groups.<name>.web``:
allowed and denied, or denied only), so the web tools' policy document grows with the groups. At 100
groups: 50 tools (the built-in three among them), 50 workloads (50 output types), 20 agents (22
with the sample's two).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_GROUPS = 3
# CloudFormation's per-template limits (a template uploaded through S3), and the goal: no stack
# takes more than HEADROOM of any of them, at any size (bench/scale_bench.py, tests/infra/test_scale.py).
TEMPLATE_LIMITS = {"resources": 500, "bytes": 1_000_000, "outputs": 200, "parameters": 200}
HEADROOM = 0.6
# The built-in tools (lambdas/shared/tools.py: BUILTIN_TOOLS), named here so this module reads
# cdk.json alone.
KNOWLEDGE_SEARCH = "knowledge_search"
WEB_TOOLS = ("web_fetch", "web_browse")


def sample_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


def scaled_context(groups: int) -> dict[str, Any]:
    context = copy.deepcopy(sample_context())
    blueprint = context["blueprint"]
    production = blueprint["production"]
    tools = _add_tools(production, max(3, groups // 2))
    names = _add_groups(production, groups, tools)
    blueprint["workloads"] = _workloads(max(1, groups // 2), names, tools)
    return context


def _add_tools(production: dict[str, Any], count: int) -> list[str]:
    """``count`` tools in all: the built-in ones, the sample's legacy tools, and single-call tools of
    a generated catalog API."""
    existing = [KNOWLEDGE_SEARCH, *WEB_TOOLS] + [t for api in production["legacy_apis"].values() for t in api["tools"]]
    generated = {
        f"get_item{k:02d}": {
            "description": f"One item of catalog {k} by its id. The record has: {{fields}}.",
            "path": f"/v1/catalog{k:02d}/items/{{item_id}}",
            "arguments": {"item_id": {"description": "The item id, such as I-00042", "pattern": "^I-[0-9]{5}$"}},
            "fields": {"item_id": "data.id", "name": "data.name", "price": "data.price.amount"},
        }
        for k in range(max(0, count - len(existing)))
    }
    if generated:
        production["legacy_apis"]["catalog"] = {
            "base_url": "https://catalog.legacy.example.com",
            "secret_name": "genai/production/legacy/catalog",
            "tools": generated,
        }
    return existing + list(generated)


def _add_groups(production: dict[str, Any], count: int, tools: list[str]) -> list[str]:
    template = production["groups"]["customer-gold"]
    others = [tool for tool in tools if tool not in WEB_TOOLS]
    for index in range(count - SAMPLE_GROUPS):
        group = copy.deepcopy(template)
        group["precedence"] = 20 + index
        bound = min(len(tools), 10 + index % 11)  # 10 to 20 tools each
        web = list(WEB_TOOLS[: (2, 1, 0)[index % 3]])  # both, web_fetch alone, or none
        rest = min(len(others), bound - len(web))
        group["tools"] = web + [others[(index + k) % len(others)] for k in range(rest)]
        group["web"] = _web(index)
        production["groups"][f"customer-g{index:03d}"] = group
    return list(production["groups"])


def _web(index: int) -> dict[str, list[str]]:
    """A generated group's web domains: its own sites and two public ones allowed, its own private
    site denied; or (every other group) any public domain but two denied."""
    own = f"customer{index:03d}.example.com"
    if index % 2:
        return {"deny": [f"private.{own}", "pastebin.com"]}
    return {
        "allow": [f"docs.{own}", f"support.{own}", "docs.aws.amazon.com", "wikipedia.org"],
        "deny": [f"private.{own}"],
    }


def _workloads(count: int, groups: list[str], tools: list[str]) -> dict[str, Any]:
    """``count`` production workloads, one output type each, two in five with an agent."""
    workloads = {}
    for index in range(count):
        served = [groups[(index + k) % len(groups)] for k in range(min(len(groups), 8))]
        workload: dict[str, Any] = {
            "team": f"team-{index % 7}",
            "stage": "production",
            "documents": {"classification": "public", "pii_entities": ["EMAIL"]},
            "knowledge_base": {"chunking": {"strategy": "FIXED_SIZE"}},
            "generation": {"model_id": "amazon.nova-lite-v1:0", "prompt": f"Produce output {index} from the material."},
            "groups": served,
            "outputs": {f"out{index:02d}": {"unit_price_usd": 0.01, "quota": {"limit": 1000}}},
            "tools": [tools[(index + k) % len(tools)] for k in range(min(len(tools), 3))],
            "sandbox": {
                "expires_on": "2027-12-31",
                "budget": {"monthly_limit_usd": 100, "alert_emails": ["team@example.com"]},
            },
        }
        if index % 5 in (0, 3):  # an agent's prompt as long as config allows (4,000 characters)
            workload["agent"] = {"description": f"Agent of workload {index}", "turn_seconds": 24}
            workload["generation"]["prompt"] = _long_prompt(index)
        workloads[f"wl{index:02d}"] = workload
    return workloads


def _long_prompt(index: int) -> str:
    """A 4,000-character prompt (config's limit), its own for each workload."""
    rule = f"Workload {index}: check each fact with the tools before you state it, and cite where it came from. "
    return (rule * (4_000 // len(rule) + 1))[:4_000]
