"""Bedrock model identifiers turned into the ARNs that API calls and IAM policies need."""

from __future__ import annotations

import re
from dataclasses import dataclass

from aws_cdk import ArnFormat, Stack
from constructs import Construct

# Cross-region inference profiles prefix a foundation-model id with a geography.
_PROFILE = re.compile(r"^(us|eu|apac|us-gov|global)\.(?P<model>.+)$")


@dataclass(frozen=True)
class ModelArns:
    """``invoke_arn`` is what Converse / RetrieveAndGenerate take; ``iam_resources`` what to allow."""

    invoke_arn: str
    iam_resources: tuple[str, ...]


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
