"""cdk-nag wiring: the rule packs the app runs, and the one way to acknowledge a finding."""

from __future__ import annotations

from aws_cdk import Acknowledgment, App, CfnResource, Stack, Token, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct


def add_rule_packs(app: App) -> None:
    """Run the AwsSolutions and NIST 800-53 rev 5 packs over the whole app.

    Unacknowledged errors fail synth; the report lands in cdk.out/validation-report.json.
    """
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app))


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on one construct (and its children), with a specific reason."""
    Validations.of(construct).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_inline_policy(role: IConstruct) -> None:
    """NIST's IAMNoInlinePolicy, for a role whose policies CDK's grants write for it alone."""
    acknowledge(
        role,
        "NIST.800.53.R5-IAMNoInlinePolicy",
        "Least-privilege grants written for this one role and scoped to this stack's resources; "
        "they live and die with the role, so a reusable managed policy would only add a handle "
        "that nothing else should attach.",
    )


def acknowledge_synchronous_function(
    function: IConstruct, *, invoker: str, network: str, concurrency: str | None
) -> None:
    """NIST's Lambda findings for a function only ever invoked synchronously, with the reasons
    specific to it: why no VPC (``network``) and what bounds its concurrency (None: reserved)."""
    acknowledge(
        function,
        "NIST.800.53.R5-LambdaDLQ",
        f"{invoker} invokes it synchronously; a DLQ applies to asynchronous invocations only.",
    )
    acknowledge(function, "NIST.800.53.R5-LambdaInsideVPC", network)
    if concurrency is not None:
        acknowledge(function, "NIST.800.53.R5-LambdaConcurrency", concurrency)


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


# The singleton Lambda function behind CDK's AwsCustomResource, one per stack.
SDK_CALL_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"


def acknowledge_sdk_call_provider(stack: Stack, api: str) -> None:
    """The findings on CDK's AwsCustomResource provider: a Node.js function CloudFormation runs at
    deploy time to call ``api``, with CDK's own role and runtime."""
    provider = stack.node.try_find_child(SDK_CALL_PROVIDER)
    assert provider is not None, f"{stack.stack_name} has no AwsCustomResource"
    for rule, reason in (
        (
            "NIST.800.53.R5-LambdaDLQ",
            "CloudFormation invokes the deploy-time provider synchronously and waits for its answer.",
        ),
        (
            "NIST.800.53.R5-LambdaInsideVPC",
            f"The deploy-time provider calls {api} only, over its public endpoint; no private network resource.",
        ),
        (
            "NIST.800.53.R5-LambdaConcurrency",
            "It runs once per deploy of the custom resources it serves; nothing else invokes it.",
        ),
        (
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "CDK's custom-resource provider writes its own deploy-time logs with the basic execution role.",
        ),
        ("AwsSolutions-L1", "CDK pins the custom-resource provider's Node.js runtime in its own release."),
    ):
        acknowledge(provider, rule, reason)
