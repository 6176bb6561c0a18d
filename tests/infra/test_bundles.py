"""What a deployed runtime imports is in what it is deployed with.

A Lambda function runs its package and ``shared`` over the dependency layer (build/layer/python);
an agent runtime runs ``agent`` and ``shared`` over its own dependencies (build/agent-deps). A
third-party import missing there passes every offline test (the venv has it) and fails the
runtime at start-up, so each runtime's imports are followed from its package through ``shared``
and every third-party top-level module must be in its bundle. Each bundle also ships the
runtime's bytecode for every module, the project's own included, or every cold start would compile it.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from stacks.production.agents import AGENT_DEPS_DIR, AGENT_PACKAGE
from stacks.production.web_tools import WEB_PACKAGE
from stacks.shared import bytecode
from stacks.shared.lambda_function import LAMBDAS_DIR, LAYER_DIR, RUNTIME, SHARED_PACKAGES
from tests.infra.conftest import Assembly

FIRST_PARTY = {p.name for p in LAMBDAS_DIR.iterdir() if (p / "__init__.py").is_file()}


def imported_modules(package: str) -> set[str]:
    """Top-level third-party modules imported anywhere in ``package`` and the first-party modules
    it reaches (lazy imports inside functions included)."""
    seen: set[Path] = set()
    third_party: set[str] = set()
    queue = list((LAMBDAS_DIR / package).glob("*.py"))
    while queue:
        path = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                else []
            )
            for name in names:
                top = name.split(".")[0]
                if top in FIRST_PARTY:
                    module = LAMBDAS_DIR.joinpath(*name.split("."))
                    queue += [m for m in (module.with_suffix(".py"), module / "__init__.py") if m.is_file()]
                elif top not in sys.stdlib_module_names and top != "__future__":
                    third_party.add(top)
    return third_party


def in_bundle(bundle: Path, module: str) -> bool:
    return (bundle / module).is_dir() or (bundle / f"{module}.py").is_file()


# Packages that run on AgentCore Runtime over the agents' dependencies, not in a Lambda function.
RUNTIME_PACKAGES = (AGENT_PACKAGE, WEB_PACKAGE)


def lambda_packages() -> list[str]:
    return sorted(FIRST_PARTY - {*RUNTIME_PACKAGES, *SHARED_PACKAGES})


@pytest.mark.parametrize("package", lambda_packages())
def test_a_functions_imports_are_in_its_layer(package: str) -> None:
    missing = {m for m in imported_modules(package) if not in_bundle(LAYER_DIR / "python", m)}
    assert not missing, f"lambdas/{package} imports {sorted(missing)}: add to lambdas/requirements.txt"


@pytest.mark.parametrize("package", RUNTIME_PACKAGES)
def test_the_agents_imports_are_in_its_dependencies(package: str) -> None:
    missing = {m for m in imported_modules(package) if not in_bundle(AGENT_DEPS_DIR, m)}
    assert not missing, f"lambdas/{package} imports {sorted(missing)}: add to lambdas/agent/requirements.txt"


def test_the_check_finds_a_missing_dependency(tmp_path: Path) -> None:
    """Negative control: an empty bundle lacks what the agent imports."""
    assert {"pydantic", "aws_lambda_powertools"} <= imported_modules(AGENT_PACKAGE)
    assert not in_bundle(tmp_path, "pydantic")


# CPython 3.14's bytecode (importlib.util.MAGIC_NUMBER of 3.14.x), and PEP 552's flags for
# hash-based bytecode that is never checked against its source: what Lambda and AgentCore import
# as it is from their read-only directories (Makefile: COMPILE).
RUNTIME_MAGIC = (3627).to_bytes(2, "little") + b"\r\n"
UNCHECKED_HASH = 0b01


def bytecode_problems(bundle: Path, tag: str) -> list[str]:
    """Each module of ``bundle`` that a runtime of ``tag`` (e.g. cpython-314) would compile at
    every start: no bytecode for it, another version's, or bytecode checked against its source."""
    problems = []
    for source in sorted(bundle.rglob("*.py")):
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not compiled.is_file():
            problems.append(f"{source.relative_to(bundle)}: no {compiled.name}")
            continue
        head = compiled.read_bytes()[:8]
        if head[:4] != RUNTIME_MAGIC or int.from_bytes(head[4:], "little") != UNCHECKED_HASH:
            problems.append(f"{compiled.relative_to(bundle)}: magic {head[:4]!r}, flags {head[4:]!r}")
    return problems


