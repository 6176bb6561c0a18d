"""CloudWatch GenAI observability for the production tier: where an operator sees which stage
failed, the alarms that page, and live tool-call evaluation. (AgentCore online evaluation lives
with the agents; Transaction Search and model invocation logging are the foundation's account
settings.)

Metrics come from the functions and the agent (namespace ``<prefix>/production``): the stage
metrics of lambdas/shared/telemetry.py (dimension ``Stage``), the gateway's model, guardrail
and quota metrics, the evaluator's tool metrics, the pipeline's document counts, and SQS.

Quota refusals page through one Contributor Insights rule over the log groups of the gateway's
functions that admit quota (the buffered and the streaming function) and one alarm on its top
contributor, not an alarm per group: the resources stay the same at 3 groups or 300, and the rule
names the group that tripped it. The live evaluator is subscribed to every function that runs
agent turns (those two and the jobs' worker): one subscription filter per log group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aws_cdk import (
    Aws,
    Duration,
    Stack,
    aws_bedrockagentcore as agentcore,
    aws_cloudwatch as cloudwatch,
    aws_lambda as lambda_,
    aws_logs as logs,
    aws_logs_destinations as destinations,
    aws_sns as sns,
    aws_sns_subscriptions as subscriptions,
    aws_sqs as sqs,
)
from constructs import Construct

from ai_gateway.contract import INPUT, OUTPUT, SERVICE as GATEWAY, Dimension as GatewayDimension, Metric as Gateway
from shared.observability import AGENT_TURN_MESSAGE, STAGES, Dimension, Metric
from stacks.production.context import ProductionContext
from stacks.shared.alarms import alarm as notifying
from stacks.shared.nag import acknowledge
from stacks.shared.naming import pascal_case
from tool_guard.contract import SERVICE as TOOL_GUARD, Metric as ToolGuard

FIVE_MINUTES = Duration.minutes(5)
AGENT_TURN_FILTER = logs.FilterPattern.string_value("$.message", "=", AGENT_TURN_MESSAGE)

# The name of the one metric in an EMF document that shared.telemetry.emit prints (a single
# directive with a single metric): which of the gateway's log lines is a quota refusal.
EMF_METRIC_NAME = "$._aws.CloudWatchMetrics[0].Metrics[0].Name"
TOP_CONTRIBUTOR = "MaxContributorValue"
TOP_GROUPS_SHOWN = 10
TOP_GROUPS_TITLE = f"Top {TOP_GROUPS_SHOWN} groups by quota refusals (Contributor Insights)"
RULE_DEFINITION_LIMIT = 8192  # PutInsightRule's RuleDefinition, in characters
# Who writes ToolCalls and ToolErrors, and by which dimensions (a SEARCH matches one set exactly):
# the evaluator per tool an agent's turn called, by Tool alone (lambdas/evaluation); legacy_tools
# per call it serves, by Tool and the service Powertools adds; knowledge_search, one tool, its calls
# by service alone (it counts no errors).
TOOL_METRIC_SOURCES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("agents' turns", Dimension.TOOL, (Metric.TOOL_CALLS, Metric.TOOL_ERRORS)),
    ("legacy tools", f"{Dimension.TOOL},{Dimension.SERVICE}", (Metric.TOOL_CALLS, Metric.TOOL_ERRORS)),
    ("knowledge_search", Dimension.SERVICE, (Metric.TOOL_CALLS,)),
)


def quota_refusals_rule_name(tier: str) -> str:
    """The tier's Contributor Insights rule of quota refusals by group (unique per account and
    region, as the tier's name is; printable ASCII, at most 128 characters)."""
    return f"{tier}-quota-refusals-by-group"


