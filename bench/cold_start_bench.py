"""Every deployed Python Lambda function's cold import beside `import boto3` (goal: ratio <= 1.3
where SnapStart is off).

The functions are read from the synthesized templates (cdk.out/*.template.json: each
AWS::Lambda::Function on a python runtime, its Handler, its environment, its exec wrapper), so the
list cannot drift from the stacks; run `make synth` first. The agent runtime is not a Lambda
function (bench/agent_bench.py covers it).

For each function, fresh interpreters time the import of its handler module (for a function with
an AWS_LAMBDA_EXEC_WRAPPER that starts `python -m <module>`, that module too) and `import boto3`,
taking turns run by run so both see the same machine (it is shared and noisy): RUNS runs each
(default 15), median and p90, with bytecode as deployed: the dependencies' compiled (the layer
ships .pyc files, `make layer`; the runtime's boto3 has its own) and the function's own modules
too (its code asset ships them, stacks/shared/bytecode.py). Beside it, in the same rounds, "own
src": the function's own modules compiled at every start, as while its code asset had no bytecode
(Lambda cannot write any to its read-only /var/task); and "no .pyc": nothing compiled
(NO_BYTECODE_RUNS runs, default 3), as while the layer shipped sources only. The path is
lambdas/ then this environment's
site-packages, which hold the layer's pinned packages (lambdas/requirements.txt). The environment
is what Lambda sets (region, function name, task root, credentials) plus the function's literal
environment variables; values that are CloudFormation references are left out.

A top-level import of a package that is not in the layer (build/layer/python) fails, as on Lambda.

Beside them, each round, the floor: what a house function that calls AWS cannot import less than
(boto3 and the settings contract's base, shared.contract, a pydantic model).

The heaviest imports beyond boto3 come from one `-X importtime` run importing boto3 first, then
the function: the three packages (third-party or standard library) whose modules' own import
times sum highest, and the same sum over the project's own modules.

    python bench/cold_start_bench.py          RUNS=5 python bench/cold_start_bench.py
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAMBDAS = ROOT / "lambdas"
CDK_OUT = ROOT / "cdk.out"
RUNS = int(os.environ.get("RUNS", "15"))
NO_BYTECODE_RUNS = int(os.environ.get("NO_BYTECODE_RUNS", "3"))
GOAL = 1.3
BASELINE = "import boto3"
# What every house function that calls AWS imports before any code of its own: boto3 and its
# settings contract's base (a pydantic model; Powertools' Logger and Metrics add little beside it).
FLOOR = "import boto3; import shared.contract"
# What Lambda itself puts in a function's environment (no network is used at import).
LAMBDA_ENVIRONMENT = {
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.14",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "LAMBDA_TASK_ROOT": str(LAMBDAS),
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "AWS_EC2_METADATA_DISABLED": "true",
}
WRAPPER_PREFIX = "/var/task/"
LAYER = ROOT / "build" / "layer" / "python"
MARK = "--boto3 imported--"


def top_level_name(path: Path) -> str:
    """The importable name a site-packages entry provides ("" for metadata and .pth files)."""
    if path.name.endswith((".dist-info", ".egg-info", ".pth")) or path.name in ("__pycache__", "bin"):
        return ""
    return path.name.split(".")[0]


def site_packages() -> list[Path]:
    return sorted({Path(p) for p in (sysconfig.get_path("purelib"), sysconfig.get_path("platlib")) if Path(p).is_dir()})


@functools.cache
def layer_only() -> str:
    """Code run before the clock starts: a top-level import the Lambda could not make (a package
    installed here for development but not in the layer, e.g. httpx, which X-Ray's patching would
    otherwise import) fails as it would on Lambda. The layer is built for arm64, so its own files
    cannot be loaded here; this environment has the same pinned versions."""
    if not LAYER.is_dir():
        sys.exit(f"no dependency layer at {LAYER}: run `make layer` (or `make synth`)")
    layer = {top_level_name(path) for path in LAYER.iterdir()}
    installed = {top_level_name(path) for folder in site_packages() for path in folder.iterdir()}
    denied = sorted(installed - layer - {""})
    return (
        "import sys\n"
        "class LayerOnly:\n"
        f"    denied = frozenset({denied!r})\n"
        "    @classmethod\n"
        "    def find_spec(cls, name, path=None, target=None):\n"
        "        if path is None and name in cls.denied:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, LayerOnly)\n"
    )


@dataclass(frozen=True)
class Function:
    stack: str
    logical_id: str
    statement: str  # what its cold start imports
    environment: dict[str, str]
    snap_start: bool

    @property
    def label(self) -> str:
        return f"{self.stack.removeprefix('genai-')}/{re.sub(r'[0-9A-F]{8}$', '', self.logical_id)}"


def wrapper_module(wrapper: str) -> str | None:
    """The module an exec wrapper in the function's code starts (`python ... -m <module>`)."""
    if not wrapper.startswith(WRAPPER_PREFIX):
        return None
    script = LAMBDAS / wrapper.removeprefix(WRAPPER_PREFIX)
    found = re.search(r"-m\s+([\w.]+)", script.read_text()) if script.is_file() else None
    return found.group(1) if found else None


