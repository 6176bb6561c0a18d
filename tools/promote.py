"""Promote a workload from the sandbox to production: `make promote WORKLOAD=<name>`.

Checks the readiness gates and prints them as a table (gate, pass/fail, why, how to fix); exits 1
if any fails. An invalid workload name, an unknown workload, one already in production stage or
one declared in cdk.json (whose stage promote does not edit) is refused at once, before any synth.
When all pass it changes the workload's ``stage`` in workloads/<name>.json (nothing else), and
writes a promotion report (promotions/<name>.md): the gates, then what the promotion changes
in the production tier's templates (the review report, tools/review.py).

Gates: the workload's declaration is valid in production; the guardrail covers its PII entity
types; its documents' classification has a policy (mask or quarantine); Macie covers the
pipeline's buckets its documents pass through; every tool it uses exists and, in the promoted
production templates, is bound to at least one of its groups (a Cedar permit and the tool
guard's bindings both name it); every one of its groups has an API key in a usage plan with a
throttle and a request quota (templates again), and a quota for each of its outputs; its golden
cases score at or above the evaluation floor; the production synth is cdk-nag and cfn-lint clean;
its outputs are priced; it has a budget of its own (not the sandbox tier's default).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "lambdas")]

from pydantic import BaseModel, TypeAdapter, ValidationError  # noqa: E402

from evaluation.evaluator import GOLDEN_SET, GoldenCase, evaluate  # noqa: E402
from gateway_authorizer.contract import ApiKeys  # noqa: E402
from shared.tools import KNOWLEDGE_SEARCH, qualified, unqualified  # noqa: E402
from stacks.config import BlueprintConfig, ConfigError, load_config  # noqa: E402
from stacks.config.tools import all_tools  # noqa: E402
from stacks.config.workloads import WorkloadConfig, WorkloadName  # noqa: E402
from tool_guard.contract import ToolBindings  # noqa: E402
from tools.eval import TRACES, EvalInputError, golden_cases, recorded_calls, shortfall  # noqa: E402
from tools.inputs import cdk_context  # noqa: E402
from tools.reviewing.data import cedar_parts  # noqa: E402
from tools.reviewing.values import as_json, references, render  # noqa: E402
from tools.synth import cfn_lint as lint_templates, synthesize  # noqa: E402

Document = TypeVar("Document", bound=BaseModel)
REPORTS = ROOT / "promotions"


@dataclass(frozen=True)
class Gate:
    name: str
    passed: bool
    why: str
    fix: str = ""


GATEWAY = "AWS::BedrockAgentCore::Gateway"
# A production synth of the promoted config: its templates by stack name (raises on cdk-nag errors).
Synth = Callable[[Mapping[str, Any]], dict[str, dict[str, Any]]]
# cfn-lint over templates: its findings (empty: clean).
Lint = Callable[[dict[str, dict[str, Any]]], list[str]]


def promoted_context(context: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {**context, f"blueprint.workloads.{name}.stage": "production"}


class PromoteError(Exception):
    """Promotion cannot start (the message says why); raised before any synth."""


def check_name(name: str) -> str:
    """``name`` when it follows the workload-name rule (stacks/config/workloads.py), else PromoteError."""
    try:
        return str(TypeAdapter(WorkloadName).validate_python(name))
    except ValidationError as error:
        raise PromoteError(f"workload name {name!r}: {error.errors()[0]['msg']}") from None


def workload_file(context: Mapping[str, Any], config: BlueprintConfig, name: str) -> Path:
    """The file whose ``stage`` promotion changes, or PromoteError when the stage is not (only)
    there: a declaration in cdk.json's blueprint.workloads wins over the file (stacks/config/loader.py),
    so editing the file would change nothing. Reads ``context`` only after load_config accepted it."""
    blueprint = context.get("blueprint")
    if isinstance(blueprint, str):  # `-c blueprint='{...}'`: load_config read it as JSON
        blueprint = json.loads(blueprint)
    declared = blueprint.get("workloads") if isinstance(blueprint, Mapping) else None
    key = f"blueprint.workloads.{name}"
    # Context keys win over the files: blueprint.workloads.<name>[.*], or the whole map.
    overridden = sorted(k for k in context if k in (key, "blueprint.workloads") or k.startswith(f"{key}."))
    if isinstance(declared, Mapping) and name in declared:
        raise PromoteError(
            f"{name} is declared in cdk.json's blueprint.workloads, which promote does not edit: set its "
            f'"stage" to "production" there by hand (or move its declaration to its own file under '
            f"{config.workloads_dir or 'workloads'}/ and run make promote again)"
        )
    if overridden:
        raise PromoteError(f"{name} is also set by context key {overridden[0]}: drop it, then run make promote again")
    if not isinstance(config.workloads_dir, str):
        raise PromoteError(f"blueprint.workloads_dir is {config.workloads_dir!r}: {name} has no file to change")
    path = ROOT / config.workloads_dir / f"{name}.json"
    if not path.is_file():
        raise PromoteError(f"{name}: no {path.relative_to(ROOT)} to change its stage in")
    return path


def check(
    context: Mapping[str, Any],
    name: str,
    *,
    synth: Synth,
    lint: Lint,
    traces: Path = TRACES,
    golden: Path = GOLDEN_SET,
    current: BlueprintConfig | None = None,
) -> tuple[list[Gate], dict[str, dict[str, Any]]]:
    """The gates for promoting workload ``name``, and the promoted production templates (empty
    when the synth could not run). An unknown workload, or one not in sandbox stage, fails at once,
    without a synth. ``current``: ``context``'s config when the caller has loaded it already."""
    current = current or load_config(context)
    if name not in current.workloads:
        known = ", ".join(sorted(current.workloads)) or "none"
        return [Gate("workload", False, f"no workload {name}", f"declare workloads/{name}.json (known: {known})")], {}
    workload = current.workloads[name]
    stage = Gate("stage", workload.stage == "sandbox", f"stage is {workload.stage}", "only a sandbox workload promotes")
    if not stage.passed:
        return [stage], {}
    gates = [
        stage,
        *static_gates(current, workload),
        evaluation_gate(current, workload, traces, golden),
    ]
    try:
        promoted = load_config(promoted_context(context, name))
    except ConfigError as error:
        gates.append(Gate("declaration", False, str(error).replace("\n", "; "), "fix those keys"))
        return gates, {}
    gates.append(Gate("declaration", True, "valid in production (output types, quotas, tools, agent)"))
    templates, synth_gate = synth_and_lint(promoted_context(context, name), synth, lint)
    gates.append(synth_gate)
    gates.append(macie_gate(promoted, templates))
    gates.append(bindings_gate(promoted, name, templates))
    gates.append(usage_plans_gate(promoted, name, templates))
    gates.append(quotas_gate(promoted, name))
    return gates, templates


