"""The web tools' refusals: the tools' shared error taxonomy (shared.tool_errors) plus a short
``reason`` code naming what was wrong (e.g. ``address_not_allowed``, ``too_large``, ``timeout``,
``content_blocked``), so an agent and a test can tell refusals of the same kind apart. Messages
name the offending URL part, address or limit, never page content, and a host or address only of
the caller's own URL, never one the site chose (fetch.Checker.check)."""

from __future__ import annotations

from typing import Any

from shared.tool_errors import ErrorKind, ToolError


class WebError(ToolError):
    def __init__(self, kind: ErrorKind, reason: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(kind, message, retry_after=retry_after)
        self.reason = reason

    def result(self) -> dict[str, Any]:
        result = super().result()
        result["error"]["reason"] = self.reason
        return result


def invalid(reason: str, message: str) -> WebError:
    return WebError("invalid_argument", reason, message)


def forbidden(reason: str, message: str) -> WebError:
    return WebError("forbidden", reason, message)


def unavailable(reason: str, message: str, retry_after: int = 5) -> WebError:
    return WebError("upstream_unavailable", reason, message, retry_after=retry_after)
