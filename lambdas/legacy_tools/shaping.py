"""Shaping upstream records for an agent: declared fields only, a page at a time, a byte budget."""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from shared.field_paths import value_at
from shared.tool_errors import ToolError

TRUNCATED = "truncated"
CLIPPED = "clipped"  # the fields of a record too large for its answer that were cut
NOTE = "note"
LEFT_OUT = "a record too large for this answer even with its values cut was left out"
CLIP_MARK = " [… truncated]"  # ends a text cut to fit (as web_fetch ends its text)
CURSOR_ALLOWANCE = 128  # bytes kept for the next cursor and the truncation marker


def project(record: Any, fields: Mapping[str, str]) -> dict[str, Any]:
    """{declared field: value at its path}, e.g. {"total": "pricing.totals.grand.amount"}.

    A path is dotted keys with [n] for list items (shared.field_paths); a missing value is None.
    """
    return {name: value_at(record, path) for name, path in fields.items()}


def encode_cursor(offset: int, query: Mapping[str, Any]) -> str:
    return _encoded(offset, _fingerprint(query))


def _encoded(offset: int, fingerprint: str) -> str:
    payload = json.dumps({"o": offset, "q": fingerprint}, separators=(",", ":"))
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
    # Exactly what encode_cursor writes: a forged 1e999 or Infinity is a float, never an offset;
    # and byte for byte (the decoder skips what is not base64, and JSON allows spaces and more keys).
    offset, fingerprint = (payload.get("o"), payload.get("q")) if isinstance(payload, dict) else (None, None)
    if isinstance(offset, bool) or not isinstance(offset, int) or not isinstance(fingerprint, str):
        raise not_ours
    if _encoded(offset, fingerprint) != cursor:
        raise not_ours
    if fingerprint != _fingerprint(query) or offset < 0:
        raise ToolError("invalid_argument", "cursor: belongs to a different query; start again without it")
    return offset


def _fingerprint(query: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(query, sort_keys=True, default=str).encode()).hexdigest()[:16]


