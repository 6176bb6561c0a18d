"""Shared tools behind one AgentCore Gateway (MCP), bound to groups by one map, fail closed."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import (
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    aws_bedrockagentcore as agentcore,
    aws_cognito as cognito,
    aws_iam as iam,
    aws_kms as kms,
    aws_logs as logs,
    aws_secretsmanager as secretsmanager,
)
from constructs import Construct

from stacks.config import BUILTIN_TOOLS, ProductionConfig, Tier, all_tools
from stacks.production.functions import production_function
from stacks.production.tool_binding import GROUP_CLAIM, bindings, cedar_permits, classifications, qualified
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.lambda_function import BlueprintFunction, log_retention
from stacks.shared.nag import (
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_synchronous_function,
    nag_arn,
    nag_attribute,
)
from stacks.shared.naming import pascal_case
from stacks.shared.vended_logs import DeliveryPolicies

S = agentcore.SchemaDefinitionType

# What each tool takes (mirrors the argument models in lambdas/legacy_tools/adapters.py and
# lambdas/knowledge_search/handler.py; tests/infra/test_tools.py holds them together).
TOOL_INPUTS: dict[str, agentcore.SchemaDefinition] = {
    "find_orders": agentcore.SchemaDefinition(
        type=S.OBJECT,
        properties={
            "customer_email": agentcore.SchemaDefinition(type=S.STRING, description="The customer's e-mail address"),
            "status": agentcore.SchemaDefinition(type=S.STRING, description="Only orders in this status"),
            "cursor": agentcore.SchemaDefinition(type=S.STRING, description="next_cursor of the previous page"),
        },
        required=["customer_email"],
    ),
    "get_customer": agentcore.SchemaDefinition(
        type=S.OBJECT,
        properties={"customer_id": agentcore.SchemaDefinition(type=S.STRING, description="The customer id")},
        required=["customer_id"],
    ),
    "knowledge_search": agentcore.SchemaDefinition(
        type=S.OBJECT,
        properties={
            "query": agentcore.SchemaDefinition(type=S.STRING, description="What to look for, in plain words"),
            "max_results": agentcore.SchemaDefinition(type=S.INTEGER, description="1 to 20 passages (default 5)"),
            # Declared so the policy engine's schema knows it; the REQUEST interceptor always writes
            # it from the caller's group, and the RESPONSE interceptor hides it from tools/list.
            "data_classifications": agentcore.SchemaDefinition(
                type=S.ARRAY,
                items=agentcore.SchemaDefinition(type=S.STRING),
                description="Set by the gateway; any value sent is replaced",
            ),
            "conversation_id": agentcore.SchemaDefinition(
                type=S.STRING, description="Set by the gateway from the calling agent's session, for telemetry"
            ),
        },
        required=["query"],
    ),
}
TOOL_DESCRIPTIONS = {
    "find_orders": "A customer's orders, newest data first, a page at a time. Each record has: {fields}.",
    "get_customer": "One customer with their addresses. The record has: {fields}.",
    "knowledge_search": "Passages from the company's documents that the caller may read, with their sources.",
}


class ToolsStack(Stack):
    """The AgentCore Gateway (MCP) with its tools and their guards.

    - Cognito JWT inbound auth (the production pool and app client).
    - Lambda targets: one per legacy API (lambdas/legacy_tools) and knowledge_search.
    - REQUEST and RESPONSE interceptors (lambdas/tool_guard), given the caller's headers.
    - A Cedar policy engine in ENFORCE mode holding one permit per group and tool, nothing else.
    Bindings, interceptor map and permits all come from ``groups.<name>.tools``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        prefix: str,
        config: ProductionConfig,
        key: kms.IKey,
        user_pool: cognito.IUserPool,
        client: cognito.IUserPoolClient,
        knowledge_base: VectorKnowledgeBase,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        name = f"{prefix}-{Tier.PRODUCTION}"
        self._prefix, self._config, self._key = prefix, config, key
        tool_bindings = bindings(config)

        guard = self._function(
            "ToolGuardFunction",
            "tool_guard",
            "Tools gateway interceptor: each group lists and calls its own tools",
            {
                "TOOL_BINDINGS": json.dumps(tool_bindings, sort_keys=True),
                "DATA_CLASSIFICATIONS": json.dumps(classifications(config), sort_keys=True),
                "USER_POOL_ID": user_pool.user_pool_id,
                "CLIENT_ID": client.user_pool_client_id,
            },
        )
        self.policy_engine = agentcore.PolicyEngine(
            self, "PolicyEngine", policy_engine_name=f"{prefix.replace('-', '_')}_production_tools"
        )
        self.gateway = agentcore.Gateway(
            self,
            "Gateway",
            gateway_name=f"{name}-tools",
            description="Shared MCP tools for every agent; each group gets its own tools",
            authorizer_configuration=agentcore.GatewayAuthorizer.using_cognito(
                user_pool=user_pool, allowed_clients=[client]
            ),
            interceptor_configurations=[
                agentcore.LambdaInterceptor.for_request(guard, pass_request_headers=True),
                agentcore.LambdaInterceptor.for_response(guard, pass_request_headers=True),
            ],
            protocol_configuration=agentcore.McpProtocolConfiguration(
                instructions="Tools this caller may use; each answers JSON or an error with kind and advice.",
                supported_versions=[
                    agentcore.MCPProtocolVersion.MCP_2025_03_26,
                    agentcore.MCPProtocolVersion.MCP_2025_06_18,
                ],
            ),
            policy_engine_configuration=agentcore.GatewayPolicyEngineConfig(
                policy_engine=self.policy_engine, mode=agentcore.PolicyEngineMode.ENFORCE
            ),
        )

        targets: list[agentcore.GatewayTarget] = []
        self._legacy_functions: list[BlueprintFunction] = []
        for target, api in config.legacy_apis.items():
            function = self._function(
                f"{pascal_case(target)}ToolsFunction",
                "legacy_tools",
                f"MCP tools over the {target} legacy API",
                {
                    "LEGACY_API": json.dumps(
                        {
                            "base_url": api.base_url,
                            "token_path": api.token_path,
                            "secret_name": api.secret_name,
                            "timeout_seconds": api.timeout_seconds,
                            "max_attempts": api.max_attempts,
                            "top_k": api.top_k,
                            "byte_budget": api.byte_budget,
                            "fields": api.tools,
                        },
                        sort_keys=True,
                    )
                },
                # Two chained calls, each retried, plus a token fetch and one refresh, plus backoff.
                timeout=Duration.seconds(min(int((2 * api.max_attempts + 2) * api.timeout_seconds) + 10, 900)),
            )
            self._legacy_functions.append(function)
            secret = secretsmanager.Secret.from_secret_name_v2(self, f"{pascal_case(target)}Secret", api.secret_name)
            secret.grant_read(function)
            acknowledge(
                function,
                f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'secretsmanager', f'secret:{api.secret_name}-??????')}]",
                "Secrets Manager appends six random characters to a secret's ARN; the name is fixed by config.",
            )
            targets.append(self._target(target, function, {t: list(f) for t, f in api.tools.items()}))

        search = self._function(
            "KnowledgeSearchFunction",
            "knowledge_search",
            "MCP tool: Knowledge Base passages, filtered to the caller's classifications",
            {"KNOWLEDGE_BASE_ID": knowledge_base.knowledge_base_id},
        )
        search.add_to_role_policy(
            iam.PolicyStatement(actions=["bedrock:Retrieve"], resources=[knowledge_base.knowledge_base_arn])
        )
        targets.append(self._target(BUILTIN_TOOLS["knowledge_search"], search, {"knowledge_search": []}))

        for policy_name, statement in cedar_permits(tool_bindings, self.gateway.gateway_arn).items():
            policy = self.policy_engine.add_policy(
                pascal_case(policy_name.replace("_", "-")),
                policy_name=policy_name,
                statement=agentcore.PolicyStatement.from_cedar(statement),
            )
            # Policies are validated against the tools the gateway's targets define.
            for target_construct in targets:
                policy.node.add_dependency(target_construct)

        self._rate_limits(config)

        gateway_role = self.gateway.role
        acknowledge_inline_policy(gateway_role)
        for function in (guard, search, *self._legacy_functions):
            acknowledge(
                gateway_role,
                f"AwsSolutions-IAM5[Resource::{nag_attribute(function, 'Arn')}:*]",
                "The gateway may invoke this tool or interceptor function and its versions; nothing else.",
            )
        self._deliver_logs_and_traces(name, config, key)
        CfnOutput(self, "GatewayUrl", value=self.gateway.gateway_url or "")
        CfnOutput(self, "GatewayId", value=self.gateway.gateway_id)

    def _deliver_logs_and_traces(self, name: str, config: ProductionConfig, key: kms.IKey) -> None:
        """The gateway's application logs to a KMS-encrypted log group and its traces to X-Ray
        (CloudWatch vended logs; the Gateway L2 has no switch for them)."""
        log_group = logs.LogGroup(
            self,
            "GatewayLogs",
            retention=log_retention(config.log_retention_days),
            encryption_key=key,
            removal_policy=RemovalPolicy.RETAIN_ON_UPDATE_OR_DELETE,
        )
        gateway_arn = self.gateway.gateway_arn
        policies = DeliveryPolicies.of(self)
        policies.allow_logs(log_group)
        policies.allow_traces(gateway_arn)
        for kind, log_type, destination_type, destination_arn in (
            ("Logs", "APPLICATION_LOGS", "CWL", log_group.log_group_arn),
            ("Traces", "TRACES", "XRAY", None),
        ):
            source = logs.CfnDeliverySource(
                self,
                f"Gateway{kind}Source",
                name=f"{name}-tools-gw-{kind.lower()}",
                log_type=log_type,
                resource_arn=gateway_arn,
            )
            target = logs.CfnDeliveryDestination(
                self,
                f"Gateway{kind}Destination",
                name=f"{name}-tools-gw-{kind.lower()}",
                delivery_destination_type=destination_type,
                destination_resource_arn=destination_arn,
            )
            delivery = logs.CfnDelivery(
                self,
                f"Gateway{kind}Delivery",
                delivery_source_name=source.ref,
                delivery_destination_arn=target.attr_arn,
            )
            delivery.node.add_dependency(source)
            policies.precede(target, delivery)

    def _rate_limits(self, config: ProductionConfig) -> None:
        """Requests per minute per tool (everyone together) and per group claim (a group's members
        together): the gateway's own limits, from config."""
        per_minute = agentcore.CfnGatewayRateLimit.RateConfigProperty
        entry = agentcore.CfnGatewayRateLimit.LimitEntryProperty
        tools = all_tools(config.legacy_apis)
        agentcore.CfnGatewayRateLimit(
            self,
            "ToolRateLimit",
            gateway_identifier=self.gateway.gateway_id,
            description="Calls per minute per tool, from tool_requests_per_minute",
            # AgentCore names a tool <target>___<tool> in this dimension.
            dimension_keys=["toolName"],
            entries=[
                *(
                    entry(
                        dimensions={"toolName": qualified(target, tool)},
                        requests=[per_minute(period="minute", rate=config.tool_requests_per_minute[tool])],
                    )
                    for tool, target in sorted(tools.items())
                    if tool in config.tool_requests_per_minute
                ),
                entry(
                    dimensions={"toolName": "*"},
                    requests=[per_minute(period="minute", rate=config.default_tool_requests_per_minute)],
                ),
            ],
        )
        agentcore.CfnGatewayRateLimit(
            self,
            "GroupRateLimit",
            gateway_identifier=self.gateway.gateway_id,
            description="MCP requests per minute per group, from groups.<name>.tool_requests_per_minute",
            dimension_keys=[f"$.context.jwt.{GROUP_CLAIM}"],
            entries=[
                entry(
                    dimensions={f"$.context.jwt.{GROUP_CLAIM}": group},
                    requests=[per_minute(period="minute", rate=settings.tool_requests_per_minute)],
                )
                for group, settings in sorted(config.groups.items())
            ],
        )

    def _function(
        self, id: str, package: str, description: str, environment: dict[str, str], timeout: Duration | None = None
    ) -> BlueprintFunction:
        function = production_function(
            self,
            id,
            prefix=self._prefix,
            config=self._config,
            key=self._key,
            package=package,
            description=description,
            environment=environment,
            timeout=timeout,
        )
        acknowledge_synchronous_function(
            function,
            invoker="The AgentCore Gateway",
            network="Reaches AWS APIs and configured public HTTPS endpoints only; a VPC is a per-deployment "
            "choice when a legacy API is private.",
            concurrency="Bounded in front of it by the gateway's per-tool and per-group rate limits.",
        )
        return function

    def _target(self, target: str, function: BlueprintFunction, tools: dict[str, list[str]]) -> agentcore.GatewayTarget:
        definitions = [
            agentcore.ToolDefinition(
                name=tool,
                description=TOOL_DESCRIPTIONS[tool].format(fields=", ".join(fields)),
                input_schema=TOOL_INPUTS[tool],
            )
            for tool, fields in tools.items()
        ]
        return self.gateway.add_lambda_target(
            f"{pascal_case(target)}Target",
            gateway_target_name=target,
            lambda_function=function,
            tool_schema=agentcore.ToolSchema.from_inline(definitions),
            description=f"{target} tools",
        )
