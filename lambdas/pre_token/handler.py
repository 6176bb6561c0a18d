"""Adds the caller's gateway group, tier and kind to the ID and access tokens.

``cognito:groups`` cannot key an AgentCore rate limit or an API Gateway usage plan, so the
gateway keys on ``gateway_group``. A user in several configured groups gets the one with the
lowest precedence (Cognito's own rule for role precedence); a user in none gets no claims,
and the gateway's authorizer refuses them.
"""

from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from pre_token.contract import GatewayGroups, GroupClaims, Settings
from shared.claims import GROUP_CLAIM, KIND_CLAIM, TIER_CLAIM
from shared.runtime_config import DocumentReader

logger = Logger()


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


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    member_of = event.get("request", {}).get("groupConfiguration", {}).get("groupsToOverride") or []
    claims = claims_for(list(member_of))
    logger.info("token claims", extra={"group": claims.get(GROUP_CLAIM, "none"), "groups_seen": len(member_of)})
    event.setdefault("response", {})["claimsAndScopeOverrideDetails"] = {
        "idTokenGeneration": {"claimsToAddOrOverride": claims},
        "accessTokenGeneration": {"claimsToAddOrOverride": claims},
    }
    return event
