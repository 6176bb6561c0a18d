"""Shaping upstream records for an agent: declared fields only, a page at a time, a byte budget."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from shared.field_paths import value_at
from shared.tool_errors import ToolError

TRUNCATED = "truncated"
CURSOR_ALLOWANCE = 128  # bytes kept for the next cursor and the truncation marker


def project(record: Any, fields: Mapping[str, str]) -> dict[str, Any]:
    """{declared field: value at its path}, e.g. {"total": "pricing.totals.grand.amount"}.

    A path is dotted keys with [n] for list items (shared.field_paths); a missing value is None.
    """
    return {name: value_at(record, path) for name, path in fields.items()}


def encode_cursor(offset: int, query: Mapping[str, Any]) -> str:
    payload = json.dumps({"o": offset, "q": _fingerprint(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, query: Mapping[str, Any]) -> int:
    """The offset a cursor points at; the cursor must come from the same query."""
    if not cursor:
        return 0
    not_ours = ToolError("invalid_argument", "cursor: not a cursor this tool returned")
    try:
        payload = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:  # not base64, not UTF-8, not JSON (or a number too long to convert)
        raise not_ours from None
    # Exactly what encode_cursor writes: a forged 1e999 or Infinity is a float, never an offset.
    offset, fingerprint = (payload.get("o"), payload.get("q")) if isinstance(payload, dict) else (None, None)
    if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(fingerprint, str):
        raise not_ours
    if fingerprint != _fingerprint(query) or offset < 0:
        raise ToolError("invalid_argument", "cursor: belongs to a different query; start again without it")
    return offset


def _fingerprint(query: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def page(
    records: Sequence[dict[str, Any]],
    *,
    query: Mapping[str, Any],
    offset: int,
    top_k: int,
    byte_budget: int,
) -> dict[str, Any]:
    """Up to top_k records from offset, cut further to fit byte_budget, with the next cursor.

    The result says how many records exist, how many it returns, and, when the budget cut it
    short, that it was truncated: the next cursor always continues exactly where this page ended.
    """
    window = list(records[offset : offset + top_k])
    result: dict[str, Any] = {"total": len(records), "returned": 0, "records": []}
    for record in window:
        candidate = [*result["records"], record]
        if result["records"] and _size({**result, "records": candidate}) + CURSOR_ALLOWANCE > byte_budget:
            result[TRUNCATED] = True
            break
        result["records"] = candidate
    result["returned"] = len(result["records"])
    following = offset + result["returned"]
    if following < len(records):
        result["next_cursor"] = encode_cursor(following, query)
    return result


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())
