"""shared.legacy_client on its own: what each final status becomes, how long it backs off, where
its credentials come from, and what an endpoint's settings change. (The hostile answers are in
test_legacy_hostile.py; the tools over the client in test_legacy_tools.py.)"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from typing import Any, Literal

import boto3
import pytest
from moto import mock_aws

from connector_pull.contract import PullSource
from legacy_tools.contract import LegacyApi as ApiSettings
from shared import legacy_client
from shared.legacy_client import (
    MAX_JSON_DEPTH,
    MAX_TOKEN_SECONDS,
    TOKEN_SKEW_SECONDS,
    ClientSettings,
    Credentials,
    LegacyClient,
    decode_json,
    secret_credentials,
)
from shared.tool_errors import ToolError
from shared.tools import DEFAULT_MAX_RESPONSE_BYTES, SECRET_READ_SECONDS, longest_call_seconds
from tests.lambdas.legacy_api import CLIENT_ID, CLIENT_SECRET, CUSTOMER_ID, Answer, LegacyApi, serve
from tests.lambdas.test_connectors import SOURCE

CUSTOMER = f"/v2/customers/{CUSTOMER_ID}"
UNUSABLE = "the service's answer is unusable: "


@pytest.fixture
def api() -> Iterator[LegacyApi]:
    with serve() as running:
        yield running


def still() -> float:
    """A clock that stands still: no deadline passes on a busy machine (deadlines have their own tests)."""
    return 1000.0


def client(api: LegacyApi, *, attempts: int = 1, backoff: float = 0, sleep: Any = None) -> LegacyClient:
    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=attempts, backoff_seconds=backoff)
    return LegacyClient(
        settings,
        lambda: Credentials(CLIENT_ID, CLIENT_SECRET),
        clock=still,  # ten seconds of deadline on any machine
        sleep=sleep or (lambda _: None),
    )


def failure(call: Any) -> ToolError:
    with pytest.raises(ToolError) as raised:
        call()
    return raised.value


# What a final status becomes (5xx, 429 and a first 401 are retried first).


@pytest.mark.parametrize(
    ("status", "kind", "message", "retry_after"),
    [
        (201, "upstream_unavailable", f"{UNUSABLE}status 201", 30),
        (299, "upstream_unavailable", f"{UNUSABLE}status 299", 30),
        (300, "upstream_unavailable", "the service answered a redirect (300); redirects are not followed", 30),
        (399, "upstream_unavailable", "the service answered a redirect (399); redirects are not followed", 30),
        (400, "invalid_argument", "the service rejected the request (400)", None),
        (403, "forbidden", "the service refused the request", None),
        (404, "not_found", "no such record", None),
        (409, "invalid_argument", "the service rejected the request (409)", None),
        (499, "invalid_argument", "the service rejected the request (499)", None),
    ],
)
def test_each_final_status_is_its_taxonomy_error(
    api: LegacyApi, status: int, kind: str, message: str, retry_after: int | None
) -> None:
    api.faults.append(status)
    error = failure(lambda: client(api).get(CUSTOMER))
    assert (error.kind, error.message, error.retry_after) == (kind, message, retry_after)


def test_a_second_401_after_a_fresh_token_is_forbidden(api: LegacyApi) -> None:
    api.faults += [401, 401]
    error = failure(lambda: client(api, attempts=3).get(CUSTOMER))
    assert (error.kind, error.message) == ("forbidden", "the service refused the request")
    assert api.token_requests == 2  # the call's token and one fresh one: never a third
    assert len(api.requests) == 2


def test_a_5xx_on_the_last_attempt_passes_on_the_services_retry_after(api: LegacyApi) -> None:
    api.faults += [503, 502]
    error = failure(lambda: client(api, attempts=2).get(CUSTOMER))
    assert (error.kind, error.message, error.retry_after) == ("upstream_unavailable", "the service answered 502", 7)


def test_a_token_endpoint_that_fails_is_unavailable_and_one_that_refuses_is_forbidden(api: LegacyApi) -> None:
    api.answers["/oauth/token"] = Answer(status=500, body=b"{}")
    error = failure(lambda: client(api).get(CUSTOMER))
    assert (error.kind, error.message, error.retry_after) == (
        "upstream_unavailable",
        "the token endpoint answered 500",
        30,
    )
    for status in (400, 401, 403):
        api.answers["/oauth/token"] = Answer(status=status, body=b"{}")
        error = failure(lambda: client(api).get(CUSTOMER))
        assert (error.kind, error.message) == ("forbidden", f"the service refused the gateway's credentials ({status})")


# Backoff: jittered, doubling from backoff_seconds.


def test_backoff_doubles_from_the_configured_seconds(api: LegacyApi, monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        drawn.append((low, high))
        return high  # the longest wait the jitter allows

    monkeypatch.setattr(random, "uniform", uniform)
    slept: list[float] = []
    api.faults += [500, 500, 500, 500]
    failure(lambda: client(api, attempts=4, backoff=0.5, sleep=slept.append).get(CUSTOMER))
    assert drawn == [(0, 0.5), (0, 1.0), (0, 2.0)]  # none after the last attempt
    assert slept == [0.5, 1.0, 2.0]


def test_a_client_made_without_a_sleep_waits_with_time_sleep_as_it_is_when_made(
    api: LegacyApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployed functions make their client without ``sleep``: it is time.sleep looked up when
    the client is made (not bound when the module was imported), so the backoffs are really waited."""
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=3, backoff_seconds=0.25)
    made = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=still)
    api.faults += [500, 500]
    assert made.get(CUSTOMER)[0]["data"]["customerId"] == CUSTOMER_ID
    assert slept == [0.25, 0.5]


