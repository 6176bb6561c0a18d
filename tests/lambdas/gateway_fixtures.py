"""Shared set-up for the AI gateway tests: a config of their own, moto ledger, stubbed Bedrock.

The gateway tests run against CONFIG below, not cdk.json: a group, agent or output type a platform
engineer adds to the deployment changes none of their expectations. Its names are the sample's, so
the tests read like the deployment; its values are the tests' own. Whether the policy written for
the config in use is one the gateway reads is tested against that config (test_ai_gateway.py).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from ai_gateway import handler
from ai_gateway.agents import AgentClient
from ai_gateway.contract import Settings
from ai_gateway.flow import Clock
from ai_gateway.guardrail import Guard
from ai_gateway.ledger import (
    PENDING_INDEX,
    PENDING_KEY,
    PENDING_PROJECTION,
    PENDING_SORT_KEY,
    Admission,
    Ledger,
    Usage,
)
from ai_gateway.models import GatewayPolicy
from shared.runtime_config import ConfigLocation
from stacks.config import ProductionConfig, load_config
from stacks.production.policy import gateway_policy
from tests.lambdas.bedrock_fakes import StreamStubber, converse_answer

TABLE = "ledger"
GUARDRAIL = {"guardrailIdentifier": "gr-123", "guardrailVersion": "1"}
# The function's environment, as its stack writes it (the clients below stand in for AWS).
SETTINGS = Settings(
    ledger_table=TABLE,
    guardrail_id="gr-123",
    guardrail_version="1",
    policy=ConfigLocation(application="app1", environment="env1", profile="prof1", environment_name="gateway"),
)
USAGE = {
    "topicPolicyUnits": 1,
    "contentPolicyUnits": 1,
    "wordPolicyUnits": 0,
    "sensitiveInformationPolicyUnits": 1,
    "sensitiveInformationPolicyFreeUnits": 0,
    "contextualGroundingPolicyUnits": 0,
}
PASS = {"usage": USAGE, "action": "NONE", "outputs": [], "assessments": [{}]}
GOLD = {"user": "user-1", "group": "customer-gold", "tier": "gold", "kind": "customer"}


BLOCKED_TOPIC = {
    "usage": USAGE,
    "action": "GUARDRAIL_INTERVENED",
    "outputs": [{"text": "This request can't be processed under the usage policy."}],
    "assessments": [{"topicPolicy": {"topics": [{"name": "Investment advice", "type": "DENY", "action": "BLOCKED"}]}}],
}


def anonymized(text: str, entity: str = "EMAIL", *, found: dict[str, str] | None = None) -> dict[str, Any]:
    """The guardrail's answer when it masked ``found`` (matched text -> entity type; by default one
    ``entity`` whose match is "x") and gave back ``text``."""
    entities = [
        {"match": match, "type": kind, "action": "ANONYMIZED"} for match, kind in (found or {"x": entity}).items()
    ]
    return {
        "usage": USAGE,
        "action": "GUARDRAIL_INTERVENED",
        "outputs": [{"text": text}],
        "assessments": [{"sensitiveInformationPolicy": {"piiEntities": entities, "regexes": []}}],
    }


PRO, LITE, MICRO = "amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0"
# The production config of the gateway tests: an internal group and a gold and a basic customer
# group; chat and report produced by an agent each, summary by a model. Only what the gateway and
# the config's own checks read; the sandbox is there because every config has one.
GATEWAY_CONFIG: dict[str, Any] = {
    "prefix": "gwtest",
    "sandbox": {"expires_on": "2030-01-01", "budget": {"monthly_limit_usd": 10, "alert_emails": ["t@example.com"]}},
    "production": {
        "output_types": {
            "chat": {"unit_price_usd": 0.002, "max_tokens": 1000, "instructions": "Answer briefly and accurately."},
            "summary": {"unit_price_usd": 0.05, "max_tokens": 800, "instructions": "Summarize: key points first."},
            "report": {"unit_price_usd": 0.5, "max_tokens": 4000, "instructions": "Write a structured report."},
        },
        "groups": {
            "platform-admins": {
                "kind": "internal",
                "tier": "internal",
                "precedence": 0,
                "usage_plan": {"rate_limit": 50, "burst_limit": 100, "quota_limit": 100_000},
                "models": {"allowed": [PRO, LITE, MICRO], "default": PRO, "fallbacks": [LITE]},
                "output_quotas": {"chat": {"limit": 1000}},
                "tools": ["knowledge_search"],
                "data_classifications": ["public", "internal"],
            },
            "customer-gold": {
                "kind": "customer",
                "tier": "gold",
                "precedence": 10,
                "usage_plan": {"rate_limit": 10, "burst_limit": 20, "quota_limit": 10_000},
                "models": {"allowed": [PRO, LITE], "default": PRO, "fallbacks": [LITE]},
                "output_quotas": {"chat": {"limit": 20_000}, "summary": {"limit": 1000}, "report": {"limit": 200}},
                "tools": ["knowledge_search"],
                "data_classifications": ["public"],
            },
            "customer-basic": {
                "kind": "customer",
                "tier": "basic",
                "precedence": 20,
                "usage_plan": {"rate_limit": 2, "burst_limit": 5, "quota_limit": 1000},
                "models": {"allowed": [LITE, MICRO], "default": LITE, "fallbacks": [MICRO]},
                "output_quotas": {"chat": {"limit": 2000}, "summary": {"limit": 100, "period": "DAY"}},
                "tools": ["knowledge_search"],
                "data_classifications": ["public"],
            },
        },
        "agents": {
            "support_assistant": {
                "description": "Answers questions.",
                "system_prompt": "Look facts up with the tools.",
                "output_types": ["chat"],
                "turn_seconds": 24,
            },
            "report_writer": {
                "description": "Writes reports.",
                "system_prompt": "Check claims with the tools.",
                "output_types": ["report"],
                "turn_seconds": 24,
            },
        },
        "ingestion": {"classifications": {"public": {}, "internal": {}}},
    },
}
CONFIG: ProductionConfig = load_config({"blueprint": GATEWAY_CONFIG}).production


# Bodies any client-facing function must refuse with a 4xx naming the problem (issue 14): the
# gateway's and the prototype query's fuzz tests and test_hostile_inputs.py send them.
DEEP = "[" * 100_000 + "]" * 100_000  # json.loads: RecursionError
DEEP_FIELD = '{"messages": ' + "[" * 5_000 + "]" * 5_000 + "}"
HUGE_INT = '{"question": ' + "9" * 5_000 + "}"  # int(): ValueError past 4,300 digits
HOSTILE_BODIES = {
    "deeply nested": DEEP,
    "deeply nested field": DEEP_FIELD,
    "huge integer": HUGE_INT,
    "huge integer alone": "9" * 5_000,
    "NaN": '{"question": NaN, "messages": NaN, "records": NaN}',
    "Infinity": "Infinity",
    "-Infinity field": '{"question": -Infinity, "records": [-Infinity]}',
    "a list": "[1, 2]",
    "a number": "3",
    "null": "null",
    "a lone surrogate": '{"question": "\ud800", "records": "\ud800"}',
    "empty": "",
}


def policy_document() -> dict[str, Any]:
    """The policy document the gateway stack writes for CONFIG (a fresh copy)."""
    return gateway_policy(CONFIG).model_dump(mode="json")


def models_only(document: dict[str, Any]) -> dict[str, Any]:
    """The same policy with every output type produced by a model directly (no agents)."""
    return {**document, "outputs": {name: {**o, "agent": None} for name, o in document["outputs"].items()}}


# Most gateway tests exercise the model path (routing, fallbacks); agent routing has its own.
POLICY = GatewayPolicy.model_validate(models_only(policy_document()))
AGENT_POLICY = GatewayPolicy.model_validate(policy_document())


def set_quota(
    monkeypatch: pytest.MonkeyPatch, output: str, limit: int, period: str, group: str = "customer-gold"
) -> None:
    """The gateway's (models-only) policy with ``group``'s quota for ``output`` at ``limit`` per ``period``."""
    document = models_only(policy_document())
    document["groups"][group]["quotas"][output] = {"limit": limit, "period": period}
    tight = GatewayPolicy.model_validate(document)
    monkeypatch.setattr(handler, "policy", lambda: tight)


def exhaust_daily_chat_quota(monkeypatch: pytest.MonkeyPatch, group: str = "customer-gold") -> None:
    """The gateway's policy with ``group``'s chat quota at 0 per day: every chat is a 429."""
    set_quota(monkeypatch, "chat", 0, "DAY", group)


def rest_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    authorizer: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    request_id: str = "api-req-1",
) -> dict[str, Any]:
    """An API Gateway REST proxy event as the gateway's Lambda authorizer leaves it."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": {"Content-Type": "application/json", **(headers or {})},
        "multiValueHeaders": {},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": method,
            "path": f"/v1{path}",
            "stage": "v1",
            "requestId": request_id,
            "accountId": "123456789012",
            "identity": {"sourceIp": "203.0.113.9"},
            "authorizer": authorizer if authorizer is not None else GOLD,
        },
        "body": raw,
        "isBase64Encoded": False,
    }


