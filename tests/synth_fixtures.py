"""Synthesize once per session and share the templates between tests.

Synthesis runs in-process (one jsii start-up for the whole session) with both cdk-nag packs on,
so a fixture that returns at all has already proven that no finding is unacknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tools.synth import CLI_CONTEXT, synthesize as synthesize_app

__all__ = ["AGENT_STACK_INFIX", "CLI_CONTEXT", "Assembly", "Synthesizer"]


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    templates: dict[str, dict[str, Any]]

    def template(self, suffix: str) -> dict[str, Any]:
        (name,) = [n for n in self.templates if n.endswith(suffix)]
        return self.templates[name]


Synthesizer = Callable[..., Assembly]


@pytest.fixture(scope="session")
def synthesize(cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Synthesizer:
    """Synthesize the app with optional context overrides (`-c key=value` equivalents)."""

    def run(**overrides: Any) -> Assembly:
        outdir = tmp_path_factory.mktemp("cdk.out")
        return Assembly(outdir=outdir, templates=synthesize_app(outdir, {**cdk_context, **overrides}))

    return run


@pytest.fixture(scope="session")
def assembly(synthesize: Synthesizer) -> Assembly:
    """Both tiers with the configuration the suite runs against (cdk.json's, or the variant)."""
    return synthesize()


# The stack fixtures below, by name: how the stack's name ends.
STACK_SUFFIXES = {
    "sandbox": "-sandbox-support",  # the sample workload's prototype stack (workloads/support.json)
    "foundation": "-production-foundation",
    "identity": "-production-identity",
    "gateway": "-production-gateway",
    "gateway_keys": "-production-gateway-keys",  # the groups' keys, usage plans and keys document
    "tools": "-production-tools",
    "knowledge": "-production-knowledge",
    "agents": "-production-agents",  # what the agents share (each agent's own stack: AGENT_STACK_INFIX)
    "observability": "-production-observability",
}


def _stack_template(name: str) -> Any:
    """A session fixture named ``name``: the template of the stack whose name ends so."""

    @pytest.fixture(scope="session", name=name)
    def template(assembly: Assembly) -> dict[str, Any]:
        return assembly.template(STACK_SUFFIXES[name])

    return template


sandbox = _stack_template("sandbox")
foundation = _stack_template("foundation")
identity = _stack_template("identity")
gateway = _stack_template("gateway")
gateway_keys = _stack_template("gateway_keys")
tools = _stack_template("tools")
knowledge = _stack_template("knowledge")
agents = _stack_template("agents")
observability = _stack_template("observability")

# Each agent's stack: <prefix>-production-agent-<agent name, with - for _>.
AGENT_STACK_INFIX = "-production-agent-"


@pytest.fixture(scope="session")
def agent_stacks(assembly: Assembly) -> dict[str, dict[str, Any]]:
    """Every agent's stack template, by stack name."""
    return {name: template for name, template in assembly.templates.items() if AGENT_STACK_INFIX in name}
