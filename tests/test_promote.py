"""`make promote`: each readiness gate passes for the sample workload and fails, naming the fix,
for a workload that misses it; on success only the workload's stage changes."""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.config import load_config
from stacks.production.tool_binding import cedar_permits
from tests.synth_fixtures import Assembly
from tool_guard.contract import ToolBindings
from tools import promote
from tools.eval import TRACES
from tools.promote import Gate

ROOT = Path(__file__).resolve().parents[1]
WORKLOAD = "support"
# The sample workload's groups and its one tool, as the gateway names it.
GROUPS = ("platform-admins", "customer-gold")
KNOWLEDGE = "knowledge___knowledge_search"


def sample(cdk_context: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """cdk.json's context with the sample workload changed (dotted keys under the workload)."""
    context = copy.deepcopy(cdk_context)
    for key, value in changes.items():
        context[f"blueprint.workloads.{WORKLOAD}.{key.replace('__', '.')}"] = value
    return context


def knowledge_template(scanned: tuple[str, ...] = ("Landing", "Curated")) -> dict[str, Any]:
    """The shape of the knowledge stack the Macie gate reads: a landing bucket (an S3 "Object
    Created" rule), a curated bucket (a knowledge base's data source), and the classification job
    naming the ``scanned`` ones in its createClassificationJob call."""
    bucket = {"Type": "AWS::S3::Bucket", "Properties": {}}
    job_call = ["", ['{"bucketDefinitions":[{"buckets":["', *({"Ref": name} for name in scanned), '"]}]}']]
    return {
        "Resources": {
            "Landing": bucket,
            "Curated": bucket,
            "Quarantine": bucket,
            "ObjectCreated": {
                "Type": "AWS::Events::Rule",
                "Properties": {
                    "EventPattern": {
                        "source": ["aws.s3"],
                        "detail-type": ["Object Created"],
                        "detail": {"bucket": {"name": [{"Ref": "Landing"}]}},
                    }
                },
            },
            "DataSource": {
                "Type": "AWS::Bedrock::DataSource",
                "Properties": {
                    "DataSourceConfiguration": {"S3Configuration": {"BucketArn": {"Fn::GetAtt": ["Curated", "Arn"]}}}
                },
            },
            "Job": {"Type": "Custom::MacieClassificationJob", "Properties": {"Job": {"Fn::Join": job_call}}},
        }
    }


def tools_template(
    permits: dict[str, list[str]] | None = None, bindings: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """The shape of the tools stack the bindings gate reads: each group's Cedar permit as
    stacks/production/tool_binding.py writes it, and the tool guard's bindings document (the same
    map by default, as the stack derives both from one)."""
    permits = {group: [KNOWLEDGE] for group in GROUPS} if permits is None else permits
    bindings = permits if bindings is None else bindings
    statements = cedar_permits(permits, "${GatewayArn}")
    resources: dict[str, Any] = {
        f"Permit{index}": {
            "Type": "AWS::BedrockAgentCore::Policy",
            "Properties": {"Name": name, "Definition": {"Cedar": {"Statement": statement}}},
        }
        for index, (name, statement) in enumerate(statements.items())
    }
    document = ToolBindings(tool_bindings=bindings, data_classifications={group: ["public"] for group in bindings})
    resources["Bindings"] = {
        "Type": promote.CONFIG_VERSION,
        "Properties": {"Content": json.dumps(document.model_dump(mode="json"))},
    }
    resources["Gateway"] = {"Type": promote.GATEWAY, "Properties": copy.deepcopy(ENFORCING)}
    return {"Resources": resources}


# The tools gateway as the tools stack makes it: the policy engine enforcing the permits, the tool
# guard intercepting requests and answers.
GUARD = {"Lambda": {"Arn": {"Fn::GetAtt": ["ToolGuardFunction", "Arn"]}}}
ENFORCING: dict[str, Any] = {
    "PolicyEngineConfiguration": {"Arn": {"Fn::GetAtt": ["PolicyEngine", "PolicyEngineArn"]}, "Mode": "ENFORCE"},
    "InterceptorConfigurations": [
        {"InterceptionPoints": ["REQUEST"], "Interceptor": GUARD},
        {"InterceptionPoints": ["RESPONSE"], "Interceptor": GUARD},
    ],
}


def keys_template(
    keys: tuple[str, ...] = GROUPS, in_plan: tuple[str, ...] = GROUPS, plan: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The shape of the gateway-keys stack the usage-plans gate reads: an API key per group of
    ``keys`` in the authorizer's keys document (its content an Fn::Join around the keys' Refs, as
    CDK writes it), those of ``in_plan`` in one usage plan."""
    plan = plan or {
        "ApiStages": [{"ApiId": {"Ref": "Api"}, "Stage": "live"}],
        "Throttle": {"RateLimit": 10, "BurstLimit": 20},
        "Quota": {"Limit": 10000, "Period": "DAY"},
    }
    resources: dict[str, Any] = {"Plan": {"Type": "AWS::ApiGateway::UsagePlan", "Properties": plan}}
    parts: list[Any] = []
    for index, group in enumerate(keys):
        resources[f"Key{index}"] = {"Type": "AWS::ApiGateway::ApiKey", "Properties": {"Enabled": True}}
        parts += ["," if index else "", f'"{group}":"', {"Ref": f"Key{index}"}, '"']
        if group in in_plan:
            resources[f"Key{index}InPlan"] = {
                "Type": "AWS::ApiGateway::UsagePlanKey",
                "Properties": {"KeyId": {"Ref": f"Key{index}"}, "KeyType": "API_KEY", "UsagePlanId": {"Ref": "Plan"}},
            }
    content = {"Fn::Join": ["", ['{"keys":{', *parts, "}}"]]}
    resources["Keys"] = {"Type": promote.CONFIG_VERSION, "Properties": {"Content": content}}
    return {"Resources": resources}


def clean_templates(**stacks: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What the gates read of a production synth in which each passes; ``stacks`` replace some."""
    return {
        "genai-production-gateway": {"Resources": {}},
        "genai-production-knowledge": knowledge_template(),
        "genai-production-tools": tools_template(),
        "genai-production-gateway-keys": keys_template(),
        **{name.replace("_", "-"): template for name, template in stacks.items()},
    }


def clean_synth(context: Any) -> dict[str, dict[str, Any]]:
    return clean_templates()


def synth_of(**stacks: dict[str, Any]) -> Callable[[Any], dict[str, dict[str, Any]]]:
    return lambda _: clean_templates(**{f"genai_production_{name}": t for name, t in stacks.items()})


def gates_of(context: dict[str, Any], *, traces: Path | None = None, **kwargs: Any) -> dict[str, Gate]:
    options: dict[str, Any] = {"synth": clean_synth, "lint": lambda _: [], **kwargs}
    if traces is not None:
        options["traces"] = traces
    gates, _ = promote.check(context, WORKLOAD, **options)
    return {gate.name: gate for gate in gates}


def failing(gates: dict[str, Gate]) -> dict[str, Gate]:
    return {name: gate for name, gate in gates.items() if not gate.passed}


def test_the_sample_workload_passes_every_gate(cdk_context: dict[str, Any]) -> None:
    gates = gates_of(cdk_context)
    assert failing(gates) == {}
    assert set(gates) == {
        "stage",
        "guardrail covers PII",
        "classification policy",
        "Macie coverage",
        "tools exist",
        "prices",
        "budget",
        "golden set at the floor",
        "declaration",
        "cdk-nag and cfn-lint",
        "tools bound",
        "usage plans",
        "quotas",
    }
    assert gates["budget"].why == "its own: $1000/month, alerts to 1 recipient"
    assert (
        gates["tools bound"].why
        == f"knowledge_search: a Cedar permit and the tool guard's bindings in {', '.join(GROUPS)}"
    )
    assert gates["usage plans"].why == "platform-admins 10/s, 10000 per day; customer-gold 10/s, 10000 per day"


@pytest.mark.parametrize(
    ("changes", "gate", "fix"),
    [
        ({"stage": "production"}, "stage", "only a sandbox workload promotes"),
        (
            {"documents__pii_entities": ["EMAIL", "IP_ADDRESS"]},
            "guardrail covers PII",
            "add IP_ADDRESS to production.guardrail.pii_entities",
        ),
        (
            {"documents__classification": "secret"},
            "classification policy",
            "add production.ingestion.classifications.secret with on_pii mask or quarantine",
        ),
        ({"tools": ["knowledge_search", "launch_rockets"]}, "tools exist", "production.legacy_apis.<api>.tools"),
        (
            {"outputs": {"policy_answer": {"unit_price_usd": 0, "quota": {"limit": 10}}}},
            "prices",
            "set outputs.<name>.unit_price_usd above 0",
        ),
        ({"sandbox__budget": None}, "budget", 'set sandbox.budget {"monthly_limit_usd": ..., "alert_emails": [...]}'),
        ({"evaluation__cases": []}, "golden set at the floor", "list its cases in evaluation.cases"),
        ({"evaluation__cases": ["no-such-case"]}, "golden set at the floor", "add them to golden_set.json"),
        (
            {"outputs": {"chat": {"unit_price_usd": 1, "quota": {"limit": 10}}}},
            "declaration",
            "fix those keys",
        ),
        (
            {"outputs": {"policy_answer": {"unit_price_usd": 1, "quota": {"limit": 0}}}},
            "quotas",
            "quota.limit above 0",
        ),
    ],
)
def test_a_workload_missing_a_gate_fails_it_with_the_fix(
    cdk_context: dict[str, Any], changes: dict[str, Any], gate: str, fix: str
) -> None:
    found = failing(gates_of(sample(cdk_context, **changes)))
    assert gate in found, found
    assert fix in found[gate].fix


def test_a_workload_on_the_tiers_default_budget_fails_naming_it(cdk_context: dict[str, Any]) -> None:
    """The tier's budget is every workload's fallback: no limit this workload's team chose."""
    gate = failing(gates_of(sample(cdk_context, sandbox__budget=None)))["budget"]
    limit = load_config(cdk_context).sandbox.budget.monthly_limit_usd
    assert gate.why == (
        f"no budget of its own (its sandbox falls back to the tier default, sandbox.budget ${limit:g}/month)"
    )


def test_a_budget_without_a_limit_or_a_recipient_fails() -> None:
    """The config refuses both already (stacks/config/workloads.py); the gate does not lean on it."""
    config = load_config(json.loads((ROOT / "cdk.json").read_text())["context"])
    workload = config.workloads[WORKLOAD]
    assert workload.sandbox.budget is not None
    for broken in (
        workload.sandbox.budget.model_copy(update={"alert_emails": ()}),
        workload.sandbox.budget.model_copy(update={"monthly_limit_usd": 0}),
    ):
        changed = workload.model_copy(update={"sandbox": workload.sandbox.model_copy(update={"budget": broken})})
        gate = promote.budget_gate(config, changed)
        assert (gate.passed, gate.why) == (False, "its budget has no limit above 0 or no alert recipient")


NO_QUOTA = {"ApiStages": [{"ApiId": "api", "Stage": "live"}], "Throttle": {"RateLimit": 10, "BurstLimit": 20}}


@pytest.mark.parametrize(
    ("synth", "gate", "why"),
    [
        (
            synth_of(tools=tools_template(permits={"customer-basic": [KNOWLEDGE]})),
            "tools bound",
            f"bound to none of {', '.join(GROUPS)} in the production templates: "
            f"{KNOWLEDGE} (no Cedar permit and no tool guard binding)",
        ),
        (
            synth_of(tools=tools_template(bindings={group: [] for group in GROUPS})),
            "tools bound",
            f"bound to none of {', '.join(GROUPS)} in the production templates: {KNOWLEDGE} (no tool guard binding)",
        ),
        (
            synth_of(
                tools=tools_template(
                    permits={"platform-admins": [KNOWLEDGE]},
                    bindings={"platform-admins": [], "customer-gold": [KNOWLEDGE]},
                )
            ),
            "tools bound",
            f"bound to none of {', '.join(GROUPS)} in the production templates: "
            f"{KNOWLEDGE} (permitted to platform-admins, listed for customer-gold)",
        ),
        (
            synth_of(gateway_keys=keys_template(keys=("platform-admins",))),
            "usage plans",
            "customer-gold: no API key in the authorizer's keys document",
        ),
        (
            synth_of(gateway_keys=keys_template(in_plan=("platform-admins",))),
            "usage plans",
            "customer-gold: its API key is in no usage plan",
        ),
        (
            synth_of(gateway_keys=keys_template(plan=NO_QUOTA)),
            "usage plans",
            "platform-admins: its usage plan has no request quota; customer-gold: its usage plan has no request quota",
        ),
        (
            synth_of(gateway_keys=keys_template(plan={**NO_QUOTA, "Throttle": {}, "Quota": {"Limit": 5}})),
            "usage plans",
            "platform-admins: its usage plan has no throttle; customer-gold: its usage plan has no throttle",
        ),
        (
            synth_of(gateway_keys=keys_template(plan={**NO_QUOTA, "ApiStages": [], "Quota": {"Limit": 5}})),
            "usage plans",
            "platform-admins: its usage plan is on no API stage; customer-gold: its usage plan is on no API stage",
        ),
    ],
)
def test_templates_that_do_not_bind_a_tool_or_meter_a_group_fail_the_gate(
    cdk_context: dict[str, Any], synth: Callable[[Any], dict[str, dict[str, Any]]], gate: str, why: str
) -> None:
    """The bindings and usage plans are read from the promoted production synth, not from the
    config that is meant to produce them: templates that lack them fail, whatever the config says."""
    found = failing(gates_of(cdk_context, synth=synth))
    assert list(found) == [gate]
    assert found[gate].why == why
    assert "make synth TIER=production" in found[gate].fix


def test_the_bindings_and_usage_plans_gates_read_the_real_production_templates(
    assembly: Assembly, cdk_context: dict[str, Any]
) -> None:
    """On the synthesized app: the sample workload's groups already have knowledge_search, so the
    gates pass with what the templates say; each group's usage plan is its configured one. Without
    its groups' permits, the tool is bound to none of them."""
    config = load_config(cdk_context)
    production = {name: t for name, t in assembly.templates.items() if "-production-" in name}
    groups = config.workloads[WORKLOAD].groups

    bound = promote.bindings_gate(config, WORKLOAD, production)
    plans = promote.usage_plans_gate(config, WORKLOAD, production)

    assert bound.passed, bound
    expected = [config.production.groups[g].usage_plan for g in groups]
    assert (plans.passed, plans.why) == (
        True,
        "; ".join(
            f"{g} {p.rate_limit:g}/s, {p.quota_limit} per {p.quota_period.lower()}"
            for g, p in zip(groups, expected, strict=True)
        ),
    )
    unpermitted = copy.deepcopy(production)
    for template in unpermitted.values():
        resources = template["Resources"]
        for key in [k for k, r in resources.items() if r["Type"] == "AWS::BedrockAgentCore::Policy"]:
            del resources[key]
    gate = promote.bindings_gate(config, WORKLOAD, unpermitted)
    assert not gate.passed
    assert gate.why.endswith(f"{KNOWLEDGE} (no Cedar permit)")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            lambda g: g["PolicyEngineConfiguration"].update(Mode="LOG_ONLY"),
            "the tools gateway's policy engine is in LOG_ONLY mode, not ENFORCE",
        ),
        (lambda g: g.pop("PolicyEngineConfiguration"), "the tools gateway's policy engine is not set, not ENFORCE"),
        (lambda g: g.pop("InterceptorConfigurations"), "the tools gateway has no REQUEST or RESPONSE interceptor"),
        (lambda g: g["InterceptorConfigurations"].pop(), "the tools gateway has no RESPONSE interceptor"),
    ],
    ids=["log-only", "no-engine", "no-interceptors", "no-answer-interceptor"],
)
def test_tools_permitted_and_listed_are_not_bound_where_the_gateway_does_not_enforce_them(
    cdk_context: dict[str, Any], change: Callable[[dict[str, Any]], Any], why: str
) -> None:
    """A permit only logged (LOG_ONLY), no policy engine, or no tool guard on the requests or the
    answers: every group's caller lists or calls tools the bindings do not give it."""
    tools = tools_template()
    change(tools["Resources"]["Gateway"]["Properties"])
    found = failing(gates_of(cdk_context, synth=synth_of(tools=tools)))
    assert (list(found), found["tools bound"].why) == (["tools bound"], why)


