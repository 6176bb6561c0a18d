"""The production tier's stacks and how they depend on each other."""

from __future__ import annotations

from typing import Any, TypeVar

from aws_cdk import App, Environment, Stack, Stage

from stacks.config import ProductionConfig
from stacks.production.agent import AgentStack, agent_stack_name
from stacks.production.agents import AgentsStack
from stacks.production.foundation import FoundationStack
from stacks.production.gateway import GatewayStack
from stacks.production.gateway_keys import GatewayKeysStack
from stacks.production.identity import IdentityStack
from stacks.production.knowledge import KnowledgeStack
from stacks.production.observability import ObservabilityStack
from stacks.production.tools import ToolsStack

S = TypeVar("S", bound=Stack)


def production_stacks(app: App | Stage, *, prefix: str, config: ProductionConfig) -> list[Stack]:
    """Foundation (key, log archive) -> identity -> knowledge store and pipeline -> tools -> agents
    (what they share) -> one stack per agent -> AI gateway -> its groups' keys and usage plans ->
    observability."""
    env = Environment(account=config.account, region=config.region)

    def place(stack: type[S], id: str, **props: Any) -> S:
        """A stack of the tier in its environment, named as its id also in a pipeline's stage (which
        would prefix it)."""
        return stack(app, id, env=env, stack_name=id, **props)

    name = f"{prefix}-production"
    foundation = place(FoundationStack, f"{name}-foundation", prefix=prefix, config=config)
    identity = place(IdentityStack, f"{name}-identity", context=foundation.context)
    tier = foundation.context.with_identity(identity.identity)
    knowledge = place(KnowledgeStack, f"{name}-knowledge", context=tier, access_logs=foundation.access_logs)
    tools = place(ToolsStack, f"{name}-tools", context=tier, knowledge_base=knowledge.knowledge_base)
    agents = place(AgentsStack, f"{name}-agents", context=tier)
    agent_stacks = {
        agent: place(
            AgentStack,
            agent_stack_name(name, agent),
            context=tier,
            name=agent,
            agent=settings,
            agents=agents,
            tools_gateway=tools.gateway,
        )
        for agent, settings in config.agents.items()
    }
    runtimes = {agent: stack.runtime for agent, stack in agent_stacks.items()}
    gateway = place(GatewayStack, f"{name}-gateway", context=tier, agent_runtimes=runtimes, agent_memory=agents.memory)
    # The groups' API keys, usage plans and the authorizer's keys document: after the gateway, which
    # names nothing of them (its authorizer reads the document by name), so its size is flat in groups.
    gateway_keys = place(
        GatewayKeysStack,
        f"{name}-gateway-keys",
        context=tier,
        api=gateway.api,
        authorizer_role_name=gateway.authorizer_role.role_name,
    )
    observability = place(
        ObservabilityStack,
        f"{name}-observability",
        context=tier,
        # Quota is admitted by the buffered and the streaming function; agent turns run there and in
        # the jobs' worker: the quota rule and the live evaluator read each one's log group.
        quota_functions=gateway.generators,
        agent_turn_functions=[*gateway.generators, gateway.jobs.worker],
        agent_runtimes=runtimes,
        dead_letters=knowledge.ingestion.dlq,
        # What callers depend on (the sweeper: that admitted units come back): a failed invocation
        # pages. Not the authorizer: it refuses a bad token by failing (API Gateway's only way to
        # answer 401 from a TOKEN authorizer), so its Errors count every expired or junk token.
        paged_functions={
            "GatewayFunction": gateway.function,
            "GatewayStreamFunction": gateway.stream_function,
            "JobsWorker": gateway.jobs.worker,
            "JobsSweeper": gateway.jobs.sweeper,
            "PreTokenTrigger": identity.pre_token_function,
            **{function.node.id: function for function in tools.functions},
        },
    )
    return [
        foundation,
        identity,
        knowledge,
        tools,
        agents,
        *agent_stacks.values(),
        gateway,
        gateway_keys,
        observability,
    ]
