"""Adds the caller's gateway group, tier and kind to the ID and access tokens (V2 and V3 events;
a V1 event gets a V1 answer, which Cognito applies to the ID token only).

``cognito:groups`` cannot key an AgentCore rate limit or an API Gateway usage plan, so the
gateway keys on ``gateway_group``. A user in several configured groups gets the one with the
lowest precedence (Cognito's own rule for role precedence); a user in none gets no claims,
and the gateway's authorizer refuses them.
"""

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from pre_token.contract import GatewayGroups, GroupClaims, Settings
from shared.claims import GROUP_CLAIM, KIND_CLAIM, TIER_CLAIM
from shared.field_paths import value_at
from shared.logs import service_logger
from shared.runtime_config import DocumentReader

logger = service_logger()
OVERRIDES = ("claimsOverrideDetails", "claimsAndScopeOverrideDetails")  # the V1 and the V2/V3 answer


@cache
def reader() -> DocumentReader[GatewayGroups]:
    return DocumentReader(Settings.from_environ().gateway_groups, GatewayGroups)


def groups() -> dict[str, GroupClaims]:
    """The deployment's groups with their precedence and claims (AppConfig, cached). With none
    readable the trigger fails and Cognito issues no token: a sign-in is retried, while a token
    without claims would be refused by the gateway until it expires."""
    return reader().get().groups


def claims_for(member_of: list[str]) -> dict[str, str]:
    known = groups()
    configured = [(known[name].precedence, name) for name in member_of if name in known]
    if not configured:
        return {}
    _, chosen = min(configured)  # ties break on the group name, so the choice is stable
    group = known[chosen]
    return {GROUP_CLAIM: chosen, TIER_CLAIM: group.tier, KIND_CLAIM: group.kind}


def member_of(event: Any) -> list[str]:
    """The user's groups as Cognito lists them. The event is read defensively: any other shape
    (a null request or group configuration, a string, non-string entries) counts as no groups,
    which is the least privilege: no claims, so the gateway refuses the caller."""
    listed = value_at(event, "request.groupConfiguration.groupsToOverride")
    return [name for name in listed if isinstance(name, str)] if isinstance(listed, list) else []


def overrides(version: Any, claims: dict[str, str]) -> dict[str, Any]:
    """The response in the event's own version: a V1_0 trigger reads only claimsOverrideDetails.
    The stack configures V2_0, so "1" arrives only from a pool still on V1_0; a V1 answer can
    reach the ID token alone, so such a pool's access tokens stay without the claims and the
    gateway's authorizer (which reads the access token) keeps refusing them. "3" (V3_0, which
    adds client-credentials grants) answers like "2"."""
    if str(version) == "1":
        return {"claimsOverrideDetails": {"claimsToAddOrOverride": claims}}
    return {
        "claimsAndScopeOverrideDetails": {
            "idTokenGeneration": {"claimsToAddOrOverride": claims},
            "accessTokenGeneration": {"claimsToAddOrOverride": claims},
        }
    }


class NotATriggerEventError(TypeError):
    """An event that is not an object: not a trigger Cognito sent. The invocation fails, so no
    token is issued with it; the message names its type only, never its content."""


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise NotATriggerEventError(f"not a Cognito token generation event: {type(event).__name__}, not an object")
    groups_of_user = member_of(event)
    claims = claims_for(groups_of_user)
    logger.info("token claims", extra={"group": claims.get(GROUP_CLAIM, "none"), "groups_seen": len(groups_of_user)})
    # The event's response keeps its other fields, never an override of either version's shape:
    # only the claims chosen here travel back to Cognito.
    response = event.get("response")
    kept = {k: v for k, v in response.items() if k not in OVERRIDES} if isinstance(response, dict) else {}
    event["response"] = {**kept, **overrides(event.get("version"), claims)}
    return event
