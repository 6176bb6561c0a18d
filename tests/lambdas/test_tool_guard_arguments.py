"""Arguments the gateway writes (shared.tools.GATEWAY_ARGUMENTS): agents never see them, never set them.

Every name in GATEWAY_ARGUMENTS, read from the tuple itself: a tools/list answer of any shape the
gateway can send (an object, a string of JSON, SSE-framed events, a batch) shows it in no tool's
properties nor ``required`` list; a tools/call carrying an agent's value for it reaches the target
with the gateway's value (classifications from the caller's group, the conversation id from the
caller's conversation header) or without it; and no published tool schema requires it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, Field, create_model

from knowledge_search.contract import TOOL as SEARCH_TOOL
from shared.headers import CONVERSATION_HEADER
from shared.tools import (
    CLASSIFICATIONS_ARGUMENT,
    CONVERSATION_ARGUMENT,
    GATEWAY_ARGUMENTS,
    GROUP_ARGUMENT,
    WEB_FETCH,
    WEB_TARGET,
    ToolSpec,
    qualified,
)
from tests.lambdas.cognito_fixtures import sign
from tests.lambdas.test_tool_binding import (  # noqa: F401 - autouse: the sample bindings and the test pool's verifier
    BINDINGS,
    CLASSIFICATIONS,
    SEARCH,
    interceptors,
    mcp_event,
)
from tool_guard import handler as guard

# A group with knowledge search and at least one other tool.
GROUP = next(g for g, tools in sorted(BINDINGS.items()) if SEARCH in tools and len(tools) > 1)
OTHER = next(tool for tool in sorted(BINDINGS[GROUP]) if tool != SEARCH)
CONVERSATION = "conv-7f3a"
AGENT_VALUES: dict[str, Any] = {
    CLASSIFICATIONS_ARGUMENT: ["secret", "confidential"],
    CONVERSATION_ARGUMENT: "forged",
    GROUP_ARGUMENT: "platform-admins",
}
WEB = qualified(WEB_TARGET, WEB_FETCH)
LIST = {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}
GATEWAY = "<the gateway argument>"  # stands for the parametrized name in a case's required list


def test_every_gateway_argument_has_an_agent_value_here() -> None:
    # A name added to GATEWAY_ARGUMENTS must get a forged value (and a gateway value) below.
    assert set(AGENT_VALUES) == set(GATEWAY_ARGUMENTS)
    assert len(GATEWAY_ARGUMENTS) == len(set(GATEWAY_ARGUMENTS)) >= 2


@pytest.fixture
def headers(signing_key: rsa.RSAPrivateKey, cognito: tuple[str, list[str]]) -> dict[str, Any]:
    return {"Authorization": "Bearer " + sign(signing_key, cognito[0], gateway_group=GROUP)}


def intercept(body: Any, headers: dict[str, Any], response_body: Any = None) -> dict[str, Any]:
    response = None if response_body is None else {"statusCode": 200, "body": response_body}
    event = mcp_event({}, None, response)
    event["mcp"]["gatewayRequest"]["headers"] = headers
    event["mcp"]["gatewayRequest"]["body"] = body
    return guard.intercept(event)


def gateway_value(name: str, conversation: str | None) -> Any:
    """What the gateway writes for ``name`` for a caller of GROUP (absent: ``None``)."""
    return {
        CLASSIFICATIONS_ARGUMENT: CLASSIFICATIONS[GROUP],
        CONVERSATION_ARGUMENT: conversation,
        GROUP_ARGUMENT: None,
    }[name]


# tools/list


def schema_with(name: str) -> dict[str, Any]:
    """A tool schema as the gateway publishes it, with ``name`` among the properties and required."""
    return {
        "type": "object",
        "properties": {"query": {"type": "string"}, name: {"type": "string", "description": "set by the gateway"}},
        "required": ["query", name],
    }


def listing(name: str, answer_id: int = 3) -> dict[str, Any]:
    tools = [
        {"name": tool, "description": "…", "inputSchema": schema_with(name)} for tool in (SEARCH, OTHER, "shadow___x")
    ]
    return {"jsonrpc": "2.0", "id": answer_id, "result": {"tools": tools}}


def sse(*messages: Any) -> str:
    return "".join(f"event: message\ndata: {json.dumps(message)}\n\n" for message in messages)


def sse_data(text: str) -> list[Any]:
    return [json.loads(line.removeprefix("data: ")) for line in text.split("\n") if line.startswith("data: ")]


# Each case: (request body, response body for the name, reader of the listings out of the answer).
SHAPES: dict[str, tuple[Any, Any, Any]] = {
    "object": (LIST, listing, lambda body: [body]),
    "json string": (LIST, lambda name: json.dumps(listing(name)), lambda body: [json.loads(body)]),
    "sse": (LIST, lambda name: sse(listing(name)), sse_data),
    "sse batch": (
        [LIST, {**LIST, "id": 4}],
        lambda name: sse([listing(name), listing(name, 4)]),
        lambda body: [m for event in sse_data(body) for m in event],
    ),
    "batch": ([LIST, {**LIST, "id": 4}], lambda name: [listing(name), listing(name, 4)], lambda body: body),
    "batch with a call": (
        [{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": OTHER}}, LIST],
        lambda name: [{"jsonrpc": "2.0", "id": 1, "result": {"content": []}}, listing(name)],
        lambda body: body[1:],
    ),
}


@pytest.mark.parametrize("name", GATEWAY_ARGUMENTS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_a_tools_list_answer_never_shows_a_gateway_argument(name: str, shape: str, headers: dict[str, Any]) -> None:
    request_body, response_body, read = SHAPES[shape]
    output = intercept(request_body, headers, response_body(name))
    body = output["mcp"]["transformedGatewayResponse"]["body"]
    listings = read(body)
    assert listings
    for message in listings:
        tools = message["result"]["tools"]
        assert [tool["name"] for tool in tools] == [SEARCH, OTHER]  # the caller's, in order
        for tool in tools:
            assert tool["inputSchema"] == {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            }
            assert name not in json.dumps(tool)


@pytest.mark.parametrize("name", GATEWAY_ARGUMENTS)
@pytest.mark.parametrize("tool", [SEARCH, OTHER])
@pytest.mark.parametrize(
    ("required", "kept"),
    [
        (None, None),  # no required list: none added
        (GATEWAY, None),  # not a list: dropped
        ([], []),
        ([GATEWAY], []),
        ([GATEWAY, GATEWAY], []),
        (["query", GATEWAY, "max_results"], ["query", "max_results"]),
    ],
)
def test_a_required_list_loses_only_the_gateway_argument(
    name: str, tool: str, required: Any, kept: Any, headers: dict[str, Any]
) -> None:
    schema: dict[str, Any] = {"type": "object", "properties": {"query": {}, "max_results": {}, name: {}}}
    if required is not None:
        schema["required"] = [name if r is GATEWAY else r for r in required] if isinstance(required, list) else name
    answer = {"jsonrpc": "2.0", "id": 3, "result": {"tools": [{"name": tool, "inputSchema": schema, "title": "T"}]}}
    body = intercept(LIST, headers, answer)["mcp"]["transformedGatewayResponse"]["body"]
    (listed,) = body["result"]["tools"]
    expected = {"type": "object", "properties": {"query": {}, "max_results": {}}}
    if kept is not None:
        expected["required"] = kept
    assert listed == {"name": tool, "title": "T", "inputSchema": expected}


# tools/call


def forwarded_arguments(tool: str, arguments: dict[str, Any], headers: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    output = intercept(body, headers)
    passed = output["mcp"]["transformedGatewayRequest"]["body"]
    assert {**passed, "params": {**passed["params"], "arguments": None}} == {
        **body,
        "params": {**body["params"], "arguments": None},
    }
    result: dict[str, Any] = passed["params"]["arguments"]
    return result


@pytest.mark.parametrize("name", GATEWAY_ARGUMENTS)
@pytest.mark.parametrize("conversation", [CONVERSATION, None])
def test_a_search_gets_the_gateways_value_whatever_the_agent_sent(
    name: str, conversation: str | None, headers: dict[str, Any]
) -> None:
    if conversation is not None:
        headers[CONVERSATION_HEADER] = conversation
    arguments = forwarded_arguments(SEARCH, {"query": "pricing", name: AGENT_VALUES[name]}, headers)
    expected = gateway_value(name, conversation)
    if expected is None:
        assert name not in arguments  # no conversation header: no conversation id, whatever was sent
    else:
        assert arguments[name] == expected
    assert arguments["query"] == "pricing"
    assert arguments[CLASSIFICATIONS_ARGUMENT] == CLASSIFICATIONS[GROUP]


@pytest.mark.parametrize("conversation", [CONVERSATION, None])
def test_a_search_carries_exactly_the_agents_other_arguments_and_the_gateways(
    conversation: str | None, headers: dict[str, Any]
) -> None:
    if conversation is not None:
        headers[CONVERSATION_HEADER.lower()] = conversation  # header names in any case
    sent = {"query": "pricing", "max_results": 3, **AGENT_VALUES}
    expected = {"query": "pricing", "max_results": 3, CLASSIFICATIONS_ARGUMENT: CLASSIFICATIONS[GROUP]}
    if conversation is not None:
        expected[CONVERSATION_ARGUMENT] = conversation
    assert forwarded_arguments(SEARCH, sent, headers) == expected


@pytest.mark.parametrize("header_value", ["", ["conv-1"], None])
def test_an_empty_or_unreadable_conversation_header_writes_no_conversation_id(
    header_value: Any, headers: dict[str, Any]
) -> None:
    headers[CONVERSATION_HEADER] = header_value
    arguments = forwarded_arguments(SEARCH, {"query": "q", CONVERSATION_ARGUMENT: "forged"}, headers)
    assert arguments == {"query": "q", CLASSIFICATIONS_ARGUMENT: CLASSIFICATIONS[GROUP]}


@pytest.mark.parametrize("name", GATEWAY_ARGUMENTS)
@pytest.mark.parametrize("conversation", [CONVERSATION, None])
def test_another_tool_never_gets_a_gateway_argument_from_an_agent(
    name: str, conversation: str | None, headers: dict[str, Any]
) -> None:
    """No other tool takes one: the agent's value is dropped, nothing is written in its place."""
    if conversation is not None:
        headers[CONVERSATION_HEADER] = conversation
    sent = {"customer_id": "C-1", name: AGENT_VALUES[name]}
    assert forwarded_arguments(OTHER, sent, headers) == {"customer_id": "C-1"}


