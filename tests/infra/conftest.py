"""The infrastructure tests' names for the session's synthesized app (tests/synth_fixtures.py, a
plugin of the whole suite, so that every test folder shares one synth)."""

from typing import Any

import pytest

from tests.synth_fixtures import AGENT_STACK_INFIX, STACK_SUFFIXES, Assembly, Synthesizer
from tools.synth import CLI_CONTEXT

__all__ = ["AGENT_STACK_INFIX", "CLI_CONTEXT", "GATEWAY_KEYS_SUFFIX", "STACK_SUFFIXES", "Assembly", "Synthesizer"]

# The gateway's keys, usage plans and keys document (stacks/production/gateway_keys.py).
GATEWAY_KEYS_SUFFIX = "-production-gateway-keys"


@pytest.fixture(scope="session")
def gateway_keys(assembly: Assembly) -> dict[str, Any]:
    """The gateway keys stack's template."""
    return assembly.template(GATEWAY_KEYS_SUFFIX)