def static_gates(config: BlueprintConfig, workload: WorkloadConfig) -> list[Gate]:
    return [
        guardrail_gate(config, workload),
        classification_gate(config, workload),
        tools_gate(config, workload),
        prices_gate(workload),
        budget_gate(config, workload),
    ]


def guardrail_gate(config: BlueprintConfig, workload: WorkloadConfig) -> Gate:
    covered = config.production.guardrail.pii_entities
    missing = [entity for entity in workload.documents.pii_entities if entity not in covered]
    if missing:
        return Gate(
            "guardrail covers PII",
            False,
            f"production.guardrail.pii_entities has no {', '.join(missing)}",
            f"add {', '.join(missing)} to production.guardrail.pii_entities (ANONYMIZE or BLOCK)",
        )
    entities = ", ".join(workload.documents.pii_entities) or "none declared"
    return Gate("guardrail covers PII", True, f"covers {entities}")


def classification_gate(config: BlueprintConfig, workload: WorkloadConfig) -> Gate:
    classification = workload.documents.classification
    policy = config.production.ingestion.classifications.get(classification)
    if policy is None:
        return Gate(
            "classification policy",
            False,
            f"no policy for {classification} documents",
            f"add production.ingestion.classifications.{classification} with on_pii mask or quarantine",
        )
    handled = {"mask": "masked", "quarantine": "quarantined"}[policy.on_pii]
    return Gate("classification policy", True, f"{classification}: personal data in them is {handled}")


MACIE_JOB = "Custom::MacieClassificationJob"
CONFIG_VERSION = "AWS::AppConfig::HostedConfigurationVersion"
NOT_CHECKED = "not checked: the production synth failed"