# Credentials from Secrets Manager (through Powertools' cached reader).


@pytest.fixture
def secrets() -> Iterator[Any]:
    legacy_client._secrets.cache_clear()  # a provider (and its cache) of this test's own
    with mock_aws():
        yield boto3.client("secretsmanager", region_name="us-east-1")
    legacy_client._secrets.cache_clear()


def test_credentials_are_read_from_the_secrets_json(secrets: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    secrets.create_secret(Name="team/orders", SecretString=json.dumps({"client_id": "c", "client_secret": "s"}))
    assert secret_credentials("team/orders") == Credentials(client_id="c", client_secret="s")


@pytest.mark.parametrize(
    "secret",
    [
        {"client_id": "c"},
        {"client_secret": "s"},
        {"client_id": 7, "client_secret": "s"},
        {"client_id": "c", "client_secret": None},
        ["c", "s"],
        "c:s",
    ],
)
def test_a_secret_without_a_client_id_and_secret_is_forbidden_naming_the_secret_in_the_log_only(
    secrets: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, secret: Any
) -> None:
    """The agent is told the credentials are unusable, not where they are kept; the log line names
    the secret and never a value it holds (issue 14)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    secrets.create_secret(Name="team/orders", SecretString=json.dumps(secret))
    error = failure(lambda: secret_credentials("team/orders"))
    assert (error.kind, error.message) == ("forbidden", "the tool's credentials for the service are not usable")
    assert "team/orders" not in json.dumps(error.result())
    (record,) = [r for r in caplog.records if r.name == "shared.legacy_client"]
    assert (record.levelname, record.getMessage(), getattr(record, "secret", None)) == (
        "ERROR",
        "legacy API secret unusable: no client_id and client_secret",
        "team/orders",
    )
    assert "c:s" not in caplog.text


def test_the_secret_is_cached_for_five_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    """So a rotated secret is picked up without a deploy, and not read on every token fetch."""
    asked: list[tuple[str, dict[str, Any]]] = []

    def get_secret(name: str, **options: Any) -> Any:
        asked.append((name, options))
        return {"client_id": "c", "client_secret": "s"}

    monkeypatch.setattr(legacy_client._secrets(), "get", get_secret)
    secret_credentials("team/orders")
    assert asked == [("team/orders", {"transform": "json", "max_age": 300})]


def test_the_secret_is_read_within_the_time_the_tools_function_keeps_for_it() -> None:
    """Two attempts of a 2 s connect and a 3 s read (shared.tools.SECRET_READ_SECONDS, which
    tools_function_seconds counts), not boto3's default minute per read and its retries."""
    config = legacy_client._secrets().client.meta.config
    assert (config.connect_timeout, config.read_timeout, config.retries) == (
        2,
        3,
        {"mode": "standard", "total_max_attempts": 2},
    )
    assert SECRET_READ_SECONDS == 2 * (2 + 3) + 1


# An endpoint's settings, as client_for passes them on.


def endpoint(api: LegacyApi, **changes: Any) -> ApiSettings:
    fields: dict[str, Any] = {
        "base_url": api.url,
        "token_path": "/oauth/token",
        "secret_name": "team/orders",
        "timeout_seconds": 10,
        "max_attempts": 1,
        "top_k": 5,
        "byte_budget": 4000,
        "fields": {},
    }
    return ApiSettings(**{**fields, **changes})


@pytest.fixture
def known_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(legacy_client, "secret_credentials", lambda _: Credentials(CLIENT_ID, CLIENT_SECRET))


@pytest.mark.usefixtures("known_secret")
def test_client_for_uses_the_endpoints_token_path(api: LegacyApi) -> None:
    # The test service knows only /oauth/token: another path is refused there.
    error = failure(
        lambda: legacy_client.client_for(endpoint(api, token_path="/auth/token"), clock=still).get(CUSTOMER)
    )
    assert (error.kind, error.message) == ("forbidden", "the service refused the gateway's credentials (401)")


@pytest.mark.usefixtures("known_secret")
def test_client_for_times_and_retries_as_the_endpoint_says(api: LegacyApi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: 0.0)  # backoffs of no time
    made = legacy_client.client_for(endpoint(api, timeout_seconds=7, max_attempts=4), clock=still)
    assert made.longest_get_seconds == longest_call_seconds(7, 4)
    api.faults += [500, 500, 500]
    body, _ = made.get(CUSTOMER)  # the fourth attempt answers
    assert body["data"]["customerId"] == CUSTOMER_ID
    assert len(api.requests) == 4


@pytest.mark.usefixtures("known_secret")
def test_client_for_caps_answers_at_the_endpoints_bytes_or_the_default(api: LegacyApi) -> None:
    """A legacy API's tools and a pull connector's source each read at most the bytes their config
    states (by default DEFAULT_MAX_RESPONSE_BYTES)."""
    api.answers[CUSTOMER] = Answer(body=b"{}", content_length=DEFAULT_MAX_RESPONSE_BYTES + 1)
    error = failure(lambda: legacy_client.client_for(endpoint(api), clock=still).get(CUSTOMER))
    assert error.message == f"the service's answer is larger than {DEFAULT_MAX_RESPONSE_BYTES} bytes"
    source = PullSource(**{**SOURCE.model_dump(), "base_url": api.url, "max_response_bytes": 200_000})
    for capped, cap in ((endpoint(api, max_response_bytes=1000), 1000), (source, 200_000)):
        api.answers[CUSTOMER] = Answer(body=b"{}", content_length=cap + 1)
        error = failure(lambda: legacy_client.client_for(capped, clock=still).get(CUSTOMER))  # noqa: B023
        assert error.message == f"the service's answer is larger than {cap} bytes"


# How long a token is held: its expires_in less TOKEN_SKEW_SECONDS (or half its expires_in, when
# that is shorter), a day at most, five minutes when the answer does not say.


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("answer", "held_seconds"),
    [
        ({}, 300 - TOKEN_SKEW_SECONDS),
        ({"expires_in": 120}, 120 - TOKEN_SKEW_SECONDS),
        ({"expires_in": 10**9}, MAX_TOKEN_SECONDS - TOKEN_SKEW_SECONDS),
    ],
)
def test_a_token_is_held_until_shortly_before_it_expires(
    api: LegacyApi, answer: dict[str, Any], held_seconds: float
) -> None:
    api.tokens["issued-token"] = time.monotonic() + 3600  # the service knows it
    api.answers["/oauth/token"] = Answer(body=json.dumps({"access_token": "issued-token", **answer}).encode())
    clock = Clock()
    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=1)
    made = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=clock)
    made.get(CUSTOMER)
    clock.now += held_seconds - 0.5
    made.get(CUSTOMER)
    assert made.token_fetches == 1
    clock.now += 0.5
    made.get(CUSTOMER)
    assert made.token_fetches == 2


