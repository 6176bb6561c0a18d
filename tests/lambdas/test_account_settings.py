"""Adopting account-wide settings at deploy time (lambdas/account_settings), against botocore's
Stubber: every request is checked against the real service model, and any call a test did not
expect fails it. So "nothing else is touched" is asserted, not assumed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from pydantic import ValidationError

from account_settings import handler
from account_settings.settings import Outcome, Refused
from tests.aws_stubs import Stubbed
from tests.lambdas.conftest import FakeContext

ROLE = "arn:aws:iam::123456789012:role/genai-production-foundation-Logging"
OLD_ROLE = "arn:aws:iam::123456789012:role/genai-production-foundation-LoggingOld"
POLICY = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "xray.amazonaws.com"}}]}
)


@pytest.fixture
def aws() -> Iterator[Stubbed]:
    stubbed = Stubbed()
    yield stubbed
    stubbed.done()


def event(setting: str, request: str = "Create", old: dict[str, str] | None = None, /, **props: str) -> dict[str, Any]:
    """A custom resource event for ``setting`` with ``props``; an update's previous properties are ``old``."""
    raised = {
        "RequestType": request,
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/genai-production-foundation/abc",
        "LogicalResourceId": "AccountSettingsAdopterMacieSession",
        "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "Setting": setting, **props},
    }
    if old is not None:
        raised["OldResourceProperties"] = {"ServiceToken": "arn:aws:lambda:...", "Setting": setting, **old}
    return raised


SEARCH = {"IndexingPercentage": "1", "ResourcePolicy": POLICY}
MACIE = {"FindingPublishingFrequency": "FIFTEEN_MINUTES", "JobsLogRetentionDays": "365"}
JOBS_LOG_GROUP = "/aws/macie/classificationjobs"


def jobs_log_group(aws: Stubbed, *, exists: bool) -> None:
    """Macie's job log group: looked up; made, with a retention, only if it is not there."""
    logs = aws.stub("logs")
    found = [{"logGroupName": JOBS_LOG_GROUP}] if exists else []
    logs.add_response("describe_log_groups", {"logGroups": found}, {"logGroupNamePrefix": JOBS_LOG_GROUP})
    if not exists:
        logs.add_response("create_log_group", {}, {"logGroupName": JOBS_LOG_GROUP})
        logs.add_response("put_retention_policy", {}, {"logGroupName": JOBS_LOG_GROUP, "retentionInDays": 365})


LOGGING = {
    "LogGroupName": "genai-production-foundation-AccountSettingsModelInvocations-new",
    "RoleArn": ROLE,
    "OwnedLogGroupPrefix": "genai-production-foundation-",
}


# --- Transaction Search -----------------------------------------------------------------------


def spans_appear_after_a_wait(xray: Any, logs: Any) -> None:
    """X-Ray's destination is still pending at the next look, then active without aws/spans (only
    X-Ray may make it: the Logs API refuses names starting "aws/"), then active with it."""
    xray.add_response("get_trace_segment_destination", {"Destination": "CloudWatchLogs", "Status": "PENDING"}, {})
    for _ in range(2):
        xray.add_response("get_trace_segment_destination", {"Destination": "CloudWatchLogs", "Status": "ACTIVE"}, {})
    logs.add_response("describe_log_groups", {"logGroups": []}, {"logGroupNamePrefix": "aws/spans"})
    logs.add_response(
        "describe_log_groups", {"logGroups": [{"logGroupName": "aws/spans"}]}, {"logGroupNamePrefix": "aws/spans"}
    )


def test_transaction_search_off_is_switched_on_as_aws_guide_does_then_waited_for(aws: Stubbed) -> None:
    xray, logs, signals = aws.stub("xray"), aws.stub("logs"), aws.stub("application-signals")
    xray.add_response("get_trace_segment_destination", {"Destination": "XRay", "Status": "ACTIVE"}, {})
    logs.add_response(
        "put_resource_policy", {}, {"policyName": "TransactionSearchXRayAccess", "policyDocument": POLICY}
    )
    xray.add_response(
        "update_indexing_rule",
        {},
        {"Name": "Default", "Rule": {"Probabilistic": {"DesiredSamplingPercentage": 1.0}}},
    )
    signals.add_response("start_discovery", {}, {})
    xray.add_response("update_trace_segment_destination", {}, {"Destination": "CloudWatchLogs"})
    spans_appear_after_a_wait(xray, logs)
    naps: list[float] = []
    outcome = handler.adopt_until_in_place(
        event("transaction_search", **SEARCH), aws, remaining_seconds=lambda: 600, sleep=naps.append
    )
    assert outcome.complete
    assert outcome.data["SpansLogGroup"] == "aws/spans"
    assert naps == [handler.POLL_SECONDS] * 3


KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def switching_on(aws: Stubbed, spans: list[dict[str, str]] | None = None) -> tuple[Any, Any]:
    """Transaction Search off, switched on up to the destination, the log groups named like
    aws/spans being ``spans``: xray's and logs' stubs."""
    xray, logs, signals = aws.stub("xray"), aws.stub("logs"), aws.stub("application-signals")
    xray.add_response("get_trace_segment_destination", {"Destination": "XRay", "Status": "ACTIVE"}, {})
    logs.add_response(
        "put_resource_policy", {}, {"policyName": "TransactionSearchXRayAccess", "policyDocument": POLICY}
    )
    xray.add_response(
        "update_indexing_rule", {}, {"Name": "Default", "Rule": {"Probabilistic": {"DesiredSamplingPercentage": 1.0}}}
    )
    signals.add_response("start_discovery", {}, {})
    logs.add_response("describe_log_groups", {"logGroups": spans or []}, {"logGroupNamePrefix": "aws/spans"})
    return xray, logs