@pytest.fixture
def workload_file(cdk_context: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """Writes a copy of workloads/support.json with some keys changed into a folder of its own
    (inside the repository, which load_config reads folders relative to; ignored by git) and returns
    the context that reads workloads from there; promotion reports go under tmp_path."""
    folder = ROOT / "build" / f"test-promote-workloads-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(promote, "REPORTS", tmp_path / "promotions")

    def write(**changes: Any) -> tuple[dict[str, Any], Path]:
        declared = json.loads((ROOT / "workloads" / f"{WORKLOAD}.json").read_text())
        for key, value in changes.items():
            *parents, last = key.split("__")
            node = declared
            for part in parents:
                node = node[part]
            node[last] = value
        path = folder / f"{WORKLOAD}.json"
        path.write_text(json.dumps(declared, indent=2))
        return {**cdk_context, "blueprint.workloads_dir": str(folder.relative_to(ROOT))}, path

    yield write
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize(
    ("changes", "synth", "row"),
    [
        (
            {"sandbox__budget": None},
            clean_synth,
            "| budget | FAIL | no budget of its own (its sandbox falls back to the tier default, sandbox.budget "
            '$1000/month) | set sandbox.budget {"monthly_limit_usd": ..., "alert_emails": [...]} in the workload file |',
        ),
        (
            {},
            synth_of(tools=tools_template(permits={})),
            f"| tools bound | FAIL | bound to none of {', '.join(GROUPS)} in the production templates: {KNOWLEDGE} "
            "(no Cedar permit and no tool guard binding) | each group's permit and bindings come from "
            "production.groups.<group>.tools",
        ),
        (
            {},
            synth_of(gateway_keys=keys_template(keys=())),
            "| usage plans | FAIL | platform-admins: no API key in the authorizer's keys document; customer-gold: "
            "no API key in the authorizer's keys document | give production.groups.<group>.usage_plan its "
            "rate_limit, burst_limit and quota_limit",
        ),
    ],
)
def test_make_promote_exits_1_with_the_failing_row_and_changes_nothing(
    workload_file: Any,
    capsys: pytest.CaptureFixture[str],
    changes: dict[str, Any],
    synth: Callable[[Any], dict[str, dict[str, Any]]],
    row: str,
) -> None:
    context, path = workload_file(**changes)
    before = path.read_bytes()

    assert promote.main([WORKLOAD], context=context, synth=synth, lint=lambda _: []) == 1

    out, err = capsys.readouterr()
    assert row in out
    assert sum(line.startswith("| ") and "| FAIL |" in line for line in out.splitlines()) == 1
    assert f"{WORKLOAD} is not ready: fix the failing gates above." in err
    assert path.read_bytes() == before
    assert not promote.REPORTS.exists()


def test_a_typed_twice_output_names_the_workload_key(cdk_context: dict[str, Any]) -> None:
    context = sample(cdk_context, outputs={"chat": {"unit_price_usd": 1, "quota": {"limit": 10}}})
    why = failing(gates_of(context))["declaration"].why
    assert "blueprint.workloads.support.outputs.chat: production.output_types already has chat" in why


def test_macie_off_fails_its_gate(cdk_context: dict[str, Any]) -> None:
    context = {**cdk_context, "blueprint.production.account_settings.macie": "off"}
    assert (
        failing(gates_of(context))["Macie coverage"].fix == "set production.account_settings.macie to adopt or manage"
    )


def test_a_document_bucket_the_macie_job_does_not_scan_fails_its_gate(cdk_context: dict[str, Any]) -> None:
    """The quarantine bucket holds what was already found; the landing and curated ones must be scanned."""
    unscanned = {"genai-production-knowledge": knowledge_template(scanned=("Landing",))}
    gate = failing(gates_of(cdk_context, synth=lambda _: unscanned))["Macie coverage"]
    assert gate.why == "Macie's classification job does not scan genai-production-knowledge/Curated"
    assert "bucketDefinitions" in gate.fix
    nothing = failing(gates_of(cdk_context, synth=lambda _: {"genai-production-gateway": {"Resources": {}}}))
    assert nothing["Macie coverage"].why == "no bucket that documents pass through in the production templates"


def test_a_failed_synth_leaves_the_macie_gate_unchecked_not_blamed(cdk_context: dict[str, Any]) -> None:
    def broken(_: Any) -> dict[str, dict[str, Any]]:
        raise RuntimeError("cdk-nag: AwsSolutions-S1 on Documents")

    gates = failing(gates_of(cdk_context, synth=broken))
    assert gates["cdk-nag and cfn-lint"].why == "cdk-nag: AwsSolutions-S1 on Documents"
    for gate in ("Macie coverage", "tools bound", "usage plans"):
        assert gates[gate].why == "not checked: the production synth failed"


def test_the_production_tiers_macie_job_scans_every_bucket_documents_pass_through(
    assembly: Assembly,
) -> None:
    """On the synthesized app: the landing bucket (uploads, connectors) and the curated one (the
    knowledge base's source) are found, and the job scans both."""
    found = {
        stack: buckets
        for stack, template in assembly.templates.items()
        if "-production-" in stack and (buckets := promote.document_buckets(template))[0]
    }
    ((stack, (passed, scanned)),) = found.items()
    assert stack.endswith("-production-knowledge")
    assert len(passed) == 2
    assert passed <= scanned


def test_golden_cases_need_recorded_traces_scored_at_the_floor(cdk_context: dict[str, Any], tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"case": "refund-policy", "tool_calls": []}) + "\n")
    gate = failing(gates_of(cdk_context, traces=traces))["golden set at the floor"]
    assert (gate.why, gate.fix) == ("no recorded trace for shipping-time, warranty", "record them in traces.jsonl")
    wrong = {"name": "orders___find_orders", "arguments": {"customer_email": "a@example.com"}, "ok": True}
    traces.write_text(
        "".join(
            json.dumps({"case": c, "tool_calls": [wrong]}) + "\n"
            for c in ("refund-policy", "shipping-time", "warranty")
        )
    )
    gate = failing(gates_of(cdk_context, traces=traces))["golden set at the floor"]
    assert gate.why == "scored 0.00, floor 0.80"


