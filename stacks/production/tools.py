"""Shared tools behind one AgentCore Gateway (MCP), bound to groups by one map, fail closed."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import (
    CfnOutput,
    Duration,
    Stack,
    aws_bedrockagentcore as agentcore,
    aws_kms as kms,
    aws_logs as logs,
    aws_secretsmanager as secretsmanager,
)
from constructs import Construct

from knowledge_search.contract import TOOL as KNOWLEDGE_SEARCH_TOOL, Settings as KnowledgeSearchSettings
from legacy_tools.adapters import registry
from legacy_tools.contract import LegacyApi, Settings as LegacyToolsSettings, SingleCallTools
from shared.contract import FunctionSettings
from shared.passage import CHECK_ACTIONS as PASSAGE_CHECK_ACTIONS
from shared.tools import BUILTIN_TOOLS, ToolSpec, tools_function_seconds
from stacks.config import ProductionConfig, all_tools
from stacks.production.context import ProductionContext
from stacks.production.tool_binding import GROUP_CLAIM, bindings, cedar_permits, classifications, qualified
from stacks.production.web_tools import WebTools
from stacks.shared.knowledge_base import VectorKnowledgeBase
from stacks.shared.lambda_function import DEFAULT_TIMEOUT, BlueprintFunction
from stacks.shared.nag import (
    acknowledge,
    acknowledge_inline_policy,
    acknowledge_synchronous_function,
    nag_arn,
    nag_attribute,
)
from stacks.shared.naming import pascal_case
from stacks.shared.vended_logs import DeliveryPolicies
from tool_guard.contract import Settings as GuardSettings, ToolBindings


def schema_definition(schema: Mapping[str, Any]) -> agentcore.SchemaDefinition:
    """AgentCore's inline schema for a JSON Schema that ToolSpec.input_schema reduced."""
    return agentcore.SchemaDefinition(
        type=getattr(agentcore.SchemaDefinitionType, schema["type"].upper()),
        description=schema.get("description"),
        properties={k: schema_definition(v) for k, v in schema["properties"].items()}
        if "properties" in schema
        else None,
        required=schema.get("required"),
        items=schema_definition(schema["items"]) if "items" in schema else None,
    )


