"""TOKEN authorizer for the AI gateway API.

Verifies the caller's Cognito access token (signature against the pool's JWKS, issuer, expiry,
token use, app client), reads the gateway group claim, and answers with the group's API key as
``usageIdentifierKey``: the API's key source is AUTHORIZER, so the group's usage plan throttles
the caller without users ever handling keys. A bad token is a 401; a valid token without a
configured group is a 403 (an explicit Deny).
"""

import os
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.config import Config

from gateway_authorizer.contract import ApiKeys, Settings
from shared import snapstart
from shared.claims import CONTEXT_GROUP, CONTEXT_KIND, CONTEXT_TIER, CONTEXT_USER
from shared.logs import service_logger
from shared.runtime_config import DocumentReader, appconfig_fetch
from shared.tokens import GROUP_CLAIM, KIND_CLAIM, TIER_CLAIM, InvalidToken, TokenVerifier, bearer

logger = service_logger()


class Unauthorized(Exception):  # noqa: N818 - API Gateway maps exactly this message to a 401
    def __init__(self) -> None:
        super().__init__("Unauthorized")


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def api_keys() -> DocumentReader[ApiKeys]:
    # As the gateway's policy: once it has a version, no request waits for AppConfig (re-read in the background).
    age = settings().api_keys_max_age_seconds
    return DocumentReader(settings().api_keys, ApiKeys, fetch=appconfig_fetch(age), refresh_seconds=age)


@cache
def verifier() -> TokenVerifier:
    return TokenVerifier.for_pool(
        region=os.environ["AWS_REGION"], user_pool_id=settings().user_pool_id, client_id=settings().client_id
    )


@cache
def apigateway() -> Any:
    # GetApiKey is a control-plane call with a low rate limit: a burst of cold starts retries.
    return boto3.client("apigateway", config=Config(retries={"mode": "standard", "total_max_attempts": 6}))


@cache
def api_key_value(key_id: str) -> str:
    value: str = apigateway().get_api_key(apiKey=key_id, includeValue=True)["value"]
    return value


# SnapStart (shared.snapstart): init creates no client and fetches no key; the first request after
# a restore does.


@snapstart.before_snapshot
def _warm() -> None:
    """The SDK's models of GetApiKey and AppConfig, and the AppConfig provider's import, parsed once
    for every environment of the version. Nothing is sent."""
    import aws_lambda_powertools.utilities.parameters  # noqa: F401 - the keys reader's first read imports it

    snapstart.load_service_models(("apigateway", "appconfigdata"))


@snapstart.after_restore
def _restored() -> None:
    """Each resumed environment draws its own retry jitter, opens its own AppConfig session, fetches
    the pool's keys (JWKS) and resolves credentials itself: the caches start empty."""
    snapstart.fresh_environment(settings, api_keys, verifier, apigateway, api_key_value)


def authorize(event: dict[str, Any]) -> dict[str, Any]:
    try:
        if not isinstance(event, dict):  # API Gateway always sends an object; a hand-made event is no token
            raise InvalidToken("the event is not an object")
        claims = verifier().claims(bearer(event.get("authorizationToken")))
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise InvalidToken("no subject")
    except InvalidToken as error:
        logger.info("token rejected", extra={"reason": error.reason})
        raise Unauthorized() from None
    resource = _methods_of(event.get("methodArn"))
    group = claims.get(GROUP_CLAIM)
    key_id = api_keys().get().keys.get(group) if isinstance(group, str) else None
    if key_id is None:
        logger.info("no gateway group", extra={"user": claims["sub"]})
        return _policy(claims["sub"], "Deny", resource)
    response = _policy(claims["sub"], "Allow", resource)
    response["usageIdentifierKey"] = api_key_value(key_id)
    response["context"] = {
        CONTEXT_USER: claims["sub"],
        CONTEXT_GROUP: group,
        CONTEXT_TIER: str(claims.get(TIER_CLAIM, "")),
        CONTEXT_KIND: str(claims.get(KIND_CLAIM, "")),
    }
    return response


def _methods_of(method_arn: Any) -> str:
    """Any method of the request's API and stage (the result is cached per token across methods),
    from API Gateway's ``arn:…:<api>/<stage>/<method>/<path>``; an event without one is refused."""
    api_arn, _, rest = method_arn.partition("/") if isinstance(method_arn, str) else ("", "", "")
    stage = rest.split("/")[0]
    if not api_arn or not stage:
        logger.warning("no method ARN in the event")
        raise Unauthorized()
    return f"{api_arn}/{stage}/*/*"


def _policy(principal: str, effect: str, resource: str) -> dict[str, Any]:
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return authorize(event)