@pytest.mark.parametrize("spans_exist", [False, True], ids=["X-Ray makes aws/spans", "aws/spans is the account's"])
def test_transaction_search_switched_on_encrypts_the_spans_it_makes_with_the_tiers_key(
    aws: Stubbed, spans_exist: bool
) -> None:
    """X-Ray applies a key only when it makes aws/spans, and refuses the request with one when the
    group exists (InvalidRequestException): the key goes only where X-Ray will make the group."""
    found = [{"logGroupName": "aws/spans"}] if spans_exist else [{"logGroupName": "aws/spans-other"}]
    xray, _ = switching_on(aws, found)
    expected: dict[str, Any] = {"Destination": "CloudWatchLogs"}
    if not spans_exist:
        expected["CloudWatchLogsConfiguration"] = {"SpansLogGroupKmsKeyId": KEY}
    xray.add_response("update_trace_segment_destination", {}, expected)
    outcome = handler.adopt(event("transaction_search", **SEARCH, SpansKmsKeyArn=KEY), aws)
    assert (outcome.complete, outcome.data["Adopted"]) == (False, "enabled")


def test_spans_made_by_someone_else_meanwhile_keep_their_own_key(aws: Stubbed) -> None:
    """aws/spans appears between the look and the switch: X-Ray refuses the key for it, and the
    switch is made again without one (the group is the account's)."""
    xray, logs = switching_on(aws)
    keyed = {"Destination": "CloudWatchLogs", "CloudWatchLogsConfiguration": {"SpansLogGroupKmsKeyId": KEY}}
    xray.add_client_error(
        "update_trace_segment_destination", "InvalidRequestException", "exists", expected_params=keyed
    )
    found = {"logGroups": [{"logGroupName": "aws/spans"}]}
    logs.add_response("describe_log_groups", found, {"logGroupNamePrefix": "aws/spans"})
    xray.add_response("update_trace_segment_destination", {}, {"Destination": "CloudWatchLogs"})
    outcome = handler.adopt(event("transaction_search", **SEARCH, SpansKmsKeyArn=KEY), aws)
    assert (outcome.complete, outcome.data["Adopted"]) == (False, "enabled")


def test_a_key_refused_for_another_reason_fails_the_switch(aws: Stubbed) -> None:
    xray, logs = switching_on(aws)
    xray.add_client_error("update_trace_segment_destination", "InvalidRequestException", "the key is disabled")
    logs.add_response("describe_log_groups", {"logGroups": []}, {"logGroupNamePrefix": "aws/spans"})
    with pytest.raises(ClientError, match="the key is disabled"):
        handler.adopt(event("transaction_search", **SEARCH, SpansKmsKeyArn=KEY), aws)


@pytest.mark.parametrize(
    "key", ["alias/tier", "1234abcd-12ab-34cd-56ef-1234567890ab", "arn:aws:kms:us-east-1:123456789012:alias/tier"]
)
def test_a_spans_key_that_is_not_a_key_arn_is_refused_before_anything_changes(aws: Stubbed, key: str) -> None:
    with pytest.raises(ValidationError, match="SpansKmsKeyArn"):
        handler.adopt(event("transaction_search", **SEARCH, SpansKmsKeyArn=key), aws)


def test_macies_jobs_log_group_made_here_is_encrypted_with_the_tiers_key(aws: Stubbed) -> None:
    logs = aws.stub("logs")
    logs.add_response("describe_log_groups", {"logGroups": []}, {"logGroupNamePrefix": JOBS_LOG_GROUP})
    logs.add_response("create_log_group", {}, {"logGroupName": JOBS_LOG_GROUP, "kmsKeyId": KEY})
    logs.add_response("put_retention_policy", {}, {"logGroupName": JOBS_LOG_GROUP, "retentionInDays": 365})
    outcome = handler.adopt(event("macie_jobs_log_group", JobsLogRetentionDays="365", KmsKeyArn=KEY), aws)
    assert outcome.complete


def test_a_jobs_log_group_made_by_a_failed_attempt_gets_its_retention_on_the_retry(aws: Stubbed) -> None:
    """The first attempt made the group and failed before its retention; the retry finds it under
    the tier's key without one (no account's group is under the tier's key): it sets it."""
    logs = aws.stub("logs")
    logs.add_response("describe_log_groups", {"logGroups": []}, {"logGroupNamePrefix": JOBS_LOG_GROUP})
    logs.add_response("create_log_group", {}, {"logGroupName": JOBS_LOG_GROUP, "kmsKeyId": KEY})
    logs.add_client_error("put_retention_policy", "ServiceUnavailableException", "try again", 503)
    retry = event("macie_jobs_log_group", JobsLogRetentionDays="365", KmsKeyArn=KEY)
    with pytest.raises(ClientError, match="ServiceUnavailable"):
        handler.adopt(retry, aws)
    made = {"logGroupName": JOBS_LOG_GROUP, "kmsKeyId": KEY}
    logs.add_response("describe_log_groups", {"logGroups": [made]}, {"logGroupNamePrefix": JOBS_LOG_GROUP})
    logs.add_response("put_retention_policy", {}, {"logGroupName": JOBS_LOG_GROUP, "retentionInDays": 365})
    assert handler.adopt(retry, aws).complete
    # Kept already, or another key's (the account's own): left exactly as it is (no call queued).
    for group in ({**made, "retentionInDays": 30}, {**made, "kmsKeyId": KEY.replace("key/", "key/0")}):
        logs.add_response("describe_log_groups", {"logGroups": [group]}, {"logGroupNamePrefix": JOBS_LOG_GROUP})
        assert handler.adopt(retry, aws).complete


