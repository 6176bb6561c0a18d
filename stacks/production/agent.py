"""One agent's stack: its AgentCore Runtime and everything that is only its own.

The agent's code asset, memory, groups document and delivery policies are the agents stack's
(stacks/production/agents.py), which deploys first; one stack per agent keeps each template at
about twenty resources, whatever the number of agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import (
    CfnOutput,
    DefaultStackSynthesizer,
    Duration,
    RemovalPolicy,
    Stack,
    aws_bedrockagentcore as agentcore,
    aws_iam as iam,
    aws_logs as logs,
)
from constructs import Construct

from agent.contract import Settings as AgentSettings, span_environment
from ai_gateway.contract import AGENT_ENDPOINT
from shared.claims import cognito_issuer
from stacks.config import AgentConfig
from stacks.config.agents import evaluation_name
from stacks.production.agents import (
    FORWARDED_HEADERS,
    AgentsStack,
    agent_artifact,
    captures_content,
    count_config_refusals,
    delivered_logs_prefix,
    grant_memory_data,
    runtime_log_group_name,
    runtime_name,
    served_groups,
)
from stacks.production.context import ProductionContext
from stacks.shared.bedrock import grant_invoke, model_arns
from stacks.shared.expect import default_child, present
from stacks.shared.lambda_function import environment_of, log_group_arn
from stacks.shared.nag import acknowledge, acknowledge_inline_policy, nag_account, nag_arn, nag_attribute, nag_ref
from stacks.shared.naming import pascal_case, stack_instance_suffix

# AgentCore reserves /aws/bedrock-agentcore/evaluations/ for the group it makes itself (named after
# the configuration's id, known only once it is created): a results log group of the tier's own is
# named outside it (CloudWatchOutputConfig.logGroupName, the service's API reference).
EVALUATION_RESERVED_PREFIX = "/aws/bedrock-agentcore/evaluations/"
# What the evaluation's role does in its results log group (it exists: the service creates none).
RESULT_WRITE_ACTIONS = ["logs:CreateLogStream", "logs:PutLogEvents"]


def evaluation_results_group(tier: str, config_name: str) -> str:
    """The log group an agent's online evaluation writes its results to."""
    return f"/{tier}/agentcore/evaluations/{config_name}"


# What AgentCore's online evaluation does to the log groups it reads (it indexes their fields).
INDEX_POLICY_ACTIONS = ["logs:DescribeIndexPolicies", "logs:PutIndexPolicy"]
# The CDK bootstrap bucket that holds assets, as cdk-nag prints it (default qualifier).
ASSETS_BUCKET = f"cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets"
# Invoking an agent, with an IAM identity (the runtime's inbound auth), on the endpoint its invokers use.
INVOKE_ACTIONS = ["bedrock-agentcore:InvokeAgentRuntime"]
# The runtime actions AgentCore's resource policies take ("Resource-based policies", Supported
# actions), each named: the service refuses a policy naming an action it does not support, and
# none of them is documented as taking a wildcard. A session's own actions are the invokers' only;
SESSION_ACTIONS = [
    *INVOKE_ACTIONS,
    "bedrock-agentcore:InvokeAgentRuntimeForUser",
    "bedrock-agentcore:InvokeAgentRuntimeWithWebSocketStream",
    "bedrock-agentcore:InvokeAgentRuntimeWithWebSocketStreamForUser",
    "bedrock-agentcore:StopRuntimeSession",
    "bedrock-agentcore:GetAgentCard",
]
# and nobody runs commands in a session (on by default for runtimes made since 2026-03-17, with no
# switch but IAM): a shell in a session reads the caller's forwarded token and acts as the runtime's role.
COMMAND_ACTIONS = ["bedrock-agentcore:InvokeAgentRuntimeCommand", "bedrock-agentcore:InvokeAgentRuntimeCommandShell"]


def no_commands_statement(runtime_arn: str) -> dict[str, Any]:
    """A resource policy statement denying every principal a command or shell in the runtime's sessions."""
    return {
        "Sid": "NoCommandsInSessions",
        "Effect": "Deny",
        "Principal": "*",
        "Action": COMMAND_ACTIONS,
        "Resource": runtime_arn,
    }


