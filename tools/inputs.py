"""Reading the files a tool is pointed at, which may be missing, unreadable or not JSON: one clear
line naming the file and what is wrong, raised as the tool's own error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(path: Path, error: type[Exception], shown: str | None = None) -> Any:
    """``path``'s JSON document, or ``error`` whose message names the file (as ``shown``, by
    default the path) and why it cannot be read."""
    name = shown if shown is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{name}: no such file") from None
    except (OSError, UnicodeDecodeError) as failure:
        raise error(f"{name}: cannot be read ({failure})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as failure:
        raise error(f"{name}: not JSON ({failure.msg}, line {failure.lineno})") from None
