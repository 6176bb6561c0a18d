"""The asynchronous jobs' test world (tests/lambdas/test_jobs*.py, test_worker_exact.py): moto holds
the ledger (with its pending index) and the jobs table; botocore Stubbers stand in for Lambda's
asynchronous invoke and for Bedrock (the guardrail and Converse). ``world`` is registered for
every test in tests/lambdas/conftest.py."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger, Metrics
from botocore.stub import Stubber
from moto import mock_aws

from ai_gateway import jobs, worker
from ai_gateway.agents import AgentClient
from ai_gateway.flow import Clock, Flow, GenerationRequest
from ai_gateway.guardrail import Guard
from ai_gateway.jobs_contract import GatewayJobsSettings
from ai_gateway.ledger import Ledger
from ai_gateway.models import Caller
from ai_gateway.router import ModelRouter
from ai_gateway.telemetry import Telemetry
from tests.lambdas.gateway_fixtures import AGENT_POLICY, LITE, POLICY, PRO, TABLE, ledger_table

JOBS_TABLE = "jobs"
WORKER = "gateway-worker"
NOW = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)
GOLD = Caller(user="user-1", group="customer-gold")
SETTINGS = GatewayJobsSettings(
    jobs_table=JOBS_TABLE,
    worker_function=WORKER,
    worker_timeout_seconds=600,
    async_timeouts_seconds={"summary": 300},
)
MASKED = "<material>\nMail {EMAIL} about it.\n</material>\n\n<request>\nProduce the summary.\n</request>"
# What the summary job's output is checked against (its material, masked, and its request).
GROUNDING = ("Mail {EMAIL} about it.", "Produce the summary.")
# Past any job's finish-by time (its start window and the worker's timeout): no worker runs it.
PAST_FINISH_BY = NOW + dt.timedelta(seconds=SETTINGS.max_event_age_seconds + SETTINGS.worker_timeout_seconds + 1)


class Times:
    """The tests' clock: wall time and monotonic time, moved by hand."""

    def __init__(self) -> None:
        self.now = NOW
        self.monotonic = 1000.0

    def clock(self) -> Clock:
        return Clock(now=lambda: self.now, monotonic=lambda: self.monotonic)


@dataclass
class World:
    dynamodb: Any
    ledger: Ledger
    store: jobs.JobStore
    invoke: Stubber
    bedrock: Stubber
    jobs: jobs.Jobs
    times: Times
    flow: Flow

    def used(self, output_type: str = "summary") -> int:
        item = self.dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": f"QUOTA#customer-gold#{output_type}#2026-11"}})
        return int(item["Item"]["used"]["N"]) if "Item" in item else 0

    def status(self, request_id: str = "req-00000001") -> str:
        record = self.ledger.record(request_id, group=GOLD.group, user=GOLD.user)
        assert record is not None
        return str(record["status"]["S"])

    def item(self, job: str) -> dict[str, Any]:
        return dict(self.dynamodb.get_item(TableName=JOBS_TABLE, Key={"job_id": {"S": job}})["Item"])

    def runtime(self) -> worker.Runtime:
        return worker.Runtime(store=self.store, ledger=self.ledger, flow=lambda agents: self.flow)


def jobs_table(client: Any) -> None:
    client.create_table(
        TableName=JOBS_TABLE,
        AttributeDefinitions=[{"AttributeName": "job_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        dynamodb = ledger_table()
        jobs_table(dynamodb)
        ledger = Ledger(dynamodb, TABLE)
        store = jobs.JobStore(dynamodb, JOBS_TABLE)
        lambda_client = boto3.client("lambda", region_name="us-east-1")
        bedrock = boto3.client("bedrock-runtime", region_name="us-east-1")
        times = Times()
        flow = Flow(
            ledger=ledger,
            guard=Guard(bedrock, guardrail_id="gr-123", version="1"),
            models=ModelRouter(bedrock, attempt_seconds=20, clock=lambda: times.monotonic),
            agents=AgentClient("http://127.0.0.1:9", {}),
            telemetry=Telemetry(Metrics(), Logger()),
            clock=times.clock(),
        )
        with Stubber(lambda_client) as invoke, Stubber(bedrock) as stubbed:
            yield World(
                dynamodb,
                ledger,
                store,
                invoke,
                stubbed,
                jobs.Jobs(store, jobs.Worker(lambda_client, WORKER), SETTINGS, ledger),
                times,
                flow,
            )
            invoke.assert_no_pending_responses()
            stubbed.assert_no_pending_responses()


def a_request(output_type: str = "summary", request_id: str = "req-00000001", **changes: Any) -> GenerationRequest:
    policy = AGENT_POLICY if output_type == "report" else POLICY
    request = GenerationRequest(
        caller=GOLD,
        output_type=output_type,
        output=policy.outputs[output_type],
        quota=policy.groups["customer-gold"].quotas[output_type],
        models=[PRO, LITE],
        request_id=request_id,
        conversation="c" * 64,
        session=request_id,
        messages=[{"role": "user", "content": [{"text": MASKED}]}],
        deadline=1020.0,
        grounding=("Mail {EMAIL} about it.", "Produce the summary."),
    )
    return replace(request, **changes)


def expect_invoke(world: World, job: str) -> None:
    world.invoke.add_response(
        "invoke",
        {"StatusCode": 202},
        {"FunctionName": WORKER, "InvocationType": "Event", "Payload": json.dumps({"job_id": job}).encode()},
    )


def submit(
    world: World, request: GenerationRequest | None = None, sent: str | None = None
) -> tuple[int, dict[str, Any]]:
    return jobs.submit(
        request or a_request(),
        flow=world.flow,
        ledger=world.ledger,
        agents={"report_writer": "arn:aws:bedrock-agentcore:us-east-1:123456789012:runtime/rw"},
        clock=world.times.clock(),
        jobs=world.jobs,
        sent=sent,
    )


def submitted(world: World, request: GenerationRequest | None = None, sent: str | None = None) -> str:
    request = request or a_request()
    job = jobs.job_id(request.caller, request.request_id)
    expect_invoke(world, job)
    assert submit(world, request, sent)[0] == 202
    return job


def run(world: World, job: str, remaining: float = 900.0) -> str:
    return worker.run(job, remaining_seconds=remaining, runtime=world.runtime(), clock=world.times.clock())


class CapturingFlow:
    """A flow that records the request the worker completes, and fails it."""

    def __init__(self) -> None:
        self.requests: list[GenerationRequest] = []

    def complete(self, request: GenerationRequest, admission: Any, **_: Any) -> Any:
        self.requests.append(request)
        raise RuntimeError("boom")
