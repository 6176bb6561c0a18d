"""Count the cdk-nag acknowledgements in cdk.out by rule (run `make synth` first)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path


def acknowledgements(outdir: Path) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) for every acknowledged finding in a cloud assembly, its
    stages' nested assemblies (TIER=pipeline) included."""
    found: list[tuple[str, str, str]] = []
    for metadata in [*sorted(outdir.glob("*.metadata.json")), *sorted(outdir.glob("assembly-*/*.metadata.json"))]:
        for path, entries in json.loads(metadata.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    found.extend((path, rule.removeprefix("Annotation::"), why) for rule, why in entry["data"].items())
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
        what = "no such directory" if not outdir.is_dir() else "no manifest.json: not a synthesized cloud assembly"
        print(f"nag_report: {outdir}: {what} (run make synth first)", file=sys.stderr)
        return 1
    by_rule = count_by_rule(outdir)
    width = max(map(len, by_rule), default=10)
    for rule, count in sorted(by_rule.items()):
        print(f"{rule:<{width}}  {count}")
    print(f"{'total':<{width}}  {by_rule.total()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
