"""Shared test set-up: the repository root and the config the suite runs against.

That is cdk.json's, or with BLUEPRINT_TEST_CONFIG=variant cdk.json plus one more group, agent and
output type (tests/variant_config.py); snapshots are per config, so a variant run deselects them.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import botocore.session
import pytest
from hypothesis import settings

from tests.variant_config import ROOT, SAMPLE, selected, suite_context

__all__ = ["ROOT"]

# moto gives each test a fresh default boto3 session, and each new session parsed every service
# model it used again (about 0.15 s a client): share one botocore loader, so a model's JSON is read
# once per test run. The loader only reads the models botocore ships; nothing writes to them.
botocore.session.create_loader = functools.cache(botocore.session.create_loader)

# Property tests have no per-example deadline: Hypothesis' default (200 ms) fails a correct example
# when the two cores are busy with a synth, so a test's outcome would depend on the machine's load.
# Every @given inherits this unless its own @settings says otherwise (make bench measures speed).
settings.register_profile("suite", deadline=None)
settings.load_profile("suite")

# The session's synthesized app (one synth, shared by every folder's tests).
pytest_plugins = ["tests.synth_fixtures"]

# Before any handler module is imported, by a handler test or an infrastructure test (collected
# first): Powertools reads these at import time; the credentials are fake, so no test signs for a real account.
os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "POWERTOOLS_METRICS_NAMESPACE": "genai/test",
        "POWERTOOLS_SERVICE_NAME": "prototype_query",
    }
)


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    """The context block of cdk.json (or of the variant), as the CDK CLI would hand it to the app."""
    return suite_context()


def pytest_report_header() -> str:
    return f"blueprint config: {selected()}"


@pytest.hookimpl(trylast=True)  # after syrupy has seen them: deselected, so their snapshots are not "unused"
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A variant run deselects the tests pinned to the sample's app: the snapshot tests (their
    snapshots are the sample's templates) and those marked ``sample_only`` (generated docs)."""
    if selected() == SAMPLE:
        return
    kept = [
        item
        for item in items
        if "snapshot" not in getattr(item, "fixturenames", ()) and item.get_closest_marker("sample_only") is None
    ]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
        items[:] = kept