class AnsweringBedrock:
    """Bedrock answering at once: no guardrail intervention, a two-token reply."""

    def apply_guardrail(self, **_: Any) -> dict[str, Any]:
        return {"action": "NONE", "outputs": [], "assessments": []}

    def converse(self, **_: Any) -> dict[str, Any]:
        return {"output": {"message": {"content": [{"text": "Hi."}]}}, "usage": {"inputTokens": 5, "outputTokens": 2}}


class AnsweringLedger:
    """A ledger that admits everything at once (for fuzzing and overhead benchmarks)."""

    def admit(self, **kwargs: Any) -> Admission:
        resets = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
        return Admission(kwargs["request_id"], kwargs["units"], 1, kwargs["limit"], resets, False, "2026-12")

    def begin_delivery(self, *_: Any, **__: Any) -> None: ...

    def deliver(self, *_: Any, **__: Any) -> None: ...

    def release(self, *_: Any, **__: Any) -> None: ...

    def usage(self, *_: Any, **__: Any) -> list[Usage]:
        return []


def ledger_table() -> Any:
    """A DynamoDB client with the ledger's table as the gateway stack builds it (inside a moto
    mock): its key and the sweeper's pending index (the billing-export index is for readers)."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=TABLE,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": PENDING_KEY, "AttributeType": "S"},
            {"AttributeName": PENDING_SORT_KEY, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": PENDING_INDEX,
                "KeySchema": [
                    {"AttributeName": PENDING_KEY, "KeyType": "HASH"},
                    {"AttributeName": PENDING_SORT_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(PENDING_PROJECTION)},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return client


@dataclass
class Gateway:
    bedrock: Stubber
    ledger: Ledger


def stopped_clock(now: dt.datetime | None = None) -> Clock:
    """The gateway's clock in a test: its monotonic time stopped, so no deadline (a generation's,
    a fallback's) passes however busy the machine is; the wall time ``now`` when given."""
    if now is None:
        return Clock(monotonic=lambda: 1_000.0)
    return Clock(now=lambda: now, monotonic=lambda: 1_000.0)


