"""The tools' refusals: a broken workload file, golden set or trace file, a bad argument or a workload
promote cannot change is one message and an exit code, never a traceback, and never after a synth."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.config import load_config
from tools import eval as evaluation, inputs, nag_report, promote, smoke

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = json.loads((ROOT / "workloads" / "support.json").read_text())


class NoSynth:
    """A synth that must not run: records the call and fails."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, context: Any) -> dict[str, dict[str, Any]]:
        self.calls += 1
        raise AssertionError("synthesized")


@pytest.fixture
def workloads_dir() -> Iterator[Path]:
    """A workloads folder inside the repository (load_config reads folders relative to it), ignored by git."""
    folder = ROOT / "build" / "test-tool-errors-workloads"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def with_workloads(cdk_context: dict[str, Any], folder: Path) -> dict[str, Any]:
    return {**cdk_context, "blueprint.workloads_dir": str(folder.relative_to(ROOT))}


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('{"team": "x",', "blueprint.workloads.broken: build/test-tool-errors-workloads/broken.json is not JSON"),
        (json.dumps({**SUPPORT, "stage": "shipped"}), "blueprint.workloads.broken.stage"),
    ],
)
def test_a_broken_workload_file_is_the_config_error_not_a_traceback(
    cdk_context: dict[str, Any], workloads_dir: Path, capsys: pytest.CaptureFixture[str], content: str, said: str
) -> None:
    (workloads_dir / "broken.json").write_text(content)
    context = with_workloads(cdk_context, workloads_dir)
    synth = NoSynth()

    assert evaluation.main([], context=context) == 1
    assert said in capsys.readouterr().err
    assert promote.main(["broken"], context=context, synth=synth, lint=lambda _: []) == 1
    err = capsys.readouterr().err
    assert said in err
    assert "Traceback" not in err
    assert synth.calls == 0


def test_eval_names_a_missing_or_corrupt_golden_set_or_trace_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"case": "refund-policy", "tool_calls": []}) + "\n{not json\n")
    golden = tmp_path / "golden.json"

    assert evaluation.main([], traces=traces, golden=golden) == 1
    assert f"{golden}: no such file" in capsys.readouterr().err
    golden.write_text("[{")
    assert evaluation.main([], traces=traces, golden=golden) == 1
    assert f"{golden}: not JSON" in capsys.readouterr().err
    golden.write_text('[{"prompt": "p"}]')
    assert evaluation.main([], traces=traces, golden=golden) == 1
    assert f"{golden}: not a list of golden cases (missing key 'id')" in capsys.readouterr().err

    assert evaluation.main([], traces=traces) == 1
    assert f"{traces}: line 2 is not JSON" in capsys.readouterr().err
    assert evaluation.main([], traces=tmp_path / "none.jsonl") == 1
    assert "none.jsonl: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("line", ['{"case": ' + "9" * 5000 + "}", "[" * 100_000])
def test_eval_names_a_trace_line_no_reader_here_can_take(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    """JSON, but past Python's digit limit or its recursion: the line is named, not a traceback."""
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"case": "refund-policy", "tool_calls": []}) + "\n" + line + "\n")
    assert evaluation.main([], traces=traces) == 1
    assert f"{traces}: line 2 is not JSON this reader can take" in capsys.readouterr().err


def test_eval_takes_no_arguments_but_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        evaluation.main(["--help"])
    assert done.value.code == 0
    assert "golden set" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        evaluation.main(["--floor", "0"])
    assert done.value.code == 2
    assert "unrecognized arguments: --floor 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "stage", "said"),
    [
        ("support", "production", "promote: support is already in production stage"),
        ("nosuch", "sandbox", "promote: no workload nosuch (known: support)"),
    ],
)
def test_promote_refuses_before_any_synth(
    cdk_context: dict[str, Any], capsys: pytest.CaptureFixture[str], name: str, stage: str, said: str
) -> None:
    context = {**cdk_context, "blueprint.workloads.support.stage": stage}
    synth = NoSynth()

    assert promote.main([name], context=context, synth=synth, lint=lambda _: []) == 1

    assert capsys.readouterr().err.strip().startswith(said)
    assert synth.calls == 0


@pytest.mark.parametrize("name", ["Sup port", "x;echo INJECTED", "-h", "a", 'a"b'])
def test_promote_refuses_an_invalid_workload_name_with_the_name_rule(
    cdk_context: dict[str, Any], capsys: pytest.CaptureFixture[str], name: str
) -> None:
    synth = NoSynth()
    with pytest.raises(SystemExit) as done:
        promote.main(["--", name], context=cdk_context, synth=synth)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"workload name {name!r}: must be 2 to 12 lowercase letters or digits, starting with a letter" in err
    assert "declare" not in err
    assert synth.calls == 0


