"""Verifying the Cognito access tokens callers present (gateway authorizer, tool interceptors).

The pool's keys (JWKS) are fetched with bounded time and size and checked for shape before
PyJWT sees them: an endpoint answering garbage, an error, a huge or a slow body denies the token
(InvalidToken), never raises anything else, so no caller gets a 500 for it. A function that only
reads the bearer token imports shared.bearer instead, without PyJWT.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from shared.bearer import InvalidToken, bearer
from shared.claims import GROUP_CLAIM, KIND_CLAIM, TIER_CLAIM, cognito_issuer

__all__ = ["GROUP_CLAIM", "KIND_CLAIM", "TIER_CLAIM", "InvalidToken", "TokenVerifier", "bearer"]


# Cognito's JWKS is two RSA keys (~1 KB): far more is not a key set. The whole fetch, not each
# socket read, must end in time (a server dripping a byte at a time would pass a read timeout).
JWKS_MAX_BYTES: Final = 64 * 1024
JWKS_SECONDS: Final = 3.0
_JWK_FIELDS: Final = ("kty", "kid", "use", "alg", "n", "e")


@dataclass
class TokenVerifier:
    """Checks signature (the pool's JWKS), issuer, expiry, ``token_use=access`` and app client."""

    issuer: str
    client_id: str
    jwks_seconds: float = JWKS_SECONDS
    jwks_max_bytes: int = JWKS_MAX_BYTES
    clock: Callable[[], float] = time.monotonic  # the fetch's deadline is on this clock
    _jwks: jwt.PyJWKClient | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_pool(cls, *, region: str, user_pool_id: str, client_id: str) -> TokenVerifier:
        return cls(issuer=cognito_issuer(region, user_pool_id), client_id=client_id)

    def claims(self, token: str) -> dict[str, Any]:
        if self._jwks is None:
            self._jwks = BoundedJWKClient(
                f"{self.issuer}/.well-known/jwks.json",
                seconds=self.jwks_seconds,
                max_bytes=self.jwks_max_bytes,
                clock=self.clock,
            )
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
        except jwt.PyJWTError as error:
            raise InvalidToken(type(error).__name__) from None
        except (TypeError, ValueError):  # a token header PyJWT cannot look up (a "kid" that is an object)
            raise InvalidToken("unusable key id") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"require": ["exp", "iat", "sub", "token_use", "client_id"]},
                leeway=30,
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(type(error).__name__) from None
        if claims["token_use"] != "access" or claims["client_id"] != self.client_id:  # noqa: S105
            raise InvalidToken("not an access token of this app client")
        # RFC 7519's NumericDate is a JSON number (Cognito writes integers); PyJWT also takes a
        # numeric string (a sub that is not text it refuses itself).
        if not all(type(claims[name]) in (int, float) for name in ("exp", "iat")):
            raise InvalidToken("exp or iat is not a number")
        return claims


class BoundedJWKClient(jwt.PyJWKClient):
    """PyJWKClient whose fetch ends by a deadline (``seconds`` on ``clock``, checked before every
    socket read, the status line's and headers' included, and each read bounded by what is left:
    shared.deadline_http), reads at most ``max_bytes``, follows no redirect, and hands PyJWT only
    keys whose fields are strings. Every failure is a PyJWKClientError, which the verifier turns
    into InvalidToken."""

    def __init__(self, uri: str, *, seconds: float, max_bytes: int, clock: Callable[[], float]) -> None:
        # Keys are fetched once per container and again only for an unknown key id. (PyJWT's own
        # timeout is for its fetch_data, which this class replaces: _read keeps ``seconds``.)
        super().__init__(uri, cache_keys=True)
        self._seconds = seconds
        self._max_bytes = max_bytes
        self._clock = clock

    def fetch_data(self) -> Any:
        keys = _key_set(self._read())  # PyJWT's get_jwk_set caches what this returns
        self._last_successful_fetch = time.monotonic()  # PyJWT's refresh cooldown counts from here
        return keys

    def _read(self) -> bytes:
        deadline = self._clock() + self._seconds

        def left() -> float:  # before the connect and every socket read, the status line's and headers' too
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise TimeoutError  # urllib3 makes it its ConnectTimeoutError, or ReadTimeoutError once connected
            return min(remaining, self._seconds)

        import urllib3  # here, not at import: the key set is fetched once per container

        from shared.deadline_http import pool_manager, reads_within

        chunks: list[bytes] = []
        size = 0
        try:
            # PyJWKClient refused any scheme but http(s) when it was built.
            with reads_within(left):
                response = pool_manager().request(
                    "GET",
                    self.uri,
                    # The connect and every read are held to the deadline by reads_within; the connect to this too.
                    timeout=urllib3.Timeout(connect=self._seconds),
                    redirect=False,
                    preload_content=False,  # read below, a chunk at a time, the byte cap checked on each
                    # http.client asks for identity: a compressed answer anyway is not JSON, not inflated
                    decode_content=False,
                )
            with response:
                if response.status != 200:  # an error, or a redirect (not followed)
                    raise jwt.PyJWKClientConnectionError(f"the JWKS fetch failed: HTTP {response.status}")
                while chunk := response.read1(16 * 1024):
                    size += len(chunk)
                    if size > self._max_bytes:
                        raise jwt.PyJWKClientError("the JWKS answer is too large")
                    chunks.append(chunk)
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as error:
            raise jwt.PyJWKClientConnectionError(f"the JWKS fetch failed: {type(error).__name__}") from None
        return b"".join(chunks)


def _key_set(data: bytes) -> dict[str, Any]:
    """``{"keys": [...]}`` with the RSA keys whose JWK fields are all strings (none: not a key set).
    Only RSA keys verify an RS256 token: a key of another type that a token's "kid" named would
    reach PyJWT's RS256 check, which raises TypeError for it (a 500), not a PyJWTError."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested past the parser
        raise jwt.PyJWKClientError("the JWKS answer is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    usable = [
        key
        for key in (keys if isinstance(keys, list) else [])
        if isinstance(key, dict)
        and key.get("kty") == "RSA"
        and all(isinstance(key.get(name, ""), str) for name in _JWK_FIELDS)
    ]
    if not usable:
        raise jwt.PyJWKClientError("the JWKS answer has no usable keys")
    return {"keys": usable}
