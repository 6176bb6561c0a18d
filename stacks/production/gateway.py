"""Production front door: the AI gateway REST API, its authorizer, guardrail, ledger (the groups'
keys and usage plans: stacks/production/gateway_keys.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from aws_cdk import (
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    aws_apigateway as apigateway,
    aws_bedrock as bedrock,
    aws_bedrockagentcore as agentcore,
    aws_dynamodb as dynamodb,
    aws_iam as iam,
    aws_kms as kms,
)
from constructs import Construct

from ai_gateway import transcript
from ai_gateway.contract import (
    AUTHORIZATION_HEADER,
    CORRELATION_ID_HEADER,
    EXEC_WRAPPER,
    GENERATION_MARGIN_SECONDS,
    MAX_MESSAGES,
    RETRY_AFTER_HEADER,
    STREAM_BOOTSTRAP,
    GatewayPolicy,
    Settings as GatewaySettings,
)
from ai_gateway.ledger import BILLING_INDEX, BILLING_KEY, BILLING_SORT_KEY
from gateway_authorizer.contract import Settings as AuthorizerSettings
from shared.claims import CONTEXT_GROUP
from shared.passage import ISSUE_ACTIONS as PASSAGE_ISSUE_ACTIONS
from stacks.config import GuardrailConfig, ProductionConfig
from stacks.production.agent import AgentRuntime
from stacks.production.agents import grant_memory_data
from stacks.production.context import ProductionContext
from stacks.production.gateway_jobs import GatewayJobs, Generation
from stacks.production.gateway_keys import keys_location
from stacks.production.policy import gateway_policy
from stacks.shared.bedrock import grant_invoke, model_arns, pii_policy
from stacks.shared.lambda_function import BlueprintFunction
from stacks.shared.nag import acknowledge, acknowledge_synchronous_function
from stacks.shared.naming import pascal_case
from stacks.shared.rest_api import RegionalRestApi
from stacks.shared.table import TABLE_KEY_ACTIONS, SecureTable
from stacks.shared.waf import protect_with_waf

GUARDRAIL_ACTIONS = ["bedrock:ApplyGuardrail"]
# API Gateway's own 429 for its throttles (the stage's, a usage plan's rate): their token buckets
# refill every second, so a client (the openai SDK honours it) waits that long before a retry.
# A usage plan's quota (QUOTA_EXCEEDED) says nothing: its period's end is not known to a template.
THROTTLED_RETRY_AFTER_SECONDS = 1
# Access log line (no bodies, no tokens): who, what, how it ended, and where the time went.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "time": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "principal": "$context.authorizer.principalId",
    "group": f"$context.authorizer.{CONTEXT_GROUP}",
    "apiKeyId": "$context.identity.apiKeyId",
    "method": "$context.httpMethod",
    "resource": "$context.resourcePath",
    "status": "$context.status",
    "error": "$context.error.responseType",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integration.latency",
    "authorizerLatencyMs": "$context.authorizer.latency",
    "tls": "$context.tlsVersion",
}
COMMON_RULES_COUNTED = (
    "SizeRestrictions_BODY",
    "CrossSiteScripting_BODY",
    "GenericLFI_BODY",
    "GenericRFI_BODY",
    "EC2MetaDataSSRF_BODY",
)
# What lambdas/ai_gateway/ledger.py does to its table (a transaction's items need the item actions).
LEDGER_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
]


class GatewayStack(Stack):
    """The AI gateway API and everything it enforces.

    - REST API (regional, TLS) with the Lambda authorizer on every method, API key source
      AUTHORIZER, request validation, JSON access logs, execution logs without bodies, X-Ray,
      and a WAF web ACL (rate-based rule per IP plus AWS managed rule groups).
    - API key source AUTHORIZER: the authorizer hands API Gateway the caller's group's key. The
      keys, their usage plans and the keys document are the gateway keys stack's
      (stacks/production/gateway_keys.py), deployed after this one.
    - The gateway function, the Bedrock Guardrail (and a pinned version) it applies, the
      DynamoDB ledger (exact quotas, metering records).
    - The runtime config the functions read (AppConfig, environment "gateway"): the policy
      (groups, models, quotas, prices).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        agent_runtimes: Mapping[str, AgentRuntime],
        agent_memory: agentcore.IMemory | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        config, key, name = context.config, context.key, context.name
        user_pool, client = context.identity.user_pool, context.identity.client
        self._passage_key = passage_key = context.identity.passage_key

        self.ledger = SecureTable(
            self,
            "Ledger",
            key=key,
            partition_key="pk",
            global_secondary_indexes=[
                dynamodb.GlobalSecondaryIndexPropsV2(
                    index_name=BILLING_INDEX,
                    partition_key=dynamodb.Attribute(name=BILLING_KEY, type=dynamodb.AttributeType.STRING),
                    sort_key=dynamodb.Attribute(name=BILLING_SORT_KEY, type=dynamodb.AttributeType.STRING),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
            backup_reason="Point-in-time recovery keeps 35 days of continuous backups of the ledger; an AWS Backup "
            "plan is an account-level decision outside this app.",
        )

        # Each session's guarded transcript (ai_gateway.transcript): what the input guardrail has
        # checked, so a turn that resends the conversation is checked for its new text only.
        self.transcripts = SecureTable(
            self,
            "Transcripts",
            key=key,
            partition_key=transcript.KEY,
            time_to_live_attribute=transcript.TTL_ATTRIBUTE,
            removal_policy=RemovalPolicy.DESTROY,
            no_recovery_reason="The transcripts only spare the guardrail a second check of text it has seen, and "
            "expire within hours: a restore would bring back conversations past their expiry, and losing the "
            "table costs one fuller check per session.",
        )

        self.guardrail, self.guardrail_version = _guardrail(self, name, config.guardrail)

        # Runtime config (AppConfig): the policy the gateway enforces.
        self.runtime_config = context.config_environment(self, "gateway")
        self.policy = self.runtime_config.document(
            "policy",
            model=GatewayPolicy,
            content=gateway_policy(config, {agent: r.agent_runtime_arn for agent, r in agent_runtimes.items()}),
            description="AI gateway groups, models, quotas and prices (generated from the CDK config)",
        )

        def settings(timeout_seconds: int) -> GatewaySettings:
            return GatewaySettings(
                ledger_table=self.ledger.table_name,
                guardrail_id=self.guardrail.attr_guardrail_id,
                guardrail_version=self.guardrail_version.attr_version,
                policy=self.policy.location,
                max_message_chars=config.api.max_message_chars,
                # One model attempt; the function's time also covers guardrails and the ledger.
                generation_timeout_seconds=20,
                # The gateway writes each agent turn to memory after its output guardrail.
                agent_memory_id=agent_memory.memory_id if agent_memory and agent_runtimes else None,
                # The passages its agents pass on to the tools gateway (lambdas/shared/passage.py).
                passage_key_id=passage_key.key_arn if agent_runtimes else None,
                agent_timeout_seconds=timeout_seconds - GENERATION_MARGIN_SECONDS,
                transcript_table=self.transcripts.table_name,
                transcript_ttl_seconds=config.api.transcript_hours * 3600,
            )

        self.function = context.function(
            self,
            "GatewayFunction",
            package="ai_gateway",
            description="AI gateway: routing, guardrails, output metering and exact quotas",
            memory_size=1024,
            timeout=Duration.seconds(config.api.integration_timeout_seconds),
            settings=settings(config.api.integration_timeout_seconds),
            # Cold starts resume a snapshot of the initialized handler; API Gateway invokes its alias.
            snap_start=config.api.snap_start,
        )
        # POST /v1/chat/completions, streamed or not: behind the API's STREAM integration every
        # answer is written in the streaming format, which Lambda's Python runtime cannot write,
        # so this function runs the same package under its own runtime loop (stream_runtime).
        self.stream_function = context.function(
            self,
            "GatewayStreamFunction",
            package="ai_gateway",
            description="AI gateway, streamed: POST /v1/chat/completions (ai_gateway.stream_runtime)",
            memory_size=1024,
            timeout=Duration.seconds(config.api.stream_timeout_seconds),
            settings=settings(config.api.stream_timeout_seconds),
            # Its loop takes part in the snapshot as the managed runtime's does (the hooks, then
            # restore/next: the Runtime API lifecycle AWS documents for runtime clients of one's
            # own); API Gateway invokes its alias.
            snap_start=config.api.stream_snap_start,
        )
        self.stream_function.add_environment(EXEC_WRAPPER, STREAM_BOOTSTRAP)
        self.generators = [self.function, self.stream_function]
        for function in self.generators:
            # Its version (what the SnapStart alias invokes) is named after its configuration as
            # written, deploy-time values unresolved: a new guardrail version alone would not publish
            # one, and the alias would keep calling the replaced guardrail version. The guardrail's
            # digest says when.
            function.invalidate_version_based_on(str(self.guardrail_version.description))
            self.grant_generation(
                function.execution_role,
                config,
                agent_runtimes,
                agent_memory,
                key,
                stream=function is self.stream_function,  # ConverseStream: the streaming function only
            )
            self.transcripts.grant_items(function.execution_role, transcript.ACTIONS, key_actions=TABLE_KEY_ACTIONS)
            _acknowledge_synchronous(function)

        self.authorizer_function = context.function(
            self,
            "AuthorizerFunction",
            package="gateway_authorizer",
            description="AI gateway authorizer: verify the Cognito token, pick the group's API key",
            timeout=Duration.seconds(10),
            settings=AuthorizerSettings(
                user_pool_id=user_pool.user_pool_id,
                client_id=client.user_pool_client_id,
                # The groups' keys, their usage plans and this document are the gateway keys stack's
                # (deployed after this one): the document by its environment's and profile's names,
                # its read granted there, so this stack names nothing of that one.
                api_keys=keys_location(context.config_store.application.application_id),
            ),
            snap_start=config.api.snap_start,
        )
        self.authorizer_role = authorizer_role = self.authorizer_function.execution_role
        # The keys' values (GetApiKey): any of the region's keys, since the set grows with the groups
        # and one ARN per key would outgrow the role's policy. A key's value lets no one in: the API
        # takes its key from this authorizer (key source AUTHORIZER), never from a request.
        api_keys_arn = f"arn:{self.partition}:apigateway:{self.region}::/apikeys/*"
        authorizer_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["apigateway:GET"], resources=[api_keys_arn])
        )
        acknowledge(
            authorizer_role,
            f"AwsSolutions-IAM5[Resource::{api_keys_arn}]",
            "GetApiKey on the region's keys: the authorizer reads its groups' key values, one per group, and "
            "the API's key source is AUTHORIZER, so a key's value admits no request by itself.",
        )
        _acknowledge_synchronous(self.authorizer_function)

        self.api = self._rest_api(name, config, key)
        # Asynchronous outputs (Prefer: respond-async, GET /v1/jobs/{id}) and the ledger's sweeper.
        self.jobs = GatewayJobs(
            self,
            "Jobs",
            context=context,
            generation=Generation(
                ledger=self.ledger,
                guardrail=self.guardrail,
                guardrail_version=self.guardrail_version,
                grant=lambda role: self.grant_generation(
                    role, config, agent_runtimes, agent_memory, key, read_policy=False
                ),
                memory_id=agent_memory.memory_id if agent_memory and agent_runtimes else None,
                passage_key_id=passage_key.key_arn if agent_runtimes else None,
            ),
            # Jobs are submitted and read through the buffered routes only; the streaming function
            # admits too, so the sweeper waits out its timeout, but it gets no jobs table or worker.
            gateway_functions=[self.function],
            other_admitting_timeouts=[Duration.seconds(config.api.stream_timeout_seconds)],
            v1=self.v1,
            integration=self.integration,
            method_options=self.method_options,
        )
        for agent, runtime in agent_runtimes.items():
            roles = [function.execution_role for function in (*self.generators, self.jobs.worker)]
            policy = runtime.only_invoked_by(self, f"{pascal_case(agent)}InvokedOnlyByTheGateway", roles)
            for role in roles:  # (and their policies: nothing names a role before it is whole)
                policy.node.add_dependency(role)
        protect_with_waf(
            self,
            name=f"{name}-ai-gateway",
            metric_name="ai-gateway",
            stage=self.api.deployment_stage,
            key=key,
            retention_days=config.log_retention_days,
            rate_limit_per_5_minutes=config.api.waf_rate_limit_per_5_minutes,
            # Prompts are long free text full of code, paths and URLs: the body rules would block
            # legitimate requests, so they only count; size and content are the gateway's and
            # the guardrail's job (413, guardrail_blocked).
            count_only=COMMON_RULES_COUNTED,
        )
        CfnOutput(
            self,
            "ApiUrl",
            value=self.api.url,
            description="The AI gateway: POST {url}v1/chat; OpenAI SDKs: base_url {url}v1",
        )
        CfnOutput(self, "GatewayFunctionLogGroup", value=self.function.log_group.log_group_name)
        CfnOutput(self, "LedgerTableName", value=self.ledger.table_name)
        CfnOutput(self, "GuardrailId", value=self.guardrail.attr_guardrail_id)

    def grant_generation(
        self,
        role: iam.IRole,
        config: ProductionConfig,
        agent_runtimes: Mapping[str, AgentRuntime],
        agent_memory: agentcore.IMemory | None,
        key: kms.IKey,
        *,
        read_policy: bool = True,
        stream: bool = False,
    ) -> None:
        """What producing an output takes (ai_gateway.flow): the ledger's items, the guardrail,
        the groups' models (with ``stream``, ConverseStream too), each agent runtime and the
        agents' memory; with ``read_policy``, the policy document (a job carries what it needs)."""
        # The table only: the billing-export index is for readers, not the gateway.
        self.ledger.grant_items(role, LEDGER_ACTIONS, key_actions=TABLE_KEY_ACTIONS)
        if read_policy:
            self.policy.grant_read(role)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=GUARDRAIL_ACTIONS, resources=[self.guardrail.attr_guardrail_arn])
        )
        for model in sorted({m for group in config.groups.values() for m in group.models.allowed}):
            grant_invoke(role, model_arns(self, model), stream=stream)
        for runtime in agent_runtimes.values():
            runtime.grant_invoke_default_endpoint(role)
        if agent_runtimes:  # the passages for the callers' tokens it forwards (GenerateMac only)
            self._passage_key.grant(role, *PASSAGE_ISSUE_ACTIONS)
        if agent_memory is not None and agent_runtimes:
            grant_memory_data(agent_memory, key, role, write=True)

    def _rest_api(self, name: str, config: ProductionConfig, key: kms.IKey) -> apigateway.RestApi:
        api = RegionalRestApi(
            self,
            "Api",
            rest_api_name=f"{name}-ai-gateway",
            description="AI gateway: chat, output-priced workloads, usage",
            key=key,
            retention_days=config.log_retention_days,
            tls_policy=config.api.tls_policy,
            api_key_source_type=apigateway.ApiKeySourceType.AUTHORIZER,
            access_log_format=apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            cache_reason="Responses are per-caller generations and quota state; caching them would serve one "
            "user's answer to another and skip metering.",
            access_logs_id="AccessLogs",
            execution_logs_id="ExecutionLogs",
        )
        authorizer = apigateway.TokenAuthorizer(
            self,
            "Authorizer",
            handler=self.authorizer_function.invoke_target,  # its alias with SnapStart
            identity_source=apigateway.IdentitySource.header(AUTHORIZATION_HEADER),
            results_cache_ttl=Duration.minutes(5),
        )
        validator = api.add_request_validator("Validator", validate_request_body=True, validate_request_parameters=True)
        # Every buffered route, GET /v1/jobs/{id} too (GatewayJobs): the alias with SnapStart.
        integration = apigateway.LambdaIntegration(
            self.function.invoke_target, proxy=True, timeout=Duration.seconds(config.api.integration_timeout_seconds)
        )
        options: dict[str, Any] = {"authorizer": authorizer, "api_key_required": True}
        chat_model = api.add_model("ChatRequest", content_type="application/json", schema=_CHAT_SCHEMA)
        output_model = api.add_model("OutputRequest", content_type="application/json", schema=_OUTPUT_SCHEMA)
        completion_model = api.add_model(
            "ChatCompletionRequest", content_type="application/json", schema=_CHAT_COMPLETION_SCHEMA
        )
        v1 = api.root.add_resource("v1")
        chat = v1.add_resource("chat")
        chat.add_method(
            "POST",
            integration,
            request_validator=validator,
            request_models={"application/json": chat_model},
            **options,
        )
        # OpenAI-compatible (lambdas/ai_gateway/openai_api.py): the openai SDKs call {url}v1 unchanged.
        streamed = apigateway.LambdaIntegration(
            self.stream_function.invoke_target,  # its alias with SnapStart
            proxy=True,
            response_transfer_mode=apigateway.ResponseTransferMode.STREAM,
            timeout=Duration.seconds(config.api.stream_timeout_seconds),
        )
        chat.add_resource("completions").add_method(
            "POST",
            streamed,
            request_validator=validator,
            request_models={"application/json": completion_model},
            **options,
        )
        models = v1.add_resource("models")
        models.add_method("GET", integration, **options)
        # The openai SDK's models.retrieve: one model of the caller's group, else a 404.
        models.add_resource("{model}").add_method(
            "GET", integration, request_parameters={"method.request.path.model": True}, **options
        )
        v1.add_resource("outputs").add_resource("{type}").add_method(
            "POST",
            integration,
            request_validator=validator,
            request_models={"application/json": output_model},
            request_parameters={"method.request.path.type": True},
            **options,
        )
        v1.add_resource("usage").add_method("GET", integration, **options)
        self.v1, self.integration, self.method_options = v1, integration, options  # (GatewayJobs adds a route)
        # API Gateway's own refusals (authorizer, validator, usage plan, WAF, timeouts) in the
        # gateway's error shape, with the correlation id the function's answers carry. A path or
        # method the API does not have is MISSING_AUTHENTICATION_TOKEN, a 403 "Missing
        # Authentication Token" by default (the openai SDK raises PermissionDeniedError): here a
        # 404 that says so. No method of this API uses IAM authorization, that type's other cause.
        for response_type, code, status in (
            (apigateway.ResponseType.MISSING_AUTHENTICATION_TOKEN, "not_found", "404"),
            (apigateway.ResponseType.DEFAULT_4_XX, "gateway_refused", None),
            (apigateway.ResponseType.DEFAULT_5_XX, "gateway_error", None),
            (apigateway.ResponseType.UNAUTHORIZED, "unauthorized", None),
            (apigateway.ResponseType.ACCESS_DENIED, "forbidden", None),
            (apigateway.ResponseType.THROTTLED, "throttled", None),
            (apigateway.ResponseType.QUOTA_EXCEEDED, "usage_plan_quota_exceeded", None),
            (apigateway.ResponseType.BAD_REQUEST_BODY, "invalid_request", None),
        ):
            retry = {RETRY_AFTER_HEADER: f"'{THROTTLED_RETRY_AFTER_SECONDS}'"} if code == "throttled" else {}
            api.add_gateway_response(
                f"Response{code.title().replace('_', '')}",
                type=response_type,
                status_code=status,
                response_headers={CORRELATION_ID_HEADER: "context.requestId", **retry},
                templates={"application/json": gateway_response_template(code, NO_ROUTE if status else None)},
            )
        acknowledge(
            api,
            "AwsSolutions-COG4",
            "Every method uses the gateway's Lambda authorizer, which verifies the Cognito access token "
            "itself: a Cognito authorizer cannot choose the group's usage-plan API key.",
        )
        return api


