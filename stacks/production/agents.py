"""The agents: what they share, in one stack; each agent's runtime in a stack of its own
(stacks/production/agent.py), so the tier grows an agent at a time without nearing
CloudFormation's 500 resources or 1 MB per template.

Shared here: the AgentCore Memory, the AgentGroups runtime document (AppConfig, environment
"agents": the groups each agent serves and their models), and the vended-log delivery policies,
which are account-level quotas (10 CloudWatch Logs and 5 X-Ray resource policies per region) and so
cannot be one per agent: they name the agents' log groups and runtimes by pattern.

The runtime code is lambdas/agent (BedrockAgentCoreApp in app.py, the Strands turn in turn.py),
started under ADOT's opentelemetry-instrument and deployed as a code asset:
no Docker. The asset is put together at synth by a local bundler from the agent's package, the
shared package and the Linux arm64 dependencies `make agent-deps` builds into build/agent-deps.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    CfnOutput,
    DockerImage,
    Duration,
    ILocalBundling,
    Stack,
    aws_bedrockagentcore as agentcore,
    aws_cloudwatch as cloudwatch,
    aws_iam as iam,
    aws_kms as kms,
    aws_logs as logs,
)
from constructs import Construct

from agent.contract import AgentGroups, GroupModels
from shared.headers import CALLER_TOKEN_HEADER, PASSAGE_HEADER
from shared.runtime_config import ENVIRONMENT_DIMENSION, REFUSED_MESSAGE, REFUSED_METRIC
from stacks.config import AgentConfig, ProductionConfig
from stacks.config.agents import runtime_name as runtime_name
from stacks.production.context import ProductionContext
from stacks.shared.bytecode import (
    LAMBDAS_DIR,
    PROJECT_ROOT,
    copy_compiled,
    link_or_copy,
    package_digest,
    packages_digest,
)
from stacks.shared.lambda_function import SHARED_PACKAGES, build_digest
from stacks.shared.nag import acknowledge, acknowledge_inline_policy
from stacks.shared.runtime_config import RuntimeConfigDocument
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
# What lambdas/agent/memory.py calls (it only reads: the AI gateway writes guarded turns,
# shared/agent_memory.py), and what the memory's key must allow through the service for each.
MEMORY_ACTIONS = ("bedrock-agentcore:ListEvents", "bedrock-agentcore:RetrieveMemoryRecords")
MEMORY_KEY_ACTIONS = ("kms:Decrypt",)
MEMORY_WRITE_ACTIONS = ("bedrock-agentcore:CreateEvent",)
MEMORY_WRITE_KEY_ACTIONS = ("kms:GenerateDataKey", "kms:Decrypt")


def grant_memory_data(memory: agentcore.IMemory, key: kms.IKey, grantee: iam.IGrantable, *, write: bool) -> None:
    """The memory's data: read (MEMORY_ACTIONS) or write (MEMORY_WRITE_ACTIONS), with the tier key
    through AgentCore only, which its data plane uses for the caller (the memory is encrypted with it)."""
    memory.grant(grantee, *(MEMORY_WRITE_ACTIONS if write else MEMORY_ACTIONS))
    grantee.grant_principal.add_to_principal_policy(
        iam.PolicyStatement(
            actions=list(MEMORY_WRITE_KEY_ACTIONS if write else MEMORY_KEY_ACTIONS),
            resources=[key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"bedrock-agentcore.{Stack.of(memory).region}.amazonaws.com"}
            },
        )
    )


# The caller's token, which the AI gateway forwards and the agent verifies before it calls the tools
# gateway with it, and the gateway's passage for it (shared.passage), reach the agent only if named here.
FORWARDED_HEADERS = [CALLER_TOKEN_HEADER, PASSAGE_HEADER]


@jsii.implements(ILocalBundling)
class AgentBundle:
    """A runtime's code asset: its package (the agent, or another server on AgentCore Runtime
    such as web_mcp) and the shared packages with their bytecode (stacks/shared/bytecode.py), the
    agents' dependencies, the package's __main__.py as main.py at the root. Its hash
    (``asset_hash``) is what it is made of: the packages' digests and the dependencies' (`make
    agent-deps` writes it: versions, platform and bytecode alike), known before bundling, so a
    synth whose asset is already staged skips the bundle."""

    def __init__(self, package: str = AGENT_PACKAGE) -> None:
        if not AGENT_DEPS_DIR.is_dir():
            self.missing_dependencies()
        self.package = package
        self.digests = [(part, package_digest(part, LAMBDAS_DIR)) for part in (package, *SHARED_PACKAGES)]
        self.asset_hash = packages_digest([*self.digests, ("dependencies", build_digest(AGENT_DEPS_DIR))])

    @staticmethod
    def missing_dependencies() -> NoReturn:
        raise FileNotFoundError(
            f"agent dependencies not built at {AGENT_DEPS_DIR}: run `make agent-deps` (or `make synth`)"
        )

    def try_bundle(self, output_dir: str, options: Any = None) -> bool:
        out = Path(output_dir)
        # Hard links: the ~3,600 dependency files are read-only inputs, and copying them would cost
        # seconds per synth. Another filesystem (no links) falls back to copies.
        # (bin/ holds the entrypoint's opentelemetry-instrument, its first line made portable by make.)
        shutil.copytree(AGENT_DEPS_DIR, out, dirs_exist_ok=True, copy_function=link_or_copy)
        copy_compiled(self.digests, out)
        shutil.copyfile(LAMBDAS_DIR / self.package / "__main__.py", out / ENTRYPOINT[-1])
        return True


def bundle_hash(package: str = AGENT_PACKAGE) -> str:
    """The asset hash of the bundle running ``package`` (AgentBundle)."""
    return AgentBundle(package).asset_hash


def agent_artifact(package: str = AGENT_PACKAGE) -> agentcore.AgentRuntimeArtifact:
    """The code asset of a runtime running ``package`` (AgentBundle)."""
    bundle = AgentBundle(package)
    return agentcore.AgentRuntimeArtifact.from_code_asset(
        path=str(LAMBDAS_DIR / package),
        runtime=agentcore.AgentCoreRuntime.PYTHON_3_14,
        entrypoint=ENTRYPOINT,
        asset_hash=bundle.asset_hash,
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(
            image=DockerImage.from_registry("unused-local-bundling"),
            # jsii hands try_bundle the options as one positional struct, not the typed keywords.
            local=bundle,  # type: ignore[arg-type]
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


def agent_groups(config: ProductionConfig) -> AgentGroups:
    """The AgentGroups document: each configured agent's served groups and system prompt."""
    return AgentGroups(
        agents={name: served_groups(config, agent) for name, agent in config.agents.items()},
        prompts={name: agent.system_prompt for name, agent in config.agents.items()},
    )


