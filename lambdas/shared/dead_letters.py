"""Dead-letter message bodies that SQS takes: JSON at one UTF-8 byte sequence per character, and a
body too large for a message (its reason attribute beside it) cut to its first bytes with its size,
so that what could not be processed can always be dead-lettered with its reason. Imports only the
standard library."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

# An SQS message holds 256 KiB, its attributes included: a dead letter's body stays well below.
MAX_DEAD_LETTER_BYTES = 200 * 1024
# What an SQS message may not carry (it takes XML 1.0's characters) once json.dumps no longer
# escapes non-ASCII: lone surrogates (which UTF-8 cannot encode either) and U+FFFE, U+FFFF.
NOT_SQS_TEXT = re.compile("[\ud800-\udfff\ufffe\uffff]")


def sqs_json(value: Any) -> str:
    """JSON that SQS carries at one UTF-8 byte sequence per character (ensure_ascii would spell each
    non-ASCII character as 6 bytes); what SQS refuses stays a JSON escape."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return NOT_SQS_TEXT.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def fits(body: str) -> bool:
    """Whether ``body`` is at most MAX_DEAD_LETTER_BYTES (a lone surrogate counted as three bytes)."""
    return len(body.encode(errors="surrogatepass")) <= MAX_DEAD_LETTER_BYTES


def cut_to_fit(data: bytes, body: Callable[[str], str]) -> str:
    """``body(start)`` for the longest start of ``data`` (a character cut in two is dropped) with
    which it fits: JSON escapes what it carries again, so the start is cut until the body fits."""
    keep = MAX_DEAD_LETTER_BYTES - 1024  # room for what the body says beside it
    while True:
        text = body(data[:keep].decode(errors="ignore"))
        if fits(text):
            return text
        keep = keep * 3 // 4