NO_ROUTE = "this API has no such path, or not with this method"


def gateway_response_template(code: str, message: str | None = None) -> str:
    """The body of one of API Gateway's own refusals: ``{"error": code, "message": …}``, the
    message API Gateway's own unless one is given.

    These templates are not VTL: API Gateway substitutes variables as they are. ``messageString``
    is the message already quoted and escaped as a JSON string; ``$context.error.message`` inside
    quotes would break the JSON on the first quote in a message. (``validationErrorString`` has no
    escaped form and quotes property names, so it is not used: the function's own 422 names the field.)
    """
    if message is not None:
        return json.dumps({"error": code, "message": message})
    return f'{{"error": "{code}", "message": $context.error.messageString}}'


def _guardrail(
    scope: Construct, name: str, config: GuardrailConfig
) -> tuple[bedrock.CfnGuardrail, bedrock.CfnGuardrailVersion]:
    G = bedrock.CfnGuardrail  # noqa: N806 - the L1 class, for its nested property types
    filters = [
        G.ContentFilterConfigProperty(type=kind, input_strength=strength, output_strength=strength)
        for kind, strength in sorted(config.content_filters.items())
    ]
    # Prompt attacks come in with the input; Bedrock requires output strength NONE for them.
    filters.append(
        G.ContentFilterConfigProperty(
            type="PROMPT_ATTACK", input_strength=config.prompt_attack_strength, output_strength="NONE"
        )
    )
    grounding = [
        G.ContextualGroundingFilterConfigProperty(type=kind, threshold=threshold)
        for kind, threshold in (("GROUNDING", config.grounding_threshold), ("RELEVANCE", config.relevance_threshold))
        if threshold is not None
    ]
    guardrail = G(
        scope,
        "Guardrail",
        name=f"{name}-ai-gateway",
        description="Applied by the AI gateway to every input and output",
        blocked_input_messaging=config.blocked_input_message,
        blocked_outputs_messaging=config.blocked_output_message,
        content_policy_config=G.ContentPolicyConfigProperty(filters_config=filters),
        sensitive_information_policy_config=pii_policy(config.pii_entities),
        topic_policy_config=G.TopicPolicyConfigProperty(
            topics_config=[
                G.TopicConfigProperty(
                    name=topic.name, definition=topic.definition, type="DENY", examples=list(topic.examples) or None
                )
                for topic in config.denied_topics
            ]
        )
        if config.denied_topics
        else None,
        contextual_grounding_policy_config=G.ContextualGroundingPolicyConfigProperty(filters_config=grounding)
        if grounding
        else None,
    )
    # A version is an immutable snapshot: a new description (the config's digest) publishes a
    # new one whenever the guardrail's config changes, and the function pins to it.
    digest = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]
    version = bedrock.CfnGuardrailVersion(
        scope, "GuardrailVersion", guardrail_identifier=guardrail.attr_guardrail_id, description=f"config {digest}"
    )
    return guardrail, version


