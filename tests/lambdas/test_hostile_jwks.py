"""A JWKS endpoint answering garbage denies cleanly (issue 14): the authorizer answers 401
(Unauthorized), the agent a JSON 401, and nothing raises anything else. The fetch is bounded in
size and in time; time on an injected clock, so no test waits on the wall clock.

Each endpoint is real HTTP on the loopback interface, answering one way of being wrong.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import socket
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from agent.app import Service
from gateway_authorizer import handler as authorizer
from shared import tokens
from shared.headers import CALLER_TOKEN_HEADER
from shared.tokens import JWKS_MAX_BYTES, BoundedJWKClient, InvalidToken, TokenVerifier, bearer
from tests.lambdas.cognito_fixtures import CLIENT_ID, pool_verifier, sign
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
# Well-formed keys of another type, under the key id the token names: PyJWT's RS256 check raised
# TypeError for them (not a PyJWTError), which was a 500 at the authorizer and the agent.
EC_KEY = {
    **json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key())),
    "kid": "key-1",
}
OKP_KEY = {
    **json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed25519.Ed25519PrivateKey.generate().public_key())),
    "kid": "key-1",
}
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
    "an EC key": body(200, keys(EC_KEY)),
    "an EC key signing RS256": body(200, keys({**EC_KEY, "alg": "RS256"})),
    "an Ed25519 key": body(200, keys(OKP_KEY)),
    "a symmetric key": body(200, keys({"kty": "oct", "kid": "key-1", "k": "c2VjcmV0"})),
    "deeply nested": body(200, b"[" * 100_000 + b"]" * 100_000),
    "nested past the parser, within the size bound": body(200, b"[" * 20_000 + b"]" * 20_000),
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


def _dripping(ended: threading.Event, head: bytes, byte: bytes) -> Answer:
    """An answer that sends ``head`` and then ``byte`` every 5 ms, never its end (it hangs up
    after 400, so a fetch that is not cut off fails the test rather than hanging it)."""

    def drip(handler: QuietHandler) -> None:
        handler.wfile.write(head)
        for _ in range(400):
            if ended.wait(0.005):
                return
            try:
                handler.wfile.write(byte)
                handler.wfile.flush()
            except OSError:  # the verifier hung up
                return

    return drip


DRIPS = {
    "its body": (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{", b" "),
    # http.client reads a header line with as many socket reads as it takes: a per-read timeout
    # alone would let this hold the fetch for as long as the server likes.
    "its headers": (b"HTTP/1.1 200 OK\r\nX-Padding: ", b"a"),
    "its status line": (b"HTTP/1.1 200 ", b"O"),
}


@pytest.mark.parametrize(("head", "byte"), DRIPS.values(), ids=DRIPS.keys())
def test_a_jwks_that_drips_its_answer_is_cut_off_at_the_deadline(
    head: bytes, byte: bytes, jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, ended = jwks
    answers.append(_dripping(ended, head, byte))
    looks = itertools.count()
    ticks = (look * 1.0 for look in looks)  # a second passes at every look at the clock
    verifier = TokenVerifier(issuer=issuer, client_id=CLIENT_ID, jwks_seconds=3.0, clock=lambda: next(ticks))
    with pytest.raises(InvalidToken, match=r"^PyJWKClientConnectionError$"):
        verifier.claims(sign(signing_key, issuer))
    assert next(looks) <= 5  # the deadline's, and one before each of at most 3 reads, then it ends


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


@pytest.mark.parametrize("failure", [TypeError("unhashable type: 'dict'"), ValueError("bad key id")])
def test_a_key_lookup_failing_with_a_type_or_value_error_is_unauthorized(
    failure: Exception,
    jwks: tuple[str, list[Answer], threading.Event],
    signing_key: rsa.RSAPrivateKey,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """PyJWT's key lookup has failed with a TypeError for a token header it could not look up (a
    "kid" object hashed into its key cache; 2.15 refuses such a kid itself): still a 401, not a 500."""
    issuer, _, _ = jwks

    def lookup(*_: Any) -> Any:
        raise failure

    monkeypatch.setattr(BoundedJWKClient, "get_signing_key_from_jwt", lookup)
    capsys.readouterr()
    with pytest.raises(authorizer.Unauthorized):
        authorize(TokenVerifier(issuer=issuer, client_id=CLIENT_ID), sign(signing_key, issuer), monkeypatch)
    rejected = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [line["reason"] for line in rejected if line.get("message") == "token rejected"] == ["unusable key id"]


def test_a_good_jwks_still_verifies(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, _ = jwks
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    answers.append(body(200, keys({**jwk, "kid": "key-1", "alg": "RS256", "use": "sig"})))
    assert pool_verifier(issuer).claims(sign(signing_key, issuer))["sub"] == "user-1"


# --- the bounded fetch, answer by answer ------------------------------------------------------

# Why the key set is refused, for each garbage answer (the verifier's caller sees only the type).
REFUSED_BECAUSE = {
    "not JSON": "the JWKS answer is not JSON",
    "not UTF-8": "the JWKS answer is not JSON",
    "deeply nested": "the JWKS answer is too large",
    "nested past the parser, within the size bound": "the JWKS answer is not JSON",
    "a huge integer": "the JWKS answer is not JSON",
    "JSON not an object": "the JWKS answer has no usable keys",
    "an object without keys": "the JWKS answer has no usable keys",
    "keys not a list": "the JWKS answer has no usable keys",
    "keys empty": "the JWKS answer has no usable keys",
    "a key a string": "the JWKS answer has no usable keys",
    "a key a number": "the JWKS answer has no usable keys",
    "a key with a kid object": "the JWKS answer has no usable keys",
    "a key with a modulus number": "the JWKS answer has no usable keys",
    "a key of an unknown type": "the JWKS answer has no usable keys",
    "an EC key": "the JWKS answer has no usable keys",
    "an EC key signing RS256": "the JWKS answer has no usable keys",
    "an Ed25519 key": "the JWKS answer has no usable keys",
    "a symmetric key": "the JWKS answer has no usable keys",
    "NaN": "the JWKS answer has no usable keys",
    "a 500": "the JWKS fetch failed: HTTP 500",
    "a 404": "the JWKS fetch failed: HTTP 404",
    "a redirect": "the JWKS fetch failed: HTTP 302",  # not followed
}


def fetcher(issuer: str, *, max_bytes: int = JWKS_MAX_BYTES, clock: Callable[[], float] = lambda: 0.0) -> Any:
    return BoundedJWKClient(f"{issuer}/.well-known/jwks.json", seconds=3.0, max_bytes=max_bytes, clock=clock)


@pytest.mark.parametrize(("name", "reason"), REFUSED_BECAUSE.items(), ids=REFUSED_BECAUSE.keys())
def test_the_fetch_says_why_an_answer_is_no_key_set(
    name: str, reason: str, jwks: tuple[str, list[Answer], threading.Event]
) -> None:
    issuer, answers, _ = jwks
    answers.append(GARBAGE[name])
    with pytest.raises(jwt.PyJWKClientError) as refused:
        fetcher(issuer).fetch_data()
    assert str(refused.value) == reason


def good_keys(signing_key: rsa.RSAPrivateKey, padding: int = 0) -> bytes:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(signing_key.public_key()))
    return keys({**jwk, "kid": "key-1", "alg": "RS256", "use": "sig"}) + b" " * padding


def test_the_size_bound_is_the_largest_answer_read(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, _ = jwks
    answer = good_keys(signing_key)
    answers.append(body(200, answer))
    assert [key["kid"] for key in fetcher(issuer, max_bytes=len(answer)).fetch_data()["keys"]] == ["key-1"]
    with pytest.raises(jwt.PyJWKClientError, match=r"^the JWKS answer is too large$"):
        fetcher(issuer, max_bytes=len(answer) - 1).fetch_data()


def test_no_read_is_made_once_the_deadline_is_reached(jwks: tuple[str, list[Answer], threading.Event]) -> None:
    """The deadline is 3 s after the start and the clock is at it: no connect or socket read waits,
    not even one that would find nothing there (the server holds its answer), so the fetch ends at
    once, before it connects. (A read is never given a real wait of a few milliseconds here: a busy
    machine could miss it.)"""
    issuer, answers, ended = jwks

    def hold(_: QuietHandler) -> None:  # not a byte until the test ends
        ended.wait()

    answers.append(hold)
    at_deadline = itertools.chain([0.0], itertools.repeat(3.0))
    with pytest.raises(jwt.PyJWKClientConnectionError, match=r"^the JWKS fetch failed: ConnectTimeoutError$"):
        fetcher(issuer, clock=lambda: next(at_deadline)).fetch_data()


def test_a_read_with_under_a_second_left_before_the_deadline_is_still_made(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    """Only a deadline reached stops the reads: with half a second of the 3 s left at every read
    (the clock standing at 2.5 s), the key set is read and verifies."""
    issuer, answers, _ = jwks
    answers.append(body(200, good_keys(signing_key)))
    late = itertools.chain([0.0], itertools.repeat(2.5))
    assert [key["kid"] for key in fetcher(issuer, clock=lambda: next(late)).fetch_data()["keys"]] == ["key-1"]


def test_a_key_set_read_in_several_chunks_still_verifies(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, _ = jwks
    answers.append(body(200, good_keys(signing_key, padding=JWKS_MAX_BYTES // 2)))  # well over one read
    assert pool_verifier(issuer).claims(sign(signing_key, issuer))["sub"] == "user-1"


def test_a_redirect_is_not_followed_even_to_a_key_set(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    """The pool's URL is the configured pool's: a redirect (to keys that would verify) is an error."""
    issuer, answers, _ = jwks

    def moved(handler: QuietHandler) -> None:
        if handler.path.endswith("/moved"):
            body(200, good_keys(signing_key))(handler)
            return
        handler.send_response(302)
        handler.send_header("Location", "/moved")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    answers.append(moved)
    with pytest.raises(jwt.PyJWKClientConnectionError, match=r"^the JWKS fetch failed: HTTP 302$"):
        fetcher(issuer).fetch_data()


def test_a_key_set_compressed_though_not_asked_for_is_not_inflated(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    """Identity was asked for: a gzip answer anyway is read as sent (not JSON), never inflated."""
    issuer, answers, _ = jwks
    packed = gzip.compress(good_keys(signing_key))

    def compressed(handler: QuietHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(packed)))
        handler.end_headers()
        handler.wfile.write(packed)

    answers.append(compressed)
    with pytest.raises(jwt.PyJWKClientError, match=r"^the JWKS answer is not JSON$"):
        fetcher(issuer).fetch_data()


def test_a_huge_answer_is_read_a_chunk_at_a_time_up_to_the_bound(
    jwks: tuple[str, list[Answer], threading.Event],
) -> None:
    """20 MB without a length: the fetch holds about the bound, never the answer."""
    issuer, answers, _ = jwks

    def huge(handler: QuietHandler) -> None:
        handler.send_response(200)
        handler.end_headers()  # no Content-Length: the answer ends when the server closes
        try:
            for _ in range(320):
                handler.wfile.write(b" " * 65_536)
        except OSError:  # the fetch stopped reading
            return

    answers.append(huge)
    tracemalloc.start()
    try:
        with pytest.raises(jwt.PyJWKClientError, match=r"^the JWKS answer is too large$"):
            fetcher(issuer).fetch_data()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * JWKS_MAX_BYTES, peak


def test_a_jwks_that_never_accepts_the_connection_is_cut_off_by_the_connect_timeout() -> None:
    """A listener whose backlog is full drops further connections' SYNs: the connect waits until
    its timeout (the JWKS seconds: 0.2 here), however fast the machine."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        held = [socket.socket() for _ in range(4)]
        try:
            for filler in held:
                filler.setblocking(False)
                filler.connect_ex(("127.0.0.1", port))
            verifier = BoundedJWKClient(
                f"http://127.0.0.1:{port}{POOL}/.well-known/jwks.json",
                seconds=0.2,
                max_bytes=JWKS_MAX_BYTES,
                clock=lambda: 0.0,
            )
            with pytest.raises(jwt.PyJWKClientConnectionError, match=r"^the JWKS fetch failed: ConnectTimeoutError$"):
                verifier.fetch_data()
        finally:
            for filler in held:
                filler.close()


