"""A legacy REST API client that does the round trips an agent should never make.

It obtains the service token (OAuth2 client credentials from Secrets Manager), caches it until
shortly before it expires, refreshes it once on a 401, retries timeouts and 5xx with jittered
exponential backoff, and turns every failure into the tool error taxonomy.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlencode

import urllib3

from shared.tool_errors import ToolError

TOKEN_SKEW_SECONDS = 30  # refresh this long before the token's stated expiry


@dataclass(frozen=True)
class Credentials:
    client_id: str
    client_secret: str


def secret_credentials(secret_name: str) -> Credentials:
    """Client credentials from a Secrets Manager secret ``{"client_id", "client_secret"}``, cached
    for five minutes (Powertools parameters), so a rotated secret is picked up without a deploy."""
    from aws_lambda_powertools.utilities import parameters  # only where a secret is used

    secret = parameters.get_secret(secret_name, transform="json", max_age=300)
    return Credentials(client_id=secret["client_id"], client_secret=secret["client_secret"])


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    token_path: str = "/oauth/token"  # noqa: S105 - a URL path, not a secret
    timeout_seconds: float = 5.0
    max_attempts: int = 3
    backoff_seconds: float = 0.2


class LegacyClient:
    def __init__(
        self,
        settings: ClientSettings,
        credentials: Callable[[], Credentials],
        *,
        http: urllib3.PoolManager | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._settings = settings
        self._credentials = credentials
        self._http = http or urllib3.PoolManager(retries=False)
        self._clock = clock
        self._sleep = sleep
        self._token: str | None = None
        self._token_expires = 0.0
        self.token_fetches = 0  # observable: the tests and the bench count round trips

    def get(self, path: str, params: dict[str, Any] | None = None) -> tuple[Any, int]:
        """GET a JSON resource; returns (decoded body, raw byte count)."""
        query = f"?{urlencode({k: v for k, v in (params or {}).items() if v is not None})}" if params else ""
        url = f"{self._settings.base_url}{path}{query}"
        refreshed = False
        for attempt in range(1, self._settings.max_attempts + 1):
            try:
                response = self._http.request(
                    "GET",
                    url,
                    headers={"Authorization": f"Bearer {self._bearer()}", "Accept": "application/json"},
                    timeout=urllib3.Timeout(total=self._settings.timeout_seconds),
                )
            except urllib3.exceptions.HTTPError:  # timeouts, refused and reset connections
                if attempt == self._settings.max_attempts:
                    raise ToolError(
                        "upstream_unavailable", "the service did not answer in time", retry_after=30
                    ) from None
                self._backoff(attempt)
                continue
            status = response.status
            if status == 401 and not refreshed:
                self._token, refreshed = None, True  # expired or revoked early: one fresh token
                continue
            if status >= 500 or status == 429:
                if attempt == self._settings.max_attempts:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    raise ToolError("upstream_unavailable", f"the service answered {status}", retry_after=retry_after)
                self._backoff(attempt)
                continue
            if status == 404:
                raise ToolError("not_found", "no such record")
            if status in (401, 403):
                raise ToolError("forbidden", "the service refused the request")
            if status >= 400:
                raise ToolError("invalid_argument", f"the service rejected the request ({status})")
            return json.loads(response.data), len(response.data)
        raise ToolError("upstream_unavailable", "the service kept refusing the token", retry_after=30)

    def _bearer(self) -> str:
        if self._token is None or self._clock() >= self._token_expires:
            self._fetch_token()
        assert self._token is not None
        return self._token

    def _fetch_token(self) -> None:
        credentials = self._credentials()
        try:
            response = self._http.request(
                "POST",
                f"{self._settings.base_url}{self._settings.token_path}",
                body=urlencode({"grant_type": "client_credentials"}),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    **urllib3.make_headers(basic_auth=f"{credentials.client_id}:{credentials.client_secret}"),
                },
                timeout=urllib3.Timeout(total=self._settings.timeout_seconds),
            )
        except urllib3.exceptions.HTTPError:
            raise ToolError(
                "upstream_unavailable", "the service's token endpoint did not answer", retry_after=30
            ) from None
        if response.status in (400, 401, 403):
            raise ToolError("forbidden", f"the service refused the gateway's credentials ({response.status})")
        if response.status != 200:
            raise ToolError("upstream_unavailable", f"the token endpoint answered {response.status}", retry_after=30)
        token = json.loads(response.data)
        self.token_fetches += 1
        self._token = str(token["access_token"])
        self._token_expires = self._clock() + float(token.get("expires_in", 300)) - TOKEN_SKEW_SECONDS

    def _backoff(self, attempt: int) -> None:
        self._sleep(random.uniform(0, self._settings.backoff_seconds * 2 ** (attempt - 1)))  # noqa: S311


def _retry_after(header: str | None) -> int:
    try:
        return max(int(header or 30), 1)
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


def client_for(endpoint: Endpoint) -> LegacyClient:
    """A client of the API ``endpoint`` describes, authenticated with the client credentials in its
    Secrets Manager secret (read when a token is needed; a rotated secret is picked up)."""
    settings = ClientSettings(
        base_url=endpoint.base_url,
        token_path=endpoint.token_path,
        timeout_seconds=endpoint.timeout_seconds,
        max_attempts=endpoint.max_attempts,
    )
    return LegacyClient(settings, lambda: secret_credentials(endpoint.secret_name))
