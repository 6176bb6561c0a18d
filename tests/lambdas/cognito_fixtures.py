"""A stand-in for a Cognito user pool: a signing key, its JWKS on a loopback server, tokens."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.tokens import TokenVerifier
from tests.lambdas.loopback import QuietHandler, loopback

CLIENT_ID = "client-1"


def pool_verifier(issuer: str) -> TokenVerifier:
    """The pool's token verifier as the functions build it, but on a stopped clock with a long budget
    for the key set: a valid token is accepted however busy the machine is (the fetch's deadline
    has its own tests)."""
    return TokenVerifier(issuer=issuer, client_id=CLIENT_ID, jwks_seconds=30.0, clock=lambda: 0.0)


@pytest.fixture(scope="session")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def cognito(signing_key: rsa.RSAPrivateKey) -> Iterator[tuple[str, list[str]]]:
    """A loopback HTTP server serving the pool's JWKS; yields (issuer, request log)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "key-1", "alg": "RS256", "use": "sig"}]}).encode()
    requests: list[str] = []

    class Jwks(QuietHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200 if self.path.endswith("/.well-known/jwks.json") else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    with loopback(Jwks) as url:
        yield f"{url}/us-east-1_pool", requests


def sign(key: rsa.RSAPrivateKey, issuer: str, **overrides: Any) -> str:
    now = int(time.time())
    claims = {
        "sub": "user-1",
        "iss": issuer,
        "token_use": "access",
        "client_id": CLIENT_ID,
        "iat": now,
        "exp": now + 3600,
        "gateway_group": "customer-gold",
        "gateway_tier": "gold",
        "gateway_kind": "customer",
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "key-1"})
