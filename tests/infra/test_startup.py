"""The app's start-up (stacks/startup.py, stacks/jsii_node.py, stacks/template_validation.py): the
template validator it starts in a process of its own is the only one CDK runs, over every stack,
and reports what CDK's own validator reports; a validator that fails fails synth."""

from __future__ import annotations

import ast
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast

import jsii
import pytest
from aws_cdk import IPolicyValidationPlugin, PolicyValidationPluginReport

from stacks import jsii_node, startup
from stacks.template_validation import (
    RemoteTemplateValidator,
    StartsValidation,
    ValidatorError,
    library_bundle,
    library_root,
)
from tests.conftest import ROOT

FLAG = "@aws-cdk/core:validateAgainstDefaultRules"  # on in cdk.json
ENV = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}


def run_python(script: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=ROOT,
        env={**ENV, **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_node_options_add_the_preload_once_after_the_users_own() -> None:
    option = jsii_node.node_options(None)
    assert option == f'--require "{jsii_node.PRELOAD}"'
    assert jsii_node.node_options("--max-old-space-size=100") == f"--max-old-space-size=100 {option}"
    assert jsii_node.node_options(f"--trace-warnings {option}") == f"--trace-warnings {option}"
    spaced = jsii_node.node_options(None, Path('/a dir/with "quote"/x.cjs'))
    assert spaced == '--require "/a dir/with \\"quote\\"/x.cjs"'


def test_node_loads_the_preload_from_node_options() -> None:
    """The options as start() sets them: Node parses them and runs the preload (a wrong path or
    quoting would stop Node before it runs anything)."""
    result = subprocess.run(
        ["node", "-e", "console.log(JSON.stringify(Object.keys(require.cache)))"],
        env={**ENV, **jsii_node.configure({})},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert str(jsii_node.PRELOAD) in json.loads(result.stdout)


def test_the_config_package_imports_neither_jsii_nor_a_functions_run_time() -> None:
    """Contract modules import only the standard library and pydantic (shared/contract.py): the
    app reads them at every synth, so an AWS SDK or HTTP client there would cost every synth."""
    heavy = ("jsii", "aws_cdk", "boto3", "botocore", "urllib3", "aws_lambda_powertools")
    result = run_python(f"import sys, stacks.config; print([m for m in {heavy!r} if m in sys.modules])")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# Two stacks, each with a property CloudFormation's schema does not have (E3002) on a resource no
# cdk-nag rule looks at; the rule packs as the app registers them.
VALIDATED_APP = """
    import json, os, sys
    from stacks import startup
    if not os.environ.get("NO_START"):
        startup.start()
    from aws_cdk import App, CfnResource, Stack
    from stacks.shared.nag import add_rule_packs

    validator = startup.template_validator()
    app = App(outdir=os.environ["OUTDIR"], builtin_cloud_formation_validation=validator is None,
              context=json.loads(os.environ.get("CONTEXT", "{}")))
    for name in os.environ.get("STACKS", "One,Two").split(","):
        CfnResource(Stack(app, name), "Parameter", type="AWS::SSM::Parameter",
                    properties={"Type": "String", "Value": "v", **({"NotAProperty": name} if os.environ.get("BAD") else {})})
    add_rule_packs(app)
    if os.environ.get("KILL"):  # the validator's process dies before synth asks it anything
        validator._process.kill()
        validator._process.wait()
    # The app's own plugins (CDK's built-in validator is not among them); the only reader jsii has.
    registered = [plugin.name for plugin in app.policy_validation_beta1]
    app.synth()
    print(json.dumps({"built_early": validator is not None, "registered": registered}))
"""


def validation_report(outdir: Path) -> list[dict[str, Any]]:
    reports: list[dict[str, Any]] = json.loads((outdir / "validation-report.json").read_text())["pluginReports"]
    return reports


def cfn_validate_reports(outdir: Path) -> list[dict[str, Any]]:
    return [r for r in validation_report(outdir) if r["pluginName"] == "CloudFormation Validate"]


def test_the_validators_process_runs_over_every_stack_and_is_the_only_validator(tmp_path: Path) -> None:
    result = run_python(VALIDATED_APP, OUTDIR=str(tmp_path), BAD="1")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "built_early": True,
        "registered": ["AwsSolutions", "NIST.800.53.R5", "CloudFormation Validate"],
    }
    reports = cfn_validate_reports(tmp_path)
    assert len(reports) == 1, "CDK ran its built-in validator beside the app's"
    flagged = {
        construct["cloudFormationResource"]["templatePath"]
        for violation in reports[0]["violations"]
        if "NotAProperty" in violation["description"]
        for construct in violation["violatingConstructs"]
    }
    assert flagged == {"One.template.json", "Two.template.json"}


def test_its_report_is_cdks_own_validators_report(tmp_path: Path) -> None:
    """The same app synthesized with CDK's built-in validator (no start()) and with the validator's
    own process: the same findings, word for word, on the same resources."""
    reports = {}
    for arm, env in (("builtin", {"NO_START": "1"}), ("own process", {})):
        outdir = tmp_path / arm.replace(" ", "-")
        result = run_python(VALIDATED_APP, OUTDIR=str(outdir), BAD="1", **env)
        assert result.returncode == 0, result.stderr
        reports[arm] = cfn_validate_reports(outdir)
    assert reports["own process"] == reports["builtin"]
    (builtin,) = reports["builtin"]
    assert builtin["violations"], "the app has a finding to compare"


def test_a_finding_fails_synth_under_the_apps_validation_flag(tmp_path: Path) -> None:
    """cdk.json's @aws-cdk/core:validateAgainstDefaultRules makes the validator's errors fail synth,
    as they would with CDK's own validator (the report carries CDK's plugin name)."""
    result = run_python(VALIDATED_APP, OUTDIR=str(tmp_path), BAD="1", STACKS="One", CONTEXT=json.dumps({FLAG: True}))
    assert result.returncode != 0
    assert "NotAProperty" in result.stderr
    assert "CloudFormation Validate" in result.stderr


def test_a_validator_that_died_fails_synth_with_the_reason(tmp_path: Path) -> None:
    result = run_python(VALIDATED_APP, OUTDIR=str(tmp_path), KILL="1", CONTEXT=json.dumps({FLAG: True}))
    assert result.returncode != 0
    assert "failed: the template validator exited (code -9)" in result.stderr
    (report,) = cfn_validate_reports(tmp_path)
    assert (report["conclusion"], report["violations"]) == ("failure", [])
    assert report["metadata"]["error"] == (
        "Validation plugin 'CloudFormation Validate' failed: the template validator exited (code -9)"
    )


def test_a_validator_that_does_not_answer_is_an_error_not_a_pass(tmp_path: Path) -> None:
    silent = tmp_path / "silent.cjs"
    silent.write_text("process.stdin.resume();\n")  # reads every request, answers none
    validator = RemoteTemplateValidator(tmp_path, worker=silent, answer_seconds=0.2)
    try:
        with pytest.raises(ValidatorError, match="did not answer"):
            validator.validate(cast(Any, SimpleNamespace(stack_templates=[], template_paths=[])))
        assert (validator.version, validator.rule_ids) == (None, None)  # read by CDK's failure report
    finally:
        validator.close()


def test_closing_ends_a_validator_that_would_run_on(tmp_path: Path) -> None:
    """At exit (synth done, or stopped early on a configuration error while the engine still
    builds) the worker is ended and reaped, not waited on or left behind."""
    endless = tmp_path / "endless.cjs"
    endless.write_text("setInterval(() => {}, 1000);\n")  # ignores its input closing
    validator = RemoteTemplateValidator(tmp_path, worker=endless)
    closing = threading.Thread(target=validator.close)
    closing.start()
    closing.join(timeout=60)
    assert not closing.is_alive()
    assert validator._process.returncode is not None


def test_a_validator_that_cannot_load_cdk_says_so(tmp_path: Path) -> None:
    validator = RemoteTemplateValidator(tmp_path / "no-such-library")
    try:
        with pytest.raises(ValidatorError, match=r"cannot build CDK's template validator from .*no-such-library"):
            validator.validate(cast(Any, SimpleNamespace(stack_templates=[], template_paths=[])))
    finally:
        validator.close()


def test_the_library_is_unpacked_once_with_only_what_the_validator_loads(tmp_path: Path) -> None:
    bundle = tmp_path / "aws-cdk-lib@9.9.9.jsii.tgz"
    with tarfile.open(bundle, "w:gz") as archive:
        for name in ("package/package.json", "package/core/lib/validation/x.js", "package/aws-s3/lib/y.js"):
            data = name.encode()
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    package = library_root(bundle, cache=tmp_path / "cache")
    assert package == tmp_path / "cache" / "aws-cdk-lib@9.9.9" / "package"
    unpacked = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
    assert unpacked == ["core/lib/validation/x.js", "package.json"]
    bundle.unlink()  # a second call reads nothing from it
    assert library_root(bundle, cache=tmp_path / "cache") == package
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["aws-cdk-lib@9.9.9"]  # no staging left


def test_the_library_is_the_one_the_python_bindings_carry() -> None:
    assert library_bundle().name == f"aws-cdk-lib@{importlib.metadata.version('aws-cdk-lib')}.jsii.tgz"
    assert (library_root() / "core/lib/validation/cloudformation-validate-plugin.js").is_file()


def test_with_validation_off_no_validator_is_started_or_run(tmp_path: Path) -> None:
    result = run_python(VALIDATED_APP, OUTDIR=str(tmp_path), CDK_VALIDATION="false")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {
        "built_early": False,
        "registered": ["AwsSolutions", "NIST.800.53.R5"],
    }
    assert "CloudFormation Validate" not in json.dumps(validation_report(tmp_path))


@pytest.mark.parametrize("setting", ["true", None])
def test_without_start_there_is_no_validator_process(setting: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests and tools build the app without start(): CDK's own validator applies as before."""
    if setting is None:
        monkeypatch.delenv("CDK_VALIDATION", raising=False)
    else:
        monkeypatch.setenv("CDK_VALIDATION", setting)
    assert startup.template_validator() is None


# A worker that answers in order, naming in each report which request (by count) it answers and
# for which templates: the tests below read who answered what from the rule name.
COUNTING_WORKER = """
const readline = require("node:readline");
let asked = 0;
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const request = JSON.parse(line);
  asked += 1;
  const reply = request.describe
    ? { version: "counting", ruleIds: [] }
    : { report: { success: true, violations: [{ ruleName: `${asked}:${request.validate.map((s) => s.templatePath).join(",")}`,
        description: "which request", violatingResources: [] }] } };
  process.stdout.write(JSON.stringify(reply) + "\\n");
});
"""


def templates(*paths: str) -> Any:
    stacks = [
        SimpleNamespace(stack_construct_path=path, template_path=path, account_id=None, region=None) for path in paths
    ]
    return cast(Any, SimpleNamespace(stack_templates=stacks, template_paths=list(paths)))


def answered(report: Any) -> str:
    (violation,) = report.violations
    return str(violation.rule_name)


@pytest.fixture
def counting_validator(tmp_path: Path) -> Any:
    worker = tmp_path / "counting.cjs"
    worker.write_text(COUNTING_WORKER)
    validator = RemoteTemplateValidator(tmp_path, worker=worker, answer_seconds=60)
    yield validator
    validator.close()


def test_templates_started_early_are_validated_once(counting_validator: RemoteTemplateValidator) -> None:
    """StartsValidation hands the templates over as the first pack runs: validate() then reads that
    answer (request 2, after the description) instead of asking again."""
    counting_validator.start(templates("One.template.json", "Two.template.json"))
    counting_validator.start(templates("One.template.json", "Two.template.json"))  # a second pack: nothing sent
    assert answered(counting_validator.validate(templates("One.template.json", "Two.template.json"))) == (
        "2:One.template.json,Two.template.json"
    )
    assert counting_validator.version == "counting"  # asked before the templates: no third request between
    assert answered(counting_validator.validate(templates("Three.template.json"))) == "3:Three.template.json"


def test_templates_other_than_those_started_are_validated_themselves(
    counting_validator: RemoteTemplateValidator,
) -> None:
    counting_validator.start(templates("One.template.json"))
    assert answered(counting_validator.validate(templates("Two.template.json"))) == "3:Two.template.json"


def test_a_pack_that_starts_the_validator_keeps_its_name_rules_and_report(
    counting_validator: RemoteTemplateValidator,
) -> None:
    calls: list[Any] = []
    report = PolicyValidationPluginReport(success=False, violations=[])

    @jsii.implements(IPolicyValidationPlugin)
    class Pack:
        name = "AwsSolutions"
        version = "3.0.2"
        rule_ids: ClassVar[list[str]] = ["AwsSolutions-IAM4"]

        def validate(self, context: Any) -> PolicyValidationPluginReport:
            calls.append(context)
            return report

    context = templates("One.template.json")
    pack = StartsValidation(Pack(), counting_validator)
    assert (pack.name, pack.version, pack.rule_ids) == ("AwsSolutions", "3.0.2", ["AwsSolutions-IAM4"])
    assert pack.validate(context) is report
    assert calls == [context]
    assert answered(counting_validator.validate(context)) == "2:One.template.json"


def test_start_turns_the_cyclic_collector_off_before_aws_cdk_is_imported() -> None:
    """The synth process skips the collector's passes over aws_cdk's modules as they are imported
    (stacks/startup.py says why); tests and tools, which never call start(), keep it."""
    result = run_python(
        """
        import gc, sys
        from stacks import startup
        before = gc.isenabled()
        startup.start()
        print(before, gc.isenabled(), 'aws_cdk' in sys.modules)
        """,
        CDK_VALIDATION="false",  # start() then imports nothing from aws_cdk itself
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "False"]


def test_start_freezes_what_it_built_at_exit() -> None:
    """At exit the synth's objects are frozen (gc.freeze), so the interpreter's last collection
    does not walk them (about 0.3 s of a synth); handlers registered before start() run after."""
    result = run_python(
        """
        import atexit, gc
        atexit.register(lambda: print(gc.get_freeze_count() > 0))
        from stacks import startup
        startup.start()
        print(gc.get_freeze_count() > 0)
        """,
        CDK_VALIDATION="false",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


# --- The validator's result cache (template_validation.cjs) ---------------------------------------


# One resource with a property CloudFormation's schema does not have (E3002), as a template.
def write_template(path: Path, name: str) -> Path:
    path.write_text(
        json.dumps(
            {
                "Resources": {
                    "Parameter": {
                        "Type": "AWS::SSM::Parameter",
                        "Properties": {"Type": "String", "Value": "v", "NotAProperty": name},
                    }
                }
            }
        )
    )
    return path


def validated(validator: RemoteTemplateValidator, *paths: Path) -> PolicyValidationPluginReport:
    return validator.validate(templates(*map(str, paths)))


def rule_resources(report: PolicyValidationPluginReport) -> dict[str, list[str]]:
    return {
        violation.rule_name: [Path(str(r.template_path)).name for r in violation.violating_resources]
        for violation in report.violations
    }


@pytest.fixture
def two_templates(tmp_path: Path) -> tuple[Path, Path]:
    return write_template(tmp_path / "One.template.json", "a"), write_template(tmp_path / "Two.template.json", "b")


def real_validator(cache: Path | None) -> RemoteTemplateValidator:
    return RemoteTemplateValidator(library_root(), cache=cache)


def test_a_cached_report_is_the_report_cdks_plugin_makes_over_all_the_templates(
    tmp_path: Path, two_templates: tuple[Path, Path]
) -> None:
    """Validated one template at a time and merged (same rule and description: one violation
    listing each template's resource, in order), cold cache and warm, the report is the one the
    plugin makes over both templates at once, without a cache."""
    reports = []
    for cache in (None, tmp_path / "results", tmp_path / "results"):
        validator = real_validator(cache)
        try:
            reports.append(validated(validator, *two_templates))
        finally:
            validator.close()
    assert reports[0] == reports[1] == reports[2]
    assert ["One.template.json", "Two.template.json"] in rule_resources(reports[0]).values()
    assert len(list((tmp_path / "results").iterdir())) == 2  # one file per stack


def test_a_template_is_validated_again_only_when_its_key_changes(
    tmp_path: Path, two_templates: tuple[Path, Path]
) -> None:
    """A stack's cached findings are read while its template's bytes (and request) are unchanged:
    findings planted in the cache come back; once the template changes, the engine reads it again."""
    one, two = two_templates
    cache = tmp_path / "results"
    validator = real_validator(cache)
    try:
        validated(validator, one, two)
        for file in cache.iterdir():
            entry = json.loads(file.read_text())
            entry["violations"] = [{"ruleName": "PLANTED", "description": "from the cache", "severity": "warning",
                                    "violatingResources": [{"templatePath": "x", "locations": []}]}]  # fmt: skip
            file.write_text(json.dumps(entry))
        assert list(rule_resources(validated(validator, one, two))) == ["PLANTED"]
        write_template(two, "changed")
        fresh = rule_resources(validated(validator, one, two))
        assert "PLANTED" in fresh  # One, unchanged, still from the cache
        assert ["Two.template.json"] in fresh.values()  # Two read again
    finally:
        validator.close()


def test_an_unreadable_cache_entry_is_a_miss(tmp_path: Path, two_templates: tuple[Path, Path]) -> None:
    cache = tmp_path / "results"
    validator = real_validator(cache)
    try:
        first = validated(validator, *two_templates)
        for file in cache.iterdir():
            file.write_text("{not json")
        assert validated(validator, *two_templates) == first
    finally:
        validator.close()


# --- jsii_node.cjs: Node's compile cache and the kernels' fixed directories -----------------------

KERNEL_DIRECTORIES = """
const fs = require("node:fs"), os = require("node:os"), path = require("node:path");
const steps = JSON.parse(process.argv[1]);
const out = { compileCache: require("node:module").getCompileCacheDir?.() ?? null, made: [] };
for (const step of steps) {
  const slot = (n) => path.join(process.env.BLUEPRINT_JSII_CACHE, "kernels", n);
  if (step === "rm0") fs.rmSync(slot("0"), { recursive: true });
  else if (step === "half0") fs.writeFileSync(path.join(slot("0"), ".owner"), "");
  else if (step === "dead1") fs.writeFileSync(path.join(slot("1"), ".owner"), String(require("node:child_process").spawnSync("true").pid));
  else out.made.push(fs.mkdtempSync(path.join(os.tmpdir(), step)));
}
console.log(JSON.stringify(out));
"""


def kernel_directories(tmp_path: Path, steps: list[str], *, cache: bool = True) -> dict[str, Any]:
    env = {**ENV, **jsii_node.configure({}), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(parents=True, exist_ok=True)
    if cache:
        env[jsii_node.CACHE_VARIABLE] = str(tmp_path / "cache")
    else:
        env.pop(jsii_node.CACHE_VARIABLE)
    result = subprocess.run(
        ["node", "-e", KERNEL_DIRECTORIES, json.dumps(steps)], env=env, capture_output=True, text=True, check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    found["made"] = [str(Path(p).relative_to(tmp_path)) for p in found["made"]]
    return found


def node_has_a_compile_cache() -> bool:
    """Whether the Node on PATH (the one jsii runs on) has module.enableCompileCache (22.1 and later)."""
    script = "process.stdout.write(String(typeof require('node:module').enableCompileCache === 'function'))"
    return subprocess.run(["node", "-e", script], capture_output=True, text=True, check=True).stdout == "true"


def test_the_preload_turns_nodes_compile_cache_on_under_the_apps_cache(tmp_path: Path) -> None:
    """On a Node without a compile cache (before 22.1) the preload changes nothing, kernels included."""
    assert jsii_node.configure({})[jsii_node.CACHE_VARIABLE] == str(jsii_node.CACHE)
    found = kernel_directories(tmp_path, ["jsii-kernel-"])
    if node_has_a_compile_cache():
        assert Path(found["compileCache"]).parent == tmp_path / "cache" / "node-compile-cache"  # one per Node release
        assert found["made"] == ["cache/kernels/0"]
    else:
        assert found["compileCache"] is None
        assert found["made"][0].startswith("tmp/jsii-kernel-")
    assert kernel_directories(tmp_path / "off", [], cache=False)["compileCache"] is None


def test_each_kernel_gets_a_fixed_directory_of_its_own(tmp_path: Path) -> None:
    """Taken in order while held (a held one is never shared: this process is alive and holds
    them), given back when removed (as the kernel removes it at exit), one whose owner is gone taken
    back; with all held, with a cache that cannot be written, or for any other prefix, mkdtemp as
    ever."""
    if not node_has_a_compile_cache():
        return  # no slots there (test_the_preload_turns_nodes_compile_cache_on_under_the_apps_cache)
    kernel = "jsii-kernel-"
    steps = [kernel, kernel, "other-", "rm0", kernel, "dead1", kernel, kernel, kernel, kernel]
    made = kernel_directories(tmp_path, steps)["made"]
    assert made[:6] == [
        "cache/kernels/0",
        "cache/kernels/1",
        made[2],
        "cache/kernels/0",  # given back
        "cache/kernels/1",  # its owner gone: taken back
        "cache/kernels/2",
    ]
    assert made[2].startswith("tmp/other-")
    assert made[6] == "cache/kernels/3"
    assert made[7].startswith("tmp/jsii-kernel-")  # every slot held
    assert kernel_directories(tmp_path / "plain", ["jsii-kernel-"], cache=False)["made"][0].startswith(
        "tmp/jsii-kernel-"
    )
    # A mark not yet written (a slot just taken) is held, never taken over.
    assert kernel_directories(tmp_path / "half", [kernel, "half0", kernel])["made"] == [
        "cache/kernels/0",
        "cache/kernels/1",
    ]
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "cache").write_text("a file where the cache should be")
    assert kernel_directories(tmp_path / "blocked", [kernel])["made"][0].startswith("tmp/jsii-kernel-")


# --- The app runs under python -O (cdk.json) --------------------------------------------------------


def test_the_cli_runs_the_app_optimized_and_the_app_holds_no_assert() -> None:
    """jsii skips its Python-side argument checks under -O (the kernel still checks every value;
    the test suite, which builds the same app without -O, keeps them too). -O also drops assert
    statements and ``if __debug__`` blocks, so no module the app imports from this repository
    (stacks/, and the contracts and shared code under lambdas/) holds either: stacks/shared/expect.py
    raises instead."""
    assert json.loads((ROOT / "cdk.json").read_text())["app"] == ".venv/bin/python -O app.py"
    result = run_python(
        """
        import json, sys, app
        print(json.dumps(sorted({getattr(m, "__file__", None) or "" for m in list(sys.modules.values())})))
        """,
        CDK_VALIDATION="false",
    )
    assert result.returncode == 0, result.stderr
    own = [
        Path(p) for p in json.loads(result.stdout.splitlines()[-1]) if p.startswith(str(ROOT)) and "/.venv/" not in p
    ]
    assert any(p.is_relative_to(ROOT / "lambdas") for p in own)  # the contracts are among them
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in own
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Assert) or (isinstance(node, ast.Name) and node.id == "__debug__")
    ]
    assert found == []
