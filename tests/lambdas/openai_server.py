"""The AI gateway on the loopback interface, as API Gateway REST would put it in front of its function.

Each HTTP request becomes the proxy event API Gateway sends the gateway function (stage ``live``,
the method's resource and path parameters, headers and multi-value headers as received, the body as
text, the request context with a fresh request id and the authorizer's context) and goes to
``ai_gateway.handler.lambda_handler`` (``stream_handler`` for the streamed resource, whose
streamed bodies are written chunk by chunk as produced); its statusCode, headers and body are
written back. Real HTTP
clients (the ``openai`` SDK) can then call the function unchanged.

The authorizer stands in for lambdas/gateway_authorizer: a bearer token the test names maps to the
context it would set ({user, group, tier, kind}, strings); any other token is API Gateway's 401,
a path no method serves its 403 "Missing Authentication Token", both in the gateway-response shape
(stacks/production/gateway.py). Usage-plan throttles and the WAF are not modelled. Invocations are
serialized, as one Lambda execution environment takes one event at a time.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ai_gateway import handler
from ai_gateway.stream_runtime import StreamedResponse
from shared.tokens import InvalidToken, bearer
from tests.lambdas.conftest import FakeContext
from tests.lambdas.loopback import QuietHandler, loopback

STAGE = "live"
# The API's resources (stacks/production/gateway.py): (method, resource) -> the path it matches.
RESOURCES: dict[tuple[str, str], re.Pattern[str]] = {
    ("POST", "/v1/chat"): re.compile(r"/v1/chat"),
    ("POST", "/v1/outputs/{type}"): re.compile(r"/v1/outputs/(?P<type>[^/]+)"),
    ("GET", "/v1/usage"): re.compile(r"/v1/usage"),
    ("POST", "/v1/chat/completions"): re.compile(r"/v1/chat/completions"),
    ("GET", "/v1/models"): re.compile(r"/v1/models"),
    # API Gateway passes the segment as the client sent it (percent-encoded): the function decodes it.
    ("GET", "/v1/models/{model}"): re.compile(r"/v1/models/(?P<model>[^/]+)"),
}
# The resources whose integration streams (responseTransferMode STREAM): the streaming function.
STREAMED = frozenset({"/v1/chat/completions"})
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit


@dataclass
class Served:
    url: str  # the stage's URL: an OpenAI base_url is f"{url}/v1"
    events: list[dict[str, Any]]  # every event the function was given, in order
    invoking: threading.Lock  # held while the function handles a request

    def finished(self) -> None:
        """Once the function has finished the request it was handling: a stream is metered after
        its [DONE], which the client may have read (and returned on) before that."""
        with self.invoking:
            pass


def api_event(
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    *,
    resource: str,
    path_parameters: dict[str, str] | None,
    authorizer: Mapping[str, str],
    request_id: str,
) -> dict[str, Any]:
    """The REST API proxy event of one request (the path without the stage, as the function sees it)."""
    parts = urlsplit(raw_path)
    path = parts.path.removeprefix(f"/{STAGE}")
    query = parse_qs(parts.query, keep_blank_values=True)
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value  # API Gateway keeps the last value of a repeated header here
        multi.setdefault(name, []).append(value)
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Port": "443"}
    for name, value in forwarded.items():
        single.setdefault(name, value)
        multi.setdefault(name, [value])
    text = body.decode("utf-8", errors="surrogateescape") if body else None
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": single,
        "multiValueHeaders": multi,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "abc123",
            "resourcePath": resource,
            "httpMethod": method,
            "extendedRequestId": request_id,
            "requestTime": "03/Dec/2026:04:00:00 +0000",
            "path": f"/{STAGE}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": STAGE,
            "domainPrefix": "abc123",
            "requestTimeEpoch": 1796270400000,
            "requestId": request_id,
            "identity": {
                "sourceIp": "203.0.113.9",
                "userAgent": single.get("User-Agent", ""),
                "apiKeyId": "key-of-the-group",
            },
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "apiId": "abc123",
            # The TOKEN authorizer's context, with the principal and latency API Gateway adds.
            "authorizer": {"principalId": authorizer.get("user", ""), "integrationLatency": 0, **authorizer},
        },
        "body": text,
        "isBase64Encoded": False,
    }


@dataclass
class _Site:
    callers: Mapping[str, Mapping[str, str]]
    events: list[dict[str, Any]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    invoking: threading.Lock = field(default_factory=threading.Lock)


class _ApiGateway(QuietHandler):
    """One HTTP request through the stand-in API Gateway to the function."""

    protocol_version = "HTTP/1.1"
    site: _Site  # set on the subclass serve_gateway makes

    def do_GET(self) -> None:
        self._invoke()

    def do_POST(self) -> None:
        self._invoke()

    def do_DELETE(self) -> None:
        self._invoke()

    def _invoke(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._answer(413, {}, json.dumps({"message": "Request Too Long"}).encode())
            return
        body = self.rfile.read(length)
        event = self._event(body)
        if event is None:
            return
        with self.site.invoking:
            self.site.events.append(event)
            request_id = event["requestContext"]["requestId"]
            context = FakeContext(aws_request_id=f"lambda-{request_id}")
            if event["resource"] in STREAMED:  # the streaming function, behind a STREAM integration
                response = handler.stream_handler(event, context)
                if isinstance(response, StreamedResponse):
                    self._stream(response, request_id)
                    return
            else:
                response = handler.lambda_handler(event, context)
        headers = dict(response.get("headers") or {})
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[name] = values[-1]
        headers["x-amzn-RequestId"] = request_id
        self._answer(int(response["statusCode"]), headers, str(response.get("body") or "").encode())

    def _stream(self, response: StreamedResponse, request_id: str) -> None:
        """A streamed answer: its head, then each chunk of its body as the function yields it."""
        self.send_response(response.status)
        for name, value in {**response.headers, "x-amzn-RequestId": request_id}.items():
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for chunk in response.body:
            self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _event(self, body: bytes) -> dict[str, Any] | None:
        """The function's event, or None when API Gateway itself answered (no method, no access)."""
        path = urlsplit(self.path).path
        match = _resource(self.command, path.removeprefix(f"/{STAGE}")) if path.startswith(f"/{STAGE}/") else None
        if match is None:
            self._answer(403, {}, _refusal("gateway_refused", "Missing Authentication Token"))
            return None
        try:
            token: str | None = bearer(self.headers.get("Authorization"))
        except InvalidToken:
            token = None
        authorizer = self.site.callers.get(token or "")
        if authorizer is None:
            self._answer(401, {}, _refusal("unauthorized", "Unauthorized"))
            return None
        resource, parameters = match
        return api_event(
            self.command,
            self.path,
            list(self.headers.items()),
            body,
            resource=resource,
            path_parameters=parameters,
            authorizer=authorizer,
            request_id=f"api-req-{next(self.site.ids):04d}",
        )

    def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        if not any(name.lower() == "content-type" for name in headers):
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_gateway(callers: Mapping[str, Mapping[str, str]]) -> Iterator[Served]:
    """Serve the gateway function on 127.0.0.1; ``callers`` maps an access token to the context
    the authorizer sets for it. The function's dependencies are whatever the test patched in."""
    site = _Site(callers)
    served = type("ApiGateway", (_ApiGateway,), {"site": site})
    with loopback(served) as url:
        yield Served(url=f"{url}/{STAGE}", events=site.events, invoking=site.invoking)


def _resource(method: str, path: str) -> tuple[str, dict[str, str] | None] | None:
    for (allowed, resource), pattern in RESOURCES.items():
        found = pattern.fullmatch(path)
        if found and allowed == method:
            return resource, found.groupdict() or None
    return None


def _refusal(code: str, message: str) -> bytes:
    """One of API Gateway's own refusals through the API's gateway-response template."""
    return json.dumps({"error": code, "message": message}).encode()
