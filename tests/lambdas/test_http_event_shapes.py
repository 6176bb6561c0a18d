"""The HTTP functions' entry points given an event their source never sends (a misrouted or
hand-made invocation, another payload version): a 400 naming the field, never an exception out
of the handler (Powertools read the missing field before any error handler could answer)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from ai_gateway import handler as ai_gateway
from connector_push import handler as connector_push
from connector_push.contract import PUSHES_REFUSED
from prototype_query import handler as prototype_query
from shared.http_events import FUNCTION_URL, REST_API, misshapen
from tests.lambdas.conftest import FakeContext, function_url_event
from tests.lambdas.gateway_fixtures import rest_event

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
REST_HANDLERS: dict[str, tuple[Handler, dict[str, Any]]] = {
    "ai_gateway": (ai_gateway.lambda_handler, rest_event("POST", "/v1/chat", {"messages": []})),
    "connector_push": (connector_push.lambda_handler, rest_event("POST", "/v1/records/crm", {"records": []})),
}


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(event)
    inner = changed
    for part in path[:-1]:
        inner = inner[part]
    del inner[path[-1]]
    return changed


def replaced(event: dict[str, Any], name: str, value: Any) -> dict[str, Any]:
    return {**copy.deepcopy(event), name: value}


def refusal(response: dict[str, Any]) -> str:
    assert response["statusCode"] == 400
    assert response["headers"]["Content-Type"] == "application/json"
    body = json.loads(response["body"])
    assert body["error"] == "invalid_request"
    return str(body["message"])


@pytest.mark.parametrize("name", sorted(REST_HANDLERS))
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: without(e, "httpMethod"), "httpMethod is missing or not text"),
        (lambda e: without(e, "path"), "path is missing or not text"),
        (lambda e: replaced(e, "httpMethod", 5), "httpMethod is missing or not text"),
        (lambda e: replaced(e, "headers", "x"), "headers is not an object"),
        (lambda e: replaced(e, "multiValueHeaders", ["x"]), "multiValueHeaders is not an object"),
        (lambda e: replaced(e, "queryStringParameters", 5), "queryStringParameters is not an object"),
        (lambda e: replaced(e, "body", {"records": []}), "body is not text"),
        (lambda e: replaced(e, "isBase64Encoded", "no"), "isBase64Encoded is not true or false"),
        (lambda e: replaced(e, "headers", {"Accept": 5}), "headers holds a value that is not text"),
        (
            lambda e: replaced(e, "multiValueHeaders", {"Accept-Encoding": [5]}),
            "multiValueHeaders holds a value that is not an array of text",
        ),
        (
            lambda e: replaced(e, "multiValueHeaders", {"Accept": "gzip"}),
            "multiValueHeaders holds a value that is not an array of text",
        ),
        (lambda e: replaced(e, "pathParameters", {"id": None}), "pathParameters holds a value that is not text"),
    ],
    ids=[
        "no-method",
        "no-path",
        "method-number",
        "headers-text",
        "mv-headers-list",
        "query-number",
        "body-object",
        "base64-text",
        "header-number",
        "mv-header-item-number",
        "mv-header-text",
        "path-parameter-null",
    ],
)
def test_a_rest_event_the_api_never_sends_is_a_400_naming_the_field(
    name: str, change: Callable[[dict[str, Any]], dict[str, Any]], message: str
) -> None:
    handler, event = REST_HANDLERS[name]
    assert refusal(handler(change(event), FakeContext())) == f"not an HTTP request event: {message}"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: without(e, "rawPath"), "rawPath is missing or not text"),
        (lambda e: without(e, "requestContext"), "requestContext.http.method is missing or not text"),
        (lambda e: without(e, "requestContext", "http"), "requestContext.http.method is missing or not text"),
        (lambda e: replaced(e, "requestContext", None), "requestContext.http.method is missing or not text"),
        (lambda e: without(e, "requestContext", "stage"), "requestContext.stage is missing or not text"),
        (
            lambda e: replaced(e, "requestContext", {**e["requestContext"], "stage": 5}),
            "requestContext.stage is missing or not text",
        ),
        (lambda e: replaced(e, "headers", []), "headers is not an object"),
        (lambda e: replaced(e, "cookies", "a=b"), "cookies is not an array"),
        (lambda e: replaced(e, "body", 5), "body is not text"),
        (lambda e: replaced(e, "headers", {"x-thing": 5}), "headers holds a value that is not text"),
        (lambda e: replaced(e, "cookies", ["a=b", 1]), "cookies holds a value that is not text"),
    ],
    ids=[
        "no-raw-path",
        "no-context",
        "no-http",
        "null-context",
        "no-stage",
        "stage-number",
        "headers-list",
        "cookies-text",
        "body-number",
        "header-number",
        "cookie-number",
    ],
)
def test_a_function_url_event_the_url_never_sends_is_a_400_naming_the_field(
    change: Callable[[dict[str, Any]], dict[str, Any]], message: str
) -> None:
    event = change(function_url_event(json.dumps({"question": "What is our refund policy?"})))
    assert refusal(prototype_query.lambda_handler(event, FakeContext())) == f"not an HTTP request event: {message}"


@pytest.mark.parametrize("event", [None, [], "x", 5])
def test_an_event_that_is_not_an_object_is_refused_by_either_shape(event: Any) -> None:
    for shape in (REST_API, FUNCTION_URL):
        assert refusal(misshapen(event, shape) or {}) == "not an HTTP request event: the event is not an object"


def test_the_events_the_sources_send_pass() -> None:
    for _, event in REST_HANDLERS.values():
        assert misshapen(event, REST_API) is None
        assert misshapen({**event, "headers": None, "body": None}, REST_API) is None  # a GET sends null
    assert misshapen(function_url_event("{}"), FUNCTION_URL) is None


def test_a_push_event_the_api_never_sends_is_counted_as_a_refused_push(capsys: pytest.CaptureFixture[str]) -> None:
    _, event = REST_HANDLERS["connector_push"]
    capsys.readouterr()
    refusal(connector_push.lambda_handler(without(event, "path"), FakeContext()))
    (document,) = [json.loads(line) for line in capsys.readouterr().out.splitlines() if PUSHES_REFUSED in line]
    assert document[PUSHES_REFUSED] in (1.0, [1.0])
