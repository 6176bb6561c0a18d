"""A JWKS endpoint answering garbage denies cleanly (issue 14): the authorizer answers 401
(Unauthorized), the agent a JSON 401, and nothing raises anything else. The fetch is bounded in
size and in time; time on an injected clock, so no test waits on the wall clock.

Each endpoint is real HTTP on the loopback interface, answering one way of being wrong.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from agent.app import Service
from gateway_authorizer import handler as authorizer
from shared.headers import CALLER_TOKEN_HEADER
from shared.tokens import JWKS_MAX_BYTES, InvalidToken, TokenVerifier
from tests.lambdas.cognito_fixtures import CLIENT_ID, sign
from tests.lambdas.conftest import FakeContext
from tests.lambdas.loopback import QuietHandler, loopback
from tests.lambdas.test_gateway_identity import METHOD_ARN

POOL = "/us-east-1_pool"
Answer = Callable[[QuietHandler], None]


def body(status: int, data: bytes, content_type: str = "application/json") -> Answer:
    def answer(handler: QuietHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def keys(*entries: Any) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


RSA_FIELDS = {"kty": "RSA", "kid": "key-1", "alg": "RS256", "use": "sig", "e": "AQAB"}
GARBAGE: dict[str, Answer] = {
    "not JSON": body(200, b"<html>Service Unavailable</html>", "text/html"),
    "not UTF-8": body(200, b'{"keys": "\xff\xfe"}'),
    "JSON not an object": body(200, b"[1, 2, 3]"),
    "an object without keys": body(200, b'{"issuer": "x"}'),
    "keys not a list": body(200, b'{"keys": {"kid": "key-1"}}'),
    "keys empty": body(200, keys()),
    "a key a string": body(200, keys("key-1")),
    "a key a number": body(200, keys(7)),
    "a key with a kid object": body(200, keys({**RSA_FIELDS, "kid": {"id": 1}, "n": "AQAB"})),
    "a key with a modulus number": body(200, keys({**RSA_FIELDS, "n": 12345})),
    "a key of an unknown type": body(200, keys({**RSA_FIELDS, "kty": "XYZ", "n": "AQAB"})),
    "deeply nested": body(200, b"[" * 100_000 + b"]" * 100_000),
    "a huge integer": body(200, b'{"keys": ' + b"9" * 5_000 + b"}"),
    "NaN": body(200, b'{"keys": NaN}'),
    "a 500": body(500, b'{"keys": []}'),
    "a 404": body(404, b"not found"),
    "a redirect": body(302, b""),
}


@pytest.fixture
def jwks() -> Iterator[tuple[str, list[Answer], threading.Event]]:
    """A loopback endpoint answering ``answers[0]``; yields (issuer, answers, the end of the test)."""
    answers: list[Answer] = []
    ended = threading.Event()

    class Jwks(QuietHandler):
        def do_GET(self) -> None:
            answers[0](self)

    with loopback(Jwks) as url:
        yield f"{url}{POOL}", answers, ended
        ended.set()


def authorize(verifier: TokenVerifier, token: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(authorizer, "verifier", lambda: verifier)
    event = {"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": METHOD_ARN}
    return authorizer.lambda_handler(event, FakeContext())


def agent_status(verifier: TokenVerifier, token: str) -> tuple[int, dict[str, Any]]:
    """The agent's answer to a turn whose forwarded token ``verifier`` checks: it is refused at
    the token, so nothing else of the service is reached."""
    service = Service(None, None, verifier, None, None)  # type: ignore[arg-type]
    return service.invoke({"prompt": "hi"}, {CALLER_TOKEN_HEADER: token}, "session-1")


@pytest.mark.parametrize("answer", GARBAGE.values(), ids=GARBAGE.keys())
def test_a_jwks_answering_garbage_denies_cleanly(
    answer: Answer,
    jwks: tuple[str, list[Answer], threading.Event],
    signing_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    issuer, answers, _ = jwks
    answers.append(answer)
    token = sign(signing_key, issuer)
    with pytest.raises(InvalidToken):
        TokenVerifier(issuer=issuer, client_id=CLIENT_ID).claims(token)
    with pytest.raises(authorizer.Unauthorized, match=r"^Unauthorized$"):
        authorize(TokenVerifier(issuer=issuer, client_id=CLIENT_ID), token, monkeypatch)
    status, refused = agent_status(TokenVerifier(issuer=issuer, client_id=CLIENT_ID), token)
    assert (status, refused["error"]) == (401, "unauthorized")


def test_a_jwks_that_drips_its_answer_is_cut_off_at_the_deadline(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, ended = jwks

    def drip(handler: QuietHandler) -> None:  # a byte at a time, never the end of the document
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()
        handler.wfile.write(b"{")
        while not ended.wait(0.005):
            try:
                handler.wfile.write(b" ")
                handler.wfile.flush()
            except OSError:  # the verifier hung up
                return

    answers.append(drip)
    ticks = itertools.count(step=1.0)  # a second passes at every look at the clock
    verifier = TokenVerifier(issuer=issuer, client_id=CLIENT_ID, jwks_seconds=3.0, clock=lambda: next(ticks))
    with pytest.raises(InvalidToken, match="PyJWKClientError"):
        verifier.claims(sign(signing_key, issuer))


def test_a_jwks_answer_over_its_size_bound_is_not_read(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, _ = jwks
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    padded = keys({**jwk, "kid": "key-1", "alg": "RS256", "use": "sig"}) + b" " * JWKS_MAX_BYTES
    answers.append(body(200, padded))  # the right keys, but more bytes than a key set has
    with pytest.raises(InvalidToken, match="PyJWKClientError"):
        TokenVerifier(issuer=issuer, client_id=CLIENT_ID).claims(sign(signing_key, issuer))


def test_a_token_whose_key_id_is_an_object_is_unauthorized(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    issuer, answers, _ = jwks
    answers.append(body(200, keys({**RSA_FIELDS, "n": "AQAB"})))

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    token = f"{part({'alg': 'RS256', 'kid': {'id': 'key-1'}})}.{part({'sub': 'u'})}.c2ln"  # PyJWT won't sign it
    with pytest.raises(authorizer.Unauthorized):
        authorize(TokenVerifier(issuer=issuer, client_id=CLIENT_ID), token, monkeypatch)


def test_a_good_jwks_still_verifies(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, _ = jwks
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    answers.append(body(200, keys({**jwk, "kid": "key-1", "alg": "RS256", "use": "sig"})))
    assert TokenVerifier(issuer=issuer, client_id=CLIENT_ID).claims(sign(signing_key, issuer))["sub"] == "user-1"