@pytest.mark.parametrize("bundle", [LAYER_DIR / "python", AGENT_DEPS_DIR], ids=["layer", "agent-deps"])
def test_every_dependency_ships_the_runtimes_bytecode(bundle: Path) -> None:
    assert RUNTIME.name == "python3.14"  # RUNTIME_MAGIC is 3.14's: change both together
    problems = bytecode_problems(bundle, "cpython-314")
    assert not problems, f"{len(problems)} modules compiled at every cold start, e.g. {problems[:3]}"


def test_the_bytecode_check_finds_a_module_without_it_and_another_versions(tmp_path: Path) -> None:
    """Negative control: a source alone, and 3.11's timestamp bytecode, are both found."""
    (tmp_path / "alone.py").write_text("x = 1\n")
    (tmp_path / "old.py").write_text("y = 2\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "old.cpython-314.pyc").write_bytes((3495).to_bytes(2, "little") + b"\r\n" + bytes(12))
    problems = bytecode_problems(tmp_path, "cpython-314")
    assert [p.split(":")[0] for p in problems] == ["alone.py", "__pycache__/old.cpython-314.pyc"]


def test_every_functions_own_code_ships_the_runtimes_bytecode(assembly: Assembly) -> None:
    """Lambda's /var/task is read-only: a module of the function's own without bytecode there is
    compiled at every cold start (stacks/shared/bytecode.py)."""
    checked = {}
    for name, template in assembly.templates.items():
        for logical_id, resource in template["Resources"].items():
            if resource["Type"] != "AWS::Lambda::Function" or not resource["Properties"]["Runtime"].startswith(
                "python"
            ):
                continue
            asset = assembly.outdir / resource["Metadata"]["aws:asset:path"]
            package = resource["Properties"]["Handler"].split(".")[0]
            assert sorted(p.name for p in asset.iterdir()) == sorted({package, *SHARED_PACKAGES}), logical_id
            checked[f"{name}/{logical_id}"] = bytecode_problems(asset, "cpython-314")
    assert len(checked) >= len(lambda_packages())
    assert not {function: problems for function, problems in checked.items() if problems}


def test_a_packages_digest_follows_its_files_and_the_compile_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "mod.py").write_text("x = 1\n")
    first = bytecode.package_digest("pkg", tmp_path)
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"this machine's")
    (tmp_path / "pkg" / "requirements.txt").write_text("boto3\n")
    assert bytecode.package_digest("pkg", tmp_path) == first  # neither ships
    (tmp_path / "pkg" / "sub" / "mod.py").write_text("x = 2\n")
    changed = bytecode.package_digest("pkg", tmp_path)
    assert changed != first
    monkeypatch.setattr(bytecode, "COMPILE_FLAGS", ("cpython-315", "unchecked-hash"))
    assert bytecode.package_digest("pkg", tmp_path) not in (first, changed)


def test_a_package_is_compiled_once_per_content_for_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, cache = tmp_path / "src", tmp_path / "cache"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "__init__.py").write_text("")
    (source / "pkg" / "mod.py").write_text("x = 1\n")
    (source / "pkg" / "run").write_text("#!/bin/sh\n")
    (source / "pkg" / "run").chmod(0o755)
    compiled = bytecode.compiled_package("pkg", source, cache)
    assert not bytecode_problems(compiled, "cpython-314")
    assert (compiled / "pkg" / "run").stat().st_mode & 0o111  # an exec wrapper stays executable
    assert [p.name for p in cache.iterdir()] == [compiled.name]  # nothing half-built left beside it

    def no_compiler(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    monkeypatch.setattr(bytecode.subprocess, "run", no_compiler)
    assert bytecode.compiled_package("pkg", source, cache) == compiled
    (source / "pkg" / "mod.py").write_text("x = 2\n")
    with pytest.raises(AssertionError, match="compiled again"):
        bytecode.compiled_package("pkg", source, cache)
    monkeypatch.setattr(bytecode, "COMPILER", tmp_path / "no-python")
    with pytest.raises(FileNotFoundError, match="make setup"):
        bytecode.compiled_package("pkg", source, cache)
