"""The production foundation: a rotating key and an access-log archive, both retained (and
deleted only when the stack's first create rolls back, so that a retry starts clean)."""

from __future__ import annotations

from typing import Any

from stacks.config import load_config
from tests.infra.cfn import only, props


def test_key_rotates_and_is_retained(foundation: dict[str, Any]) -> None:
    _, key = only(foundation, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")


def test_access_logs_are_retained_for_the_configured_period(
    foundation: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    _, bucket = only(foundation, "AWS::S3::Bucket", "AccessLogs")
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")
    (rule,) = props(foundation, "AWS::S3::Bucket", "AccessLogs")["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == load_config(cdk_context).production.log_retention_days
    assert not [r for r in foundation["Resources"].values() if r["Type"] == "Custom::S3AutoDeleteObjects"]
