"""The fields an HTTP function's resolver reads before any of its error handlers can answer.

API Gateway and Lambda function URLs always send them, with these types; an event without them,
or with another type (a misrouted or hand-made invocation, another payload version), made
Powertools raise a KeyError or TypeError out of the handler: a Lambda error, no JSON.
:func:`misshapen` answers such an event with a 400 instead, naming the field. Imports only the
standard library.
"""

from __future__ import annotations

import json
from typing import Any, Final, NamedTuple


class Shape(NamedTuple):
    required: tuple[tuple[str, ...], ...]  # paths into the event, each to a string
    optional: dict[str, type]  # top-level fields: absent, null or of this type
    texts: tuple[str, ...] = ()  # of the optional objects, those whose values are all text
    text_lists: tuple[str, ...] = ()  # of the optional objects and arrays, those holding text or arrays of text


REST_API: Final = Shape(
    required=(("httpMethod",), ("path",)),
    optional={
        "headers": dict,
        "multiValueHeaders": dict,
        "queryStringParameters": dict,
        "multiValueQueryStringParameters": dict,
        "pathParameters": dict,
        "body": str,
        "isBase64Encoded": bool,
    },
    texts=("headers", "queryStringParameters", "pathParameters"),
    text_lists=("multiValueHeaders", "multiValueQueryStringParameters"),
)
FUNCTION_URL: Final = Shape(
    # Powertools' path reads the stage ("$default" from a function URL) to strip it.
    required=(("rawPath",), ("requestContext", "http", "method"), ("requestContext", "stage")),
    optional={"headers": dict, "queryStringParameters": dict, "cookies": list, "body": str, "isBase64Encoded": bool},
    texts=("headers", "queryStringParameters", "cookies"),
)


KINDS: Final = {dict: "an object", list: "an array", str: "text", bool: "true or false"}


def misshapen(event: Any, shape: Shape) -> dict[str, Any] | None:
    """A 400 answer (the proxy integration's shape) when ``event`` is not of ``shape``; None when
    its resolver can read it."""
    if not isinstance(event, dict):
        return _refusal("the event is not an object")
    for path in shape.required:
        value: Any = event
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str):
            return _refusal(f"{'.'.join(path)} is missing or not text")
    for name, kind in shape.optional.items():
        if event.get(name) is not None and not isinstance(event[name], kind):
            return _refusal(f"{name} is not {KINDS[kind]}")
    return _untyped_values(event, shape)


def _untyped_values(event: dict[str, Any], shape: Shape) -> dict[str, Any] | None:
    """The refusal of an object (headers, parameters) holding a value that is not text, or an
    array of text where the source sends arrays; None when every value is (Powertools reads them
    as text: a number made a TypeError)."""
    for name in shape.texts:
        if not all(isinstance(item, str) for item in _items(event.get(name))):
            return _refusal(f"{name} holds a value that is not text")
    for name in shape.text_lists:
        values = _items(event.get(name))
        if not all(isinstance(item, list) and all(isinstance(i, str) for i in item) for item in values):
            return _refusal(f"{name} holds a value that is not an array of text")
    return None


def _items(value: dict[str, Any] | list[Any] | None) -> list[Any]:
    """An object's values or an array's items (misshapen has checked it is one or the other)."""
    if isinstance(value, dict):
        return list(value.values())
    return value or []


def _refusal(why: str) -> dict[str, Any]:
    return {
        "statusCode": 400,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"error": "invalid_request", "message": f"not an HTTP request event: {why}"}),
        "isBase64Encoded": False,
    }
