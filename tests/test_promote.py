"""`make promote`: each readiness gate passes for the sample workload and fails, naming the fix,
for a workload that misses it; on success only the workload's stage changes."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.synth_fixtures import Assembly
from tools import promote
from tools.promote import Gate

WORKLOAD = "support"


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
            "Job": {"Type": "Custom::MacieClassificationJob", "Properties": {"Create": {"Fn::Join": job_call}}},
        }
    }


def clean_synth(context: Any) -> dict[str, dict[str, Any]]:
    return {"genai-production-gateway": {"Resources": {}}, "genai-production-knowledge": knowledge_template()}


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
        "prices and budget",
        "golden set at the floor",
        "declaration",
        "cdk-nag and cfn-lint",
        "quotas",
    }


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
            "prices and budget",
            "set outputs.<name>.unit_price_usd",
        ),
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
    assert gates["Macie coverage"].why == "not checked: the production synth failed"


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
