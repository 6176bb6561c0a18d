"""Whether a bundle ships, for every module, the bytecode a runtime imports as it is."""

from __future__ import annotations

import _imp
from pathlib import Path

# CPython 3.14's bytecode (importlib.util.MAGIC_NUMBER of 3.14.x), and PEP 552's flags for
# hash-based bytecode that is never checked against its source: what Lambda and AgentCore import
# as it is from their read-only directories (Makefile: COMPILE; stacks/shared/bytecode.py).
RUNTIME_MAGIC = (3627).to_bytes(2, "little") + b"\r\n"
UNCHECKED_HASH = 0b01


def bytecode_problems(bundle: Path, tag: str) -> list[str]:
    """Each module of ``bundle`` that a runtime of ``tag`` (e.g. cpython-314) would compile at
    every start, or run other code than its source: no bytecode for it, another version's,
    bytecode checked against its source, or bytecode of other source (its recorded source hash,
    which the runtime never checks, differs from the file's)."""
    problems = []
    for source in sorted(bundle.rglob("*.py")):
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        if not compiled.is_file():
            problems.append(f"{source.relative_to(bundle)}: no {compiled.name}")
            continue
        head = compiled.read_bytes()[:16]
        if head[:4] != RUNTIME_MAGIC or int.from_bytes(head[4:8], "little") != UNCHECKED_HASH:
            problems.append(f"{compiled.relative_to(bundle)}: magic {head[:4]!r}, flags {head[4:8]!r}")
        elif _imp.source_hash(int.from_bytes(RUNTIME_MAGIC, "little"), source.read_bytes()) != head[8:]:
            problems.append(f"{compiled.relative_to(bundle)}: compiled from other source")
    return problems