def functions() -> list[Function]:
    templates = sorted(CDK_OUT.glob("*.template.json"))
    if not templates:
        sys.exit(f"no synthesized templates in {CDK_OUT}: run `make synth` first")
    newest_source = max(p.stat().st_mtime for p in [*ROOT.glob("stacks/**/*.py"), ROOT / "app.py"])
    if min(p.stat().st_mtime for p in templates) < newest_source:
        print("note: cdk.out is older than stacks/; run `make synth` for the current list of functions\n")
    found = []
    for template in templates:
        resources = json.loads(template.read_text()).get("Resources", {})
        for logical_id, resource in resources.items():
            properties = resource.get("Properties", {})
            if resource.get("Type") != "AWS::Lambda::Function" or not properties.get("Runtime", "").startswith(
                "python"
            ):
                continue
            variables = (properties.get("Environment") or {}).get("Variables", {})
            literal = {name: value for name, value in variables.items() if isinstance(value, str)}
            modules = [properties["Handler"].rsplit(".", 1)[0]]
            if wrapped := wrapper_module(literal.pop("AWS_LAMBDA_EXEC_WRAPPER", "")):
                modules.insert(0, wrapped)
            snap_start = (properties.get("SnapStart") or {}).get("ApplyOn", "None") != "None"
            environment = {
                **LAMBDA_ENVIRONMENT,
                "AWS_LAMBDA_FUNCTION_NAME": logical_id,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(properties.get("MemorySize", 128)),
                "_HANDLER": properties["Handler"],
                **literal,
            }
            statement = "; ".join(f"import {module}" for module in modules)
            found.append(Function(template.name.removesuffix(".template.json"), logical_id, statement, environment,
                                  snap_start))  # fmt: skip
    return found


def base_environment(bytecode_cache: str, *, write: bool = False) -> dict[str, str]:
    """A clean environment reading bytecode from ``bytecode_cache`` only (and writing none unless
    ``write``: measured runs find what the deployment would ship, nothing more)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {
        **{name: os.environ[name] for name in keep if name in os.environ},
        "PYTHONPATH": str(LAMBDAS),
        "PYTHONPYCACHEPREFIX": bytecode_cache,
        **({} if write else {"PYTHONDONTWRITEBYTECODE": "1"}),
    }


def own_bytecode(bytecode_cache: str) -> Path:
    """Where the project's own modules' bytecode lands under a PYTHONPYCACHEPREFIX."""
    return Path(bytecode_cache, *LAMBDAS.resolve().parts[1:])


def timed(statement: str, environment: dict[str, str]) -> float:
    """One fresh interpreter's import time of `statement`, in ms."""
    code = f"{layer_only()}import time; s = time.perf_counter(); {statement}; print(time.perf_counter() - s)"
    out = subprocess.run([sys.executable, "-c", code], env=environment, check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1]) * 1000


def heaviest_beyond_boto3(
    function: Function, environment: dict[str, str], top: int = 3
) -> tuple[list[tuple[str, float]], float]:
    """The `top` heaviest packages the function imports once boto3 is imported, by the summed
    self time of their modules (ms), and the project's own modules' summed self time."""
    code = f"{layer_only()}import boto3; print('{MARK}', file=sys.stderr, flush=True); {function.statement}"
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=environment, check=True,
                         capture_output=True, text=True).stderr  # fmt: skip
    own = {path.name for path in LAMBDAS.iterdir() if path.is_dir()}
    by_package: dict[str, float] = {}
    for line in err.split(MARK, 1)[1].splitlines():
        if match := re.match(r"import time:\s+(\d+) \|\s+\d+ \| *(\S+)", line):
            package = match.group(2).split(".")[0]
            by_package[package] = by_package.get(package, 0.0) + int(match.group(1)) / 1000
    own_ms = sum(by_package.pop(name, 0.0) for name in own)
    return sorted(by_package.items(), key=lambda item: -item[1])[:top], own_ms


