"""The production tier's stacks and how they depend on each other."""

from __future__ import annotations

from typing import Any

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


def production_stacks(app: App | Stage, *, prefix: str, config: ProductionConfig) -> list[Stack]:
    """Foundation (key, log archive) -> identity -> knowledge store and pipeline -> tools -> agents
    (what they share) -> one stack per agent -> AI gateway -> its groups' keys and usage plans ->
    observability."""
    env = Environment(account=config.account, region=config.region)

    def at(id: str) -> dict[str, Any]:
        """Where a stack goes, named as its id also in a pipeline's stage (which would prefix it)."""
        return {"env": env, "stack_name": id}

    name = f"{prefix}-production"
    foundation = FoundationStack(app, f"{name}-foundation", prefix=prefix, config=config, **at(f"{name}-foundation"))
    identity = IdentityStack(app, f"{name}-identity", context=foundation.context, **at(f"{name}-identity"))
    tier = foundation.context.with_identity(identity.user_pool, identity.client)
    knowledge = KnowledgeStack(
        app, f"{name}-knowledge", context=tier, access_logs=foundation.access_logs, **at(f"{name}-knowledge")
    )
    tools = ToolsStack(
        app, f"{name}-tools", context=tier, knowledge_base=knowledge.knowledge_base, **at(f"{name}-tools")
    )
    agents = AgentsStack(app, f"{name}-agents", context=tier, **at(f"{name}-agents"))
    agent_stacks = {
        agent: AgentStack(
            app,
            agent_stack_name(name, agent),
            context=tier,
            name=agent,
            agent=settings,
            agents=agents,
            tools_gateway=tools.gateway,
            **at(agent_stack_name(name, agent)),
        )
        for agent, settings in config.agents.items()
    }
    runtimes = {agent: stack.runtime for agent, stack in agent_stacks.items()}
    gateway = GatewayStack(
        app,
        f"{name}-gateway",
        context=tier,
        agent_runtimes=runtimes,
        agent_memory=agents.memory,
        **at(f"{name}-gateway"),
    )
    # The groups' API keys, usage plans and the authorizer's keys document: after the gateway, which
    # names nothing of them (its authorizer reads the document by name), so its size is flat in groups.
    gateway_keys = GatewayKeysStack(
        app,
        f"{name}-gateway-keys",
        context=tier,
        api=gateway.api,
        authorizer_role_name=gateway.authorizer_role.role_name,
        **at(f"{name}-gateway-keys"),
    )
    observability = ObservabilityStack(
        app,
        f"{name}-observability",
        context=tier,
        gateway_function=gateway.function,
        agent_runtimes=runtimes,
        dead_letters=knowledge.ingestion.dlq,
        **at(f"{name}-observability"),
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