def quota_refusals_rule(log_group_names: Sequence[str]) -> dict[str, Any]:
    """The body of that rule (schema CloudWatchLogRule v1): the QuotaRefusalsByGroup EMF lines of
    the functions that admit quota (``log_group_names``: their log groups), counted by their
    ``Group``. ai_gateway.telemetry prints one such line per refusal (shared.telemetry.emit), its
    dimension and metric as top-level keys, so Count is the refusals. (A rule names its log groups
    in its body, at most RULE_DEFINITION_LIMIT characters: two names take a few hundred.)"""
    group = f"$.{GatewayDimension.GROUP}"
    return {
        "Schema": {"Name": "CloudWatchLogRule", "Version": 1},
        "LogGroupNames": list(log_group_names),
        "LogFormat": "JSON",
        "Contribution": {
            "Keys": [group],
            "Filters": [
                {"Match": EMF_METRIC_NAME, "In": [str(Gateway.QUOTA_REFUSALS_BY_GROUP)]},
                {"Match": group, "IsPresent": True},
            ],
        },
        "AggregateOn": "Count",
    }


class TopContributorsWidget(cloudwatch.ConcreteWidget):
    """A Contributor Insights rule's top contributors over time, one line each, as the console
    graphs a rule. CDK has no widget for it (GraphWidget plots INSIGHT_RULE_METRIC's numbers but
    not who they belong to); the metric widget's ``insightRule`` property does."""

    def __init__(
        self,
        *,
        title: str,
        rule_name: str,
        contributors: int = TOP_GROUPS_SHOWN,
        period: Duration = FIVE_MINUTES,
        width: int = 12,
        height: int = 6,
    ) -> None:
        super().__init__(width, height)
        self._title = title
        self._rule_name = rule_name
        self._contributors = contributors
        self._period = period

    def to_json(self) -> list[Any]:
        return [
            {
                "type": "metric",
                "x": self._x,
                "y": self._y,
                "width": self.width,
                "height": self.height,
                "properties": {
                    "title": self._title,
                    "region": Aws.REGION,
                    "view": "timeSeries",
                    "period": self._period.to_seconds(),
                    "insightRule": {
                        "ruleName": self._rule_name,
                        "maxContributorCount": self._contributors,
                        "orderBy": "Sum",
                    },
                    "legend": {"position": "right"},
                },
            }
        ]


