"""The complete decision table, group x tool, through every layer that enforces it.

One map in config (groups.<name>.tools) is turned into Cedar permits for the gateway's policy
engine (evaluated here in-process with cedarpy) and into the interceptors' map; both must agree
with the config on every pair, and refuse unknown tools and unknown callers. The table is the
deployment's: the config the suite runs against (cdk.json's, or tests/variant_config.py's).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

import cedarpy
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.runtime_config import DocumentReader
from shared.tools import GROUP_ARGUMENT
from stacks.config import ConfigError, all_tools, load_config
from stacks.production.tool_binding import bindings, cedar_permits, classifications, qualified
from tests.lambdas.cognito_fixtures import pool_verifier, sign
from tests.variant_config import suite_context
from tool_guard import handler as guard
from tool_guard.contract import ToolBindings

CONFIG = load_config(suite_context()).production
BINDINGS = bindings(CONFIG)
CLASSIFICATIONS = classifications(CONFIG)
TARGETS = all_tools(CONFIG.legacy_apis)  # tool -> gateway target
KNOWN_TOOLS = sorted(qualified(target, tool) for tool, target in TARGETS.items())
# A tool no target has, on a target that exists; and a tool that exists, on a target that does not.
SOME_TOOL, SOME_TARGET = next(
    ((tool, target) for tool, target in TARGETS.items() if target in CONFIG.legacy_apis), next(iter(TARGETS.items()))
)
TOOLS = [*KNOWN_TOOLS, qualified(SOME_TARGET, "drop_tables"), qualified("shadow", SOME_TOOL)]
GROUPS = [*CONFIG.groups, "strangers"]
GATEWAY = "arn:aws:bedrock-agentcore:us-east-1:123456789012:gateway/genai-production-tools"
POLICIES = "\n".join(cedar_permits(BINDINGS, GATEWAY).values())
TABLE = [(group, tool, tool in BINDINGS.get(group, [])) for group, tool in itertools.product(GROUPS, TOOLS)]
# Each group's permitted (group, tool) pairs, read from the config itself rather than from BINDINGS.
PERMITTED = {(name, qualified(TARGETS[tool], tool)) for name, group in CONFIG.groups.items() for tool in group.tools}
SEARCH = qualified(TARGETS["knowledge_search"], "knowledge_search")
WEB_CALLS = {qualified(TARGETS[tool], tool) for tool in ("web_fetch", "web_browse")}


@pytest.fixture(autouse=True)
def interceptors(cognito: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    document = DocumentReader.static(ToolBindings(tool_bindings=BINDINGS, data_classifications=CLASSIFICATIONS))
    monkeypatch.setattr(guard, "bindings", lambda: document)
    guard.allowed_tools_view.cache_clear()
    verifier = pool_verifier(cognito[0])
    monkeypatch.setattr(guard, "verifier", lambda: verifier)
    yield
    guard.allowed_tools_view.cache_clear()


def cedar(group: str | None, tool: str) -> bool:
    tags = {"gateway_group": group} if group is not None else {}
    entities = [
        {"uid": {"type": "AgentCore::OAuthUser", "id": "user-1"}, "attrs": {}, "parents": [], "tags": tags},
        {"uid": {"type": "AgentCore::Gateway", "id": GATEWAY}, "attrs": {}, "parents": []},
    ]
    request = {
        "principal": 'AgentCore::OAuthUser::"user-1"',
        "action": f'AgentCore::Action::"{tool}"',
        "resource": f'AgentCore::Gateway::"{GATEWAY}"',
        "context": {"input": {}},
    }
    return cedarpy.is_authorized(request, POLICIES, entities).decision == cedarpy.Decision.Allow


def mcp_event(
    body: dict[str, Any], authorization: str | None, response: dict[str, Any] | None = None
) -> dict[str, Any]:
    headers = {"Accept": "application/json", "Mcp-Session-Id": "session-1"}
    if authorization is not None:
        headers["Authorization"] = authorization
    return interceptor_event(headers, body, response)


def interceptor_event(
    headers: dict[str, str], body: dict[str, Any], response: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The interceptor's input event for one request (and its answer, on the RESPONSE side)."""
    mcp: dict[str, Any] = {
        "rawGatewayRequest": {"body": json.dumps(body)},
        "gatewayRequest": {"path": "/mcp", "httpMethod": "POST", "headers": headers, "body": body},
    }
    if response is not None:
        mcp["gatewayResponse"] = response
    return {"interceptorInputVersion": "1.0", "mcp": mcp}


def call_passes(authorization: str | None, tool: str, arguments: dict[str, Any] | None = None) -> bool:
    body: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments or {}},
    }
    output = guard.intercept(mcp_event(body, authorization))
    assert output["interceptorOutputVersion"] == "1.0"
    if "transformedGatewayResponse" in output["mcp"]:
        refusal = output["mcp"]["transformedGatewayResponse"]["body"]
        assert refusal == {
            "jsonrpc": "2.0",
            "id": 7,
            "error": {"code": -32001, "message": f"tool {tool} is not available to this caller"},
        }
        return False
    passed = output["mcp"]["transformedGatewayRequest"]["body"]
    assert {**passed, "params": {**passed["params"], "arguments": {}}} == {
        **body,
        "params": {**body["params"], "arguments": {}},
    }
    return True