@pytest.mark.parametrize(
    ("groups", "cases", "why"),
    [
        # Asked by a group the workload does not serve, answered by tools it does not use.
        (
            ["customer-gold"],
            ["refund-policy", "internal-escalation"],
            "internal-escalation is asked by platform-admins",
        ),
        (None, ["refund-policy", "orders-latest"], "orders-latest expects find_orders"),
        (None, ["order-then-policy"], "order-then-policy expects find_orders"),  # an alternative's tool counts too
    ],
)
def test_golden_cases_must_be_about_the_workload(
    cdk_context: dict[str, Any], groups: list[str] | None, cases: list[str], why: str
) -> None:
    """Cases that pass already but judge other groups' questions or other tools say nothing of this one."""
    context = sample(cdk_context, evaluation__cases=cases, **({"groups": groups} if groups else {}))
    gate = failing(gates_of(context))["golden set at the floor"]
    assert (gate.why, gate.fix) == (
        f"not about this workload: {why}",
        "list cases its groups ask that its tools answer",
    )


def test_a_case_whose_right_tool_only_ever_failed_fails_the_gate(cdk_context: dict[str, Any], tmp_path: Path) -> None:
    traces = tmp_path / "traces.jsonl"
    lines = [json.loads(line) for line in TRACES.read_text().splitlines() if line.strip()]
    for line in lines:
        if line["case"] == "warranty":
            line["tool_calls"] = [{**call, "ok": False} for call in line["tool_calls"]]
    traces.write_text("".join(json.dumps(line) + "\n" for line in lines))
    gate = failing(gates_of(cdk_context, traces=traces))["golden set at the floor"]
    assert gate.why == "no call of a right tool succeeded in warranty"