class ObservabilityStack(Stack):
    """The GenAI operations dashboard, the alarms (SNS) and the live tool-call evaluator.

    ``quota_functions``: the functions that admit quota (their QuotaRefusalsByGroup lines feed the
    quota rule); ``agent_turn_functions``: the functions that log agent turns (the evaluator is
    subscribed to each one's log group); ``paged_functions``: by a name for the alarm, the functions
    an invocation of which that fails pages (the evaluator's own is added)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        quota_functions: Sequence[lambda_.Function],
        agent_turn_functions: Sequence[lambda_.Function],
        agent_runtimes: Mapping[str, agentcore.IBedrockAgentRuntime],
        dead_letters: sqs.IQueue,
        paged_functions: Mapping[str, lambda_.IFunction],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        config, key, name = context.config, context.key, context.name
        self._settings = config.observability
        self._namespace = context.metrics_namespace

        self.topic = sns.Topic(self, "Alarms", master_key=key, enforce_ssl=True)
        for address in self._settings.alarm_emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(address))

        self.evaluator = context.function(
            self,
            "ToolCallEvaluator",
            package="evaluation",
            description="Tool-call evaluation from the AI gateway's agent turns",
        )
        # One filter per log group (a log group takes two): each with the permission CDK makes for
        # CloudWatch Logs to invoke the evaluator from that log group.
        for function in agent_turn_functions:
            logs.SubscriptionFilter(
                self,
                f"AgentTurns{function.node.id}",
                log_group=function.log_group,
                destination=destinations.LambdaDestination(self.evaluator),
                filter_pattern=AGENT_TURN_FILTER,
            )
        acknowledge(
            self.evaluator,
            "NIST.800.53.R5-LambdaDLQ",
            "CloudWatch Logs delivers the subscription and retries it; a lost batch thins the live sample only "
            "(the golden set is re-run with `make eval`).",
        )
        acknowledge(
            self.evaluator,
            "NIST.800.53.R5-LambdaInsideVPC",
            "It reads the log batch it is given and writes metrics to its own log stream (EMF); no network.",
        )
        acknowledge(
            self.evaluator,
            "NIST.800.53.R5-LambdaConcurrency",
            "Invoked per log batch of the gateway's functions and the jobs' worker, whose own concurrency bounds it.",
        )

        self.quota_refusals = cloudwatch.CfnInsightRule(
            self,
            "QuotaRefusalsByGroup",
            rule_name=quota_refusals_rule_name(name),
            rule_state="ENABLED",
            rule_body=self.to_json_string(
                quota_refusals_rule([function.log_group.log_group_name for function in quota_functions])
            ),
        )
        self._paged = {**paged_functions, "ToolCallEvaluator": self.evaluator}
        self.dashboard = self._dashboard(name, list(agent_runtimes), dead_letters)
        self._alarms(list(agent_runtimes))
        self._function_alarms()

    # --- metrics ---------------------------------------------------------------------------------

    def _metric(
        self,
        name: str,
        dimension: str,
        value: str,
        statistic: str = "Sum",
        period: Duration = FIVE_MINUTES,
    ) -> cloudwatch.Metric:
        """One series of ``name``: the one whose single dimension ``dimension`` is ``value``."""
        return cloudwatch.Metric(
            namespace=self._namespace,
            metric_name=name,
            dimensions_map={dimension: value},
            statistic=statistic,
            period=period,
        )

    def _search(
        self, metric: str, dimension: str, statistic: str = "Sum", label: str = ""
    ) -> cloudwatch.MathExpression:
        """Every series of ``metric`` whose dimensions are exactly ``dimension`` (a comma-separated
        set: a SEARCH schema matches only series with those dimensions and no others), values the
        config does not list too; labelled ``label`` (the metric's name unless given)."""
        expression = f"SEARCH('{{{self._namespace},{dimension}}} MetricName=\"{metric}\"', '{statistic}', 300)"
        return cloudwatch.MathExpression(expression=expression, label=label or metric, period=FIVE_MINUTES)

    def _tool_searches(self, metric: str) -> list[cloudwatch.MathExpression]:
        """``metric`` (ToolCalls or ToolErrors) in every dimension set a function writes it with
        (TOOL_METRIC_SOURCES)."""
        return [
            self._search(metric, dimensions, label=f"{metric} ({source})")
            for source, dimensions, metrics in TOOL_METRIC_SOURCES
            if metric in metrics
        ]

    def _dashboard(self, name: str, agents: Sequence[str], dead_letters: sqs.IQueue) -> cloudwatch.Dashboard:
        stage_requests = [self._metric(Metric.STAGE_REQUESTS, Dimension.STAGE, s) for s in STAGES]
        stage_errors = [self._metric(Metric.STAGE_ERRORS, Dimension.STAGE, s) for s in STAGES]
        latency = [
            self._metric(Metric.STAGE_LATENCY, Dimension.STAGE, s, statistic=p)
            for s in STAGES
            for p in ("p50", "p90", "p99")
        ]
        self._dashboard_name = f"{name}-genai-operations"
        dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=self._dashboard_name)
        width = 12
        dashboard.add_widgets(
            cloudwatch.TextWidget(
                markdown=f"# {name}: GenAI operations\nStage = retrieval, generation, guardrail, tool, usage, "
                "ingestion. A failing answer: find its `gen_ai.conversation.id` in the logs; its stage is here.",
                width=24,
                height=2,
            ),
            cloudwatch.GraphWidget(title="Requests by stage", left=stage_requests, width=width),
            cloudwatch.GraphWidget(title="Errors by stage", left=stage_errors, width=width),
            cloudwatch.GraphWidget(title="Latency p50 / p90 / p99 by stage (ms)", left=latency, width=24, height=8),
            cloudwatch.GraphWidget(
                title="Tokens by model",
                left=[
                    self._search(Gateway.MODEL_INPUT_TOKENS, GatewayDimension.MODEL),
                    self._search(Gateway.MODEL_OUTPUT_TOKENS, GatewayDimension.MODEL),
                ],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Estimated cost by model (USD)",
                left=[self._search(Gateway.ESTIMATED_COST_USD, GatewayDimension.MODEL)],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Outputs by group and type",
                left=[
                    self._search(
                        Gateway.OUTPUTS, f"{GatewayDimension.GROUP},{GatewayDimension.OUTPUT_TYPE},{Dimension.SERVICE}"
                    )
                ],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Quota refusals by group",
                left=[self._search(Gateway.QUOTA_REFUSALS_BY_GROUP, GatewayDimension.GROUP)],
                width=width,
            ),
            TopContributorsWidget(
                title=TOP_GROUPS_TITLE,
                rule_name=self.quota_refusals.rule_name,
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Guardrail interventions by type (input / output)",
                left=[self._search(Gateway.GUARDRAIL_INTERVENTIONS, GatewayDimension.SOURCE)],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Tool calls and tool errors by tool",
                left=self._tool_searches(Metric.TOOL_CALLS),
                right=self._tool_searches(Metric.TOOL_ERRORS),
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Tool-call accuracy by agent (%)",
                left=[
                    self._metric(metric, Dimension.AGENT, agent, statistic="Average", period=Duration.hours(1))
                    for agent in agents
                    for metric in (
                        Metric.TOOL_SELECTION_ACCURACY,
                        Metric.TOOL_ARGUMENT_ACCURACY,
                        Metric.TOOL_CALL_SUCCESS_RATE,
                    )
                ],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Ingestion throughput and outcomes",
                left=[
                    self._search(Metric.DOCUMENTS_CURATED, Dimension.SERVICE),
                    self._search(Metric.DOCUMENTS_QUARANTINED, Dimension.SERVICE),
                    self._search(Metric.DOCUMENTS_DEAD_LETTERED, Dimension.SERVICE),
                    self._search(Metric.DOCUMENTS_REQUEUED, Dimension.SERVICE),
                ],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Failed function invocations (crashes, timeouts, out of memory)",
                left=[self._failed_invocations(function, name) for name, function in self._paged.items()],
                width=width,
            ),
            cloudwatch.GraphWidget(
                title="Ingestion DLQ: messages waiting and oldest age (s)",
                left=[dead_letters.metric_approximate_number_of_messages_visible(statistic="Maximum")],
                right=[dead_letters.metric_approximate_age_of_oldest_message(statistic="Maximum")],
                width=width,
            ),
        )
        return dashboard

    @staticmethod
    def _failed_invocations(function: lambda_.IFunction, label: str | None = None) -> cloudwatch.Metric:
        """Lambda's Errors of ``function`` in 5 minutes: invocations that failed, not the errors it
        answers (a 4xx or a 502 the function returns is a success to Lambda)."""
        return function.metric_errors(period=FIVE_MINUTES, statistic="Sum", label=label)

    def _function_alarms(self) -> None:
        """One alarm per paged function on its first failed invocation: each function answers its
        own errors (a typed 4xx or 5xx, a tool error, a refusal), so a failed invocation is a crash,
        a timeout or out-of-memory, which its callers see only as a bare 5xx, a broken stream or a
        tools gateway that cannot list tools."""
        for name, function in self._paged.items():
            notifying(
                self,
                f"{name}FailedInvocations",
                self._failed_invocations(function),
                description=(
                    f"{name} failed at least one invocation in 5 minutes (Lambda's Errors: a crash, a timeout "
                    "or out of memory; the errors it answers are not counted). Its log group has the failure."
                ),
                topic=self.topic,
            )

    def _alarms(self, agents: Sequence[str]) -> None:
        settings = self._settings
        above = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD
        at_least = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        below = cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD

        def alarm(
            id: str,
            metric: cloudwatch.Metric | cloudwatch.MathExpression,
            description: str,
            threshold: float,
            comparison: cloudwatch.ComparisonOperator,
            periods: int = 1,
        ) -> cloudwatch.Alarm:
            return notifying(
                self,
                id,
                metric,
                description=description,
                topic=self.topic,
                threshold=threshold,
                periods=periods,
                comparison=comparison,
            )

        for stage in STAGES:
            rate = cloudwatch.MathExpression(
                expression="IF(requests > 0, 100 * errors / requests, 0)",
                using_metrics={
                    "errors": self._metric(Metric.STAGE_ERRORS, Dimension.STAGE, stage),
                    "requests": self._metric(Metric.STAGE_REQUESTS, Dimension.STAGE, stage),
                },
                period=FIVE_MINUTES,
                label=f"{stage} error rate (%)",
            )
            percent = settings.error_rate_percent
            alarm(
                f"ErrorRate{stage.title()}",
                rate,
                f"More than {percent}% of {stage} work failed in 5 minutes",
                percent,
                above,
            )
            p99 = self._metric(Metric.STAGE_LATENCY, Dimension.STAGE, stage, statistic="p99")
            limit = settings.p99_latency_ms
            alarm(
                f"LatencyP99{stage.title()}",
                p99,
                f"{stage} p99 latency above {limit} ms for 15 minutes",
                limit,
                above,
                3,
            )
        for source in (INPUT, OUTPUT):
            interventions = self._metric(Gateway.GUARDRAIL_INTERVENTIONS, GatewayDimension.SOURCE, source)
            description = f"Guardrail {source.lower()} interventions spiked"
            alarm(
                f"GuardrailSpike{source.title()}",
                interventions,
                description,
                settings.guardrail_interventions_per_5_minutes,
                at_least,
            )
        # The refusals of the group refused most in the 5 minutes: at the threshold, some group is.
        rule = self.quota_refusals.rule_name
        top_group = cloudwatch.MathExpression(
            expression=f"INSIGHT_RULE_METRIC('{rule}', '{TOP_CONTRIBUTOR}')",
            using_metrics={},
            period=FIVE_MINUTES,
            label="Quota refusals of the most refused group",
        )
        quota = alarm(
            "QuotaExhausted",
            top_group,
            f"A group was refused for its output quotas at least {settings.quota_refusals_per_5_minutes} times in "
            f"5 minutes. Which group: the top contributors of Contributor Insights rule {rule} (CloudWatch > "
            f"Contributor Insights; or the widget '{TOP_GROUPS_TITLE}' on dashboard {self._dashboard_name}).",
            settings.quota_refusals_per_5_minutes,
            at_least,
        )
        # The expression names the rule, not a reference CloudFormation sees: order them by hand.
        quota.node.add_dependency(self.quota_refusals)
        # An output whose delivery the ledger did not record: a buffered one is withheld (a 502), a
        # stream's is settled as delivered by the sweeper, without its tokens. Either way, look.
        metering = self._metric(Gateway.METERING_ERRORS, Dimension.SERVICE, GATEWAY)
        description = (
            "The ledger failed to record an output's delivery: a buffered output was withheld (a 502, its "
            "units released) unless the record showed the write had landed; a stream's is settled as "
            "delivered by the sweeper, without its tokens. The gateway's logs ('delivery not recorded', "
            "'output withheld') name the request."
        )
        alarm("MeteringErrors", metering, description, 1, at_least)
        # The tool interceptor's own metrics (Powertools: dimensioned by its service name alone).
        refused = self._metric(ToolGuard.CALLS_REFUSED, Dimension.SERVICE, TOOL_GUARD)
        threshold = settings.tool_refusals_per_5_minutes
        description = (
            f"The tools gateway refused at least {threshold} tool calls in 5 minutes: a tool not the caller's "
            "group's, or a malformed call. The interceptor's logs ('tool call refused') name the tool."
        )
        alarm("ToolCallsRefused", refused, description, threshold, at_least)
        failures = self._metric(ToolGuard.FAILURES, Dimension.SERVICE, TOOL_GUARD)
        description = "The tool interceptor failed, so it refused every tool request it saw: see its logs."
        alarm("InterceptorFailures", failures, description, 1, at_least)
        for agent in agents:
            for name in (Metric.TOOL_SELECTION_ACCURACY, Metric.TOOL_ARGUMENT_ACCURACY):
                accuracy = self._metric(name, Dimension.AGENT, agent, statistic="Average", period=Duration.hours(1))
                description = f"{agent}'s {name} on evaluation cases fell below the floor"
                alarm(f"{name}{pascal_case(agent)}", accuracy, description, settings.tool_accuracy_floor * 100, below)