def test_another_tool_without_gateway_arguments_gets_its_arguments_unchanged(headers: dict[str, Any]) -> None:
    headers[CONVERSATION_HEADER] = CONVERSATION
    sent = {"customer_id": "C-1", "cursor": None, "nested": {CLASSIFICATIONS_ARGUMENT: ["x"]}}
    assert forwarded_arguments(OTHER, sent, headers) == sent  # only top-level arguments are the gateway's


def test_gateway_arguments_are_written_per_message_of_a_batch(headers: dict[str, Any]) -> None:
    headers[CONVERSATION_HEADER] = CONVERSATION
    batch: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool, "arguments": dict(AGENT_VALUES)}}
        for n, tool in enumerate([SEARCH, OTHER, SEARCH])
    ]
    passed = intercept(batch, headers)["mcp"]["transformedGatewayRequest"]["body"]
    written = {CLASSIFICATIONS_ARGUMENT: CLASSIFICATIONS[GROUP], CONVERSATION_ARGUMENT: CONVERSATION}
    assert [message["params"]["arguments"] for message in passed] == [written, {}, written]
    assert batch[0]["params"]["arguments"] == AGENT_VALUES  # the request itself is not altered


# ToolSpec


@pytest.mark.parametrize("name", GATEWAY_ARGUMENTS)
def test_a_tool_spec_never_requires_a_gateway_argument(name: str) -> None:
    fields: dict[str, Any] = {"query": (str, Field(description="q")), name: (str, Field(description="gateway"))}
    model: type[BaseModel] = create_model("Declared", **fields)
    assert model.model_json_schema()["required"] == ["query", name]  # pydantic requires it...
    schema = ToolSpec(name="t", description="d", arguments=model).input_schema()
    assert schema["required"] == ["query"]  # ...the published schema does not
    assert schema["properties"][name] == {"type": "string", "description": "gateway"}  # still declared