def test_transaction_search_already_on_is_left_exactly_as_it_is(aws: Stubbed) -> None:
    aws.stub("xray").add_response(
        "get_trace_segment_destination", {"Destination": "CloudWatchLogs", "Status": "ACTIVE"}, {}
    )
    aws.stub("logs").add_response(
        "describe_log_groups",
        {"logGroups": [{"logGroupName": "aws/spans-archive"}, {"logGroupName": "aws/spans"}]},
        {"logGroupNamePrefix": "aws/spans"},
    )
    # No resource policy, no indexing rule, no log group: the Stubber fails on any such call.
    outcome = handler.adopt(event("transaction_search", **SEARCH), aws)
    assert outcome.complete


def test_a_setting_that_never_becomes_active_fails_the_deploy_saying_what_to_do(aws: Stubbed) -> None:
    xray = aws.stub("xray")
    for _ in range(3):
        xray.add_response("get_trace_segment_destination", {"Destination": "CloudWatchLogs", "Status": "PENDING"}, {})
    remaining = iter([600.0, 300.0, 25.0])
    naps: list[float] = []
    with pytest.raises(handler.NotInPlace, match=r"transaction_search is not in place yet .*deploy again"):
        handler.adopt_until_in_place(
            event("transaction_search", **SEARCH), aws, remaining_seconds=lambda: next(remaining), sleep=naps.append
        )
    assert len(naps) == 2  # the last look left less than a poll and the margin: no sleeping past the timeout


# --- a managed Transaction Search, waited for ----------------------------------------------------


def calls_made(aws: Stubbed, *services: str) -> list[str]:
    """The operations the code under test will call on ``services``' clients, in order (recorded
    as botocore builds each request, so a call the Stubber then refuses is recorded too)."""
    made: list[str] = []
    for service in services:
        aws(service).meta.events.register(
            "before-parameter-build", lambda model, **_: made.append(f"{model.service_model.signing_name}:{model.name}")
        )
    return made


def _reads_only(made: list[str]) -> bool:
    return all(call.split(":")[1].startswith(("Get", "Describe", "List")) for call in made)


@pytest.mark.parametrize(
    ("destination", "spans_groups", "waiting"),
    [
        ({"Destination": "XRay", "Status": "ACTIVE"}, None, "X-Ray to send spans to CloudWatchLogs"),
        ({"Destination": "CloudWatchLogs", "Status": "PENDING"}, None, "destination to become ACTIVE"),
        # Active, but X-Ray has not made aws/spans yet (a group whose name only starts so is not it).
        ({"Destination": "CloudWatchLogs", "Status": "ACTIVE"}, ["aws/spans-archive"], "X-Ray to make aws/spans"),
    ],
)
def test_a_managed_transaction_search_is_pending_until_active_with_its_spans_log_group(
    aws: Stubbed, destination: dict[str, str], spans_groups: list[str] | None, waiting: str
) -> None:
    made = calls_made(aws, "xray", "logs")
    aws.stub("xray").add_response("get_trace_segment_destination", destination, {})
    if spans_groups is not None:
        aws.stub("logs").add_response(
            "describe_log_groups",
            {"logGroups": [{"logGroupName": g} for g in spans_groups]},
            {"logGroupNamePrefix": "aws/spans"},
        )
    outcome = handler.adopt(event("transaction_search_ready"), aws)
    assert not outcome.complete
    assert waiting in outcome.data["Waiting"]
    assert outcome.data["Status"] == destination["Status"]
    assert made
    assert _reads_only(made), made


def test_a_managed_transaction_search_is_waited_for_until_it_takes_effect_reading_only(aws: Stubbed) -> None:
    """What a fresh account's first deploy meets after the TransactionSearchConfig is created: the
    destination is still pending, then active without aws/spans, then with it. The Stubber fails on
    any call not queued here (so no resource policy, indexing rule or destination is written)."""
    made = calls_made(aws, "xray", "logs", "application-signals")
    xray, logs = aws.stub("xray"), aws.stub("logs")
    spans_appear_after_a_wait(xray, logs)
    naps: list[float] = []
    outcome = handler.adopt_until_in_place(
        event("transaction_search_ready"), aws, remaining_seconds=lambda: 600, sleep=naps.append
    )
    assert outcome == Outcome(True, {"Destination": "CloudWatchLogs", "Status": "ACTIVE", "SpansLogGroup": "aws/spans"})
    assert naps == [handler.POLL_SECONDS] * 2
    assert made == [
        "xray:GetTraceSegmentDestination",
        "xray:GetTraceSegmentDestination",
        "logs:DescribeLogGroups",
        "xray:GetTraceSegmentDestination",
        "logs:DescribeLogGroups",
    ]