@pytest.fixture
def gateway(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gateway]:
    with mock_aws():
        dynamodb = ledger_table()
        bedrock = boto3.client("bedrock-runtime", region_name="us-east-1")
        ledger = Ledger(dynamodb, TABLE)
        deps = handler.Dependencies(
            ledger=ledger,
            guard=Guard(bedrock, guardrail_id="gr-123", version="1"),
            bedrock=bedrock,
            agents=AgentClient("http://127.0.0.1:9", {}),  # no agents: POLICY routes none
        )
        monkeypatch.setattr(handler, "dependencies", lambda: deps)
        monkeypatch.setattr(handler, "policy", lambda: POLICY)
        monkeypatch.setattr(handler, "clock", stopped_clock())
        environment(monkeypatch)
        with StreamStubber(bedrock) as stubber:  # Stubber that also takes ConverseStream's events
            yield Gateway(bedrock=stubber, ledger=ledger)
            stubber.assert_no_pending_responses()
        handler.settings.cache_clear()


def model_only(bedrock: Any) -> handler.Dependencies:
    """The gateway's dependencies answered by ``bedrock`` and an answering ledger, no agent reachable
    (POLICY routes every output type to a model)."""
    return handler.Dependencies(
        ledger=AnsweringLedger(),  # type: ignore[arg-type]
        guard=Guard(bedrock, guardrail_id="g", version="1"),
        bedrock=bedrock,
        agents=AgentClient("http://127.0.0.1:9", {}),
    )


def environment(monkeypatch: pytest.MonkeyPatch, settings: Settings = SETTINGS) -> None:
    """The gateway function's environment from its settings; the handler reads it afresh."""
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    handler.settings.cache_clear()


def guard_input(stubber: Stubber, texts: list[str], response: dict[str, Any] = PASS) -> None:
    content = [{"text": {"text": t, "qualifiers": ["guard_content"]}} for t in texts]
    stubber.add_response("apply_guardrail", response, {**GUARDRAIL, "source": "INPUT", "content": content})


def guard_output(
    stubber: Stubber, text: str, response: dict[str, Any] = PASS, grounding: tuple[str, str] | None = None
) -> None:
    content: list[dict[str, Any]] = []
    if grounding:
        content += [
            {"text": {"text": grounding[0], "qualifiers": ["grounding_source"]}},
            {"text": {"text": grounding[1], "qualifiers": ["query"]}},
        ]
    content.append({"text": {"text": text, "qualifiers": ["guard_content"]}})
    stubber.add_response("apply_guardrail", response, {**GUARDRAIL, "source": "OUTPUT", "content": content})


def converse_ok(stubber: Stubber, model: str, text: str, expected: dict[str, Any] | None = None) -> None:
    from botocore.stub import ANY

    stubber.add_response(
        "converse",
        converse_answer([{"text": text}], input_tokens=50, output_tokens=20, latency_ms=100),
        expected or {"modelId": model, "system": ANY, "messages": ANY, "inferenceConfig": ANY},
    )
