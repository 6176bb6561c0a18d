"""The agent's contract with its runtime (stacks/production/agent.py): the environment of each
AgentCore Runtime (one variable per field, shared.contract), and the runtime document every agent
reads the groups it serves from (AppConfig, environment "agents": shared.runtime_config). The
runtime's session header is shared.headers'.

Imports only the standard library, pydantic and shared's contract modules: the CDK app imports it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Self

from pydantic import Field, model_validator

from shared.contract import FunctionSettings
from shared.runtime_config import ConfigLocation, RuntimeDocument

# The longest an agent waits for one tool call's answer from the tools gateway (less when its turn
# is shorter): a tool that may take longer (config checks the web tools') answers an agent that
# has given up on it.
TOOL_CALL_SECONDS: Final = 20
# The tool calls a turn may make unless config says otherwise (agents.<name>.max_tool_calls).
MAX_TOOL_CALLS: Final = 20


class GroupModels(RuntimeDocument):
    """The models one group may use through an agent, and the one it gets unless it asks."""

    allowed: tuple[str, ...] = Field(min_length=1)
    default: str = Field(min_length=1)

    @model_validator(mode="after")
    def _default_is_allowed(self) -> Self:
        if self.default not in self.allowed:
            raise ValueError("default must be one of the allowed models")
        return self


class AgentGroups(RuntimeDocument):
    """The groups each agent serves, with their models, and each agent's system prompt, by agent
    name: one document for every agent. It grows with groups times agents and with prompts of up to
    4,000 characters, which is why it is a document and not variables (AgentCore holds 2,048
    characters per environment value); a prompt's change rolls out like any config change."""

    agents: dict[str, dict[str, GroupModels]]
    prompts: dict[str, str] = Field(default_factory=dict)

    def served_by(self, agent: str) -> Mapping[str, GroupModels]:
        """The groups ``agent`` serves: none when the document has no entry for it."""
        return self.agents.get(agent, {})

    def prompt_of(self, agent: str) -> str | None:
        """``agent``'s system prompt: None when the document has none for it (or a blank one)."""
        return self.prompts.get(agent) or None


class Settings(FunctionSettings):
    """One agent runtime's environment."""

    agent_name: str = Field(min_length=1)  # its entry (groups, prompt) in the AgentGroups document
    tools_gateway_url: str  # the tools gateway's MCP endpoint
    # The Cognito pool and app client whose access tokens the gateway forwards (verified here).
    token_issuer: str = Field(min_length=1)
    token_client_id: str = Field(min_length=1)
    groups: ConfigLocation  # the AgentGroups document
    max_iterations: int = Field(default=6, ge=1)
    # Tool calls per turn: one model answer may ask for any number (each one the caller's call through
    # the tools gateway). Config's agents.<name>.max_tool_calls.
    max_tool_calls: int = Field(default=MAX_TOOL_CALLS, ge=1)
    turn_seconds: int = Field(default=120, ge=1)
    memory_id: str | None = None  # None (or blank): no memory
    memory_namespaces: tuple[str, ...] = ()  # templates with {actorId} and {sessionId}
    memory_history_turns: int = Field(default=10, ge=0)
    memory_recall_records: int = Field(default=5, ge=0)


# What an agent's spans say (Strands reads OTEL_SEMCONV_STABILITY_OPT_IN when its tracer starts):
# tool names, definitions and arguments always, which AgentCore's tool selection and parameter
# evaluators read; the messages the model is sent only where content capture is on (the callers'
# guarded text, and the tool results fed back, which Strands records under the same attribute);
# answers, system prompts and tool results as the tool spans' own output never. ADOT's own
# Bedrock instrumentation records no message text either way.
TOOL_EVALUATION_ATTRIBUTES = ("gen_ai.tool.call.arguments",)
CALLER_TEXT_ATTRIBUTES = ("gen_ai.input.messages",)


# ADOT instruments every library it knows that is installed, and checking each costs start-up
# time: only what the agent uses is instrumented (AWS calls, the MCP client's HTTP, the runtime's
# own HTTP server, threads, log correlation); Strands and the MCP SDK make the gen-AI spans.
DISABLED_INSTRUMENTATIONS = (
    "aio-pika,aiobotocore,aiohttp-client,aiokafka,aiopg,asyncpg,aws-lambda,aws_crewai,aws_langchain,"
    "aws_llama-index,aws_mcp,aws_openai_agents,boto3,cassandra,celery,confluent_kafka,django,falcon,fastapi,"
    "flask,grpc_aio_client,grpc_aio_server,grpc_client,grpc_server,jinja2,kafka,mysql,mysqlclient,pika,"
    "psycopg2,pymemcache,pymongo,pymysql,pyramid,redis,remoulade,requests,sqlalchemy,sqlite3,system_metrics,"
    "tornado,tortoiseorm"
)


def span_environment(*, capture_content: bool) -> dict[str, str]:
    unredacted = TOOL_EVALUATION_ATTRIBUTES + (CALLER_TEXT_ATTRIBUTES if capture_content else ())
    return {
        "OTEL_SEMCONV_STABILITY_OPT_IN": "gen_ai_latest_experimental,gen_ai_tool_definitions,"
        f"gen_ai_unredacted_attributes={';'.join(unredacted)}",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false",
        "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": DISABLED_INSTRUMENTATIONS,
    }
