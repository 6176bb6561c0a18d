"""The observability stack: the dashboard's widgets, alarm thresholds from config, the quota
refusals' Contributor Insights rule and its one alarm, the live evaluator's subscription, online
evaluation, Transaction Search, model invocation logging."""

from __future__ import annotations

import copy
import json
import logging
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

from agent.contract import AgentGroups
from ai_gateway.contract import INPUT, Dimension as GatewayDimension, Metric as Gateway
from ai_gateway.telemetry import Telemetry
from evaluation import handler as evaluator
from knowledge_search import handler as knowledge_search
from legacy_tools import handler as legacy_tools
from shared.aws_errors import UpstreamError
from shared.observability import STAGES, Metric
from shared.runtime_config import (
    ENVIRONMENT_DIMENSION,
    REFUSED_METRIC,
    ConfigLocation,
    DocumentReader,
    RuntimeConfigError,
)
from shared.telemetry import emit
from stacks.config import load_config
from stacks.production.observability import RULE_DEFINITION_LIMIT, TOP_GROUPS_TITLE, quota_refusals_rule
from tests.infra.cfn import only, props, render, resources
from tests.infra.conftest import Assembly, Synthesizer
from tests.lambdas.conftest import FakeContext
from tool_guard.contract import SERVICE as TOOL_GUARD, Metric as ToolGuard
from web_mcp.contract import WebPolicy


def production(cdk_context: dict[str, Any]) -> Any:
    return load_config(cdk_context).production


def dashboard_body(observability: dict[str, Any]) -> dict[str, Any]:
    body = props(observability, "AWS::CloudWatch::Dashboard")["DashboardBody"]
    rendered = render(body)
    text = rendered if isinstance(rendered, str) else "".join(map(str, body["Fn::Join"][1]))
    return dict(json.loads(text.replace("<AWS::Region>", "us-east-1")))


def test_the_dashboard_shows_every_stage_and_the_genai_signals(observability: dict[str, Any]) -> None:
    widgets = dashboard_body(observability)["widgets"]
    titles = [w["properties"].get("title") for w in widgets if w["type"] == "metric"]
    assert titles == [
        "Requests by stage",
        "Errors by stage",
        "Latency p50 / p90 / p99 by stage (ms)",
        "Tokens by model",
        "Estimated cost by model (USD)",
        "Outputs by group and type",
        "Quota refusals by group",
        TOP_GROUPS_TITLE,
        "Guardrail interventions by type (input / output)",
        "Tool calls and tool errors by tool",
        "Tool-call accuracy by agent (%)",
        "Ingestion throughput and outcomes",
        "Failed function invocations (crashes, timeouts, out of memory)",
        "Ingestion DLQ: messages waiting and oldest age (s)",
    ]
    by_title = {w["properties"].get("title"): w["properties"] for w in widgets if w["type"] == "metric"}
    latency = json.dumps(by_title["Latency p50 / p90 / p99 by stage (ms)"]["metrics"])
    for stage in STAGES:
        for statistic in ("p50", "p90", "p99"):
            assert f'"Stage", "{stage}", {{"stat": "{statistic}"' in latency
    assert "SEARCH(" in json.dumps(by_title["Tool calls and tool errors by tool"]["metrics"])
    failed = by_title["Failed function invocations (crashes, timeouts, out of memory)"]["metrics"]
    assert {(m[0], m[1]) for m in failed} == {("AWS/Lambda", "Errors")}
    labels = {m[-1]["label"] for m in failed}
    assert {"GatewayFunction", "JobsWorker", "PreTokenTrigger", "ToolCallEvaluator"} <= labels
    assert "GatewayAuthorizer" not in labels


