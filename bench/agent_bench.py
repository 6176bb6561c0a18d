"""The agent, old (hand-written server, loop and MCP client, commit OLD) vs new (BedrockAgentCoreApp,
Strands, ADOT): process ready (imports + first /ping answered), code asset size, and the overhead
of one tool-using turn with AWS stubbed at zero latency (a real MCP server on loopback).

    python bench/agent_bench.py        (make bench runs it)
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OLD = "b37e3fc"  # the last commit with the hand-written agent
PYTHON = ROOT / ".venv" / "bin" / "python"
INSTRUMENT = ROOT / ".venv" / "bin" / "opentelemetry-instrument"
RUNS = 5
TURNS = 30
SETTINGS = {
    "AGENT_NAME": "bench",
    "TOOLS_GATEWAY_URL": "http://127.0.0.1:9/mcp",
    "TOKEN_ISSUER": "http://127.0.0.1:9/pool",
    "TOKEN_CLIENT_ID": "bench",
    # Where its groups document is (AppConfig): start-up does not read it, a turn would.
    "GROUPS": json.dumps({"application": "a", "environment": "e", "profile": "p", "environment_name": "agents"}),
    # The old agent read its groups' models from the environment instead (before issue 18).
    "GROUP_MODELS": json.dumps({"bench": {"allowed": ["amazon.nova-lite-v1:0"], "default": "amazon.nova-lite-v1:0"}}),
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    # ADOT as AgentCore sets it up, exporting to nowhere reachable (export is asynchronous).
    "AGENT_OBSERVABILITY_ENABLED": "true",
    "OTEL_PYTHON_DISTRO": "aws_distro",
    "OTEL_PYTHON_CONFIGURATOR": "aws_configurator",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
}
sys.path.insert(0, str(ROOT / "lambdas"))
from agent.contract import span_environment  # noqa: E402

# The new agent runs with the settings its runtime gets (stacks/production/agents.py).
NEW_ENVIRONMENT = span_environment(capture_content=False)


def old_tree(into: Path) -> Path:
    """The old agent and shared packages, as of OLD."""
    for package in ("agent", "shared"):
        listing = subprocess.run(
            ["git", "ls-tree", "-r", "--name-only", OLD, f"lambdas/{package}"], cwd=ROOT, check=True,
            capture_output=True, text=True,
        ).stdout.split()  # fmt: skip
        for name in listing:
            target = into / name.removeprefix("lambdas/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(subprocess.run(["git", "show", f"{OLD}:{name}"], cwd=ROOT, check=True,
                                              capture_output=True).stdout)  # fmt: skip
    return into


def ready_seconds(code: Path, command: list[str], port: int) -> float:
    """From process start to the first /ping answered."""
    env = {
        **os.environ,
        **SETTINGS,
        **NEW_ENVIRONMENT,
        "PYTHONPATH": str(code),
        "AGENT_PORT": str(port),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=code, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                if process.poll() is not None:
                    raise RuntimeError(f"{command} exited with {process.returncode}") from None
                time.sleep(0.005)
    finally:
        process.terminate()
        process.wait(10)


def readiness(old: Path) -> dict[str, float]:
    new = ROOT / "lambdas"
    commands = {
        "old (python -m agent)": (old, [str(PYTHON), "-m", "agent"]),
        "new (python -m agent)": (new, [str(PYTHON), "-m", "agent"]),
        "new (opentelemetry-instrument python -m agent)": (new, [str(INSTRUMENT), str(PYTHON), "-m", "agent"]),
    }
    for code, command in commands.values():  # compile once, so every run measures a warm file cache
        ready_seconds(code, command, 18080)
    return {
        name: statistics.median(ready_seconds(code, command, 18081 + run) for run in range(RUNS))
        for name, (code, command) in commands.items()
    }


def asset_sizes(old: Path) -> dict[str, tuple[float, float]]:
    """(MB unzipped, MB zipped) of the code asset: the agent and shared packages and the arm64 deps
    as deployed (the new deps with the bytecode `make agent-deps` compiles; the old ones had none)."""
    sizes = {}
    with tempfile.TemporaryDirectory() as scratch:
        old_deps = Path(scratch) / "old-deps"
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(
            subprocess.run(
                ["git", "show", f"{OLD}:lambdas/agent/requirements.txt"],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )
        subprocess.run(
            [str(PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--only-binary=:all:", "--implementation", "cp", "--platform", "manylinux2014_aarch64",
             "--python-version", "3.14", "--target", str(old_deps), "-r", str(requirements)],
            check=True, capture_output=True,
        )  # fmt: skip
        for name, parts in {
            "old": [old / "agent", old / "shared", old_deps],
            "new": [ROOT / "lambdas" / "agent", ROOT / "lambdas" / "shared", ROOT / "build" / "agent-deps"],
        }.items():
            staged = Path(scratch) / name
            for part in parts:
                own = part.name in ("agent", "shared")  # sources only; the dependencies ship their 3.14 bytecode
                shutil.copytree(part, staged / part.name if own else staged, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("__pycache__") if own else None)  # fmt: skip
            unzipped = sum(f.stat().st_size for f in staged.rglob("*") if f.is_file())
            archive = shutil.make_archive(str(Path(scratch) / f"{name}-zip"), "zip", staged)
            sizes[name] = (unzipped / 1e6, Path(archive).stat().st_size / 1e6)
    return sizes


TURN_BENCH = textwrap.dedent(
    """
    import json, statistics, sys, time
    sys.path[:0] = [sys.argv[1], {root!r}]
    import boto3, jwt
    from botocore.stub import ANY, Stubber
    from tests.lambdas.tools_gateway_fake import tools_gateway
    NEW = sys.argv[2] == "new"
    TOKEN = jwt.encode({{"sub": "u", "gateway_group": "customer-gold"}}, "k" * 32, algorithm="HS256")
    client = boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    def script(stubber):
        for content, stop in (([{{"toolUse": {{"toolUseId": "t1", "name": "orders___find_orders",
                                              "input": {{"customer_email": "a@example.com"}}}}}}], "tool_use"),
                              ([{{"text": "Shipped."}}], "end_turn")):
            stubber.add_response("converse", {{"output": {{"message": {{"role": "assistant", "content": content}}}},
                "stopReason": stop, "usage": {{"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}},
                "metrics": {{"latencyMs": 0}}}}, None)
    messages = [{{"role": "user", "content": [{{"text": "Where is my order?"}}]}}]
    with tools_gateway() as (url, fake):
        if NEW:
            from agent.app import GatewayTools
            from agent.turn import run_turn
            tools_for = GatewayTools(url)
            def turn():
                with tools_for(TOKEN, "s" * 40, 60.0) as tools:
                    return run_turn(client, tools, agent_name="b", models=["m"], system="Help.",
                                    messages=messages, session_id="s" * 40, max_iterations=4)
        else:
            from agent.loop import run_turn
            from agent.mcp_client import McpClient
            def turn():
                return run_turn(client, McpClient(url, token=TOKEN), models=["m"], system="Help.",
                                messages=messages, session_id="s" * 40, max_iterations=4)
        timings = []
        for n in range({turns} + 3):
            stubber = Stubber(client); script(stubber); stubber.activate()
            started = time.perf_counter(); result = turn(); elapsed = time.perf_counter() - started
            stubber.deactivate()
            assert result.answer == "Shipped." and len(result.tool_calls) == 1, result
            if n >= 3:
                timings.append(elapsed)
    print(json.dumps(statistics.median(timings) * 1000))
    """
)


def turn_overhead(old: Path) -> dict[str, float]:
    code = TURN_BENCH.format(root=str(ROOT), turns=TURNS)
    results = {}
    for name, path in (("old", old), ("new", ROOT / "lambdas")):
        out = subprocess.run([str(PYTHON), "-c", code, str(path), name], check=True, capture_output=True, text=True,
                             env={**os.environ, "POWERTOOLS_LOG_LEVEL": "ERROR"})  # fmt: skip
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    return results


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        old = old_tree(Path(scratch))
        print(f"agent process ready (imports + first /ping answered), median of {RUNS}:")
        for name, seconds in readiness(old).items():
            print(f"  {name:<48} {seconds:6.2f} s")
        print("code asset (agent + shared + arm64 dependencies):")
        for name, (unzipped, zipped) in asset_sizes(old).items():
            print(f"  {name:<4} {unzipped:7.1f} MB unzipped  {zipped:6.1f} MB zipped")
        print(f"one tool-using turn, AWS stubbed at zero latency, tools gateway on loopback (median of {TURNS}):")
        for name, ms in turn_overhead(old).items():
            print(f"  {name:<4} {ms:7.1f} ms")


if __name__ == "__main__":
    main()
