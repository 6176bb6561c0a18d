"""The production tier: every capability's config, and the checks across them (references.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, ModelWrapValidatorHandler, ValidationError, field_validator, model_validator

from stacks.config.account_settings import AccountSettingsConfig
from stacks.config.agents import AgentConfig, AgentMemoryConfig, AgentName
from stacks.config.api import ApiConfig
from stacks.config.base import KeyedError, TierConfig
from stacks.config.connectors import ConnectorsConfig
from stacks.config.fields import GroupName, LogRetentionDays, SnakeName, TargetName, ToolName
from stacks.config.functions import (
    DEDICATED_SNAP_START,
    DEDICATED_TIMEOUTS,
    NOT_RESERVED,
    SNAP_START_DEFAULTS,
    FunctionConfig,
    FunctionName,
)
from stacks.config.groups import GroupConfig, OutputTypeConfig
from stacks.config.guardrail import GuardrailConfig
from stacks.config.identity import IdentityConfig
from stacks.config.ingestion import IngestionConfig
from stacks.config.knowledge_base import KnowledgeBaseConfig, VectorStore
from stacks.config.macie import MacieConfig
from stacks.config.observability import ObservabilityConfig
from stacks.config.references import plain, reference_problems, with_problems
from stacks.config.runtime_config import RuntimeConfigSettings
from stacks.config.tools import LegacyApiConfig
from stacks.config.web import WebConfig


class ProductionConfig(TierConfig):
    """The production tier: identity, the AI gateway, agents and tools, ingestion, observability."""

    log_retention_days: LogRetentionDays = Field(
        default=365,
        description="Days the production log groups keep their events (they are kept when the stacks are "
        "deleted); also how long the access-log bucket keeps objects.",
    )
    identity: IdentityConfig = Field(default=IdentityConfig(), description="The Cognito user pool.")
    api: ApiConfig = Field(default=ApiConfig(), description="The AI gateway's REST API.")
    guardrail: GuardrailConfig = Field(
        default=GuardrailConfig(), description="The Bedrock Guardrail on every gateway input and output."
    )
    output_types: dict[SnakeName, OutputTypeConfig] = Field(
        min_length=1,
        description='Output-priced workloads by name: POST /v1/outputs/<name>, and "chat" for POST /v1/chat.',
    )
    knowledge_base: KnowledgeBaseConfig = Field(
        default=KnowledgeBaseConfig(documents_prefix="curated/"),
        description="The production Knowledge Base over the curated bucket's prefix (vector_store keeps its vectors).",
    )
    legacy_apis: dict[TargetName, LegacyApiConfig] = Field(
        default_factory=dict,
        description="Legacy REST APIs served to agents as MCP tools, by gateway target name (e.g. orders).",
    )
    groups: dict[GroupName, GroupConfig] = Field(
        min_length=1, description="The gateway's groups, by Cognito group name: who may call what, and how much."
    )
    tool_requests_per_minute: dict[ToolName, Annotated[int, Field(ge=1, le=1_000_000)]] = Field(
        default_factory=dict,
        description="Calls per minute each tool (knowledge_search or a legacy API's tool) takes from everyone "
        "together, to protect the systems behind it; tools not named get default_tool_requests_per_minute.",
    )
    default_tool_requests_per_minute: int = Field(
        default=600, ge=1, le=1_000_000, description="Calls per minute of each tool not in tool_requests_per_minute."
    )
    agents: dict[AgentName, AgentConfig] = Field(
        default_factory=dict,
        description="Agents on AgentCore Runtime, by name; the gateway routes their output types to them.",
    )
    agent_memory: AgentMemoryConfig = Field(
        default=AgentMemoryConfig(), description="The AgentCore Memory the agents share."
    )
    vector_store: VectorStore = Field(
        default="s3_vectors",
        description="Where the production Knowledge Base keeps its vectors: S3 Vectors, or OpenSearch Serverless "
        "for larger corpora and lower query latency (an always-on collection, billed by the hour even idle).",
    )
    ingestion: IngestionConfig = Field(description="The document pipeline and its classifications.")
    web: WebConfig = Field(default=WebConfig(), description="The web tools' MCP server (web_fetch, web_browse).")
    connectors: ConnectorsConfig = Field(
        default=ConnectorsConfig(), description="Push and pull connectors into the pipeline."
    )
    macie: MacieConfig = Field(default=MacieConfig(), description="Macie sensitive-data discovery.")
    observability: ObservabilityConfig = Field(
        default=ObservabilityConfig(), description="Dashboards, alarms and evaluation."
    )
    runtime_config: RuntimeConfigSettings = Field(
        default=RuntimeConfigSettings(),
        description="How a changed runtime document (groups, prices, quotas, models, tool bindings) rolls out "
        "through AWS AppConfig to the functions and agents that read it.",
    )
    account_settings: AccountSettingsConfig = Field(
        default=AccountSettingsConfig(), description="How the tier treats each one-per-account setting it needs."
    )
    functions: dict[FunctionName, FunctionConfig] = Field(
        default_factory=dict,
        description="Memory, timeout, SnapStart and reserved concurrency by function (the package under lambdas/ it "
        "runs; macie_findings is the Macie responder); a function not named, or a value not set, keeps what the stack "
        "gives it. "
        "ai_gateway's, ingestion's and legacy_tools' timeouts have their own keys (api.integration_timeout_seconds, "
        "ingestion.processor_timeout_seconds, legacy_apis.<name>.timeout_seconds and max_attempts), since other "
        "limits are derived from them there; so has ai_gateway's and gateway_authorizer's SnapStart (api.snap_start).",
    )

    @field_validator("functions")
    @classmethod
    def _keys_with_their_own_rules(cls, functions: dict[str, FunctionConfig]) -> dict[str, FunctionConfig]:
        for name, key in DEDICATED_TIMEOUTS.items():
            configured = functions.get(name)
            if configured is not None and configured.timeout_seconds is not None:
                raise KeyedError((name, "timeout_seconds"), f"this timeout is set by production.{key}", allowed="unset")
        for name, why in NOT_RESERVED.items():
            configured = functions.get(name)
            if configured is not None and configured.reserved_concurrency is not None:
                raise KeyedError((name, "reserved_concurrency"), why, allowed="unset")
        for name, configured in functions.items():
            if configured.snap_start is None or name in SNAP_START_DEFAULTS:
                continue
            why = (
                f"this switch is production.{DEDICATED_SNAP_START[name]}"
                if name in DEDICATED_SNAP_START
                else "SnapStart is offered for the functions a caller waits on that load the AWS SDK at start: "
                + ", ".join(SNAP_START_DEFAULTS)
            )
            raise KeyedError((name, "snap_start"), why, allowed="unset")
        return functions

    @model_validator(mode="wrap")
    @classmethod
    def _check_references(cls, data: Any, handler: ModelWrapValidatorHandler[ProductionConfig]) -> ProductionConfig:
        """Field errors and broken references between sections, reported together."""
        if not isinstance(data, Mapping):
            return handler(data)
        problems = reference_problems(plain(data))
        try:
            config = handler(data)
        except ValidationError as error:
            raise with_problems(cls, error.errors(), problems) from None
        if problems:
            raise with_problems(cls, [], problems)
        return config

    def agent_routes(self) -> dict[str, str]:
        """Output type -> the agent that produces it (output types not named go to a model)."""
        return {output: name for name, agent in self.agents.items() for output in agent.output_types}
