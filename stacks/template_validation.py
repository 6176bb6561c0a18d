"""CDK's CloudFormation template validator, run in a Node.js process of its own.

CDK validates every template at synth with ``CloudFormationValidatePlugin``: a WebAssembly engine
that loads CloudFormation's resource schemas and CDK's rules, about two seconds of one core to
build, then under a second to run. In the jsii runtime's Node.js process that build stops
everything else: the app's constructs are built in that same process, one call at a time. Here the
same validator (aws-cdk-lib's own class, the version the app's Python bindings carry, default rules,
nothing added) is built in a second Node.js process as the app starts, on the machine's other core,
and CDK calls it at synth through :class:`RemoteTemplateValidator`, a validation plugin that hands
it the templates and returns its report unchanged.

The plugin carries CDK's plugin name, so CDK reads and treats its report as its own validator's
(errors fail synth under ``@aws-cdk/core:validateAgainstDefaultRules``; findings are acknowledged
with ``Validations.of(...).acknowledge``), and the app is created with CDK's built-in validator
off so the templates are not validated twice. A validator that cannot be built, dies or does not
answer fails synth with the reason: a check is never skipped silently.

The worker keeps each stack's findings under ``build/jsii/validation/``, keyed by everything they
depend on (the template's bytes, the stack, aws-cdk-lib's rules, the engine's version, the worker's
own code), and reads
again only the templates whose key changed: a synth that changes one stack validates one template,
and the report is the one CDK's plugin returns over all of them (template_validation.cjs says how).
A clean checkout (CI) has no cache and validates every template; ``make clean`` empties it.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import (
    CloudFormationValidatePlugin,
    IPolicyValidationContext,
    IPolicyValidationPlugin,
    PolicyValidationPluginReport,
    PolicyViolatingResource,
    PolicyViolation,
)

from stacks import jsii_node
from stacks.shared.expect import present

WORKER = Path(__file__).resolve().with_name("template_validation.cjs")
CACHE = jsii_node.CACHE
RESULTS = CACHE / "validation"  # each stack's last findings (template_validation.cjs)
# What the validator loads from aws-cdk-lib's package (its plugin, CDK's rules, the engine).
LIBRARY_PARTS = (
    "package/package.json",
    "package/.warnings.jsii.js",
    "package/core/lib/",
    "package/node_modules/@aws/cloudformation-validate/",
)
ANSWER_SECONDS = 600.0  # a validator that answers nothing in this long has hung: synth fails


class ValidatorError(RuntimeError):
    """The out-of-process validator could not be built, died, or did not answer."""


def library_bundle() -> Path:
    """aws-cdk-lib's package as the app's Python bindings carry it (the one the jsii runtime loads)."""
    spec = importlib.util.find_spec("aws_cdk")
    if spec is None or spec.origin is None:
        raise ValidatorError("aws_cdk is not installed")
    bundles = sorted((Path(spec.origin).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz"))
    if len(bundles) != 1:
        raise ValidatorError(f"expected one aws-cdk-lib bundle beside aws_cdk, found {len(bundles)}")
    return bundles[0]


def library_root(bundle: Path | None = None, cache: Path = CACHE) -> Path:
    """The parts of ``bundle`` the validator needs, unpacked once per version under ``cache``."""
    bundle = bundle or library_bundle()
    target = cache / bundle.name.removesuffix(".jsii.tgz")
    package = target / "package"
    if (target / "complete").exists():
        return package
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=cache))
    try:
        with tarfile.open(bundle) as archive:
            members = [member for member in archive if member.name.startswith(LIBRARY_PARTS)]
            archive.extractall(staging, members=members, filter="data")
        (staging / "complete").touch()
        try:
            staging.rename(target)  # atomic: another synth unpacking at the same time wins or loses whole
        except OSError:
            if not (target / "complete").exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return package


@jsii.implements(IPolicyValidationPlugin)
class RemoteTemplateValidator:
    """CDK's template validator in its own Node.js process (see the module's docstring)."""

    def __init__(
        self,
        library: Path,
        *,
        cache: Path | None = None,
        worker: Path = WORKER,
        answer_seconds: float = ANSWER_SECONDS,
    ) -> None:
        """``cache``: where the worker keeps each stack's last result (see the module's docstring);
        None, every template is validated at every synth."""
        self._answer_seconds = answer_seconds
        self._described: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._process = subprocess.Popen(  # noqa: S603  # the jsii runtime's node and this repo's worker
            [
                os.environ.get("JSII_NODE") or shutil.which("node") or "node",
                str(worker),
                str(library),
                *([str(cache)] if cache is not None else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),  # NODE_OPTIONS as start() set them for the jsii runtime
        )
        self._stdin = present(self._process.stdin, "the validator's stdin")
        self._stdout = present(self._process.stdout, "the validator's stdout")
        self._answers: queue.Queue[str | None] = queue.Queue()
        self._started: dict[str, Any] | None = None  # a request sent by start(), its answer unread
        threading.Thread(target=self._read, name="template-validator", daemon=True).start()

    def _read(self) -> None:
        for line in self._stdout:
            self._answers.put(line)
        self._answers.put(None)  # the worker is gone

    def _send(self, request: dict[str, Any]) -> None:  # the caller holds the lock
        try:
            self._stdin.write(json.dumps(request) + "\n")
            self._stdin.flush()
        except OSError:  # its end of the pipe is closed: it exited, as reading the answer reports
            pass

    def _answer(self) -> dict[str, Any]:  # the caller holds the lock
        try:
            line = self._answers.get(timeout=self._answer_seconds)
        except queue.Empty:
            raise ValidatorError(f"the template validator did not answer in {self._answer_seconds:g} s") from None
        if line is None:
            self._answers.put(None)  # for every later question too
            raise ValidatorError(f"the template validator exited (code {self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise ValidatorError(f"the template validator failed: {answer['error']}")
        return answer

    def _ask(
        self, request: Callable[[], dict[str, Any]], *, started_answers: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """The answer to ``request()`` (built only when sent), or to the request :meth:`start` sent
        if ``started_answers`` says it is the same question."""
        with self._lock:
            started, self._started = self._started, None
            if started is not None:  # the worker answers in order: the started request's answer is next
                answer = self._answer()
                if started_answers(started):
                    return answer
            self._send(request())
            return self._answer()

    def start(self, context: IPolicyValidationContext) -> None:
        """Hand the worker ``context``'s templates now, so it validates them on its own core while
        CDK runs the plugins registered before this one (:class:`StartsValidation`); :meth:`validate`
        then reads the answer, or asks again if CDK hands it other templates. Never raises: a
        worker that is gone is reported by :meth:`validate`."""
        self._description()  # CDK reads it after validate: asked now, it does not come between
        with self._lock:
            if self._started is None:
                self._started = _validate_request(context)
                self._send(self._started)

    def close(self) -> None:
        """End the worker (it may still be building, as when synth stops on a configuration
        error) and wait for it, so it is not left behind and its CPU time counts as the app's."""
        self._stdin.close()
        self._process.terminate()
        self._process.wait()

    def _description(self) -> dict[str, Any]:
        if self._described is None:
            try:
                self._described = self._ask(lambda: {"describe": True}, started_answers=lambda _: False)
            except ValidatorError:
                return {}  # read while CDK reports a failed validator: the failure is the report
        return self._described

    @property
    def name(self) -> str:
        return CloudFormationValidatePlugin.PLUGIN_NAME

    @property
    def version(self) -> str | None:
        version: str | None = self._description().get("version")
        return version

    @property
    def rule_ids(self) -> list[str] | None:
        rule_ids: list[str] | None = self._description().get("ruleIds")
        return rule_ids

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        # The same templates as those started: that answer. Their paths are one round trip to the jsii
        # runtime; the whole request is a few per template.
        paths = list(context.template_paths)
        answer = self._ask(
            lambda: _validate_request(context),
            started_answers=lambda started: [stack["templatePath"] for stack in started["validate"]] == paths,
        )
        return plugin_report(answer["report"])


