"""The AI gateway's asynchronous outputs and its ledger sweeper (lambdas/ai_gateway/jobs.py,
worker.py, sweeper.py; their settings: lambdas/ai_gateway/jobs_contract.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aws_cdk import (
    Duration,
    RemovalPolicy,
    aws_apigateway as apigateway,
    aws_bedrock as bedrock,
    aws_dynamodb as dynamodb,
    aws_events as events,
    aws_events_targets as targets,
    aws_iam as iam,
    aws_lambda as lambda_,
)
from constructs import Construct

from ai_gateway.contract import GENERATION_MARGIN_SECONDS
from ai_gateway.jobs_contract import (
    LAMBDA_MAX_TIMEOUT_SECONDS,
    TTL_ATTRIBUTE,
    WORKER_MAX_EVENT_AGE_SECONDS,
    WORKER_RETRY_ATTEMPTS,
    GatewayJobsSettings,
    SweeperSettings,
    WorkerSettings,
)
from ai_gateway.ledger import (
    PENDING_INDEX,
    PENDING_KEY,
    PENDING_PROJECTION,
    PENDING_SORT_KEY,
)
from stacks.config import ProductionConfig
from stacks.production.context import ProductionContext
from stacks.shared.lambda_function import environment_of
from stacks.shared.nag import acknowledge
from stacks.shared.table import TABLE_KEY_ACTIONS, SecureTable

# What each side does to the jobs table (jobs.JobStore): the gateway submits and reads, the worker
# claims and ends (and may read, as the store it shares with the gateway does).
GATEWAY_JOB_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
WORKER_JOB_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# The sweeper: query the pending index, release (a transaction of two updates). The ledger's
# transactions go through one TransactWriteItems call, which the IAM coverage check
# (tests/infra/iam_coverage.py) reads as every kind the module writes (Put and Update); PutItem
# adds no power UpdateItem lacks (an update creates a missing item too).
SWEEPER_INDEX_ACTIONS = ("dynamodb:Query",)
SWEEPER_LEDGER_ACTIONS = ("dynamodb:PutItem", "dynamodb:UpdateItem")
INVOKE_ACTIONS = ("lambda:InvokeFunction",)
SWEEP_EVERY = Duration.minutes(5)


@dataclass(frozen=True)
class Generation:
    """What producing an output for a caller takes, as the gateway stack made it: the ledger, the
    guardrail and its pinned version, the agents' memory id (None: no memory), and ``grant``, the
    stack's own grant of all of it (the ledger's items, the guardrail, the groups' models, the
    agents' runtimes and memory) to a role: the worker gets exactly what the gateway function has."""

    ledger: SecureTable
    guardrail: bedrock.CfnGuardrail
    guardrail_version: bedrock.CfnGuardrailVersion
    grant: Callable[[iam.IRole], None]
    memory_id: str | None = None
    passage_key_id: str | None = None  # the passages' key (None: no agents)


def worker_timeout_seconds(config: ProductionConfig) -> int:
    """The worker's timeout: the longest async limit of any output type (at most Lambda's 900 s)."""
    return min(max(o.async_timeout_seconds for o in config.output_types.values()), LAMBDA_MAX_TIMEOUT_SECONDS)