def page(
    records: Sequence[Any],
    *,
    query: Mapping[str, Any],
    offset: int,
    top_k: int,
    byte_budget: int,
    shape: Callable[[Any], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Up to top_k records from offset, cut further to fit byte_budget, with the next cursor.
    ``shape`` makes a record of an upstream item (its projection): only the page's are shaped, so
    an answer of a million tiny items costs the items' list, not a million projections.

    The result says how many records exist, how many it returns, and, when the budget cut it
    short, that it was truncated: the next cursor always continues exactly where this page ended.
    A record too large for a page by itself (an upstream that put a megabyte in a declared field)
    comes alone, cut by ``fit``, with ``clipped`` naming the fields cut; one too large even then is
    left out with a ``note``, and the cursor goes past it. The answer never weighs more than
    byte_budget (compact JSON; the config's smallest budget, 512, holds any of these envelopes).
    """
    window = [shape(item) for item in records[offset : offset + top_k]] if shape else records[offset : offset + top_k]
    result: dict[str, Any] = {"total": len(records), "returned": 0, "records": []}
    # What is left for the records once the envelope (with the most it can return) and the
    # cursor's and truncation marker's allowance are counted.
    room = byte_budget - CURSOR_ALLOWANCE - _weight({**result, "returned": len(window)})
    kept: list[dict[str, Any]] = []
    left_out = 0
    for record in window:
        weight = _weight(record, room) + (1 if kept else 0)  # the "," between two records
        if weight <= room:
            kept.append(record)
            room -= weight
            continue
        result[TRUNCATED] = True
        if not kept:  # the page's first record: too large for any page, so cut (or left out) here
            fitted = fit(record, room)
            if fitted is None:
                left_out, result[NOTE] = 1, LEFT_OUT
            else:
                kept.append(fitted[0])
                result[CLIPPED] = fitted[1]
        break
    result["records"], result["returned"] = kept, len(kept)
    following = offset + len(kept) + left_out
    if following < len(records):
        result["next_cursor"] = encode_cursor(following, query)
    return result


def single(record: Mapping[str, Any], byte_budget: int) -> dict[str, Any]:
    """{"record": record} in at most byte_budget bytes: a record too large is cut by ``fit`` and the
    answer says so (``truncated``, ``clipped``); one too large even then is null, with a ``note``."""
    room = byte_budget - (_weight({"record": None, TRUNCATED: True}) - _weight(None))
    fitted = fit(record, room)
    if fitted is None:
        return {"record": None, TRUNCATED: True, NOTE: LEFT_OUT}
    shaped, clipped = fitted
    return {"record": shaped, TRUNCATED: True, CLIPPED: clipped} if clipped else {"record": shaped}


def fit(record: Mapping[str, Any], room: int) -> tuple[dict[str, Any], list[str]] | None:
    """The record in at most ``room`` bytes, with the names of the fields cut (their marker,
    ``,"clipped":[...]``, counted in the room); None when even every value cut does not fit.

    A record that fits is kept whole. Otherwise the fewest, largest values are cut: text to its
    start followed by CLIP_MARK, the cut values sharing what room is left; anything else (an
    object or a list where the declaration named a value) to null.
    """
    if _weight(record, room) <= room:
        return dict(record), []
    weights = {name: _weight(value, room) for name, value in record.items()}
    largest = sorted(weights, key=lambda name: weights[name], reverse=True)
    for count in range(1, len(largest) + 1):
        cut = largest[:count]
        shaped = {**record, **dict.fromkeys(cut)}
        spare = room - _weight(shaped, room) - len(f',"{CLIPPED}":') - _weight(cut, room)
        if spare < 0:
            continue
        texts = sorted((name for name in cut if isinstance(record[name], str)), key=lambda name: weights[name])
        for index, name in enumerate(texts):
            # Each cut text may take the null it replaces and its share of what is spare. (None
            # fits its share whole: the fewest cuts that fit leave each heavier than its share.)
            text = _clip(record[name], _weight(None) + spare // (len(texts) - index))
            if text is not None:
                shaped[name] = text
                spare -= _weight(text) - _weight(None)
        clipped = [name for name in record if name in cut and shaped[name] is not record[name]]
        return shaped, clipped
    return None


def _clip(text: str, limit: int) -> str | None:
    """The longest start of text that, ended with CLIP_MARK, weighs at most limit bytes as JSON."""
    if _weight(CLIP_MARK) > limit:
        return None
    low, high = 0, min(len(text), limit)  # a character weighs at least one byte
    while low < high:
        middle = (low + high + 1) // 2
        if _weight(text[:middle] + CLIP_MARK) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low] + CLIP_MARK


def _weight(value: Any, limit: int = sys.maxsize) -> int:
    """Bytes of value as compact JSON with ASCII escapes (never fewer than UTF-8 takes), exact up to
    limit and past it only some number above: a text of megabytes is never encoded, nor a large
    object walked, just to learn that it does not fit. (Depth is bounded by the client's parser.)"""
    if isinstance(value, str):
        # A character weighs at least one byte: a text longer than the limit is past it unencoded.
        return limit + 1 if len(value) > limit else len(json.dumps(value))
    if isinstance(value, dict):
        parts: Iterable[tuple[Any, Any] | Any] = value.items()
    elif isinstance(value, list | tuple):
        parts = value
    else:  # a number, true, false or null
        return len(json.dumps(value))
    total = 1  # the opening bracket or brace
    for index, part in enumerate(parts):
        total += 1 if index else 0  # ","
        if isinstance(value, dict):
            key, part = part
            total += _weight(str(key), limit - total) + 1  # ":"
        total += _weight(part, limit - total)
        if total > limit:
            return total
    return total + 1  # the closing one
