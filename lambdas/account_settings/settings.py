"""Adopt an account-wide setting: turn it on if it is off, leave it if it is on, never switch it off.

X-Ray Transaction Search, Bedrock model invocation logging, the Macie session and API Gateway's
CloudWatch role exist once per account and region. Another team (or an organisation's delegated
administrator) may own them already; creating them through CloudFormation would fail, and deleting
the stack would switch them off for everyone. Each function here reads the current setting and
changes only what this tier owns, and returns an ``Outcome``:

- ``complete`` False: applied but not yet active, or IAM has not yet propagated a role the
  service validates; the handler looks again while its invocation has time (handler.py).
- ``Refused``: the account's state conflicts with what the tier needs; the message says what to do.

"The tier owns" a setting that was off, or that still holds exactly what this tier put there the
last time (``old``: the resource's previous properties), so an update moves it along with the
tier's own resources and never takes over someone else's. Invocation logging the stack manages
(``Mode`` manage) is put through here too, so that it waits for its role the same way; it is the
tier's whatever the account held.

``transaction_search_ready`` adopts nothing: it only reads, waiting for a Transaction Search the
stack manages itself (``manage``) to take effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

SPANS_LOG_GROUP = "aws/spans"  # where Transaction Search writes spans (X-Ray's own name)
MACIE_JOBS_LOG_GROUP = "/aws/macie/classificationjobs"  # where Macie logs its classification jobs
# The CloudWatch Logs resource policy that lets X-Ray write spans, under the name AWS's guide uses.
TRANSACTION_SEARCH_POLICY = "TransactionSearchXRayAccess"
# What an update answers (``Adopted``) when the Macie session the tier adopted has been suspended since.
SUSPENDED = "suspended"


class Refused(Exception):  # noqa: N818 - a refusal, not an internal error
    """The account's current state conflicts with the tier; the deployment fails with this message."""


@dataclass(frozen=True)
class Outcome:
    complete: bool
    data: dict[str, str] = field(default_factory=dict)


class _Properties(BaseModel):
    # CloudFormation passes every custom-resource property as a string; pydantic converts. An
    # invocation validates one setting's properties: only that model's validator is built, when
    # first used (a Delete builds none).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)


# The tier's key, by its ARN (X-Ray takes no key id or alias for aws/spans).
KMS_KEY_ARN = r"^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key/[A-Za-z0-9-]+$"


class TransactionSearchProperties(_Properties):
    IndexingPercentage: float = Field(ge=0, le=100)
    ResourcePolicy: str = Field(min_length=2)  # the JSON document X-Ray needs on aws/spans
    # aws/spans encrypted with it when X-Ray makes the group for this tier (an existing one is the account's).
    SpansKmsKeyArn: str | None = Field(default=None, pattern=KMS_KEY_ARN)


class ModelInvocationLoggingProperties(_Properties):
    LogGroupName: str = Field(min_length=1)
    RoleArn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")
    # Log groups whose names start with this are the tier's (CloudFormation names them after the
    # stack): a destination left by a destroyed or rolled-back deploy of the tier is moved along.
    OwnedLogGroupPrefix: str = Field(min_length=2)
    # ``manage`` (account_settings.model_invocation_logging=manage): the tier's destination whatever
    # the account had. Absent from an earlier release's template: adopted, as it was then.
    Mode: Literal["adopt", "manage"] = "adopt"


class MacieJobsLogGroupProperties(_Properties):
    JobsLogRetentionDays: int = Field(ge=1)
    KmsKeyArn: str | None = Field(default=None, pattern=KMS_KEY_ARN)  # the jobs' log group's, when made here


class MacieProperties(MacieJobsLogGroupProperties):
    FindingPublishingFrequency: str = "FIFTEEN_MINUTES"


