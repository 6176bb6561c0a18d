"""A legacy REST API client that does the round trips an agent should never make.

It obtains the service token (OAuth2 client credentials from Secrets Manager), caches it until
shortly before it expires, refreshes it once on a 401, retries timeouts and 5xx with jittered
exponential backoff, and turns every failure into the tool error taxonomy.

An upstream is not trusted to be well behaved. Every exchange (token endpoint included) has a
deadline on the injected clock, checked before each socket read of its answer (the status line and
headers' as well as the body's), with each read bounded by what is left of it, so a server that
drips bytes, in its headers or its body, cannot hold a call; a body larger than
``max_response_bytes`` is refused from its Content-Length or as it streams, never read whole;
redirects are not followed; an answer that is not strict UTF-8 JSON of bounded depth with finite
numbers is a tool error, not an exception; and no error text carries a credential or a token.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Protocol
from urllib.parse import quote_plus, urlencode

import urllib3

from shared.deadline_http import pool_manager, reads_within
from shared.display import LONE_SURROGATE, utf8_encodable
from shared.tool_errors import ToolError
from shared.tools import (
    DEFAULT_BACKOFF_SECONDS,
    DEFAULT_MAX_RESPONSE_BYTES,
    SECRET_ATTEMPTS,
    SECRET_CONNECT_SECONDS,
    SECRET_READ_TIMEOUT_SECONDS,
    longest_call_seconds,
)

TOKEN_SKEW_SECONDS = 30  # refresh this long before the token's stated expiry
MAX_TOKEN_SECONDS = 86_400  # an expiry beyond a day is not believed: refetch daily at least
READ_CHUNK_BYTES = 64 * 1024  # one read; the cap is checked after each
MAX_JSON_DEPTH = 64  # deeper than any record a tool projects; json and json.dumps recurse
# RFC 6750 b64token: what a bearer token may hold, so it can never break the header it goes in,
# and at most MAX_TOKEN_CHARS in all, padding included (it goes out with every request).
MAX_TOKEN_CHARS = 4096
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# A Content-Length the client reads: ASCII digits, 18 at most (an exabyte, far past any cap).
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str

    def __repr__(self) -> str:  # a log line or a traceback's locals must not show the secret
        return f"Credentials(client_id={self.client_id!r}, client_secret=***)"


logger = logging.getLogger(__name__)
# What the agent is told when the tool's credentials cannot be used: nothing of where they are kept.
CREDENTIALS_UNUSABLE = "the tool's credentials for the service are not usable"


@cache
def _secrets() -> Any:
    """Powertools' Secrets Manager provider, its client's time bounded (shared.tools.SECRET_READ_SECONDS;
    made on first use: the tools' functions start without the AWS SDK)."""
    from aws_lambda_powertools.utilities import parameters
    from botocore.config import Config

    retries: Any = {"mode": "standard", "total_max_attempts": SECRET_ATTEMPTS}
    timeouts = Config(connect_timeout=SECRET_CONNECT_SECONDS, read_timeout=SECRET_READ_TIMEOUT_SECONDS, retries=retries)
    return parameters.SecretsProvider(boto_config=timeouts)


def secret_credentials(secret_name: str) -> Credentials:
    """Client credentials from a Secrets Manager secret ``{"client_id", "client_secret"}``, cached
    for five minutes (Powertools parameters), so a rotated secret is picked up without a deploy."""
    secret = _secrets().get(secret_name, transform="json", max_age=300)
    client_id = secret.get("client_id") if isinstance(secret, dict) else None
    client_secret = secret.get("client_secret") if isinstance(secret, dict) else None
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        # The secret's name is the operator's to know, not the agent's: only the log line has it
        # (its name and what is wrong, never a value it holds).
        logger.error("legacy API secret unusable: no client_id and client_secret", extra={"secret": secret_name})
        raise ToolError("forbidden", CREDENTIALS_UNUSABLE)
    return Credentials(client_id=client_id, client_secret=client_secret)


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    token_path: str = "/oauth/token"  # noqa: S105 - a URL path, not a secret
    timeout_seconds: float = 5.0  # the deadline of one exchange: connect, headers and every read
    max_attempts: int = 3
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


class _TransportError(Exception):
    """A failed exchange worth another attempt (timeout, reset, deadline passed)."""


def _unavailable(message: str) -> ToolError:
    return ToolError("upstream_unavailable", message, retry_after=30)


def _unbuildable() -> ToolError:
    """A request that cannot be sent as asked; the error's text would echo the value, so it is not used."""
    return _unavailable("the request to the service could not be built")


def _malformed(what: str) -> ToolError:
    """An answer the client cannot use: the service has changed or misbehaves."""
    return _unavailable(f"the service's answer is unusable: {what}")


class LegacyClient:
    def __init__(
        self,
        settings: ClientSettings,
        credentials: Callable[[], Credentials],
        *,
        http: urllib3.PoolManager | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._http = http or pool_manager()
        self._clock = clock
        self._sleep = sleep or time.sleep  # looked up when the client is made (a default would bind it at import)
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_fetches = 0  # observable: the tests and the bench count round trips

    @property
    def longest_get_seconds(self) -> float:
        """The longest one ``get`` may take (shared.tools.longest_call_seconds)."""
        settings = self._settings
        return longest_call_seconds(settings.timeout_seconds, settings.max_attempts, settings.backoff_seconds)

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, int]:
        """GET a JSON resource; returns (decoded body, raw byte count)."""
        try:
            query = f"?{urlencode({k: v for k, v in (params or {}).items() if v is not None})}" if params else ""
        except UnicodeEncodeError:  # a lone surrogate: the tools refuse one in their arguments first
            raise _unbuildable() from None
        url = f"{self._settings.base_url}{path}{query}"
        refreshed = False
        # One token for the whole call, fetched at most twice (here when the held one is due, and
        # once after a 401), as longest_call_seconds counts: a token that expires while the call
        # retries (or one that lives no longer than the refresh skew) is not fetched per attempt.
        token: str | None = None
        for attempt in range(1, self._settings.max_attempts + 1):
            token = token or self._bearer()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            try:
                status, retry_after, data = self._exchange("GET", url, headers=headers)
            except _TransportError:  # timeouts, refused and reset connections, a deadline passed
                if attempt == self._settings.max_attempts:
                    raise _unavailable("the service did not answer in time") from None
                self._backoff(attempt)
                continue
            if status == 401 and not refreshed:
                self._token = token = None  # expired or revoked early: one fresh token
                refreshed = True
                continue
            if status >= 500 or status == 429:
                if attempt == self._settings.max_attempts:
                    raise ToolError("upstream_unavailable", f"the service answered {status}", retry_after=retry_after)
                self._backoff(attempt)
                continue
            if status != 200 or data is None:
                raise _refusal(status)
            size, text = len(data), _text(data)
            # The answer's bytes go before its text is parsed: held beside the parsed objects, they
            # would be one more copy of the answer than shared.tools.JSON_MEMORY_FACTOR counts.
            del data
            return _parsed(text), size
        # Only a 401 on the last attempt gets here: its fresh token waits for the next call (the
        # refresh is an attempt, as longest_call_seconds counts them).
        raise _unavailable("the service refused the token; no attempt was left to retry with a fresh one")

    def _exchange(
        self, method: str, url: str, *, headers: dict[str, str], body: str | None = None
    ) -> tuple[int, int, bytearray | None]:
        """One request within the deadline: (status, Retry-After, the body of a 200 or None).

        Only a 200's body is read (a refusal's is discarded unread); it is read a chunk at a time
        with the deadline and the byte cap checked after every chunk.
        """
        deadline = self._clock() + self._settings.timeout_seconds
        left = self._left(deadline)
        try:
            with reads_within(lambda: self._left_for_read(deadline)):
                response = self._http.request(
                    method,
                    url,
                    body=body,
                    headers={**headers, "Accept-Encoding": "identity"},  # the cap counts what is decoded
                    # total: the wait for the answer's headers gets what the connect left, not the
                    # whole deadline again (the body's reads are held to the deadline below).
                    timeout=urllib3.Timeout(total=left, connect=left, read=left),
                    redirect=False,
                    preload_content=False,
                    decode_content=False,
                )
        except (urllib3.exceptions.HTTPError, OSError):
            raise _TransportError from None
        except (ValueError, UnicodeError):  # a header http.client refuses; its text echoes the value
            raise _unbuildable() from None
        complete = False
        try:
            if response.status != 200:
                return response.status, _retry_after(response.headers.get("Retry-After")), None
            data = self._read(response, deadline)
            complete = True
            return response.status, 0, data
        finally:
            if not complete:
                response.close()  # unread bytes must not reach the next request on this connection
            response.release_conn()

    def _read(self, response: urllib3.BaseHTTPResponse, deadline: float) -> bytearray:
        """The body, gathered into one buffer as it is read: a list of chunks joined at the end held
        the answer twice at once."""
        cap = self._settings.max_response_bytes
        if response.headers.get("Content-Encoding", "identity").lower() != "identity":
            raise _malformed("a compressed answer that was not asked for")
        declared = response.headers.get("Content-Length")
        if declared is not None:
            # Not str.isdigit(): it takes "²", which int() refuses, and no bound on length, where
            # int() refuses past 4,300 digits; either would escape as a ValueError.
            if not _CONTENT_LENGTH.fullmatch(declared.strip()):
                raise _malformed("Content-Length is not a number")
            if int(declared) > cap:
                raise _unavailable(f"the service's answer is larger than {cap} bytes")
        body = bytearray()
        while True:
            self._left(deadline)  # none left ends it; each socket read waits what is left (deadline_http)
            try:
                chunk = response.read1(READ_CHUNK_BYTES)
            except (urllib3.exceptions.HTTPError, OSError):
                raise _TransportError from None
            if not chunk:
                return body
            if len(body) + len(chunk) > cap:
                raise _unavailable(f"the service's answer is larger than {cap} bytes")
            body += chunk

    def _left(self, deadline: float) -> float:
        """Seconds left before the deadline (a bound for the next socket wait); none left ends it."""
        left = deadline - self._clock()
        if left <= 0:
            raise _TransportError
        return min(left, self._settings.timeout_seconds)

    def _left_for_read(self, deadline: float) -> float:
        """_left for a socket read: a passed deadline is a socket timeout there (urllib3 turns it
        into its ReadTimeoutError, a transport error here)."""
        try:
            return self._left(deadline)
        except _TransportError:
            raise TimeoutError("the exchange's deadline passed") from None

    def _bearer(self) -> str:
        if self._token is None or self._clock() >= self._token_expires:
            self._fetch_token()
        assert self._token is not None
        return self._token

    def _fetch_token(self) -> None:
        credentials = self._credentials()
        try:
            # RFC 6749 2.3.1: each form-urlencoded, then joined by a colon, so a colon, a % or a +
            # in either reaches the server as itself.
            pair = f"{quote_plus(credentials.client_id)}:{quote_plus(credentials.client_secret)}".encode()
        except UnicodeEncodeError:  # half a surrogate pair (JSON can escape one): its error would hold the secret
            raise ToolError("forbidden", "the client credentials are not UTF-8 text") from None
        basic = base64.b64encode(pair).decode()
        try:
            status, _, data = self._exchange(
                "POST",
                f"{self._settings.base_url}{self._settings.token_path}",
                body=urlencode({"grant_type": "client_credentials"}),
                headers={"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"},
            )
        except _TransportError:
            raise _unavailable("the service's token endpoint did not answer in time") from None
        if status in (400, 401, 403):
            raise ToolError("forbidden", f"the service refused the gateway's credentials ({status})")
        if status != 200 or data is None:
            raise _unavailable(f"the token endpoint answered {status}")
        token, expires_in = _token_fields(decode_json(data))
        self.token_fetches += 1
        self._token = token
        # Refreshed early, by the skew or half the token's life if that is shorter: a token that
        # lives no longer than the skew would be due on arrival and fetched again by every call.
        self._token_expires = self._clock() + expires_in - min(TOKEN_SKEW_SECONDS, expires_in / 2)

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.uniform(0, self._settings.backoff_seconds * 2 ** (attempt - 1)))  # noqa: S311


