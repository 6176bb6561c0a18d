"""cdk-nag wiring: the rule packs the app runs, and the one way to acknowledge a finding."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct


def add_rule_packs(app: App) -> None:
    """Run the AwsSolutions pack over the whole app; unacknowledged errors fail synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on one construct (and its children), with a specific reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def nag_arn(scope: IConstruct, service: str, resource: str) -> str:
    """An ARN in this stack's partition, region and account, written the way cdk-nag prints
    resources in finding ids: unresolved pseudo parameters as ``<AWS::Name>``."""
    stack = Stack.of(scope)
    parts = [
        _pseudo(stack.partition, "Partition"),
        service,
        _pseudo(stack.region, "Region"),
        _pseudo(stack.account, "AccountId"),
    ]
    return f"arn:{':'.join(parts)}:{resource}"


def nag_attribute(resource: IConstruct, attribute: str) -> str:
    """A resource attribute (``Fn::GetAtt``) the way cdk-nag prints it: ``<LogicalId.Attribute>``."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    assert isinstance(cfn, CfnResource), f"{resource.node.path} has no CloudFormation resource"
    return f"<{Stack.of(cfn).resolve(cfn.logical_id)}.{attribute}>"


def _pseudo(value: str, name: str) -> str:
    return f"<AWS::{name}>" if Token.is_unresolved(value) else value
