"""`make agent-dev` (tools/agent_dev.py): its offline path serves the agent on loopback with the
stand-in pool, the fake tools gateway and the scripted Bedrock, and sends the sample request."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.lambdas.tools_gateway_fake import FIND_ORDERS

ROOT = Path(__file__).resolve().parents[2]
# What the script prints for the agent's answer: "< <status> <the answer, indented JSON>".
ANSWER = re.compile(r"^< (\d{3}) (\{\n.*?\n\})$", re.MULTILINE | re.DOTALL)
SAW = "tools gateway saw: "


def agent_dev(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The script as `make agent-dev` runs it: the project's Python, from the repository root."""
    return subprocess.run(
        [sys.executable, "tools/agent_dev.py", *arguments],
        cwd=ROOT,
        env=os.environ if env is None else env,
        capture_output=True,
        text=True,
        timeout=60,  # about 3 s here: a hang fails the test instead of holding the suite
        check=False,
    )


def test_the_offline_run_answers_the_sample_request_with_a_tool_call() -> None:
    done = agent_dev()
    assert done.returncode == 0, done.stderr[-3000:]
    match = ANSWER.search(done.stdout)
    assert match is not None, done.stdout[-3000:]
    answer: dict[str, Any] = json.loads(match.group(2))
    assert int(match.group(1)) == 200
    assert (answer["agent"], answer["answer"], answer["stop"], answer["iterations"]) == (
        "agent_dev",
        "Your order O-1 has shipped.",
        "end_turn",
        2,
    )
    assert [(call["name"], call["ok"], call["error_kind"]) for call in answer["tool_calls"]] == [
        (FIND_ORDERS.name, True, None)
    ]
    # The tools gateway was asked for the caller's tools and called once.
    (saw,) = [line.removeprefix(SAW) for line in done.stdout.splitlines() if line.startswith(SAW)]
    assert saw.split(", ").count("tools/call") == 1
    assert "tools/list" in saw.split(", ")


def test_a_real_run_without_the_callers_token_stops_before_any_call() -> None:
    done = agent_dev("--real", env={k: v for k, v in os.environ.items() if k != "AGENT_DEV_TOKEN"})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == "AGENT_DEV_TOKEN: the caller's access token is required with REAL=1"
