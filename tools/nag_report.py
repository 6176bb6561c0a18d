"""Count the cdk-nag acknowledgements in cdk.out by rule (run `make synth` first)."""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script (python tools/nag_report.py): the repository root is not on the path
    sys.path.insert(0, str(ROOT))

from tools.inputs import read_json  # noqa: E402


class AssemblyError(Exception):
    """A metadata file of the cloud assembly cannot be read (the message names it and why)."""


def _metadata(path: Path) -> list[tuple[str, Any]]:
    """(construct path, its metadata entries) of one *.metadata.json, or AssemblyError naming the file."""
    document = read_json(path, AssemblyError)
    if not isinstance(document, dict) or not all(isinstance(entries, list) for entries in document.values()):
        raise AssemblyError(f"{path}: not a metadata file (an object of construct path: list of entries)")
    return list(document.items())


def acknowledgements(outdir: Path) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) for every acknowledged finding in a cloud assembly, its
    stages' nested assemblies (TIER=pipeline) included."""
    found: list[tuple[str, str, str]] = []
    for metadata in [*sorted(outdir.glob("*.metadata.json")), *sorted(outdir.glob("assembly-*/*.metadata.json"))]:
        for path, entries in _metadata(metadata):
            for entry in entries:
                if not isinstance(entry, dict):
                    raise AssemblyError(f"{metadata}: {path}: a metadata entry that is not an object")
                if entry.get("type") != "aws:cdk:acknowledged-rules":
                    continue
                data = entry.get("data")
                if not isinstance(data, dict) or not all(isinstance(rule, str) for rule in data):
                    raise AssemblyError(
                        f"{metadata}: {path}: an acknowledged-rules entry whose data is not rule: reason"
                    )
                found.extend((path, rule.removeprefix("Annotation::"), str(why)) for rule, why in data.items())
    return found


def count_by_rule(outdir: Path) -> Counter[str]:
    """Acknowledgements per rule, with granular IAM findings ("IAM5[Resource::...]") folded."""
    return Counter(re.sub(r"\[.*\]$", "", rule) for _, rule, _ in acknowledgements(outdir))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "outdir", nargs="?", type=Path, default=Path("cdk.out"), help="a synthesized cloud assembly (default cdk.out)"
    )
    outdir = parser.parse_args(argv).outdir
    if not (outdir / "manifest.json").is_file():
        if not outdir.exists():
            what = "no such directory"
        elif not outdir.is_dir():
            what = "not a directory: give a synthesized cloud assembly (cdk.out)"
        else:
            what = "no manifest.json: not a synthesized cloud assembly"
        print(f"nag_report: {outdir}: {what} (run make synth first)", file=sys.stderr)
        return 1
    try:
        by_rule = count_by_rule(outdir)
    except AssemblyError as error:
        print(f"nag_report: {error} (run make synth again)", file=sys.stderr)
        return 1
    width = max(map(len, by_rule), default=10)
    for rule, count in sorted(by_rule.items()):
        print(f"{rule:<{width}}  {count}")
    print(f"{'total':<{width}}  {by_rule.total()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