def delivered_logs_prefix(tier: str) -> str:
    """Where the agents' vended logs (application and usage) go: one log group per agent under it."""
    return f"/aws/vendedlogs/{tier}/agents/"


class AgentsStack(Stack):
    """What the tier's agents share; each agent's runtime is in its own AgentStack.

    - One Memory, KMS-encrypted: short-term events kept ``agent_memory.event_expiry_days``,
      long-term strategies from config writing to namespaces per group and user.
    - The AgentGroups runtime document (AppConfig, environment "agents"): for each agent, the
      groups that may use it and their models, and its system prompt. One environment and one
      deployment for every agent: deployments to an environment run one at a time, each lasting
      the rollout's minutes.
    - The delivery policies that let CloudWatch deliver the agents' logs (log groups under
      :func:`delivered_logs_prefix`) and traces (runtimes named ``<prefix>_*``).
    """

    def __init__(self, scope: Construct, id: str, *, context: ProductionContext, **kwargs: Any) -> None:
        super().__init__(scope, id, **kwargs)
        prefix, config, key = context.prefix, context.config, context.key
        memory_settings = config.agent_memory
        self.memory = agentcore.Memory(
            self,
            "Memory",
            memory_name=f"{prefix.replace('-', '_')}_agents",
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
            # The memory's strategies run as its role: the memory waits for the role's policy, not
            # just the role.
            self.memory.node.find_child("Memory").node.add_dependency(self.memory.execution_role)
        self.memory_namespaces = tuple(MEMORY_NAMESPACES[name] for name in memory_settings.strategies)
        self.groups: RuntimeConfigDocument = context.config_environment(self, "agents").document(
            "groups",
            model=AgentGroups,
            content=agent_groups(config),
            description="The groups each agent serves, the models each group may use there, and each agent's prompt",
        )
        # By pattern: the agents' stacks deploy after this one (their log groups and runtimes cannot
        # be named here), and the policies are account quotas (one per agent would run out).
        self.delivery_policies = DeliveryPolicies.of(self)
        if config.agents:
            self.delivery_policies.allow_logs(
                logs.LogGroup.from_log_group_name(self, "DeliveredLogs", f"{delivered_logs_prefix(context.name)}*")
            )
            self.delivery_policies.allow_traces(
                self.format_arn(
                    service="bedrock-agentcore", resource="runtime", resource_name=runtime_name(prefix, "*")
                )
            )
        CfnOutput(self, "MemoryId", value=self.memory.memory_id)


def runtime_log_group_name(runtime: agentcore.IBedrockAgentRuntime) -> str:
    """The log group AgentCore writes a runtime's stdout to (its DEFAULT endpoint)."""
    return f"/aws/bedrock-agentcore/runtimes/{runtime.agent_runtime_id}-DEFAULT"


# How a runtime's refusal of a runtime document reaches CloudWatch. shared.runtime_config logs it
# with the standard library's logging and prints its EMF to stdout; on AgentCore Runtime, stdout
# goes to the runtime's log group, where CloudWatch is not documented to extract EMF, and the log
# record reaches that log group through ADOT's OpenTelemetry handler on the root logger (the
# runtime's default ADOT settings): an OTLP log record, its message the ``body``, its extra fields
# (``environment``, the document's AppConfig environment) ``attributes``.
REFUSED_BODY = "$.body"
REFUSED_ENVIRONMENT = "$.attributes.environment"


def count_config_refusals(
    scope: Construct, id: str, *, log_group: logs.ILogGroup, environment_name: str, namespace: str
) -> logs.MetricFilter:
    """A metric filter on a runtime's log group counting its refusals of ``environment_name``'s
    documents as the environment's rollback alarm reads them (REFUSED_METRIC by ENVIRONMENT_DIMENSION
    in ``namespace``), whatever becomes of the runtime's EMF. A metric filter's dimension is a field
    of the event its pattern matched (a fixed value is refused), so the pattern names the field's
    value too."""
    return logs.MetricFilter(
        scope,
        id,
        log_group=log_group,
        filter_pattern=logs.FilterPattern.all(
            logs.FilterPattern.string_value(REFUSED_BODY, "=", REFUSED_MESSAGE),
            logs.FilterPattern.string_value(REFUSED_ENVIRONMENT, "=", environment_name),
        ),
        metric_namespace=namespace,
        metric_name=REFUSED_METRIC,
        metric_value="1",
        dimensions={ENVIRONMENT_DIMENSION: REFUSED_ENVIRONMENT},
        unit=cloudwatch.Unit.COUNT,
    )


def _strategy(name: str) -> agentcore.IMemoryStrategy:
    namespaces = [MEMORY_NAMESPACES[name]]
    if name == "semantic":
        return agentcore.MemoryStrategy.using_semantic(strategy_name="facts", namespaces=namespaces)
    if name == "user_preference":
        return agentcore.MemoryStrategy.using_user_preference(strategy_name="preferences", namespaces=namespaces)
    return agentcore.MemoryStrategy.using_summarization(strategy_name="summaries", namespaces=namespaces)