class AgentRuntime(agentcore.Runtime):
    """An agent's AgentCore Runtime (the L2, its props and defaults unchanged), and who may invoke it.

    Invokers are granted the runtime and its DEFAULT endpoint only (:meth:`grant_invoke_default_endpoint`);
    a resource policy (:meth:`only_invoked_by`) denies every other principal of the account.
    """

    def grant_invoke_default_endpoint(self, grantee: iam.IGrantable) -> iam.Grant:
        """InvokeAgentRuntime on this runtime and its DEFAULT endpoint (the qualifier invoked), nothing
        wider: the L2's ``grant_invoke_runtime`` covers every endpoint (``<arn>/*``), and its
        ``grant_invoke`` adds InvokeAgentRuntimeForUser, which no invoker here needs."""
        arn = self.agent_runtime_arn
        return iam.Grant.add_to_principal(
            grantee=grantee,
            actions=INVOKE_ACTIONS,
            resource_arns=[arn, f"{arn}/runtime-endpoint/{AGENT_ENDPOINT}"],
        )

    def only_invoked_by(self, scope: Construct, id: str, roles: Sequence[iam.IRole]) -> agentcore.CfnResourcePolicy:
        """The runtime's resource policy, in ``scope`` (the invokers' stack, which deploys after this
        runtime's): no principal but ``roles`` may invoke it or touch its sessions, and none runs
        commands in them, whatever identity policies the account grants elsewhere (same-account IAM
        alone would let any principal granted bedrock-agentcore:* in)."""
        return agentcore.CfnResourcePolicy(
            scope,
            id,
            resource_arn=self.agent_runtime_arn,
            policy=Stack.of(scope).to_json_string(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "OnlyTheAiGateway",
                            "Effect": "Deny",
                            "Principal": "*",
                            "Action": SESSION_ACTIONS,
                            "Resource": self.agent_runtime_arn,
                            # A negated condition with several values: denied unless it matches one.
                            "Condition": {"StringNotEquals": {"aws:PrincipalArn": [role.role_arn for role in roles]}},
                        },
                        no_commands_statement(self.agent_runtime_arn),
                    ],
                }
            ),
        )


def agent_stack_name(tier: str, agent: str) -> str:
    """``<prefix>-production-agent-<agent, with - for _>``: e.g. genai-production-agent-support-assistant."""
    return f"{tier}-agent-{agent.replace('_', '-')}"


