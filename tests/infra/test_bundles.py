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
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from stacks.production.agents import AGENT_DEPS_DIR, AGENT_PACKAGE
from stacks.production.web_tools import WEB_PACKAGE
from stacks.shared import bytecode, lambda_function
from stacks.shared.bytecode import LAMBDAS_DIR
from stacks.shared.lambda_function import LAYER_DIR, RUNTIME, SHARED_PACKAGES, FunctionBundle
from tests.infra.bytecode_checks import RUNTIME_MAGIC, bytecode_problems
from tests.infra.cfn import resources
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


@pytest.mark.parametrize("bundle", [LAYER_DIR / "python", AGENT_DEPS_DIR], ids=["layer", "agent-deps"])
def test_every_dependency_ships_the_runtimes_bytecode(bundle: Path) -> None:
    # RUNTIME_MAGIC, the tag below, the compiler (build/python3.14, stacks/shared/bytecode.py) and
    # the Makefile's LAMBDA_PYTHON are the runtime's: change them together.
    assert RUNTIME.name == "python3.14"
    assert bytecode.COMPILER.parent.name == RUNTIME.name
    assert bytecode.compiler_identity().split()[1:] == ["cpython-314", RUNTIME_MAGIC.hex()]
    problems = bytecode_problems(bundle, "cpython-314")
    assert not problems, f"{len(problems)} modules compiled at every cold start, e.g. {problems[:3]}"


def test_the_bytecode_check_finds_a_module_without_it_another_versions_and_other_sources(tmp_path: Path) -> None:
    """Negative control: a source alone, 3.11's timestamp bytecode, and 3.14's bytecode of a
    source since edited are all found."""
    bundle = tmp_path / "bundle"
    (bundle / "__pycache__").mkdir(parents=True)
    (bundle / "alone.py").write_text("x = 1\n")
    (bundle / "old.py").write_text("y = 2\n")
    (bundle / "edited.py").write_text("z = 3\n")
    (bundle / "__pycache__" / "old.cpython-314.pyc").write_bytes((3495).to_bytes(2, "little") + b"\r\n" + bytes(12))
    # 3.14's unchecked-hash header, with a source hash that is not edited.py's.
    (bundle / "__pycache__" / "edited.cpython-314.pyc").write_bytes(
        RUNTIME_MAGIC + (1).to_bytes(4, "little") + bytes(8)
    )
    problems = bytecode_problems(bundle, "cpython-314")
    assert [p.split(":")[0] for p in problems] == [
        "alone.py",
        "__pycache__/edited.cpython-314.pyc",
        "__pycache__/old.cpython-314.pyc",
    ]


def _package(root: Path) -> Path:
    """``root`` holding a small package ``pkg``: a module and an executable exec wrapper."""
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "run").write_text("#!/bin/sh\n")
    (root / "pkg" / "run").chmod(0o755)
    return root


def test_every_functions_code_is_its_packages_with_the_runtimes_bytecode(assembly: Assembly) -> None:
    """Lambda's /var/task is read-only: a module of the function's own without bytecode there is
    compiled at every cold start (stacks/shared/bytecode.py). What ships is lambdas/ as it is."""
    assets = {
        assembly.outdir / function["Metadata"]["aws:asset:path"]: function["Properties"]["Handler"].split(".")[0]
        for template in assembly.templates.values()
        for function in resources(template, "AWS::Lambda::Function").values()
        if function["Properties"]["Runtime"].startswith("python")
    }
    assert set(assets.values()) == set(lambda_packages())
    problems = {}
    for asset, package in assets.items():  # each asset once, however many functions run it
        shipped = sorted(p for p in asset.rglob("*") if p.is_file() and p.suffix != ".pyc")
        sources = sorted(p for part in (package, *SHARED_PACKAGES) for p in bytecode.package_sources(part))
        assert [p.relative_to(asset) for p in shipped] == [p.relative_to(LAMBDAS_DIR) for p in sources], package
        assert [p.read_bytes() for p in shipped] == [p.read_bytes() for p in sources], package
        problems[package] = bytecode_problems(asset, "cpython-314")
    assert not {package: found for package, found in problems.items() if found}


def test_a_functions_asset_hash_follows_its_package_and_the_shared_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    digests = {"ai_gateway": "a1", "shared": "s1"}
    monkeypatch.setattr(lambda_function, "package_digest", lambda package: digests[package])
    first = FunctionBundle("ai_gateway").asset_hash
    assert FunctionBundle("ai_gateway").asset_hash == first
    digests["shared"] = "s2"
    shared_changed = FunctionBundle("ai_gateway").asset_hash
    digests["ai_gateway"] = "a2"
    assert len({first, shared_changed, FunctionBundle("ai_gateway").asset_hash}) == 3


