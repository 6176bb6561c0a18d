"""production.functions: a function's memory, timeout and reserved concurrency from config, and what
depends on its time follows it (the pull connector's lease; the processor's queue visibility and per-document budget
follow its own key, ingestion.processor_timeout_seconds)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from stacks.config import PRODUCTION_FUNCTIONS, load_config
from stacks.config.quotas import functions_sized_by
from tests.infra.cfn import props
from tests.infra.conftest import Assembly, Synthesizer
from tests.infra.test_house_rules import project_functions

# Every function a memory of its own (so each template function shows which name sized it), a
# reservation of its own (ingestion's covering its queues), and two timeouts.
MEMORY = {name: 1024 + 64 * index for index, name in enumerate(PRODUCTION_FUNCTIONS)}
RESERVED = {name: 20 + index for index, name in enumerate(PRODUCTION_FUNCTIONS)}
SIZES: dict[str, dict[str, int]] = {
    name: {"memory_mb": memory, "reserved_concurrency": RESERVED[name]} for name, memory in MEMORY.items()
}
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


def test_every_function_a_name_sizes_reserves_that_names_concurrency_and_the_quota_counts_each(
    sized: Assembly, cdk_context: dict[str, Any]
) -> None:
    by_memory = {memory: name for name, memory in MEMORY.items()}
    made: Counter[str] = Counter()
    for template in sized.templates.values():
        for function in project_functions(template).values():
            name = by_memory[function["Properties"]["MemorySize"]]
            assert function["Properties"]["ReservedConcurrentExecutions"] == RESERVED[name], name
            made[name] += 1
    config = load_config({**cdk_context, "tier": "production"}).production
    assert made == {name: functions_sized_by(config, name) for name in PRODUCTION_FUNCTIONS}
    assert made["ai_gateway"] > 1
    assert made["legacy_tools"] == len(config.legacy_apis) > 1


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
