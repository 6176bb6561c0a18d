"""One JSON snapshot per stack, so a pull request shows every template change as a diff.

Asset hashes are masked: they change with any byte of Lambda code or the dependency layer, which
the handler tests cover. Update after an intended change with `pytest --snapshot-update`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import Assembly

ASSET_HASH = re.compile(r"\b[0-9a-f]{64}\b")
# A function's current version is named after a hash of its code and configuration: a code change
# renames it (which the review report and the infra tests see), the snapshot keeps the name's stem.
VERSION_HASH = re.compile(r"(CurrentVersion[0-9A-F]{8})[0-9a-f]{32}\b")


@pytest.fixture
def snapshot_json(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


def masked(template: dict[str, Any]) -> Any:
    return json.loads(VERSION_HASH.sub(r"\1<version-hash>", ASSET_HASH.sub("<asset-hash>", json.dumps(template))))


STACKS = [
    "genai-sandbox-support",
    "genai-production-foundation",
    "genai-production-identity",
    "genai-production-gateway",
    "genai-production-gateway-keys",
    "genai-production-knowledge",
    "genai-production-tools",
    "genai-production-agents",
    "genai-production-agent-support-assistant",
    "genai-production-agent-report-writer",
    "genai-production-observability",
]


@pytest.mark.parametrize("stack", STACKS)
def test_template_matches_snapshot(stack: str, assembly: Assembly, snapshot_json: SnapshotAssertion) -> None:
    assert masked(assembly.templates[stack]) == snapshot_json


@pytest.mark.sample_only  # the stack list is cdk.json's (one stack per agent)
def test_snapshots_cover_every_stack(assembly: Assembly) -> None:
    assert sorted(assembly.templates) == sorted(STACKS)
