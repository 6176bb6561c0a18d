"""The observability stack: the dashboard's widgets, alarm thresholds from config, the live
evaluator's subscription, online evaluation, Transaction Search, model invocation logging."""

from __future__ import annotations

import json
from typing import Any

from shared.observability import STAGES
from stacks.config import load_config
from tests.infra.cfn import props, render, resources


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
        "Guardrail interventions by type (input / output)",
        "Tool calls and tool errors by tool",
        "Tool-call accuracy by agent (%)",
        "Ingestion throughput and outcomes",
        "Ingestion DLQ: messages waiting and oldest age (s)",
    ]
    by_title = {w["properties"].get("title"): w["properties"] for w in widgets if w["type"] == "metric"}
    latency = json.dumps(by_title["Latency p50 / p90 / p99 by stage (ms)"]["metrics"])
    for stage in STAGES:
        for statistic in ("p50", "p90", "p99"):
            assert f'"Stage", "{stage}", {{"stat": "{statistic}"' in latency
    assert "SEARCH(" in json.dumps(by_title["Tool calls and tool errors by tool"]["metrics"])


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
    for group in config.groups:
        name = "QuotaExhausted" + "".join(p.title() for p in group.split("-"))
        assert alarm(name)["Threshold"] == settings.quota_refusals_per_5_minutes
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


def test_agent_turns_reach_the_live_evaluator(observability: dict[str, Any]) -> None:
    subscription = props(observability, "AWS::Logs::SubscriptionFilter")
    assert subscription["FilterPattern"] == '{ $.message = "agent turn" }'
    assert subscription["LogGroupName"]["Fn::GetStackOutput"]["StackName"] == "genai-production-gateway"
    assert render(subscription["DestinationArn"]) == "<ToolCallEvaluator.Arn>"
    evaluator = props(observability, "AWS::Lambda::Function", "ToolCallEvaluator")
    assert evaluator["Handler"] == "evaluation.handler.lambda_handler"


def test_agentcore_evaluates_a_sample_of_each_agents_sessions(
    agents: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    config = production(cdk_context)
    evaluations = [e["Properties"] for e in resources(agents, "AWS::BedrockAgentCore::OnlineEvaluationConfig").values()]
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
