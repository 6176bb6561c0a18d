"""Reading the files a tool is pointed at, which may be missing, unreadable or not JSON: one clear
line naming the file and what is wrong, raised as the tool's own error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


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
    except RecursionError:  # json's decoder recurses once per level of nesting
        raise error(f"{name}: nested too deep to read (no file a tool reads nests beyond a few dozen levels)") from None
    except ValueError as failure:  # an integer of more digits than Python converts (4,300 by default)
        raise error(f"{name}: not readable JSON ({failure.args[0].split(';')[0]})") from None


def cdk_context(path: Path | None = None) -> dict[str, Any]:
    """cdk.json's context, as the CLI hands it to the app; a file that is missing, not JSON or
    whose ``context`` is not an object raises ConfigError naming it (every tool reports those)."""
    from stacks.config import ConfigError  # pydantic: only for the tools that read the config

    path = path or ROOT / "cdk.json"
    document = read_json(path, ConfigError, path.name)
    context = document.get("context", {}) if isinstance(document, dict) else None
    if not isinstance(context, dict):
        raise ConfigError(f'{path.name}: expected an object with a "context" object')
    return context