def test_a_managed_transaction_search_that_never_takes_effect_fails_saying_what_it_waited_for(
    aws: Stubbed,
) -> None:
    """The stack event's reason names what was missing when time ran out and what a retry does
    (a rolled-back create removed the TransactionSearchConfig: the retry starts over)."""
    xray = aws.stub("xray")
    for _ in range(2):
        xray.add_response("get_trace_segment_destination", {"Destination": "CloudWatchLogs", "Status": "PENDING"}, {})
    remaining = iter([600.0, 25.0])
    with pytest.raises(handler.NotInPlace) as failed:
        handler.adopt_until_in_place(
            event("transaction_search_ready"), aws, remaining_seconds=lambda: next(remaining), sleep=lambda _: None
        )
    reason = str(failed.value)
    assert reason.startswith("transaction_search_ready is not in place yet (")
    assert "Status: PENDING" in reason
    assert "Waiting: X-Ray's CloudWatchLogs destination to become ACTIVE" in reason
    assert "Deploy again" in reason
    assert "rollback removes it and the retry starts over" in reason
    assert "get-trace-segment-destination" in reason
    assert len(reason) < 1000  # CloudFormation keeps the reason with the stack event


def test_waiting_for_a_managed_transaction_search_keeps_one_physical_id_and_its_delete_calls_nothing(
    aws: Stubbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handler, "_client", aws)
    made = calls_made(aws, "xray", "logs")
    for _ in range(2):
        aws.stub("xray").add_response(
            "get_trace_segment_destination", {"Destination": "CloudWatchLogs", "Status": "ACTIVE"}, {}
        )
        aws.stub("logs").add_response(
            "describe_log_groups", {"logGroups": [{"logGroupName": "aws/spans"}]}, {"logGroupNamePrefix": "aws/spans"}
        )
    created = handler.lambda_handler(event("transaction_search_ready"), FakeContext())
    updated = handler.lambda_handler(
        {**event("transaction_search_ready", "Update", {}), "PhysicalResourceId": created["PhysicalResourceId"]},
        FakeContext(),
    )
    assert created["PhysicalResourceId"] == updated["PhysicalResourceId"] == "account-setting-transaction_search_ready"
    assert created["Data"]["SpansLogGroup"] == "aws/spans"
    assert _reads_only(made), made
    calls = len(made)

    def no_aws(service: str) -> Any:
        raise AssertionError(f"a delete called {service}")

    monkeypatch.setattr(handler, "_client", no_aws)
    deleted = handler.lambda_handler(
        {**event("transaction_search_ready", "Delete"), "PhysicalResourceId": created["PhysicalResourceId"]},
        FakeContext(),
    )
    assert deleted == {"PhysicalResourceId": "account-setting-transaction_search_ready"}
    assert len(made) == calls


def test_the_read_only_check_sees_a_write(aws: Stubbed) -> None:
    """Negative control: adopting (not waiting for) a Transaction Search that is off writes, and
    the recorder above says so."""
    made = calls_made(aws, "xray", "logs", "application-signals")
    xray = aws.stub("xray")
    xray.add_response("get_trace_segment_destination", {"Destination": "XRay", "Status": "ACTIVE"}, {})
    aws.stub("logs").add_response("put_resource_policy", {}, None)
    xray.add_response("update_indexing_rule", {}, None)
    aws.stub("application-signals").add_response("start_discovery", {}, {})
    xray.add_response("update_trace_segment_destination", {}, {"Destination": "CloudWatchLogs"})
    handler.adopt(event("transaction_search", **SEARCH), aws)
    assert not _reads_only(made)
    assert "xray:UpdateTraceSegmentDestination" in made


# --- Bedrock model invocation logging ---------------------------------------------------------


def test_invocation_logging_off_is_pointed_at_the_tiers_log_group(aws: Stubbed) -> None:
    bedrock = aws.stub("bedrock")
    bedrock.add_response("get_model_invocation_logging_configuration", {}, {})
    bedrock.add_response(
        "put_model_invocation_logging_configuration",
        {},
        {
            "loggingConfig": {
                "cloudWatchConfig": {"logGroupName": LOGGING["LogGroupName"], "roleArn": ROLE},
                "textDataDeliveryEnabled": True,
                "imageDataDeliveryEnabled": False,
                "embeddingDataDeliveryEnabled": False,
            }
        },
    )
    outcome = handler.adopt(event("model_invocation_logging", **LOGGING), aws)
    assert outcome == Outcome(True, {"Adopted": "enabled", "LogGroupName": LOGGING["LogGroupName"]})


def test_someone_elses_invocation_logging_is_left_and_reported(aws: Stubbed) -> None:
    theirs = {
        "s3Config": {"bucketName": "org-audit"},
        "cloudWatchConfig": {"logGroupName": "org/bedrock", "roleArn": OLD_ROLE},
    }
    aws.stub("bedrock").add_response("get_model_invocation_logging_configuration", {"loggingConfig": theirs}, {})
    outcome = handler.adopt(event("model_invocation_logging", **LOGGING), aws)
    assert outcome == Outcome(True, {"Adopted": "existing", "LogGroupName": "org/bedrock"})