def _refusal(status: int) -> ToolError:
    """The error for a final status other than 200 (5xx, 429 and a first 401 are retried before)."""
    if 300 <= status < 400:
        return _unavailable(f"the service answered a redirect ({status}); redirects are not followed")
    if status == 404:
        return ToolError("not_found", "no such record")
    if status in (401, 403):
        return ToolError("forbidden", "the service refused the request")
    if status >= 400:
        return ToolError("invalid_argument", f"the service rejected the request ({status})")
    return _malformed(f"status {status}")


def _token_fields(answer: Any) -> tuple[str, float]:
    """(access_token, expires_in) of a token answer; neither is ever put in an error's text."""
    if not isinstance(answer, dict):
        raise _unavailable("the token endpoint's answer is not an object")
    token = answer.get("access_token")
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        raise _unavailable("the token endpoint's answer holds no usable access_token")
    expires_in = answer.get("expires_in", 300)  # optional in RFC 6749: assume a short life
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or not 0 < expires_in < math.inf:
        raise _unavailable("the token endpoint's answer holds no usable expires_in")
    return token, float(min(expires_in, MAX_TOKEN_SECONDS))


def decode_json(data: bytes | bytearray) -> Any:
    """Strict JSON: UTF-8 (no BOM, no UTF-16), finite numbers, at most MAX_JSON_DEPTH deep. Text is
    Unicode: JSON can escape half a surrogate pair ("\\ud800"), which no UTF-8 holds, so each one is
    read as U+FFFD (the Lambda runtime encodes a tool's answer as UTF-8 after the handler returns,
    where no error of the taxonomy can be made of it, and a pulled record lands as UTF-8); refusing
    the whole answer instead would stop a pull source at that page for good."""
    return _parsed(_text(data))


