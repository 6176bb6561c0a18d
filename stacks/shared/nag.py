"""cdk-nag wiring: the rule packs the app runs, and the one way to acknowledge a finding."""

from __future__ import annotations

from collections.abc import Iterable
from weakref import WeakKeyDictionary

from aws_cdk import Acknowledgment, App, CfnResource, IPolicyValidationPlugin, Stack, Stage, Token, Validations
from cdk_nag import AwsSolutionsChecks, NIST80053R5Checks
from constructs import IConstruct

from stacks.shared.expect import default_child
from stacks.startup import template_validator
from stacks.template_validation import StartsValidation

# Every call below is a round trip to the jsii kernel (Node.js), and synth makes a few hundred of
# them here: a construct's Validations handle (a stateless wrapper of the construct) and a stack's
# ARN parts are looked up once, not once per acknowledgement or ARN.
_HANDLES: WeakKeyDictionary[IConstruct, Validations] = WeakKeyDictionary()
_ARN_PARTS: WeakKeyDictionary[Stack, tuple[str, str, str]] = WeakKeyDictionary()


def add_rule_packs(app: App | Stage) -> None:
    """Run the AwsSolutions and NIST 800-53 rev 5 packs over the whole app (or a stage of it).

    Unacknowledged errors fail synth; the report lands in cdk.out/validation-report.json. CDK's
    template validation runs after them as ever: when the CLI runs the app, the same validator in
    the process stacks/startup.py started (registered here; app.py turns the built-in one off),
    else CDK's own.
    """
    packs: list[IPolicyValidationPlugin] = [AwsSolutionsChecks(app), NIST80053R5Checks(app)]
    validator = template_validator()
    if validator is None:
        Validations.of(app).add_plugins(*packs)
    else:  # the validator's process starts on the templates as the first pack does (StartsValidation)
        Validations.of(app).add_plugins(StartsValidation(packs[0], validator), *packs[1:], validator)


def acknowledge(construct: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one finding on one construct (and its children), with a specific reason."""
    acknowledge_all(construct, [(rule, reason)])


def acknowledge_all(construct: IConstruct, findings: Iterable[tuple[str, str]]) -> None:
    """Acknowledge several findings (rule, reason) on one construct in one call: the same records
    as one ``acknowledge`` per finding, in that order."""
    handle = _HANDLES.get(construct)
    if handle is None:
        handle = _HANDLES[construct] = Validations.of(construct)
    handle.acknowledge(*(Acknowledgment(id=rule, reason=reason) for rule, reason in findings))


# NIST's IAMNoInlinePolicy, for a role whose policies CDK's grants write for it alone.
INLINE_POLICY = (
    "NIST.800.53.R5-IAMNoInlinePolicy",
    "Least-privilege grants written for this one role and scoped to this stack's resources; "
    "they live and die with the role, so a reusable managed policy would only add a handle "
    "that nothing else should attach.",
)


def acknowledge_inline_policy(role: IConstruct) -> None:
    """NIST's IAMNoInlinePolicy, for a role whose policies CDK's grants write for it alone."""
    acknowledge_all(role, [INLINE_POLICY])


def acknowledge_synchronous_function(
    function: IConstruct, *, invoker: str, network: str, concurrency: str | None
) -> None:
    """NIST's Lambda findings for a function only ever invoked synchronously, with the reasons
    specific to it: why no VPC (``network``) and what bounds its concurrency (None: reserved)."""
    findings = [
        (
            "NIST.800.53.R5-LambdaDLQ",
            f"{invoker} invokes it synchronously; a DLQ applies to asynchronous invocations only.",
        ),
        ("NIST.800.53.R5-LambdaInsideVPC", network),
    ]
    if concurrency is not None:
        findings.append(("NIST.800.53.R5-LambdaConcurrency", concurrency))
    acknowledge_all(function, findings)


def nag_arn(scope: IConstruct, service: str, resource: str) -> str:
    """An ARN in this stack's partition, region and account, written the way cdk-nag prints
    resources in finding ids: unresolved pseudo parameters as ``<AWS::Name>``."""
    partition, region, account = _arn_parts(scope)
    return f"arn:{partition}:{service}:{region}:{account}:{resource}"


def nag_account(scope: IConstruct) -> str:
    """This stack's account as cdk-nag prints it: ``<AWS::AccountId>``, or the account id the
    config names (a finding id written with the token alone fails synth once an account is set)."""
    return _arn_parts(scope)[2]


def _arn_parts(scope: IConstruct) -> tuple[str, str, str]:
    stack = Stack.of(scope)
    parts = _ARN_PARTS.get(stack)
    if parts is None:
        parts = _ARN_PARTS[stack] = (
            _pseudo(stack.partition, "Partition"),
            _pseudo(stack.region, "Region"),
            _pseudo(stack.account, "AccountId"),
        )
    return parts


def nag_attribute(resource: IConstruct, attribute: str) -> str:
    """A resource attribute (``Fn::GetAtt``) the way cdk-nag prints it: ``<LogicalId.Attribute>``."""
    cfn = resource if isinstance(resource, CfnResource) else default_child(resource, CfnResource)
    return f"<{Stack.of(cfn).resolve(cfn.logical_id)}.{attribute}>"


def nag_ref(resource: IConstruct) -> str:
    """A resource's Ref the way cdk-nag prints it: ``<LogicalId>``."""
    cfn = resource if isinstance(resource, CfnResource) else default_child(resource, CfnResource)
    return f"<{Stack.of(cfn).resolve(cfn.logical_id)}>"


def _pseudo(value: str, name: str) -> str:
    return f"<AWS::{name}>" if Token.is_unresolved(value) else value


# The singleton Lambda function behind CDK's AwsCustomResource, one per stack: none is used (its
# handler replays one token across operations and does not wait for IAM; tests/infra/test_macie_job.py).
SDK_CALL_PROVIDER = "AWS679f53fac002430cb0da5b7982bd2287"
