"""Request bodies from API Gateway and Lambda function URLs, read as a hostile client sends them.

:func:`body_bytes` undoes the transport's base64 (strictly, only when the event says so) and
insists on UTF-8; a body that is neither raises :class:`BodyError` naming which, for the caller
to answer 4xx. :func:`json_bytes` also refuses a body of more values than any request needs
(counted on its bytes, before a parser builds them) and a JSON object or array larger than any
request needs, before a model's validation holds an error for each of its keys or items. Parse the
result with pydantic (``model_validate_json`` or ``from_json``), whose parser ends deep nesting,
huge numbers and NaN with a validation error: ``json.loads`` would raise RecursionError or
ValueError into a 500. :func:`problems` words a pydantic error by location and message only,
never echoing the input back, and bounded: listing every error of a model's validation could
answer with more than Lambda may return.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any, Final, NamedTuple

from pydantic import ValidationError
from pydantic_core import from_json

MAX_PROBLEMS = 10  # listed in an answer; the rest are counted
MAX_FIELD_CHARS = 64  # of a field's name in an answer: an unknown key's name is the caller's text
MAX_OBJECT_KEYS = 256  # of any one object in a JSON body (check_counts)
MAX_ARRAY_ITEMS = 1_000  # of any one array in a JSON body (check_counts)
MAX_ARGUMENT_DEPTH = 32  # of a tool call's arguments (check_arguments): a tool's schema is a few levels
# Of a whole JSON body, counted before it is parsed (check_values): a parser builds one Python object
# per value, and 6 MB of "[{},{},...]" is two million of them, over 200 MB.
MAX_VALUES = 250_000
# A JSON string, escapes included (the loop unrolled: linear, no backtracking), or one that never
# closes, to the end of the text: a match may not fail once started, or re.sub would scan from
# every quote to the end again (the square of the length: 18 s for 80 KB of \" pairs). Possessive
# (a match never gives back what it took, so the engine keeps no state to return to): with plain
# repeats it kept some per escape, about 90 bytes of memory per byte of a string of escapes (350 MB
# for 4 MB of "\a\a...", 17 MB now).
_STRING = re.compile(rb'"[^"\\]*+(?:\\.?[^"\\]*+)*+(?:"|\Z)', re.DOTALL)
# The most messages one conversation turn may carry: each of the gateway's routes, and the agent's
# body (the gateway sends it the request's messages). A long chat's history is resent whole every
# turn, and the gateway's session transcript checks only what is new, so it is the characters
# (the gateway's max_message_chars) that bound a request, not its turns.
MAX_MESSAGES: Final = 200


class BodyError(ValueError):
    """The body is not text a parser can read; the message says why ("body: not valid base64")."""


def body_bytes(body: str | None, base64_encoded: bool | None) -> bytes:
    """The body's bytes, valid UTF-8: base64-decoded strictly when the transport encoded it."""
    text = body or ""
    try:
        data = base64.b64decode(text, validate=True) if base64_encoded else text.encode()
    except UnicodeEncodeError:  # a lone surrogate: not text any client could have sent
        raise BodyError("body: not UTF-8 text") from None
    except ValueError:  # binascii.Error, or base64 text that is not ASCII
        raise BodyError("body: not valid base64") from None
    try:
        data.decode()
    except UnicodeDecodeError:
        raise BodyError("body: not UTF-8 text") from None
    return data


def json_bytes(
    body: str | None,
    base64_encoded: bool | None,
    *,
    max_keys: int = MAX_OBJECT_KEYS,
    max_items: int = MAX_ARRAY_ITEMS,
) -> bytes:
    """:func:`body_bytes` for a JSON body, refused (BodyError) when one of its objects or arrays
    holds more than a request ever needs (:func:`check_counts`). Text that is not JSON passes: the
    model's own validation names it."""
    data = body_bytes(body, base64_encoded)
    check_values(data)
    # An object's key takes at least four bytes ("":0), an array's item two (0,): a shorter body
    # cannot pass either bound.
    if len(data) >= min(4 * (max_keys + 1), 2 * (max_items + 1)):
        try:
            # The grammar model_validate_json reads, NaN and Infinity included (a float field refuses
            # them afterwards): a body the count could not read must be one the model cannot either.
            parsed = from_json(data, allow_inf_nan=True)
        except ValueError:
            return data
        check_counts(parsed, max_keys=max_keys, max_items=max_items)
    return data


def check_values(data: bytes, *, max_values: int = MAX_VALUES, whole: str = "body") -> None:
    """BodyError when the JSON text ``data`` holds more than ``max_values`` values, counted on the
    bytes (separators and containers outside strings) before anything is parsed, so a body of
    millions of tiny values is refused in bounded memory. Text that is not JSON is counted as if
    it were (its parse fails afterwards, or here when it is that large)."""
    if len(data) < 2 * max_values:  # every value but the last takes two bytes at least (0,)
        return
    bare = _STRING.sub(b'""', data)
    # Each comma starts one value more, and each object or array is a value: at least this many.
    values = max(bare.count(b",") + 1, bare.count(b"{") + bare.count(b"["))
    if values > max_values:
        raise BodyError(f"{whole}: holds at least {values} values; at most {max_values} are read")