def test_a_missing_or_corrupt_golden_set_or_trace_file_fails_the_gate_naming_it(
    cdk_context: dict[str, Any], tmp_path: Path
) -> None:
    golden = tmp_path / "golden.json"
    gate = failing(gates_of(cdk_context, golden=golden))["golden set at the floor"]
    assert gate.why == f"{golden}: no such file"
    golden.write_text("[")
    gate = failing(gates_of(cdk_context, golden=golden))["golden set at the floor"]
    assert gate.why.startswith(f"{golden}: not JSON")

    traces = tmp_path / "traces.jsonl"
    gate = failing(gates_of(cdk_context, traces=traces))["golden set at the floor"]
    assert gate.why == f"{traces}: no such file"
    traces.write_text(json.dumps({"case": "refund-policy", "tool_calls": []}) + "\nnot json\n")
    gate = failing(gates_of(cdk_context, traces=traces))["golden set at the floor"]
    assert gate.why.startswith(f"{traces}: line 2 is not JSON")
    assert gate.fix == "re-record the traces or fix that line"


def test_a_synth_that_cdk_nag_refuses_or_cfn_lint_flags_fails_the_gate(cdk_context: dict[str, Any]) -> None:
    def refused(context: Any) -> dict[str, dict[str, Any]]:
        raise RuntimeError("ValidationFailed: ERROR The IAM entity contains wildcard permissions (AwsSolutions)")

    gate = failing(gates_of(cdk_context, synth=refused))["cdk-nag and cfn-lint"]
    assert gate.why.startswith("ValidationFailed: ERROR The IAM entity contains wildcard")
    gate = failing(gates_of(cdk_context, lint=lambda _: ["E3012 Property Resources/X/Properties/Y should be..."]))[
        "cdk-nag and cfn-lint"
    ]
    assert gate.why == "cfn-lint: E3012 Property Resources/X/Properties/Y should be..."


