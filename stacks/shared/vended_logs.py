"""The resource policies CloudWatch's vended-log deliveries need: one for CloudWatch Logs, one for
X-Ray, each at most once per stack (both are account-level quotas: 10 log resource policies per
region).

CDK's AgentCore L2 writes the log-group statement from ``ILogGroup.logGroupArn``, which ends in
``:*``, so its ``…:*:log-stream:*`` matches no log stream. Here the log group's ARN is built from
its name (no ``:*``), and every delivery destination waits for the policies it relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jsii
from aws_cdk import ArnFormat, IStableStringProducer, Lazy, Stack, aws_logs as logs, aws_xray as xray
from constructs import Construct, IConstruct

from stacks.shared.lambda_function import log_group_arn

DELIVERY_SERVICE = "delivery.logs.amazonaws.com"
LOG_DELIVERY_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]


def log_streams_arn(log_group: logs.ILogGroup) -> str:
    """Every log stream of ``log_group``: ``arn:…:log-group:<name>:log-stream:*``."""
    return f"{log_group_arn(log_group, log_group.log_group_name)}:log-stream:*"


@jsii.implements(IStableStringProducer)
class _Rendered:
    """A policy document rendered at synthesis, after every statement was added."""

    def __init__(self, render: Callable[[], str]) -> None:
        self._render = render

    def produce(self) -> str:
        return self._render()


class DeliveryPolicies(Construct):
    """Use ``DeliveryPolicies.of(scope)``; then ``allow_logs(log_group)`` for each CloudWatch Logs
    destination and ``allow_traces(resource_arn)`` for each resource delivering traces, and
    ``precede(delivery_construct)`` so CloudFormation creates the policies first."""

    @classmethod
    def of(cls, scope: Construct) -> DeliveryPolicies:
        stack = Stack.of(scope)
        existing = stack.node.try_find_child("DeliveryPolicies")
        return existing if isinstance(existing, DeliveryPolicies) else cls(stack, "DeliveryPolicies")

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self._log_streams: list[str] = []
        self._trace_sources: list[str] = []
        self._logs: logs.CfnResourcePolicy | None = None
        self._traces: xray.CfnResourcePolicy | None = None

    def _conditions(self) -> dict[str, Any]:
        stack = Stack.of(self)
        return {
            "StringEquals": {"aws:SourceAccount": stack.account},
            "ArnLike": {
                "aws:SourceArn": stack.format_arn(
                    service="logs",
                    resource="delivery-source",
                    resource_name="*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
            },
        }

    def _policy_document(self, statement: Callable[[], dict[str, Any]]) -> str:
        """A policy document of one statement, rendered when the stack is synthesized (after every
        ``allow_*`` call has added its resource)."""
        stack = Stack.of(self)
        return Lazy.string(
            _Rendered(lambda: stack.to_json_string({"Version": "2012-10-17", "Statement": [statement()]}))
        )

    def allow_logs(self, log_group: logs.ILogGroup) -> logs.CfnResourcePolicy:
        """CloudWatch's delivery service may write to ``log_group``'s streams."""
        self._log_streams.append(log_streams_arn(log_group))
        if self._logs is None:
            statement = {
                "Sid": "VendedLogsDelivery",
                "Effect": "Allow",
                "Principal": {"Service": DELIVERY_SERVICE},
                "Action": LOG_DELIVERY_ACTIONS,
                "Resource": self._log_streams,
                "Condition": self._conditions(),
            }
            self._logs = logs.CfnResourcePolicy(
                self,
                "Logs",
                policy_name=f"{Stack.of(self).stack_name}-vended-logs",
                policy_document=self._policy_document(lambda: statement),
            )
        return self._logs

    def allow_traces(self, resource_arn: str) -> xray.CfnResourcePolicy:
        """CloudWatch's delivery service may put the traces ``resource_arn`` generates into X-Ray."""
        self._trace_sources.append(resource_arn)
        if self._traces is None:
            statement = {
                "Sid": "VendedTracesDelivery",
                "Effect": "Allow",
                "Principal": {"Service": DELIVERY_SERVICE},
                "Action": "xray:PutTraceSegments",
                "Resource": "*",
                "Condition": {
                    **self._conditions(),
                    "ForAllValues:ArnLike": {"logs:LogGeneratingResourceArns": self._trace_sources},
                },
            }
            self._traces = xray.CfnResourcePolicy(
                self,
                "Traces",
                policy_name=f"{Stack.of(self).stack_name}-vended-traces",
                policy_document=self._policy_document(lambda: statement),
            )
        return self._traces

    def precede(self, *deliveries: IConstruct) -> None:
        """``deliveries`` (destinations, deliveries) are created after every policy made so far."""
        policies = [p for p in (self._logs, self._traces) if p is not None]
        for delivery in deliveries:
            delivery.node.add_dependency(*policies)
