"""The tools gateway's interceptor grants a group's tools only to a token that comes with the AI
gateway's passage for it (shared.passage): a user calling the tools gateway directly with their own
token, past the AI gateway's quotas and guardrails, gets no tools."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from botocore.exceptions import ClientError

from shared.headers import TOOLS_PASSAGE_HEADER
from shared.passage import PassageChecker
from tests.lambdas.passage_fixtures import Passages
from tests.lambdas.test_tool_guard_hostile import (
    GROUP,
    OTHER,
    OWN,
    answer,
    auth,
    call,
    forwarded,
    interceptor,
    refused,
    request,
)
from tool_guard import handler as guard

__all__ = ["interceptor"]  # the fixture: the interceptor's bindings and verifier

LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


def listing(names: list[str]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": n, "inputSchema": {}} for n in names]}}


@pytest.fixture
def checked(passages: Passages, monkeypatch: pytest.MonkeyPatch) -> Passages:
    """The interceptor with a passage key configured, as a deployment has it."""
    monkeypatch.setattr(guard, "passages", lambda: passages.check)
    return passages


def with_passage(passages: Passages, group: str = GROUP) -> dict[str, str]:
    authorization = auth(group)
    return {"Authorization": authorization, TOOLS_PASSAGE_HEADER: passages.issue(authorization.removeprefix("Bearer "))}


def test_through_the_ai_gateway_a_caller_lists_and_calls_its_groups_tools(checked: Passages) -> None:
    headers = with_passage(checked)
    assert guard.caller_group(headers) == GROUP
    assert forwarded(request(call(OTHER), headers))["params"]["name"] == OTHER
    shown = answer(LIST, listing(OWN), headers)["result"]["tools"]
    assert [tool["name"] for tool in shown] == OWN


def logged(out: str) -> list[dict[str, Any]]:
    """The interceptor's log lines (Powertools' JSON on stdout), metric documents left out."""
    return [line for line in map(json.loads, out.splitlines()) if "message" in line]


def test_the_callers_own_token_without_a_passage_gets_no_tools(
    checked: Passages, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = {"Authorization": auth()}
    capsys.readouterr()
    assert guard.caller_group(headers) is None
    (line,) = logged(capsys.readouterr().out)
    user = jwt.decode(auth().removeprefix("Bearer "), options={"verify_signature": False})["sub"]
    assert (line["level"], line["message"], line["user"]) == ("INFO", "no tools: not through the AI gateway", user)
    assert refused(request(call(OTHER), headers))["error"]["code"] == -32001
    assert answer(LIST, listing(OWN), headers)["result"]["tools"] == []


@pytest.mark.parametrize(
    "passage",
    [
        lambda p: p.issue(auth("platform-admins").removeprefix("Bearer ")),  # another token's
        lambda p: "A" * 43,
        lambda p: "",
    ],
)
def test_a_passage_that_is_not_the_gateways_for_this_token_gets_no_tools(checked: Passages, passage: Any) -> None:
    headers = {"Authorization": auth(), TOOLS_PASSAGE_HEADER: passage(checked)}
    assert guard.caller_group(headers) is None
    assert refused(request(call(OTHER), headers))["error"]["code"] == -32001


def test_a_passage_header_given_twice_is_no_passage(checked: Passages) -> None:
    headers = with_passage(checked)
    headers[TOOLS_PASSAGE_HEADER.lower()] = headers[TOOLS_PASSAGE_HEADER]
    assert guard.caller_group(headers) is None


def test_kms_failing_is_no_passage_and_is_logged(
    checked: Passages, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = with_passage(checked)

    def throttled(token: str, passage: str | None) -> bool:
        raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "VerifyMac")

    monkeypatch.setattr(guard, "passages", lambda: throttled)
    capsys.readouterr()
    assert guard.caller_group(headers) is None
    first, *_ = logged(capsys.readouterr().out)
    # The failure's code, never its message (AWS's text can quote the request).
    assert (first["level"], first["message"], first["error"]) == (
        "WARNING",
        "passage not checked",
        "ThrottlingException",
    )
    assert "slow down" not in json.dumps(first)


def test_without_a_passage_key_configured_none_is_asked_for() -> None:
    """Tests of the interceptor's other rules, and a deployment before the key: the token decides."""
    guard.passages.cache_clear()
    try:
        assert guard.passages() is None
        assert guard.caller_group({"Authorization": auth()}) == GROUP
    finally:
        guard.passages.cache_clear()


def test_with_a_passage_key_configured_the_check_uses_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PASSAGE_KEY_ID", "arn:aws:kms:us-east-1:123456789012:key/k")
    guard.passages.cache_clear()
    try:
        check = guard.passages()
        assert isinstance(check, PassageChecker)
        assert check._key_id == "arn:aws:kms:us-east-1:123456789012:key/k"
    finally:
        guard.passages.cache_clear()
