"""tools/review.py end to end: the command ``make review`` runs, on a throwaway copy of the project.

test_review.py and test_review_paths.py run ``review()`` on edited templates; this runs the whole
path once: the BASE worktree, the two synths, ``cdk diff --template`` per stack, the report and the
exit code. The copy is a ``git clone --shared`` of this checkout's HEAD (BASE), so this checkout's
working tree and branches are never touched; it borrows the set-up ``make test`` made (``.venv``,
``node_modules``, ``build/``) through links, as the tool's own BASE worktree does, and carries this
checkout's ``tools/`` so the command under test is the one being edited. In the copy's working tree
a handler gets a comment and the gateway's guardrail grant one more action.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tools import review as rv

ROOT = Path(__file__).resolve().parents[2]
WIDENED = "bedrock:GetGuardrail"  # added to the gateway functions' guardrail grant
HANDLER = "lambdas/knowledge_search/handler.py"
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


def throwaway_copy(where: Path) -> Path:
    """A clone of this checkout's HEAD with its set-up linked in and its ``tools/`` copied over."""
    head = rv.git("rev-parse", "HEAD", cwd=ROOT).strip()
    rv.git("clone", "--quiet", "--shared", "--no-checkout", str(ROOT), str(where), cwd=ROOT)
    rv.git("checkout", "--quiet", "--detach", head, cwd=where)
    for name in rv.SETUP_LINKS:
        assert (ROOT / name).is_dir(), f"{name} is missing: `make setup` (or `make test`) makes it"
        (where / name).symlink_to(ROOT / name, target_is_directory=True)
    # A link is a file to git, so the checkout's `.venv/`-style ignore patterns do not cover it.
    with (where / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("".join(f"/{name}\n" for name in rv.SETUP_LINKS))
    shutil.copytree(ROOT / "tools", where / "tools", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
    return where


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: expected one {old!r}"
    path.write_text(text.replace(old, new))


def sections(report: str) -> dict[str, str]:
    """The report's level-2 sections by their heading."""
    parts = report.split("\n## ")[1:]
    return {part.split("\n", 1)[0]: part.split("\n", 1)[1] if "\n" in part else "" for part in parts}


def test_make_review_reports_a_widened_grant_and_a_handler_edit_and_exits_2(tmp_path: Path) -> None:
    repo = throwaway_copy(tmp_path / "repo")
    edit(repo / "stacks/production/gateway.py", "GUARDRAIL_ACTIONS = [", f'GUARDRAIL_ACTIONS = ["{WIDENED}", ')
    handler = repo / HANDLER
    handler.write_text(handler.read_text() + "# edited by the review's end-to-end test\n")
    out = tmp_path / "review.md"

    # As `make review BASE=HEAD` runs it in that checkout, with no credentials in the environment.
    env = {key: value for key, value in os.environ.items() if key not in CREDENTIALS}
    done = subprocess.run(
        [str(repo / ".venv/bin/python"), "tools/review.py", "--base", "HEAD", "--out", str(out)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )

    assert done.returncode == 2, done.stdout + done.stderr
    assert f"review: {out} (" in done.stdout
    assert "access broadens (exit 2)" in done.stdout
    report = sections(out.read_text())

    access = report["1. IAM and network access"]
    (gateway,) = [part for part in access.split("\n### ")[1:] if part.split(":", 1)[0].endswith("-production-gateway")]
    rows = [line for line in gateway.splitlines() if line.startswith("| + **broadens** |")]
    assert rows
    broadened = [line for line in access.splitlines() if "**broadens**" in line]
    # Every broadening row, in any stack, is the widened action on the guardrail, and nothing else.
    assert broadened == rows
    assert all(f"| `{WIDENED}` | ${{Guardrail.GuardrailArn}} |" in line for line in rows), rows

    code = report["4. Code"]
    assert "Changed in source: `lambdas/knowledge_search` (1)" in code
    packages = [line for line in code.splitlines() if line.startswith("| **")]
    (row,) = packages
    assert row.startswith("| **knowledge_search** | knowledge_search | ")
    assert row.endswith("| yes |")  # the template's asset hash changed with it
    # The tool's temporary BASE worktree is gone.
    assert rv.git("worktree", "list", "--porcelain", cwd=repo).count("worktree ") == 1
