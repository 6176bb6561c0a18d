"""The tools under hostile input: a path that is missing, a file where a folder belongs, a file that
is not JSON or JSON of the wrong shape, an unknown name, a place that cannot be written. Each is one
message on stderr naming what was wrong, a non-zero exit code, no traceback, and nothing written
half-way: the docs the diagram redraws, or a workload's stage without its promotion report."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_promote import clean_synth
from tools import diagram, nag_report, promote, smoke

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "workloads" / "support.json"

# What a *.metadata.json of a cloud assembly may be instead of {construct path: [entries]}.
BAD_METADATA = [
    "not json",
    "",
    "[1]",
    '{"/s/Role": {}}',
    '{"/s/Role": [1]}',
    '{"/s/Role": [{"type": "aws:cdk:acknowledged-rules", "data": ["AwsSolutions-IAM5"]}]}',
]


def assembly(folder: Path, templates: dict[str, str] | None = None) -> Path:
    """A cloud assembly folder: a manifest and the given templates (file stem: text)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text("{}")
    for stem, text in (templates or {}).items():
        (folder / f"{stem}.template.json").write_text(text)
    return folder


@pytest.mark.parametrize("content", BAD_METADATA)
def test_nag_report_names_a_metadata_file_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    (assembly(tmp_path) / "s.metadata.json").write_text(content)

    assert nag_report.main([str(tmp_path)]) == 1

    captured = capsys.readouterr()
    assert captured.err.startswith(f"nag_report: {tmp_path / 's.metadata.json'}: ")
    assert captured.err.count("\n") == 1
    assert captured.out == ""