def document_buckets(template: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(the buckets documents pass through, the buckets Macie's job scans), by logical id: where
    uploads and connectors land (S3 "Object Created" rules) and the knowledge bases' data sources."""
    resources = template.get("Resources", {})
    buckets = {key for key, resource in resources.items() if resource.get("Type") == "AWS::S3::Bucket"}
    passed, scanned = set(), set()
    for resource in resources.values():
        kind, properties = resource.get("Type"), resource.get("Properties", {})
        if kind == "AWS::Events::Rule" and "aws.s3" in (properties.get("EventPattern") or {}).get("source", []):
            passed |= references(properties["EventPattern"].get("detail", {}).get("bucket"))
        elif kind == "AWS::Bedrock::DataSource":
            passed |= references(properties.get("DataSourceConfiguration", {}).get("S3Configuration"))
        elif kind == MACIE_JOB:
            scanned |= references(properties.get("Job"))  # the job it asks for (house custom resource)
    return passed & buckets, scanned & buckets


def macie_gate(config: BlueprintConfig, templates: Mapping[str, Mapping[str, Any]]) -> Gate:
    """Macie is on, and the promoted production templates' classification job scans every bucket
    the workload's documents pass through."""
    name = "Macie coverage"
    if config.production.account_settings.macie == "off":
        return Gate(
            name,
            False,
            "account_settings.macie is off: no sensitive-data discovery over the pipeline's buckets",
            "set production.account_settings.macie to adopt or manage",
        )
    if not templates:
        return Gate(name, False, NOT_CHECKED, "fix the synth (the gate above)")
    passed: set[str] = set()
    missing: list[str] = []
    for stack, template in sorted(templates.items()):
        buckets, scanned = document_buckets(template)
        passed |= {f"{stack}/{bucket}" for bucket in buckets}
        missing += sorted(f"{stack}/{bucket}" for bucket in buckets - scanned)
    if not passed:
        return Gate(
            name,
            False,
            "no bucket that documents pass through in the production templates",
            "make synth TIER=production",
        )
    if missing:
        return Gate(
            name,
            False,
            f"Macie's classification job does not scan {', '.join(missing)}",
            "add the bucket to the job's bucketDefinitions (stacks/production/macie.py)",
        )
    schedule = config.production.macie.schedule.lower()
    return Gate(name, True, f"its job scans all {len(passed)} buckets the documents pass through, {schedule}")


def tools_gate(config: BlueprintConfig, workload: WorkloadConfig) -> Gate:
    known = {KNOWLEDGE_SEARCH, *all_tools(config.production.legacy_apis)}
    unknown = [tool for tool in workload.tools if tool not in known]
    if unknown:
        return Gate(
            "tools exist",
            False,
            f"no tool {', '.join(unknown)} in production",
            "declare it under production.legacy_apis.<api>.tools, or remove it from the workload",
        )
    return Gate("tools exist", True, ", ".join(workload.tools) or "no tools")


def prices_gate(workload: WorkloadConfig) -> Gate:
    free = [name for name, output in workload.outputs.items() if output.unit_price_usd <= 0]
    if free:
        return Gate("prices", False, f"no price for {', '.join(free)}", "set outputs.<name>.unit_price_usd above 0")
    return Gate("prices", True, ", ".join(f"{n} ${o.unit_price_usd:g}" for n, o in sorted(workload.outputs.items())))


def budget_gate(config: BlueprintConfig, workload: WorkloadConfig) -> Gate:
    """The workload has a budget of its own: a monthly limit above 0 that its team chose, and at
    least one person its alerts reach. The sandbox tier's default (sandbox.budget) is the platform
    team's catch-all, which every workload without one falls back to, so it says nothing about this
    workload's spend: a gate that accepted it could never fail."""
    name, fix = "budget", 'set sandbox.budget {"monthly_limit_usd": ..., "alert_emails": [...]} in the workload file'
    budget = workload.sandbox.budget
    if budget is None:
        default = config.sandbox.budget
        return Gate(
            name,
            False,
            f"no budget of its own (its sandbox falls back to the tier default, sandbox.budget "
            f"${default.monthly_limit_usd:g}/month)",
            fix,
        )
    if budget.monthly_limit_usd <= 0 or not budget.alert_emails:
        return Gate(name, False, "its budget has no limit above 0 or no alert recipient", fix)
    recipients = len(budget.alert_emails)
    return Gate(
        name,
        True,
        f"its own: ${budget.monthly_limit_usd:g}/month, alerts to {recipients} "
        f"recipient{'s' if recipients > 1 else ''}",
    )


def evaluation_gate(config: BlueprintConfig, workload: WorkloadConfig, traces: Path, golden: Path = GOLDEN_SET) -> Gate:
    name = "golden set at the floor"
    floor = config.production.observability.tool_accuracy_floor
    try:
        cases = {case.id: case for case in golden_cases(golden)}
    except EvalInputError as error:
        return Gate(name, False, str(error), "restore or fix the golden set (git log -p on the file)")
    if not workload.evaluation.cases:
        return Gate(
            name, False, "no golden cases", "list its cases in evaluation.cases (lambdas/evaluation/golden_set.json)"
        )
    unknown = [case for case in workload.evaluation.cases if case not in cases]
    if unknown:
        return Gate(name, False, f"not in the golden set: {', '.join(unknown)}", "add them to golden_set.json")
    unrelated = [why for case in workload.evaluation.cases if (why := _unrelated(cases[case], workload))]
    if unrelated:
        return Gate(
            name,
            False,
            f"not about this workload: {'; '.join(unrelated)}",
            "list cases its groups ask that its tools answer",
        )
    try:
        recorded = recorded_calls(traces)
    except EvalInputError as error:
        return Gate(name, False, str(error), "re-record the traces or fix that line")
    missing = [case for case in workload.evaluation.cases if case not in recorded]
    if missing:
        return Gate(name, False, f"no recorded trace for {', '.join(missing)}", f"record them in {traces.name}")
    report = evaluate([cases[c] for c in workload.evaluation.cases], recorded)
    short = shortfall(report, floor)
    if short is not None:
        return Gate(name, False, short, "improve the prompt or tools, then re-record")
    score = min(report.tool_selection_accuracy, report.argument_accuracy)
    return Gate(name, True, f"{len(report.cases)} cases scored {score:.2f} (floor {floor:.2f})")


def _unrelated(case: GoldenCase, workload: WorkloadConfig) -> str | None:
    """Why ``case`` does not judge ``workload`` (None when it does): asked by a group the workload
    does not serve, or right only with a tool the workload does not use."""
    if case.group not in workload.groups:
        return f"{case.id} is asked by {case.group}"
    lacking = sorted({unqualified(answer.tool) for answer in case.accepted} - set(workload.tools))
    return f"{case.id} expects {', '.join(lacking)}" if lacking else None


def quotas_gate(promoted: BlueprintConfig, name: str) -> Gate:
    """Each of its groups can buy each of its outputs: a quota above 0 in the promoted config."""
    workload = promoted.workloads[name]
    groups = promoted.production.groups
    without = [
        f"{g}/{o}"
        for g in workload.groups
        for o in workload.outputs
        if o not in groups[g].output_quotas or groups[g].output_quotas[o].limit <= 0
    ]
    if without:
        return Gate("quotas", False, f"no quota for {', '.join(without)}", "give outputs.<name>.quota.limit above 0")
    return Gate("quotas", True, f"{', '.join(sorted(workload.outputs))} in {', '.join(workload.groups)}")


def runtime_documents(templates: Mapping[str, Mapping[str, Any]], model: type[Document]) -> list[Document]:
    """Every runtime document (an AppConfig hosted configuration) of the templates that ``model``,
    the document's own contract, accepts; tokens inside the content read as ``${LogicalId}``."""
    found = []
    for _, template in sorted(templates.items()):
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") != CONFIG_VERSION:
                continue
            content = render(resource.get("Properties", {}).get("Content"))
            try:
                found.append(model.model_validate(as_json(content) if isinstance(content, str) else None))
            except ValidationError:
                continue
    return found


def cedar_permits(templates: Mapping[str, Mapping[str, Any]]) -> dict[str, set[str]]:
    """group -> the gateway actions its Cedar permits name (tools/review.py reads them alike)."""
    permitted: dict[str, set[str]] = {}
    for template in templates.values():
        for resource in template.get("Resources", {}).values():
            if resource.get("Type") == "AWS::BedrockAgentCore::Policy":
                effect, group, actions, _ = cedar_parts(resource)
                if effect == "permit" and group is not None:
                    permitted.setdefault(group, set()).update(actions)
    return permitted


def bindings_gate(promoted: BlueprintConfig, name: str, templates: Mapping[str, Mapping[str, Any]]) -> Gate:
    """Every tool of the workload is bound to at least one of its groups where it is enforced: in
    the promoted production templates a Cedar permit of the group names the tool (the policy engine,
    ENFORCE) and the tool guard's bindings list it for the group (the interceptors, fail closed).
    The config derivation is meant to bind each tool to every group of the workload; this reads
    what the synth made of it."""
    gate = "tools bound"
    workload = promoted.workloads[name]
    if not workload.tools:
        return Gate(gate, True, "no tools")
    if not templates:
        return Gate(gate, False, NOT_CHECKED, "fix the synth (the gate above)")
    unenforced = _unenforced(templates)
    if unenforced is not None:
        return Gate(
            gate,
            False,
            unenforced,
            "the tools stack sets the policy engine to ENFORCE and the tool guard as the gateway's request and "
            "response interceptors (stacks/production/tools.py): find what changed them, then "
            "make synth TIER=production",
        )
    targets = all_tools(promoted.production.legacy_apis)
    permitted = cedar_permits(templates)
    listed: dict[str, set[str]] = {}
    for document in runtime_documents(templates, ToolBindings):
        for group, tools in document.tool_bindings.items():
            listed.setdefault(group, set()).update(tools)
    groups, problems = workload.groups, []
    for tool in workload.tools:
        action = qualified(targets[tool], tool) if tool in targets else tool
        permits = [g for g in groups if action in permitted.get(g, ())]
        lists = [g for g in groups if action in listed.get(g, ())]
        if set(permits) & set(lists):
            continue
        if permits and lists:
            problems.append(f"{action} (permitted to {', '.join(permits)}, listed for {', '.join(lists)})")
        else:
            missing = [*([] if permits else ["no Cedar permit"]), *([] if lists else ["no tool guard binding"])]
            problems.append(f"{action} ({' and '.join(missing)})")
    if problems:
        return Gate(
            gate,
            False,
            f"bound to none of {', '.join(groups)} in the production templates: {', '.join(problems)}",
            "each group's permit and bindings come from production.groups.<group>.tools, which the workload's "
            "tools are added to (stacks/config/workloads.py, stacks/production/tool_binding.py): find what dropped "
            "it, then make synth TIER=production",
        )
    return Gate(
        gate, True, f"{', '.join(workload.tools)}: a Cedar permit and the tool guard's bindings in {', '.join(groups)}"
    )


def _unenforced(templates: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Why the templates' tools gateway does not enforce what the permits and the bindings say,
    or None: its policy engine in ENFORCE mode (LOG_ONLY only logs a denial), and a Lambda
    interceptor at both its REQUEST and RESPONSE points (the tool guard: without one, any caller
    lists and calls every tool the engine lets through)."""
    gateways = [
        resource.get("Properties") or {}
        for template in templates.values()
        for resource in (template.get("Resources") or {}).values()
        if isinstance(resource, Mapping) and resource.get("Type") == GATEWAY
    ]
    if not gateways:
        return "no tools gateway in the production templates"
    for gateway in gateways:
        engine = gateway.get("PolicyEngineConfiguration")
        mode = engine.get("Mode") if isinstance(engine, Mapping) else None
        if mode != "ENFORCE":
            state = f"in {mode} mode" if mode else "not set"
            return f"the tools gateway's policy engine is {state}, not ENFORCE"
        interceptors = gateway.get("InterceptorConfigurations")
        points = {
            point
            for interceptor in (interceptors if isinstance(interceptors, list) else [])
            if isinstance(interceptor, Mapping)
            and isinstance(interceptor.get("Interceptor"), Mapping)
            and "Lambda" in interceptor["Interceptor"]
            for point in (interceptor.get("InterceptionPoints") or [])
        }
        missing = [point for point in ("REQUEST", "RESPONSE") if point not in points]
        if missing:
            return f"the tools gateway has no {' or '.join(missing)} interceptor"
    return None


_TOKEN = re.compile(r"^\$\{([A-Za-z0-9]+)\}$")


def _usage_plans(templates: Mapping[str, Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """An API key's logical id -> the properties of the usage plan it sits in."""
    plans: dict[str, Mapping[str, Any]] = {}
    for template in templates.values():
        resources = template.get("Resources", {})
        for resource in resources.values():
            if resource.get("Type") != "AWS::ApiGateway::UsagePlanKey":
                continue
            properties = resource.get("Properties", {})
            keys, plan_ids = references(properties.get("KeyId")), references(properties.get("UsagePlanId"))
            for key, plan in product(keys, plan_ids):
                if resources.get(plan, {}).get("Type") == "AWS::ApiGateway::UsagePlan":
                    plans[key] = resources[plan].get("Properties", {})
    return plans


def _plan_problem(plan: Mapping[str, Any] | None) -> str:
    if plan is None:
        return "its API key is in no usage plan"
    throttle, quota = plan.get("Throttle") or {}, plan.get("Quota") or {}
    if not plan.get("ApiStages"):
        return "its usage plan is on no API stage"
    if not (isinstance(throttle.get("RateLimit"), int | float) and throttle["RateLimit"] > 0):
        return "its usage plan has no throttle"
    if not (isinstance(quota.get("Limit"), int) and quota["Limit"] > 0):
        return "its usage plan has no request quota"
    return ""


def usage_plans_gate(promoted: BlueprintConfig, name: str, templates: Mapping[str, Mapping[str, Any]]) -> Gate:
    """Every group of the workload has, in the promoted production templates, an API key in the
    authorizer's keys document, and that key sits in a usage plan on the API's stage with a throttle
    and a request quota (API Gateway's coarse, best-effort layer in front of the exact quotas)."""
    gate = "usage plans"
    workload = promoted.workloads[name]
    if not templates:
        return Gate(gate, False, NOT_CHECKED, "fix the synth (the gate above)")
    keys: dict[str, str] = {}
    for document in runtime_documents(templates, ApiKeys):
        keys.update(document.keys)
    plans = _usage_plans(templates)
    shown, problems = [], []
    for group in workload.groups:
        token = _TOKEN.match(keys.get(group, ""))
        plan = plans.get(token[1]) if token else None
        problem = _plan_problem(plan) if group in keys else "no API key in the authorizer's keys document"
        if problem or plan is None:
            problems.append(f"{group}: {problem}")
            continue
        rate, quota = plan["Throttle"]["RateLimit"], plan["Quota"]
        shown.append(f"{group} {rate:g}/s, {quota['Limit']} per {str(quota.get('Period', 'DAY')).lower()}")
    if problems:
        return Gate(
            gate,
            False,
            "; ".join(problems),
            "give production.groups.<group>.usage_plan its rate_limit, burst_limit and quota_limit; each group's "
            "API key and its plan are made by stacks/production/gateway_keys.py: make synth TIER=production",
        )
    return Gate(gate, True, "; ".join(shown))


def synth_and_lint(context: Mapping[str, Any], synth: Synth, lint: Lint) -> tuple[dict[str, dict[str, Any]], Gate]:
    name = "cdk-nag and cfn-lint"
    try:
        templates = synth(context)
    except Exception as error:
        reason = str(error).strip().splitlines()
        return {}, Gate(
            name, False, (reason[0] if reason else type(error).__name__)[:300], "make synth TIER=production"
        )
    findings = lint(templates)
    if findings:
        return templates, Gate(name, False, f"cfn-lint: {findings[0]}", "make cfn-lint")
    return templates, Gate(name, True, f"{len(templates)} production templates clean")


def production_synth(context: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The production tier synthesized in-process (cdk-nag errors raise)."""
    with tempfile.TemporaryDirectory() as out:
        return synthesize(Path(out), {**context, "tier": "production"})


def cfn_lint(templates: dict[str, dict[str, Any]]) -> list[str]:
    with tempfile.TemporaryDirectory() as out:
        paths = []
        for stack, template in templates.items():
            path = Path(out) / f"{stack}.template.json"
            path.write_text(json.dumps(template))
            paths.append(path)
        return lint_templates(paths)


def table(gates: list[Gate]) -> str:
    rows = ["| Gate | Result | Why | How to fix |", "| --- | --- | --- | --- |"]
    rows += [f"| {g.name} | {'PASS' if g.passed else 'FAIL'} | {g.why} | {'' if g.passed else g.fix} |" for g in gates]
    return "\n".join(rows)


def staged(text: str, stage: str, name: str = "the workload file") -> str:
    """``text`` (a workload file) with only its ``stage`` value changed, keeping its layout."""
    changed, count = re.subn(r'("stage"\s*:\s*)"[a-z]+"', rf'\1"{stage}"', text, count=1)
    if count != 1:
        raise ConfigError(f'{name}: no "stage" key to change')
    return changed


def set_stage(path: Path, stage: str) -> None:
    """Change only the ``stage`` value of a workload file, keeping its layout."""
    path.write_text(staged(path.read_text(encoding="utf-8"), stage, path.name), encoding="utf-8")


def shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _workload_arg(value: str) -> str:
    try:
        return check_name(value)
    except PromoteError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def preflight(context: Mapping[str, Any], name: str) -> tuple[BlueprintConfig, Path]:
    """What must hold before any synth: a valid config, a known workload in sandbox stage, and a
    file to change its stage in. Returns the config and that file; PromoteError or ConfigError otherwise."""
    config = load_config(context)
    if name not in config.workloads:
        known = ", ".join(sorted(config.workloads)) or "none"
        where = (
            f"{config.workloads_dir}/{name}.json"
            if config.workloads_dir
            else "cdk.json's blueprint.workloads (blueprint.workloads_dir is null)"
        )
        raise PromoteError(f"no workload {name} (known: {known}); declare it in {where}")
    stage = config.workloads[name].stage
    if stage != "sandbox":
        raise PromoteError(f"{name} is already in {stage} stage")
    return config, workload_file(context, config, name)


def main(
    argv: list[str] | None = None,
    *,
    context: Mapping[str, Any] | None = None,
    synth: Synth | None = None,
    lint: Lint | None = None,
) -> int:
    """``context``: cdk.json's unless given; ``synth`` and ``lint``: the real ones unless given (tests)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", type=_workload_arg, help="the workload's name (workloads/<name>.json)")
    args = parser.parse_args(argv)
    synth = synth or production_synth
    try:
        context = cdk_context() if context is None else context
        current, path = preflight(context, args.workload)
        gates, promoted = check(context, args.workload, synth=synth, lint=lint or cfn_lint, current=current)
    except (ConfigError, PromoteError) as error:
        print(f"promote: {error}", file=sys.stderr)
        return 1
    print(table(gates))
    if not all(gate.passed for gate in gates):
        print(f"\n{args.workload} is not ready: fix the failing gates above.", file=sys.stderr)
        return 1
    try:
        report_path = write_promotion(args.workload, path, gates, context, promoted, synth)
    except (ConfigError, PromoteError, OSError) as error:
        print(f"promote: {error}; {args.workload} stays in sandbox stage, nothing written", file=sys.stderr)
        return 1
    print(f"\n{args.workload} is now in production stage; report: {shown(report_path)}")
    return 0


def write_promotion(
    name: str,
    path: Path,
    gates: list[Gate],
    context: Mapping[str, Any],
    promoted: dict[str, dict[str, Any]],
    synth: Synth,
) -> Path:
    """Write the promotion report, then the workload file with its new stage; both or neither (the
    report is removed when the workload file cannot be written). Everything is computed first."""
    try:
        before = synth(context)
    except Exception as error:  # a failed synth of the current config: its first line, as the synth gate says it
        reason = str(error).strip().splitlines()
        raise PromoteError(
            f"the synth of the current config failed: {(reason[0] if reason else type(error).__name__)[:300]}"
        ) from None
    report = promotion_report(name, gates, before, promoted)
    workload = staged(path.read_text(encoding="utf-8"), "production", path.name)
    report_path = REPORTS / f"{name}.md"
    if REPORTS.exists() and not REPORTS.is_dir():
        raise PromoteError(f"{shown(REPORTS)} is not a directory: the promotion report cannot be written")
    REPORTS.mkdir(exist_ok=True)
    existed = report_path.exists()
    previous = report_path.read_bytes() if existed else b""
    report_path.write_text(report, encoding="utf-8")
    try:
        path.write_text(workload, encoding="utf-8")
    except OSError:
        if existed:
            report_path.write_bytes(previous)
        else:
            report_path.unlink(missing_ok=True)
        raise
    return report_path


def promotion_report(
    name: str, gates: list[Gate], before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]]
) -> str:
    """The gates, then the review report of the production tier before and after the promotion,
    with its picture (tools/diagram.py) of the promoted tier, what changed highlighted."""
    from tools.review import diagram
    from tools.reviewing.report import markdown_for_templates

    return "\n\n".join(
        [
            f"# Promotion of {name} to production",
            "## Readiness gates",
            table(gates),
            "## What changes in the production tier",
            markdown_for_templates(before, after, draw=diagram()),
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
