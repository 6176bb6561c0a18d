"""The custom claims the pre-token-generation trigger (lambdas/pre_token) adds to access tokens,
and that the gateway's authorizer, the tool interceptors and the tools gateway's Cedar permits and
rate limits read, and the issuer their tokens name. Imports nothing: the CDK app imports it too."""

GROUP_CLAIM = "gateway_group"
TIER_CLAIM = "gateway_tier"
KIND_CLAIM = "gateway_kind"

# The request-context keys the AI gateway's Lambda authorizer (lambdas/gateway_authorizer) sets
# from the verified claims, which the gateway function and the API's access log read.
CONTEXT_USER = "user"
CONTEXT_GROUP = "group"
CONTEXT_TIER = "tier"
CONTEXT_KIND = "kind"


def cognito_issuer(region: str, user_pool_id: str) -> str:
    """The ``iss`` of a user pool's tokens (its JWKS is under it, at /.well-known/jwks.json)."""
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"
