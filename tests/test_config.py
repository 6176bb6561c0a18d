"""The config model: cdk.json is valid, overrides work, and every bad value names its key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from stacks.config import (
    BlueprintConfig,
    ConfigError,
    FixedSizeChunking,
    HierarchicalChunking,
    Tier,
    load_config,
    selected_tiers,
)


def test_cdk_json_is_a_valid_config(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context)
    assert isinstance(config, BlueprintConfig)
    assert config.prefix == "genai"
    assert config.sandbox.kendra.enabled is True
    assert config.sandbox.knowledge_base.chunking == FixedSizeChunking(
        strategy="FIXED_SIZE", max_tokens=300, overlap_percentage=20
    )


def test_config_is_frozen(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context)
    with pytest.raises(ValueError, match="frozen"):
        config.sandbox.kendra.enabled = False  # type: ignore[misc]


def test_dotted_overrides_are_parsed_as_json_or_kept_as_strings(cdk_context: dict[str, Any]) -> None:
    config = load_config(
        {
            **cdk_context,
            "blueprint.sandbox.kendra.enabled": "false",
            "blueprint.sandbox.budget.alert_emails": '["a@example.com", "b@example.com"]',
            "blueprint.sandbox.query.generation_model_id": "us.amazon.nova-pro-v1:0",
            "blueprint.sandbox.knowledge_base.chunking": '{"strategy": "HIERARCHICAL"}',
        }
    )
    assert config.sandbox.kendra.enabled is False
    assert config.sandbox.budget.alert_emails == ("a@example.com", "b@example.com")
    assert config.sandbox.query.generation_model_id == "us.amazon.nova-pro-v1:0"
    assert isinstance(config.sandbox.knowledge_base.chunking, HierarchicalChunking)


def test_a_numeric_account_override_is_taken_as_the_account_id(cdk_context: dict[str, Any]) -> None:
    config = load_config({**cdk_context, "blueprint.sandbox.account": "123456789012"})
    assert config.sandbox.account == "123456789012"


def test_overrides_leave_the_cdk_json_context_untouched(cdk_context: dict[str, Any]) -> None:
    before = copy.deepcopy(cdk_context)
    load_config({**cdk_context, "blueprint.prefix": "other"})
    assert cdk_context == before


def test_whole_config_can_be_given_as_a_json_string(cdk_context: dict[str, Any]) -> None:
    config = load_config({"blueprint": json.dumps({**cdk_context["blueprint"], "prefix": "team-a"})})
    assert config.prefix == "team-a"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("prefix", "Bad_Prefix", "blueprint.prefix = 'Bad_Prefix': String should match pattern"),
        ("sandbox.region", "mars-1", "blueprint.sandbox.region = 'mars-1': String should match pattern"),
        ("sandbox.account", "12345", "blueprint.sandbox.account = 12345: String should match pattern '^\\d{12}$'"),
        ("sandbox.log_retention_days", "10", "blueprint.sandbox.log_retention_days = 10: Input should be 1, 3, 5"),
        (
            "sandbox.kendra.enabled",
            "maybe",
            "blueprint.sandbox.kendra.enabled = 'maybe': Input should be a valid boolean",
        ),
        (
            "sandbox.kendra.edition",
            "CHEAP",
            "blueprint.sandbox.kendra.edition = 'CHEAP': Input should be 'DEVELOPER_EDITION' or 'ENTERPRISE_EDITION'",
        ),
        (
            "sandbox.kendra.sync_schedule",
            "daily",
            "blueprint.sandbox.kendra.sync_schedule = 'daily': String should match",
        ),
        (
            "sandbox.knowledge_base.embedding_model_id",
            "acme.embed",
            "blueprint.sandbox.knowledge_base.embedding_model_id = 'acme.embed': allowed values are amazon.titan-embed-text-v2:0,",
        ),
        (
            "sandbox.knowledge_base.embedding_dimensions",
            "768",
            "blueprint.sandbox.knowledge_base.embedding_dimensions = 768: amazon.titan-embed-text-v2:0 produces vectors "
            "of 256, 512, 1024 dimensions only",
        ),
        (
            "sandbox.knowledge_base.chunking.strategy",
            "WORDS",
            "blueprint.sandbox.knowledge_base.chunking.strategy = 'WORDS': allowed values are "
            "'FIXED_SIZE', 'HIERARCHICAL', 'SEMANTIC', 'NONE'",
        ),
        (
            "sandbox.knowledge_base.chunking.overlap_percentage",
            "0",
            "blueprint.sandbox.knowledge_base.chunking.overlap_percentage = 0: Input should be greater than or equal to 1",
        ),
        (
            "sandbox.knowledge_base.documents_prefix",
            "docs",
            "blueprint.sandbox.knowledge_base.documents_prefix = 'docs': String should match pattern",
        ),
        (
            "sandbox.budget.monthly_limit_usd",
            "0",
            "blueprint.sandbox.budget.monthly_limit_usd = 0: Input should be greater than 0",
        ),
        (
            "sandbox.budget.alert_emails",
            "[]",
            "blueprint.sandbox.budget.alert_emails = []: Tuple should have at least 1 item",
        ),
        (
            "sandbox.budget.alert_emails",
            '["not-an-address"]',
            "blueprint.sandbox.budget.alert_emails.0 = 'not-an-address': String should match pattern",
        ),
        ("sandbox.expires_on", "someday", "blueprint.sandbox.expires_on = 'someday': Input should be a valid date"),
        (
            "sandbox.query.max_question_chars",
            "5000",
            "blueprint.sandbox.query.max_question_chars = 5000: Input should be less than or equal to 1000",
        ),
        (
            "sandbox.query.generation_model_id",
            "gpt-4",
            "blueprint.sandbox.query.generation_model_id = 'gpt-4': String should match pattern",
        ),
        (
            "production.agents.report_writer.output_types",
            '["report", "memo"]',
            "blueprint.production.agents.report_writer.output_types.1: unknown output type memo; "
            "allowed: chat, summary, report, research_brief",
        ),
        (
            "production.agents.report_writer.output_types",
            '["chat"]',
            "blueprint.production.agents.report_writer.output_types.0: output type chat is already served by "
            "agent support_assistant; allowed: one agent",
        ),
        (
            "production.agents.report_writer.turn_seconds",
            "60",
            "blueprint.production.agents.report_writer.turn_seconds: 60 s does not fit the gateway's 24 s for an "
            "agent turn; allowed: at most 24 (or raise api.integration_timeout_seconds)",
        ),
        (
            "production.agent_memory.strategies",
            '["semantic", "episodic"]',
            "blueprint.production.agent_memory.strategies.1 = 'episodic': Input should be 'semantic', 'summary' or "
            "'user_preference'",
        ),
        (
            "production.agent_memory.event_expiry_days",
            "3",
            "blueprint.production.agent_memory.event_expiry_days = 3: Input should be greater than or equal to 7",
        ),
        (
            "production.ingestion.default_classification",
            "secret",
            "blueprint.production.ingestion.classifications: no policy for the default classification secret; "
            "allowed: a policy for it",
        ),
        (
            "production.connectors.push.sources",
            '{"crm": "secret"}',
            "blueprint.production.connectors.push.sources.crm: unknown classification secret; "
            "allowed: public, internal, confidential, customer",
        ),
        (
            "production.ingestion.formats",
            '["txt", "pdf"]',
            "blueprint.production.ingestion.formats.1 = 'pdf': Input should be 'txt', 'md', 'csv', 'json' or 'html'",
        ),
        (
            "production.ingestion.custom_identifiers",
            '{"badge": {"regex": "[unclosed"}}',
            "blueprint.production.ingestion.custom_identifiers.badge.regex = '[unclosed': not a regular expression",
        ),
        (
            "production.macie.min_severity",
            "Critical",
            "blueprint.production.macie.min_severity = 'Critical': Input should be 'Low', 'Medium' or 'High'",
        ),
        (
            "production.observability.tool_accuracy_floor",
            "1.5",
            "blueprint.production.observability.tool_accuracy_floor = 1.5: Input should be less than or equal to 1",
        ),
        (
            "production.observability.invocation_log_days",
            "10",
            "blueprint.production.observability.invocation_log_days = 10: Input should be 1, 3, 5",
        ),
        (
            "production.account_settings.macie",
            "create",
            "blueprint.production.account_settings.macie = 'create': Input should be 'manage', 'adopt' or 'off'",
        ),
        (
            "production.observability.trace_indexing_percentage",
            "101",
            "blueprint.production.observability.trace_indexing_percentage = 101: Input should be less than or equal to 100",
        ),
        (
            "tags",
            '{"aws:owner": "me"}',
            "blueprint.tags = {'aws:owner': 'me'}: tag key 'aws:owner' is not a valid AWS tag key",
        ),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_key_value_and_what_is_allowed(
    cdk_context: dict[str, Any], key: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config({**cdk_context, f"blueprint.{key}": value})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(expected), message


def test_an_unknown_key_lists_the_keys_allowed_there(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config({**cdk_context, "blueprint.sandbox.kendra.edtion": "DEVELOPER_EDITION"})
    assert str(error.value) == (
        "blueprint.sandbox.kendra.edtion: unknown key; allowed keys here are enabled, edition, sync_schedule"
    )


def test_the_retired_account_switches_point_to_account_settings(cdk_context: dict[str, Any]) -> None:
    """macie.create_session and observability.invocation_logging became account_settings.*: a config
    that still sets them fails and says which keys there are now."""
    for key, allowed in (
        ("production.macie.create_session", "allow_list_regex, schedule"),
        ("production.observability.invocation_logging", "invocation_log_days, trace_indexing_percentage"),
    ):
        with pytest.raises(ConfigError) as error:
            load_config({**cdk_context, f"blueprint.{key}": "false"})
        assert str(error.value).startswith(f"blueprint.{key}: unknown key; allowed keys here are ")
        assert allowed in str(error.value)


def test_account_settings_default_to_adopt(cdk_context: dict[str, Any]) -> None:
    context = json.loads(json.dumps(cdk_context))
    del context["blueprint"]["production"]["account_settings"]
    settings = load_config(context).production.account_settings
    assert settings.model_dump() == {
        "transaction_search": "adopt",
        "model_invocation_logging": "adopt",
        "macie": "adopt",
        "api_gateway_logging": "adopt",
    }


def test_an_unknown_key_inside_a_chunking_strategy_lists_that_strategys_keys(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config({**cdk_context, "blueprint.sandbox.knowledge_base.chunking": '{"strategy": "SEMANTIC", "size": 3}'})
    assert str(error.value) == (
        "blueprint.sandbox.knowledge_base.chunking.size: unknown key; allowed keys here are "
        "strategy, max_tokens, buffer_size, breakpoint_percentile_threshold"
    )


def test_a_missing_required_key_is_named(cdk_context: dict[str, Any]) -> None:
    raw = copy.deepcopy(cdk_context["blueprint"])
    del raw["sandbox"]["budget"]
    with pytest.raises(ConfigError, match=r"^blueprint\.sandbox\.budget: required but missing$"):
        load_config({"blueprint": raw})


def test_a_dependent_check_names_the_dependent_key(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            {
                **cdk_context,
                "blueprint.sandbox.knowledge_base.chunking": '{"strategy": "HIERARCHICAL", "parent_max_tokens": 200}',
            }
        )
    assert str(error.value) == (
        "blueprint.sandbox.knowledge_base.chunking.child_max_tokens = 300: must be smaller than parent_max_tokens (200)"
    )


def test_every_bad_value_gets_its_own_line(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config({**cdk_context, "blueprint.prefix": "X", "blueprint.sandbox.kendra.enabled": "maybe"})
    lines = str(error.value).splitlines()
    assert [line.split(" ")[0] for line in lines] == ["blueprint.prefix", "blueprint.sandbox.kendra.enabled"]


def test_missing_blueprint_context_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"^blueprint: missing or not an object in cdk\.json context$"):
        load_config({})


def test_overriding_inside_a_scalar_is_reported(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"^blueprint.prefix.x: cannot override inside 'prefix'"):
        load_config({**cdk_context, "blueprint.prefix.x": "1"})


@pytest.mark.parametrize(
    ("value", "tiers"),
    [
        (None, (Tier.SANDBOX, Tier.PRODUCTION)),
        ("all", (Tier.SANDBOX, Tier.PRODUCTION)),
        ("sandbox", (Tier.SANDBOX,)),
        ("production", (Tier.PRODUCTION,)),
    ],
)
def test_tier_selection(value: str | None, tiers: tuple[Tier, ...]) -> None:
    assert selected_tiers({"tier": value} if value else {}) == tiers


def test_unknown_tier_names_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match=r"^tier = 'staging': allowed values are all, sandbox, production$"):
        selected_tiers({"tier": "staging"})


def test_a_group_may_only_name_configured_tools(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            {**cdk_context, "blueprint.production.groups.customer-basic.tools": '["knowledge_search", "drop_db"]'}
        )
    assert str(error.value) == (
        "blueprint.production.groups.customer-basic.tools.1: unknown tool drop_db; "
        "allowed: find_orders, get_customer, knowledge_search"
    )


def test_tool_names_are_unique_across_targets(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(
            {**cdk_context, "blueprint.production.legacy_apis.customers.tools": '{"find_orders": {"id": "id"}}'}
        )
    assert str(error.value) == (
        "blueprint.production.legacy_apis.customers.tools.find_orders: tool name already used by orders; "
        "allowed: unique names"
    )


def test_one_bad_section_does_not_cascade_into_the_groups(cdk_context: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as error:
        load_config({**cdk_context, "blueprint.production.legacy_apis.orders.base_url": "http://orders.example.com"})
    assert str(error.value).splitlines() == [
        "blueprint.production.legacy_apis.orders.base_url = 'http://orders.example.com': "
        "String should match pattern '^https://[A-Za-z0-9.-]+(:\\d+)?(/[A-Za-z0-9._~/-]*)?$'"
    ]


def test_a_longer_integration_timeout_makes_room_for_longer_turns(cdk_context: dict[str, Any]) -> None:
    config = load_config(
        {
            **cdk_context,
            "blueprint.production.api.integration_timeout_seconds": "120",
            "blueprint.production.agents.report_writer.turn_seconds": "115",
        }
    )
    assert config.production.agents["report_writer"].turn_seconds == 115
    assert config.production.agent_routes()["research_brief"] == "report_writer"


def test_the_config_offers_exactly_the_formats_the_pipeline_reads() -> None:
    from typing import get_args

    from ingestion.documents import SUPPORTED_FORMATS
    from stacks.config import DocumentFormat

    assert get_args(DocumentFormat) == SUPPORTED_FORMATS
