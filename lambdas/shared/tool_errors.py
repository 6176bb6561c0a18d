"""The small error taxonomy an agent can act on, shared by every MCP tool."""

from __future__ import annotations

from typing import Any, Literal

ErrorKind = Literal["not_found", "invalid_argument", "forbidden", "upstream_unavailable"]

# What an agent should do about each kind, said once so every tool says it the same way.
ADVICE: dict[str, str] = {
    "not_found": "Nothing matches; check the identifier or ask the user for another one.",
    "invalid_argument": "Fix the named argument and call the tool again.",
    "forbidden": "The service refused this request; do not retry, tell the user it is not allowed.",
    "upstream_unavailable": "The system behind this tool is unavailable; retry after retry_after seconds.",
}


class ToolError(Exception):
    def __init__(self, kind: ErrorKind, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after

    def result(self) -> dict[str, Any]:
        error: dict[str, Any] = {"kind": self.kind, "message": self.message, "advice": ADVICE[self.kind]}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"error": error}
