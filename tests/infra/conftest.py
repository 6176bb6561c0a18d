"""The infrastructure tests' names for the session's synthesized app (tests/synth_fixtures.py, a
plugin of the whole suite, so that every test folder shares one synth)."""

from tests.synth_fixtures import AGENT_STACK_INFIX, STACK_SUFFIXES, Assembly, Synthesizer
from tools.synth import CLI_CONTEXT

__all__ = ["AGENT_STACK_INFIX", "CLI_CONTEXT", "STACK_SUFFIXES", "Assembly", "Synthesizer"]
