"""Text another system wrote, made safe to put in front of an agent or a reader.

A web page (web_mcp) and an uploaded document (knowledge_search's excerpts) are both text someone
outside chose. Neither may carry C0 controls but tab and line feed (an escape sequence that
recolours or rewrites a terminal, a bell, NUL), DEL, C1 controls, or the bidirectional formatting
characters, whose overrides and isolates make text display as something it is not.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from shared.bodies import clip  # (every function importing this module loads shared.bodies anyway)

CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Half a surrogate pair: JSON can escape one ("\\ud800"), no UTF-8 can hold it. In a str, any is a lone one.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_encodable(text: str) -> str:
    """``text`` with each lone surrogate as U+FFFD, so that UTF-8 can encode it."""
    return LONE_SURROGATE.sub("\ufffd", text)


# A URI or a title another system answered, as a function returns it (an S3 URI is at most ~1,090).
MAX_LOCATOR_CHARS = 2_048


def locator_text(value: object) -> str | None:
    """A URI or a title another system answered, as a function returns it: text only (None for
    anything else), cut to MAX_LOCATOR_CHARS ("…" where cut: one of megabytes would pass Lambda's
    6 MB answer), and UTF-8 encodable."""
    return utf8_encodable(clip(value, MAX_LOCATOR_CHARS)) if isinstance(value, str) else None


def without_controls(text: str) -> str:
    """``text`` without control characters (tab and line feed kept)."""
    return CONTROLS.sub("", text)


def controls_encoded(locator: str) -> str:
    """A URL or an S3 URI with its control characters percent-encoded: still the same locator,
    but nothing in it changes how it displays."""
    return CONTROLS.sub(lambda match: quote(match.group()), locator)
