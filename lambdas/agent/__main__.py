"""Starts the agent: AgentCore Runtime runs this file as main.py (under `opentelemetry-instrument`),
`python -m agent` runs it locally. The runtime contract: HTTP on 0.0.0.0:8080 (AGENT_PORT overrides)."""

import os

from agent.app import create_app

create_app().run(host="0.0.0.0", port=int(os.environ.get("AGENT_PORT", "8080")))  # noqa: S104 - the runtime contract
