"""The gateway's identity path: the pre-token trigger's claims and the Lambda authorizer.

The authorizer fetches the pool's JWKS over real HTTP from a loopback server standing in for
Cognito, and verifies tokens signed with a key generated for the test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway_authorizer import handler as authorizer
from gateway_authorizer.contract import ApiKeys
from pre_token import handler as pre_token
from pre_token.contract import GatewayGroups, GroupClaims
from shared.runtime_config import DocumentReader
from shared.tokens import TokenVerifier
from tests.lambdas.cognito_fixtures import CLIENT_ID, sign
from tests.lambdas.conftest import FakeContext

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/POST/v1/chat"


# The trigger's groups: the tests' own, shaped like a deployment's (the stack writes them from
# groups.<name> in config: tests/infra/test_production.py checks that).
GROUPS = GatewayGroups(
    groups={
        "platform-admins": GroupClaims(precedence=0, tier="internal", kind="internal"),
        "customer-gold": GroupClaims(precedence=10, tier="gold", kind="customer"),
        "customer-basic": GroupClaims(precedence=20, tier="basic", kind="customer"),
    }
)


@pytest.fixture
def groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pre_token, "reader", lambda: DocumentReader.static(GROUPS))


def token_event(groups_of_user: list[str] | None) -> dict[str, Any]:
    request: dict[str, Any] = {"userAttributes": {"sub": "u-1"}, "scopes": ["openid"]}
    if groups_of_user is not None:
        request["groupConfiguration"] = {
            "groupsToOverride": groups_of_user,
            "iamRolesToOverride": [],
            "preferredRole": None,
        }
    return {
        "version": "2",
        "triggerSource": "TokenGeneration_Authentication",
        "userName": "u-1",
        "request": request,
        "response": {},
    }


@pytest.mark.parametrize(
    ("member_of", "claims"),
    [
        (["customer-gold"], {"gateway_group": "customer-gold", "gateway_tier": "gold", "gateway_kind": "customer"}),
        (
            ["customer-basic", "platform-admins"],
            {"gateway_group": "platform-admins", "gateway_tier": "internal", "gateway_kind": "internal"},
        ),
        (
            ["customer-basic", "customer-gold"],
            {"gateway_group": "customer-gold", "gateway_tier": "gold", "gateway_kind": "customer"},
        ),
        (
            ["strangers", "customer-basic"],
            {"gateway_group": "customer-basic", "gateway_tier": "basic", "gateway_kind": "customer"},
        ),
        (["strangers"], {}),
        ([], {}),
        (None, {}),
    ],
)
def test_pre_token_adds_the_lowest_precedence_configured_group(
    member_of: list[str] | None, claims: dict[str, str], groups: None
) -> None:
    response = pre_token.lambda_handler(token_event(member_of), FakeContext())["response"][
        "claimsAndScopeOverrideDetails"
    ]
    assert response["accessTokenGeneration"]["claimsToAddOrOverride"] == claims
    assert response["idTokenGeneration"]["claimsToAddOrOverride"] == claims
    assert "groupOverrideDetails" not in response  # cognito:groups stays as Cognito wrote it


# --- the authorizer ---------------------------------------------------------------------------


@pytest.fixture
def configured(cognito: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    issuer, _ = cognito
    keys = DocumentReader.static(ApiKeys(keys={"customer-gold": "key-gold"}))
    verifier = TokenVerifier(issuer=issuer, client_id=CLIENT_ID)
    monkeypatch.setattr(authorizer, "api_keys", lambda: keys)
    monkeypatch.setattr(authorizer, "verifier", lambda: verifier)
    client = boto3.client("apigateway", region_name="us-east-1")
    monkeypatch.setattr(authorizer, "apigateway", lambda: client)
    authorizer.api_key_value.cache_clear()
    with Stubber(client) as stubber:
        yield stubber
    authorizer.api_key_value.cache_clear()


def authorize(token: str) -> dict[str, Any]:
    return authorizer.lambda_handler(
        {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": METHOD_ARN}, FakeContext()
    )


def test_a_valid_token_gets_its_groups_api_key_and_caller_context(
    signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]], configured: Stubber
) -> None:
    issuer, requests = cognito
    earlier = len(requests)  # the pool is the session's: other tests' verifiers fetched its keys too
    configured.add_response(
        "get_api_key", {"id": "key-gold", "value": "gold-secret-value"}, {"apiKey": "key-gold", "includeValue": True}
    )
    response = authorize(sign(signing_key, issuer))
    assert response == {
        "principalId": "user-1",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/*/*",
                }
            ],
        },
        "usageIdentifierKey": "gold-secret-value",
        "context": {"user": "user-1", "group": "customer-gold", "tier": "gold", "kind": "customer"},
    }
    # A second caller reuses the keys and the API key value: no more HTTP, no more AWS calls.
    authorize(sign(signing_key, issuer, sub="user-2"))
    assert requests[earlier:] == ["/us-east-1_pool/.well-known/jwks.json"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"exp": int(time.time()) - 3600},
        {"token_use": "id"},
        {"client_id": "someone-else"},
        {"iss": "https://cognito-idp.us-east-1.amazonaws.com/other-pool"},
        {"sub": None},
    ],
)
def test_a_bad_token_is_unauthorized(
    overrides: dict[str, Any], signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]], configured: Stubber
) -> None:
    with pytest.raises(authorizer.Unauthorized, match=r"^Unauthorized$"):
        authorize(sign(signing_key, cognito[0], **overrides))


def test_a_token_signed_by_another_key_is_unauthorized(cognito: tuple[str, list[str]], configured: Stubber) -> None:
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(authorizer.Unauthorized):
        authorize(sign(forged, cognito[0]))


@pytest.mark.parametrize("header", ["", "Bearer", "Basic abc", "Bearer not.a.jwt"])
def test_a_malformed_header_is_unauthorized(header: str, configured: Stubber) -> None:
    with pytest.raises(authorizer.Unauthorized):
        authorizer.lambda_handler(
            {"type": "TOKEN", "authorizationToken": header, "methodArn": METHOD_ARN}, FakeContext()
        )


@pytest.mark.parametrize("group", [None, "strangers"])
def test_a_valid_token_without_a_configured_group_is_denied(
    group: str | None, signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]], configured: Stubber
) -> None:
    response = authorize(sign(signing_key, cognito[0], gateway_group=group))
    assert response["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert "usageIdentifierKey" not in response
