"""The custom claims the pre-token-generation trigger (lambdas/pre_token) adds to access tokens,
and that the gateway's authorizer, the tool interceptors and the tools gateway's Cedar permits and
rate limits read. Imports nothing: the CDK app imports it too."""

GROUP_CLAIM = "gateway_group"
TIER_CLAIM = "gateway_tier"
KIND_CLAIM = "gateway_kind"
