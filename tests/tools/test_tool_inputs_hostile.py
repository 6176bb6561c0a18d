"""The tools' input files at their most hostile: JSON nested deeper than the decoder goes, golden
cases whose fields are of the wrong kind, templates with malformed intrinsics or nested and chained
past what the drawing follows, a README whose markers are out of order, the agent's settings
missing. Each is one line naming the file or field and what is wrong, a non-zero exit, no
traceback, and nothing written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from evaluation.evaluator import GOLDEN_SET, Call, evaluate, golden_set
from stacks.config import ConfigError, load_config
from tools import diagram, eval as evaluation, inputs, nag_report, promote

ROOT = Path(__file__).resolve().parents[2]
GOLDEN: list[dict[str, Any]] = json.loads(GOLDEN_SET.read_text())
# Deeper than json's decoder recurses (it stops at the interpreter's recursion limit).
TOO_DEEP = "[" * 100_000 + "]" * 100_000


def test_read_json_names_a_file_nested_deeper_than_the_decoder_goes(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + TOO_DEEP + "}")

    with pytest.raises(ValueError, match=r"^shown: nested too deep to read ") as raised:
        inputs.read_json(deep, ValueError, "shown")
    assert "\n" not in str(raised.value)


def test_cdk_context_names_a_cdk_json_with_an_integer_longer_than_python_converts(tmp_path: Path) -> None:
    """Python refuses to convert an integer of more than 4,300 digits (a ValueError, not a
    JSONDecodeError): the tools say which file, as for any unreadable JSON."""
    path = tmp_path / "cdk.json"
    path.write_text('{"context": {"blueprint": {"prefix": ' + "9" * 5000 + "}}}")

    with pytest.raises(
        ConfigError, match=r"^cdk\.json: not readable JSON \(Exceeds the limit \(4300 digits\)"
    ) as raised:
        inputs.cdk_context(path)
    assert "\n" not in str(raised.value)


def test_nag_report_names_a_metadata_file_nested_too_deep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    (tmp_path / "s.metadata.json").write_text('{"/s/Role": ' + TOO_DEEP + "}")

    assert nag_report.main([str(tmp_path)]) == 1

    captured = capsys.readouterr()
    assert captured.err.startswith(f"nag_report: {tmp_path / 's.metadata.json'}: nested too deep to read")
    assert captured.err.count("\n") == 1
    assert captured.out == ""


def golden_with(tmp_path: Path, *cases: dict[str, Any]) -> Path:
    """The golden set with ``cases`` appended, as a file."""
    path = tmp_path / "golden.json"
    path.write_text(json.dumps([*GOLDEN, *cases]))
    return path


ONE = GOLDEN[0]
BAD_CASES = [
    ({**ONE, "id": None}, '("id" is null, not text)'),
    ({**ONE, "id": ["refund-policy"]}, '("id" is ["refund-policy"], not text)'),
    ({**ONE, "id": " "}, '("id" is blank)'),
    ({**ONE, "id": GOLDEN[1]["id"]}, f'(id "{GOLDEN[1]["id"]}" given twice)'),
    ({**ONE, "id": "new", "prompt": 5}, '("prompt" is 5, not text)'),
    ({**ONE, "id": "new", "ignore_arguments": "page"}, '("ignore_arguments" is "page", not a list of argument names)'),
    ({**ONE, "id": "new", "ignore_arguments": [1]}, '("ignore_arguments" is [1], not a list of argument names)'),
    ({**ONE, "id": "new", "expected": "orders"}, '("expected" is "orders", not {"tool", "arguments"})'),
    (
        {**ONE, "id": "new", "expected": {"tool": "t", "arguments": []}},
        '("expected": "arguments" is [], not an object)',
    ),
    ({**ONE, "id": "new", "alternatives": [{"tool": None}]}, '("alternatives"[0]: "tool" is null, not text)'),
    ({**ONE, "id": "new", "alternatives": {"tool": "t"}}, '("alternatives" is {"tool": "t"}, not a list of'),
    ("refund-policy", "(a case that is a JSON text, not an object)"),
]


@pytest.mark.parametrize(("case", "said"), BAD_CASES)
def test_eval_names_the_golden_case_and_the_field_that_is_wrong(
    cdk_context: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], case: Any, said: str
) -> None:
    golden = golden_with(tmp_path, case)

    assert evaluation.main([], context=cdk_context, golden=golden) == 1

    captured = capsys.readouterr()
    assert captured.err.startswith(f"eval: {golden}: not a list of golden cases {said}")
    assert captured.err.endswith(f" in case {len(GOLDEN) + 1}\n")
    assert captured.err.count("\n") == 1
    assert captured.out == ""


@pytest.mark.parametrize(("case", "said"), BAD_CASES[:2])
def test_promote_fails_its_evaluation_gate_on_a_golden_case_of_the_wrong_kind(
    cdk_context: dict[str, Any], tmp_path: Path, case: Any, said: str
) -> None:
    """The gate read {None: case} or crashed on an unhashable id; now it fails naming the field."""
    config = load_config(cdk_context)
    golden = golden_with(tmp_path, case)

    gate = promote.evaluation_gate(config, config.workloads["support"], evaluation.TRACES, golden)

    assert not gate.passed
    assert gate.why.startswith(f"{golden}: not a list of golden cases {said}")


def test_a_golden_set_that_is_not_a_list_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^a JSON object, not a list$"):
        golden_set({"cases": GOLDEN})


def test_ignore_arguments_as_a_list_still_ignores_the_argument() -> None:
    """The refusal above is of a text only: a list of names is read as given, and its argument ignored."""
    expected = {"tool": "t", "arguments": {"q": "x"}}
    (case,) = golden_set([{"id": "c", "prompt": "p", "group": "g", "expected": expected, "ignore_arguments": ["page"]}])
    sent = Call("t", {"q": "x", "page": "2"})

    assert case.ignore_arguments == ("page",)
    assert evaluate([case], {"c": [sent]}).argument_accuracy == 1.0


def test_the_committed_golden_set_reads_as_before() -> None:
    cases = golden_set(GOLDEN)
    assert [case.id for case in cases] == [raw["id"] for raw in GOLDEN]
    assert all(
        case.ignore_arguments == tuple(raw.get("ignore_arguments", ["cursor"]))
        for case, raw in zip(cases, GOLDEN, strict=True)
    )


def assembly(folder: Path, resources: dict[str, Any] | str) -> Path:
    """A cloud assembly with one stack "s" of ``resources`` (or of that template text)."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    text = resources if isinstance(resources, str) else json.dumps({"Resources": resources})
    (folder / "s.template.json").write_text(text)
    return folder