def test_a_destination_a_destroyed_or_rolled_back_deploy_of_the_tier_left_is_moved_to_the_new_one(
    aws: Stubbed,
) -> None:
    """No earlier properties (a new stack), but the destination is a group the stack named before."""
    left = "genai-production-foundation-AccountSettingsModelInvocations-old"
    bedrock = aws.stub("bedrock")
    bedrock.add_response(
        "get_model_invocation_logging_configuration",
        {"loggingConfig": {"cloudWatchConfig": {"logGroupName": left, "roleArn": OLD_ROLE}}},
        {},
    )
    bedrock.add_response("put_model_invocation_logging_configuration", {}, None)
    outcome = handler.adopt(event("model_invocation_logging", **LOGGING), aws)
    assert outcome.data == {"Adopted": "enabled", "LogGroupName": LOGGING["LogGroupName"]}


def test_the_tiers_own_earlier_setting_moves_with_its_log_group_on_update(aws: Stubbed) -> None:
    old = {**LOGGING, "LogGroupName": "renamed-ModelInvocations-old", "RoleArn": OLD_ROLE}
    bedrock = aws.stub("bedrock")
    bedrock.add_response(
        "get_model_invocation_logging_configuration",
        {"loggingConfig": {"cloudWatchConfig": {"logGroupName": old["LogGroupName"], "roleArn": OLD_ROLE}}},
        {},
    )
    bedrock.add_response("put_model_invocation_logging_configuration", {}, None)
    outcome = handler.adopt(event("model_invocation_logging", "Update", old, **LOGGING), aws)
    assert outcome.data["Adopted"] == "enabled"


@pytest.mark.parametrize(
    ("setting", "old", "props"),
    [
        # written before OwnedLogGroupPrefix existed
        ("model_invocation_logging", {"LogGroupName": "genai-production-foundation-Old", "RoleArn": OLD_ROLE}, LOGGING),
        # a value today's model refuses
        ("api_gateway_logging", {"RoleArn": "not an arn"}, {"RoleArn": ROLE}),
    ],
)
def test_previous_properties_an_earlier_template_wrote_never_fail_the_update(
    aws: Stubbed, monkeypatch: pytest.MonkeyPatch, setting: str, old: dict[str, str], props: dict[str, str]
) -> None:
    """An update's OldResourceProperties come from the template deployed before, maybe an earlier
    release's: validated as today's properties they failed every update from it. Not read, the
    update adopts as a first deploy would (the tier's own earlier log group is still moved along:
    its name has the stack's prefix)."""
    monkeypatch.setattr(handler, "_client", aws)
    if setting == "model_invocation_logging":
        bedrock = aws.stub("bedrock")
        bedrock.add_response(
            "get_model_invocation_logging_configuration",
            {"loggingConfig": {"cloudWatchConfig": {"logGroupName": old["LogGroupName"], "roleArn": OLD_ROLE}}},
            {},
        )
        bedrock.add_response("put_model_invocation_logging_configuration", {}, None)
    else:
        gateway = aws.stub("apigateway")
        gateway.add_response("get_account", {}, {})
        gateway.add_response("update_account", {}, None)
    changed = {**event(setting, "Update", old, **props), "PhysicalResourceId": f"account-setting-{setting}"}
    answer = handler.lambda_handler(changed, FakeContext())
    assert answer["Data"]["Adopted"] == "enabled"


def test_a_role_iam_has_not_propagated_yet_is_asked_again_other_errors_fail(aws: Stubbed) -> None:
    bedrock = aws.stub("bedrock")
    bedrock.add_response("get_model_invocation_logging_configuration", {}, {})
    bedrock.add_client_error(
        "put_model_invocation_logging_configuration", "ValidationException", "Failed to validate permissions"
    )
    outcome = handler.adopt(event("model_invocation_logging", **LOGGING), aws)
    assert not outcome.complete
    assert "Failed to validate" in outcome.data["Reason"]
    bedrock.add_response("get_model_invocation_logging_configuration", {}, {})
    bedrock.add_client_error("put_model_invocation_logging_configuration", "AccessDeniedException", "not PassRole")
    with pytest.raises(Exception, match="AccessDenied"):
        handler.adopt(event("model_invocation_logging", **LOGGING), aws)


def _put(group: str = LOGGING["LogGroupName"]) -> dict[str, Any]:
    return {
        "loggingConfig": {
            "cloudWatchConfig": {"logGroupName": group, "roleArn": ROLE},
            "textDataDeliveryEnabled": True,
            "imageDataDeliveryEnabled": False,
            "embeddingDataDeliveryEnabled": False,
        }
    }


def test_managed_invocation_logging_overwrites_the_accounts_destination(aws: Stubbed) -> None:
    """``manage`` (an account the tier owns): the tier's log group, whatever the account had."""
    theirs = {"cloudWatchConfig": {"logGroupName": "org/bedrock", "roleArn": OLD_ROLE}}
    bedrock = aws.stub("bedrock")
    bedrock.add_response("get_model_invocation_logging_configuration", {"loggingConfig": theirs}, {})
    bedrock.add_response("put_model_invocation_logging_configuration", {}, _put())
    outcome = handler.adopt(event("model_invocation_logging", **LOGGING, Mode="manage"), aws)
    assert outcome == Outcome(True, {"Adopted": "enabled", "LogGroupName": LOGGING["LogGroupName"]})
    # Already the tier's: nothing is written (no put queued).
    mine = {"cloudWatchConfig": {"logGroupName": LOGGING["LogGroupName"], "roleArn": ROLE}}
    bedrock.add_response("get_model_invocation_logging_configuration", {"loggingConfig": mine}, {})
    assert (
        handler.adopt(event("model_invocation_logging", **LOGGING, Mode="manage"), aws).data["Adopted"] == "unchanged"
    )


