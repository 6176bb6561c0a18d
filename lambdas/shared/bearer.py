"""The bearer token of an ``Authorization`` header, and the error a caller's token gets.

Apart from shared.tokens (which verifies tokens and so imports PyJWT and cryptography) so that a
function that only reads or forwards the token, the AI gateway's, does not pay for that import at
every cold start. shared.tokens re-exports both names: ``InvalidToken`` is one class everywhere.
"""

from __future__ import annotations

__all__ = ["InvalidToken", "bearer"]


class InvalidToken(Exception):  # noqa: N818 - the name says what the caller gets
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_JWT_PUNCTUATION = str.maketrans("-_.", "aaa")


def bearer(header: object) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (anything but text is no token)."""
    scheme, _, token = (header if isinstance(header, str) else "").partition(" ")
    # A JWT is base64url segments joined by dots: anything else (padding, a trailing newline) is no token.
    if scheme.lower() != "bearer" or not token.isascii() or not token.translate(_JWT_PUNCTUATION).isalnum():
        raise InvalidToken("no bearer token")
    return token