class ApiGatewayLoggingProperties(_Properties):
    RoleArn: str = Field(pattern=r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _message(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", ""))


def macie_not_enabled(error: ClientError) -> bool:
    """Macie's answer to any call while it is off: AccessDeniedException "Macie is not enabled"."""
    return _code(error) == "AccessDeniedException" and "not enabled" in _message(error).lower()


# --- X-Ray Transaction Search -------------------------------------------------------------------


def transaction_search(xray: Any, logs: Any, signals: Any, props: TransactionSearchProperties) -> Outcome:
    """Spans go to CloudWatch Logs (aws/spans). If they already do, nothing else is touched (the
    resource policy and the indexing percentage are the owner's). Complete once the destination is
    ACTIVE and aws/spans exists (the online evaluation reads it at creation).

    Switching it on makes AWS's documented calls ("Enable transaction search"): the logs resource
    policy for X-Ray (kept when the stack goes, like the setting itself), the indexing rule,
    Application Signals discovery, then the destination. The guide lists the destination before the
    indexing rule without saying the order matters; the destination goes last here because it is
    what this function reads to decide: a failure before it leaves Transaction Search off, and the
    retry makes every call again. X-Ray makes aws/spans itself (a name starting "aws/" is refused to
    anyone else)."""
    current = xray.get_trace_segment_destination()
    if current.get("Destination") != "CloudWatchLogs":
        logs.put_resource_policy(policyName=TRANSACTION_SEARCH_POLICY, policyDocument=props.ResourcePolicy)
        xray.update_indexing_rule(
            Name="Default", Rule={"Probabilistic": {"DesiredSamplingPercentage": props.IndexingPercentage}}
        )
        signals.start_discovery()
        # X-Ray applies a key only when it makes aws/spans, and refuses one when the group exists
        # (InvalidRequestException): then, made meanwhile by someone else, the group is theirs.
        keyed = props.SpansKmsKeyArn is not None and not _spans_log_group_exists(logs)
        key = {"CloudWatchLogsConfiguration": {"SpansLogGroupKmsKeyId": props.SpansKmsKeyArn}} if keyed else {}
        try:
            xray.update_trace_segment_destination(Destination="CloudWatchLogs", **key)
        except ClientError as error:
            if not keyed or _code(error) != "InvalidRequestException" or not _spans_log_group_exists(logs):
                raise
            xray.update_trace_segment_destination(Destination="CloudWatchLogs")
        return Outcome(False, {"Destination": "CloudWatchLogs", "Adopted": "enabled"})
    if current.get("Status") != "ACTIVE":
        return Outcome(False, {"Destination": "CloudWatchLogs", "Adopted": "pending"})
    if not _spans_log_group_exists(logs):
        return Outcome(
            False, {"Destination": "CloudWatchLogs", "Adopted": f"waiting for X-Ray to make {SPANS_LOG_GROUP}"}
        )
    return Outcome(True, {"Destination": "CloudWatchLogs", "SpansLogGroup": SPANS_LOG_GROUP})


def transaction_search_ready(xray: Any, logs: Any) -> Outcome:
    """Read-only, for a Transaction Search the stack manages (``AWS::XRay::TransactionSearchConfig``,
    which is not documented to wait for either): complete once spans go to CloudWatch Logs, the
    destination is ACTIVE and X-Ray has made aws/spans, which the online evaluation reads when it is
    created. Nothing is written, whatever it finds: what is still missing is named in ``Waiting``."""
    current = xray.get_trace_segment_destination()
    destination, status = str(current.get("Destination") or "none"), str(current.get("Status") or "none")
    seen = {"Destination": destination, "Status": status}
    if destination != "CloudWatchLogs":
        return Outcome(False, {**seen, "Waiting": "X-Ray to send spans to CloudWatchLogs"})
    if status != "ACTIVE":
        return Outcome(False, {**seen, "Waiting": "X-Ray's CloudWatchLogs destination to become ACTIVE"})
    if not _spans_log_group_exists(logs):
        return Outcome(False, {**seen, "Waiting": f"X-Ray to make {SPANS_LOG_GROUP}"})
    return Outcome(True, {**seen, "SpansLogGroup": SPANS_LOG_GROUP})


def _spans_log_group_exists(logs: Any) -> bool:
    groups = logs.describe_log_groups(logGroupNamePrefix=SPANS_LOG_GROUP).get("logGroups", [])
    return any(group.get("logGroupName") == SPANS_LOG_GROUP for group in groups)


def ensure_log_group(logs: Any, name: str, retention_days: int, kms_key_arn: str | None = None) -> None:
    """A service's account-wide log group exists, with a retention (and ``kms_key_arn``'s
    encryption) when this made it (one that exists is the account's: left exactly as it is). A
    service creating it on first use would keep its logs forever, unencrypted by the tier's key.
    One under ``kms_key_arn`` without a retention is this one's, made by an attempt that failed
    before its retention (a retry of the deploy): it gets it now."""
    groups = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    existing = next((group for group in groups if group.get("logGroupName") == name), None)
    if existing is not None:
        if kms_key_arn and existing.get("kmsKeyId") == kms_key_arn and existing.get("retentionInDays") is None:
            logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)
        return
    try:
        logs.create_log_group(logGroupName=name, **({"kmsKeyId": kms_key_arn} if kms_key_arn else {}))
    except ClientError as error:
        if _code(error) != "ResourceAlreadyExistsException":
            raise
        return
    logs.put_retention_policy(logGroupName=name, retentionInDays=retention_days)


# --- Bedrock model invocation logging -----------------------------------------------------------


def _logging_config(props: ModelInvocationLoggingProperties) -> dict[str, Any]:
    return {
        "cloudWatchConfig": {"logGroupName": props.LogGroupName, "roleArn": props.RoleArn},
        "textDataDeliveryEnabled": True,
        "imageDataDeliveryEnabled": False,
        "embeddingDataDeliveryEnabled": False,
    }


def _points_at(config: dict[str, Any], props: ModelInvocationLoggingProperties | None) -> bool:
    if props is None:
        return False
    cloudwatch = config.get("cloudWatchConfig") or {}
    return bool(cloudwatch.get("logGroupName") == props.LogGroupName and cloudwatch.get("roleArn") == props.RoleArn)


def _owned(config: dict[str, Any], props: ModelInvocationLoggingProperties) -> bool:
    group = str((config.get("cloudWatchConfig") or {}).get("logGroupName") or "")
    return group.startswith(props.OwnedLogGroupPrefix)


def model_invocation_logging(
    bedrock: Any, props: ModelInvocationLoggingProperties, old: ModelInvocationLoggingProperties | None
) -> Outcome:
    """Bedrock logs invocations to the tier's log group, unless the account already logs them
    somewhere the tier did not set up (then that stays, and the answer says where). Managed
    (``Mode`` manage), the tier's log group replaces whatever the account had."""
    current = bedrock.get_model_invocation_logging_configuration().get("loggingConfig")
    theirs = not (_points_at(current or {}, old) or _points_at(current or {}, props) or _owned(current or {}, props))
    if current and theirs and props.Mode != "manage":
        destination = (current.get("cloudWatchConfig") or {}).get("logGroupName") or "a destination of the account's"
        return Outcome(True, {"Adopted": "existing", "LogGroupName": str(destination)})
    if current and _points_at(current, props):
        return Outcome(True, {"Adopted": "unchanged", "LogGroupName": props.LogGroupName})
    try:
        bedrock.put_model_invocation_logging_configuration(loggingConfig=_logging_config(props))
    except ClientError as error:
        # Bedrock checks that the role can write to the log group ("Failed to validate permissions
        # for log group"); a new role's policy takes a while to propagate through IAM. A role that
        # can never write looks the same: it is asked again until the invocation's time runs out.
        if _code(error) == "ValidationException":
            return Outcome(False, {"Adopted": "waiting for the logging role", "Reason": _message(error)})
        raise
    return Outcome(True, {"Adopted": "enabled", "LogGroupName": props.LogGroupName})


# --- Macie --------------------------------------------------------------------------------------


def macie_jobs_log_group(logs: Any, props: MacieJobsLogGroupProperties) -> Outcome:
    """For a Macie session the stack manages (``AWS::Macie::Session``): only the classification
    jobs' log group, made with a retention if Macie has not made it yet, as an adopted session's."""
    ensure_log_group(logs, MACIE_JOBS_LOG_GROUP, props.JobsLogRetentionDays, props.KmsKeyArn)
    return Outcome(True, {"LogGroupName": MACIE_JOBS_LOG_GROUP})


def macie_session(
    macie: Any, logs: Any, props: MacieProperties, *, client_token: str, updating: bool = False
) -> Outcome:
    """Macie on in this account and region: enabled here if it is off; an enabled session (the
    account's own or an organisation's delegated administrator's) is left exactly as it is. The
    classification jobs' log group exists before the tier's job runs (with a retention if made here).

    A suspended session is refused on a create, before anything is made: the jobs' log group is
    account-wide and outlives the deploy, so a refused first deploy (rolled back, maybe with its
    key) leaves none. On an update of the adopted session (``updating``; a rollback sends one too)
    the tier adopted Macie earlier and someone suspended it since: refused, every later deploy of
    the foundation would fail, and so would the rollback of the first that failed
    (UPDATE_ROLLBACK_FAILED). It goes on instead: the jobs' log group is made if missing, as on a
    create, the session is left suspended (resuming it is its owner's decision, never the deploy's)
    and ``Adopted`` answers SUSPENDED."""
    try:
        status = macie.get_macie_session().get("status")
    except ClientError as error:
        if not macie_not_enabled(error):
            raise
        status = None
    if status == "PAUSED" and not updating:
        raise Refused(
            "Macie is suspended in this account and region. Resume it (aws macie2 update-macie-session "
            "--status ENABLED) or set blueprint.production.account_settings.macie to off, then deploy again."
        )
    ensure_log_group(logs, MACIE_JOBS_LOG_GROUP, props.JobsLogRetentionDays, props.KmsKeyArn)
    if status == "PAUSED":
        return Outcome(True, {"Adopted": SUSPENDED})
    if status == "ENABLED":
        return Outcome(True, {"Adopted": "existing"})
    try:
        macie.enable_macie(
            clientToken=client_token, findingPublishingFrequency=props.FindingPublishingFrequency, status="ENABLED"
        )
    except ClientError as error:
        if _code(error) != "ConflictException":  # enabled by someone else since the read
            raise
    return Outcome(True, {"Adopted": "enabled"})


# --- API Gateway's CloudWatch role --------------------------------------------------------------


def api_gateway_logging(
    apigateway: Any, props: ApiGatewayLoggingProperties, old: ApiGatewayLoggingProperties | None
) -> Outcome:
    """API Gateway writes execution logs through this tier's role, unless the account already has a
    role of its own (then that one serves this tier's APIs too)."""
    current = apigateway.get_account().get("cloudwatchRoleArn") or ""
    if current == props.RoleArn:
        return Outcome(True, {"Adopted": "unchanged", "RoleArn": current})
    if current and (old is None or current != old.RoleArn):
        return Outcome(True, {"Adopted": "existing", "RoleArn": current})
    try:
        apigateway.update_account(
            patchOperations=[{"op": "replace", "path": "/cloudwatchRoleArn", "value": props.RoleArn}]
        )
    except ClientError as error:
        # "The role ARN does not have required permissions": the new role has not propagated yet.
        if _code(error) == "BadRequestException":
            return Outcome(False, {"Adopted": "waiting for the logging role", "Reason": _message(error)})
        raise
    return Outcome(True, {"Adopted": "enabled", "RoleArn": props.RoleArn})