def _acknowledge_synchronous(function: BlueprintFunction) -> None:
    acknowledge_synchronous_function(
        function,
        invoker="API Gateway",
        network="Calls only AWS service APIs (Bedrock, DynamoDB, SSM, API Gateway, Cognito's JWKS) over TLS; "
        "no private network resource to reach.",
        concurrency="Concurrency is bounded in front of it by the usage plans' throttles and the WAF rate rule.",
    )


# The request models refuse only what the function would refuse too (a null optional field is
# "not sent" to it): tests/infra/test_production.py runs the bodies the function accepts past them.
_OPTIONAL_TEXT = apigateway.JsonSchema(type=[apigateway.JsonSchemaType.STRING, apigateway.JsonSchemaType.NULL])
_CHAT_SCHEMA = apigateway.JsonSchema(
    schema=apigateway.JsonSchemaVersion.DRAFT4,
    type=apigateway.JsonSchemaType.OBJECT,
    required=["messages"],
    properties={
        "messages": apigateway.JsonSchema(type=apigateway.JsonSchemaType.ARRAY, min_items=1, max_items=MAX_MESSAGES),
        "model": _OPTIONAL_TEXT,
    },
)
# Only the shape API Gateway can refuse cheaply: the function checks the rest and answers in
# OpenAI's error shape, naming the field (API Gateway's own refusals keep the gateway's shape,
# which OpenAI clients read as the same status without a code).
_CHAT_COMPLETION_SCHEMA = apigateway.JsonSchema(
    schema=apigateway.JsonSchemaVersion.DRAFT4,
    type=apigateway.JsonSchemaType.OBJECT,
    required=["messages"],
    properties={"messages": apigateway.JsonSchema(type=apigateway.JsonSchemaType.ARRAY), "model": _OPTIONAL_TEXT},
)
_OUTPUT_SCHEMA = apigateway.JsonSchema(
    schema=apigateway.JsonSchemaVersion.DRAFT4,
    type=apigateway.JsonSchemaType.OBJECT,
    required=["material"],
    properties={
        "material": apigateway.JsonSchema(type=apigateway.JsonSchemaType.STRING, min_length=1),
        "instructions": _OPTIONAL_TEXT,
        "model": _OPTIONAL_TEXT,
    },
)