# The request as the service sees it, and the connection it comes on.


def test_a_get_without_parameters_sends_no_query_and_one_with_sends_only_the_set_ones(api: LegacyApi) -> None:
    made = client(api)
    made.get(CUSTOMER)
    made.get("/v2/customers", {"email": "ada@example.com", "status": None})
    assert api.targets == [CUSTOMER, "/v2/customers?email=ada%40example.com"]


def test_the_token_fetch_and_the_calls_share_one_connection(api: LegacyApi) -> None:
    """A whole answer leaves its connection open for the next request; a refusal's unread body
    closes it first (its bytes must not be read as the next answer)."""
    made = client(api, attempts=2)
    made.get(CUSTOMER)
    made.get(CUSTOMER)
    assert api.connections == 1
    api.faults.append(500)
    body, _ = made.get(CUSTOMER)  # the 500's connection closed; the retry opens another
    assert body["data"]["customerId"] == CUSTOMER_ID
    assert api.connections == 2


def test_the_client_asks_for_json_without_compression(api: LegacyApi) -> None:
    """The service answers 406 to a request without Accept: application/json, and compresses
    whatever is not asked for as identity: the byte cap counts what is decoded, so the client
    asks for identity and refuses a compressed answer it did not ask for."""
    api.gzip_unless_identity = True
    body, size = client(api).get(CUSTOMER)
    assert body["data"]["customerId"] == CUSTOMER_ID
    assert size == len(json.dumps(body))
    api.answers[CUSTOMER] = Answer(body=b"{}", headers={"Content-Encoding": "gzip"})
    error = failure(lambda: client(api).get(CUSTOMER))
    assert (error.kind, error.message) == (
        "upstream_unavailable",
        f"{UNUSABLE}a compressed answer that was not asked for",
    )