def function(role: Any) -> dict[str, Any]:
    return {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Role": role}}}


def role_chain(length: int) -> dict[str, Any]:
    """A role each next role names, the last a function's; the first may send to a queue. The
    queue's edge belongs to whoever owns the first role: the function, found role by role."""
    roles = {
        f"R{i}": {"Type": "AWS::IAM::Role", "Properties": {"Path": {"Ref": f"R{i - 1}"}}} for i in range(1, length)
    }
    statement = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": {"Fn::GetAtt": ["Q", "Arn"]}}
    roles["R0"] = {
        "Type": "AWS::IAM::Role",
        "Properties": {"Policies": [{"PolicyDocument": {"Statement": [statement]}}]},
    }
    return {**roles, **function({"Ref": f"R{length - 1}"}), "Q": {"Type": "AWS::SQS::Queue", "Properties": {}}}


def nested_property(levels: int) -> str:
    """A template whose function's Environment nests ``levels`` objects deep (as text: json.dumps
    recurses too)."""
    deep = '{"a": ' * levels + "1" + "}" * levels
    return f'{{"Resources": {{"Fn": {{"Type": "AWS::Lambda::Function", "Properties": {{"Environment": {deep}}}}}}}}}'


@pytest.mark.parametrize(
    ("resources", "said"),
    [
        (function({"Fn::GetAtt": []}), "(ValueError: stack s: Fn::GetAtt of []: not [logical id, attribute])"),
        (function({"Fn::GetAtt": [["R"], "Arn"]}), "Fn::GetAtt of [['R'], 'Arn']: not [logical id, attribute]"),
        (function({"Fn::Sub": []}), "(ValueError: stack s: Fn::Sub of []: not [text, {variable: value}])"),
        (function({"Fn::Sub": ["${Fn}"]}), "Fn::Sub of ['${Fn}']: not [text, {variable: value}]"),
        (role_chain(2000), "a template not as CDK writes it (references chained too deep to follow)"),
    ],
)
def test_diagram_refuses_a_malformed_template_naming_it_and_writes_nothing(
    tmp_path: Path, drawn_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], resources: Any, said: str
) -> None:
    before = [path.read_bytes() for path in drawn_files]
    folder = assembly(tmp_path / "cdk.out", resources)

    assert diagram.main(["--assembly", str(folder)]) == 1

    err = capsys.readouterr().err
    assert err.startswith(f"diagram: --assembly {folder}: a template not as CDK writes it (")
    assert said in err
    assert err.endswith("; nothing written\n")
    assert err.count("\n") == 1
    assert [path.read_bytes() for path in drawn_files] == before