def test_promote_does_not_edit_a_file_that_cdk_json_overrides(
    cdk_context: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A declaration in cdk.json's blueprint.workloads wins over workloads/<name>.json: promote says
    where to change the stage by hand, before any synth."""
    context = copy.deepcopy(cdk_context)
    context["blueprint"]["workloads"] = {"support": SUPPORT}
    synth = NoSynth()

    assert promote.main(["support"], context=context, synth=synth, lint=lambda _: []) == 1

    err = capsys.readouterr().err
    assert "support is declared in cdk.json's blueprint.workloads" in err
    assert '"stage" to "production" there by hand' in err
    assert synth.calls == 0


@pytest.mark.parametrize("how", ["the whole map as one key", "blueprint as a JSON string"])
def test_promote_does_not_edit_a_file_that_a_context_key_overrides(
    cdk_context: dict[str, Any], capsys: pytest.CaptureFixture[str], how: str
) -> None:
    """``-c blueprint.workloads='{...}'`` is applied after the files are read, and so is a
    ``blueprint`` given whole as JSON text: either wins over workloads/<name>.json, so editing the
    file would promote nothing while promote said it had."""
    context = copy.deepcopy(cdk_context)
    if how == "the whole map as one key":
        context["blueprint.workloads"] = {"support": SUPPORT}
        said = "support is also set by context key blueprint.workloads"
    else:
        context["blueprint"] = json.dumps({**context["blueprint"], "workloads": {"support": SUPPORT}})
        said = "support is declared in cdk.json's blueprint.workloads"
    synth = NoSynth()

    assert promote.main(["support"], context=context, synth=synth, lint=lambda _: []) == 1

    assert said in capsys.readouterr().err
    assert synth.calls == 0


def test_a_whole_map_given_as_one_context_key_is_not_written_into_by_a_deeper_one(cdk_context: dict[str, Any]) -> None:
    """Loading a config never changes the context it was given (promote loads its promoted one)."""
    context = copy.deepcopy(cdk_context)
    context["blueprint.workloads"] = {"support": copy.deepcopy(SUPPORT)}
    context["blueprint.workloads.support.stage"] = "production"
    load_config(context)
    assert context["blueprint.workloads"] == {"support": SUPPORT}


def test_promote_with_no_workloads_dir_stops_before_any_synth(
    cdk_context: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    context = copy.deepcopy(cdk_context)
    context["blueprint"]["workloads_dir"] = None
    synth = NoSynth()

    assert promote.main(["support"], context=context, synth=synth, lint=lambda _: []) == 1

    err = capsys.readouterr().err
    assert err.startswith("promote: ")
    assert "Traceback" not in err
    assert synth.calls == 0


def test_nag_report_reads_its_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        nag_report.main(["--help"])
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out

    assert nag_report.main([str(tmp_path / "nothing")]) == 1
    assert "nothing: no such directory" in capsys.readouterr().err
    assert nag_report.main([str(tmp_path)]) == 1
    assert "no manifest.json: not a synthesized cloud assembly" in capsys.readouterr().err

    (tmp_path / "manifest.json").write_text("{}")
    acknowledged = {"type": "aws:cdk:acknowledged-rules", "data": {"AwsSolutions-IAM5[Resource::*]": "why"}}
    (tmp_path / "s.metadata.json").write_text(json.dumps({"/s/Role": [acknowledged]}))
    assert nag_report.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == ["AwsSolutions-IAM5", "1", "total", "1"]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('{"context": {', "cdk.json: not JSON (Expecting property name enclosed in double quotes, line 1)"),
        ("[]", 'cdk.json: expected an object with a "context" object'),
        ('{"context": "blueprint"}', 'cdk.json: expected an object with a "context" object'),
        (None, "cdk.json: no such file"),
    ],
)
def test_a_broken_cdk_json_is_one_line_from_every_tool_that_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], content: str | None, said: str
) -> None:
    if content is not None:
        (tmp_path / "cdk.json").write_text(content)
    monkeypatch.setattr(inputs, "ROOT", tmp_path)
    synth = NoSynth()

    assert evaluation.main([]) == 1
    assert capsys.readouterr().err == f"eval: {said}\n"
    assert promote.main(["support"], synth=synth) == 1
    assert capsys.readouterr().err == f"promote: {said}\n"
    assert smoke.main([]) == 2
    assert capsys.readouterr().err == f"make smoke: {said}\n"
    assert synth.calls == 0
