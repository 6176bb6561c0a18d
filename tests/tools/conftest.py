"""The review tool's tests use the session's synthesized app (tests/infra/conftest.py): its fixtures
are re-exported here, since a conftest's fixtures reach only the tests under its own folder."""

from tests.infra.conftest import assembly, synthesize

__all__ = ["assembly", "synthesize"]
