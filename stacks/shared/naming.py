"""Names derived from configuration."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the config's checks use pascal_case without loading the CDK
    from constructs import IConstruct


def pascal_case(name: str) -> str:
    """A construct-id fragment for a configured name: "customer-gold" -> "CustomerGold"."""
    return "".join(part.title() for part in name.replace("_", "-").split("-"))


def stack_instance_suffix(scope: IConstruct) -> str:
    """Eight hex characters unique to this *creation* of the stack (the first group of the UUID in
    its stack id): stable across updates, new after a destroy. For a name that a retained resource
    must carry (WAF's ``aws-waf-logs-`` log groups), so that a redeploy does not collide with it."""
    from aws_cdk import Fn, Stack

    stack_uuid = Fn.select(2, Fn.split("/", Stack.of(scope).stack_id))
    return Fn.select(0, Fn.split("-", stack_uuid))


def generation(*settings: Any) -> str:
    """Six hex characters that change exactly when ``settings`` change.

    For resources that CloudFormation can only replace when those settings change (a Knowledge
    Base's embedding model, a Macie identifier's regex): carried in their construct id and name,
    a replacement gets a new logical id and a new name, so it never collides with the old one, and
    every stack that reads it sees a new output and is updated in the same deploy.
    """
    canonical = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:6]