def over_goal(function: Function, import_ms: list[float], boto3_ms: list[float]) -> bool:
    """Whether a function without SnapStart imports in more than GOAL times `import boto3` (medians)."""
    return not function.snap_start and statistics.median(import_ms) / statistics.median(boto3_ms) > GOAL


def p90(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[max(0, round(0.9 * len(ordered)) - 1)]


def main() -> None:
    layer_only()  # before anything is run: no layer, no bench
    found = functions()
    load = os.getloadavg()
    print(f"{len(found)} Python functions from {CDK_OUT.name}/; {RUNS} runs each; Python {sys.version.split()[0]}; "
          f"{os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}\n")  # fmt: skip
    samples: dict[str, tuple[list[float], list[float]]] = {f.logical_id: ([], []) for f in found}
    own_source: dict[str, list[float]] = {f.logical_id: [] for f in found}
    uncompiled: dict[str, list[float]] = {f.logical_id: [] for f in found}
    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory() as empty:
        cache, without_own = f"{scratch}/deployed", f"{scratch}/own-source"
        for function in found:  # compile once: the cache holds every module's bytecode from here on
            timed(function.statement, {**base_environment(cache, write=True), **function.environment})
        timed(BASELINE, base_environment(cache, write=True))
        timed(FLOOR, base_environment(cache, write=True))
        floor_environment = {**base_environment(cache), **LAMBDA_ENVIRONMENT}
        floor: tuple[list[float], list[float]] = ([], [])
        shutil.copytree(cache, without_own)
        shutil.rmtree(own_bytecode(without_own))  # the function's own code compiled at every start
        environments = {f.logical_id: {**base_environment(cache), **f.environment} for f in found}
        own_source_environments = {f.logical_id: {**base_environment(without_own), **f.environment} for f in found}
        for _ in range(RUNS):
            floor[0].append(timed(BASELINE, floor_environment))
            floor[1].append(timed(FLOOR, floor_environment))
            for function in found:
                environment = environments[function.logical_id]
                boto3_ms, function_ms = samples[function.logical_id]
                boto3_ms.append(timed(BASELINE, environment))
                function_ms.append(timed(function.statement, environment))
                own_source[function.logical_id].append(
                    timed(function.statement, own_source_environments[function.logical_id])
                )
        for _ in range(NO_BYTECODE_RUNS):
            for function in found:
                environment = {**base_environment(empty), **function.environment}
                uncompiled[function.logical_id].append(timed(function.statement, environment))
        heaviest = {f.logical_id: heaviest_beyond_boto3(f, environments[f.logical_id]) for f in found}
    header = (
        f"{'function':<46} {'cold import ms':>15} {'boto3 ms':>9} {'ratio':>6} {'own src':>8} {'no .pyc':>8}"
        "  heaviest packages beyond boto3 (ms)"
    )
    print(header)
    print(f"{'':<46} {'p50':>7} {'p90':>7} {'p50':>9} {'p50':>6} {'p50':>8} {'p50':>8}")
    print("-" * len(header))
    over, over_before = [], []
    for function in sorted(found, key=lambda f: -statistics.median(samples[f.logical_id][1])):
        boto3_ms, function_ms = samples[function.logical_id]
        ratio = statistics.median(function_ms) / statistics.median(boto3_ms)
        flag = "*" if over_goal(function, function_ms, boto3_ms) else " "
        over += [function.label] if flag == "*" else []
        over_before += [function.label] if over_goal(function, own_source[function.logical_id], boto3_ms) else []
        packages, own_ms = heaviest[function.logical_id]
        named = ", ".join(f"{name} {ms:.0f}" for name, ms in packages) + f"; own code {own_ms:.0f}"
        print(f"{function.label:<46} {statistics.median(function_ms):7.1f} {p90(function_ms):7.1f} "
              f"{statistics.median(boto3_ms):9.1f} {ratio:5.2f}{flag} "
              f"{statistics.median(own_source[function.logical_id]):8.1f} "
              f"{statistics.median(uncompiled[function.logical_id]):8.1f} {named}")  # fmt: skip
        if ";" in function.statement:
            print(f"{'':<46} (imports {function.statement.replace('import ', '')})")
    print(f"\n* over {GOAL}x import boto3 without SnapStart: {len(over)} of {len(found)} "
          f"({len(over_before)} with the function's own code compiled at every start)")  # fmt: skip
    floor_ratio = statistics.median(floor[1]) / statistics.median(floor[0])
    print(f"floor ({FLOOR}): {statistics.median(floor[1]):.1f} ms, {floor_ratio:.2f}x import boto3 "
          f"({statistics.median(floor[0]):.1f} ms) in the same rounds")  # fmt: skip


if __name__ == "__main__":
    main()