def test_the_synth_is_of_the_promoted_config(cdk_context: dict[str, Any]) -> None:
    seen: list[Any] = []

    def synth(context: Any) -> dict[str, dict[str, Any]]:
        seen.append(context)
        return clean_synth(context)

    gates_of(cdk_context, synth=synth)
    assert seen[0][f"blueprint.workloads.{WORKLOAD}.stage"] == "production"


def test_an_unknown_workload_is_named(cdk_context: dict[str, Any]) -> None:
    gates, templates = promote.check(cdk_context, "nosuch", synth=clean_synth, lint=lambda _: [])
    assert (gates[0].passed, gates[0].why, templates) == (False, "no workload nosuch", {})
    assert "declare workloads/nosuch.json" in gates[0].fix


def test_promotion_changes_only_the_stage(tmp_path: Path) -> None:
    declared = Path("workloads/support.json").read_text()
    path = tmp_path / "support.json"
    path.write_text(declared)
    promote.set_stage(path, "production")
    changed = path.read_text()
    assert json.loads(changed) == {**json.loads(declared), "stage": "production"}
    assert [a for a, b in zip(declared.splitlines(), changed.splitlines(), strict=True) if a != b] == [
        '  "stage": "sandbox",'
    ]


def test_the_gate_table_says_how_to_fix_only_what_failed() -> None:
    rendered = promote.table([Gate("a", True, "fine", "unused"), Gate("b", False, "broken", "mend it")])
    assert rendered.splitlines()[2:] == ["| a | PASS | fine |  |", "| b | FAIL | broken | mend it |"]


