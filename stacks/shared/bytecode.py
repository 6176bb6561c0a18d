"""The project's own runtime packages (lambdas/<package>/), byte-compiled for the runtime's Python.

Lambda imports a function's code from /var/task, which is read-only: a module without bytecode
there is compiled from source at every cold start (about 50 to 130 ms for a function's own
modules, measured by bench/cold_start_bench.py). The dependencies already ship bytecode (the layer
and the agents' dependencies, Makefile: COMPILE); this does the same for the project's packages,
with the same compiler and flags: CPython of the runtime's version, unchecked-hash bytecode (PEP
552) that the runtime uses as it is, whatever the files' times.

Each package is compiled once per content: :func:`compiled_package` keeps the result under
build/bytecode/<package>-<digest>/, so a synth into a fresh directory (the tests') copies instead of
compiling, and a changed file recompiles only its own package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"
BYTECODE_DIR = PROJECT_ROOT / "build" / "bytecode"
# The CPython of the runtime's version that `make setup` unpacks (Makefile: LAMBDA_PY).
COMPILER = PROJECT_ROOT / "build" / "python3.14" / "python"
# What the compiled tree depends on besides the sources: the compiler's version and its flags.
# Changing either must change every digest (and so every asset hash).
COMPILE_FLAGS = ("cpython-314", "unchecked-hash")
# Never shipped: this machine's bytecode, and the agents' pip requirements (their own bundle).
IGNORED = ("__pycache__", "*.pyc", "requirements.txt")


def package_sources(package: str, root: Path = LAMBDAS_DIR) -> list[Path]:
    """The files of ``root/<package>`` that ship, sorted."""
    patterns = shutil.ignore_patterns(*IGNORED)
    found = []
    for directory, dirs, files in os.walk(root / package):
        ignored = patterns(directory, [*dirs, *files])
        dirs[:] = sorted(d for d in dirs if d not in ignored)
        found += [Path(directory, name) for name in files if name not in ignored]
    return sorted(found)


def package_digest(package: str, root: Path = LAMBDAS_DIR) -> str:
    """What a package's compiled tree is made of: its files (paths and bytes) and the compile flags."""
    digest = hashlib.sha256(" ".join(COMPILE_FLAGS).encode() + b"\n")
    for path in package_sources(package, root):
        digest.update(f"{path.relative_to(root).as_posix()}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def compiled_package(package: str, root: Path = LAMBDAS_DIR, cache: Path = BYTECODE_DIR) -> Path:
    """A directory holding ``<package>/``: its files and their bytecode for the runtime (built
    once per content, then reused)."""
    if not COMPILER.is_file():
        raise FileNotFoundError(f"no CPython of the runtime's version at {COMPILER}: run `make setup`")
    target = cache / f"{package}-{package_digest(package, root)[:20]}"
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{package}-") as work:
        staged = Path(work, "tree")
        shutil.copytree(root / package, staged / package, ignore=shutil.ignore_patterns(*IGNORED))
        # -s: the bytecode names its sources relative to the asset's root, wherever it is built.
        command = [str(COMPILER), "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash"]
        subprocess.run([*command, "-s", str(staged), str(staged / package)], check=True)  # noqa: S603 (build/'s own)
        try:
            staged.rename(target)
        except OSError:  # another synth compiled the same content first: its tree is the same
            if not target.is_dir():
                raise
    return target


def copy_compiled(packages: tuple[str, ...], output_dir: Path) -> None:
    """Each package's compiled tree into ``output_dir`` (hard links where the filesystem allows)."""
    for package in packages:
        shutil.copytree(compiled_package(package), output_dir, dirs_exist_ok=True, copy_function=link_or_copy)


def link_or_copy(source: str, target: str) -> None:
    """A hard link to ``source`` (its content never changes once built), or a copy on another filesystem."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