def listed(authorization: str | None) -> list[str]:
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    everything = {
        "statusCode": 200,
        "body": {"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": t, "description": "…"} for t in TOOLS]}},
    }
    output = guard.intercept(mcp_event(body, authorization, everything))
    response = output["mcp"]["transformedGatewayResponse"]
    assert response["statusCode"] == 200
    assert response["body"]["id"] == 3
    return [tool["name"] for tool in response["body"]["result"]["tools"]]


def token(key: rsa.RSAPrivateKey, issuer: str, group: str | None) -> str:
    return "Bearer " + sign(key, issuer, gateway_group=group)


def test_the_table_covers_every_group_and_tool() -> None:
    assert len(TABLE) == len(set(TABLE)) == len(GROUPS) * len(TOOLS)
    assert {(group, tool) for group, tool, allowed in TABLE if allowed} == PERMITTED
    assert PERMITTED
    assert len(PERMITTED) < len(TABLE)


@pytest.mark.parametrize(("group", "tool", "allowed"), TABLE)
def test_cedar_and_both_interceptors_agree_with_config(
    group: str, tool: str, allowed: bool, signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    authorization = token(signing_key, cognito[0], group)
    assert cedar(group, tool) is allowed
    assert call_passes(authorization, tool) is allowed
    assert (tool in listed(authorization)) is allowed


@pytest.mark.parametrize("group", GROUPS)
def test_tools_list_shows_exactly_the_groups_tools(
    group: str, signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    assert listed(token(signing_key, cognito[0], group)) == [t for t in TOOLS if t in BINDINGS.get(group, [])]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer not.a.jwt", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."],
)
def test_no_valid_token_means_no_tools(authorization: str | None) -> None:
    assert listed(authorization) == []
    assert not any(call_passes(authorization, tool) for tool in KNOWN_TOOLS)


def test_a_token_without_the_group_claim_gets_no_tools(
    signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    authorization = token(signing_key, cognito[0], None)
    assert listed(authorization) == []
    assert not any(call_passes(authorization, tool) for tool in KNOWN_TOOLS)
    assert not any(cedar(None, tool) for tool in KNOWN_TOOLS)


def test_a_forged_token_gets_no_tools(cognito: tuple[str, list[str]]) -> None:
    forged = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    group = max(CONFIG.groups, key=lambda name: len(BINDINGS.get(name, [])))  # the one with the most tools
    assert BINDINGS.get(group)
    assert listed(token(forged, cognito[0], group)) == []


def test_other_mcp_methods_pass_unchanged(signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}}
    assert guard.intercept(mcp_event(body, None)) == {
        "interceptorOutputVersion": "1.0",
        "mcp": {"transformedGatewayRequest": {"body": body}},
    }


def test_cedar_policies_are_one_permit_per_group_naming_its_tools() -> None:
    permits = cedar_permits(BINDINGS, GATEWAY)
    assert len(permits) == len({group for group, _ in PERMITTED})  # groups, not groups x tools
    assert all(statement.startswith("permit(") and "forbid" not in statement for statement in permits.values())
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", name) for name in permits)  # the service's name rule


def test_a_permit_too_long_for_the_service_is_refused_at_synth_naming_the_group() -> None:
    many = [qualified("catalog", f"get_item_with_a_long_name_{k:03d}") for k in range(200)]
    with pytest.raises(ConfigError, match=r"groups\.big\.tools: its Cedar permit would take about \d+ characters"):
        cedar_permits({"big": many}, GATEWAY)


def forwarded_arguments(authorization: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    output = guard.intercept(mcp_event(body, authorization))
    forwarded: dict[str, Any] = output["mcp"]["transformedGatewayRequest"]["body"]["params"]["arguments"]
    return forwarded


@pytest.mark.parametrize("group", [group for group in CONFIG.groups if (group, SEARCH) in PERMITTED])
def test_knowledge_search_gets_the_callers_classifications_whatever_the_agent_sent(
    group: str, signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    forged = {"query": "pricing", "data_classifications": ["confidential", "secret"]}
    arguments = forwarded_arguments(token(signing_key, cognito[0], group), SEARCH, forged)
    assert arguments == {"query": "pricing", "data_classifications": CLASSIFICATIONS[group]}


@pytest.mark.parametrize(("group", "tool"), sorted((g, t) for g, t in PERMITTED if t != SEARCH))
def test_other_tools_get_their_arguments_unchanged(
    group: str, tool: str, signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    """Every other tool's arguments pass as sent; a web tool's get the caller's group beside them."""
    arguments = {"customer_email": "ada@example.com", "customer_id": "C-1", "cursor": "abc"}
    expected = {**arguments, GROUP_ARGUMENT: group} if tool in WEB_CALLS else arguments
    assert forwarded_arguments(token(signing_key, cognito[0], group), tool, arguments) == expected


def test_tools_list_hides_the_arguments_the_gateway_writes(
    signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]
) -> None:
    schema = {
        "type": "object",
        "properties": {"query": {"type": "string"}, "data_classifications": {"type": "array"}},
        "required": ["query"],
    }
    body = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
    listed_tools = {
        "statusCode": 200,
        "body": {
            "jsonrpc": "2.0",
            "id": 3,
            "result": {"tools": [{"name": "knowledge___knowledge_search", "inputSchema": schema}]},
        },
    }
    searcher = next(group for group, tool in sorted(PERMITTED) if tool == SEARCH)
    output = guard.intercept(mcp_event(body, token(signing_key, cognito[0], searcher), listed_tools))
    (tool,) = output["mcp"]["transformedGatewayResponse"]["body"]["result"]["tools"]
    assert tool["inputSchema"] == {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