def test_managed_invocation_logging_waits_for_its_new_role_as_adopting_does(
    aws: Stubbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The role is created just before the setting, and Bedrock refuses it while IAM propagates
    ("Failed to validate permissions for log group"): asked again every POLL_SECONDS until it
    takes. Its delete calls nothing: no rollback or destroy switches the account's logging off."""
    bedrock = aws.stub("bedrock")
    for _ in range(2):
        bedrock.add_response("get_model_invocation_logging_configuration", {}, {})
        bedrock.add_client_error(
            "put_model_invocation_logging_configuration",
            "ValidationException",
            "Failed to validate permissions for log group",
            expected_params=_put(),
        )
    bedrock.add_response("get_model_invocation_logging_configuration", {}, {})
    bedrock.add_response("put_model_invocation_logging_configuration", {}, _put())
    naps: list[float] = []
    managed = event("model_invocation_logging", **LOGGING, Mode="manage")
    outcome = handler.adopt_until_in_place(managed, aws, remaining_seconds=lambda: 600, sleep=naps.append)
    assert outcome.data["Adopted"] == "enabled"
    assert naps == [handler.POLL_SECONDS] * 2

    def no_aws(service: str) -> Any:
        raise AssertionError(f"a delete called {service}")

    monkeypatch.setattr(handler, "_client", no_aws)
    deleted = handler.lambda_handler(
        {**event("model_invocation_logging", "Delete", **LOGGING, Mode="manage"), "PhysicalResourceId": "p"},
        FakeContext(),
    )
    assert deleted == {"PhysicalResourceId": "p"}


def test_a_mode_that_is_neither_adopt_nor_manage_is_refused_by_name(aws: Stubbed) -> None:
    with pytest.raises(ValidationError, match="Mode"):
        handler.adopt(event("model_invocation_logging", **LOGGING, Mode="overwrite"), aws)


class Clock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.naps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def test_a_denial_while_iam_propagates_the_functions_policy_is_asked_again(aws: Stubbed) -> None:
    """The function's permissions policy is created just before the custom resource runs it: its
    first calls may be denied for a while."""
    apigateway = aws.stub("apigateway")
    for _ in range(2):
        apigateway.add_client_error("get_account", "AccessDeniedException", "not authorized", 403)
    apigateway.add_response("get_account", {"cloudwatchRoleArn": ROLE}, {})
    clock = Clock()
    outcome = handler.adopt_until_in_place(
        event("api_gateway_logging", RoleArn=ROLE),
        aws,
        remaining_seconds=lambda: 600,
        sleep=clock.sleep,
        clock=lambda: clock.now,
    )
    assert outcome.data["Adopted"] == "unchanged"
    assert clock.naps == [handler.POLL_SECONDS] * 2


def test_a_denial_that_outlasts_iam_propagation_fails_and_other_errors_fail_at_once(aws: Stubbed) -> None:
    apigateway = aws.stub("apigateway")
    looks = int(handler.ACCESS_DENIED_GRACE_SECONDS / handler.POLL_SECONDS) + 1
    for _ in range(looks):
        apigateway.add_client_error("get_account", "AccessDeniedException", "not authorized", 403)
    clock = Clock()
    with pytest.raises(ClientError, match="AccessDenied"):
        handler.adopt_until_in_place(
            event("api_gateway_logging", RoleArn=ROLE),
            aws,
            remaining_seconds=lambda: 600,
            sleep=clock.sleep,
            clock=lambda: clock.now,
        )
    assert clock.now == handler.ACCESS_DENIED_GRACE_SECONDS  # bounded: two minutes, not the invocation's 14
    # Not a denial: no second look. A denial with too little time left: none either.
    apigateway.add_client_error("get_account", "TooManyRequestsException", "slow down", 429)
    with pytest.raises(ClientError, match="TooManyRequests"):
        handler.adopt_until_in_place(
            event("api_gateway_logging", RoleArn=ROLE), aws, remaining_seconds=lambda: 600, sleep=clock.sleep
        )
    apigateway.add_client_error("get_account", "AccessDeniedException", "not authorized", 403)
    with pytest.raises(ClientError, match="AccessDenied"):
        handler.adopt_until_in_place(
            event("api_gateway_logging", RoleArn=ROLE), aws, remaining_seconds=lambda: 25, sleep=clock.sleep
        )
    assert clock.now == handler.ACCESS_DENIED_GRACE_SECONDS


# --- Macie ---------------------------------------------------------------------------------------


def test_macie_off_is_enabled_with_a_token_that_makes_a_retry_idempotent(aws: Stubbed) -> None:
    jobs_log_group(aws, exists=False)
    macie = aws.stub("macie2")
    macie.add_client_error("get_macie_session", "AccessDeniedException", "Macie is not enabled", 403)
    token = hashlib.sha256(
        b"arn:aws:cloudformation:us-east-1:123456789012:stack/genai-production-foundation/abc/AccountSettingsAdopterMacieSession"
    ).hexdigest()
    macie.add_response(
        "enable_macie", {}, {"clientToken": token, "findingPublishingFrequency": "FIFTEEN_MINUTES", "status": "ENABLED"}
    )
    assert handler.adopt(event("macie", **MACIE), aws).data == {"Adopted": "enabled"}


@pytest.mark.parametrize("exists", [False, True])
def test_a_managed_sessions_jobs_log_group_is_made_with_a_retention_only_when_missing(
    aws: Stubbed, exists: bool
) -> None:
    """The session is the stack's own (AWS::Macie::Session): only its jobs' log group is looked
    after, made with the retention when Macie has not made it, the account's left as it is; Macie
    itself is never called."""
    jobs_log_group(aws, exists=exists)
    outcome = handler.adopt(event("macie_jobs_log_group", JobsLogRetentionDays="365"), aws)
    assert (outcome.complete, outcome.data) == (True, {"LogGroupName": JOBS_LOG_GROUP})


def test_macie_enabled_by_a_delegated_administrator_is_adopted_untouched(aws: Stubbed) -> None:
    jobs_log_group(aws, exists=True)  # the account's own: left as it is (no retention put on it)
    aws.stub("macie2").add_response(
        "get_macie_session", {"status": "ENABLED", "findingPublishingFrequency": "ONE_HOUR"}, {}
    )
    assert handler.adopt(event("macie", **MACIE), aws) == Outcome(True, {"Adopted": "existing"})


def test_suspended_macie_is_refused_with_the_fix_not_resumed(aws: Stubbed) -> None:
    aws.stub("macie2").add_response("get_macie_session", {"status": "PAUSED"}, {})
    with pytest.raises(Refused, match=r"suspended.*update-macie-session.*account_settings\.macie to off"):
        handler.adopt(event("macie", **MACIE), aws)


def test_a_refused_macie_deploy_makes_no_log_group(aws: Stubbed) -> None:
    """Macie's jobs' log group is account-wide and outlives the deploy: made before the refusal, it
    stayed under a key the rolled-back deploy may have deleted, and no retry repaired it. Refused
    first, nothing is made (the Stubber fails on any log group call: none is queued)."""
    made = calls_made(aws, "macie2", "logs")
    aws.stub("macie2").add_response("get_macie_session", {"status": "PAUSED"}, {})
    aws.stub("logs")
    with pytest.raises(Refused, match="suspended"):
        handler.adopt(event("macie", **MACIE, KmsKeyArn=KEY), aws)
    assert made == ["macie2:GetMacieSession"]


def test_an_update_of_an_adopted_session_suspended_since_goes_on_and_so_does_its_rollback(
    aws: Stubbed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The tier adopted Macie; someone suspended it later. An update of the setting's properties
    (a new log retention) goes on, and so does the rollback's update back (refused, the stack would
    be UPDATE_ROLLBACK_FAILED): the jobs' log group is made if missing, as a create makes it, the
    session is left suspended (no UpdateMacieSession: the Stubber would fail it) and a warning says
    what that means. A first adoption still refuses a suspended session (below)."""
    monkeypatch.setattr(handler, "_client", aws)
    macie = aws.stub("macie2")
    for new, old, exists in (("365", "400", False), ("400", "365", True)):  # forward, then the rollback
        jobs_log_group(aws, exists=exists)
        macie.add_response("get_macie_session", {"status": "PAUSED"}, {})
        update = event(
            "macie", "Update", {**MACIE, "JobsLogRetentionDays": old}, **{**MACIE, "JobsLogRetentionDays": new}
        )
        answer = handler.lambda_handler({**update, "PhysicalResourceId": "account-setting-macie"}, FakeContext())
        assert answer == {"PhysicalResourceId": "account-setting-macie", "Data": {"Adopted": "suspended"}}
    warnings = [line for line in capsys.readouterr().out.splitlines() if '"level":"WARNING"' in line]
    assert len(warnings) == 2
    assert all("Macie is suspended" in line and "update-macie-session" in line for line in warnings)
    macie.add_response("get_macie_session", {"status": "PAUSED"}, {})
    with pytest.raises(Refused, match=r"suspended.*account_settings\.macie to off"):
        handler.lambda_handler(event("macie", **MACIE), FakeContext())


def test_macie_enabled_meanwhile_is_fine_and_a_real_denial_is_not_taken_for_off(aws: Stubbed) -> None:
    jobs_log_group(aws, exists=True)  # (the denial below fails before the log group is looked at)
    macie = aws.stub("macie2")
    macie.add_client_error("get_macie_session", "AccessDeniedException", "Macie is not enabled", 403)
    macie.add_client_error("enable_macie", "ConflictException", "Macie is already enabled", 409)
    assert handler.adopt(event("macie", **MACIE), aws).complete
    macie.add_client_error("get_macie_session", "AccessDeniedException", "User is not authorized", 403)
    with pytest.raises(Exception, match="not authorized"):
        handler.adopt(event("macie", **MACIE), aws)


# --- API Gateway's CloudWatch role ------------------------------------------------------------------


def _patch(role: str) -> dict[str, Any]:
    return {"patchOperations": [{"op": "replace", "path": "/cloudwatchRoleArn", "value": role}]}


@pytest.mark.parametrize(
    ("current", "old", "patched", "adopted"),
    [
        (None, None, True, "enabled"),  # no role yet: the tier's
        (ROLE, None, False, "unchanged"),  # already the tier's
        ("arn:aws:iam::123456789012:role/platform-apigw", None, False, "existing"),  # someone else's
        (OLD_ROLE, OLD_ROLE, True, "enabled"),  # the tier's previous role: moves with the tier
        ("arn:aws:iam::123456789012:role/platform-apigw", OLD_ROLE, False, "existing"),  # taken over since
    ],
)
def test_api_gateways_role_is_set_only_where_the_tier_owns_it(
    aws: Stubbed, current: str | None, old: str | None, patched: bool, adopted: str
) -> None:
    apigateway = aws.stub("apigateway")
    apigateway.add_response("get_account", {"cloudwatchRoleArn": current} if current else {}, {})
    if patched:
        apigateway.add_response("update_account", {}, _patch(ROLE))
    request = "Update" if old else "Create"
    outcome = handler.adopt(event("api_gateway_logging", request, {"RoleArn": old} if old else None, RoleArn=ROLE), aws)
    assert outcome.complete
    assert outcome.data["Adopted"] == adopted


def test_api_gateway_refusing_a_new_role_is_asked_again(aws: Stubbed) -> None:
    apigateway = aws.stub("apigateway")
    apigateway.add_response("get_account", {}, {})
    apigateway.add_client_error(
        "update_account", "BadRequestException", "The role ARN does not have required permissions"
    )
    assert not handler.adopt(event("api_gateway_logging", RoleArn=ROLE), aws).complete


# --- the entry point ------------------------------------------------------------------------------


def test_delete_switches_nothing_off_and_calls_no_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_aws(service: str) -> Any:
        raise AssertionError(f"a delete called {service}")

    monkeypatch.setattr(handler, "_client", no_aws)
    answer = handler.lambda_handler(
        {**event("macie", "Delete"), "PhysicalResourceId": "account-setting-macie"}, FakeContext()
    )
    assert answer == {"PhysicalResourceId": "account-setting-macie"}


@pytest.mark.parametrize(
    "properties",
    [
        {},  # none at all
        {"ResourceProperties": None},
        {"ResourceProperties": {"ServiceToken": "arn:aws:lambda:..."}},  # no Setting
        {"ResourceProperties": {"Setting": {"not": "a name"}, "JobsLogRetentionDays": "-1"}},
    ],
)
def test_a_delete_reads_no_property_so_odd_ones_never_fail_it(
    monkeypatch: pytest.MonkeyPatch, properties: dict[str, Any]
) -> None:
    """A failed delete leaves the stack DELETE_FAILED: whatever the properties, the delete answers
    with the resource's own physical id and calls nothing."""

    def no_aws(service: str) -> Any:
        raise AssertionError(f"a delete called {service}")

    monkeypatch.setattr(handler, "_client", no_aws)
    deleted = {key: value for key, value in event("macie", "Delete").items() if key != "ResourceProperties"}
    answer = handler.lambda_handler({**deleted, **properties, "PhysicalResourceId": "account-setting-x"}, FakeContext())
    assert answer == {"PhysicalResourceId": "account-setting-x"}


def test_an_unknown_request_type_is_refused_by_name_not_taken_for_a_create(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_aws(service: str) -> Any:
        raise AssertionError(f"a {service} call for an unknown request")

    monkeypatch.setattr(handler, "_client", no_aws)
    with pytest.raises(ValueError, match="unknown RequestType 'Bogus'"):
        handler.lambda_handler(event("macie", "Bogus", **MACIE), FakeContext())


def test_a_change_of_setting_is_a_replacement_that_never_reads_the_old_settings_properties(
    aws: Stubbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Macie's properties are not invocation logging's: an update to another setting takes a new
    physical id (CloudFormation then deletes the old one, which does nothing) and adopts as a create."""
    monkeypatch.setattr(handler, "_client", aws)
    bedrock = aws.stub("bedrock")
    bedrock.add_response("get_model_invocation_logging_configuration", {}, {})
    bedrock.add_response("put_model_invocation_logging_configuration", {}, None)
    changed = {
        **event("model_invocation_logging", "Update", **LOGGING),
        "OldResourceProperties": {"ServiceToken": "arn:aws:lambda:...", "Setting": "macie", **MACIE},
        "PhysicalResourceId": "account-setting-macie",
    }
    answer = handler.lambda_handler(changed, FakeContext())
    assert answer["PhysicalResourceId"] == "account-setting-model_invocation_logging"
    assert answer["Data"]["Adopted"] == "enabled"


def test_create_and_update_keep_one_physical_id_per_setting(aws: Stubbed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "_client", aws)
    jobs_log_group(aws, exists=True)
    jobs_log_group(aws, exists=True)
    macie = aws.stub("macie2")
    macie.add_response("get_macie_session", {"status": "ENABLED"}, {})
    macie.add_response("get_macie_session", {"status": "ENABLED"}, {})
    created = handler.lambda_handler(event("macie", **MACIE), FakeContext())
    updated = handler.lambda_handler(
        {**event("macie", "Update", MACIE, **MACIE), "PhysicalResourceId": created["PhysicalResourceId"]},
        FakeContext(),
    )
    assert created["PhysicalResourceId"] == updated["PhysicalResourceId"] == "account-setting-macie"
    assert created["Data"] == {"Adopted": "existing"}


def test_properties_cloudformation_mangled_are_refused_by_name(aws: Stubbed) -> None:
    with pytest.raises(Exception, match="RoleArn"):
        handler.adopt(event("api_gateway_logging", RoleArn="not-an-arn"), aws)
    with pytest.raises(ValueError, match="unknown account setting 'guardduty'"):
        handler.adopt(event("guardduty"), aws)
