"""How the production tier scales with config: synth at 3, 30 and 100 groups (bench/scale_config.py).

For each size, in a fresh process: synth wall time (in-process, cdk-nag on), resources and template
bytes per stack against CloudFormation's limits (500 resources, 1 MB template), the largest config
document the functions read (the largest runtime document in AppConfig, the longest environment
variable), or the error that stops synth. `python bench/scale_bench.py [sizes...]` (make bench runs it).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
SIZES = (3, 30, 100)
REPEATS = int(os.environ.get("REPEATS", "3"))
RATIO_GOAL = 2.0  # goal: synth at the largest size at most twice the smallest
sys.path[:0] = [str(ROOT)]
from bench.scale_config import HEADROOM, TEMPLATE_LIMITS  # noqa: E402


def measure_here(size: int, lint: bool = False) -> dict[str, Any]:
    """One size, synthesized in this process: its figures, or the error that stopped synth."""
    from bench.scale_config import scaled_context
    from tools.synth import synthesize

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        try:
            templates = synthesize(Path(out), {**scaled_context(size), "tier": "production"})
        except Exception as error:
            return {"error": str(error).strip().splitlines()[0][:300]}
        seconds = time.perf_counter() - started
        sizes = {p.name.removesuffix(".template.json"): p.stat().st_size for p in Path(out).glob("*.template.json")}
        # cfn-lint against CloudFormation's schemas, as `make cfn-lint` runs it (its ignore list).
        linted = (
            subprocess.run(
                [
                    str(ROOT / ".venv" / "bin" / "cfn-lint"),
                    "--ignore-checks",
                    "W3005",
                    "--",
                    *map(str, Path(out).glob("*.template.json")),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if lint
            else None
        )
    result: dict[str, Any] = {
        "cfn_lint": None if linted is None else (linted.returncode, linted.stdout.strip()[-2000:]),
        "seconds": seconds,
        "stacks": {},
        "largest_document": ["", 0],
        "largest_variable": ["", 0],
    }
    for name, template in templates.items():
        resources = template.get("Resources", {})
        result["stacks"][name] = {
            "resources": len(resources),
            "bytes": sizes[name],
            "outputs": len(template.get("Outputs", {})),
            "parameters": len(template.get("Parameters", {})),
        }
        for resource in resources.values():
            _largest_documents(result, name, resource)
    return result


def _largest_documents(result: dict[str, Any], stack: str, resource: dict[str, Any]) -> None:
    """The largest config documents a function reads: runtime documents (AppConfig hosted
    configurations, deploy-time values counted as written), environment variables."""
    props = resource.get("Properties", {})
    if resource["Type"] == "AWS::AppConfig::HostedConfigurationVersion":
        size = len(json.dumps(props["Content"])) if not isinstance(props["Content"], str) else len(props["Content"])
        if size > result["largest_document"][1]:
            result["largest_document"] = [stack, size]
    variables = props.get("Environment", {}).get("Variables", {}) or props.get("EnvironmentVariables", {})
    for key, value in variables.items():
        size = len(value) if isinstance(value, str) else len(json.dumps(value))
        if size > result["largest_variable"][1]:
            result["largest_variable"] = [f"{stack}:{key}", size]


def measure(size: int, lint: bool = False) -> dict[str, Any]:
    """One size in a fresh process (a synth's jsii runtime and memory do not carry over)."""
    out = subprocess.run(
        [str(PYTHON), __file__, "--one", str(size), *(["--cfn-lint"] if lint else [])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def used(stats: dict[str, Any]) -> float:
    """The largest share of a CloudFormation limit a stack takes."""
    return max(float(stats[limit]) / most for limit, most in TEMPLATE_LIMITS.items())


def report(size: int, result: dict[str, Any]) -> list[str]:
    if "error" in result:
        return [f"{size:>4} groups: synth refused: {result['error']}"]
    name, stats = max(result["stacks"].items(), key=lambda item: used(item[1]))
    lines = [
        f"{size:>4} groups: synth {result['seconds']:5.1f} s; largest runtime document "
        f"{result['largest_document'][1]:,} chars ({result['largest_document'][0]}); longest variable "
        f"{result['largest_variable'][0]} {result['largest_variable'][1]:,} chars",
        f"      closest to a limit: {name} "
        + ", ".join(
            f"{stats[limit]:,} {limit} ({100 * stats[limit] / most:.0f}% of {most:,})"
            for limit, most in TEMPLATE_LIMITS.items()
        ),
    ]
    lines += [
        f"      {stack:<42} {s['resources']:>4} resources {s['bytes'] / 1000:>7,.0f} kB {s['outputs']:>4} outputs "
        f"{s['parameters']:>3} parameters"
        for stack, s in sorted(result["stacks"].items())
    ]
    return lines


def missed_at(size: int, result: dict[str, Any]) -> list[str]:
    """The goals one size misses: it does not synthesize, or a stack is past HEADROOM of a limit."""
    if "error" in result:
        return [f"{size} groups do not synthesize"]
    return [
        f"{stack} at {size} groups takes {100 * used(stats):.0f}% of a limit"
        for stack, stats in result["stacks"].items()
        if used(stats) > HEADROOM
    ]


def lint_missed(size: int, linted: tuple[int, str] | None) -> list[str]:
    if linted is None:
        return []
    code, output = linted
    print(
        f"cfn-lint at {size} groups: {'clean' if code == 0 else f'exit {code}'}" + ("" if code == 0 else f"\n{output}")
    )
    return [] if code == 0 else [f"cfn-lint at {size} groups"]


def main(sizes: tuple[int, ...] = SIZES) -> int:
    """Each size REPEATS times, interleaved (a busy machine slows all sizes alike); the median synth.
    Exit 1 when a goal is missed: a size that does not synthesize, cfn-lint findings, a stack past
    HEADROOM of a limit, or synth at the largest size over RATIO_GOAL times the smallest."""
    print(
        f"production tier synthesized with a generated config (bench/scale_config.py), cdk-nag on, median of {REPEATS}:"
    )
    runs: dict[int, list[dict[str, Any]]] = {size: [] for size in sizes}
    for repeat in range(REPEATS):
        for size in sizes:  # cfn-lint once, the largest size, outside the timing
            runs[size].append(measure(size, lint=repeat == 0 and size == max(sizes)))
    medians: dict[int, float] = {}
    missed: list[str] = []
    for size, results in runs.items():
        result = results[0]
        if "error" not in result:
            medians[size] = statistics.median(r["seconds"] for r in results)
            result = {**result, "seconds": medians[size]}
        for line in report(size, result):
            print(line)
        missed += missed_at(size, result)
    missed += lint_missed(max(sizes), runs[max(sizes)][0].get("cfn_lint"))
    if len(medians) > 1:
        smallest, largest = min(medians), max(medians)
        ratio = medians[largest] / medians[smallest]
        print(f"synth at {largest} groups / synth at {smallest}: {ratio:.2f} (goal: at most {RATIO_GOAL:g})")
        if ratio > RATIO_GOAL:
            missed.append(f"synth at {largest} groups is {ratio:.2f}x the time at {smallest}")
    for goal in missed:
        print(f"goal missed: {goal}")
    return 1 if missed else 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:
        print(json.dumps(measure_here(int(sys.argv[2]), lint="--cfn-lint" in sys.argv)))
    else:
        sys.exit(main(tuple(int(arg) for arg in sys.argv[1:]) or SIZES))