@pytest.mark.parametrize("content_length", ["actual", "none"])
def test_an_answer_of_exactly_the_cap_is_read_and_one_byte_more_is_refused(
    api: LegacyApi, content_length: Literal["actual", "none"]
) -> None:
    """From its Content-Length, or counted as it streams when it ends at close."""
    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=1, max_response_bytes=100)
    made = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=lambda: 1000.0)
    exact = b'{"data": "' + b"x" * 88 + b'"}'
    api.answers[CUSTOMER] = Answer(body=exact, content_length=content_length)
    assert made.get(CUSTOMER) == ({"data": "x" * 88}, 100)
    api.answers[CUSTOMER] = Answer(body=exact + b" ", content_length=content_length)
    error = failure(lambda: made.get(CUSTOMER))
    assert error.message == "the service's answer is larger than 100 bytes"


def test_429_is_retried_like_a_5xx(api: LegacyApi) -> None:
    api.faults.append(429)
    body, _ = client(api, attempts=2).get(CUSTOMER)
    assert body["data"]["customerId"] == CUSTOMER_ID
    api.faults += [429]
    error = failure(lambda: client(api).get(CUSTOMER))
    assert (error.kind, error.message, error.retry_after) == ("upstream_unavailable", "the service answered 429", 7)


def test_a_5xx_without_retry_after_asks_for_thirty_seconds(api: LegacyApi) -> None:
    api.answers[CUSTOMER] = Answer(status=503, body=b"{}")
    error = failure(lambda: client(api).get(CUSTOMER))
    assert (error.message, error.retry_after) == ("the service answered 503", 30)


