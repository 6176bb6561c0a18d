"""What API Gateway hands the gateway function in the benches: a REST proxy event as the gateway's
authorizer leaves it, and a Lambda context. No side effects on import (the critical-path bench
imports it while measuring another tree's code)."""

from __future__ import annotations

import json
from typing import Any

AUTHORIZER = {"user": "u", "group": "customer-gold", "tier": "gold", "kind": "customer"}


class Context:
    function_name = "bench"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def rest_event(number: int, method: str, path: str, body: Any) -> dict[str, Any]:
    """Request ``number`` (its request id) of ``method`` ``path`` with ``body`` as JSON (POST only)."""
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "pathParameters": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "requestId": f"bench-{number}",
            "stage": "live",
            "authorizer": AUTHORIZER,
        },
        "body": json.dumps(body) if method == "POST" else None,
        "isBase64Encoded": False,
    }
