"""Deploy-time custom resource that adopts one account-wide setting (settings.py), behind CDK's
Provider framework (stacks/production/account_settings.py).

Create and Update adopt the setting named by ``ResourceProperties.Setting``, asking again every
``POLL_SECONDS`` while it is still switching on or IAM has not yet propagated a role the service
checks, for as long as the invocation has time, and for up to ``ACCESS_DENIED_GRACE_SECONDS`` while
a call is denied (the function's own permissions policy is created just before it runs).
``transaction_search_ready`` adopts nothing: it reads, and waits the same way for a Transaction
Search the stack manages to take effect. Delete
does nothing and reads no property: adopting never switches an account setting off, and a delete
CloudFormation cannot finish would leave the stack DELETE_FAILED. The physical id is the setting's
name, so an update of the same setting keeps it; an update to another setting is a replacement
(CloudFormation then deletes the old one, which does nothing), and only an update of the same
setting reads its previous properties. Any other request type is refused by name.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import ValidationError

from account_settings.settings import (
    SUSPENDED,
    ApiGatewayLoggingProperties,
    MacieJobsLogGroupProperties,
    MacieProperties,
    ModelInvocationLoggingProperties,
    Outcome,
    TransactionSearchProperties,
    api_gateway_logging,
    macie_jobs_log_group,
    macie_session,
    model_invocation_logging,
    transaction_search,
    transaction_search_ready,
)
from shared.logs import service_logger

logger = service_logger()
AWS = Config(retries={"mode": "standard", "total_max_attempts": 5})
POLL_SECONDS = 10.0
# Time kept back to answer CloudFormation when the setting is still not in place.
MARGIN_SECONDS = 20.0
# The function's permissions policy is created just before the custom resource that runs it, and
# IAM takes a while to propagate it: a denial this soon after the first look is asked again (every
# POLL_SECONDS); later, or with too little time left, it fails the deploy as it is.
ACCESS_DENIED_GRACE_SECONDS = 120.0
DENIED = frozenset({"AccessDeniedException", "AccessDenied"})
Clients = Callable[[str], Any]
Props = TypeVar("Props", ModelInvocationLoggingProperties, ApiGatewayLoggingProperties)
SETTINGS = (
    "transaction_search",
    "model_invocation_logging",
    "macie",
    "api_gateway_logging",
    "transaction_search_ready",
    "macie_jobs_log_group",
)
# What to do when a setting is still not in place as the invocation's time runs out (the stack
# event's reason), where "deploy again" alone is not the whole answer.
AFTER_TIMEOUT = {
    "transaction_search_ready": (
        "X-Ray has not finished switching on the Transaction Search this stack manages (it can take minutes). "
        "Deploy again; if this deploy created the TransactionSearchConfig, its rollback removes it and the "
        "retry starts over. `aws xray get-trace-segment-destination` shows where X-Ray stands; "
        "account_settings.transaction_search=adopt keeps what it switched on from one retry to the next"
    ),
}
DEPLOY_AGAIN = "deploy again to pick up where this left off"
SHOWN_CHARS = 100


class NotInPlace(Exception):  # noqa: N818 - the deployment's failure message
    """The setting did not reach its state within the invocation's time."""


@cache
def _client(service: str) -> Any:
    return boto3.client(service, config=AWS)  # made once, reused by every look