def check_counts(
    value: Any,
    *,
    max_keys: int = MAX_OBJECT_KEYS,
    max_items: int = MAX_ARRAY_ITEMS,
    max_depth: int | None = None,
    whole: str = "body",
) -> None:
    """BodyError when an object anywhere in ``value`` (parsed JSON; ``whole`` names it in the
    message) has more than ``max_keys`` keys or an array more than ``max_items`` items, or (with
    ``max_depth``) objects and arrays nest deeper than that. pydantic holds an error for each
    unknown key of a model that forbids them, and for each wrong item of a list, until they are
    worded: a 6 MB body of unknown keys is 600,000 errors and more than half a gigabyte, past the
    function's memory, where Lambda ends it without an answer. No request this platform takes (nor
    any tool call's arguments) comes near either bound. Iterative: any depth is walked."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list) and max_depth is not None and depth > max_depth:
            raise BodyError(f"{whole}: objects and arrays nest deeper than {max_depth} levels")
        if isinstance(item, dict):
            if len(item) > max_keys:
                raise BodyError(f"{whole}: an object has {len(item)} keys; at most {max_keys} are read")
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            if len(item) > max_items:
                raise BodyError(f"{whole}: an array has {len(item)} items; at most {max_items} are read")
            pending.extend((child, depth + 1) for child in item)


def check_arguments(arguments: Any) -> None:
    """BodyError naming "arguments" when a tool call's ``arguments`` (parsed JSON) hold more than
    :func:`check_counts` reads, nest deeper than MAX_ARGUMENT_DEPTH (the encoding below recurses:
    what the event's parser took could end it in a RecursionError), or hold a text with a lone
    surrogate: JSON can escape half a surrogate pair ("\\ud800"), but no UTF-8 (so no URL, no tool
    target) can hold one. Both tools gateway interceptor and the tool functions call it before any
    model validates the arguments."""
    check_counts(arguments, max_depth=MAX_ARGUMENT_DEPTH, whole="arguments")
    try:
        json.dumps(arguments, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BodyError("arguments: a text holds a lone surrogate, not UTF-8 text") from None


# A location's first part where a model validated a request's body or path whole, not a field.
ENVELOPE = ("body", "path")


def field(loc: tuple[Any, ...], *, whole: str = "body", envelope: tuple[str, ...] = ENVELOPE) -> str:
    """ "messages.0.role" for a field; ``whole`` when the value itself is wrong (e.g. not JSON).
    A leading ``envelope`` part is not the field's (pass none where "body" or "path" can be a
    field's own name). At most MAX_FIELD_CHARS characters, cut with "…", each one that is not
    printable (an unknown key is the caller's text: a newline, an escape, a bidirectional
    override) shown as "?"."""
    parts = list(loc[1:] if loc and loc[0] in envelope else loc)
    return shown(".".join(map(str, parts)) if any(isinstance(part, str) for part in parts) else whole, MAX_FIELD_CHARS)


def clip(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """Text a caller or an upstream chose, as an answer or a log line may echo it: at most
    ``limit`` characters, the last one "…" where it was cut."""
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def shown(text: str, limit: int = 60) -> str:
    """A caller's value as a refusal names it (a model id): clipped, and every character that is
    not printable (controls, newlines, bidirectional overrides) shown as "?"."""
    return "".join(c if c.isprintable() else "?" for c in clip(text, limit))


class Problem(NamedTuple):
    field: str
    message: str  # pydantic's, which never quotes the input
    type: str  # pydantic's error type ("missing", "extra_forbidden", ...)


def first_problems(
    error: ValidationError, *, whole: str = "body", envelope: tuple[str, ...] = ENVELOPE
) -> tuple[list[Problem], int]:
    """The first MAX_PROBLEMS problems (fields named by ``field``), and how many there are in all."""
    details = error.errors(include_url=False, include_context=False, include_input=False)
    listed = [
        Problem(field(d["loc"], whole=whole, envelope=envelope), d["msg"], d["type"]) for d in details[:MAX_PROBLEMS]
    ]
    return listed, len(details)


def problems(error: ValidationError, *, whole: str = "body", envelope: tuple[str, ...] = ENVELOPE) -> str:
    """Each problem as "<field>: <message>" (pydantic's ``input`` would echo the caller's text),
    the first MAX_PROBLEMS of them and then how many more."""
    return worded(*first_problems(error, whole=whole, envelope=envelope))


def worded(listed: list[Problem], count: int) -> str:
    return listing([f"{problem.field}: {problem.message}" for problem in listed], count)


def listing(texts: list[str], count: int | None = None) -> str:
    """The first MAX_PROBLEMS of ``texts`` and then how many more (of ``count``, when ``texts`` is
    the first of them only): an answer's message stays short however much was wrong."""
    total = len(texts) if count is None else count
    shown = texts[:MAX_PROBLEMS]
    text = "; ".join(shown)
    return f"{text}; and {total - len(shown)} more" if total > len(shown) else text
