"""Shared test set-up: the repository root and the config in cdk.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cdk_context() -> dict[str, Any]:
    """The context block of cdk.json, as the CDK CLI would hand it to the app."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context
