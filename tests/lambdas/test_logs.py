"""Every function's log lines reach CloudWatch whatever text they carry (lambdas/shared/logs.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType

import pytest
from botocore.exceptions import ClientError
from hypothesis import given, strategies as st

from agent import app as agent
from shared.aws_errors import failure_code
from shared.logs import log_unexpected, serialize
from tests.lambdas.test_entry_points import ENTRY_POINTS
from web_mcp import browse, fetch, guard, server

LOGGING_MODULES: dict[str, ModuleType] = {
    **{name: entry.module for name, entry in ENTRY_POINTS.items()},
    "agent": agent,
    "web_mcp.server": server,
    "web_mcp.fetch": fetch,
    "web_mcp.browse": browse,
    "web_mcp.guard": guard,
}


@given(st.dictionaries(st.text(), st.text() | st.integers() | st.lists(st.text())))
def test_a_record_is_one_utf8_json_line_with_its_values_kept(record: dict[str, object]) -> None:
    line = serialize(record)
    line.encode()  # any text at all, lone surrogates included
    assert "\n" not in line
    assert json.loads(line) == record


def test_text_stays_readable_unless_utf8_cannot_carry_it() -> None:
    assert serialize({"message": "café ✓"}) == '{"message":"café ✓"}'
    assert serialize({"message": "café \ud800"}) == '{"message":"caf\\u00e9 \\ud800"}'


@pytest.mark.parametrize("name", LOGGING_MODULES)
def test_each_function_logs_a_lone_surrogate_as_its_escape(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    logger = LOGGING_MODULES[name].logger
    capsys.readouterr()
    logger.warning("upstream said \ud83d", extra={"answer": "\udfff!"})
    out = capsys.readouterr().out
    out.encode()  # what Lambda's UTF-8 stdout takes
    lines = [json.loads(text) for text in out.splitlines() if text.startswith("{")]
    assert [(line["message"], line["answer"]) for line in lines] == [("upstream said \ud83d", "\udfff!")]


def function_lines(pattern: str, *, but: tuple[str, ...]) -> list[str]:
    """The lines of the functions' code (every file but ``but``) that match ``pattern``."""
    functions = Path(agent.__file__ or "").parents[1]
    return sorted(
        f"{path.relative_to(functions)}: {line.strip()}"
        for path in functions.rglob("*.py")
        if path.name not in but
        for line in path.read_text(encoding="utf-8").splitlines()
        if re.search(pattern, line)
    )


def test_every_function_logger_is_made_by_service_logger() -> None:
    """In one process (as here) loggers without a service name share one handler, so the test above
    cannot tell the modules apart; this one reads their source. A child logger uses its parent's."""
    assert function_lines(r"\bLogger\((?!child=True\))", but=("logs.py",)) == []


def _fails_quoting(secret: str) -> None:
    empty: dict[str, str] = {}
    try:
        empty[secret]  # a KeyError names the key
    except KeyError as error:
        raise ValueError(f"could not read {secret!r}") from error


def test_an_unexpected_error_is_logged_by_type_and_place_never_by_its_text(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "ada@example.com sk-live-123"
    try:
        _fails_quoting(secret)
    except ValueError as error:
        capsys.readouterr()
        log_unexpected(LOGGING_MODULES["ai_gateway"].logger, "unexpected error", error, route="/v1/chat")
    out = capsys.readouterr().out
    assert secret not in out
    assert "ada@example.com" not in out
    (line,) = [json.loads(text) for text in out.splitlines() if text.startswith("{")]
    assert (line["message"], line["level"], line["route"]) == ("unexpected error", "ERROR", "/v1/chat")
    assert (line["error_type"], line["caused_by"]) == ("ValueError", ["KeyError"])
    assert "_fails_quoting" in line["raised_at"]
    assert "test_logs.py" in line["raised_at"]
    assert "exception" not in line  # Powertools' formatted exception carries the message


def test_no_function_logs_an_exception_with_its_text() -> None:
    """logger.exception (and exc_info) write the exception's message; functions use log_unexpected.
    The runtime-config reader's warnings are AppConfig's errors, not a caller's text."""
    assert function_lines(r"\blogger\.exception\(|exc_info=", but=("runtime_config.py",)) == []


def test_a_failed_call_is_named_by_its_code_or_class_never_its_text() -> None:
    def client_error(code: object) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "s3://bucket/ada@example.com"}}, "GetObject")

    assert failure_code(client_error("NoSuchKey")) == "NoSuchKey"
    assert (
        failure_code(client_error("AWS.SimpleQueueService.NonExistentQueue"))
        == "AWS.SimpleQueueService.NonExistentQueue"
    )
    for odd in ("ada@example.com is not allowed", "", None, 5, "x" * 129):
        assert failure_code(client_error(odd)) == "ClientError"
    assert failure_code(ValueError("ada@example.com")) == "ValueError"
