"""The delivery pipeline's cloud assembly, zipped as CodePipeline carries it, beside CloudFormation
actions' 256 MB input artifact limit (docs/operations.md, "Known limits").

CDK Pipelines hands every deploy action the synth step's whole output (`make synth TIER=pipeline`:
the templates of both stages and every staged asset). This synthesizes it in-process with the
sample config and placeholder accounts, zips it (deflate, as a build's artifact is), and prints
the zipped size, the headroom under the limit, and the largest parts by their zipped bytes.

    python bench/pipeline_artifact_bench.py          (make bench runs it)
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import zipfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]
from tools.inputs import cdk_context  # noqa: E402
from tools.synth import synthesize  # noqa: E402

LIMIT_BYTES = 256 * 1024 * 1024  # CodePipeline: the largest input artifact of a CloudFormation action
MB = 1024 * 1024
# A pipeline for placeholder accounts: what is synthesized does not depend on their values.
CONTEXT = {
    "tier": "pipeline",
    "blueprint.pipeline": {
        "enabled": True,
        "account": "111111111111",
        "connection_arn": "arn:aws:codeconnections:us-east-1:111111111111:connection/0f1e2d3c",
        "repository": "example-org/genai-platform",
    },
    "blueprint.sandbox.account": "222222222222",
    "blueprint.production.account": "333333333333",
}


def zipped(outdir: Path, archive: Path) -> Counter[str]:
    """Zip ``outdir`` into ``archive``; the compressed bytes of each top-level entry."""
    parts: Counter[str] = Counter()
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for path in sorted(outdir.rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(outdir))
        for info in out.infolist():
            parts[info.filename.split("/", 1)[0]] += info.compress_size
    return parts


def names(outdir: Path) -> dict[str, str]:
    """Each staged asset's folder -> what uses it, from the assemblies' asset manifests."""
    used_by: dict[str, set[str]] = {}
    for manifest in outdir.rglob("*.assets.json"):
        for asset in json.loads(manifest.read_text()).get("files", {}).values():
            folder = (manifest.parent / asset["source"]["path"]).resolve().relative_to(outdir.resolve()).parts[0]
            used_by.setdefault(folder, set()).add(asset.get("displayName", folder))
    return {folder: ", ".join(sorted(users)) for folder, users in used_by.items()}


def main() -> None:
    with tempfile.TemporaryDirectory() as work:
        outdir, archive = Path(work) / "cdk.out", Path(work) / "artifact.zip"
        started = time.perf_counter()
        synthesize(outdir, {**cdk_context(), **CONTEXT})
        synthesized = time.perf_counter() - started
        on_disk = sum(p.stat().st_size for p in outdir.rglob("*") if p.is_file())
        parts = zipped(outdir, archive)
        size = archive.stat().st_size
        labels = names(outdir)
    print(f"pipeline cloud assembly (synthesized in {synthesized:.0f} s): {on_disk / MB:.0f} MB on disk")
    print(
        f"zipped {size / MB:6.1f} MB of CloudFormation actions' {LIMIT_BYTES / MB:.0f} MB limit "
        f"({100 * size / LIMIT_BYTES:.0f}%, {(LIMIT_BYTES - size) / MB:.0f} MB of headroom)"
    )
    print("largest parts, zipped:")
    for name, compressed in parts.most_common(5):
        print(f"  {compressed / MB:6.1f} MB  {labels.get(name, name)[:100]}")


if __name__ == "__main__":
    main()
