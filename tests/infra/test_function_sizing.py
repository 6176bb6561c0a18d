"""production.functions: a function's memory, timeout and reserved concurrency from config, and what
depends on its time follows it (the pull connector's lease; the processor's queue visibility and per-document budget
follow its own key, ingestion.processor_timeout_seconds)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from stacks.config import PRODUCTION_FUNCTIONS, load_config
from stacks.config.functions import NOT_RESERVED
from stacks.config.quotas import functions_reserved_by
from tests.infra.cfn import props
from tests.infra.conftest import Assembly, Synthesizer
from tests.infra.test_house_rules import project_functions

# Every function a memory of its own (so each template function shows which name sized it), a
# reservation of its own (ingestion's covering its queues), and two timeouts.
MEMORY = {name: 1024 + 64 * index for index, name in enumerate(PRODUCTION_FUNCTIONS)}
RESERVED = {name: 20 + index for index, name in enumerate(PRODUCTION_FUNCTIONS) if name not in NOT_RESERVED}
SIZES: dict[str, dict[str, int]] = {
    name: {"memory_mb": memory} | ({"reserved_concurrency": RESERVED[name]} if name in RESERVED else {})
    for name, memory in MEMORY.items()
}
# Functions a name sizes that its reservation does not reach (production.functions): a throttled
# job would be dropped, a throttled sweep is pointless.
UNRESERVED = ("Worker", "Sweeper")
SIZES["connector_pull"]["timeout_seconds"] = 600
SIZES["macie_findings"]["timeout_seconds"] = 60


@pytest.fixture(scope="module")
def sized(synthesize: Synthesizer) -> Assembly:
    return synthesize(
        tier="production",
        **{"blueprint.production.functions": SIZES, "blueprint.production.ingestion.processor_timeout_seconds": 120},
    )


def function(template: dict[str, Any], logical_prefix: str) -> dict[str, Any]:
    return props(template, "AWS::Lambda::Function", logical_prefix)


def test_every_production_function_is_sized_by_a_name_and_every_name_sizes_one(sized: Assembly) -> None:
    memories = [f["Properties"]["MemorySize"] for t in sized.templates.values() for f in project_functions(t).values()]
    assert memories
    assert set(memories) == set(MEMORY.values())


def test_every_function_a_reservation_applies_to_has_it_and_the_quota_counts_each(
    sized: Assembly, cdk_context: dict[str, Any]
) -> None:
    by_memory = {memory: name for name, memory in MEMORY.items()}
    reserved: Counter[str] = Counter()
    unreserved: list[str] = []
    for template in sized.templates.values():
        for logical_id, function in project_functions(template).items():
            name = by_memory[function["Properties"]["MemorySize"]]
            if "ReservedConcurrentExecutions" not in function["Properties"]:
                unreserved.append(logical_id)
                continue
            assert function["Properties"]["ReservedConcurrentExecutions"] == RESERVED[name], name
            reserved[name] += 1
    config = load_config({**cdk_context, "tier": "production"}).production
    assert reserved == {name: functions_reserved_by(config, name) for name in RESERVED}
    assert reserved["legacy_tools"] == len(config.legacy_apis) > 1
    assert sorted(re.sub(r"[0-9A-F]{8}$", "", u) for u in unreserved) == sorted(
        [*(f"Jobs{name}" for name in UNRESERVED), "AccountSettingsAdopterFunction", "MacieJobsFunction"]
    )


def test_a_sized_function_gets_its_memory_and_keeps_its_own_timeout(sized: Assembly, assembly: Assembly) -> None:
    gateway = function(sized.template("-gateway"), "GatewayFunction")
    assert gateway["MemorySize"] == MEMORY["ai_gateway"]
    assert gateway["Timeout"] == function(assembly.template("-gateway"), "GatewayFunction")["Timeout"]
    responder = function(sized.template("-knowledge"), "MacieResponder")
    assert (responder["MemorySize"], responder["Timeout"]) == (MEMORY["macie_findings"], 60)
    for suffix, prefix in (("-tools", "ToolGuardFunction"), ("-identity", "PreTokenFunction")):
        assert (
            function(sized.template(suffix), prefix)["Timeout"]
            == function(assembly.template(suffix), prefix)["Timeout"]
        )


def test_what_depends_on_a_functions_time_follows_it(sized: Assembly) -> None:
    knowledge = sized.template("-knowledge")
    processor = function(knowledge, "IngestionProcessor")
    assert (processor["MemorySize"], processor["Timeout"]) == (MEMORY["ingestion"], 120)
    assert props(knowledge, "AWS::SQS::Queue", "IngestionDocuments")["VisibilityTimeout"] == 6 * 120
    assert processor["Environment"]["Variables"]["DOCUMENT_BUDGET_SECONDS"] == str(120 // 4)
    (pull,) = [
        r["Properties"]
        for r in knowledge["Resources"].values()
        if r["Type"] == "AWS::Lambda::Function"
        and "PULL_SOURCE" in r["Properties"].get("Environment", {}).get("Variables", {})
    ]
    assert pull["Timeout"] == 600
    assert pull["Environment"]["Variables"]["LEASE_SECONDS"] == str(600 + 60)
