"""The gateway's identity path: the pre-token trigger's claims and the Lambda authorizer.

The authorizer fetches the pool's JWKS over real HTTP from a loopback server standing in for
Cognito, and verifies tokens signed with a key generated for the test.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

import boto3
import jwt
import pytest
from botocore.stub import Stubber
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway_authorizer import handler as authorizer
from gateway_authorizer.contract import ApiKeys, Settings as AuthorizerSettings
from pre_token import handler as pre_token
from pre_token.contract import GatewayGroups, GroupClaims
from shared.runtime_config import ConfigLocation, DocumentReader
from shared.tokens import BoundedJWKClient, InvalidToken, TokenVerifier
from tests.lambdas.cognito_fixtures import pool_verifier, sign
from tests.lambdas.conftest import FakeContext, logged, printed

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
    verifier = pool_verifier(issuer)
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
        {"sub": ""},  # signed, but nobody: the gateway could not name the caller
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


@pytest.mark.parametrize(
    "event",
    [
        {"type": "TOKEN", "methodArn": METHOD_ARN},
        {"type": "TOKEN", "authorizationToken": 5, "methodArn": METHOD_ARN},
        {"type": "TOKEN", "authorizationToken": ["Bearer x"], "methodArn": METHOD_ARN},
        ["Bearer x"],
        "Bearer x",
        None,
    ],
    ids=["no token", "a number", "a list", "an event that is a list", "an event that is text", "no event"],
)
def test_a_token_that_is_not_text_is_unauthorized(event: Any, configured: Stubber) -> None:
    with pytest.raises(authorizer.Unauthorized, match=r"^Unauthorized$"):
        authorizer.lambda_handler(event, FakeContext())


@pytest.mark.parametrize("event", [["Bearer x"], "Bearer x", None], ids=["a list", "text", "none"])
def test_an_event_that_is_not_an_object_is_logged_as_a_rejected_token(
    event: Any, configured: Stubber, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(authorizer.Unauthorized):
        authorizer.lambda_handler(event, FakeContext())
    (logged,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "token rejected" in line]
    assert (logged["level"], logged["message"], logged["reason"]) == (
        "INFO",
        "token rejected",
        "the event is not an object",
    )


@pytest.mark.parametrize("method_arn", [None, 5, "", "arn:aws:execute-api:us-east-1:123456789012:abc123"])
def test_an_event_without_a_method_arn_is_unauthorized_and_logged_as_such_not_as_a_bad_token(
    method_arn: Any,
    signing_key: rsa.RSAPrivateKey,
    cognito: tuple[str, list[str]],
    configured: Stubber,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A valid token refused for want of a method ARN (an API wired wrongly, not a caller's fault)
    is a 401 that says so in a warning: the 401 alone looks like any bad token."""
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {sign(signing_key, cognito[0])}", "methodArn": method_arn}
    capsys.readouterr()
    with pytest.raises(authorizer.Unauthorized, match=r"^Unauthorized$"):
        authorizer.lambda_handler(event, FakeContext())
    lines = printed(capsys)
    assert [line["level"] for line in lines if line.get("message") == "no method ARN in the event"] == ["WARNING"]
    assert [line for line in lines if line.get("message") == "token rejected"] == []


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


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer", "no bearer token"),
        ("Bearer not.a.jwt", "DecodeError"),
        ("expired", "ExpiredSignatureError"),
        ("id token", "not an access token of this app client"),
        ("nobody", "no subject"),
    ],
)
def test_a_refused_token_is_logged_with_the_reason(
    header: str,
    reason: str,
    signing_key: rsa.RSAPrivateKey,
    cognito: tuple[str, list[str]],
    configured: Stubber,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokens = {
        "expired": sign(signing_key, cognito[0], exp=int(time.time()) - 3600),
        "id token": sign(signing_key, cognito[0], token_use="id"),
        "nobody": sign(signing_key, cognito[0], sub=""),
    }
    authorization = f"Bearer {tokens[header]}" if header in tokens else header
    capsys.readouterr()
    with pytest.raises(authorizer.Unauthorized):
        authorizer.lambda_handler(
            {"type": "TOKEN", "authorizationToken": authorization, "methodArn": METHOD_ARN}, FakeContext()
        )
    assert [line["reason"] for line in logged(capsys, "token rejected")] == [reason]


@pytest.mark.parametrize("group", [None, "strangers", ["customer-gold"], {"name": "customer-gold"}])
def test_a_valid_token_without_a_configured_group_is_denied_whole(
    group: Any,
    signing_key: rsa.RSAPrivateKey,
    cognito: tuple[str, list[str]],
    configured: Stubber,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A group claim that is no configured group's name (absent, unknown, not even a string) is
    an explicit Deny for the caller on the whole stage, logged with who asked."""
    capsys.readouterr()
    response = authorize(sign(signing_key, cognito[0], sub="user-7", gateway_group=group))
    assert response == {
        "principalId": "user-7",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Deny",
                    "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/*/*",
                }
            ],
        },
    }
    assert [line["user"] for line in logged(capsys, "no gateway group")] == ["user-7"]


def test_a_token_without_tier_or_kind_claims_passes_them_on_empty(
    signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]], configured: Stubber
) -> None:
    configured.add_response(
        "get_api_key", {"id": "key-gold", "value": "gold-secret-value"}, {"apiKey": "key-gold", "includeValue": True}
    )
    response = authorize(sign(signing_key, cognito[0], gateway_tier=None, gateway_kind=None))
    assert response["context"] == {"user": "user-1", "group": "customer-gold", "tier": "", "kind": ""}


NOW = 1_800_000_000  # the tokens' clock: PyJWT's "now" during a test that fixes it


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> int:
    """PyJWT reads the time at NOW (its expiry and issued-at checks), whatever the wall clock says."""

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz: dt.tzinfo | None = None) -> Frozen:
            return cls.fromtimestamp(NOW, tz)

    monkeypatch.setattr(jwt.api_jwt, "datetime", Frozen)
    return NOW


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"iat": NOW - 3600, "exp": NOW - 29}, True),  # expired within the 30 s clock skew allowed
        ({"iat": NOW - 3600, "exp": NOW - 30}, False),  # expired for 30 s: refused
        ({"iat": NOW + 30, "exp": NOW + 3600}, True),  # issued by a clock 30 s ahead
        ({"iat": NOW + 31, "exp": NOW + 3600}, False),  # issued in the future
    ],
)
def test_tokens_are_checked_with_30_seconds_of_clock_skew(
    claims: dict[str, int],
    accepted: bool,
    frozen_now: int,
    signing_key: rsa.RSAPrivateKey,
    cognito: tuple[str, list[str]],
) -> None:
    verifier = pool_verifier(cognito[0])
    token = sign(signing_key, cognito[0], **claims)
    if accepted:
        assert verifier.claims(token)["exp"] == claims["exp"]
    else:
        with pytest.raises(InvalidToken, match=r"^(ExpiredSignatureError|ImmatureSignatureError)$"):
            verifier.claims(token)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "token_use", "client_id"])
def test_a_token_without_a_required_claim_is_refused(
    claim: str, signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    """Cognito's access tokens always carry these: one without an expiry would never expire, and
    one without its token use or app client is refused as invalid, not failed on as a 500."""
    verifier = pool_verifier(cognito[0])
    with pytest.raises(InvalidToken) as refused:
        verifier.claims(sign(signing_key, cognito[0], **{claim: None}))
    assert refused.value.reason == "MissingRequiredClaimError"


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": str(int(time.time()) + 30 * 86400)}, "exp or iat is not a number"),  # PyJWT takes it
        ({"iat": str(int(time.time()))}, "exp or iat is not a number"),
        ({"exp": True}, "ExpiredSignatureError"),  # PyJWT reads True as 1: long expired
        ({"sub": 7}, "InvalidSubjectError"),
    ],
)
def test_a_signed_token_with_claims_of_the_wrong_kind_is_refused(
    claims: dict[str, Any], reason: str, signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    """Cognito writes exp and iat as numbers and sub as text: anything else is refused, even signed
    (a numeric string by our check: PyJWT would take it)."""
    verifier = pool_verifier(cognito[0])
    assert verifier.claims(sign(signing_key, cognito[0]))["sub"] == "user-1"  # the same token, well formed
    # a NumericDate may have a fraction
    assert verifier.claims(sign(signing_key, cognito[0], iat=time.time(), exp=time.time() + 60.5))["sub"] == "user-1"
    with pytest.raises(InvalidToken) as refused:
        verifier.claims(sign(signing_key, cognito[0], **claims))
    assert refused.value.reason == reason


# --- the verifier's wiring: the function's region, user pool and app client ------------------

REGION = "eu-central-1"  # not the suite's default region: the function's own AWS_REGION decides
POOL_ID = "eu-central-1_Pool9"
POOL_CLIENT = "app-client-9"


@pytest.fixture
def pool_jwks(signing_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every pool's JWKS answer is the test key's; the URLs the verifiers fetch are recorded, and
    nothing leaves the machine. Refusals below are then the issuer's or the client's, not the key's."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "key-1", "alg": "RS256", "use": "sig"}]}).encode()
    fetched: list[str] = []

    def read(client: BoundedJWKClient) -> bytes:
        fetched.append(client.uri)
        return body

    monkeypatch.setattr(BoundedJWKClient, "_read", read)
    return fetched


def assert_verifies_only_its_pool(
    verifier: TokenVerifier, key: rsa.RSAPrivateKey, fetched: list[str], *, region: str, pool: str, client: str
) -> None:
    """``verifier`` accepts an access token of ``pool`` in ``region`` for ``client``, fetching that
    pool's JWKS, and refuses one of another pool, another region's pool or another app client."""
    issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool}"
    assert (verifier.issuer, verifier.client_id) == (issuer, client)
    assert verifier.claims(sign(key, issuer, client_id=client))["sub"] == "user-1"
    assert fetched == [f"{issuer}/.well-known/jwks.json"]
    others = {
        "another pool": sign(key, f"https://cognito-idp.{region}.amazonaws.com/{region}_Other", client_id=client),
        "another region": sign(key, f"https://cognito-idp.us-west-2.amazonaws.com/{pool}", client_id=client),
        "another client": sign(key, issuer, client_id="another-client"),
    }
    assert [name for name, token in others.items() if accepts(verifier, token)] == []


def accepts(verifier: TokenVerifier, token: str) -> bool:
    try:
        verifier.claims(token)
    except InvalidToken:
        return False
    return True


def authorizer_verifier(monkeypatch: pytest.MonkeyPatch, region: str, pool: str, client: str) -> TokenVerifier:
    """The authorizer's verifier, built from the environment its stack writes (and Lambda's AWS_REGION)."""
    location = ConfigLocation(application="a", environment="e", profile="p", environment_name="gateway")
    environment = AuthorizerSettings(user_pool_id=pool, client_id=client, api_keys=location).environment()
    for name, value in {**environment, "AWS_REGION": region}.items():
        monkeypatch.setenv(name, value)
    return fresh(authorizer, monkeypatch)


def fresh(module: Any, monkeypatch: pytest.MonkeyPatch) -> TokenVerifier:
    """``module.verifier()`` built from the current environment, in caches of this test's own
    (the module's are back, untouched, after it)."""
    for name in ("settings", "verifier"):
        monkeypatch.setattr(module, name, cache(getattr(module, name).__wrapped__))
    verifier: TokenVerifier = module.verifier()
    return verifier


def test_the_authorizer_verifies_tokens_of_its_own_pool_and_client(
    signing_key: rsa.RSAPrivateKey, pool_jwks: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    verifier = authorizer_verifier(monkeypatch, REGION, POOL_ID, POOL_CLIENT)
    assert authorizer.verifier() is verifier  # one per container: its keys are fetched once
    assert_verifies_only_its_pool(verifier, signing_key, pool_jwks, region=REGION, pool=POOL_ID, client=POOL_CLIENT)
