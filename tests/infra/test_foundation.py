"""The production foundation: a rotating key, retained even when the stack's first create rolls
back (account-wide log groups made with it outlive the rollback), and an access-log archive,
retained and deleted only when the stack's first create rolls back (so that a retry starts clean)."""

from __future__ import annotations

from typing import Any

from stacks.config import load_config
from tests.infra.cfn import only, props, resources


def test_key_rotates_and_is_retained_through_a_rolled_back_create(foundation: dict[str, Any]) -> None:
    """X-Ray's aws/spans, Macie's /aws/macie/classificationjobs and the invocation log group may be
    made with the key during the first deploy, and stay when it rolls back: a key deleted with the
    rollback (RetainExceptOnCreate) would leave them unwritable, and no retry repairs them. The key
    has no name to block the retry; its alias has one, and goes with the stack."""
    key_id, key = only(foundation, "AWS::KMS::Key")
    assert key["Properties"]["EnableKeyRotation"] is True
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("Retain", "Retain")
    assert set(key["Properties"]) & {"KeyId", "Name", "AliasName"} == set()
    _, alias = only(foundation, "AWS::KMS::Alias")
    assert alias["Properties"]["TargetKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert alias.get("DeletionPolicy", "Delete") == "Delete"


def test_access_logs_are_retained_for_the_configured_period(
    foundation: dict[str, Any], cdk_context: dict[str, Any]
) -> None:
    _, bucket = only(foundation, "AWS::S3::Bucket", "AccessLogs")
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")
    (rule,) = props(foundation, "AWS::S3::Bucket", "AccessLogs")["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == load_config(cdk_context).production.log_retention_days
    assert not [r for r in foundation["Resources"].values() if r["Type"] == "Custom::S3AutoDeleteObjects"]


def test_the_adopting_function_may_not_make_or_cancel_classification_jobs(foundation: dict[str, Any]) -> None:
    """Macie's classification job is the knowledge stack's, with a function and policy of its own
    (stacks/production/macie.py): the account-settings adopter, whose delete never switches
    anything off, is granted no job action."""
    granted = {
        action
        for logical_id, policy in resources(foundation, "AWS::IAM::Policy").items()
        if logical_id.startswith(("AccountSettingsAdopterPermissions", "AccountSettingsWaiterPermissions"))
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        for action in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    assert granted
    assert not {a for a in granted if a.startswith("macie2:") and "ClassificationJob" in a}
    adopter = props(foundation, "AWS::Lambda::Function", "AccountSettingsAdopterFunction")
    assert adopter["Handler"] == "account_settings.handler.lambda_handler"