def test_the_promotion_report_draws_the_promoted_tier_with_what_changed_highlighted(assembly: Assembly) -> None:
    """The report holds what `make review` shows, the picture included: the production tier after
    the promotion, the resources it changes highlighted (here the gateway's function, and nothing else)."""
    before = {name: t for name, t in assembly.templates.items() if "-production-" in name}
    after = copy.deepcopy(before)
    gateway = next(name for name in after if name.endswith("-production-gateway"))
    function = next(
        r
        for key, r in after[gateway]["Resources"].items()
        if key.startswith("GatewayFunction") and r["Type"] == "AWS::Lambda::Function"
    )
    function["Properties"]["MemorySize"] = 4096
    gates = [Gate("stage", True, "stage is sandbox")]

    report = promote.promotion_report(WORKLOAD, gates, before, after)

    changes, picture = report.split("\n### Picture\n", 1)
    assert "\n## What changes in the production tier\n" in changes
    chart = picture.split("```mermaid\n", 1)[1].split("```", 1)[0]
    assert chart.startswith("flowchart LR")
    assert not [line for line in chart.splitlines() if line.startswith("#")]  # headings shift, the chart does not
    (marked,) = [line for line in chart.splitlines() if line.strip().startswith("class ")]
    assert marked.split()[1] == "gateway_GatewayFunction"
    assert "### Picture" not in promote.promotion_report(WORKLOAD, gates, before, before)