def shown(value: Any) -> str:
    """A value of the event in a failure's reason: its repr, cut to SHOWN_CHARS (the reason is the
    stack event's, and CloudFormation takes at most 4 KB of response)."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}..."


def loggable(value: Any) -> Any:
    """``value`` as a log line can hold it: text with a lone surrogate written as its escape (JSON
    can carry one, Lambda's UTF-8 log stream cannot, and the line would be lost), anything else
    that is not null as its shortened repr."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode()
    return value if value is None else shown(value)


# CloudFormation's bound on a physical id; the Provider framework answers whatever is returned.
MAX_PHYSICAL_ID_CHARS = 1024


def physical_id_of(event: dict[str, Any]) -> str | None:
    """The event's physical id, when it is one CloudFormation could have sent (text of 1 to 1,024
    characters); None otherwise, so nothing else is answered back as an id."""
    value = event.get("PhysicalResourceId")
    return value if isinstance(value, str) and 0 < len(value) <= MAX_PHYSICAL_ID_CHARS else None


def setting_of(event: dict[str, Any]) -> str:
    """The setting ``ResourceProperties.Setting`` names; ValueError naming what is wrong."""
    props = event.get("ResourceProperties")
    if not isinstance(props, dict):
        raise ValueError(f"ResourceProperties is not an object: {shown(props)}")
    setting = props.get("Setting")
    if setting not in SETTINGS:
        raise ValueError(f"unknown account setting {shown(setting)}: expected one of {', '.join(SETTINGS)}")
    return str(setting)


def previous(event: dict[str, Any]) -> dict[str, Any] | None:
    """An update's previous properties when they were the same setting's: another setting's are
    another model's (and a change of setting is a replacement, not an update of it)."""
    old = event.get("OldResourceProperties")
    if isinstance(old, dict) and old.get("Setting") == setting_of(event):
        return old
    return None


def earlier(model: type[Props], old: dict[str, Any] | None) -> Props | None:
    """An update's previous properties as ``model``, or None when they do not validate as it does
    today (an earlier release's template, before a property was added): the update then goes on as
    a first adoption would. Refused, every update from that release would fail and roll back: the
    stack could not be upgraded."""
    if not old:
        return None
    try:
        return model.model_validate(old)
    except ValidationError as error:
        fields = sorted({str(e["loc"][0]) for e in error.errors(include_url=False) if e["loc"]})
        logger.warning("previous properties not read: an earlier template's", extra={"fields": fields})
        return None


def adopt(event: dict[str, Any], clients: Clients) -> Outcome:
    """One look at the setting named by ``ResourceProperties.Setting``, changed where the tier owns it
    (``transaction_search_ready`` is only read)."""
    setting = setting_of(event)
    props: dict[str, Any] = event["ResourceProperties"]
    old = previous(event)
    if setting == "transaction_search":
        return transaction_search(
            clients("xray"),
            clients("logs"),
            clients("application-signals"),
            TransactionSearchProperties.model_validate(props),
        )
    if setting == "model_invocation_logging":
        return model_invocation_logging(
            clients("bedrock"),
            ModelInvocationLoggingProperties.model_validate(props),
            earlier(ModelInvocationLoggingProperties, old),
        )
    if setting == "macie":
        stack, resource = event.get("StackId"), event.get("LogicalResourceId")
        if not isinstance(stack, str) or not isinstance(resource, str):
            raise ValueError("the event has no StackId or LogicalResourceId (the Macie request's idempotency token)")
        token = hashlib.sha256(f"{stack}/{resource}".encode()).hexdigest()[:64]
        # Only a first adoption refuses a suspended session: an update of it (a rollback's too) goes
        # on, or a session suspended after the tier adopted it would fail every later deploy and the
        # rollback of the first that failed.
        outcome = macie_session(
            clients("macie2"),
            clients("logs"),
            MacieProperties.model_validate(props),
            client_token=token,
            updating=old is not None,
        )
        if outcome.data.get("Adopted") == SUSPENDED:
            logger.warning(
                "Macie is suspended in this account and region: the update goes on and leaves it suspended. "
                "Suspending it cancelled every classification job: once it is resumed (aws macie2 "
                "update-macie-session --status ENABLED), the job is made again only when its settings "
                "change (docs/operations.md)"
            )
        return outcome
    if setting == "api_gateway_logging":
        return api_gateway_logging(
            clients("apigateway"),
            ApiGatewayLoggingProperties.model_validate(props),
            earlier(ApiGatewayLoggingProperties, old),
        )
    if setting == "transaction_search_ready":
        return transaction_search_ready(clients("xray"), clients("logs"))
    if setting == "macie_jobs_log_group":
        return macie_jobs_log_group(clients("logs"), MacieJobsLogGroupProperties.model_validate(props))
    raise AssertionError(setting)  # (setting_of knows only the settings above)


def until_in_place(
    attempt: Callable[[], Outcome],
    *,
    what: str,
    remaining_seconds: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """``attempt`` again every POLL_SECONDS until its outcome is complete or time runs out (the
    failure then names ``what``); a denied call is asked again for ACCESS_DENIED_GRACE_SECONDS
    after the first attempt (IAM propagating the policy the custom resource depends on)."""
    started = clock()
    while True:
        try:
            outcome = attempt()
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            patient = clock() - started < ACCESS_DENIED_GRACE_SECONDS
            if code not in DENIED or not patient or remaining_seconds() < MARGIN_SECONDS + POLL_SECONDS:
                raise
            logger.warning("denied: asked again while IAM propagates", extra={"reason": loggable(str(error))})
            sleep(POLL_SECONDS)
            continue
        if outcome.complete:
            return outcome
        if remaining_seconds() < MARGIN_SECONDS + POLL_SECONDS:
            detail = "; ".join(f"{k}: {v}" for k, v in sorted(outcome.data.items()))
            raise NotInPlace(f"{what} is not in place yet ({detail}); {AFTER_TIMEOUT.get(what, DEPLOY_AGAIN)}")
        logger.info("not in place yet", extra=outcome.data)
        sleep(POLL_SECONDS)


def adopt_until_in_place(
    event: dict[str, Any],
    clients: Clients,
    *,
    remaining_seconds: Callable[[], float],
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Adopt, and look again every POLL_SECONDS until the setting is in place or time runs out; a
    denied call is asked again for ACCESS_DENIED_GRACE_SECONDS after the first look (IAM)."""
    return until_in_place(
        lambda: adopt(event, clients),
        what=setting_of(event),
        remaining_seconds=remaining_seconds,
        sleep=sleep,
        clock=clock,
    )


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise ValueError(f"not a custom resource event: {shown(event)}")
    request = event.get("RequestType")
    if request == "Delete":
        # CloudFormation sends the physical id on every delete; without one the Provider framework
        # keeps the event's own.
        deleted = physical_id_of(event)
        logger.info(
            "left as it is: an adopted setting is never switched off",
            extra={"physical_id": loggable(deleted)},
        )
        return {"PhysicalResourceId": deleted} if deleted else {}
    if request not in ("Create", "Update"):
        raise ValueError(f"unknown RequestType {shown(request)}: expected Create, Update or Delete")
    setting = setting_of(event)
    physical_id = f"account-setting-{setting}"
    if request == "Update" and previous(event) is not None:
        physical_id = physical_id_of(event) or physical_id
    outcome = adopt_until_in_place(
        event, _client, remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000
    )
    logger.info("account setting in place", extra={"setting": setting, **outcome.data})
    return {"PhysicalResourceId": physical_id, "Data": outcome.data}
