"""The template checks hold for a deployment with one more group, agent and output type.

Adding any of those to cdk.json must need no more than a snapshot update. `make test-variant`
runs every config-dependent test against that variant (tests/variant_config.py); this module runs
the infrastructure checks that read only templates and the config against one synth of it, in
every run of the suite.

Every check of the modules below whose fixtures are stack templates, the assembly or the config is
run: a new one is covered without being listed here.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

import pytest

from stacks.config import load_config
from tests.infra.conftest import AGENT_STACK_INFIX, STACK_SUFFIXES, Assembly, Synthesizer
from tests.variant_config import AGENT, GROUP, OUTPUT_TYPE, sample_context, variant

MODULES = tuple(
    importlib.import_module(f"tests.infra.{name}")
    for name in (
        "test_agents",
        "test_cfn_lint",
        "test_deployability",
        "test_foundation",
        "test_house_rules",
        "test_ingestion",
        "test_observability",
        "test_production",
        "test_sandbox",
        "test_tools",
    )
)
FIXTURES = {*STACK_SUFFIXES, "agent_stacks", "assembly", "cdk_context"}


def _checks() -> list[Any]:
    """Each module's test functions that take only FIXTURES (and take some)."""
    found = []
    for module in MODULES:
        for name, check in vars(module).items():
            if not (name.startswith("test_") and inspect.isfunction(check) and check.__module__ == module.__name__):
                continue
            if any(mark.name == "sample_only" for mark in getattr(check, "pytestmark", [])):
                continue  # the sample's figures (a doc's, a snapshot's): no variant holds them
            parameters = set(inspect.signature(check).parameters)
            if parameters and parameters <= FIXTURES:
                found.append(pytest.param(check, id=f"{module.__name__.rsplit('.', 1)[-1]}.{name}"))
    return found


@pytest.fixture(scope="module")
def variant_context() -> dict[str, Any]:
    return variant(sample_context())


@pytest.fixture(scope="module")
def variant_assembly(synthesize: Synthesizer, variant_context: dict[str, Any]) -> Assembly:
    return synthesize(blueprint=variant_context["blueprint"])


def test_the_variant_adds_one_group_agent_and_output_type(variant_context: dict[str, Any]) -> None:
    sample, extended = load_config(sample_context()).production, load_config(variant_context).production
    assert set(extended.groups) - set(sample.groups) == {GROUP}
    assert set(extended.agents) - set(sample.agents) == {AGENT}
    assert set(extended.output_types) - set(sample.output_types) == {OUTPUT_TYPE}
    assert extended.agent_routes()[OUTPUT_TYPE] == AGENT


@pytest.mark.parametrize("check", _checks())
def test_the_check_holds_for_the_variant(
    check: Callable[..., None], variant_assembly: Assembly, variant_context: dict[str, Any]
) -> None:
    values: dict[str, Any] = {"assembly": variant_assembly, "cdk_context": variant_context}
    values |= {name: variant_assembly.template(suffix) for name, suffix in STACK_SUFFIXES.items()}
    values["agent_stacks"] = {n: t for n, t in variant_assembly.templates.items() if AGENT_STACK_INFIX in n}
    check(**{name: values[name] for name in inspect.signature(check).parameters})
