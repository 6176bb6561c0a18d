"""Bedrock model identifiers turned into the ARNs that API calls and IAM policies need."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack, aws_bedrock as bedrock, aws_iam as iam
from constructs import Construct

from stacks.shared.nag import acknowledge

# InvokeModel authorizes Converse; InvokeModelWithResponseStream authorizes ConverseStream.
INVOKE_ACTIONS = ["bedrock:InvokeModel"]
STREAM_INVOKE_ACTIONS = ["bedrock:InvokeModelWithResponseStream"]
# Bedrock reads the profile to route a request made through a cross-region inference profile.
PROFILE_ACTIONS = ["bedrock:GetInferenceProfile"]

# Cross-region inference profiles prefix a foundation-model id with a geography.
_PROFILE = re.compile(r"^(us|eu|apac|us-gov|global)\.(?P<model>.+)$")


@dataclass(frozen=True)
class ModelArns:
    """``invoke_arn`` is what Converse / RetrieveAndGenerate take; ``iam_resources`` what
    InvokeModel must be allowed on; ``profile_arn`` the inference profile, if one is used."""

    invoke_arn: str
    iam_resources: tuple[str, ...]
    profile_arn: str | None = None


def model_arns(scope: Construct, model_id: str) -> ModelArns:
    """ARNs for a foundation model or a cross-region inference profile id.

    An inference profile routes to the same model in several regions, so invoking it needs
    permission on the profile and on the foundation model in every region it may route to.
    """
    stack = Stack.of(scope)
    profile = _PROFILE.match(model_id)
    if profile is None:
        arn = _foundation_model_arn(stack, model_id, stack.region)
        return ModelArns(invoke_arn=arn, iam_resources=(arn,))
    profile_arn = stack.format_arn(
        service="bedrock",
        resource="inference-profile",
        resource_name=model_id,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )
    return ModelArns(
        invoke_arn=profile_arn,
        iam_resources=(profile_arn, _foundation_model_arn(stack, profile["model"], "*")),
        profile_arn=profile_arn,
    )


def grant_invoke(role: iam.IRole, model: ModelArns, *, stream: bool = False) -> None:
    """Allow ``role`` to invoke ``model`` (InvokeModel covers Converse; with ``stream``, also
    ConverseStream), nothing else."""
    actions = [*INVOKE_ACTIONS, *(STREAM_INVOKE_ACTIONS if stream else [])]
    role.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=list(model.iam_resources)))
    if model.profile_arn is not None:
        role.add_to_principal_policy(iam.PolicyStatement(actions=PROFILE_ACTIONS, resources=[model.profile_arn]))
    for arn in model.iam_resources:
        if ":*::" in arn:
            acknowledge(
                role,
                f"AwsSolutions-IAM5[Resource::{arn}]",
                "A cross-region inference profile may route to its model in any of its regions; the "
                "profile ARN, granted alongside, is what limits which model is reachable.",
            )


def _foundation_model_arn(stack: Stack, model_id: str, region: str) -> str:
    return stack.format_arn(
        service="bedrock",
        resource="foundation-model",
        resource_name=model_id,
        account="",
        region=region,
        arn_format=ArnFormat.SLASH_RESOURCE_NAME,
    )


def pii_policy(entities: Mapping[str, str]) -> bedrock.CfnGuardrail.SensitiveInformationPolicyConfigProperty | None:
    """A guardrail's sensitive-information policy: each PII entity type with its action (None: none)."""
    if not entities:
        return None
    return bedrock.CfnGuardrail.SensitiveInformationPolicyConfigProperty(
        pii_entities_config=[
            bedrock.CfnGuardrail.PiiEntityConfigProperty(type=entity, action=action)
            for entity, action in sorted(entities.items())
        ]
    )
