"""The agents: one AgentCore Runtime per configured agent, sharing one AgentCore Memory.

The runtime code is lambdas/agent (BedrockAgentCoreApp in app.py, the Strands turn in turn.py),
started under ADOT's opentelemetry-instrument and deployed as a code asset:
no Docker. The asset is put together at synth by a local bundler from the agent's package, the
shared package and the Linux arm64 dependencies `make agent-deps` builds into build/agent-deps.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    CfnOutput,
    DefaultStackSynthesizer,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
    aws_bedrockagentcore as agentcore,
    aws_iam as iam,
    aws_logs as logs,
)
from constructs import Construct

from agent.contract import GroupModels, Settings as AgentSettings, span_environment
from shared.headers import CALLER_TOKEN_HEADER
from stacks.config import AgentConfig, ProductionConfig
from stacks.production.context import ProductionContext
from stacks.shared.bedrock import grant_invoke, model_arns
from stacks.shared.lambda_function import (
    LAMBDAS_DIR,
    PROJECT_ROOT,
    SHARED_PACKAGES,
    environment_of,
    log_group_arn,
)
from stacks.shared.nag import acknowledge, acknowledge_inline_policy, nag_arn, nag_attribute
from stacks.shared.naming import pascal_case
from stacks.shared.vended_logs import DeliveryPolicies

AGENT_PACKAGE = "agent"
AGENT_DEPS_DIR = PROJECT_ROOT / "build" / "agent-deps"
# The runtime starts the agent under ADOT, which exports its spans (lambdas/agent/__main__.py,
# copied to main.py at the asset's root); AgentCore sets ADOT's own settings for a runtime.
ENTRYPOINT = ["opentelemetry-instrument", "main.py"]
# Namespaces the long-term strategies write to; the agent reads only the caller's own.
MEMORY_NAMESPACES: dict[str, str] = {
    "semantic": "/actors/{actorId}/facts",
    "user_preference": "/actors/{actorId}/preferences",
    "summary": "/actors/{actorId}/sessions/{sessionId}/summary",
}
# What lambdas/agent/memory.py calls (it only reads: the AI gateway writes guarded turns), and
# what the memory's key must allow through the service for it.
MEMORY_ACTIONS = ("bedrock-agentcore:ListEvents", "bedrock-agentcore:RetrieveMemoryRecords")
MEMORY_KEY_ACTIONS = ["kms:Decrypt"]
EVALUATION_RESULTS_PREFIX = "/aws/bedrock-agentcore/evaluations/results/"
# What AgentCore's online evaluation does to the log groups it reads (it indexes their fields).
INDEX_POLICY_ACTIONS = ["logs:DescribeIndexPolicies", "logs:PutIndexPolicy"]
# The caller's token, which the AI gateway forwards and the agent verifies before it calls the tools
# gateway with it, reaches the agent only if named here.
FORWARDED_HEADERS = [CALLER_TOKEN_HEADER]


@jsii.implements(ILocalBundling)
class AgentBundle:
    """The code asset: the agent and shared packages, their dependencies, main.py at the root."""

    @staticmethod
    def missing_dependencies() -> NoReturn:
        raise FileNotFoundError(
            f"agent dependencies not built at {AGENT_DEPS_DIR}: run `make agent-deps` (or `make synth`)"
        )

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        if not AGENT_DEPS_DIR.is_dir():
            self.missing_dependencies()
        out = Path(output_dir)
        # Hard links: the ~3,600 dependency files are read-only inputs, and copying them would cost
        # seconds per synth. Another filesystem (no links) falls back to copies.
        # (bin/ holds the entrypoint's opentelemetry-instrument, its first line made portable by make.)
        shutil.copytree(AGENT_DEPS_DIR, out, dirs_exist_ok=True, copy_function=_link_or_copy)
        for package in (AGENT_PACKAGE, *SHARED_PACKAGES):
            shutil.copytree(
                LAMBDAS_DIR / package,
                out / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "requirements.txt"),
            )
        shutil.copyfile(LAMBDAS_DIR / AGENT_PACKAGE / "__main__.py", out / ENTRYPOINT[-1])
        return True


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def bundle_hash() -> str:
    """What the bundle is made of: the packages' files and the installed distributions (names carry
    versions). Known before bundling, so a synth whose asset is already staged skips the bundle."""
    if not AGENT_DEPS_DIR.is_dir():
        AgentBundle.missing_dependencies()
    digest = hashlib.sha256()
    for package in (AGENT_PACKAGE, *SHARED_PACKAGES):
        for path in sorted((LAMBDAS_DIR / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(LAMBDAS_DIR)}\n".encode())
                digest.update(path.read_bytes())
    for distribution in sorted(p.name for p in AGENT_DEPS_DIR.glob("*.dist-info")):
        digest.update(f"{distribution}\n".encode())
    return digest.hexdigest()


def agent_artifact() -> agentcore.AgentRuntimeArtifact:
    return agentcore.AgentRuntimeArtifact.from_code_asset(
        path=str(LAMBDAS_DIR / AGENT_PACKAGE),
        runtime=agentcore.AgentCoreRuntime.PYTHON_3_14,
        entrypoint=ENTRYPOINT,
        asset_hash=bundle_hash(),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused-local-bundling"),
            # jsii hands try_bundle the options as one positional struct, not the typed keywords.
            local=AgentBundle(),  # type: ignore[arg-type]
        ),
    )


def captures_content(config: ProductionConfig, groups: Mapping[str, GroupModels]) -> bool:
    """Whether an agent's spans carry its callers' messages: only where config allows it and
    every group it serves is internal."""
    return config.observability.capture_content == "internal" and all(
        config.groups[name].kind == "internal" for name in groups
    )


def served_groups(config: ProductionConfig, agent: AgentConfig) -> dict[str, GroupModels]:
    """The groups that may use an agent (those with a quota for one of its output types), with
    the models each may use there."""
    return {
        name: GroupModels(allowed=tuple(group.models.allowed), default=group.models.default)
        for name, group in config.groups.items()
        if set(agent.output_types) & set(group.output_quotas)
    }


class AgentsStack(Stack):
    """Agents on AgentCore Runtime and their memory.

    - One Memory, KMS-encrypted: short-term events kept ``agent_memory.event_expiry_days``,
      long-term strategies from config writing to namespaces per group and user.
    - One Runtime per ``agents.<name>``: IAM inbound auth (the AI gateway's role is the only
      invoker), the caller's token forwarded in one allowlisted custom header for the agent to
      verify, tracing on, application and usage logs delivered to a KMS-encrypted log group, idle
      sessions ended per config.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        context: ProductionContext,
        tools_gateway: agentcore.Gateway,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, id, **kwargs)
        prefix, config, key = context.prefix, context.config, context.key
        user_pool, client = context.identity.user_pool, context.identity.client
        self._context = context
        underscored = prefix.replace("-", "_")
        memory_settings = config.agent_memory
        self.memory = agentcore.Memory(
            self,
            "Memory",
            memory_name=f"{underscored}_agents",
            description="Agent sessions (short-term events) and what is learned per group and user",
            expiration_duration=Duration.days(memory_settings.event_expiry_days),
            kms_key=key,
            memory_strategies=[_strategy(name) for name in memory_settings.strategies],
        )
        if self.memory.execution_role is not None:
            acknowledge_inline_policy(self.memory.execution_role)
            acknowledge(
                self.memory.execution_role,
                "AwsSolutions-IAM5[Action::kms:ReEncrypt*]",
                "CDK's grant for the memory to use the tier key (ReEncryptFrom/To) on that one key only.",
            )
        namespaces = [MEMORY_NAMESPACES[name] for name in memory_settings.strategies]
        self.runtimes: dict[str, agentcore.Runtime] = {}
        for name, agent in config.agents.items():
            groups = served_groups(config, agent)
            log_group = context.log_group(
                self,
                f"{pascal_case(name)}Logs",
            )
            runtime = agentcore.Runtime(
                self,
                pascal_case(name),
                runtime_name=f"{underscored}_{name}",
                description=agent.description,
                # One asset per runtime: CDK grants each runtime's role read on its own asset.
                agent_runtime_artifact=agent_artifact(),
                # IAM inbound auth: only a principal granted InvokeAgentRuntime (the AI gateway's role)
                # can reach the agent; a user's token alone cannot.
                authorizer_configuration=agentcore.RuntimeAuthorizerConfiguration.using_iam(),
                request_header_configuration=agentcore.RequestHeaderConfiguration(
                    allowlisted_headers=FORWARDED_HEADERS
                ),
                lifecycle_configuration=agentcore.LifecycleConfiguration(
                    idle_runtime_session_timeout=Duration.minutes(agent.idle_session_minutes)
                ),
                tracing_enabled=True,
                # CDK's own delivery policy names no log stream (its log-group ARN ends in ":*").
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
                    **span_environment(capture_content=captures_content(config, groups)),
                    **environment_of(
                        self,
                        AgentSettings(
                            agent_name=name,
                            system_prompt=agent.system_prompt,
                            tools_gateway_url=tools_gateway.gateway_url or "",
                            token_issuer=f"https://cognito-idp.{self.region}.amazonaws.com/{user_pool.user_pool_id}",
                            token_client_id=client.user_pool_client_id,
                            group_models=groups,
                            max_iterations=agent.max_iterations,
                            turn_seconds=agent.turn_seconds,
                            memory_id=self.memory.memory_id,
                            memory_namespaces=tuple(namespaces),
                            memory_history_turns=memory_settings.history_turns,
                            memory_recall_records=memory_settings.recall_records,
                        ),
                    ),
                },
            )
            policies = DeliveryPolicies.of(self)
            policies.allow_logs(log_group)
            policies.allow_traces(runtime.agent_runtime_arn)
            policies.precede(
                *(c for c in runtime.node.find_all() if isinstance(c, logs.CfnDeliveryDestination | logs.CfnDelivery))
            )
            for model in sorted({m for group in groups.values() for m in group.allowed}):
                grant_invoke(runtime.role, model_arns(self, model))
            self.memory.grant(runtime, *MEMORY_ACTIONS)
            # The memory is encrypted with the tier key: its data plane uses the key for the caller.
            runtime.role.add_to_principal_policy(
                iam.PolicyStatement(
                    actions=MEMORY_KEY_ACTIONS,
                    resources=[key.key_arn],
                    conditions={"StringEquals": {"kms:ViaService": f"bedrock-agentcore.{self.region}.amazonaws.com"}},
                )
            )
            _acknowledge_runtime_role(runtime)
            # AgentCore writes the agent's stdout to a log group named after the runtime, created on
            # first use unencrypted and kept forever: create it first, encrypted, with retention.
            # (AgentCore's online evaluation reads it too, and needs it to exist when it is created.)
            runtime_logs = context.log_group(
                self,
                f"{pascal_case(name)}RuntimeLogs",
                log_group_name=runtime_log_group_name(runtime),
            )
            # Online evaluation scores spans: with Transaction Search off (aws/spans absent) it has none.
            if config.account_settings.transaction_search != "off":
                self._online_evaluation(prefix, name, runtime, runtime_logs, config)
            self.runtimes[name] = runtime
            CfnOutput(self, f"{pascal_case(name)}RuntimeArn", value=runtime.agent_runtime_arn)
        CfnOutput(self, "MemoryId", value=self.memory.memory_id)
        # The memory's strategies run as its role: the memory waits for the role's policy (complete
        # only now that every grant is in), not just the role.
        if self.memory.execution_role is not None:
            self.memory.node.find_child("Memory").node.add_dependency(self.memory.execution_role)

    def _online_evaluation(
        self,
        prefix: str,
        name: str,
        runtime: agentcore.Runtime,
        runtime_logs: logs.ILogGroup,
        config: ProductionConfig,
    ) -> None:
        """AgentCore's built-in tool selection and parameter evaluators on a sample of the sessions.

        AgentCore checks what it reads when the configuration is created: the runtime's log group
        (created just before, here) and aws/spans (Transaction Search, in the foundation stack, which
        deploys first). Results go to a log group of the tier's (KMS, retention) rather than one
        AgentCore would create on first use."""
        config_name = f"{prefix.replace('-', '_')}_{name}_tools"[:48]
        results = self._context.log_group(
            self,
            f"{pascal_case(name)}EvaluationResults",
            log_group_name=f"{EVALUATION_RESULTS_PREFIX}{config_name}",
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
            sampling_percentage=config.observability.evaluation_sampling_percentage,
        )
        cfn = evaluation.node.default_child
        assert isinstance(cfn, agentcore.CfnOnlineEvaluationConfig)
        cfn.add_property_override("OutputConfig.CloudWatchConfig.LogGroupName", results.log_group_name)
        role = evaluation.execution_role
        assert role is not None
        # CDK grants the index-policy actions on aws/spans only; AgentCore indexes the runtime's
        # log group as well.
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=INDEX_POLICY_ACTIONS, resources=[log_group_arn(self, runtime_logs.log_group_name)]
            )
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
                "AgentCore writes each evaluation's results under this prefix (here: the tier's results log group).",
            ),
            (
                f"Resource::{runtime_group}:*",
                "The evaluator reads the log streams of this agent's own runtime log group.",
            ),
            (
                f"Resource::{logs_arn}aws/spans:*",
                "The evaluator reads the agent's spans from Transaction Search's aws/spans log group.",
            ),
        ):
            acknowledge(role, f"AwsSolutions-IAM5[{finding}]", reason)