class ToolsStack(Stack):
    """The AgentCore Gateway (MCP) with its tools and their guards.

    - Cognito JWT inbound auth (the production pool and app client).
    - Lambda targets: one per legacy API (lambdas/legacy_tools) and knowledge_search.
    - REQUEST and RESPONSE interceptors (lambdas/tool_guard), given the caller's headers.
    - A Cedar policy engine in ENFORCE mode holding one permit per group (naming its tools), nothing else.
    - The runtime config its functions read (AppConfig, environment "tools"): the interceptor's
      bindings and the legacy APIs' single-call tools.
    Bindings, interceptor map and permits all come from ``groups.<name>.tools``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        knowledge_base: VectorKnowledgeBase,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        self._context = context
        config, key, name = context.config, context.key, context.name
        user_pool, client = context.identity.user_pool, context.identity.client
        tool_bindings = bindings(config)

        # Runtime config (AppConfig): the interceptor's bindings, the legacy APIs' single-call tools.
        runtime_config = context.config_environment(self, "tools")
        self.bindings = runtime_config.document(
            "bindings",
            model=ToolBindings,
            content=ToolBindings(tool_bindings=tool_bindings, data_classifications=classifications(config)),
            description="Tools gateway interceptor: each group's tools and data classifications",
        )
        self.single_call_tools = runtime_config.document(
            "single-call-tools",
            model=SingleCallTools,
            content=SingleCallTools(
                apis={target: api.single_call_tools() for target, api in config.legacy_apis.items()}
            ),
            description="Legacy API tools declared in config (one request each), by gateway target",
        )
        guard = self._function(
            "ToolGuardFunction",
            "tool_guard",
            "Tools gateway interceptor: each group lists and calls its own tools",
            GuardSettings(
                bindings=self.bindings.location,
                user_pool_id=user_pool.user_pool_id,
                client_id=client.user_pool_client_id,
                passage_key_id=context.identity.passage_key.key_arn,
            ),
        )
        self.bindings.grant_read(guard)
        # It checks the AI gateway's passages (a user's own token has none): VerifyMac, nothing else.
        context.identity.passage_key.grant(guard, *PASSAGE_CHECK_ACTIONS)
        self.policy_engine = agentcore.PolicyEngine(
            self, "PolicyEngine", policy_engine_name=f"{context.prefix.replace('-', '_')}_production_tools"
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
            single_calls = api.single_call_tools()
            function = self._function(
                f"{pascal_case(target)}ToolsFunction",
                "legacy_tools",
                f"MCP tools over the {target} legacy API",
                LegacyToolsSettings(
                    api_name=target,
                    single_call_tools=self.single_call_tools.location,
                    legacy_api=LegacyApi(
                        base_url=api.base_url,
                        token_path=api.token_path,
                        secret_name=api.secret_name,
                        timeout_seconds=api.timeout_seconds,
                        max_attempts=api.max_attempts,
                        max_response_bytes=api.max_response_bytes,
                        top_k=api.top_k,
                        byte_budget=api.byte_budget,
                        fields=api.chained_tools(),
                    ),
                ),
                timeout=Duration.seconds(tools_function_seconds(api.timeout_seconds, api.max_attempts)),
            )
            self._legacy_functions.append(function)
            self.single_call_tools.grant_read(function)
            secret = secretsmanager.Secret.from_secret_name_v2(self, f"{pascal_case(target)}Secret", api.secret_name)
            secret.grant_read(function)
            acknowledge(
                function,
                f"AwsSolutions-IAM5[Resource::{nag_arn(self, 'secretsmanager', f'secret:{api.secret_name}-??????')}]",
                "Secrets Manager appends six random characters to a secret's ARN; the name is fixed by config.",
            )
            # The tools the function dispatches on are the tools the target publishes.
            served = registry(api.chained_tools(), single_calls)
            tools = {name: (tool.spec, api.declared_fields(name)) for name, tool in served.items()}
            targets.append(self._target(target, function, tools))

        search = self._function(
            "KnowledgeSearchFunction",
            "knowledge_search",
            "MCP tool: Knowledge Base passages, filtered to the caller's classifications",
            KnowledgeSearchSettings(knowledge_base_id=knowledge_base.knowledge_base_id),
        )
        knowledge_base.grant_retrieve(search)
        tool = KNOWLEDGE_SEARCH_TOOL
        targets.append(self._target(BUILTIN_TOOLS[tool.name], search, {tool.name: (tool, [])}))
        # The web tools: an MCP server of their own on AgentCore Runtime (stacks/production/web_tools.py).
        self.web = WebTools(self, "WebTools", context=context, gateway=self.gateway, runtime_config=runtime_config)
        targets.append(self.web.target)

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
        # The functions the tools gateway invokes: an invocation of one that fails (not an error it
        # answers) pages (stacks/production/observability.py).
        self.functions: tuple[BlueprintFunction, ...] = (guard, search, *self._legacy_functions)
        for function in self.functions:
            if function.live_alias is not None:
                continue  # invoked through its alias: the grant names that alias alone, no wildcard
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
        log_group = self._context.log_group(
            self,
            "GatewayLogs",
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
        self, id: str, package: str, description: str, settings: FunctionSettings, timeout: Duration = DEFAULT_TIMEOUT
    ) -> BlueprintFunction:
        function = self._context.function(
            self,
            id,
            package=package,
            description=description,
            settings=settings,
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

    def _target(
        self, target: str, function: BlueprintFunction, tools: Mapping[str, tuple[ToolSpec, list[str]]]
    ) -> agentcore.GatewayTarget:
        """A Lambda target publishing each tool's schema from its argument model (ToolSpec)."""
        definitions = [
            agentcore.ToolDefinition(
                name=name,
                description=spec.describe(fields),
                input_schema=schema_definition(spec.input_schema()),
            )
            for name, (spec, fields) in tools.items()
        ]
        return self.gateway.add_lambda_target(
            f"{pascal_case(target)}Target",
            gateway_target_name=target,
            lambda_function=function.invoke_target,  # its alias live with SnapStart
            tool_schema=agentcore.ToolSchema.from_inline(definitions),
            description=f"{target} tools",
        )