def _text(data: bytes | bytearray) -> str:
    """The answer as text: strict UTF-8, without a byte order mark (decode_json)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed("not UTF-8") from None
    if text.startswith("\ufeff"):
        raise _malformed("a byte order mark before the JSON")
    return text


def _parsed(text: str) -> Any:
    """The answer's text as JSON values (decode_json)."""
    try:
        value = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise _malformed("nested too deeply") from None
    except ValueError:  # not JSON, a constant, an infinite float, an int too long to convert
        raise _malformed("not JSON") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise _malformed("nested too deeply")
    # An escape is the only way one gets in: the text itself decoded as UTF-8.
    return _unicode(value) if _SURROGATE_ESCAPE.search(text) else value


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _unicode(value: Any) -> Any:
    """``value`` with each lone surrogate of its texts (keys too) read as U+FFFD (a pair JSON
    escaped is one character already). Lists and objects are changed in place (a copy of the whole
    answer would double what it holds: shared.tools.JSON_MEMORY_FACTOR counts one); an object is
    made anew only where one of its keys changes. At most MAX_JSON_DEPTH deep: recursion is bounded."""
    if isinstance(value, str):
        return utf8_encodable(value)
    if isinstance(value, list):
        for index, item in enumerate(value):
            value[index] = _unicode(item)
        return value
    if isinstance(value, dict):
        if any(LONE_SURROGATE.search(key) for key in value):
            return {_unicode(key): _unicode(item) for key, item in value.items()}
        for key, item in value.items():
            value[key] = _unicode(item)
        return value
    return value


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError("a number out of range")
    return number