def _validate_request(context: IPolicyValidationContext) -> dict[str, Any]:
    return {
        "validate": [
            {
                "stackConstructPath": stack.stack_construct_path,
                "templatePath": stack.template_path,
                "accountId": stack.account_id,
                "region": stack.region,
            }
            for stack in context.stack_templates
        ]
    }


@jsii.implements(IPolicyValidationPlugin)
class StartsValidation:
    """A validation plugin (a cdk-nag pack) that first hands the templates to the validator's
    process: CDK runs its plugins one after another, so the packs (in the jsii runtime's process)
    and CloudFormation's validator (in its own) run side by side, on the machine's two cores. The
    pack's name, version, rules and report are its own, unchanged."""

    def __init__(self, plugin: IPolicyValidationPlugin, validator: RemoteTemplateValidator) -> None:
        self._plugin = plugin
        self._validator = validator

    @property
    def name(self) -> str:
        return self._plugin.name

    @property
    def version(self) -> str | None:
        return self._plugin.version

    @property
    def rule_ids(self) -> list[str] | None:
        return self._plugin.rule_ids

    def validate(self, context: IPolicyValidationContext) -> PolicyValidationPluginReport:
        self._validator.start(context)
        return self._plugin.validate(context)


def plugin_report(report: dict[str, Any]) -> PolicyValidationPluginReport:
    """CDK's report, as the worker's validator returned it, in jsii's types."""
    return PolicyValidationPluginReport(
        success=report["success"],
        violations=[
            PolicyViolation(
                rule_name=violation["ruleName"],
                description=violation["description"],
                severity=violation.get("severity"),
                fix=violation.get("fix"),
                rule_metadata=violation.get("ruleMetadata"),
                violating_resources=[
                    PolicyViolatingResource(
                        locations=resource.get("locations", []),
                        resource_logical_id=resource.get("resourceLogicalId"),
                        construct_path=resource.get("constructPath"),
                        template_path=resource.get("templatePath"),
                    )
                    for resource in violation["violatingResources"]
                ],
            )
            for violation in report["violations"]
        ],
    )
