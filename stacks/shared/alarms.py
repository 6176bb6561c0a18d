"""The platform's alarms: one shape for all of them (no data is no failure), e-mailed through a
topic where one is given."""

from __future__ import annotations

from aws_cdk import aws_cloudwatch as cloudwatch, aws_cloudwatch_actions as cloudwatch_actions, aws_sns as sns
from constructs import Construct

AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD


def alarm(
    scope: Construct,
    id: str,
    metric: cloudwatch.IMetric,
    *,
    description: str,
    topic: sns.ITopic | None,
    threshold: float = 1,
    periods: int = 1,
    comparison: cloudwatch.ComparisonOperator = AT_LEAST,
) -> cloudwatch.Alarm:
    """An alarm on ``metric`` (``threshold`` reached, by default, in ``periods`` periods on end)
    that treats missing data as no failure, notifying ``topic`` (None: none, as for an alarm that
    AppConfig watches)."""
    created = cloudwatch.Alarm(
        scope,
        id,
        metric=metric,
        alarm_description=description,
        threshold=threshold,
        evaluation_periods=periods,
        comparison_operator=comparison,
        treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,  # no traffic is no failure
    )
    if topic is not None:
        created.add_alarm_action(cloudwatch_actions.SnsAction(topic))
    return created
