"""Synthesize once per session and share the templates between tests.

Synthesis runs in-process (one jsii start-up for the whole session) with both cdk-nag packs on,
so a fixture that returns at all has already proven that no finding is unacknowledged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Schema validation is `make synth`'s and cfn-lint's job; skipping it here saves ~2.5 s per synth.
# The jsii runtime (Node) reads it when it starts, at the first import of aws_cdk: set it first.
os.environ.setdefault("CDK_VALIDATION", "false")

from aws_cdk import App

from app import build_app


@dataclass(frozen=True)
class Assembly:
    outdir: Path
    templates: dict[str, dict[str, Any]]

    def template(self, suffix: str) -> dict[str, Any]:
        (name,) = [n for n in self.templates if n.endswith(suffix)]
        return self.templates[name]


Synthesizer = Callable[..., Assembly]

# What the CDK CLI adds to the context (cdk.json sets versionReporting off), so the in-process
# synth writes the same templates as `cdk synth` (tests/infra/test_determinism.py checks it).
CLI_CONTEXT = {"aws:cdk:enable-path-metadata": True, "aws:cdk:enable-asset-metadata": True}


@pytest.fixture(scope="session")
def synthesize(cdk_context: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Synthesizer:
    """Synthesize the app with optional context overrides (`-c key=value` equivalents)."""

    def run(**overrides: Any) -> Assembly:
        outdir = tmp_path_factory.mktemp("cdk.out")
        app = App(context={**cdk_context, **CLI_CONTEXT, **overrides}, outdir=str(outdir))
        build_app(app)
        app.synth()
        templates = {
            path.name.removesuffix(".template.json"): json.loads(path.read_text())
            for path in sorted(outdir.glob("*.template.json"))
        }
        return Assembly(outdir=outdir, templates=templates)

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
    "tools": "-production-tools",
    "knowledge": "-production-knowledge",
    "agents": "-production-agents",
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
tools = _stack_template("tools")
knowledge = _stack_template("knowledge")
agents = _stack_template("agents")
observability = _stack_template("observability")
