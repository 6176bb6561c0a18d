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
)
FUNCTION_URL: Final = Shape(
    required=(("rawPath",), ("requestContext", "http", "method")),
    optional={"headers": dict, "queryStringParameters": dict, "cookies": list, "body": str, "isBase64Encoded": bool},
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
    return None


def _refusal(why: str) -> dict[str, Any]:
    return {
        "statusCode": 400,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"error": "invalid_request", "message": f"not an HTTP request event: {why}"}),
        "isBase64Encoded": False,
    }
