"""Count the cdk-nag acknowledgements in cdk.out by rule (run `make synth` first)."""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path


def acknowledgements(outdir: Path) -> list[tuple[str, str, str]]:
    """(construct path, rule id, reason) for every acknowledged finding in a cloud assembly."""
    found: list[tuple[str, str, str]] = []
    for metadata in sorted(outdir.glob("*.metadata.json")):
        for path, entries in json.loads(metadata.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    found.extend((path, rule.removeprefix("Annotation::"), why) for rule, why in entry["data"].items())
    return found


def count_by_rule(outdir: Path) -> Counter[str]:
    """Acknowledgements per rule, with granular IAM findings ("IAM5[Resource::...]") folded."""
    return Counter(re.sub(r"\[.*\]$", "", rule) for _, rule, _ in acknowledgements(outdir))


def main(outdir: Path) -> None:
    by_rule = count_by_rule(outdir)
    width = max(map(len, by_rule), default=10)
    for rule, count in sorted(by_rule.items()):
        print(f"{rule:<{width}}  {count}")
    print(f"{'total':<{width}}  {by_rule.total()}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "cdk.out"))