def runtime_log_group_name(runtime: agentcore.IBedrockAgentRuntime) -> str:
    """The log group AgentCore writes a runtime's stdout to (its DEFAULT endpoint)."""
    return f"/aws/bedrock-agentcore/runtimes/{runtime.agent_runtime_id}-DEFAULT"


def _strategy(name: str) -> agentcore.IMemoryStrategy:
    namespaces = [MEMORY_NAMESPACES[name]]
    if name == "semantic":
        return agentcore.MemoryStrategy.using_semantic(strategy_name="facts", namespaces=namespaces)
    if name == "user_preference":
        return agentcore.MemoryStrategy.using_user_preference(strategy_name="preferences", namespaces=namespaces)
    return agentcore.MemoryStrategy.using_summarization(strategy_name="summaries", namespaces=namespaces)


# The CDK bootstrap bucket that holds assets, as cdk-nag prints it (default qualifier).
ASSETS_BUCKET = f"cdk-{DefaultStackSynthesizer.DEFAULT_QUALIFIER}-assets"


def _acknowledge_runtime_role(runtime: agentcore.Runtime) -> None:
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
        (f"Resource::arn:aws:s3:::{ASSETS_BUCKET}-<AWS::AccountId>-{runtime.stack.region}/*", asset_read),
    ]
    for finding, reason in findings:
        acknowledge(role, f"AwsSolutions-IAM5[{finding}]", reason)