def test_nag_report_given_a_file_says_it_is_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    given = tmp_path / "cdk.out"
    given.write_text("{}")

    assert nag_report.main([str(given)]) == 1

    assert f"nag_report: {given}: not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given", "said"),
    [
        ("missing", "missing: no such directory"),
        ("file.json", "file.json: not a directory"),
        ("empty", "empty: no manifest.json"),
        ("no-templates", "no-templates: no *.template.json"),
        ("not-json", "s.template.json: not JSON"),
        ("a-list", "s.template.json: not a CloudFormation template"),
        ("odd-resources", "odd-resources: a template not as CDK writes it"),
    ],
)
def test_diagram_refuses_an_assembly_it_cannot_draw_and_writes_nothing(
    tmp_path: Path, drawn_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], given: str, said: str
) -> None:
    (tmp_path / "file.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    assembly(tmp_path / "no-templates")
    assembly(tmp_path / "not-json", {"s": "{"})
    assembly(tmp_path / "a-list", {"s": "[]"})
    assembly(tmp_path / "odd-resources", {"s": '{"Resources": {"Fn": 1}}'})
    before = [path.read_bytes() for path in drawn_files]

    assert diagram.main(["--assembly", str(tmp_path / given)]) == 1

    err = capsys.readouterr().err
    assert err.startswith("diagram: ")
    assert said in err
    assert err.rstrip().endswith("nothing written")
    assert [path.read_bytes() for path in drawn_files] == before


def test_diagram_without_the_readme_markers_writes_neither_file(
    tmp_path: Path, drawn_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    page, readme = drawn_files
    readme.write_text("# A README without the architecture markers\n")
    before = page.read_bytes()

    assert diagram.main(["--assembly", str(assembly(tmp_path / "cdk.out", {"s": '{"Resources": {}}'}))]) == 1

    assert f"diagram: README.md: no {diagram.README_BEGIN}" in capsys.readouterr().err
    assert page.read_bytes() == before


def test_diagram_draws_a_good_assembly_into_both_files(tmp_path: Path, drawn_files: tuple[Path, Path]) -> None:
    """The refusals above are of bad input only: a well-formed assembly is drawn."""
    page, readme = drawn_files
    page.write_text("stale")

    assert diagram.main(["--assembly", str(assembly(tmp_path / "cdk.out", {"s": '{"Resources": {}}'}))]) == 0

    assert page.read_text().startswith("# Architecture")
    assert diagram.README_BEGIN in readme.read_text()


def test_diagram_runs_as_the_script_its_docstring_shows() -> None:
    done = subprocess.run(
        [sys.executable, "tools/diagram.py", "--help"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert "--assembly" in done.stdout


@pytest.fixture
def workload(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[dict[str, Any], Path]]:
    """cdk.json's context reading workloads from a copy of workloads/ inside the repository (load_config
    reads folders relative to it, ignored by git), and the copy of support.json promote changes;
    promotion reports go to a folder under tmp_path."""
    folder = ROOT / "build" / "test-tools-hostile-workloads"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copyfile(SUPPORT, folder / "support.json")
    monkeypatch.setattr(promote, "REPORTS", tmp_path / "promotions")
    context = json.loads((ROOT / "cdk.json").read_text())["context"]
    yield {**context, "blueprint.workloads_dir": str(folder.relative_to(ROOT))}, folder / "support.json"
    shutil.rmtree(folder, ignore_errors=True)


def test_promote_that_passes_writes_the_report_and_the_stage(
    workload: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The set-up of the tests below reaches the writes: every gate passes."""
    context, declared = workload

    assert promote.main(["support"], context=context, synth=clean_synth, lint=lambda _: []) == 0

    assert json.loads(declared.read_text())["stage"] == "production"
    assert (promote.REPORTS / "support.md").read_text().startswith("# Promotion of support to production")


def test_promote_that_cannot_write_its_report_leaves_the_stage_unchanged(
    workload: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    context, declared = workload
    promote.REPORTS.write_text("a file where the reports folder belongs")
    before = declared.read_bytes()

    assert promote.main(["support"], context=context, synth=clean_synth, lint=lambda _: []) == 1

    err = capsys.readouterr().err
    assert f"promote: {promote.REPORTS} is not a directory" in err
    assert "support stays in sandbox stage, nothing written" in err
    assert declared.read_bytes() == before


def test_promote_whose_report_is_a_folder_leaves_the_stage_unchanged(
    workload: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    context, declared = workload
    (promote.REPORTS / "support.md").mkdir(parents=True)
    before = declared.read_bytes()

    assert promote.main(["support"], context=context, synth=clean_synth, lint=lambda _: []) == 1

    assert "support.md" in capsys.readouterr().err
    assert declared.read_bytes() == before


def test_promote_whose_workload_file_cannot_be_written_leaves_no_report(
    workload: tuple[dict[str, Any], Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    context, declared = workload
    before = declared.read_bytes()
    real_write = Path.write_text

    def write_text(path: Path, *args: Any, **kwargs: Any) -> int:
        if path == declared:
            raise PermissionError(13, "Permission denied", str(path))
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)

    assert promote.main(["support"], context=context, synth=clean_synth, lint=lambda _: []) == 1

    assert "Permission denied" in capsys.readouterr().err
    assert declared.read_bytes() == before
    assert not (promote.REPORTS / "support.md").exists()


def test_promote_whose_synth_of_the_current_config_fails_says_so_and_changes_nothing(
    workload: tuple[dict[str, Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The gates' synth (of the promoted config) passes; the one of the current config, for the
    report's "what changes", raises."""
    context, declared = workload
    calls: list[Any] = []

    def synth(given: Any) -> dict[str, dict[str, Any]]:
        calls.append(given)
        if len(calls) > 1:
            raise RuntimeError("Validation failed with the following errors:\n  [x] AwsSolutions-S1")
        return clean_synth(given)

    before = declared.read_bytes()

    assert promote.main(["support"], context=context, synth=synth, lint=lambda _: []) == 1

    err = capsys.readouterr().err
    assert "promote: the synth of the current config failed: Validation failed" in err
    assert "Traceback" not in err
    assert declared.read_bytes() == before
    assert not promote.REPORTS.exists()


class NoCredentials:
    def get_credentials(self) -> None:
        return None


def test_smoke_refuses_an_unknown_group_before_it_asks_for_credentials(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--group", "nobody"], session=NoCredentials()) == 2

    captured = capsys.readouterr()
    assert captured.err.startswith("make smoke: --group nobody: not a configured group; known: ")
    assert captured.err.count("\n") == 1
    assert captured.out == ""