def test_a_packages_digest_follows_its_files_modes_compiler_and_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _package(tmp_path)
    first = bytecode.package_digest("pkg", root)
    (root / "pkg" / "__pycache__").mkdir()
    (root / "pkg" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"this machine's")
    (root / "pkg" / "requirements.txt").write_text("boto3\n")
    assert bytecode.package_digest("pkg", root) == first  # neither ships
    seen = {first}
    for change in (
        lambda: (root / "pkg" / "mod.py").write_text("x = 2\n"),
        lambda: (root / "pkg" / "run").chmod(0o644),  # an exec wrapper no longer executable
        lambda: monkeypatch.setattr(bytecode, "compiler_identity", lambda: "3.15.0 cpython-315 00000d0a"),
        lambda: monkeypatch.setattr(bytecode, "COMPILE", (*bytecode.COMPILE, "-o", "1")),
        lambda: monkeypatch.setattr(bytecode, "LAYOUT", bytecode.LAYOUT + 1),
    ):
        change()
        digest = bytecode.package_digest("pkg", root)
        assert digest not in seen
        seen.add(digest)


def test_a_package_is_compiled_once_per_content_for_the_runtime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, cache = _package(tmp_path / "src"), tmp_path / "cache"
    compiled = bytecode.compiled_package("pkg", source, cache)
    assert not bytecode_problems(compiled, "cpython-314")
    assert (compiled / "pkg" / "run").stat().st_mode & 0o111  # an exec wrapper stays executable
    assert [p.name for p in cache.iterdir()] == [compiled.name]  # nothing half-built left beside it

    def no_compiler(*args: object, **kwargs: object) -> None:
        raise AssertionError("compiled again")

    with monkeypatch.context() as patched:
        patched.setattr(subprocess, "run", no_compiler)
        assert bytecode.compiled_package("pkg", source, cache) == compiled
        (source / "pkg" / "mod.py").write_text("x = 2\n")
        with pytest.raises(AssertionError, match="compiled again"):
            bytecode.compiled_package("pkg", source, cache)
    monkeypatch.setattr(bytecode, "COMPILER", tmp_path / "no-python")
    monkeypatch.setattr(bytecode, "compiler_identity", bytecode.compiler_identity.__wrapped__)
    with pytest.raises(FileNotFoundError, match="make setup"):
        bytecode.compiled_package("pkg", source, cache)


def test_a_package_changed_during_synth_is_refused_not_shipped_under_the_old_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, cache = _package(tmp_path / "src"), tmp_path / "cache"
    read = bytecode.package_digest("pkg", source)  # what the synth read when it built the construct
    (source / "pkg" / "mod.py").write_text("x = 2\n")
    with pytest.raises(bytecode.PackageChangedError, match="changed during synth"):
        bytecode.compiled_package("pkg", source, cache, expected=read)
    # Saved between the digest and the copy: what was copied is not what the digest says.
    copytree = shutil.copytree

    def copy_then_saved(src: Path, dst: Path, **kwargs: Any) -> Any:
        done = copytree(src, dst, **kwargs)
        Path(dst, "mod.py").write_text("x = 3\n")
        return done

    monkeypatch.setattr(shutil, "copytree", copy_then_saved)
    with pytest.raises(bytecode.PackageChangedError, match="changed during synth"):
        bytecode.compiled_package("pkg", source, cache)
    assert not list(cache.iterdir())  # nothing kept under either name


def test_a_package_another_synth_compiled_first_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source, cache = _package(tmp_path / "src"), tmp_path / "cache"
    theirs = bytecode.compiled_package("pkg", source, cache)
    marker = theirs / "pkg" / "mod.py"
    is_dir = Path.is_dir
    calls = []

    def not_yet_there(path: Path) -> bool:  # the first look misses it: the other synth renames it meanwhile
        if path == theirs:
            calls.append(path)
            return len(calls) > 1
        return is_dir(path)

    monkeypatch.setattr(Path, "is_dir", not_yet_there)
    assert bytecode.compiled_package("pkg", source, cache) == theirs
    assert marker.read_text() == "x = 1\n"
    assert len(calls) == 2  # looked, compiled, lost the rename, looked again
    assert [p.name for p in cache.iterdir()] == [theirs.name]
