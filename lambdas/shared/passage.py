"""Proof that a call to the tools gateway came through the AI gateway: a *passage*.

The tools gateway accepts the production app client's access tokens, so the token alone cannot
tell an agent's call (made with the caller's token, after the AI gateway's quotas and guardrails)
from the caller's own. The AI gateway therefore sends each agent it invokes, beside the token, an
HMAC of that token made with a KMS HMAC key only the AI gateway's roles may make MACs with
(``kms:GenerateMac``); the agent passes it on to the tools gateway, whose interceptor checks it
(``kms:VerifyMac``, its role's only use of the key) before it grants a group's tools. A user never
sees a passage: it travels only on calls the user cannot make (InvokeAgentRuntime, which only the
AI gateway's roles may call, and the agent's own calls).

The MAC is over a digest of the token (KMS takes at most 4,096 bytes) with this scheme's own
prefix, so a passage is bound to one token and means nothing anywhere else. It is deterministic:
both sides keep what they made or verified for the token's life in the container, bounded.

Imports only the standard library at load (boto3 when ``kms_client`` first makes its client);
botocore's error type is read from the exception.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

ALGORITHM: Final = "HMAC_SHA_256"
# What the MAC is made over: this scheme's name and version, then the token's SHA-256.
_PURPOSE: Final = b"genai-platform tools-gateway passage v1\n"
# An HMAC-SHA-256 MAC, base64url without padding: 43 characters, the last holding 4 bits of the
# MAC and 2 zero bits (one spelling of each MAC).
_SHAPE: Final = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
# Tokens whose passage a container keeps: about one per caller an hour.
CACHED: Final = 1024
# What each side may do with the key (stacks/production: the AI gateway's roles, the interceptor's).
ISSUE_ACTIONS: Final = ("kms:GenerateMac",)
CHECK_ACTIONS: Final = ("kms:VerifyMac",)


@functools.cache
def kms_client() -> Any:
    """Both sides' KMS client: a MAC takes tens of milliseconds, so short timeouts and one retry
    (the AI gateway takes its time out of the agent's turn; the interceptor's caller waits)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "kms",
        config=Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 2}),
    )


def message(token: str) -> bytes:
    """What a passage is the MAC of, for ``token``."""
    return _PURPOSE + hashlib.sha256(token.encode()).digest()


class _Bounded:
    """A thread-safe map of at most ``size`` entries, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Any, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: Any, value: str) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


class PassageIssuer:
    """The AI gateway's side: the passage for a caller's token (``kms:GenerateMac``). A failed KMS
    call raises botocore's error (the caller wraps it as an upstream failure)."""

    def __init__(self, kms: Callable[[], Any], key_id: str, *, cached: int = CACHED) -> None:
        self._kms = kms  # gives the client, made on first use
        self._key_id = key_id
        self._made = _Bounded(cached)

    def __call__(self, token: str) -> str:
        text = message(token)
        made = self._made.get(text)
        if made is None:
            mac = self._kms().generate_mac(KeyId=self._key_id, MacAlgorithm=ALGORITHM, Message=text)["Mac"]
            made = base64.urlsafe_b64encode(mac).decode().rstrip("=")
            self._made.put(text, made)
        return made


class PassageChecker:
    """The tools gateway interceptor's side: whether ``passage`` is the AI gateway's for ``token``
    (``kms:VerifyMac``). Anything not shaped like a passage is refused without a call; KMS's own
    failures (throttling, access) raise botocore's error, which the interceptor treats as no passage."""

    def __init__(self, kms: Callable[[], Any], key_id: str, *, cached: int = CACHED) -> None:
        self._kms = kms
        self._key_id = key_id
        self._verified = _Bounded(cached)

    def __call__(self, token: str, passage: str | None) -> bool:
        if passage is None or not _SHAPE.fullmatch(passage):
            return False
        text = message(token)
        if self._verified.get(text) == passage:
            return True
        mac = base64.urlsafe_b64decode(passage + "=")  # the shape admits only what decodes
        try:
            answer = self._kms().verify_mac(KeyId=self._key_id, MacAlgorithm=ALGORITHM, Message=text, Mac=mac)
        except Exception as error:
            if _code(error) == "KMSInvalidMacException":  # KMS's answer for a MAC that is not the key's
                return False
            raise
        if answer.get("MacValid") is not True:  # (KMS raises instead; a valid answer says so)
            return False
        self._verified.put(text, passage)
        return True


def _code(error: Exception) -> str | None:
    response = getattr(error, "response", None)  # botocore's ClientError
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None
