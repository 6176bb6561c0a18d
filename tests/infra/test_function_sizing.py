"""production.functions: a function's memory and timeout from config, and what depends on its time
follows it (the pull connector's lease; the processor's queue visibility and per-document budget
follow its own key, ingestion.processor_timeout_seconds)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.cfn import props
from tests.infra.conftest import Assembly, Synthesizer

SIZES = {
    "ai_gateway": {"memory_mb": 2048},
    "ingestion": {"memory_mb": 2048},
    "connector_pull": {"timeout_seconds": 600},
    "macie_findings": {"memory_mb": 512, "timeout_seconds": 60},
}


@pytest.fixture(scope="module")
def sized(synthesize: Synthesizer) -> Assembly:
    return synthesize(
        tier="production",
        **{"blueprint.production.functions": SIZES, "blueprint.production.ingestion.processor_timeout_seconds": 120},
    )


def function(template: dict[str, Any], logical_prefix: str) -> dict[str, Any]:
    return props(template, "AWS::Lambda::Function", logical_prefix)


def test_a_sized_function_gets_its_memory_and_keeps_its_own_timeout(sized: Assembly, assembly: Assembly) -> None:
    gateway = function(sized.template("-gateway"), "GatewayFunction")
    assert gateway["MemorySize"] == 2048
    assert gateway["Timeout"] == function(assembly.template("-gateway"), "GatewayFunction")["Timeout"]
    responder = function(sized.template("-knowledge"), "MacieResponder")
    assert (responder["MemorySize"], responder["Timeout"]) == (512, 60)


def test_what_depends_on_a_functions_time_follows_it(sized: Assembly) -> None:
    knowledge = sized.template("-knowledge")
    processor = function(knowledge, "IngestionProcessor")
    assert (processor["MemorySize"], processor["Timeout"]) == (2048, 120)
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


def test_unsized_functions_are_unchanged(sized: Assembly, assembly: Assembly) -> None:
    for suffix, prefix in (("-tools", "ToolGuardFunction"), ("-identity", "PreTokenFunction")):
        assert function(sized.template(suffix), prefix) == function(assembly.template(suffix), prefix)