class GatewayJobs(Construct):
    """Asynchronous outputs and the ledger's sweeper.

    - The jobs table (``job_id``; TTL on ``expires_at``; the tier key), read and written by the
      gateway functions (every function running the gateway's handler: ``gateway_functions``),
      whose environments get GatewayJobsSettings.
    - The worker (package ai_gateway, module worker): timeout the longest output type's
      ``async_timeout_seconds``; asynchronous events kept WORKER_MAX_EVENT_AGE_SECONDS and retried
      WORKER_RETRY_ATTEMPTS times; ``generation.grant`` (what the gateway function has) plus
      GetItem and UpdateItem on the jobs table. The gateway functions may invoke it, nothing else.
    - ``GET /v1/jobs/{id}`` on ``v1`` (the gateway's integration and method options).
    - The ledger's pending index (added to ``generation.ledger``: one index per deploy, the billing
      export's stays) and the sweeper reading it every five minutes, releasing requests older than
      the longest lifetime of any admitting function: each gateway function's timeout, a job's
      (gateway timeout + start window + worker timeout) and ``other_admitting_timeouts`` (any other
      function that admits), plus SweeperSettings' slack.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        generation: Generation,
        gateway_functions: Sequence[lambda_.Function],
        v1: apigateway.IResource,
        integration: apigateway.Integration,
        method_options: Mapping[str, Any],
        other_admitting_timeouts: Sequence[Duration] = (),
    ) -> None:
        super().__init__(scope, id)
        config = context.config
        ledger = generation.ledger
        gateway_timeouts = [_seconds(function.timeout) for function in gateway_functions]
        gateway_timeout = max(gateway_timeouts)
        worker_timeout = worker_timeout_seconds(config)

        self.table = SecureTable(
            self,
            "Table",
            key=context.key,
            partition_key="job_id",
            time_to_live_attribute=TTL_ATTRIBUTE,
            # A job is a request in flight and its answer for a few days: nothing to keep past the stack.
            removal_policy=RemovalPolicy.DESTROY,
            backup_reason="Jobs are requests in flight and their answers, kept days (TTL); a lost table loses "
            "only answers the callers can request again, and the ledger keeps the metering.",
        )

        self.worker = context.function(
            self,
            "Worker",
            package="ai_gateway",
            module="worker",
            description="AI gateway jobs: produces, guards and delivers one asynchronous output",
            reserved=False,  # not ai_gateway's reservation (production.functions)
            memory_size=1024,
            timeout=Duration.seconds(worker_timeout),
            settings=WorkerSettings(
                jobs_table=self.table.table_name,
                ledger_table=ledger.table_name,
                guardrail_id=generation.guardrail.attr_guardrail_id,
                guardrail_version=generation.guardrail_version.attr_version,
                generation_timeout_seconds=worker_timeout - GENERATION_MARGIN_SECONDS,
                agent_timeout_seconds=worker_timeout - GENERATION_MARGIN_SECONDS,
                agent_memory_id=generation.memory_id,
                passage_key_id=generation.passage_key_id,
            ),
        )
        self.worker.configure_async_invoke(
            max_event_age=Duration.seconds(WORKER_MAX_EVENT_AGE_SECONDS), retry_attempts=WORKER_RETRY_ATTEMPTS
        )
        generation.grant(self.worker.execution_role)
        self.table.grant_items(self.worker, WORKER_JOB_ACTIONS, key_actions=TABLE_KEY_ACTIONS)
        acknowledge(
            self.worker,
            "NIST.800.53.R5-LambdaDLQ",
            "A failed job is recorded on its item (status failed, a reason) and its units released by the "
            "worker or, if it died, by the sweeper; a lost event leaves nothing a queue would replay.",
        )
        acknowledge(
            self.worker,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls only AWS service APIs (Bedrock, AgentCore, DynamoDB) over TLS; no private network resource "
            "to reach.",
        )
        acknowledge(
            self.worker,
            "NIST.800.53.R5-LambdaConcurrency",
            "Invoked only by the gateway function after a quota admission, so the groups' exact quotas and the "
            "usage plans' throttles bound it; reserved concurrency fails in accounts whose quota is 10.",
        )

        self.gateway_settings = GatewayJobsSettings(
            jobs_table=self.table.table_name,
            worker_function=self.worker.function_name,
            worker_timeout_seconds=worker_timeout,
            async_timeouts_seconds={name: o.async_timeout_seconds for name, o in sorted(config.output_types.items())},
        )
        # The gateway functions: submit and read jobs, start the worker (nothing else).
        for function in gateway_functions:
            self.table.grant_items(function, GATEWAY_JOB_ACTIONS, key_actions=TABLE_KEY_ACTIONS)
            iam.Grant.add_to_principal(
                grantee=function, actions=list(INVOKE_ACTIONS), resource_arns=[self.worker.function_arn]
            )
            for name, value in environment_of(self, self.gateway_settings).items():
                function.add_environment(name, value)

        self.resource = v1.add_resource("jobs").add_resource("{id}")
        self.resource.add_method(
            "GET",
            integration,
            request_parameters={"method.request.path.id": True},
            **dict(method_options),
        )

        # The sweeper and the index it reads.
        ledger.add_global_secondary_index(
            index_name=PENDING_INDEX,
            partition_key=dynamodb.Attribute(name=PENDING_KEY, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=PENDING_SORT_KEY, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(PENDING_PROJECTION),
        )
        self.lifetimes_seconds = (
            *gateway_timeouts,
            gateway_timeout + WORKER_MAX_EVENT_AGE_SECONDS + worker_timeout,
            *(_seconds(t) for t in other_admitting_timeouts),
        )
        self.sweeper_settings = SweeperSettings(
            ledger_table=ledger.table_name, lifetimes_seconds=self.lifetimes_seconds
        )
        self.sweeper = context.function(
            self,
            "Sweeper",
            package="ai_gateway",
            module="sweeper",
            description="AI gateway ledger sweeper: releases units a dead request left admitted",
            reserved=False,  # not ai_gateway's reservation (production.functions)
            timeout=Duration.seconds(60),
            settings=self.sweeper_settings,
        )
        ledger.grant_items(self.sweeper, SWEEPER_LEDGER_ACTIONS, key_actions=TABLE_KEY_ACTIONS)
        iam.Grant.add_to_principal(
            grantee=self.sweeper,
            actions=list(SWEEPER_INDEX_ACTIONS),
            resource_arns=[f"{ledger.table_arn}/index/{PENDING_INDEX}"],
        )
        self.schedule = events.Rule(
            self,
            "SweeperSchedule",
            description="Release ledger units that dead requests left admitted",
            schedule=events.Schedule.rate(SWEEP_EVERY),
            targets=[targets.LambdaFunction(self.sweeper, retry_attempts=0)],
        )
        acknowledge(
            self.sweeper,
            "NIST.800.53.R5-LambdaDLQ",
            "A scheduled run that fails leaves its requests pending; the next run, five minutes later, takes them.",
        )
        acknowledge(
            self.sweeper,
            "NIST.800.53.R5-LambdaInsideVPC",
            "Calls only DynamoDB over TLS; no private network resource to reach.",
        )
        acknowledge(
            self.sweeper,
            "NIST.800.53.R5-LambdaConcurrency",
            "Invoked only by its five-minute schedule; reserved concurrency fails in accounts whose quota is 10.",
        )

    @property
    def bound_seconds(self) -> int:
        """How old an admitted request must be before the sweeper releases it."""
        return self.sweeper_settings.bound_seconds


def _seconds(timeout: Duration | None) -> int:
    if timeout is None:
        raise ValueError("an admitting function has no timeout to bound its requests' lifetime")
    return int(timeout.to_seconds())
