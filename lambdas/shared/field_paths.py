"""Reading a value out of a nested JSON record by a path like ``pricing.totals.grand.amount``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field

from shared.meaning import Meaning

# Dotted keys, each optionally indexed: "pricing.totals.grand.amount", "addresses[0].city".
FIELD_PATH_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?(\.[A-Za-z_][A-Za-z0-9_]*(\[\d+\])?)*$"
FieldPath = Annotated[
    str,
    Field(pattern=FIELD_PATH_PATTERN),
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
