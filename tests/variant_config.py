"""The variant deployment the test suite can run against instead of the sample in cdk.json.

A platform engineer's everyday change to cdk.json is one more group, agent or output type. The
tests must follow such a change with nothing more than a snapshot update, so they either compute
their expectations from the config in use or bring a small config of their own. To prove it, the
suite can run against cdk.json plus one of each::

    make test-variant     # BLUEPRINT_TEST_CONFIG=variant, snapshot tests deselected

and tests/infra/test_variant.py runs the template checks against a synth of it in every run.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

# Which config the suite runs against: unset (or "sample") for cdk.json, "variant" for VARIANT.
CONFIG_ENV = "BLUEPRINT_TEST_CONFIG"
SAMPLE, VARIANT = "sample", "variant"

# One more output type, priced and bounded like the sample's report.
OUTPUT_TYPE = "briefing_note"
OUTPUT_TYPES = {
    OUTPUT_TYPE: {
        "unit_price_usd": 0.25,
        "units": 2,
        "max_tokens": 1500,
        "instructions": "Write a one-page briefing note: the situation, the options, a recommendation.",
    }
}

# One more agent, serving only the new output type.
AGENT = "briefing_writer"
AGENTS = {
    AGENT: {
        "description": "Writes briefing notes from the caller's material and the customer's records.",
        "system_prompt": "You are the company's briefing writer. Check facts with the tools before you state them.",
        "output_types": [OUTPUT_TYPE],
        "max_iterations": 4,
        "max_tool_calls": 5,
        "turn_seconds": 20,
        "idle_session_minutes": 10,
    }
}

# One more customer group, shaped like the sample's: a tool binding no other customer group has
# (get_customer), a quota for the new output type, and a precedence between the other two.
GROUP = "customer-silver"
GROUPS = {
    GROUP: {
        "kind": "customer",
        "tier": "silver",
        "precedence": 15,
        "usage_plan": {"rate_limit": 5, "burst_limit": 10, "quota_limit": 5000, "quota_period": "DAY"},
        "models": {
            "allowed": ["amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0"],
            "default": "amazon.nova-lite-v1:0",
            "fallbacks": ["amazon.nova-micro-v1:0"],
        },
        "output_quotas": {
            "chat": {"limit": 5000, "period": "MONTH"},
            OUTPUT_TYPE: {"limit": 20, "period": "MONTH"},
        },
        "tools": ["knowledge_search", "get_customer"],
        "data_classifications": ["public", "customer"],
        "tool_requests_per_minute": 60,
    }
}

# Internal callers get every output type: the admins' group gains a quota for the new one.
INTERNAL_QUOTA = {"limit": 500, "period": "MONTH"}


def variant(context: dict[str, Any]) -> dict[str, Any]:
    """``context`` (cdk.json's) with one more group, agent and output type in production."""
    extended = copy.deepcopy(context)
    production = extended["blueprint"]["production"]
    production["output_types"].update(copy.deepcopy(OUTPUT_TYPES))
    production["agents"].update(copy.deepcopy(AGENTS))
    for group in production["groups"].values():
        if group["kind"] == "internal":
            group["output_quotas"][OUTPUT_TYPE] = dict(INTERNAL_QUOTA)
    production["groups"].update(copy.deepcopy(GROUPS))
    return extended


def sample_context() -> dict[str, Any]:
    """The context block of cdk.json, as the CDK CLI would hand it to the app."""
    context: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]
    return context


def selected() -> str:
    """The config the suite runs against (BLUEPRINT_TEST_CONFIG); an unknown name is an error."""
    name = os.environ.get(CONFIG_ENV) or SAMPLE
    if name not in (SAMPLE, VARIANT):
        raise ValueError(f"{CONFIG_ENV}={name!r}: use {SAMPLE} (cdk.json) or {VARIANT} (cdk.json plus {GROUP}, ...)")
    return name


def suite_context() -> dict[str, Any]:
    """The context the suite runs against: cdk.json's, or the variant of it."""
    context = sample_context()
    return variant(context) if selected() == VARIANT else context
