"""The deployment's configuration: one frozen, validated model, read once from CDK context.

One module per capability, each with its models and what they share with the code that uses them;
``production`` and ``blueprint`` compose them, ``references`` checks names across sections,
``fields`` holds the field types shared between capabilities, and ``loader`` reads CDK context and
words the errors. docs/configuration.md is generated from these models (`make docs`).
"""

from ingestion.documents import DocumentFormat
from stacks.config.account_settings import AccountSettingMode, AccountSettingsConfig
from stacks.config.agents import AgentConfig, AgentMemoryConfig, AgentName, MemoryStrategyName
from stacks.config.api import GATEWAY_MARGIN_SECONDS, ApiConfig
from stacks.config.base import ConfigError, ConfigModel, KeyedError, Tier, TierConfig
from stacks.config.blueprint import BlueprintConfig
from stacks.config.connectors import ConnectorsConfig, PullConnectorConfig, PushConnectorConfig
from stacks.config.fields import (
    MODEL_ID_PATTERN,
    AccountId,
    Classification,
    Email,
    FieldPath,
    LogRetentionDays,
    Meaning,
    ModelId,
    Region,
    ToolName,
)
from stacks.config.functions import PRODUCTION_FUNCTIONS, FunctionConfig, FunctionName
from stacks.config.groups import GroupConfig, GroupModels, OutputQuota, OutputTypeConfig, UsagePlanConfig
from stacks.config.guardrail import PII_ENTITY_TYPES, DeniedTopic, FilterStrength, GuardrailConfig, PiiAction
from stacks.config.identity import IdentityConfig
from stacks.config.ingestion import (
    PII_LANGUAGES,
    ClassificationPolicy,
    CustomIdentifier,
    IngestionConfig,
)
from stacks.config.knowledge_base import (
    EMBEDDING_MODEL_DIMENSIONS,
    Chunking,
    FixedSizeChunking,
    HierarchicalChunking,
    KnowledgeBaseConfig,
    NoChunking,
    SemanticChunking,
    VectorStore,
)
from stacks.config.loader import CONTEXT_KEY, PIPELINE, TIER_CONTEXT_KEY, load_config, pipeline_selected, selected_tiers
from stacks.config.macie import MacieConfig, MacieSeverity
from stacks.config.observability import ObservabilityConfig
from stacks.config.pipeline import PipelineConfig
from stacks.config.production import ProductionConfig
from stacks.config.runtime_config import RuntimeConfigSettings
from stacks.config.sandbox import BudgetConfig, KendraConfig, QueryConfig, SandboxConfig
from stacks.config.tools import BUILTIN_TOOLS, LEGACY_TOOLS, LegacyApiConfig, all_tools

__all__ = [
    "BUILTIN_TOOLS",
    "CONTEXT_KEY",
    "EMBEDDING_MODEL_DIMENSIONS",
    "GATEWAY_MARGIN_SECONDS",
    "LEGACY_TOOLS",
    "MODEL_ID_PATTERN",
    "PII_ENTITY_TYPES",
    "PII_LANGUAGES",
    "PIPELINE",
    "PRODUCTION_FUNCTIONS",
    "TIER_CONTEXT_KEY",
    "AccountId",
    "AccountSettingMode",
    "AccountSettingsConfig",
    "AgentConfig",
    "AgentMemoryConfig",
    "AgentName",
    "ApiConfig",
    "BlueprintConfig",
    "BudgetConfig",
    "Chunking",
    "Classification",
    "ClassificationPolicy",
    "ConfigError",
    "ConfigModel",
    "ConnectorsConfig",
    "CustomIdentifier",
    "DeniedTopic",
    "DocumentFormat",
    "Email",
    "FieldPath",
    "FilterStrength",
    "FixedSizeChunking",
    "FunctionConfig",
    "FunctionName",
    "GroupConfig",
    "GroupModels",
    "GuardrailConfig",
    "HierarchicalChunking",
    "IdentityConfig",
    "IngestionConfig",
    "KendraConfig",
    "KeyedError",
    "KnowledgeBaseConfig",
    "LegacyApiConfig",
    "LogRetentionDays",
    "MacieConfig",
    "MacieSeverity",
    "Meaning",
    "MemoryStrategyName",
    "ModelId",
    "NoChunking",
    "ObservabilityConfig",
    "OutputQuota",
    "OutputTypeConfig",
    "PiiAction",
    "PipelineConfig",
    "ProductionConfig",
    "PullConnectorConfig",
    "PushConnectorConfig",
    "QueryConfig",
    "Region",
    "RuntimeConfigSettings",
    "SandboxConfig",
    "SemanticChunking",
    "Tier",
    "TierConfig",
    "ToolName",
    "UsagePlanConfig",
    "VectorStore",
    "all_tools",
    "load_config",
    "pipeline_selected",
    "selected_tiers",
]