class AgentStack(Stack):
    """One agent on AgentCore Runtime.

    - The Runtime: IAM inbound auth (the AI gateway's roles are the only invokers), the caller's token
      forwarded in one allowlisted custom header for the agent to verify, tracing on, idle sessions
      ended per config; its environment says where the groups document is, not what it holds.
    - Its role: its groups' models, the shared memory (read), the groups document (read).
    - Its log groups, KMS-encrypted with retention: application and usage logs (delivered by
      CloudWatch under the agents stack's delivery policies), the runtime's stdout (created before
      AgentCore would create it unencrypted; a metric filter there counts the agent's refusals of
      the groups document for the agents environment's rollback alarm), and its online
      evaluation's results.
    - AgentCore's online evaluation of its sessions (where Transaction Search is on).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        name: str,
        agent: AgentConfig,
        agents: AgentsStack,
        tools_gateway: agentcore.IGateway,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        config, key = context.config, context.key
        self._context = context
        self.add_stack_dependency(agents, "the memory, the groups document and the delivery policies")
        groups = served_groups(config, agent)
        memory_settings = config.agent_memory
        user_pool, client = context.identity.user_pool, context.identity.client
        # Named under the prefix the agents stack's delivery policy allows; new for each creation of
        # the stack, so a stack created again does not collide with the log group kept from before.
        log_group = context.log_group(
            self,
            f"{pascal_case(name)}Logs",
            log_group_name=f"{delivered_logs_prefix(context.name)}{name}-{stack_instance_suffix(self)}",
        )
        self.runtime = AgentRuntime(
            self,
            pascal_case(name),
            runtime_name=runtime_name(context.prefix, name),
            description=agent.description,
            agent_runtime_artifact=agent_artifact(),
            # IAM inbound auth: only a principal granted InvokeAgentRuntime (the AI gateway's roles)
            # can reach the agent; a user's token alone cannot.
            authorizer_configuration=agentcore.RuntimeAuthorizerConfiguration.using_iam(),
            request_header_configuration=agentcore.RequestHeaderConfiguration(allowlisted_headers=FORWARDED_HEADERS),
            lifecycle_configuration=agentcore.LifecycleConfiguration(
                idle_runtime_session_timeout=Duration.minutes(agent.idle_session_minutes)
            ),
            tracing_enabled=True,
            # CDK's own delivery policy names no log stream (its log-group ARN ends in ":*"), and one
            # per agent would exhaust the account's quota: the agents stack's policies cover them.
            manage_delivery_resource_policy=False,
            logging_configs=[
                agentcore.LoggingConfig(
                    destination=agentcore.LoggingDestination.cloud_watch_logs(log_group), log_type=log_type
                )
                for log_type in (agentcore.LogType.APPLICATION_LOGS, agentcore.LogType.USAGE_LOGS)
            ],
            environment_variables={
                "POWERTOOLS_SERVICE_NAME": name,
                "POWERTOOLS_METRICS_NAMESPACE": context.metrics_namespace,
                # What spans may carry is decided here, at synth, from the groups config says it serves.
                **span_environment(capture_content=captures_content(config, groups)),
                **environment_of(
                    self,
                    AgentSettings(
                        agent_name=name,
                        tools_gateway_url=tools_gateway.gateway_url or "",
                        token_issuer=cognito_issuer(self.region, user_pool.user_pool_id),
                        token_client_id=client.user_pool_client_id,
                        groups=agents.groups.location,
                        max_iterations=agent.max_iterations,
                        max_tool_calls=agent.max_tool_calls,
                        turn_seconds=agent.turn_seconds,
                        memory_id=agents.memory.memory_id,
                        memory_namespaces=agents.memory_namespaces,
                        memory_history_turns=memory_settings.history_turns,
                        memory_recall_records=memory_settings.recall_records,
                    ),
                ),
            },
        )
        runtime = self.runtime
        agents.delivery_policies.precede(
            *(c for c in runtime.node.find_all() if isinstance(c, logs.CfnDeliveryDestination | logs.CfnDelivery))
        )
        for model in sorted({m for group in groups.values() for m in group.allowed}):
            grant_invoke(runtime.role, model_arns(self, model))
        grant_memory_data(agents.memory, key, runtime, write=False)
        agents.groups.grant_read(runtime)
        acknowledge_runtime_role(runtime)
        # AgentCore writes the agent's stdout to a log group named after the runtime, created on
        # first use unencrypted and kept forever: create it first, encrypted, with retention.
        # (AgentCore's online evaluation reads it too, and needs it to exist when it is created.)
        runtime_logs = context.log_group(
            self,
            f"{pascal_case(name)}RuntimeLogs",
            log_group_name=runtime_log_group_name(runtime),
        )
        # Its refusals of the groups document, as the agents environment's rollback alarm reads them.
        count_config_refusals(
            self,
            f"{pascal_case(name)}ConfigRefusals",
            log_group=runtime_logs,
            environment_name=agents.groups.location.environment_name,
            namespace=context.metrics_namespace,
        )
        # Online evaluation scores spans: with Transaction Search off (aws/spans absent) it has none.
        if config.account_settings.transaction_search != "off":
            self._online_evaluation(name, runtime_logs)
        CfnOutput(self, f"{pascal_case(name)}RuntimeArn", value=runtime.agent_runtime_arn)

    def _online_evaluation(self, name: str, runtime_logs: logs.ILogGroup) -> None:
        """AgentCore's built-in tool selection and parameter evaluators on a sample of the sessions.

        AgentCore checks what it reads when the configuration is created: the runtime's log group
        (created just before, here) and aws/spans (Transaction Search, in the foundation stack, which
        deploys first). Results go to a log group of the tier's (KMS, retention) rather than one
        AgentCore would create on first use."""
        runtime = self.runtime
        config_name = evaluation_name(self._context.prefix, name)
        results = self._context.log_group(
            self,
            f"{pascal_case(name)}EvaluationResults",
            log_group_name=evaluation_results_group(self._context.name, config_name),
            # Scores derive from the agent's own logs and spans, which are kept: nothing to retain.
            removal_policy=RemovalPolicy.DESTROY,
        )
        evaluation = agentcore.OnlineEvaluationConfig(
            self,
            f"{pascal_case(name)}Evaluation",
            online_evaluation_config_name=config_name,
            description=f"Built-in tool selection and parameter evaluators on {name}'s sessions",
            data_source=agentcore.DataSourceConfig.from_agent_runtime_endpoint(runtime),
            evaluators=[
                agentcore.EvaluatorSelector.builtin(agentcore.BuiltinEvaluator.TOOL_SELECTION_ACCURACY),
                agentcore.EvaluatorSelector.builtin(agentcore.BuiltinEvaluator.TOOL_PARAMETER_ACCURACY),
            ],
            sampling_percentage=self._context.config.observability.evaluation_sampling_percentage,
        )
        cfn = default_child(evaluation, agentcore.CfnOnlineEvaluationConfig)
        cfn.add_property_override("OutputConfig.CloudWatchConfig.LogGroupName", results.log_group_name)
        role = present(evaluation.execution_role, "the online evaluation's role")
        # CDK grants the index-policy actions on aws/spans only; AgentCore indexes the runtime's
        # log group as well. Both ARN forms, as CDK grants them on aws/spans (the actions are
        # authorized against whichever form the service asks with).
        runtime_logs_arn = log_group_arn(self, runtime_logs.log_group_name)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=INDEX_POLICY_ACTIONS, resources=[runtime_logs_arn, f"{runtime_logs_arn}:*"])
        )
        # CDK grants writes under the reserved prefix only; the results go to the tier's own group.
        results_arn = log_group_arn(self, results.log_group_name)
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=RESULT_WRITE_ACTIONS, resources=[results_arn, f"{results_arn}:*"])
        )
        # (CDK already makes it wait for its role's policy.)
        cfn.node.add_dependency(runtime_logs, results)
        acknowledge_inline_policy(role)
        logs_arn = nag_arn(self, "logs", "log-group:")
        runtime_group = f"{logs_arn}/aws/bedrock-agentcore/runtimes/{nag_attribute(runtime, 'AgentRuntimeId')}-DEFAULT"
        for finding, reason in (
            ("Resource::*", "logs:DescribeLogGroups has no resource-level permissions; it lists names only."),
            (
                "Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/*",
                "The built-in evaluators' judge model is AgentCore's choice, not configurable: it is invoked "
                "in whichever region and model AgentCore routes the evaluation to.",
            ),
            (
                f"Resource::{nag_arn(self, 'bedrock', 'inference-profile/*').replace(':us-east-1:', ':*:')}",
                "The judge model may be reached through a cross-region inference profile AgentCore picks.",
            ),
            (
                f"Resource::{logs_arn}/aws/bedrock-agentcore/evaluations/*",
                "CDK's grant for the group AgentCore would make under its reserved prefix; unused: the results go "
                "to the tier's own log group.",
            ),
            (
                f"Resource::{logs_arn}{nag_ref(results)}:*",
                "The evaluator writes its results to the log streams of this agent's own results log group.",
            ),
            (
                f"Resource::{runtime_group}:*",
                "The evaluator reads the log streams of this agent's own runtime log group.",
            ),
            (
                f"Resource::{logs_arn}aws/spans:*",
                "The evaluator reads the agent's spans from Transaction Search's aws/spans log group.",
            ),
            (
                f"Resource::{logs_arn}{nag_ref(runtime_logs)}:*",
                "AgentCore indexes this agent's runtime log group: the index-policy actions in both ARN forms, "
                "as CDK grants them on aws/spans.",
            ),
        ):
            acknowledge(role, f"AwsSolutions-IAM5[{finding}]", reason)


def acknowledge_runtime_role(runtime: agentcore.Runtime) -> None:
    """The execution role's statements the Runtime L2 writes for every runtime, with why."""
    role = runtime.role
    acknowledge_inline_policy(role)
    runtime_logs = nag_arn(runtime, "logs", "log-group:/aws/bedrock-agentcore/runtimes/*")
    workload_identities = nag_arn(
        runtime, "bedrock-agentcore", "workload-identity-directory/default/workload-identity/*"
    )
    asset_read = (
        "CDK's read grant on the code asset in the bootstrap bucket: the agent's zip is content-addressed "
        "there and read when the runtime is created or updated."
    )
    findings = [
        (
            f"Resource::{runtime_logs}",
            "AgentCore creates each runtime's own log group under this prefix, named after the runtime id "
            "(which exists only after this role), and writes the agent's stdout there.",
        ),
        (
            f"Resource::{runtime_logs}:log-stream:*",
            "The log streams AgentCore opens in the runtime's own log groups for the agent's stdout.",
        ),
        (
            f"Resource::{nag_arn(runtime, 'logs', 'log-group:*')}",
            "logs:DescribeLogGroups has no resource-level permissions; it lists log group names only.",
        ),
        (
            "Resource::*",
            "X-Ray's PutTraceSegments, PutTelemetryRecords and sampling actions have no resource-level "
            "permissions; cloudwatch:PutMetricData is held to the bedrock-agentcore namespace by a condition.",
        ),
        (
            f"Resource::{workload_identities}",
            "The runtime's workload identity is created by AgentCore together with the runtime and named after it.",
        ),
        ("Action::s3:GetBucket*", asset_read),
        ("Action::s3:GetObject*", asset_read),
        ("Action::s3:List*", asset_read),
        (f"Resource::arn:aws:s3:::{ASSETS_BUCKET}-{nag_account(runtime)}-{runtime.stack.region}/*", asset_read),
    ]
    for finding, reason in findings:
        acknowledge(role, f"AwsSolutions-IAM5[{finding}]", reason)
