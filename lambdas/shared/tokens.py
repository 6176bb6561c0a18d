"""Verifying the Cognito access tokens callers present (gateway authorizer, tool interceptors)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt

from shared.claims import GROUP_CLAIM, KIND_CLAIM, TIER_CLAIM

__all__ = ["GROUP_CLAIM", "KIND_CLAIM", "TIER_CLAIM", "InvalidToken", "TokenVerifier", "bearer"]


class InvalidToken(Exception):  # noqa: N818 - the name says what the caller gets
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class TokenVerifier:
    """Checks signature (the pool's JWKS), issuer, expiry, ``token_use=access`` and app client."""

    issuer: str
    client_id: str
    _jwks: jwt.PyJWKClient | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_pool(cls, *, region: str, user_pool_id: str, client_id: str) -> TokenVerifier:
        return cls(issuer=f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}", client_id=client_id)

    def claims(self, token: str) -> dict[str, Any]:
        if self._jwks is None:
            # Keys are fetched once per container and again only for an unknown key id.
            self._jwks = jwt.PyJWKClient(f"{self.issuer}/.well-known/jwks.json", cache_keys=True, timeout=5)
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
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
        return claims


def bearer(header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("no bearer token")
    return token