def test_alarm_thresholds_come_from_config(observability: dict[str, Any], cdk_context: dict[str, Any]) -> None:
    config = production(cdk_context)
    settings = config.observability
    alarms: dict[str, dict[str, Any]] = {
        name: a["Properties"] for name, a in resources(observability, "AWS::CloudWatch::Alarm").items()
    }

    def alarm(prefix: str) -> dict[str, Any]:
        (found,) = [a for n, a in alarms.items() if n.startswith(prefix)]
        return found

    for stage in STAGES:
        assert alarm(f"ErrorRate{stage.title()}")["Threshold"] == settings.error_rate_percent
        latency = alarm(f"LatencyP99{stage.title()}")
        assert (latency["Threshold"], latency["ExtendedStatistic"]) == (settings.p99_latency_ms, "p99")
    assert alarm("GuardrailSpikeInput")["Threshold"] == settings.guardrail_interventions_per_5_minutes
    assert alarm("QuotaExhausted")["Threshold"] == settings.quota_refusals_per_5_minutes
    for agent in config.agents:
        suffix = "".join(p.title() for p in agent.split("_"))
        floor = alarm(f"ToolSelectionAccuracy{suffix}")
        assert (floor["Threshold"], floor["ComparisonOperator"]) == (
            settings.tool_accuracy_floor * 100,
            "LessThanThreshold",
        )
    assert all(render(a["AlarmActions"]) == ["<Alarms>"] for a in alarms.values())
    emails = {s["Properties"]["Endpoint"] for s in resources(observability, "AWS::SNS::Subscription").values()}
    assert emails == set(settings.alarm_emails)


