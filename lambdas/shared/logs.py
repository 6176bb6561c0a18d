"""Powertools loggers whose every line reaches CloudWatch.

Powertools writes log lines as JSON with non-ASCII characters as they are (``ensure_ascii=False``),
so a line reads as its text. But a request, an event or an upstream answer can carry a lone
surrogate (JSON escapes one: ``"\\ud800"``), which no UTF-8 stream can take: Lambda's stdout would
refuse the line, logging would print a traceback instead, and the line would be lost. Such a line is
written with JSON's escapes instead: the same JSON value, every character kept, nothing dropped.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from aws_lambda_powertools import Logger

RAISED_AT_FRAMES = 8  # the innermost frames of an unexpected error's traceback that are logged
# urllib3 (under botocore, the legacy client, the key fetch, the web tools) logs what it could not
# parse at WARNING, with the request's URL (whose query holds a caller's arguments: an e-mail, a
# cursor) and the upstream's own text, and the runtime writes every logger's warnings: only its
# errors (it logs none today) reach the logs. Every failure it meets is raised, and handled, anyway.
URLLIB3_LEVEL = logging.ERROR
logging.getLogger("urllib3").setLevel(URLLIB3_LEVEL)


def serialize(record: dict[str, Any]) -> str:
    """One log record as one JSON line that UTF-8 can carry."""
    text = json.dumps(record, default=str, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:  # a lone surrogate: written as its JSON escape
        return json.dumps(record, default=str, separators=(",", ":"))
    return text


def service_logger(service: str | None = None) -> Logger:
    """A function's Powertools logger (service from POWERTOOLS_SERVICE_NAME unless given) with
    :func:`serialize`. The first logger of a service sets its format: create it with this."""
    return Logger(service=service, json_serializer=serialize)


def log_unexpected(logger: Logger, message: str, error: BaseException, **extra: Any) -> None:
    """An error no code path expected, logged as its type and where it was raised (the last frames
    of its traceback: files, lines, code), never its text: an exception's message can quote what a
    caller or an upstream sent (a validation error repeats its input; a KeyError names the key)."""
    causes: list[str] = []
    cause = error.__cause__ or error.__context__
    while cause is not None and len(causes) < 5:
        causes.append(type(cause).__qualname__)
        cause = cause.__cause__ or cause.__context__
    logger.error(
        message,
        extra={
            **extra,
            "error_type": type(error).__qualname__,
            "raised_at": "".join(traceback.format_tb(error.__traceback__, limit=-RAISED_AT_FRAMES)),
            **({"caused_by": causes} if causes else {}),
        },
    )
