"""Reading a value out of a nested JSON record by a path like ``pricing.totals.grand.amount``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from shared.meaning import Meaning

# Dotted keys, each optionally indexed: "pricing.totals.grand.amount", "addresses[0].city".
FIELD_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?)*$"
# Long enough for any record a legacy API answers; bounded so that paths cannot fill a function's
# 4 KB of environment (synth would name a function, not the key) nor carry an index int() refuses.
MAX_FIELD_PATH_CHARS = 256
FieldPath = Annotated[
    str,
    Field(pattern=FIELD_PATH_PATTERN, max_length=MAX_FIELD_PATH_CHARS),
    Meaning("a field path such as pricing.totals.grand.amount or addresses[0].city"),
]

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def value_at(value: Any, path: str) -> Any:
    """Dotted keys with ``[n]`` for list items; a missing value is None, never an error."""
    for key, index in _STEP.findall(path):
        if key and isinstance(value, Mapping):
            value = value.get(key)
        elif index and isinstance(value, Sequence) and not isinstance(value, str) and int(index) < len(value):
            value = value[int(index)]
        else:
            return None
    return value
