"""The deployed entry points, through their decorators (issue: "Entry points").

Every function's ``lambda_handler`` is invoked as Lambda invokes it, twice in one container: keys
appended to its Powertools logger before the first invocation, or during it, must not reach the
second invocation's log lines (``clear_state``), or one caller's conversation or identity would
be logged against the next caller's. A refusal or error path stands in where the happy path needs
much of AWS; each path chosen writes at least one log line.

Then the token verifiers the functions build from their environment: each uses the function's
region, user pool and app client, as the stacks write them.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from botocore.stub import Stubber
from cryptography.hazmat.primitives.asymmetric import rsa

from account_settings import classification_job, handler as account_settings
from agent import app as agent
from agent.contract import Settings as AgentSettings
from ai_gateway import handler as ai_gateway, sweeper, worker
from ai_gateway.jobs_contract import SweeperSettings
from connector_pull import handler as connector_pull
from connector_pull.contract import Settings as PullSettings
from connector_push import handler as connector_push
from connector_push.contract import Settings as PushSettings
from evaluation import handler as evaluation
from gateway_authorizer import handler as gateway_authorizer
from ingestion import handler as ingestion, macie
from knowledge_search import handler as knowledge_search
from knowledge_search.contract import Settings as SearchSettings
from legacy_tools import handler as legacy_tools
from pre_token import handler as pre_token
from prototype_query import handler as prototype_query
from prototype_query.contract import Settings as QuerySettings
from shared.headers import CONVERSATION_HEADER
from shared.runtime_config import ConfigLocation, DocumentReader
from shared.telemetry import CONVERSATION
from shared.tokens import TokenVerifier
from tests.lambdas.cognito_fixtures import CLIENT_ID
from tests.lambdas.conftest import FakeClientContext, FakeContext, function_url_event
from tests.lambdas.gateway_fixtures import rest_event
from tests.lambdas.ingestion_corpus import LANDING
from tests.lambdas.ingestion_fixtures import Aws, batch, sqs_message
from tests.lambdas.test_connectors import SOURCE
from tests.lambdas.test_evaluation import subscription_event
from tests.lambdas.test_gateway_identity import (
    GROUPS,
    METHOD_ARN,
    POOL_CLIENT,
    POOL_ID,
    REGION,
    assert_verifies_only_its_pool,
    authorizer_verifier,
    fresh,
    pool_jwks,  # noqa: F401 - a fixture
    token_event,
)
from tests.lambdas.test_legacy_tools import configure as configure_legacy_tools
from tool_guard import handler as tool_guard
from tool_guard.contract import Settings as GuardSettings

Invoke = Callable[[FakeContext], Any]


@dataclass(frozen=True)
class EntryPoint:
    """A deployed function: its handler module and how a test invokes it (set up by ``prepare``)."""

    module: Any
    prepare: Callable[[pytest.MonkeyPatch, pytest.FixtureRequest], Invoke]
    appends: str | None = None  # a key the function itself appends for its caller, if any


# --- one minimal invocation per function -----------------------------------------------------


def _account_settings(_: pytest.MonkeyPatch, __: pytest.FixtureRequest) -> Invoke:
    # A stack deletion: the adopted setting is left as it is, nothing is called.
    event = {"RequestType": "Delete", "ResourceProperties": {"Setting": "macie"}}
    return lambda context: account_settings.lambda_handler(event, context)


def _classification_job(_: pytest.MonkeyPatch, __: pytest.FixtureRequest) -> Invoke:
    # The delete of a job never made (a create that failed first): nothing to cancel, nothing called.
    event = {"RequestType": "Delete", "ResourceProperties": {"Job": "{}"}}
    return lambda context: classification_job.lambda_handler(event, context)


def _ai_gateway(_: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    request.getfixturevalue("gateway")
    # No gateway group in the authorizer's context: refused (403) before any model is called.
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    return lambda context: ai_gateway.lambda_handler(
        rest_event("POST", "/v1/chat", chat, authorizer={}, request_id=context.aws_request_id), context
    )


def _ai_gateway_worker(_: pytest.MonkeyPatch, __: pytest.FixtureRequest) -> Invoke:
    # An event that names no job: ignored (and logged) before anything is read.
    return lambda context: worker.lambda_handler({"job_id": "../not-a-job"}, context)


def _ai_gateway_sweeper(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    ledger = request.getfixturevalue("gateway").ledger
    monkeypatch.setattr(sweeper, "settings", lambda: SweeperSettings(ledger_table="ledger", lifetimes_seconds=(29,)))
    monkeypatch.setattr(sweeper, "ledger", lambda: ledger)
    # Nothing admitted: the sweep finds no candidate.
    return lambda context: sweeper.lambda_handler({}, context)


def _connector_pull(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    aws: Aws = request.getfixturevalue("aws")
    settings = PullSettings(
        pull_source=SOURCE, landing_bucket=LANDING, registry_table="registry", dlq_url=aws.dlq_url, lease_seconds=360
    )
    monkeypatch.setattr(connector_pull, "settings", lambda: settings)
    # Another run holds the source's lease: this one ends without calling the source.
    connector_pull.Lease(aws.dynamodb.Table("registry"), SOURCE.name, seconds=360).acquire("a-run-in-progress")
    return lambda context: connector_pull.lambda_handler({}, context)


def _connector_push(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    aws: Aws = request.getfixturevalue("aws")
    settings = PushSettings(landing_bucket=LANDING, push_sources={"crm": "customer"}, registry_table="registry")
    monkeypatch.setattr(connector_push, "settings", lambda: settings)
    monkeypatch.setattr(connector_push, "s3", lambda: aws.s3)
    monkeypatch.setattr(connector_push, "registry", lambda: aws.dynamodb.Table("registry"))
    records = {"records": [{"id": "case-1", "body": "Customer wants a refund."}]}

    def invoke(context: FakeContext) -> Any:
        event = rest_event("POST", "/v1/records/crm", records, request_id=context.aws_request_id)
        return connector_push.lambda_handler({**event, "resource": "/v1/records/{source}"}, context)

    return invoke


def _evaluation(_: pytest.MonkeyPatch, __: pytest.FixtureRequest) -> Invoke:
    return lambda context: evaluation.lambda_handler(subscription_event(["not json"]), context)


def _gateway_authorizer(monkeypatch: pytest.MonkeyPatch, _: pytest.FixtureRequest) -> Invoke:
    verifier = TokenVerifier(issuer="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_pool", client_id=CLIENT_ID)
    monkeypatch.setattr(gateway_authorizer, "verifier", lambda: verifier)
    event = {"type": "TOKEN", "authorizationToken": "Bearer not a token", "methodArn": METHOD_ARN}

    def invoke(context: FakeContext) -> None:
        with pytest.raises(gateway_authorizer.Unauthorized):  # a 401, logged with its reason
            gateway_authorizer.lambda_handler(event, context)

    return invoke


def _ingestion(_: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    request.getfixturevalue("aws")
    # Not an S3 event: dead-lettered, the batch reports no failure.
    return lambda context: ingestion.lambda_handler(
        batch(sqs_message("not an event", message_id=f"m-{context.aws_request_id}")), context
    )


def _macie(_: pytest.MonkeyPatch, __: pytest.FixtureRequest) -> Invoke:
    return lambda context: macie.lambda_handler({"detail": {}}, context)  # an unusable finding: ignored


def _knowledge_search(monkeypatch: pytest.MonkeyPatch, _: pytest.FixtureRequest) -> Invoke:
    settings = SearchSettings(knowledge_base_id="KB12345678")
    monkeypatch.setattr(knowledge_search, "settings", lambda: settings)
    monkeypatch.setattr(knowledge_search, "client", lambda: None)  # never reached: the call is refused
    return lambda context: knowledge_search.lambda_handler({"query": "refunds"}, context)


def _legacy_tools(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    configure_legacy_tools(monkeypatch)
    request.addfinalizer(legacy_tools.settings.cache_clear)
    request.addfinalizer(legacy_tools.served.cache_clear)
    custom = FakeClientContext({"bedrockAgentCoreToolName": "orders___drop_tables"})  # not a tool: refused
    return lambda context: legacy_tools.lambda_handler({}, FakeContext(context.aws_request_id, client_context=custom))


def _pre_token(monkeypatch: pytest.MonkeyPatch, _: pytest.FixtureRequest) -> Invoke:
    monkeypatch.setattr(pre_token, "reader", lambda: DocumentReader.static(GROUPS))
    return lambda context: pre_token.lambda_handler(token_event(["customer-gold"]), context)


def _prototype_query(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Invoke:
    settings = QuerySettings(knowledge_base_id="KB12345678", generation_model_arn="arn:aws:bedrock:model")
    monkeypatch.setattr(prototype_query, "settings", lambda: settings)
    monkeypatch.setattr(prototype_query, "prompt", lambda: "Be brief.")  # the workload's, which its layer holds
    client = boto3.client("bedrock-agent-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.activate()
    request.addfinalizer(stubber.deactivate)
    clients = prototype_query.Clients(agent_runtime=client, kendra=None, bedrock=None)
    monkeypatch.setattr(prototype_query, "clients", lambda: clients)

    def invoke(context: FakeContext) -> Any:
        # Bedrock throttles: a JSON 429, the upstream failure logged.
        stubber.add_client_error("retrieve_and_generate", "ThrottlingException", http_status_code=429)
        return prototype_query.lambda_handler(function_url_event('{"question": "What is the refund policy?"}'), context)

    return invoke


def _tool_guard(monkeypatch: pytest.MonkeyPatch, _: pytest.FixtureRequest) -> Invoke:
    def unreadable() -> dict[str, frozenset[str]]:
        raise RuntimeError("the tool bindings could not be read")

    # The interceptor cannot read its bindings: it refuses (nothing passes unchecked) and logs why.
    monkeypatch.setattr(tool_guard, "allowed_tools", unreadable)
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    callers = iter([{CONVERSATION_HEADER: "conversation-of-the-first-caller"}])  # the next names none

    def invoke(context: FakeContext) -> Any:
        event = {"mcp": {"gatewayRequest": {"headers": next(callers, {}), "body": listing}}}
        return tool_guard.lambda_handler(event, context)

    return invoke


ENTRY_POINTS = {
    "account_settings": EntryPoint(account_settings, _account_settings),
    "account_settings.classification_job": EntryPoint(classification_job, _classification_job),
    "ai_gateway": EntryPoint(ai_gateway, _ai_gateway),
    "ai_gateway.sweeper": EntryPoint(sweeper, _ai_gateway_sweeper),
    "ai_gateway.worker": EntryPoint(worker, _ai_gateway_worker),
    "connector_pull": EntryPoint(connector_pull, _connector_pull),
    "connector_push": EntryPoint(connector_push, _connector_push),
    "evaluation": EntryPoint(evaluation, _evaluation),
    "gateway_authorizer": EntryPoint(gateway_authorizer, _gateway_authorizer),
    "ingestion": EntryPoint(ingestion, _ingestion),
    "ingestion.macie": EntryPoint(macie, _macie),
    "knowledge_search": EntryPoint(knowledge_search, _knowledge_search),
    "legacy_tools": EntryPoint(legacy_tools, _legacy_tools),
    "pre_token": EntryPoint(pre_token, _pre_token),
    "prototype_query": EntryPoint(prototype_query, _prototype_query),
    "tool_guard": EntryPoint(tool_guard, _tool_guard, appends=CONVERSATION),
}


def test_every_deployed_entry_point_is_listed() -> None:
    # The folder the handlers are imported from (lambdas/, or a copy of it under another name).
    functions = Path(next(iter(ENTRY_POINTS.values())).module.__file__ or "").parents[1]
    handlers = sorted(
        path.relative_to(functions).with_suffix("").as_posix()
        for path in functions.rglob("*.py")
        if "def lambda_handler(" in path.read_text(encoding="utf-8")
    )
    listed = sorted(entry.module.__name__.replace(".", "/") for entry in ENTRY_POINTS.values())
    assert listed == handlers


class AppendDuring(logging.Filter):
    """Appends a key to ``logger`` at the first line it writes (a key appended *during* an
    invocation, as the tool interceptor does with the caller's conversation)."""

    def __init__(self, logger: Logger) -> None:
        super().__init__()
        self.logger = logger

    def filter(self, record: logging.LogRecord) -> bool:
        self.logger.append_keys(appended_during="first-caller")
        return True


def log_lines(out: str) -> list[dict[str, Any]]:
    """The Powertools log lines among what was printed (EMF metric documents are not log lines)."""
    lines = []
    for text in out.splitlines():
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if isinstance(line, dict) and "level" in line and "message" in line:
            lines.append(line)
    return lines


@pytest.fixture
def logger_keys_restored() -> Iterator[None]:
    """Leaves the session's loggers with no key this test appended, whatever the outcome."""
    yield
    for entry in ENTRY_POINTS.values():
        entry.module.logger.remove_keys(["appended_before", "appended_during", CONVERSATION])


@pytest.mark.usefixtures("logger_keys_restored")
@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_keys_of_one_invocation_do_not_reach_the_next(
    name: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = ENTRY_POINTS[name]
    invoke = entry.prepare(monkeypatch, request)
    logger: Logger = entry.module.logger
    capsys.readouterr()

    logger.append_keys(appended_before="module-level")
    during = AppendDuring(logger)
    logger.addFilter(during)
    try:
        invoke(FakeContext("req-first"))
    finally:
        logger.removeFilter(during)
    first = log_lines(capsys.readouterr().out)
    assert any(line.get("appended_during") == "first-caller" for line in first), first  # the first logged
    if entry.appends is not None:  # the function's own key was on the first caller's lines
        assert any(entry.appends in line for line in first), first

    invoke(FakeContext("req-second"))
    second = log_lines(capsys.readouterr().out)
    assert any(line.get("function_request_id") == "req-second" for line in second), second
    for line in second:
        assert {"appended_before", "appended_during", CONVERSATION}.isdisjoint(line), line


# --- the token verifiers' wiring -------------------------------------------------------------

LOCATION = ConfigLocation(application="a", environment="e", profile="p", environment_name="tools")


def _authorizer_verifier(monkeypatch: pytest.MonkeyPatch) -> TokenVerifier:
    return authorizer_verifier(monkeypatch, REGION, POOL_ID, POOL_CLIENT)


def _tool_guard_verifier(monkeypatch: pytest.MonkeyPatch) -> TokenVerifier:
    environment = GuardSettings(bindings=LOCATION, user_pool_id=POOL_ID, client_id=POOL_CLIENT).environment()
    for name, value in {**environment, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(name, value)
    return fresh(tool_guard, monkeypatch)


def _agent_verifier(monkeypatch: pytest.MonkeyPatch) -> TokenVerifier:
    # The agent stack writes the issuer whole, from its region and the pool (stacks/production/agent.py).
    settings = AgentSettings(
        agent_name="support_assistant",
        tools_gateway_url="http://127.0.0.1:9/mcp",
        token_issuer=f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}",
        token_client_id=POOL_CLIENT,
        groups=LOCATION,
    )
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    return agent.service_from_environ().verifier


VERIFIERS: dict[str, Callable[[pytest.MonkeyPatch], TokenVerifier]] = {
    "gateway_authorizer": _authorizer_verifier,
    "tool_guard": _tool_guard_verifier,
    "agent": _agent_verifier,
}


@pytest.mark.parametrize("name", VERIFIERS)
def test_each_function_verifies_tokens_of_its_own_pool_and_client(
    name: str,
    signing_key: rsa.RSAPrivateKey,
    pool_jwks: list[str],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = VERIFIERS[name](monkeypatch)
    assert_verifies_only_its_pool(verifier, signing_key, pool_jwks, region=REGION, pool=POOL_ID, client=POOL_CLIENT)


def test_the_gateway_handlers_do_not_load_the_token_verifiers_libraries() -> None:
    # The gateway only reads the caller's bearer token to forward it to an agent: PyJWT and
    # cryptography (tens of milliseconds at every cold start) are the authorizer's.
    functions = Path(ai_gateway.__file__ or "").parents[1]
    probe = "import sys, ai_gateway.handler; print(sorted({'jwt', 'cryptography'} & set(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PYTHONPATH": str(functions)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"
