"""Handler test set-up: a fake Lambda context, Function URL events (the AWS-free environment is
tests/conftest.py's)."""

from __future__ import annotations

import gc
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.utilities.typing import LambdaContext
from aws_lambda_powertools.utilities.typing.lambda_client_context import LambdaClientContext
from botocore.stub import Stubber
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


class FakeClientContext(LambdaClientContext):
    """The client context a caller (AgentCore Gateway, for a tool) sends: only its custom values."""

    def __init__(self, custom: dict[str, Any]) -> None:
        self._custom = custom


class FakeContext(LambdaContext):
    """A Lambda context of a test function with 30 s left; a test may set the request id and the
    client context (without one, reading ``client_context`` fails as on a plain invocation)."""

    def __init__(self, aws_request_id: str = "req-0001", client_context: LambdaClientContext | None = None) -> None:
        self._function_name = "test-function"
        self._function_version = "$LATEST"
        self._memory_limit_in_mb = 256
        self._invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
        self._aws_request_id = aws_request_id
        if client_context is not None:
            self._client_context = client_context

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


class _CurrentStdout:
    """Writes to whatever sys.stdout is now, so capsys sees Powertools log lines."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture(autouse=True)
def logs_to_current_stdout() -> Iterator[None]:
    """Powertools loggers keep the sys.stdout of their creation; pytest swaps it per test phase.
    And every handler here logs as one service (POWERTOOLS_SERVICE_NAME): one logger, one set of
    keys. A key one handler appends for its invocation (the interceptor's conversation id), left
    after a test, would be on the next test's lines from another handler (the agent's), which no
    deployed function shares: each test starts from the keys the loggers had before it."""
    kept: list[tuple[LambdaPowertoolsFormatter, dict[str, Any]]] = []
    for logger in [logging.getLogger(), *logging.root.manager.loggerDict.values()]:
        for handler in getattr(logger, "handlers", []):
            if type(handler) is logging.StreamHandler:  # not pytest's own capture handlers
                handler.stream = _CurrentStdout()
                if isinstance(handler.formatter, LambdaPowertoolsFormatter):
                    kept.append((handler.formatter, dict(handler.formatter.log_format)))
    yield
    for formatter, keys in kept:
        formatter.log_format = keys


@pytest.fixture
def failed_tools_session() -> Iterator[None]:
    """For a test whose tools session fails to start. Strands' MCPClient (1.62) stops a session
    that failed by scheduling a coroutine on its background loop after that loop's thread ended, so
    the coroutine never runs; collected here, its "never awaited" warning is this test's. Left to
    the collector, it came out in whichever later test the collector ran in, and where that was a
    namedtuple's constructor (no __import__ in its builtins) as an unraisable error: a test failed
    in some orders only (a mutation run's subsets)."""
    yield
    gc.collect()


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()


def function_url_event(body: str | None, *, path: str = "/query", method: str = "POST") -> dict[str, Any]:
    """A Lambda Function URL (payload 2.0) event as AWS_IAM auth delivers it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "abc.lambda-url.us-east-1.on.aws"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "authorizer": {
                "iam": {
                    "accessKey": "AKIA",
                    "accountId": "123456789012",
                    "userArn": "arn:aws:iam::123456789012:user/dev",
                }
            },
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "test",
            },
            "requestId": "req-0001",
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:18:00:00 +0000",
            "timeEpoch": 1795888800000,
        },
        "body": body,
        "isBase64Encoded": False,
    }


@dataclass
class HttpResult:
    status: int
    body: Any
    headers: dict[str, str]


def http_result(response: dict[str, Any]) -> HttpResult:
    return HttpResult(
        status=response["statusCode"],
        body=json.loads(response["body"]) if response.get("body") else None,
        headers={
            **response.get("headers", {}),
            **{name: values[-1] for name, values in (response.get("multiValueHeaders") or {}).items()},
        },
    )


# Fixtures that live with their helpers; importing them here registers them for the folder.
from tests.lambdas.cognito_fixtures import cognito, signing_key  # noqa: E402, F401


@pytest.fixture
def bedrock() -> Iterator[tuple[Any, Stubber]]:
    """A Bedrock Runtime client and its Stubber; every queued answer must be used."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


from tests.lambdas.gateway_fixtures import gateway  # noqa: E402, F401
from tests.lambdas.ingestion_fixtures import aws, pushing  # noqa: E402, F401
from tests.lambdas.jobs_fixtures import world  # noqa: E402, F401
from tests.lambdas.passage_fixtures import passages  # noqa: E402, F401

# One OpenTelemetry SDK for the whole session (a process has one global tracer provider): every
# span ends up in SPANS, which a test clears before the request it looks at.
SPANS = InMemorySpanExporter()


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(SPANS))
        trace.set_tracer_provider(provider)
    return SPANS


def printed(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    """The JSON lines printed since the last read (Powertools log lines and EMF metrics)."""
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]


def logged(capsys: pytest.CaptureFixture[str], message: str) -> list[dict[str, Any]]:
    """The log lines printed since the last read that say ``message``."""
    return [line for line in printed(capsys) if line.get("message") == message]
