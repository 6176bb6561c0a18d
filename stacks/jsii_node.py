"""Node.js options for the jsii runtime that runs aws-cdk-lib under this app (stacks/jsii_node.cjs
says why). jsii starts Node at the first import of aws_cdk and passes it this process's
environment, so they are set before that (stacks/startup.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PRELOAD = Path(__file__).resolve().with_name("jsii_node.cjs")
# The app's caches for the jsii runtime: Node's compiled modules and the kernels' fixed directories
# (jsii_node.cjs), the validator's unpacked library and its results (template_validation.py).
CACHE = Path(__file__).resolve().parents[1] / "build" / "jsii"
CACHE_VARIABLE = "BLUEPRINT_JSII_CACHE"


def node_options(current: str | None, preload: Path = PRELOAD) -> str:
    """NODE_OPTIONS with ``--require <preload>`` added once (the user's own options kept before it)."""
    # Node reads NODE_OPTIONS with double quotes and backslash escapes (a path may hold spaces).
    quoted = str(preload).replace("\\", "\\\\").replace('"', '\\"')
    option = f'--require "{quoted}"'
    if current and option in current:
        return current
    return f"{current} {option}" if current else option


def configure(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment variables to set for the jsii runtime, given ``environ`` (os.environ by default)."""
    environ = os.environ if environ is None else environ
    return {"NODE_OPTIONS": node_options(environ.get("NODE_OPTIONS")), CACHE_VARIABLE: str(CACHE)}
