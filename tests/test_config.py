"""The config model: cdk.json is valid, overrides work, and every bad value names its key.

Most tests read SMALL, a config of their own, so that what they expect is visible here and does
not change with the sample cdk.json.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stacks.config import (
    PRODUCTION_FUNCTIONS,
    BlueprintConfig,
    ConfigError,
    FixedSizeChunking,
    FunctionConfig,
    FunctionName,
    HierarchicalChunking,
    Tier,
    load_config,
    selected_tiers,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL: dict[str, Any] = {
    "prefix": "demo",
    "sandbox": {
        "expires_on": "2030-01-01",
        "budget": {"monthly_limit_usd": 100, "alert_emails": ["team@example.com"]},
        "knowledge_base": {"chunking": {"strategy": "FIXED_SIZE"}},
    },
    "production": {
        "output_types": {
            "chat": {"unit_price_usd": 0.01, "instructions": "Be brief."},
            "report": {"unit_price_usd": 1, "instructions": "Write a report."},
        },
        "legacy_apis": {
            "orders": {
                "base_url": "https://orders.example.com",
                "secret_name": "demo/orders",
                "tools": {"find_orders": {"order_id": "id"}},
            }
        },
        "groups": {
            "staff": {
                "kind": "internal",
                "tier": "internal",
                "precedence": 0,
                "usage_plan": {"rate_limit": 10, "burst_limit": 20, "quota_limit": 1000},
                "models": {"allowed": ["amazon.nova-lite-v1:0"], "default": "amazon.nova-lite-v1:0"},
                "output_quotas": {"chat": {"limit": 100}, "report": {"limit": 10}},
                "tools": ["knowledge_search", "find_orders"],
                "data_classifications": ["public", "internal"],
            },
            "customers": {
                "kind": "customer",
                "tier": "basic",
                "precedence": 10,
                "usage_plan": {"rate_limit": 1, "burst_limit": 2, "quota_limit": 100},
                "models": {"allowed": ["amazon.nova-micro-v1:0"], "default": "amazon.nova-micro-v1:0"},
                "output_quotas": {"chat": {"limit": 10}},
                "tools": ["knowledge_search"],
            },
        },
        "agents": {
            "helper": {
                "description": "Answers.",
                "system_prompt": "Answer.",
                "output_types": ["chat"],
                "turn_seconds": 20,
            },
            "writer": {
                "description": "Writes.",
                "system_prompt": "Write.",
                "output_types": ["report"],
                "turn_seconds": 20,
            },
        },
        "ingestion": {"classifications": {"public": {"on_pii": "quarantine"}, "internal": {}}},
        "connectors": {
            "push": {"sources": {"crm": "internal"}, "callers": {"crm": ["crm-exporter"]}},
            "pull": {
                "wiki": {
                    "base_url": "https://wiki.example.com",
                    "secret_name": "demo/wiki",
                    "records_path": "/pages",
                    "owner": "docs-team",
                    "classification": "public",
                }
            },
        },
    },
}


def load(overrides: dict[str, str] | None = None) -> BlueprintConfig:
    """SMALL with dotted ``-c`` overrides (keys below ``blueprint.``)."""
    return load_config({"blueprint": SMALL, **{f"blueprint.{k}": v for k, v in (overrides or {}).items()}})


def error_lines(overrides: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        load(overrides)
    return str(error.value).splitlines()


def test_cdk_json_is_a_valid_config(cdk_context: dict[str, Any]) -> None:
    config = load_config(cdk_context)
    raw = cdk_context["blueprint"]
    assert isinstance(config, BlueprintConfig)
    assert config.prefix == raw["prefix"]
    assert list(config.production.groups) == list(raw["production"]["groups"])
    assert config.sandbox.knowledge_base.chunking.strategy == raw["sandbox"]["knowledge_base"]["chunking"]["strategy"]


def test_the_small_config_of_these_tests_is_valid() -> None:
    config = load()
    assert config.sandbox.knowledge_base.chunking == FixedSizeChunking(strategy="FIXED_SIZE")
    assert config.production.groups["customers"].data_classifications == ("public",)
    assert config.production.agent_routes() == {"chat": "helper", "report": "writer"}


def test_config_is_frozen() -> None:
    config = load()
    with pytest.raises(ValueError, match="frozen"):
        config.sandbox.kendra.enabled = False


def test_dotted_overrides_are_parsed_as_json_or_kept_as_strings() -> None:
    config = load(
        {
            "sandbox.kendra.enabled": "true",
            "sandbox.budget.alert_emails": '["a@example.com", "b@example.com"]',
            "sandbox.query.generation_model_id": "us.amazon.nova-pro-v1:0",
            "sandbox.knowledge_base.chunking": '{"strategy": "HIERARCHICAL"}',
        }
    )
    assert config.sandbox.kendra.enabled is True
    assert config.sandbox.budget.alert_emails == ("a@example.com", "b@example.com")
    assert config.sandbox.query.generation_model_id == "us.amazon.nova-pro-v1:0"
    assert isinstance(config.sandbox.knowledge_base.chunking, HierarchicalChunking)


def test_a_numeric_account_override_is_taken_as_the_account_id() -> None:
    assert load({"sandbox.account": "123456789012"}).sandbox.account == "123456789012"


def test_overrides_leave_the_cdk_json_context_untouched(cdk_context: dict[str, Any]) -> None:
    before = copy.deepcopy(cdk_context)
    load_config({**cdk_context, "blueprint.prefix": "other"})
    assert cdk_context == before


def test_whole_config_can_be_given_as_a_json_string() -> None:
    config = load_config({"blueprint": json.dumps({**SMALL, "prefix": "team-a"})})
    assert config.prefix == "team-a"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "prefix",
            "Bad_Prefix",
            "blueprint.prefix = 'Bad_Prefix': must be lowercase letters, digits or single -, starting with a letter",
        ),
        ("sandbox.region", "mars-1", "blueprint.sandbox.region = 'mars-1': must be an AWS region name such as"),
        ("sandbox.account", "12345", "blueprint.sandbox.account = 12345: must be a 12-digit AWS account id"),
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
            "blueprint.sandbox.kendra.sync_schedule = 'daily': must be a six-field cron expression such as "
            "cron(0 3 * * ? *)",
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
            "blueprint.sandbox.knowledge_base.documents_prefix = 'docs': must be an S3 key prefix ending in /",
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
            "blueprint.sandbox.budget.alert_emails.0 = 'not-an-address': must be an e-mail address such as "
            "team@example.com",
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
            "blueprint.sandbox.query.generation_model_id = 'gpt-4': must be a Bedrock model id such as "
            "anthropic.claude-3-haiku-20240307-v1:0",
        ),
        (
            "production.guardrail.content_filters",
            '{"SEXUAL": "EXTREME"}',
            "blueprint.production.guardrail.content_filters.SEXUAL = 'EXTREME': Input should be 'NONE', 'LOW', "
            "'MEDIUM' or 'HIGH'",
        ),
        (
            "production.agents.writer.output_types",
            '["report", "memo"]',
            "blueprint.production.agents.writer.output_types.1: unknown output type memo; allowed: chat, report",
        ),
        (
            "production.agents.writer.output_types",
            '["chat"]',
            "blueprint.production.agents.writer.output_types.0: output type chat is already served by agent helper; "
            "allowed: one agent",
        ),
        (
            "production.agents.writer.turn_seconds",
            "60",
            "blueprint.production.agents.writer.turn_seconds: 60 s does not fit the gateway's 24 s for an agent turn; "
            "allowed: at most 24 (or raise api.integration_timeout_seconds)",
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
            "blueprint.production.connectors.push.sources.crm: unknown classification secret; allowed: public, internal",
        ),
        (
            "production.ingestion.formats",
            '["txt", "exe"]',
            "blueprint.production.ingestion.formats.1 = 'exe': Input should be 'txt', 'md', 'csv', 'json', 'html', "
            "'pdf', 'docx', 'xlsx' or 'pptx'",
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
            "blueprint.tags.aws:owner: not a valid AWS tag key; allowed: 1 to 128 letters",
        ),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_key_value_and_what_is_allowed(
    key: str, value: str, expected: str
) -> None:
    lines = error_lines({key: value})
    assert len(lines) == 1, lines
    assert lines[0].startswith(expected), lines[0]


def test_an_unknown_key_lists_the_keys_allowed_there() -> None:
    assert error_lines({"sandbox.kendra.edtion": "DEVELOPER_EDITION"}) == [
        "blueprint.sandbox.kendra.edtion: unknown key; allowed keys here are enabled, edition, sync_schedule"
    ]


def test_an_unknown_key_inside_a_map_entry_lists_the_keys_of_its_own_object() -> None:
    assert error_lines({"production.groups.staff.usage_plan.burst": "5"}) == [
        "blueprint.production.groups.staff.usage_plan.burst: unknown key; allowed keys here are rate_limit, "
        "burst_limit, quota_limit, quota_period"
    ]


def test_the_retired_account_switches_point_to_account_settings() -> None:
    """macie.create_session and observability.invocation_logging became account_settings.*: a config
    that still sets them fails and says which keys there are now."""
    for key, allowed in (
        ("production.macie.create_session", "allow_list_regex, schedule"),
        (
            "production.observability.invocation_logging",
            "invocation_log_days, capture_content, trace_indexing_percentage",
        ),
    ):
        [line] = error_lines({key: "false"})
        assert line.startswith(f"blueprint.{key}: unknown key; allowed keys here are ")
        assert allowed in line


def test_account_settings_default_to_adopt() -> None:
    assert load().production.account_settings.model_dump() == {
        "transaction_search": "adopt",
        "model_invocation_logging": "adopt",
        "macie": "adopt",
        "api_gateway_logging": "adopt",
    }


def test_an_unknown_key_inside_a_chunking_strategy_lists_that_strategys_keys() -> None:
    assert error_lines({"sandbox.knowledge_base.chunking": '{"strategy": "SEMANTIC", "size": 3}'}) == [
        "blueprint.sandbox.knowledge_base.chunking.size: unknown key; allowed keys here are "
        "strategy, max_tokens, buffer_size, breakpoint_percentile_threshold"
    ]


def test_a_missing_required_key_is_named() -> None:
    raw = copy.deepcopy(SMALL)
    del raw["sandbox"]["budget"]
    with pytest.raises(ConfigError, match=r"^blueprint\.sandbox\.budget: required but missing$"):
        load_config({"blueprint": raw})


def test_a_dependent_check_names_the_dependent_key() -> None:
    assert error_lines(
        {"sandbox.knowledge_base.chunking": '{"strategy": "HIERARCHICAL", "parent_max_tokens": 200}'}
    ) == [
        "blueprint.sandbox.knowledge_base.chunking.child_max_tokens = 300: must be smaller than parent_max_tokens (200)"
    ]


def test_every_bad_value_gets_its_own_line() -> None:
    lines = error_lines({"prefix": "X", "sandbox.kendra.enabled": "maybe"})
    assert [line.split(" ")[0] for line in lines] == ["blueprint.prefix", "blueprint.sandbox.kendra.enabled"]


def test_missing_blueprint_context_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"^blueprint: missing or not an object in cdk\.json context$"):
        load_config({})


def test_overriding_inside_a_scalar_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"^blueprint.prefix.x: cannot override inside 'prefix'"):
        load({"prefix.x": "1"})


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
    with pytest.raises(ConfigError, match=r"^tier = 'staging': allowed values are all, sandbox, production, pipeline$"):
        selected_tiers({"tier": "staging"})


@pytest.mark.parametrize("key", ["timeout_seconds", "browse_timeout_seconds"])
def test_a_web_call_must_fit_what_an_agent_waits_for_a_tools_answer(key: str) -> None:
    """An agent waits 20 s for a tool's answer (agent.contract.TOOL_CALL_SECONDS): a web call allowed
    longer would answer an agent that has given up on it."""
    assert load({f"production.web.{key}": "18"}).production.web.model_dump()[key] == 18
    assert error_lines({f"production.web.{key}": "30"}) == [
        f"blueprint.production.web.{key} = 30: Input should be less than or equal to 18"
    ]


def test_a_group_may_only_name_configured_tools() -> None:
    assert error_lines({"production.groups.customers.tools": '["knowledge_search", "drop_db"]'}) == [
        "blueprint.production.groups.customers.tools.1: unknown tool drop_db; allowed: find_orders, knowledge_search, web_browse, web_fetch"
    ]


def test_quotas_and_units_the_ledger_cannot_count_are_refused() -> None:
    """The ledger writes them as DynamoDB numbers (38 digits): 10**40 would fail every request."""
    assert error_lines({"production.groups.customers.output_quotas.chat.limit": str(10**40)}) == [
        f"blueprint.production.groups.customers.output_quotas.chat.limit = {10**40}: "
        "Input should be less than or equal to 1000000000000"
    ]
    assert error_lines({"production.output_types.chat.units": str(10**7)}) == [
        "blueprint.production.output_types.chat.units = 10000000: Input should be less than or equal to 1000000"
    ]


def test_a_field_path_is_bounded_where_it_is_declared_not_where_the_functions_environment_overflows() -> None:
    path = ".".join(["a"] * 200)  # 399 characters: two of them were a function's 4 KB environment
    (line,) = error_lines({"production.legacy_apis.orders.tools.find_orders.order_id": json.dumps(path)})
    assert line.startswith("blueprint.production.legacy_apis.orders.tools.find_orders.order_id = 'a.a.a.")
    assert line.endswith("String should have at most 256 characters")


def test_a_name_holding_a_line_break_cannot_write_an_error_line_of_its_own() -> None:
    forged = "find_orders\nblueprint.production.api.tls_policy: fine"
    assert error_lines({"production.groups.customers.tools": json.dumps([forged])}) == [
        "blueprint.production.groups.customers.tools.0: unknown tool find_orders\\nblueprint.production.api.tls_policy: "
        "fine; allowed: find_orders, knowledge_search, web_browse, web_fetch"
    ]


def test_tool_names_are_unique_across_targets() -> None:
    crm = {"base_url": "https://crm.example.com", "secret_name": "demo/crm", "tools": {"find_orders": {"id": "id"}}}
    assert error_lines({"production.legacy_apis.crm": json.dumps(crm)}) == [
        "blueprint.production.legacy_apis.crm.tools.find_orders: tool name already used by orders; "
        "allowed: unique names"
    ]


@pytest.mark.parametrize(
    ("section", "existing", "other"),
    [
        ("groups", "customers", "CUSTOMERS"),  # Cognito's names are case sensitive; construct ids are not
        ("groups", "customers", "customers_"),
        ("agents", "helper", "helper_"),
        # One - at most, between letters or digits; a digit before it still makes the same id:
        # "orders1-x" and "orders1x" are both Orders1X.
        ("legacy_apis", "orders1-x", "orders1x"),
        ("connectors.pull", "wiki1-x", "wiki1x"),
    ],
)
def test_two_names_that_make_the_same_resource_ids_are_refused_naming_both(
    section: str, existing: str, other: str
) -> None:
    """Names become parts of construct ids ("customer-gold", "customer_gold" and "Customer-Gold" are
    all CustomerGold): two such would be one resource, which synth refused with a jsii error."""
    raw: Any = SMALL["production"]
    for part in section.split("."):
        raw = raw[part]
    overrides: dict[str, str] = {}
    if existing not in raw:  # the first of the two, a copy of the section's first entry
        raw = {existing: next(iter(raw.values()))}
        single_call = {"get_invoice": {"description": "One invoice.", "path": "/invoices", "fields": {"id": "id"}}}
        first = raw[existing] if section != "legacy_apis" else {**raw[existing], "tools": single_call}
        overrides[f"production.{section}.{existing}"] = json.dumps(first)
    copied = json.dumps(raw[existing])
    if section == "legacy_apis":  # tool names are unique across targets
        copied = json.dumps({**raw[existing], "tools": {"get_customer": {"customer_id": "id"}}})
    if section == "agents":  # an agent serves output types none other serves
        copied = json.dumps({**raw[existing], "output_types": ["brief"]})
        brief = json.dumps({"unit_price_usd": 1, "instructions": "Be brief."})
        assert error_lines({f"production.agents.{other}": copied, "production.output_types.brief": brief}) == [
            f"blueprint.production.agents.{other}: names the same resources (Helper) as helper; "
            "allowed: names that differ in more than letter case, - and _"
        ]
        return
    made = "".join(p.title() for p in existing.split("-"))
    assert error_lines({**overrides, f"production.{section}.{other}": copied}) == [
        f"blueprint.production.{section}.{other}: names the same resources ({made}) as {existing}; "
        "allowed: names that differ in more than letter case, - and _"
    ]


def test_one_bad_section_does_not_cascade_into_the_groups() -> None:
    """A legacy API with a bad URL still declares its tools: the groups naming them are fine."""
    assert error_lines({"production.legacy_apis.orders.base_url": "http://orders.example.com"}) == [
        "blueprint.production.legacy_apis.orders.base_url = 'http://orders.example.com': "
        "must be an https:// URL without query or fragment, such as https://orders.example.com/api"
    ]


def test_a_longer_integration_timeout_makes_room_for_longer_turns() -> None:
    config = load({"production.api.integration_timeout_seconds": "120", "production.agents.writer.turn_seconds": "115"})
    assert config.production.agents["writer"].turn_seconds == 115
    assert config.production.agent_routes()["report"] == "writer"


# --- every field described, every pattern in words -----------------------------------------------


def _schema_nodes(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for item in value.values():
            yield from _schema_nodes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _schema_nodes(item)


def test_every_field_has_a_description() -> None:
    schema = BlueprintConfig.model_json_schema()
    models = {"BlueprintConfig": schema, **schema["$defs"]}
    undescribed = [
        f"{model}.{name}"
        for model, node in models.items()
        for name, prop in node.get("properties", {}).items()
        if not prop.get("description")
    ]
    assert undescribed == []


def test_every_pattern_is_explained_in_words() -> None:
    """A patterned field type carries a Meaning (stacks/config/fields.py), so nobody reads a regex."""
    nodes = list(_schema_nodes(BlueprintConfig.model_json_schema()))
    assert any("pattern" in node for node in nodes)
    # A string "pattern" is a regex; a "pattern" that is a schema is a property of that name.
    unexplained = [n["pattern"] for n in nodes if isinstance(n.get("pattern"), str) and "x-meaning" not in n]
    unexplained += [
        pattern
        for node in nodes
        if "patternProperties" in node and "x-meaning" not in node.get("propertyNames", {})
        for pattern in node["patternProperties"]
    ]
    assert unexplained == []


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (
            "production.groups.staff.models.default",
            "claude",
            "blueprint.production.groups.staff.models.default = 'claude': must be a Bedrock model id such as "
            "anthropic.claude-3-haiku-20240307-v1:0, optionally after an inference profile's us., eu., apac., "
            "us-gov. or global.",
        ),
        (
            "production.connectors.pull.wiki.schedule",
            "hourly",
            "blueprint.production.connectors.pull.wiki.schedule = 'hourly': must be a schedule such as "
            "rate(15 minutes), rate(1 hour) or cron(0 3 * * ? *)",
        ),
        (
            "production.legacy_apis.orders.tools.find_orders.order_id",
            "order id",
            "blueprint.production.legacy_apis.orders.tools.find_orders.order_id = 'order id': must be a field path "
            "such as pricing.totals.grand.amount or addresses[0].city",
        ),
        (
            "production.groups.Staff Team",
            "{}",
            "blueprint.production.groups.Staff Team: this name must be 1 to 64 letters, digits, _ or -, such as "
            "customer-gold",
        ),
    ],
)
def test_a_pattern_error_says_in_words_what_is_expected(key: str, value: str, expected: str) -> None:
    lines = error_lines({key: value})
    assert lines[0] == expected
    assert not any("pattern" in line for line in lines)


# --- a group's classifications are ones the pipeline defines ------------------------------------


def test_a_group_may_only_retrieve_classifications_the_ingestion_config_defines() -> None:
    assert error_lines({"production.groups.staff.data_classifications": '["public", "internl"]'}) == [
        "blueprint.production.groups.staff.data_classifications.1: unknown classification internl; "
        "allowed: public, internal"
    ]


def test_a_groups_default_classification_must_be_defined_too() -> None:
    """customers sets no data_classifications and so gets ["public"], which must then be defined."""
    lines = error_lines({"production.ingestion.classifications": '{"internal": {}}'})
    assert "blueprint.production.groups.customers.data_classifications.0: unknown classification public; " in (
        "\n".join(lines)
    )


def test_a_group_may_retrieve_every_classification_the_ingestion_config_defines() -> None:
    config = load({"production.groups.customers.data_classifications": '["internal", "public"]'})
    assert config.production.groups["customers"].data_classifications == ("internal", "public")


# --- production.functions: memory and timeout per function ---------------------------------------


def test_function_settings_are_optional_and_unset_by_default() -> None:
    assert load().production.functions == {}
    assert load({"production.functions.pre_token": "{}"}).production.functions == {
        "pre_token": FunctionConfig(memory_mb=None, timeout_seconds=None)
    }


def test_function_settings_are_read() -> None:
    functions = load(
        {
            "production.functions.ai_gateway.memory_mb": "2048",
            "production.functions.connector_pull.timeout_seconds": "300",
        }
    ).production.functions
    assert functions == {
        "ai_gateway": FunctionConfig(memory_mb=2048),
        "connector_pull": FunctionConfig(timeout_seconds=300),
    }


def test_an_unknown_function_fails_with_the_allowed_names() -> None:
    assert error_lines({"production.functions.ai_gatway.memory_mb": "2048"}) == [
        "blueprint.production.functions.ai_gatway: unknown key; allowed keys here are "
        + ", ".join(PRODUCTION_FUNCTIONS)
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("memory_mb", "127", "Input should be greater than or equal to 128"),
        ("memory_mb", "10241", "Input should be less than or equal to 10240"),
        ("timeout_seconds", "0", "Input should be greater than or equal to 1"),
        ("timeout_seconds", "901", "Input should be less than or equal to 900"),
        ("reserved_concurrency", "0", "Input should be greater than or equal to 1"),
        (
            "memory",
            "512",
            "unknown key; allowed keys here are memory_mb, timeout_seconds, snap_start, reserved_concurrency",
        ),
    ],
)
def test_function_memory_and_timeout_are_bounded(key: str, value: str, message: str) -> None:
    [line] = error_lines({f"production.functions.tool_guard.{key}": value})
    where = f"blueprint.production.functions.tool_guard.{key}"
    assert line in (f"{where} = {value}: {message}", f"{where}: {message}")


# --- every problem of a config in one run ----------------------------------------------------------


def test_field_and_cross_field_errors_are_reported_together() -> None:
    """A broken field inside a group, an agent or the ingestion config does not hide the checks
    across sections: one run names every problem."""
    assert error_lines(
        {
            "production.groups.staff.usage_plan.rate_limit": "0",
            "production.groups.customers.output_quotas": '{"chat": {"limit": 1}, "poem": {"limit": 1}}',
            "production.agents.writer.max_iterations": "99",
            "production.agents.writer.max_tool_calls": "0",
            "production.agents.writer.output_types": '["memo"]',
            "production.ingestion.batch_size": "20",
            "production.connectors.push.sources.crm": "secret",
        }
    ) == [
        "blueprint.production.groups.staff.usage_plan.rate_limit = 0: Input should be greater than 0",
        "blueprint.production.groups.customers.output_quotas.poem: unknown output type; allowed: chat, report",
        "blueprint.production.agents.writer.max_iterations = 99: Input should be less than or equal to 20",
        "blueprint.production.agents.writer.max_tool_calls = 0: Input should be greater than or equal to 1",
        "blueprint.production.agents.writer.output_types.0: unknown output type memo; allowed: chat, report",
        "blueprint.production.ingestion.batch_size = 20: Input should be less than or equal to 10",
        "blueprint.production.connectors.push.sources.crm: unknown classification secret; allowed: public, internal",
    ]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # Output types unreadable: the checks of names of output types are skipped, the others run.
        (
            {"production.output_types": '["chat"]', "production.groups.customers.data_classifications": '["x"]'},
            [
                "blueprint.production.output_types = ['chat']: Input should be a valid dictionary",
                "blueprint.production.groups.customers.data_classifications.0: unknown classification x; "
                "allowed: public, internal",
            ],
        ),
        # A declared output type with a broken price is still declared.
        (
            {"production.output_types.report.unit_price_usd": "-1"},
            [
                "blueprint.production.output_types.report.unit_price_usd = -1: "
                "Input should be greater than or equal to 0"
            ],
        ),
    ],
)
def test_a_cross_field_check_is_skipped_only_where_what_it_reads_is_broken(
    overrides: dict[str, str], expected: list[str]
) -> None:
    assert error_lines(overrides) == expected


@pytest.mark.parametrize(("price", "loads"), [("0", True), ("0.000000001", True), ("1e-10", False), ("1e-300", False)])
def test_a_unit_price_is_free_or_one_the_ledger_can_record(price: str, loads: bool) -> None:
    """The ledger writes a price as a DynamoDB number, whose smallest magnitude is 1E-130: a price
    of 1e-300 passed as above 0, and every admission of its output would have been refused."""
    overrides = {"production.output_types.report.unit_price_usd": price}
    if loads:
        assert load(overrides).production.output_types["report"].unit_price_usd == float(price)
        return
    assert error_lines(overrides) == [
        f"blueprint.production.output_types.report.unit_price_usd = {float(price)}: "
        "0 for free, or at least 1e-09 (a price the ledger can record)"
    ]


@pytest.mark.parametrize(
    ("function", "key"),
    [
        ("ai_gateway", "api.integration_timeout_seconds"),
        ("ingestion", "ingestion.processor_timeout_seconds"),
        ("legacy_tools", "legacy_apis.<name>.timeout_seconds and max_attempts"),
    ],
)
def test_a_timeout_with_its_own_key_is_not_set_twice(function: FunctionName, key: str) -> None:
    (line,) = error_lines({f"production.functions.{function}": '{"timeout_seconds": 100}'})
    assert line == (
        f"blueprint.production.functions.{function}.timeout_seconds: this timeout is set by production.{key}; "
        "allowed: unset"
    )
    assert load({f"production.functions.{function}": '{"memory_mb": 1024}'}).production.functions[function]


@pytest.mark.parametrize(
    ("function", "reason"),
    [
        ("ai_gateway", "this switch is production.api.snap_start"),
        ("gateway_authorizer", "this switch is production.api.snap_start"),
        (
            "ingestion",
            "SnapStart is offered for the functions a caller waits on that load the AWS SDK at start: knowledge_search, connector_push",
        ),
        (
            "connector_pull",
            "SnapStart is offered for the functions a caller waits on that load the AWS SDK at start: knowledge_search, connector_push",
        ),
    ],
)
def test_snapstart_is_switched_only_where_it_is_offered(function: FunctionName, reason: str) -> None:
    (line,) = error_lines({f"production.functions.{function}": '{"snap_start": true}'})
    assert line == f"blueprint.production.functions.{function}.snap_start: {reason}; allowed: unset"


def test_snapstart_of_a_function_that_offers_it_is_read() -> None:
    functions = load(
        {"production.functions.knowledge_search": '{"snap_start": false}', "production.functions.connector_push": "{}"}
    ).production.functions
    assert functions["knowledge_search"].snap_start is False
    assert functions["connector_push"].snap_start is None  # the stack's own choice (on)


def test_reserved_concurrency_is_off_unless_set_and_read_per_function() -> None:
    assert all(f.reserved_concurrency is None for f in load().production.functions.values())
    functions = load({"production.functions.pre_token.reserved_concurrency": "5"}).production.functions
    assert functions["pre_token"] == FunctionConfig(reserved_concurrency=5)


def test_a_deploy_time_function_is_never_reserved() -> None:
    (line,) = error_lines({"production.functions.account_settings.reserved_concurrency": "5"})
    assert line == (
        "blueprint.production.functions.account_settings.reserved_concurrency: a deploy-time function: its custom "
        "resources run at once, and a throttled one fails the deploy; allowed: unset"
    )


@pytest.mark.parametrize(
    ("ocr", "needed", "queues"),
    [("off", 10, "the document queue's"), ("textract", 12, "the document queue's and the OCR queue's")],
)
def test_the_processors_reservation_must_cover_what_its_queues_hand_it(ocr: str, needed: int, queues: str) -> None:
    """Lambda throttles SQS batches past a reservation back to the queue, where they count as
    receives: documents would be dead-lettered without ever failing."""
    key = "production.functions.ingestion.reserved_concurrency"
    (line,) = error_lines({key: str(needed - 1), "production.ingestion.ocr": ocr})
    assert line == (
        f"blueprint.{key}: the processor's queues hand it up to {needed} batches at once ({queues} "
        "maximum concurrency); a smaller reservation throttles the rest back to the queue and, after "
        f"ingestion.max_receive_count, to the dead-letter queue; allowed: null or at least {needed}"
    )
    reserved = load({key: str(needed), "production.ingestion.ocr": ocr}).production.functions["ingestion"]
    assert reserved.reserved_concurrency == needed


def test_a_workload_is_checked_against_production_and_types_nothing_twice(cdk_context: dict[str, Any]) -> None:
    workload = "blueprint.workloads.support"
    with pytest.raises(ConfigError) as raised:
        load_config({**cdk_context, f"{workload}.groups": ["platform-admins", "nobody"]})
    groups = ", ".join(sorted(load_config(cdk_context).production.groups))
    assert str(raised.value) == f"{workload}.groups: unknown groups nobody; allowed: {groups}"
    promoted = {**cdk_context, f"{workload}.stage": "production"}
    with pytest.raises(ConfigError) as raised:
        load_config({**promoted, f"{workload}.outputs": {"summary": {"unit_price_usd": 1, "quota": {"limit": 1}}}})
    assert str(raised.value) == (
        f"{workload}.outputs.summary: production.output_types already has summary; allowed: a name declared in one place"
    )
    agent = {"description": "d"}
    with pytest.raises(ConfigError) as raised:
        load_config({**promoted, f"{workload}.agent": agent,
                     "blueprint.production.agents.support": {"description": "d", "system_prompt": "p",
                                                              "output_types": ["summary"]}})  # fmt: skip
    assert str(raised.value) == (
        f"{workload}.agent: production.agents already has support; allowed: a name declared in one place"
    )
    # In sandbox stage a workload adds nothing to production.
    assert "policy_answer" not in load_config(cdk_context).production.output_types
    assert "policy_answer" in load_config(promoted).production.output_types


@pytest.mark.parametrize("falsy", [False, 0, [], ""])
def test_a_production_section_that_is_not_a_mapping_is_refused_even_where_a_workload_adds_to_it(
    cdk_context: dict[str, Any], falsy: Any
) -> None:
    """A falsy value was read as empty before the workload's agent was added to it: accepted, the
    value replaced without a word. It is refused as it is without the workload."""
    promoted = {
        **cdk_context,
        "blueprint.workloads.support.stage": "production",
        "blueprint.workloads.support.agent": {"description": "d"},
        "blueprint.production.agents": falsy,
    }
    with pytest.raises(ConfigError) as raised:
        load_config(promoted)
    assert str(raised.value).startswith(f"blueprint.production.agents = {falsy!r}: Input should be a valid dictionary")


@pytest.mark.parametrize(
    ("prompt", "problem"),
    [
        ("x" * 3_729, "is 3,729 characters; the sandbox's query function takes at most 3,728"),
        ("Cite $search_results$ first.", "holds $search_results$, which RetrieveAndGenerate would fill in"),
    ],
)
def test_a_sandbox_workloads_prompt_must_fit_retrieve_and_generates_template(
    cdk_context: dict[str, Any], prompt: str, problem: str
) -> None:
    """The sandbox's query function answers with the prompt inside RetrieveAndGenerate's 4,000-character
    template: a prompt it cannot send fails config naming the key; in production stage it may be longer."""
    key = "blueprint.workloads.support.generation.prompt"
    with pytest.raises(ConfigError) as raised:
        load_config({**cdk_context, key: prompt})
    assert str(raised.value).startswith(f"{key}: in sandbox stage the prompt {problem}")
    assert "allowed: text of at most 3,728 characters without $search_results$" in str(raised.value)
    assert load_config({**cdk_context, key: "x" * 3_728}).workloads["support"].generation.prompt == "x" * 3_728
    promoted = {**cdk_context, key: "x" * 4_000, "blueprint.workloads.support.stage": "production"}
    assert load_config(promoted).workloads["support"].generation.prompt == "x" * 4_000


def test_two_workloads_cannot_sell_the_same_output(cdk_context: dict[str, Any]) -> None:
    declared = load_config(cdk_context).workloads["support"].model_dump(mode="json")
    twin = {**declared, "stage": "production", "team": "another"}
    context = {
        **cdk_context,
        "blueprint.workloads.support.stage": "production",
        "blueprint.workloads.twin": twin,
    }
    with pytest.raises(ConfigError) as raised:
        load_config(context)
    assert str(raised.value) == (
        "blueprint.workloads.twin.outputs.policy_answer: another workload sells policy_answer too; "
        "allowed: an output type sold by one workload"
    )


def test_the_tiers_kendra_switch_is_off_for_every_workload_and_on_for_those_that_ask(
    cdk_context: dict[str, Any],
) -> None:
    """Kendra bills by the hour, and takes no new customers since 2026-07-30: the tier's switch is
    off by default whatever the workloads ask for; with it on, a workload's sandbox has an index
    when it asks for one."""
    assert not load_config(cdk_context).sandbox_for("support").kendra.enabled  # the tier's default: off
    tier_on = {**cdk_context, "blueprint.sandbox.kendra.enabled": "true"}
    assert load_config(tier_on).sandbox_for("support").kendra.enabled  # workloads/support.json asks
    not_asked = {**tier_on, "blueprint.workloads.support.sandbox.kendra": "false"}
    assert not load_config(not_asked).sandbox_for("support").kendra.enabled


TIER_DEFAULTS = {
    "blueprint.sandbox.expires_on": "2029-12-31",
    "blueprint.sandbox.budget.monthly_limit_usd": "42",
    "blueprint.sandbox.budget.alert_emails": '["tier@example.com"]',
    "blueprint.sandbox.knowledge_base.chunking.max_tokens": "500",
    "blueprint.sandbox.query.generation_model_id": "amazon.nova-micro-v1:0",
}


def test_a_workload_that_leaves_its_sandbox_settings_out_gets_the_tiers(cdk_context: dict[str, Any]) -> None:
    left_out = {
        f"blueprint.workloads.support.{key}": "null"
        for key in ("sandbox.expires_on", "sandbox.budget", "knowledge_base", "generation.model_id")
    }
    sandbox = load_config({**cdk_context, **TIER_DEFAULTS, **left_out}).sandbox_for("support")
    assert str(sandbox.expires_on) == "2029-12-31"
    assert (sandbox.budget.monthly_limit_usd, sandbox.budget.alert_emails) == (42, ("tier@example.com",))
    assert sandbox.knowledge_base.chunking.max_tokens == 500  # type: ignore[union-attr]
    assert sandbox.query.generation_model_id == "amazon.nova-micro-v1:0"


def test_a_workloads_own_sandbox_settings_win_over_the_tiers(cdk_context: dict[str, Any]) -> None:
    raw = json.loads((ROOT / "workloads" / "support.json").read_text())
    sandbox = load_config({**cdk_context, **TIER_DEFAULTS}).sandbox_for("support")
    assert str(sandbox.expires_on) == raw["sandbox"]["expires_on"]
    assert sandbox.budget.monthly_limit_usd == raw["sandbox"]["budget"]["monthly_limit_usd"]
    assert sandbox.knowledge_base.chunking.max_tokens == raw["knowledge_base"]["chunking"]["max_tokens"]  # type: ignore[union-attr]
    assert sandbox.query.generation_model_id == raw["generation"]["model_id"]