def _depth(value: Any) -> int:
    """How deeply lists and objects nest (iterative: the value may be too deep to recurse). One
    iterator per level walked, so what it holds grows with the depth, never with the items."""
    deepest, walking = 0, [iter((value,))]
    while walking:
        child = next(walking[-1], _END)
        if child is _END:
            walking.pop()
        elif isinstance(child, dict | list):
            walking.append(iter(child.values() if isinstance(child, dict) else child))
            deepest = max(deepest, len(walking) - 1)
            if deepest > MAX_JSON_DEPTH:
                return deepest
    return deepest


_END: Any = object()


MAX_RETRY_AFTER_SECONDS = 3600  # a service's Retry-After beyond an hour is not passed on


def _retry_after(header: str | None) -> int:
    """The service's Retry-After in seconds, within 1..MAX_RETRY_AFTER_SECONDS (30 if not a number)."""
    try:
        return min(max(int(header or 30), 1), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return 30


class Endpoint(Protocol):
    """What a function's settings say about the API it calls (legacy tools, pull connectors)."""

    @property
    def base_url(self) -> str: ...
    @property
    def token_path(self) -> str: ...
    @property
    def timeout_seconds(self) -> float: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def secret_name(self) -> str: ...
    @property
    def max_response_bytes(self) -> int: ...


def client_for(endpoint: Endpoint, *, clock: Callable[[], float] = time.monotonic) -> LegacyClient:
    """A client of the API ``endpoint`` describes, authenticated with the client credentials in its
    Secrets Manager secret (read when a token is needed; a rotated secret is picked up). ``clock``
    runs its deadlines (a test's, so its outcome does not depend on how fast the machine is)."""
    settings = ClientSettings(
        base_url=endpoint.base_url,
        token_path=endpoint.token_path,
        timeout_seconds=endpoint.timeout_seconds,
        max_attempts=endpoint.max_attempts,
        max_response_bytes=endpoint.max_response_bytes,
    )
    return LegacyClient(settings, lambda: secret_credentials(endpoint.secret_name), clock=clock)
