"""The project's own runtime packages (lambdas/<package>/), byte-compiled for the runtime's Python.

Lambda imports a function's code from /var/task, which is read-only: a module without bytecode
there is compiled from source at every cold start (bench/cold_start_bench.py measures it). The
dependencies already ship bytecode (the layer and the agents' dependencies, Makefile: COMPILE);
this does the same for the project's packages, with the same compiler and flags: CPython of the
runtime's version, unchecked-hash bytecode (PEP 552) that the runtime uses as it is, whatever the
files' times.

Each package is compiled once per content: :func:`compiled_package` keeps the result under
build/bytecode/<package>-<digest>/, so a synth into a fresh directory (the tests') copies instead of
compiling, and a changed file recompiles only its own package. The digest covers what the tree is
made of: the package's files (paths, bytes, exec bits), the compiler (its version and bytecode
magic) and the command and rules that build it, so changing any of them builds and ships anew.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = PROJECT_ROOT / "lambdas"
BYTECODE_DIR = PROJECT_ROOT / "build" / "bytecode"
# The CPython of the runtime's version that `make setup` unpacks (Makefile: LAMBDA_PY); the
# directory is named after the Lambda runtime (tests/infra/test_bundles.py ties the two).
COMPILER = PROJECT_ROOT / "build" / "python3.14" / "python"
COMPILE = ("-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash")
# Never shipped: this machine's bytecode, and the agents' pip requirements (their own bundle).
IGNORED = ("__pycache__", "*.pyc", "requirements.txt")
# Bumped when the layout of a compiled tree changes in a way the lines above do not show.
LAYOUT = 1


class PackageChangedError(RuntimeError):
    """A package's files changed between the synth reading them and bundling them."""


def _no_compiler() -> FileNotFoundError:
    return FileNotFoundError(f"no CPython of the runtime's version at {COMPILER}: run `make setup`")


@functools.cache
def compiler_identity() -> str:
    """The compiler's version, bytecode cache tag and magic number (one run per process)."""
    if not COMPILER.is_file():
        raise _no_compiler()
    probe = "import importlib.util, sys; print(sys.version.split()[0], sys.implementation.cache_tag, importlib.util.MAGIC_NUMBER.hex())"  # noqa: E501
    done = subprocess.run([str(COMPILER), "-c", probe], check=True, capture_output=True, text=True)  # noqa: S603 (build/'s own)
    return done.stdout.strip()


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
    """What a package's compiled tree is made of (see the module docstring)."""
    recipe = f"{compiler_identity()}\n{COMPILE}\n{IGNORED}\nlayout {LAYOUT}\n"
    digest = hashlib.sha256(recipe.encode())
    for path in package_sources(package, root):
        executable = "x" if path.stat().st_mode & 0o111 else "-"
        digest.update(f"{path.relative_to(root).as_posix()}\0{executable}\0".encode())
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def packages_digest(digests: Sequence[tuple[str, str]]) -> str:
    """One digest of several packages' digests (``(package, digest)`` pairs), in their order."""
    return hashlib.sha256("".join(f"{package} {digest}\n" for package, digest in digests).encode()).hexdigest()


def compiled_package(package: str, root: Path = LAMBDAS_DIR, cache: Path = BYTECODE_DIR, expected: str = "") -> Path:
    """A directory holding ``<package>/``: its files and their bytecode for the runtime (built
    once per content, then reused). With ``expected`` (the digest the synth read earlier), a
    package whose files have changed since raises PackageChangedError instead of shipping other
    code under that digest."""
    digest = package_digest(package, root)
    if expected and digest != expected:
        raise PackageChangedError(f"{root / package} changed during synth: synthesize again")
    target = cache / f"{package}-{digest[:20]}"
    if target.is_dir():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{package}-") as work:
        staged = Path(work, "tree")
        shutil.copytree(root / package, staged / package, ignore=shutil.ignore_patterns(*IGNORED))
        # What is compiled is what was copied: a file saved meanwhile must not enter under this name.
        if package_digest(package, staged) != digest:
            raise PackageChangedError(f"{root / package} changed during synth: synthesize again")
        # -s: the bytecode names its sources relative to the asset's root, wherever it is built.
        command = [str(COMPILER), *COMPILE, "-s", str(staged), str(staged / package)]
        subprocess.run(command, check=True)  # noqa: S603 (build/'s own interpreter)
        try:
            staged.rename(target)
        except OSError:  # another synth compiled the same content first: its tree is the same
            if not target.is_dir():
                raise
    return target


def copy_compiled(digests: Sequence[tuple[str, str]], output_dir: Path) -> None:
    """Each package's compiled tree into ``output_dir`` (hard links where the filesystem allows),
    each package still as it was when its ``(package, digest)`` was read."""
    for package, digest in digests:
        tree = compiled_package(package, expected=digest)
        shutil.copytree(tree, output_dir, dirs_exist_ok=True, copy_function=link_or_copy)


def link_or_copy(source: str, target: str) -> None:
    """A hard link to ``source`` (its content never changes once built), or a copy on another filesystem."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