@pytest.mark.parametrize(
    ("expires_in", "held_seconds"), [(20, 10), (TOKEN_SKEW_SECONDS, TOKEN_SKEW_SECONDS / 2), (0.5, 0.25)]
)
def test_a_token_that_lives_no_longer_than_the_skew_is_held_for_half_its_life(
    api: LegacyApi, expires_in: float, held_seconds: float
) -> None:
    """Less the whole skew, it was due on arrival, and every call fetched a token before its
    request. expires_in need only be positive: a token that lives under a second is a token."""
    api.tokens["brief"] = time.monotonic() + 3600  # the service knows it
    api.answers["/oauth/token"] = Answer(body=json.dumps({"access_token": "brief", "expires_in": expires_in}).encode())
    clock = Clock()
    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=1)
    made = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=clock)
    made.get(CUSTOMER)
    made.get(CUSTOMER)
    clock.now += held_seconds * 0.99
    made.get(CUSTOMER)
    assert made.token_fetches == 1
    clock.now += held_seconds * 0.01
    made.get(CUSTOMER)
    assert made.token_fetches == 2


# Depth: what the client decodes is at most MAX_JSON_DEPTH deep, however it nests.


@pytest.mark.parametrize(("opening", "closing"), [(b"[", b"]"), (b'{"a":', b"}")])
def test_an_answer_exactly_max_depth_deep_is_decoded_and_one_deeper_is_refused(opening: bytes, closing: bytes) -> None:
    def nested(depth: int) -> bytes:
        return opening * depth + b"1" + closing * depth if opening == b'{"a":' else opening * depth + closing * depth

    assert decode_json(nested(MAX_JSON_DEPTH)) is not None
    error = failure(lambda: decode_json(nested(MAX_JSON_DEPTH + 1)))
    assert error.message == f"{UNUSABLE}nested too deeply"


def test_a_scalar_answer_is_decoded() -> None:
    assert decode_json(b"7") == 7
    assert decode_json(b'"text"') == "text"


def test_an_exchange_whose_deadline_comes_exactly_with_its_answer_is_over(api: LegacyApi) -> None:
    """No time left is none: the answer, already in the client's buffer, is not read."""

    def clock() -> float:  # the deadline (1000 + 10) arrives as the service takes the request
        return 1010.0 if api.requests else 1000.0

    settings = ClientSettings(base_url=api.url, timeout_seconds=10, max_attempts=1)
    made = LegacyClient(settings, lambda: Credentials(CLIENT_ID, CLIENT_SECRET), clock=clock)
    error = failure(lambda: made.get(CUSTOMER))
    assert (error.kind, error.message) == ("upstream_unavailable", "the service did not answer in time")


def test_client_for_runs_its_deadlines_on_the_given_clock(api: LegacyApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that jumps past any deadline between two readings: no exchange gets to be sent."""
    monkeypatch.setattr(legacy_client, "secret_credentials", lambda _: Credentials(CLIENT_ID, CLIENT_SECRET))
    ticks = iter(range(0, 10**6, 100))
    made = legacy_client.client_for(endpoint(api), clock=lambda: float(next(ticks)))
    error = failure(lambda: made.get(CUSTOMER))
    assert error.message == "the service's token endpoint did not answer in time"
    assert api.token_requests == 0


def test_a_query_value_utf_8_cannot_encode_is_refused_without_echoing_it(api: LegacyApi) -> None:
    error = failure(lambda: client(api).get("/v2/customers", {"email": "\ud800@example.com"}))
    assert (error.kind, error.message, error.retry_after) == (
        "upstream_unavailable",
        "the request to the service could not be built",
        30,
    )
    assert api.requests == []