def test_the_tool_interceptors_refusals_and_failures_alarm_on_the_series_it_emits(
    observability: dict[str, Any], tools: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    # Powertools dimensions a function's metrics by its service name alone: the alarms must name
    # the interceptor's, in the tier's namespace, or they watch a series nothing writes.
    (guard,) = [
        f["Properties"]["Environment"]["Variables"]
        for name, f in resources(tools, "AWS::Lambda::Function").items()
        if name.startswith("ToolGuardFunction")
    ]
    assert guard["POWERTOOLS_SERVICE_NAME"] == TOOL_GUARD
    alarms = resources(observability, "AWS::CloudWatch::Alarm")
    watched = {
        a["Properties"]["MetricName"]: a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("Dimensions") == [{"Name": "service", "Value": TOOL_GUARD}]
    }
    assert set(watched) == {ToolGuard.CALLS_REFUSED, ToolGuard.FAILURES}
    for alarm in watched.values():
        assert (alarm["Namespace"], alarm["Statistic"], alarm["Period"]) == (
            guard["POWERTOOLS_METRICS_NAMESPACE"],
            "Sum",
            300,
        )
        assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
    threshold = production(cdk_context).observability.tool_refusals_per_5_minutes
    assert watched[ToolGuard.CALLS_REFUSED]["Threshold"] == threshold
    assert watched[ToolGuard.FAILURES]["Threshold"] == 1  # one failure is a request refused for nothing


def test_metering_errors_alarm_on_the_series_every_gateway_function_emits(
    observability: dict[str, Any], gateway: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """One failed delivery record alarms, across groups: the gateway's functions (buffered,
    streamed, the jobs' worker) write it by their service name alone, as the alarm reads it."""
    admitting = [
        f["Properties"]["Environment"]["Variables"]
        for name, f in resources(gateway, "AWS::Lambda::Function").items()
        if name.startswith(("GatewayFunction", "GatewayStreamFunction", "JobsWorker"))
    ]
    assert len(admitting) == 3
    ((service, namespace),) = {
        (env["POWERTOOLS_SERVICE_NAME"], env["POWERTOOLS_METRICS_NAMESPACE"]) for env in admitting
    }
    assert service == "ai_gateway"
    (alarm,) = [
        a["Properties"]
        for a in resources(observability, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == Gateway.METERING_ERRORS
    ]
    assert (alarm["Namespace"], alarm["Dimensions"], alarm["Statistic"], alarm["Period"]) == (
        namespace,
        [{"Name": "service", "Value": service}],
        "Sum",
        300,
    )
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (1, "GreaterThanOrEqualToThreshold")
    # What the gateway writes when a record fails: that series, whatever group the request was for.
    telemetry = Telemetry(Metrics(namespace=namespace, service=service), Logger())
    telemetry.request("customer-gold")
    capsys.readouterr()
    telemetry.metering_failed("r-1", UpstreamError("dynamodb", "InternalServerError"))
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines() if "_aws" in text]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert (directive["Namespace"], directive["Dimensions"]) == (namespace, [["service"]])
    assert (line["service"], line[Gateway.METERING_ERRORS]) == (service, [1.0])


# The gateway's functions that admit quota, and those that run agent turns (and log them).
QUOTA_FUNCTIONS = ("GatewayFunction", "GatewayStreamFunction")
AGENT_TURN_FUNCTIONS = (*QUOTA_FUNCTIONS, "JobsWorker")


def log_groups_of(gateway: dict[str, Any], functions: tuple[str, ...]) -> list[str]:
    """The log groups (logical ids) the gateway's functions named ``functions`` log to, in order."""
    found = []
    for prefix in functions:
        (function,) = [
            f
            for n, f in resources(gateway, "AWS::Lambda::Function").items()
            if re.fullmatch(rf"{prefix}[0-9A-F]{{8}}", n)
        ]
        found.append(function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"])
    return found


def gateway_reference(value: Any, gateway: dict[str, Any]) -> str:
    """What a cross-stack reference to the gateway stack names: ``<LogicalId>`` for a Ref, and
    ``<LogicalId.Attribute>`` for a GetAtt (hashes kept)."""
    reference = value["Fn::GetStackOutput"]
    assert reference["StackName"] == "genai-production-gateway"
    output = gateway["Outputs"][reference["OutputName"]]["Value"]
    if "Ref" in output:
        return f"<{output['Ref']}>"
    logical_id, attribute = output["Fn::GetAtt"]
    return f"<{logical_id}.{attribute}>"


def test_agent_turns_of_every_function_that_runs_them_reach_the_live_evaluator(
    observability: dict[str, Any], gateway: dict[str, Any]
) -> None:
    """The buffered and streaming functions and the jobs' worker each log their agent turns to a
    log group of their own: one subscription filter on each, with the permission for CloudWatch
    Logs to invoke the evaluator from that log group, made before the filter."""
    subscriptions = resources(observability, "AWS::Logs::SubscriptionFilter")
    permissions = resources(observability, "AWS::Lambda::Permission")
    read = []
    for subscription in subscriptions.values():
        properties = subscription["Properties"]
        assert properties["FilterPattern"] == '{ $.message = "agent turn" }'
        assert render(properties["DestinationArn"]) == "<ToolCallEvaluator.Arn>"
        log_group = gateway_reference(properties["LogGroupName"], gateway)
        (permission,) = [permissions[d]["Properties"] for d in subscription.get("DependsOn", []) if d in permissions]
        assert (permission["Action"], permission["Principal"], render(permission["FunctionName"])) == (
            "lambda:InvokeFunction",
            "logs.amazonaws.com",
            "<ToolCallEvaluator.Arn>",
        )
        assert gateway_reference(permission["SourceArn"], gateway) == f"{log_group[:-1]}.Arn>"
        read.append(log_group)
    assert sorted(read) == sorted(f"<{g}>" for g in log_groups_of(gateway, AGENT_TURN_FUNCTIONS))
    assert len(permissions) == len(subscriptions)
    evaluator = props(observability, "AWS::Lambda::Function", "ToolCallEvaluator")
    assert evaluator["Handler"] == "evaluation.handler.lambda_handler"


def test_agentcore_evaluates_a_sample_of_each_agents_sessions(
    agent_stacks: dict[str, dict[str, Any]], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    evaluations = [
        e["Properties"]
        for template in agent_stacks.values()  # each agent's own stack
        for e in resources(template, "AWS::BedrockAgentCore::OnlineEvaluationConfig").values()
    ]
    assert len(evaluations) == len(config.agents)
    for evaluation in evaluations:
        assert (
            evaluation["Rule"]["SamplingConfig"]["SamplingPercentage"]
            == config.observability.evaluation_sampling_percentage
        )
        assert [e["EvaluatorId"] for e in evaluation["Evaluators"]] == [
            "Builtin.ToolSelectionAccuracy",
            "Builtin.ToolParameterAccuracy",
        ]


# --- quota refusals: one Contributor Insights rule, one alarm ----------------------------------

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_MISSING = object()


def rule_of(observability: dict[str, Any], gateway: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """The stack's one insight rule: logical id, properties, and its body parsed (each log group
    of the gateway's, a cross-stack output, as ``<LogicalId>``)."""
    logical_id, rule = only(observability, "AWS::CloudWatch::InsightRule")
    body = rule["Properties"]["RuleBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    text = "".join(p if isinstance(p, str) else gateway_reference(p, gateway) for p in parts)
    return logical_id, rule["Properties"], dict(json.loads(text))


def at(document: Any, path: str) -> Any:
    """``path`` (Contributor Insights' JSON property notation: ``$.a.b[0].c``) in ``document``."""
    assert path.startswith("$"), path
    steps = list(_STEP.finditer(path, 1))
    assert "".join(m.group(0) for m in steps) == path[1:], f"not JSON property notation: {path}"
    value = document
    for step in steps:
        name, index = step.groups()
        if name is not None and isinstance(value, dict) and name in value:
            value = value[name]
        elif index is not None and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _MISSING
    return value


def passes(document: dict[str, Any], condition: dict[str, Any]) -> bool:
    """One filter as the rule syntax defines the operators this rule uses."""
    value = at(document, condition["Match"])
    operators = set(condition) - {"Match"}
    if operators == {"In"}:
        return isinstance(value, str) and value in condition["In"]
    if operators == {"IsPresent"}:
        present = value is not _MISSING and not isinstance(value, dict | list)  # leaf values only
        return present is condition["IsPresent"]
    raise AssertionError(f"an operator this test does not evaluate: {condition}")


def counted(body: dict[str, Any], line: str) -> str | None:
    """The contributor ``line`` counts for under the rule, or None when its filters drop it."""
    document = json.loads(line)
    if not all(passes(document, f) for f in body["Contribution"]["Filters"]):
        return None
    (key,) = body["Contribution"]["Keys"]
    contributor = at(document, key)
    assert isinstance(contributor, str), f"{key} is no contributor in {line}"
    return contributor


@pytest.fixture
def gateway_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    """What the gateway's log group receives for a request refused for its quota: the usage
    stage's log line and EMF, the quota refusal (ai_gateway.telemetry.quota_refused), the
    request's own metrics with their Group dimension, and a guardrail intervention's EMF."""
    capsys.readouterr()
    metrics = Metrics(namespace="genai/production", service="ai_gateway")
    telemetry = Telemetry(metrics, Logger(service="ai_gateway"))
    telemetry.request("customer-gold")
    with telemetry.stage("usage", "c-1", {"gen_ai.operation.name": "admit"}) as record:
        record.end("refused", "quota_exceeded")
    telemetry.quota_refused("customer-gold")
    telemetry.refused(429, "quota_exceeded")
    emit(Gateway.GUARDRAIL_INTERVENTIONS, MetricUnit.Count, 1, {str(GatewayDimension.SOURCE): INPUT})
    metrics.flush_metrics()  # the handler's log_metrics does this at the end of the request
    return [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def test_the_quota_rule_counts_refusals_by_the_contracts_group_field(
    observability: dict[str, Any], gateway: dict[str, Any]
) -> None:
    _, rule, body = rule_of(observability, gateway)
    assert rule["RuleState"] == "ENABLED"
    assert re.fullmatch(r"[\x20-\x7E]{1,128}", rule["RuleName"])
    assert rule["RuleName"].startswith("genai-production-")  # the tier's, so tiers never share a rule
    assert body["Schema"] == {"Name": "CloudWatchLogRule", "Version": 1}
    # Every function that admits quota, the OpenAI route's streaming function too.
    quota_log_groups = [f"<{g}>" for g in log_groups_of(gateway, QUOTA_FUNCTIONS)]
    assert (body["LogFormat"], body["LogGroupNames"], body["AggregateOn"]) == ("JSON", quota_log_groups, "Count")
    assert "ValueOf" not in body["Contribution"]  # Count: one log line, one refusal
    assert body["Contribution"]["Keys"] == [f"$.{GatewayDimension.GROUP}"]
    filters = body["Contribution"]["Filters"]
    assert len(filters) <= 4  # the syntax's limits: four filters, ten values each
    assert all(len(f.get("In", [])) <= 10 for f in filters)
    assert [f["In"] for f in filters if "In" in f] == [[Gateway.QUOTA_REFUSALS_BY_GROUP]]
    assert body == quota_refusals_rule(quota_log_groups)
    # The definition's limit, with each name at the longest CloudWatch Logs allows (512).
    assert len(json.dumps(quota_refusals_rule(["x" * 512] * len(QUOTA_FUNCTIONS)))) <= RULE_DEFINITION_LIMIT


def test_a_real_quota_refusal_line_and_only_it_counts_for_its_group(
    observability: dict[str, Any], gateway: dict[str, Any], gateway_lines: list[str]
) -> None:
    _, _, body = rule_of(observability, gateway)
    emf = [json.loads(line) for line in gateway_lines if line.startswith('{"_aws"')]
    assert len(emf) == 3  # the stage's with the request's own metrics, the refusal, the guardrail's
    assert len(gateway_lines) > len(emf)  # and the Logger's JSON lines
    contributors = [counted(body, line) for line in gateway_lines]
    assert [c for c in contributors if c is not None] == ["customer-gold"]
    (refusal,) = [json.loads(line) for line, c in zip(gateway_lines, contributors, strict=True) if c]
    # Count is the refusals only while each such line carries exactly one refusal.
    assert refusal[Gateway.QUOTA_REFUSALS_BY_GROUP] in (1, [1])
    (request,) = [d for d in emf if Gateway.REQUESTS in d]
    assert request[GatewayDimension.GROUP] == "customer-gold"  # same key, other metrics: filtered out


def test_one_quota_alarm_on_the_rules_top_contributor_waits_for_the_rule(
    observability: dict[str, Any], gateway: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    rule_id, rule, _ = rule_of(observability, gateway)
    alarms = resources(observability, "AWS::CloudWatch::Alarm")
    on_insights = {n: a for n, a in alarms.items() if "INSIGHT_RULE_METRIC" in json.dumps(a)}
    assert list(on_insights) == [n for n in alarms if n.startswith("QuotaExhausted")]
    (alarm,) = on_insights.values()
    properties = alarm["Properties"]
    ((query,),) = [properties["Metrics"]]
    assert query["Expression"] == f"INSIGHT_RULE_METRIC('{rule['RuleName']}', 'MaxContributorValue')"
    assert (query["Period"], query["ReturnData"], properties["EvaluationPeriods"]) == (300, True, 1)
    assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert properties["Threshold"] == production(cdk_context).observability.quota_refusals_per_5_minutes
    assert properties["TreatMissingData"] == "notBreaching"
    assert rule_id in alarm["DependsOn"]
    assert rule["RuleName"] in properties["AlarmDescription"]
    assert TOP_GROUPS_TITLE in properties["AlarmDescription"]


def test_the_dashboard_shows_the_rules_top_groups(observability: dict[str, Any], gateway: dict[str, Any]) -> None:
    _, rule, _ = rule_of(observability, gateway)
    widgets = dashboard_body(observability)["widgets"]
    (top,) = [w["properties"] for w in widgets if w["properties"].get("title") == TOP_GROUPS_TITLE]
    assert top["insightRule"] == {"ruleName": rule["RuleName"], "maxContributorCount": 10, "orderBy": "Sum"}
    assert top["period"] == 300


EXTRA_GROUPS = [f"customer-extra{index:02d}" for index in range(4)]


@pytest.fixture(scope="module")
def more_groups(synthesize: Synthesizer, cdk_context: dict[str, Any]) -> Assembly:
    """The app with EXTRA_GROUPS as well: copies of its first customer group (by name; of its first
    group, if it has no customer group), each with a precedence of its own after the others'."""
    configured = production(cdk_context).groups
    model = min(configured, key=lambda name: (configured[name].kind != "customer", name))
    last = max(group.precedence for group in configured.values())
    blueprint = copy.deepcopy(cdk_context["blueprint"])
    groups = blueprint["production"]["groups"]
    for index, name in enumerate(EXTRA_GROUPS):
        groups[name] = {**copy.deepcopy(groups[model]), "precedence": last + 1 + index}
    return synthesize(blueprint=blueprint)


def test_quota_alarms_and_rules_do_not_grow_with_groups(observability: dict[str, Any], more_groups: Assembly) -> None:
    everything = json.dumps(more_groups.templates)
    assert all(f'"{name}' in everything for name in EXTRA_GROUPS)  # the app did take the groups in
    larger = more_groups.template("-production-observability")
    for template in (observability, larger):
        assert len(resources(template, "AWS::CloudWatch::InsightRule")) == 1
        assert len([n for n in resources(template, "AWS::CloudWatch::Alarm") if n.startswith("QuotaExhausted")]) == 1
    assert sorted(resources(larger, "AWS::CloudWatch::Alarm")) == sorted(
        resources(observability, "AWS::CloudWatch::Alarm")
    )


# --- tool metrics: the widget searches what the functions write -----------------------------------

_SEARCH = re.compile(r"SEARCH\('\{([^}]*)\} MetricName=\"(\w+)\"', 'Sum', 300\)")


def emitted_sets(lines: list[str], names: set[str]) -> set[tuple[str, frozenset[str]]]:
    """(metric, its dimension set) of every metric in ``names`` the EMF ``lines`` carry."""
    found = set()
    for line in lines:
        document = json.loads(line)
        for directive in document.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                if metric["Name"] in names:
                    found |= {(metric["Name"], frozenset(dimensions)) for dimensions in directive["Dimensions"]}
    return found


def test_the_tool_widget_searches_every_dimension_set_the_tools_metrics_are_written_with(
    observability: dict[str, Any],
    tools: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A SEARCH schema matches only series with exactly its dimensions: the evaluator writes
    ToolCalls and ToolErrors by Tool; legacy_tools by Tool and the service Powertools adds (its
    function has a service name); knowledge_search its calls by service alone. The real handlers
    run here, what they read stubbed."""
    services = {
        f["Properties"]["Handler"].split(".")[0]: f["Properties"]["Environment"]["Variables"].get(
            "POWERTOOLS_SERVICE_NAME"
        )
        for f in resources(tools, "AWS::Lambda::Function").values()
    }
    assert services["legacy_tools"]  # so Powertools adds "service"
    assert services["knowledge_search"]
    capsys.readouterr()
    evaluator.publish({"agent": "support_assistant", "tool_calls": [{"name": "orders___find_orders", "ok": False}]})

    def unreadable() -> Any:
        raise RuntimeConfigError("runtime config p: not readable (test)")

    monkeypatch.setattr(legacy_tools, "served", lambda: unreadable)  # its tool declarations: ToolErrors too
    legacy_tools.lambda_handler({}, FakeContext())
    monkeypatch.setattr(knowledge_search, "settings", lambda: SimpleNamespace(knowledge_base_id="kb"))
    monkeypatch.setattr(knowledge_search, "client", lambda: None)
    monkeypatch.setattr(knowledge_search, "search", lambda *_: {"returned": 0})
    knowledge_search.lambda_handler({"query": "q"}, FakeContext())
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    written = emitted_sets(lines, {Metric.TOOL_CALLS, Metric.TOOL_ERRORS})
    assert written == {
        (Metric.TOOL_CALLS, frozenset({"Tool"})),
        (Metric.TOOL_ERRORS, frozenset({"Tool"})),
        (Metric.TOOL_CALLS, frozenset({"Tool", "service"})),
        (Metric.TOOL_ERRORS, frozenset({"Tool", "service"})),
        (Metric.TOOL_CALLS, frozenset({"service"})),
    }
    widgets = dashboard_body(observability)["widgets"]
    (widget,) = [
        w["properties"] for w in widgets if w["properties"].get("title") == "Tool calls and tool errors by tool"
    ]
    searched = set()
    for (query,) in widget["metrics"]:
        schema, metric = _SEARCH.fullmatch(query["expression"]).groups()  # type: ignore[union-attr]
        namespace, *dimensions = schema.split(",")
        assert namespace == "genai/production"
        searched.add((metric, frozenset(dimensions)))
    assert searched == written


# --- a runtime's refusals of its runtime documents reach its environment's rollback alarm ----------


@pytest.fixture
def otel_records() -> Iterator[InMemoryLogRecordExporter]:
    """What ADOT's handler on the root logger exports from a runtime's standard-library logging
    (the distribution's logging instrumentation, on by default on AgentCore Runtime)."""
    exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    with warnings.catch_warnings():  # deprecated in the SDK; ADOT's distribution installs this one
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=logging.NOTSET, logger_provider=provider)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield exporter
    finally:
        root.removeHandler(handler)


def matches(pattern: str, event: dict[str, Any]) -> bool:
    """A JSON filter pattern made of string equalities joined by && (what this test evaluates)."""
    inner = re.fullmatch(r"\{ (.*) \}", pattern)
    assert inner, pattern
    terms = inner.group(1).split(" && ")
    for term in terms:
        found = re.fullmatch(r'\(?(\$\.[\w.]+) = "([^"*]*)"\)?', term)
        assert found, f"a term this test does not evaluate: {term}"
        if at(event, found.group(1)) != found.group(2):
            return False
    return True


def refusal_record(otel_records: InMemoryLogRecordExporter, environment: str, model: type[Any]) -> dict[str, Any]:
    """The log record a runtime's DocumentReader writes when it refuses a document of
    ``environment`` (a version its model cannot parse), as CloudWatch keeps an OTLP record."""
    otel_records.clear()
    location = ConfigLocation(application="a", environment="e", profile="p", environment_name=environment)
    with pytest.raises(RuntimeConfigError):
        DocumentReader(location, model, fetch=lambda _: b'{"not": "a document"}').get()
    (record,) = [json.loads(r.to_json()) for r in otel_records.get_finished_logs()]
    return dict(record)


def runtime_refusals(template: dict[str, Any]) -> dict[str, Any]:
    """The template's one metric filter, on the runtime's log group (AgentCore's for its stdout)."""
    (metric_filter,) = [f["Properties"] for f in resources(template, "AWS::Logs::MetricFilter").values()]
    log_group = template["Resources"][metric_filter["LogGroupName"]["Ref"]]["Properties"]["LogGroupName"]
    assert str(render(log_group)).startswith("/aws/bedrock-agentcore/runtimes/<")
    return dict(metric_filter)


def rollback_alarm(template: dict[str, Any]) -> dict[str, Any]:
    (alarm,) = [
        a["Properties"]
        for n, a in resources(template, "AWS::CloudWatch::Alarm").items()
        if n.startswith("RuntimeConfigRefusalAlarm")
    ]
    return dict(alarm)


@pytest.mark.parametrize("runtime", ["agent", "web"])
def test_a_runtimes_config_refusals_reach_its_environments_rollback_alarm(
    runtime: str,
    agents: dict[str, Any],
    agent_stacks: dict[str, dict[str, Any]],
    tools: dict[str, Any],
    otel_records: InMemoryLogRecordExporter,
) -> None:
    """An AgentCore runtime's EMF goes to its stdout, where extraction is not documented: a metric
    filter on its log group counts the refusal's log record as the rollback alarm of the
    environment it read reads it (metric, namespace, Environment), whatever EMF does. An agent
    reads the agents environment's groups document; the web tools' server the tools environment's
    web policy, which nothing else reads (the functions' refusals of the tools documents are EMF
    from Lambda)."""
    cases = (
        [(t, agents, AgentGroups) for t in agent_stacks.values()] if runtime == "agent" else [(tools, tools, WebPolicy)]
    )
    assert cases
    for template, environment_stack, model in cases:
        alarm = rollback_alarm(environment_stack)
        ((dimension,),) = [alarm["Dimensions"]]
        assert dimension["Name"] == ENVIRONMENT_DIMENSION
        metric_filter = runtime_refusals(template)
        (transformation,) = metric_filter["MetricTransformations"]
        assert (transformation["MetricName"], transformation["MetricNamespace"], transformation["MetricValue"]) == (
            alarm["MetricName"],
            alarm["Namespace"],
            "1",
        )
        assert transformation["MetricName"] == REFUSED_METRIC
        assert "DefaultValue" not in transformation  # refused with dimensions
        # A dimension is a field of the matched event, named in the pattern (a fixed value is refused).
        ((key, field),) = [(d["Key"], d["Value"]) for d in transformation["Dimensions"]]
        assert key == ENVIRONMENT_DIMENSION
        assert f"{field} = " in metric_filter["FilterPattern"]
        record = refusal_record(otel_records, dimension["Value"], model)
        assert matches(metric_filter["FilterPattern"], record)
        assert at(record, field) == dimension["Value"]  # the alarm's series
        other = refusal_record(otel_records, "elsewhere", model)
        assert not matches(metric_filter["FilterPattern"], other)


def test_every_alarm_of_its_own_is_named_in_the_docs(observability: dict[str, Any]) -> None:
    """docs/observability.md's alarms name each alarm that is not one per stage, direction or agent."""
    per = ("ErrorRate", "LatencyP99", "GuardrailSpike", "ToolSelectionAccuracy", "ToolArgumentAccuracy")
    single = {
        re.sub(r"[0-9A-F]{8}$", "", n)
        for n in resources(observability, "AWS::CloudWatch::Alarm")
        if not n.startswith(per) and not re.fullmatch(r"\w+FailedInvocations[0-9A-F]{8}", n)  # one per function
    }
    assert single == {"QuotaExhausted", "MeteringErrors", "ToolCallsRefused", "InterceptorFailures"}
    text = (Path(__file__).parents[2] / "docs" / "observability.md").read_text()
    alarms = text[text.index("**Alarms**") : text.index("#### The request's stage documents")]
    assert {name for name in single if f"`{name}`" in alarms} == single
    assert "`<Name>FailedInvocations`" in alarms


def test_every_function_callers_depend_on_pages_on_its_first_failed_invocation(
    observability: dict[str, Any],
    gateway: dict[str, Any],
    tools: dict[str, Any],
    identity: dict[str, Any],
    cdk_context: dict[str, Any],
) -> None:
    """A function answers its own errors, so Lambda's Errors count only crashes, timeouts and
    out-of-memory: one of them pages, for every function of the gateway but its authorizer, the
    tools gateway (its interceptor and every tool), the sign-in trigger and the evaluator, each in
    its own alarm."""

    def platform_functions(template: dict[str, Any]) -> set[str]:
        return {
            name
            for name, f in resources(template, "AWS::Lambda::Function").items()
            if "POWERTOOLS_SERVICE_NAME" in f["Properties"].get("Environment", {}).get("Variables", {})
        }

    # The authorizer refuses a bad token by failing (a TOKEN authorizer's only 401): not paged.
    (authorizer,) = [name for name in platform_functions(gateway) if name.startswith("AuthorizerFunction")]
    expected = {
        *platform_functions(gateway),
        *platform_functions(tools),
        *platform_functions(identity),
        *platform_functions(observability),
    } - {authorizer}
    # The interceptor, knowledge search and one function per legacy API.
    assert len(platform_functions(tools)) == 2 + len(production(cdk_context).legacy_apis)
    producers = {"-gateway": gateway, "-tools": tools, "-identity": identity}

    def referenced(value: dict[str, Any]) -> str:
        """The logical id a Ref names, followed through a cross-stack reference to its producer."""
        if "Fn::GetStackOutput" in value:
            reference = value["Fn::GetStackOutput"]
            (producer,) = [t for suffix, t in producers.items() if reference["StackName"].endswith(suffix)]
            value = producer["Outputs"][reference["OutputName"]]["Value"]
        return str(value["Ref"])

    watched: dict[str, dict[str, Any]] = {}
    for alarm in resources(observability, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if properties.get("Namespace") != "AWS/Lambda":
            continue
        ((dimension,),) = [properties["Dimensions"]]
        assert dimension["Name"] == "FunctionName"
        watched[referenced(dimension["Value"])] = properties
    assert set(watched) == expected
    for properties in watched.values():
        assert (properties["MetricName"], properties["Statistic"], properties["Period"]) == ("Errors", "Sum", 300)
        assert (properties["Threshold"], properties["EvaluationPeriods"]) == (1, 1)
        assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert properties["TreatMissingData"] == "notBreaching"
        ((action,),) = [properties["AlarmActions"]]
        assert action == {"Ref": only(observability, "AWS::SNS::Topic")[0]}