@pytest.mark.parametrize("name", [CLASSIFICATIONS_ARGUMENT, CONVERSATION_ARGUMENT])
def test_knowledge_search_declares_each_gateway_argument_and_requires_none(name: str) -> None:
    schema = SEARCH_TOOL.input_schema()
    assert name in schema["properties"]  # known to the policy engine's schema
    assert name not in schema["required"]
    assert "query" in schema["required"]


# The web tools: the caller's group, written by the gateway


def test_a_web_call_gets_the_callers_group_over_the_agents_and_no_other_gateway_argument(
    headers: dict[str, Any],
) -> None:
    assert WEB in BINDINGS[GROUP]  # the sample config binds web_fetch to this group
    headers[CONVERSATION_HEADER] = CONVERSATION
    sent = {"url": "https://docs.aws.amazon.com/", "max_chars": 500, **AGENT_VALUES}
    assert forwarded_arguments(WEB, sent, headers) == {
        "url": "https://docs.aws.amazon.com/",
        "max_chars": 500,
        GROUP_ARGUMENT: GROUP,
    }


def test_a_web_call_without_arguments_still_names_the_callers_group(headers: dict[str, Any]) -> None:
    assert forwarded_arguments(WEB, {}, headers) == {GROUP_ARGUMENT: GROUP}


def test_the_web_tools_declare_the_group_argument_and_require_none_of_the_gateways() -> None:
    from web_mcp.contract import WEB_TOOLS

    for spec in WEB_TOOLS:
        schema = spec.input_schema()
        assert GROUP_ARGUMENT in schema["properties"]
        assert not set(schema["required"]) & set(GATEWAY_ARGUMENTS)
        assert "url" in schema["required"]