def test_a_jwks_that_never_answers_is_cut_off_by_the_read_timeout(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey
) -> None:
    issuer, answers, ended = jwks

    def never(_: QuietHandler) -> None:  # not a byte, not even a status line, until the test ends
        ended.wait()

    answers.append(never)
    verifier = TokenVerifier(issuer=issuer, client_id=CLIENT_ID, jwks_seconds=0.05)
    with pytest.raises(InvalidToken, match=r"^PyJWKClientConnectionError$"):
        verifier.claims(sign(signing_key, issuer))


class Monotonic:
    """The clock PyJWT's key caches read (time.monotonic), standing still until a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def key_cache_clock(monkeypatch: pytest.MonkeyPatch) -> Monotonic:
    clock = Monotonic()
    for module in (jwt.jwks_client, jwt.jwk_set_cache, jwt.api_jwk, tokens):
        monkeypatch.setattr(module, "time", clock)
    return clock


def counted(answer: Answer, requests: list[str]) -> Answer:
    def serve(handler: QuietHandler) -> None:
        requests.append(handler.path)
        answer(handler)

    return serve


def test_a_known_key_is_fetched_once_per_container(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey, key_cache_clock: Monotonic
) -> None:
    """Cognito's keys are fetched at the first token, not again when PyJWT's key set cache (five
    minutes) runs out: a token of a known key never waits on the JWKS endpoint again."""
    issuer, answers, _ = jwks
    requests: list[str] = []
    answers.append(counted(body(200, good_keys(signing_key)), requests))
    verifier = pool_verifier(issuer)
    verifier.claims(sign(signing_key, issuer))
    key_cache_clock.now += 3600
    verifier.claims(sign(signing_key, issuer, sub="user-2"))
    assert requests == [f"{POOL}/.well-known/jwks.json"]


def test_unknown_key_ids_do_not_make_the_verifier_fetch_again_within_the_cooldown(
    jwks: tuple[str, list[Answer], threading.Event], signing_key: rsa.RSAPrivateKey, key_cache_clock: Monotonic
) -> None:
    """Tokens naming keys the pool does not have cannot make every invocation fetch the JWKS:
    after a fetch, an unknown key id is refused without another for 30 seconds (PyJWT's cooldown)."""
    issuer, answers, _ = jwks
    requests: list[str] = []
    answers.append(counted(body(200, good_keys(signing_key)), requests))
    verifier = pool_verifier(issuer)
    verifier.claims(sign(signing_key, issuer))
    stranger = jwt.encode(
        jwt.decode(sign(signing_key, issuer), options={"verify_signature": False}),
        signing_key,
        algorithm="RS256",
        headers={"kid": "key-2"},
    )
    with pytest.raises(InvalidToken, match=r"^PyJWKClientError$"):
        verifier.claims(stranger)
    assert len(requests) == 1
    key_cache_clock.now += 31  # the cooldown is over: an unknown key may be a rotated one
    with pytest.raises(InvalidToken, match=r"^PyJWKClientError$"):
        verifier.claims(stranger)
    assert len(requests) == 2


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "bearer",
        "Basic abc.def.ghi",  # a token's shape, another scheme
        "Token abc.def.ghi",
        "Bearer abc.def.ghi ",
        "Bearer abc def",
        "Bearer  abc.def.ghi",
        "Bearer abc.déf.ghi",  # letters, but not ASCII
        "Bearer abc.def.ghi\n",
        "Bearer abc=.def.ghi",
    ],
)
def test_only_a_bearer_token_shaped_as_a_jwt_is_taken(header: str | None) -> None:
    with pytest.raises(InvalidToken, match=r"^no bearer token$") as refused:
        bearer(header)
    assert refused.value.reason == "no bearer token"


@pytest.mark.parametrize("header", ["Bearer abc.def.ghi", "bearer abc.def.ghi", "BEARER a-b_c.d.e", "Bearer x"])
def test_a_bearer_token_is_taken_whatever_the_schemes_case(header: str) -> None:
    assert bearer(header) == header.partition(" ")[2]
