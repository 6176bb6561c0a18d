"""Service principals held to this account's own resources (the confused-deputy guard)."""

from __future__ import annotations

from aws_cdk import ArnFormat, Stack, aws_iam as iam
from constructs import Construct


def service_acting_for(scope: Construct, principal: str, *, service: str, resource: str) -> iam.ServicePrincipal:
    """``principal`` (e.g. "bedrock.amazonaws.com"), allowed to act only on behalf of this
    account's ``service`` resources of type ``resource`` in this region (aws:SourceAccount and
    aws:SourceArn conditions, as AWS recommends for service roles and key policies)."""
    stack = Stack.of(scope)
    source_arn = stack.format_arn(
        service=service, resource=resource, resource_name="*", arn_format=ArnFormat.SLASH_RESOURCE_NAME
    )
    return iam.ServicePrincipal(
        principal,
        conditions={"StringEquals": {"aws:SourceAccount": stack.account}, "ArnLike": {"aws:SourceArn": source_arn}},
    )