def test_diagram_refuses_a_template_nested_deeper_than_cdk_writes(
    tmp_path: Path, drawn_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """900 levels: json reads it, the drawing would recurse past the limit following references."""
    folder = assembly(tmp_path / "cdk.out", nested_property(900))
    before = [path.read_bytes() for path in drawn_files]

    assert diagram.main(["--assembly", str(folder)]) == 1

    assert capsys.readouterr().err == (
        f"diagram: {folder / 's.template.json'}: nested more than {diagram.MAX_TEMPLATE_DEPTH} levels deep: "
        "not a template as CDK writes it; nothing written\n"
    )
    assert [path.read_bytes() for path in drawn_files] == before


def test_diagram_still_draws_a_template_as_deep_as_its_limit(tmp_path: Path, drawn_files: tuple[Path, Path]) -> None:
    levels = diagram.MAX_TEMPLATE_DEPTH - 5  # the template's own levels around the property
    folder = assembly(tmp_path / "cdk.out", nested_property(levels))

    assert diagram.main(["--assembly", str(folder)]) == 0


@pytest.mark.parametrize(
    ("arrange", "said"),
    [
        ("end first", f"diagram: README.md: {diagram.README_END} comes before {diagram.README_BEGIN}"),
        ("begin twice", "markers are there more than once"),
        ("end twice", "markers are there more than once"),
    ],
)
def test_diagram_refuses_a_readme_whose_markers_are_out_of_place_and_writes_neither_file(
    tmp_path: Path, drawn_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], arrange: str, said: str
) -> None:
    _, readme = drawn_files
    text = readme.read_text()
    if arrange == "end first":
        text = text.replace(diagram.README_BEGIN, "\0").replace(diagram.README_END, diagram.README_BEGIN)
        text = text.replace("\0", diagram.README_END)
    else:
        marker = diagram.README_BEGIN if arrange == "begin twice" else diagram.README_END
        text += f"\n{marker}\n"
    readme.write_text(text)
    before = [path.read_bytes() for path in drawn_files]

    assert diagram.main(["--assembly", str(assembly(tmp_path / "cdk.out", {}))]) == 1

    err = capsys.readouterr().err
    assert said in err
    assert err.endswith("; nothing written\n")
    assert [path.read_bytes() for path in drawn_files] == before


def agent_dev_real(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`make agent-dev REAL=1` in ``env``; it stops before serving: a hang fails the test instead of
    holding the suite."""
    return subprocess.run(
        [sys.executable, "tools/agent_dev.py", "--real"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_real_agent_dev_run_without_the_agents_settings_names_them_and_stops() -> None:
    settings = ("AGENT_NAME", "TOOLS_GATEWAY_URL", "TOKEN_ISSUER", "TOKEN_CLIENT_ID", "GROUPS")
    env = {k: v for k, v in os.environ.items() if k not in settings} | {"AGENT_DEV_TOKEN": "not-a-token"}
    done = agent_dev_real(env)

    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("the agent's settings (agent/contract.py), from the environment with REAL=1: ")
    assert all(f"{name}: Field required" in line for name in settings)


def test_a_real_agent_dev_run_without_a_region_says_so_and_stops() -> None:
    settings = {
        "AGENT_NAME": "support_assistant",
        "TOOLS_GATEWAY_URL": "https://gateway.invalid/mcp",
        "TOKEN_ISSUER": "https://issuer.invalid",
        "TOKEN_CLIENT_ID": "client",
        "GROUPS": json.dumps({"application": "a", "environment": "e", "profile": "p", "environment_name": "n"}),
    }
    unset = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE")
    env = {k: v for k, v in os.environ.items() if k not in unset} | settings | {"AGENT_DEV_TOKEN": "not-a-token"}
    env["AWS_CONFIG_FILE"] = os.devnull  # no region from a config file either
    done = agent_dev_real(env)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == ["AWS_REGION: the region of the deployed agent is required with REAL=1"]
