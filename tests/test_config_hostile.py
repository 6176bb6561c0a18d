"""Hostile configs: every one fails with a ConfigError naming the key and the rule, never a traceback,
and nothing AWS would refuse at deploy passes synth.

Each case is a mutation of SMALL (tests/test_config.py) or of a workload declared beside it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from knowledge_search.contract import MAX_CLASSIFICATIONS
from stacks.config import ConfigError, load_config
from stacks.config.base import excerpt
from tests.test_config import SMALL

Mutation = Callable[[dict[str, Any]], None]

WORKLOAD: dict[str, Any] = {
    "team": "support-team",
    "stage": "production",
    "documents": {"classification": "internal"},
    "knowledge_base": {},
    "generation": {"model_id": "amazon.nova-lite-v1:0", "prompt": "Answer from the documents."},
    "groups": ["staff"],
    "outputs": {"answer": {"unit_price_usd": 0.02, "quota": {"limit": 100}}},
    "tools": ["knowledge_search"],
    "sandbox": {
        "expires_on": "2030-01-01",
        "budget": {"monthly_limit_usd": 50, "alert_emails": ["support@example.com"]},
    },
}


def config(mutate: Mutation | None = None, workload: dict[str, Any] | None = None) -> dict[str, Any]:
    raw = copy.deepcopy(SMALL)
    if workload is not None:
        raw["workloads"] = {"support": copy.deepcopy(workload)}
    if mutate is not None:
        mutate(raw)
    return raw


def refusal(raw: dict[str, Any], **overrides: Any) -> str:
    context = {"blueprint": raw, **{f"blueprint.{k}": v for k, v in overrides.items()}}
    with pytest.raises(ConfigError) as error:
        load_config(context)
    return str(error.value)


def at(*path: str, value: Any) -> Mutation:
    """Set the value at a path of keys in the raw config (objects on the way made as needed)."""

    def mutate(raw: dict[str, Any]) -> None:
        node: Any = raw
        for part in path[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        node[path[-1]] = value

    return mutate


def test_the_workload_of_these_tests_is_valid() -> None:
    loaded = load_config({"blueprint": config(workload=WORKLOAD)})
    assert "answer" in loaded.production.output_types
    assert loaded.production.groups["staff"].output_quotas["answer"].limit == 100


def in_workload(*path: str, value: Any) -> Mutation:
    return at("workloads", "support", *path, value=value)


def in_staff(*path: str, value: Any) -> Mutation:
    return at("production", "groups", "staff", *path, value=value)


# A: values that raised a traceback (AttributeError, TypeError) now fail as ConfigErrors naming the key.
@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (at("workloads", value=["support"]), "blueprint.workloads = ['support']: Input should be a valid dictionary"),
        (at("workloads", value="support"), "blueprint.workloads = 'support': Input should be a valid dictionary"),
        (in_staff("output_quotas", value=[]), "blueprint.production.groups.staff.output_quotas = []: Input should"),
        (in_staff("output_quotas", value=["chat"]), "blueprint.production.groups.staff.output_quotas = ['chat']"),
        (in_staff("tools", value=3), "blueprint.production.groups.staff.tools = 3: Input should be a valid tuple"),
        (in_staff("tools", value="knowledge_search"), "blueprint.production.groups.staff.tools = 'knowledge_search'"),
        (in_staff("data_classifications", value=1), "blueprint.production.groups.staff.data_classifications = 1"),
    ],
)
def test_a_malformed_shape_beside_a_production_workload_is_a_config_error(mutate: Mutation, expected: str) -> None:
    assert expected in refusal(config(mutate, WORKLOAD))


def test_a_group_may_filter_on_no_more_classifications_than_one_search_takes() -> None:
    """Past knowledge_search's limit every search of the group would be refused as forbidden."""

    def classifications(count: int) -> Mutation:
        def mutate(raw: dict[str, Any]) -> None:
            policies = raw["production"]["ingestion"]["classifications"]
            names = [*policies, *(f"class{n}" for n in range(count))][:count]
            policies.update({name: {"on_pii": "mask"} for name in names if name not in policies})
            in_staff("data_classifications", value=names)(raw)

        return mutate

    message = refusal(config(classifications(MAX_CLASSIFICATIONS + 1)))
    assert message.startswith("blueprint.production.groups.staff.data_classifications = "), message
    assert f"Tuple should have at most {MAX_CLASSIFICATIONS} items after validation, not 21" in message
    loaded = load_config({"blueprint": config(classifications(MAX_CLASSIFICATIONS))})  # at the limit, it loads
    assert len(loaded.production.groups["staff"].data_classifications) == MAX_CLASSIFICATIONS


def test_a_workload_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    (tmp_path / "support.json").write_bytes(b"\xff\xfe{}")
    message = refusal(config(at("workloads_dir", value=str(tmp_path))))
    assert message.startswith("blueprint.workloads.support: ")
    assert "is not UTF-8 text" in message


def test_a_malformed_workload_file_outside_the_project_is_named_by_its_whole_path(tmp_path: Path) -> None:
    (tmp_path / "support.json").write_text("{", encoding="utf-8")
    message = refusal(config(at("workloads_dir", value=str(tmp_path))))
    assert message.startswith(f"blueprint.workloads.support: {tmp_path / 'support.json'} is not JSON")


# C18: a workloads folder that is not there would silently build no sandbox stacks.
@pytest.mark.parametrize(
    "folder", ["no-such-folder", "cdk.json", 5, ["workloads"], "  ", "x" * 300, "a\x00b", "work\nloads"]
)
def test_workloads_dir_must_be_a_folder(folder: Any) -> None:
    message = refusal(config(at("workloads_dir", value=folder)))
    assert message.startswith(f"blueprint.workloads_dir = {excerpt(folder)}: "), message
    assert "folder" in message
    assert "\n" not in message  # one line, whatever the name holds


def test_workloads_dir_overridden_on_the_command_line_must_be_a_folder() -> None:
    assert refusal(config(), workloads_dir="nope").startswith("blueprint.workloads_dir = 'nope': ")


def test_workloads_dir_null_on_the_command_line_reads_no_folder() -> None:
    raw = config(at("workloads_dir", value="workloads"))
    loaded = load_config({"blueprint": raw, "blueprint.workloads_dir": "null"})
    assert loaded.workloads == {}


def _renamed(*path: str, to: str) -> Mutation:
    """The entry at ``path`` moved to the name ``to`` (its references left naming the old one)."""

    def mutate(raw: dict[str, Any]) -> None:
        node: Any = raw
        for part in path[:-1]:
            node = node[part]
        node[to] = node.pop(path[-1])

    return mutate


def _agent_with(prefix: str, name: str) -> Mutation:
    """The prefix ``prefix``, and the writer agent named ``name``."""

    def mutate(raw: dict[str, Any]) -> None:
        raw["prefix"] = prefix
        _renamed("production", "agents", "writer", to=name)(raw)

    return mutate


# Names AWS refuses at deploy (or CDK at synth, without naming the key): AgentCore Gateway,
# Runtime and target names and a Knowledge Base's allow one - or _ between letters or digits,
# never two in a row; a runtime name is at most 48 characters; a data source's prefix 300.
@pytest.mark.parametrize(
    ("mutate", "key", "reason"),
    [
        (at("prefix", value="ab--cd"), "blueprint.prefix", "single -"),
        (at("prefix", value="ab-"), "blueprint.prefix", "ending with a letter or digit"),
        (_renamed("production", "legacy_apis", "orders", to="ord--ers"), "legacy_apis.ord--ers", "single -"),
        (_renamed("production", "legacy_apis", "orders", to="orders-"), "legacy_apis.orders-", "single -"),
        (
            _agent_with("abcdefghijklmnop", "a" * 32),
            f"blueprint.production.agents.{'a' * 32}",
            f"the runtime name abcdefghijklmnop_{'a' * 32} is longer than AgentCore's 48 characters; "
            "allowed: agent names of at most 31 characters with the prefix abcdefghijklmnop",
        ),
        (
            at("sandbox", "knowledge_base", "documents_prefix", value="d" * 300 + "/"),
            "blueprint.sandbox.knowledge_base.documents_prefix",
            "at most 300 characters",
        ),
    ],
    ids=["prefix-double-hyphen", "prefix-trailing-hyphen", "api-double-hyphen", "api-trailing-hyphen",
         "runtime-name-length", "documents-prefix-length"],
)  # fmt: skip
def test_a_name_aws_refuses_is_named_at_its_key(mutate: Mutation, key: str, reason: str) -> None:
    (line, *_) = [line for line in refusal(config(mutate)).splitlines() if key in line]
    assert reason in line.split(key, 1)[1], line


def test_the_longest_names_aws_takes_load() -> None:
    """The bounds themselves: a 16-character prefix with single hyphens, a 31-character agent, a
    300-character prefix; a push source's name as before (it names no AWS resource)."""

    def longest(raw: dict[str, Any]) -> None:
        _agent_with("abc-def-ghi-jklm", "a" * 31)(raw)
        raw["sandbox"].setdefault("knowledge_base", {})["documents_prefix"] = "d" * 299 + "/"
        raw["production"]["connectors"]["push"]["sources"]["crm--eu-"] = "internal"
        raw["production"]["connectors"]["push"]["callers"]["crm--eu-"] = ["crm-eu"]

    loaded = load_config({"blueprint": config(longest)})
    assert (loaded.prefix, len(loaded.sandbox.knowledge_base.documents_prefix)) == ("abc-def-ghi-jklm", 300)


SINGLE_CALL = {"description": "A report. Each record has: {fields}.", "path": "/v2/report", "fields": {"a": "a"}}


# The gateway names a tool <target>___<tool>: a tool name with "__" in it (report___summary) would
# be authorized as one tool and read as another by whatever splits the name elsewhere.
SINGLE_UNDERSCORES = "single _, starting with a letter and ending with a letter or digit"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("report___summary", SINGLE_UNDERSCORES),
        ("report__summary", SINGLE_UNDERSCORES),
        ("summary_", SINGLE_UNDERSCORES),
        ("a" * 49, "at most 48 characters"),
    ],
)
@pytest.mark.parametrize("where", ["legacy_apis", "tool_requests_per_minute", "workloads"])
def test_a_tool_name_with_two_underscores_in_a_row_or_a_trailing_one_is_refused(
    name: str, reason: str, where: str
) -> None:
    def declared(raw: dict[str, Any]) -> None:
        if where == "legacy_apis":
            raw["production"]["legacy_apis"]["orders"]["tools"][name] = SINGLE_CALL
        elif where == "tool_requests_per_minute":
            raw["production"]["tool_requests_per_minute"] = {name: 10}
        else:
            raw["workloads"]["support"]["tools"] = ["knowledge_search", name]

    lines = refusal(config(declared, WORKLOAD)).splitlines()
    assert any(name in line and reason in line for line in lines), lines


def test_a_tool_name_of_single_underscores_up_to_48_characters_loads() -> None:
    name = "report_summary_" + "a" * 31 + "_1"  # 48

    def declared(raw: dict[str, Any]) -> None:
        raw["production"]["legacy_apis"]["orders"]["tools"][name] = SINGLE_CALL
        raw["production"]["tool_requests_per_minute"] = {name: 10}

    assert name in load_config({"blueprint": config(declared)}).production.legacy_apis["orders"].tools


def test_two_agents_whose_evaluation_names_are_one_are_refused() -> None:
    """Cut to 48 characters, <prefix>_<agent>_tools can be one name for two agents (each in its own
    stack: CDK cannot see it, the second deploy would fail on the first's results log group)."""

    def clash(raw: dict[str, Any]) -> None:
        _agent_with("abcdefghijklmnop", "r" * 25 + "_tools")(raw)
        _renamed("production", "agents", "helper", to="r" * 25)(raw)

    (line,) = [line for line in refusal(config(clash)).splitlines() if "production.agents" in line]
    assert line == (  # the one declared later (renamed last) is named
        f"blueprint.production.agents.{'r' * 25}: its online evaluation would be named "
        f"abcdefghijklmnop_{'r' * 25}_tools, as agent {'r' * 25}_tools's is; allowed: agent names that differ "
        "within the first 48 characters of <prefix>_<agent>_tools"
    )


# B, C: values AWS refuses at deploy, or that make no sense, each named with the rule.
@pytest.mark.parametrize(
    ("mutate", "key", "reason"),
    [
        # 7, 8, 29: tags
        (at("tags", value={"AWS:x": "v"}), "blueprint.tags.AWS:x:", "not starting with aws:"),
        (at("tags", value={"Aws:Name": "v"}), "blueprint.tags.Aws:Name:", "not starting with aws:"),
        (at("tags", value={"owner": "aws:me"}), "blueprint.tags.owner:", "not starting with aws:"),
        (at("tags", value={"owner": "#me"}), "blueprint.tags.owner:", "up to 256 letters"),
        (at("tags", value={"k" * 200: "v"}), "blueprint.tags." + "k" * 40 + "...:", "1 to 128"),
        (at("tags", value={f"k{i}": "v" for i in range(47)}), "blueprint.tags:", "at most 50 tags"),
        # 9: a workload's team is a tag value on its stacks
        (in_workload("team", value="R&D #1"), "blueprint.workloads.support.team", "AWS tag value"),
        (in_workload("team", value="aws:platform"), "blueprint.workloads.support.team", "aws:"),
        # 10: AWS Budgets e-mails at most 10 subscribers per notification; an address once
        (
            at("sandbox", "budget", "alert_emails", value=[f"a{i}@example.com" for i in range(11)]),
            "blueprint.sandbox.budget.alert_emails",
            "at most 10",
        ),
        (
            at("sandbox", "budget", "alert_emails", value=["a@example.com", "A@example.com"]),
            "blueprint.sandbox.budget.alert_emails",
            "more than once",
        ),
        (
            in_workload("sandbox", "budget", "alert_emails", value=[f"a{i}@example.com" for i in range(11)]),
            "blueprint.workloads.support.sandbox.budget.alert_emails",
            "at most 10",
        ),
        (
            at("production", "ingestion", "alarm_emails", value=["a@example.com", "a@example.com"]),
            "blueprint.production.ingestion.alarm_emails",
            "more than once",
        ),
        # 11: API Gateway's quota limit is a 32-bit number
        (in_staff("usage_plan", "quota_limit", value=3_000_000_000), "staff.usage_plan.quota_limit", "2147483647"),
        (in_staff("usage_plan", "quota_limit", value=10**20), "staff.usage_plan.quota_limit", "2147483647"),
        # 12: the guardrail's limits
        (at("production", "guardrail", "blocked_input_message", value=""), "guardrail.blocked_input_message", "1"),
        (at("production", "guardrail", "blocked_output_message", value="   "), "blocked_output_message", "blank"),
        (
            at(
                "production",
                "guardrail",
                "denied_topics",
                value=[{"name": "X", "definition": "x", "examples": ["e" * 101]}],
            ),
            "blueprint.production.guardrail.denied_topics.0.examples.0",
            "at most 100",
        ),
        (
            at(
                "production",
                "guardrail",
                "denied_topics",
                value=[{"name": f"T{i}", "definition": "x"} for i in range(31)],
            ),
            "blueprint.production.guardrail.denied_topics",
            "at most 30",
        ),
        (
            at("production", "guardrail", "denied_topics", value=[{"name": "Tax", "definition": "x"}] * 2),
            "blueprint.production.guardrail.denied_topics.1.name",
            "twice",
        ),
        # 13: Macie's allow list must be a regular expression
        (
            at("production", "macie", "allow_list_regex", value="("),
            "blueprint.production.macie.allow_list_regex",
            "regular",
        ),
        (at("production", "macie", "allow_list_regex", value="a" * 513), "macie.allow_list_regex", "at most 512"),
        # 14: Macie takes at most 50 keywords
        (
            at(
                "production",
                "ingestion",
                "custom_identifiers",
                value={"staff_id": {"regex": "S-[0-9]+", "keywords": [f"kw{i:02}" for i in range(51)]}},
            ),
            "blueprint.production.ingestion.custom_identifiers.staff_id.keywords",
            "at most 50",
        ),
        # 15, 16: EventBridge (and Kendra) schedules
        (
            at("production", "connectors", "pull", "wiki", "schedule", value="rate(1 minutes)"),
            "pull.wiki.schedule",
            "1 takes minute",
        ),
        (
            at("production", "connectors", "pull", "wiki", "schedule", value="rate(5 hour)"),
            "pull.wiki.schedule",
            "5 takes hours",
        ),
        (
            at("production", "connectors", "pull", "wiki", "schedule", value="rate(0 minutes)"),
            "pull.wiki.schedule",
            "at least 1",
        ),
        (
            at("production", "connectors", "pull", "wiki", "schedule", value="cron(a b c d ? f)"),
            "pull.wiki.schedule",
            "minutes",
        ),
        (
            at("production", "connectors", "pull", "wiki", "schedule", value="cron(0 3 * * * *)"),
            "pull.wiki.schedule",
            "?",
        ),
        (
            at("sandbox", "kendra", "sync_schedule", value="cron(a b c d e f)"),
            "blueprint.sandbox.kendra.sync_schedule",
            "minutes 'a' is not 0-59",
        ),
        (
            at("sandbox", "kendra", "sync_schedule", value="cron(0 24 * * ? *)"),
            "blueprint.sandbox.kendra.sync_schedule",
            "hours",
        ),
        (
            at("sandbox", "kendra", "sync_schedule", value="cron(0 3 ? * 8 *)"),
            "sandbox.kendra.sync_schedule",
            "day-of-week",
        ),
        # L and # in day-of-week take a day (1-7, or its name for #): not L#2, FRIL or 9L
        *[
            (at("sandbox", "kendra", "sync_schedule", value=f"cron(0 3 ? * {day} *)"), "kendra.sync_schedule", "day")
            for day in ("L#2", "FRIL", "9L", "8#1")
        ],
        # 9: a workload's team is at most 64 characters (a tag value may have 256)
        (in_workload("team", value="a" * 65), "blueprint.workloads.support.team", "at most 64"),
        # 19: JSON's true is not 1, nor 1 true
        (at("sandbox", "log_retention_days", value=True), "blueprint.sandbox.log_retention_days", "not a number"),
        (at("sandbox", "budget", "monthly_limit_usd", value=True), "sandbox.budget.monthly_limit_usd", "not a number"),
        (in_staff("precedence", value=False), "blueprint.production.groups.staff.precedence", "not a number"),
        (
            at("production", "tool_requests_per_minute", value={"find_orders": True}),
            "tool_requests_per_minute.find_orders",
            "number",
        ),
        (at("sandbox", "kendra", "enabled", value=1), "blueprint.sandbox.kendra.enabled", "not true or false"),
        (in_workload("sandbox", "kendra", value=0), "blueprint.workloads.support.sandbox.kendra", "not true or false"),
        # 25: blank text
        (
            at("production", "output_types", "chat", "instructions", value="  \n "),
            "output_types.chat.instructions",
            "blank",
        ),
        (in_workload("generation", "prompt", value="\t"), "blueprint.workloads.support.generation.prompt", "blank"),
        (in_workload("team", value="   "), "blueprint.workloads.support.team", "blank"),
        # a declared record field is a name agents read: never empty, never starting with a digit
        (
            at("production", "legacy_apis", "orders", "tools", "find_orders", value={"": "id"}),
            'tools.find_orders."": this name',
            "not starting with a digit",
        ),
        (
            at("production", "legacy_apis", "orders", "tools", "find_orders", value={"1st": "id"}),
            "tools.find_orders.1st: this name",
            "letters, digits or _",
        ),
    ],
)
def test_a_value_aws_or_sense_refuses_is_named_with_the_rule(mutate: Mutation, key: str, reason: str) -> None:
    (line,) = [line for line in refusal(config(mutate, WORKLOAD)).splitlines() if key in line]
    assert reason in line.split(key, 1)[1], line


# 17, 31: no infinity or NaN in any number, from cdk.json or the command line.
@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
@pytest.mark.parametrize(
    "key",
    [
        "sandbox.budget.monthly_limit_usd",
        "production.output_types.chat.unit_price_usd",
        "production.guardrail.grounding_threshold",
    ],
)
def test_infinity_and_nan_are_refused(key: str, value: str) -> None:
    message = refusal(config(), **{key: value})
    assert message.startswith(f"blueprint.{key} = "), message
    assert "finite number" in message


def test_schedules_eventbridge_takes_still_load() -> None:
    wiki = ("production", "connectors", "pull", "wiki", "schedule")
    for schedule in ["rate(1 minute)", "rate(2 hours)", "cron(0/15 8-17 ? * MON-FRI *)", "cron(0 10 L * ? 2030)"]:
        loaded = load_config({"blueprint": config(at(*wiki, value=schedule))})
        assert loaded.production.connectors.pull["wiki"].schedule == schedule
    for sync in ["cron(0 3 ? * 6L *)", "cron(0 3 ? * FRI#2 *)", "cron(0 3 ? * 2#3 *)", "cron(30 2 15W jan,jul ? *)"]:
        assert load_config({"blueprint": config(at("sandbox", "kendra", "sync_schedule", value=sync))})


def test_a_regex_with_an_escape_only_pcre_knows_is_left_to_the_service() -> None:
    """Python's re lacks \\p{L} and \\z; Macie's engine is PCRE-style: only a broken structure is refused."""
    pattern = r"\p{L}+-\d{4}\z"
    assert load_config({"blueprint": config(at("production", "macie", "allow_list_regex", value=pattern))})


def test_tags_up_to_the_limit_with_the_stacks_own_load() -> None:
    tags = {f"k{i}": "v" for i in range(44)} | {"team": "x", "owner": "aws-platform"}
    assert len(load_config({"blueprint": config(at("tags", value=tags))}).tags) == 46


# D: messages.
def test_an_error_a_production_workload_brings_names_the_workload() -> None:
    message = refusal(config(in_workload("tools", value=["knowledge_search", "no_such_tool"]), WORKLOAD))
    assert message.startswith("blueprint.production.groups.staff.tools.")
    assert "unknown tool no_such_tool" in message
    assert message.endswith("(from workload support)")


def test_chunking_without_a_strategy_names_the_strategy_key_and_its_values() -> None:
    message = refusal(config(at("sandbox", "knowledge_base", "chunking", value={})))
    assert message == (
        "blueprint.sandbox.knowledge_base.chunking.strategy: required but missing; "
        "allowed values are FIXED_SIZE, HIERARCHICAL, SEMANTIC, NONE"
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"path": "/orders/{id}"}, ".find_order.path: path placeholder {id} must be a required argument"),
        ({"description": "Order {x}"}, ".find_order.description: only {fields} may stand in braces"),
        # format() would look these up: an AttributeError or TypeError out of synth, or a method's repr
        # (its memory address: a template that changes every run) in the tool's description.
        ({"description": "Order {fields.x}"}, ".find_order.description: only {fields} may stand in braces"),
        ({"description": "Order {fields[x]}"}, ".find_order.description: only {fields} may stand in braces"),
        ({"description": "One. {fields.upper}"}, ".find_order.description: only {fields} may stand in braces"),
        ({"description": "Order {fields!r}"}, ".find_order.description: only {fields} may stand in braces"),
        ({"description": "Order {fields:>9}"}, ".find_order.description: only {fields} may stand in braces"),
        ({"description": "Order {fields"}, ".find_order.description: only {fields} may stand in braces"),
        ({"description": "Order }"}, ".find_order.description: only {fields} may stand in braces"),
    ],
)
def test_a_single_call_tools_error_names_its_key_without_the_whole_tool(change: dict[str, str], expected: str) -> None:
    tool = {
        "description": "One order.",
        "path": "/orders/{order_id}",
        "arguments": {"order_id": {"description": "The order id"}},
        "fields": {"status": "status"},
    }
    mutate = at("production", "legacy_apis", "orders", "tools", "find_order", value=tool | change)
    message = refusal(config(mutate))
    assert message == f"blueprint.production.legacy_apis.orders.tools{expected}"


def test_no_output_types_is_said_once_at_output_types() -> None:
    (line,) = refusal(config(at("production", "output_types", value={}))).splitlines()
    assert line.startswith("blueprint.production.output_types: ")
    assert "at least 1" in line


# A workload's personal data: Bedrock's types, each once, and in production the guardrail's to catch.
@pytest.mark.parametrize(
    ("entities", "expected"),
    [
        (["FOO"], "blueprint.workloads.support.documents.pii_entities.0: unknown PII entity type FOO; allowed: "),
        (["EMAIL", "EMAIL"], "blueprint.workloads.support.documents.pii_entities.1: EMAIL named twice"),
    ],
)
def test_a_workloads_pii_types_are_bedrocks_each_once(entities: list[str], expected: str) -> None:
    sandbox = {**WORKLOAD, "stage": "sandbox", "documents": {"classification": "internal", "pii_entities": entities}}
    assert refusal(config(workload=sandbox)).startswith(expected)


def test_a_workloads_golden_cases_are_each_listed_once() -> None:
    """Listed twice, a case would weigh twice in the promotion gate's score."""
    listed = {**WORKLOAD, "stage": "sandbox", "evaluation": {"cases": ["warranty", "refund-policy", "warranty"]}}
    assert refusal(config(workload=listed)).startswith(
        "blueprint.workloads.support.evaluation.cases.2: warranty listed twice; allowed: each case once"
    )


def test_a_production_workloads_pii_types_are_covered_by_the_production_guardrail() -> None:
    guarded = at("production", "guardrail", "pii_entities", value={"EMAIL": "ANONYMIZE"})
    documents = {"classification": "internal", "pii_entities": ["EMAIL", "PHONE"]}
    message = refusal(config(guarded, {**WORKLOAD, "documents": documents}))
    assert message.startswith(
        "blueprint.workloads.support.documents.pii_entities: the production guardrail does not cover PHONE; "
        "allowed: types in production.guardrail.pii_entities (EMAIL)"
    )
    # Covered, or still in the sandbox (make promote checks it before the move): it loads.
    assert load_config(
        {"blueprint": config(guarded, {**WORKLOAD, "documents": {**documents, "pii_entities": ["EMAIL"]}})}
    )
    assert load_config({"blueprint": config(guarded, {**WORKLOAD, "stage": "sandbox", "documents": documents})})


# E: values AWS takes but that can never work: each refused with its key and the bound that holds.
HIERARCHICAL = {"strategy": "HIERARCHICAL", "parent_max_tokens": 1500, "child_max_tokens": 300}


def observability(key: str, value: Any) -> Mutation:
    return at("production", "observability", key, value=value)


@pytest.mark.parametrize(
    ("mutate", "key", "allowed"),
    [
        pytest.param(
            at("sandbox", "knowledge_base", "chunking", value=HIERARCHICAL | {"overlap_tokens": 300}),
            "blueprint.sandbox.knowledge_base.chunking.overlap_tokens: ",
            "allowed: 1 to 299 (smaller than child_max_tokens)",
            id="overlap-a-whole-child-chunk",
        ),
        pytest.param(
            in_workload("knowledge_base", "chunking", value=HIERARCHICAL | {"overlap_tokens": 100_000}),
            "blueprint.workloads.support.knowledge_base.chunking.overlap_tokens = 100000: ",
            "less than or equal to 8190",
            id="overlap-beyond-any-chunk",
        ),
        pytest.param(
            in_staff("models", value={"allowed": ["amazon.nova-lite-v1:0"] * 2, "default": "amazon.nova-lite-v1:0"}),
            "blueprint.production.groups.staff.models.allowed.1: ",
            "amazon.nova-lite-v1:0 named twice; allowed: each model once",
            id="allowed-model-twice",
        ),
        pytest.param(
            in_staff(
                "models",
                value={
                    "allowed": ["amazon.nova-lite-v1:0", "amazon.nova-micro-v1:0"],
                    "default": "amazon.nova-lite-v1:0",
                    "fallbacks": ["amazon.nova-micro-v1:0", "amazon.nova-micro-v1:0"],
                },
            ),
            "blueprint.production.groups.staff.models.fallbacks.1: ",
            "amazon.nova-micro-v1:0 named twice; allowed: each model once",
            id="fallback-twice",
        ),
        pytest.param(
            at("sandbox", "budget", "monthly_limit_usd", value=1e15),
            "blueprint.sandbox.budget.monthly_limit_usd = 1000000000000000.0: ",
            "less than or equal to 1000000000",
            id="budget-no-sandbox-reaches",
        ),
        pytest.param(
            in_workload("sandbox", "budget", "monthly_limit_usd", value=1e21),
            "blueprint.workloads.support.sandbox.budget.monthly_limit_usd = 1e+21: ",
            "less than or equal to 1000000000",
            id="workload-budget-in-exponent-notation",
        ),
        pytest.param(
            at("sandbox", "budget", "monthly_limit_usd", value=1e-7),
            "blueprint.sandbox.budget.monthly_limit_usd: ",
            "1e-07 is less than a cent; allowed: 0.01 to 1000000000 (USD)",
            id="budget-below-a-cent",
        ),
        pytest.param(
            at("production", "output_types", "chat", "unit_price_usd", value=1e300),
            "blueprint.production.output_types.chat.unit_price_usd = 1e+300: ",
            "less than or equal to 1000000",
            id="unit-price-absurd",
        ),
        pytest.param(
            in_workload("outputs", "answer", "unit_price_usd", value=2_000_000),
            "blueprint.workloads.support.outputs.answer.unit_price_usd = 2000000: ",
            "less than or equal to 1000000",
            id="workload-unit-price-absurd",
        ),
        pytest.param(
            observability("error_rate_percent", 100),
            "blueprint.production.observability.error_rate_percent = 100: ",
            "less than 100",
            id="error-rate-no-share-exceeds",
        ),
        pytest.param(
            observability("p99_latency_ms", 900_000),
            "blueprint.production.observability.p99_latency_ms = 900000: ",
            "less than 900000",
            id="latency-beyond-lambdas-longest-run",
        ),
        pytest.param(
            observability("guardrail_interventions_per_5_minutes", 10**30),
            "blueprint.production.observability.guardrail_interventions_per_5_minutes = ",
            "less than or equal to 3000000",
            id="guardrail-interventions-unreachable",
        ),
        pytest.param(
            observability("quota_refusals_per_5_minutes", 3_000_001),
            "blueprint.production.observability.quota_refusals_per_5_minutes = 3000001: ",
            "less than or equal to 3000000",
            id="quota-refusals-unreachable",
        ),
        pytest.param(
            observability("tool_refusals_per_5_minutes", 10**9),
            "blueprint.production.observability.tool_refusals_per_5_minutes = 1000000000: ",
            "less than or equal to 3000000",
            id="tool-refusals-unreachable",
        ),
        pytest.param(
            at("production", "guardrail", "grounding_threshold", value=0),
            "blueprint.production.guardrail.grounding_threshold = 0: ",
            "greater than 0",
            id="grounding-check-that-blocks-nothing",
        ),
        pytest.param(
            at("production", "guardrail", "relevance_threshold", value=1),
            "blueprint.production.guardrail.relevance_threshold = 1: ",
            "less than or equal to 0.99",
            id="relevance-above-bedrocks-range",
        ),
        pytest.param(
            lambda raw: (
                at("production", "output_types", "report", "units", value=5)(raw),
                in_staff("output_quotas", "report", "limit", value=4)(raw),
            ),
            "blueprint.production.groups.staff.output_quotas.report.limit: ",
            "below the 5 units one report output takes: no report could ever be delivered; "
            "allowed: 0 (none) or at least 5",
            id="quota-below-one-output",
        ),
        pytest.param(
            lambda raw: (
                in_workload("stage", value="sandbox")(raw),
                in_workload("outputs", "answer", "units", value=3)(raw),
                in_workload("outputs", "answer", "quota", "limit", value=2)(raw),
            ),
            "blueprint.workloads.support.outputs.answer.quota.limit: ",
            "below the 3 units one output takes: none could ever be delivered; allowed: 0 (none) or at least 3",
            id="sandbox-workload-quota-below-one-output",  # refused now, not at promotion
        ),
    ],
)
def test_a_value_that_can_never_work_is_named_with_its_bound(mutate: Mutation, key: str, allowed: str) -> None:
    (line,) = [line for line in refusal(config(mutate, WORKLOAD)).splitlines() if line.startswith(key)]
    assert allowed in line.removeprefix(key), line


def test_the_bounds_themselves_load() -> None:
    """The largest and smallest values the new bounds allow, and the default as a fallback, all load."""
    models = {
        "allowed": ["amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"],
        "default": "amazon.nova-pro-v1:0",
        # A request that names nova-lite falls back to the default: the only way to have that fallback.
        "fallbacks": ["amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0"],
    }
    changes: list[Mutation] = [
        at("sandbox", "knowledge_base", "chunking", value=HIERARCHICAL | {"overlap_tokens": 299}),
        at("sandbox", "budget", "monthly_limit_usd", value=1_000_000_000),
        in_workload("sandbox", "budget", "monthly_limit_usd", value=0.01),
        at("production", "output_types", "chat", "unit_price_usd", value=1_000_000),
        in_staff("models", value=models),
        observability("error_rate_percent", 99.9),
        observability("p99_latency_ms", 899_999),
        observability("guardrail_interventions_per_5_minutes", 3_000_000),
        at("production", "guardrail", "grounding_threshold", value=0.99),
        at("production", "output_types", "report", "units", value=5),
        in_staff("output_quotas", "report", "limit", value=5),  # exactly one report
        in_staff("output_quotas", "chat", "limit", value=0),  # none, said plainly
    ]

    def mutate(raw: dict[str, Any]) -> None:
        for change in changes:
            change(raw)

    loaded = load_config({"blueprint": config(mutate, WORKLOAD)})
    assert loaded.production.groups["staff"].models.fallbacks == ("amazon.nova-pro-v1:0", "amazon.nova-lite-v1:0")
    assert loaded.sandbox is not None
    assert loaded.sandbox.budget.monthly_limit_usd == 1_000_000_000


# Strings pydantic's lax mode reads as true/false, a number or a date ("no" as false, " 5 " as 5, 0 as
# 1970-01-01): refused, naming the key and what is allowed. In cdk.json (a JSON string) and as a -c
# override (text that is not JSON stays a string) alike.
@pytest.mark.parametrize("text", ["no", "off", "yes", "on", "0", "1", "f", "t", "False", "TRUE"])
@pytest.mark.parametrize("where", ["cdk.json", "override"])
def test_a_word_pydantic_reads_as_true_or_false_is_refused(text: str, where: str) -> None:
    if where == "cdk.json":
        message = refusal(config(at("production", "web", "https_only", value=text)))
    else:
        message = refusal(config(), **{"production.web.https_only": text})
    shown = text if where == "override" and text.isdigit() else repr(text)  # -c ...=0 is JSON's 0
    assert message == f"blueprint.production.web.https_only: {shown} is not true or false; allowed: true or false"


@pytest.mark.parametrize("text", [" 5 ", "5.0", "1_000", "+5", "5\n"])
def test_a_whole_numbers_text_other_than_its_digits_is_refused(text: str) -> None:
    message = refusal(config(in_staff("precedence", value=text)))
    assert message == (
        f"blueprint.production.groups.staff.precedence: {text!r} is not written as a whole number; "
        "allowed: a whole number in digits, such as 5 or -1"
    )


# JSON's 5.0 and 1e3 are numbers pydantic would read as the whole numbers 5 and 1000: in cdk.json and
# as a -c override (which arrives as JSON) alike, refused where only a whole number belongs.
@pytest.mark.parametrize(("number", "shown"), [(5.0, "5.0"), (1e3, "1000.0"), (5.5, "5.5")])
@pytest.mark.parametrize("where", ["cdk.json", "override"])
def test_a_number_with_a_fraction_or_an_exponent_is_refused_where_a_whole_number_belongs(
    number: float, shown: str, where: str
) -> None:
    if where == "cdk.json":
        message = refusal(config(in_staff("precedence", value=number)))
    else:
        message = refusal(config(), **{"production.groups.staff.precedence": shown})
    assert message == (
        f"blueprint.production.groups.staff.precedence: {shown} is not written as a whole number; "
        "allowed: a whole number in digits, such as 5 or -1"
    )


def test_a_number_with_a_fraction_still_loads_where_any_number_belongs() -> None:
    loaded = load_config({"blueprint": config(at("sandbox", "budget", "monthly_limit_usd", value=5.0))})
    assert loaded.sandbox is not None
    assert loaded.sandbox.budget.monthly_limit_usd == 5


@pytest.mark.parametrize("text", [" 12.5", "1_000", "+12", "12."])
def test_a_numbers_text_other_than_jsons_is_refused(text: str) -> None:
    message = refusal(config(at("sandbox", "budget", "monthly_limit_usd", value=text)))
    assert message == (
        f"blueprint.sandbox.budget.monthly_limit_usd: {text!r} is not written as a number; "
        "allowed: a number as JSON writes it, such as 5 or 2.5"
    )


@pytest.mark.parametrize(("override", "shown"), [("0", "0"), ("1893456000", "1893456000"), ("true", "true")])
def test_a_number_where_a_date_belongs_is_refused(override: str, shown: str) -> None:
    message = refusal(config(), **{"sandbox.expires_on": override})
    assert (
        message
        == f"blueprint.sandbox.expires_on: {shown} is not a date; allowed: a date as YYYY-MM-DD, such as 2030-01-31"
    )


def test_a_dates_text_other_than_yyyy_mm_dd_is_refused_in_a_workload_too() -> None:
    message = refusal(config(in_workload("sandbox", "expires_on", value="2030-01-01T00:00:00"), WORKLOAD))
    assert message == (
        "blueprint.workloads.support.sandbox.expires_on: '2030-01-01T00:00:00' is not written as a date; "
        "allowed: a date as YYYY-MM-DD, such as 2030-01-31"
    )


def test_a_negative_whole_numbers_text_is_read_as_the_number() -> None:
    assert refusal(config(in_staff("precedence", value="-1"))) == (
        "blueprint.production.groups.staff.precedence = '-1': Input should be greater than or equal to 0"
    )


def test_text_pydantic_refuses_anyway_keeps_its_message() -> None:
    assert refusal(config(in_staff("precedence", value="1e3"))) == (
        "blueprint.production.groups.staff.precedence = '1e3': Input should be a valid integer, "
        "unable to parse string as an integer"
    )


def test_what_the_cli_sends_still_loads() -> None:
    """-c values arrive as text: JSON's true/false and numbers parse, a date stays a string; and the
    same texts written as JSON strings load as they always did."""

    def as_strings(raw: dict[str, Any]) -> None:
        at("production", "web", "https_only", value="false")(raw)
        in_staff("precedence", value="3")(raw)
        at("sandbox", "budget", "monthly_limit_usd", value="12.5")(raw)

    context = {
        "blueprint": config(as_strings),
        "blueprint.sandbox.kendra.enabled": "true",
        "blueprint.sandbox.budget.alert_threshold_percent": "90",
        "blueprint.sandbox.expires_on": "2031-02-03",
        "blueprint.sandbox.query.max_passages": '"7"',
    }
    loaded = load_config(context)
    assert loaded.production.web.https_only is False
    assert loaded.production.groups["staff"].precedence == 3
    assert loaded.sandbox.budget.monthly_limit_usd == 12.5
    assert loaded.sandbox.kendra.enabled is True
    assert loaded.sandbox.budget.alert_threshold_percent == 90
    assert loaded.sandbox.expires_on.isoformat() == "2031-02-03"
    assert loaded.sandbox.query.max_passages == 7


# Nesting deep enough to overflow Python's stack (some 500 levels once validated, 3000 inside json)
# is refused before anything recurses, naming the override or the file.
@pytest.mark.parametrize("depth", [33, 493, 100_000])
def test_an_override_nested_too_deeply_is_named(depth: int) -> None:
    deep = '{"a":' * depth + "1" + "}" * depth
    assert refusal(config(), **{"production.tool_requests_per_minute": deep}) == (
        "blueprint.production.tool_requests_per_minute: nested too deeply; "
        "allowed: at most 32 levels of objects and lists below blueprint"
    )


def test_an_override_at_the_deepest_level_allowed_is_read() -> None:
    """blueprint.production.groups.staff.tools is 4 levels down: 29 lists within each other put the
    innermost at level 32, which goes on to be validated like any other value; 30 are refused."""
    assert "nested too deeply" in refusal(config(), **{"production.groups.staff.tools": "[" * 30 + "]" * 30})
    message = refusal(config(), **{"production.groups.staff.tools": "[" * 29 + "]" * 29})
    assert message.startswith("blueprint.production.groups.staff.tools.0 = [[["), message


def test_a_workload_file_nested_too_deeply_is_named(tmp_path: Path) -> None:
    (tmp_path / "support.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    message = refusal(config(at("workloads_dir", value=str(tmp_path))))
    assert message == (
        f"blueprint.workloads.support: {tmp_path / 'support.json'} is nested too deeply; "
        "allowed: at most 32 levels of objects and lists below blueprint"
    )


def test_cdk_json_nested_too_deeply_is_named_by_its_section() -> None:
    deep: Any = 1
    for _ in range(600):
        deep = {"a": deep}
    message = refusal(config(at("production", "tool_requests_per_minute", value=deep)))
    assert message.startswith("blueprint.production: nested too deeply;"), message


# A key given twice: json keeps the last without a word (a stage of sandbox read as production).
def test_a_key_given_twice_in_a_workload_file_is_named(tmp_path: Path) -> None:
    text = json.dumps(WORKLOAD | {"stage": "sandbox"}, indent=1).replace(
        '"stage": "sandbox"', '"stage": "sandbox",\n "stage": "production"'
    )
    (tmp_path / "support.json").write_text(text, encoding="utf-8")
    message = refusal(config(at("workloads_dir", value=str(tmp_path))))
    assert message == (
        f"blueprint.workloads.support: {tmp_path / 'support.json'} gives the key 'stage' twice in one object "
        "(JSON would keep only the last); allowed: each key once"
    )


def test_a_key_given_twice_deeper_in_a_workload_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "support.json").write_text('{"outputs": {"answer": {}, "answer": {}}}', encoding="utf-8")
    assert "gives the key 'answer' twice" in refusal(config(at("workloads_dir", value=str(tmp_path))))


def test_a_key_given_twice_in_an_override_is_named() -> None:
    assert refusal(config(), tags='{"team": "a", "team": "b"}') == (
        "blueprint.tags: the override gives the key 'team' twice in one object; allowed: each key once"
    )


# A bad value (or key) is echoed as an excerpt, not whole: one line stays readable.
@pytest.mark.parametrize(
    ("key", "value", "start"),
    [
        ("prefix", "x" * 100_000, "blueprint.prefix = '" + "x" * 60 + "'...: "),
        ("sandbox.budget.alert_emails", '["' + "y" * 100_000 + '"]', "blueprint.sandbox.budget.alert_emails.0 = 'yyy"),
        ("production.groups.staff.tools", '["' + "t" * 100_000 + '"]', "blueprint.production.groups.staff.tools.0:"),
        ("production.groups." + "g" * 100_000, "{}", "blueprint.production.groups." + "g" * 60 + "...: "),
        ("sandbox.kendra.enabled", "n" * 100_000, "blueprint.sandbox.kendra.enabled = '" + "n" * 60 + "'...: "),
        (
            "production.groups.staff.precedence",
            '" ' + "0" * 100_000 + '"',
            "blueprint.production.groups.staff.precedence: ' " + "0" * 59 + "'... is not written as a whole number",
        ),
    ],
)
def test_a_long_value_is_echoed_as_an_excerpt(key: str, value: str, start: str) -> None:
    message = refusal(config(), **{key: value})
    assert message.startswith(start), message[:200]
    assert max(map(len, message.splitlines())) < 400, message[:400]


def test_a_long_declared_name_is_listed_as_an_excerpt() -> None:
    """A name declared under a bad key still counts as declared: the list of allowed names cuts it."""
    message = refusal(config(at("production", "output_types", "o" * 100_000, value={"unit_price_usd": 1})))
    assert max(map(len, message.splitlines())) < 400, message[:400]


# A workload file whose name ends in .JSON would be skipped without a word.
@pytest.mark.parametrize("name", ["support.JSON", "support.Json", "support.json "])
def test_a_workload_file_named_almost_json_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text(json.dumps(WORKLOAD), encoding="utf-8")
    assert refusal(config(at("workloads_dir", value=str(tmp_path)))) == (
        f"blueprint.workloads_dir: {tmp_path / name} is not read, its name does not end in .json; allowed: "
        "a workload file named <name>.json, in lower case (rename it 'support.json')"
    )


def test_other_files_beside_the_workloads_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "support.json").write_text(json.dumps(WORKLOAD), encoding="utf-8")
    (tmp_path / "README.md").write_text("the workloads", encoding="utf-8")
    (tmp_path / "notes.json.bak").write_text("{", encoding="utf-8")
    assert sorted(load_config({"blueprint": config(at("workloads_dir", value=str(tmp_path)))}).workloads) == ["support"]


PULL_SOURCE = {
    "base_url": "https://kb.example.com",
    "secret_name": "demo/kb",
    "records_path": "/articles",
    "owner": "support-content-team",
    "classification": "public",
}


def test_a_push_source_and_a_pull_source_of_one_name_are_refused() -> None:
    """Both would land records at realtime/<name>/<id>.md, one replacing the other (and its classification)."""
    connectors = {
        "push": {"sources": {"kb-articles": "internal"}, "callers": {"kb-articles": ["kb"]}},
        "pull": {"kb-articles": PULL_SOURCE},
    }
    assert refusal(config(at("production", "connectors", value=connectors))) == (
        "blueprint.production.connectors.pull.kb-articles: also a push source "
        "(production.connectors.push.sources.kb-articles): both would land records at realtime/kb-articles/, "
        "each replacing the other's; allowed: a name the push connector does not use"
    )


def test_push_and_pull_sources_of_different_names_load() -> None:
    connectors = {
        "push": {"sources": {"crm-notes": "internal"}, "callers": {"crm-notes": ["crm"]}},
        "pull": {"kb-articles": PULL_SOURCE},
    }
    loaded = load_config({"blueprint": config(at("production", "connectors", value=connectors))})
    assert sorted(loaded.production.connectors.pull) == ["kb-articles"]
    assert loaded.production.connectors.push.sources == {"crm-notes": "internal"}


@pytest.mark.parametrize(
    ("source", "run", "loads"),
    [
        ({"timeout_seconds": 29, "max_attempts": 3}, None, True),  # 146.4 s: under half of the default 300
        ({"timeout_seconds": 31, "max_attempts": 3}, None, False),
        ({"timeout_seconds": 60, "max_attempts": 5}, 900, True),  # 426.2 s of a 900 s run
        ({"timeout_seconds": 10, "max_attempts": 3}, 60, False),  # a shorter run: 50 s is more than 30
    ],
)
def test_a_pull_source_whose_call_may_take_more_than_half_a_run_is_refused(
    source: dict[str, Any], run: int | None, loads: bool
) -> None:
    """A run stops for time between pages, keeping back the longest a call may take; a call longer
    than half the run leaves its page too little time to land before Lambda ends the run."""
    blueprint = config(at("production", "connectors", value={"pull": {"kb-articles": {**PULL_SOURCE, **source}}}))
    if run is not None:
        blueprint["production"]["functions"] = {"connector_pull": {"timeout_seconds": run}}
    if loads:
        assert load_config({"blueprint": blueprint}).production.connectors.pull["kb-articles"].max_attempts
        return
    longest = (source["max_attempts"] + 2) * source["timeout_seconds"] + 0.2 * (2 ** source["max_attempts"] - 1)
    assert refusal(blueprint) == (
        f"blueprint.production.connectors.pull.kb-articles.timeout_seconds: a call to the source may take "
        f"{longest:g} s ((max_attempts + 2) x timeout_seconds, and the backoffs), more than half of a pull "
        f"run's {run or 300} s (functions.connector_pull.timeout_seconds); allowed: timeout_seconds and "
        f"max_attempts whose longest call is at most {(run or 300) / 2:g} s"
    )


@pytest.mark.parametrize(
    ("where", "function"),
    [(("legacy_apis", "orders"), "legacy_tools"), (("connectors", "pull", "kb"), "connector_pull")],
)
def test_an_answer_cap_the_functions_memory_cannot_parse_is_refused(where: tuple[str, ...], function: str) -> None:
    """An answer is parsed whole, up to shared.tools.JSON_MEMORY_FACTOR times its size: past the
    function's memory, Lambda ends the function instead of answering with an error."""

    def with_cap(cap: int, memory: int | None = None) -> dict[str, Any]:
        blueprint = config(at("production", "connectors", value={"pull": {"kb": dict(PULL_SOURCE)}}))
        at("production", *where, "max_response_bytes", value=cap)(blueprint)
        if memory is not None:
            at("production", "functions", function, "memory_mb", value=memory)(blueprint)
        return blueprint

    largest = (256 - 128) * 2**20 // 56  # 2.3 MiB in the default 256 MB
    assert load_config({"blueprint": with_cap(largest)})
    assert refusal(with_cap(largest + 1)) == (
        f"blueprint.production.{'.'.join(where)}.max_response_bytes: an answer of {largest + 1} bytes may take 257 "
        f"MB once parsed (56 times its size, and the function's own 128 MB), more than "
        f"functions.{function}.memory_mb (256); allowed: max_response_bytes at most {largest}, or "
        f"functions.{function}.memory_mb at least 257"
    )
    assert load_config({"blueprint": with_cap(33_554_432, memory=1920)})  # 32 MiB: 1,792 + 128 MB
    assert refusal(with_cap(33_554_432, memory=1919))  # one MB short


@pytest.mark.parametrize(
    "connectors",
    [
        {"push": {"sources": {"crm-notes": "internal"}, "callers": {"crm-notes": ["crm"]}}},
        {"pull": {"kb": PULL_SOURCE}},
    ],
)
def test_formats_without_md_are_refused_while_a_connector_lands_markdown(connectors: dict[str, Any]) -> None:
    """Connector records land as realtime/<source>/<id>.md: without md, each would be quarantined."""
    blueprint = config(at("production", "connectors", value=connectors))
    blueprint["production"]["ingestion"]["formats"] = ["txt", "pdf"]
    assert refusal(blueprint) == (
        "blueprint.production.ingestion.formats: connector records land as markdown (.md), which these formats "
        "leave out; allowed: a list including md while connectors.push or connectors.pull has a source"
    )
    blueprint["production"]["connectors"] = {}
    assert load_config({"blueprint": blueprint}).production.ingestion.formats == ("txt", "pdf")


@pytest.mark.parametrize("region", ["ap-east-2", "ap-southeast-6"])
def test_snapstart_on_in_a_region_without_it_is_refused_switch_by_switch(region: str) -> None:
    """Lambda has no SnapStart in Taipei or New Zealand: every switch on there (three are on unless
    set false; api.stream_snap_start only when set true) would fail its function's first deploy,
    so each is named."""
    blueprint = config(at("production", "region", value=region))
    blueprint["production"]["api"] = {**blueprint["production"].get("api", {}), "stream_snap_start": True}
    lines = refusal(blueprint).splitlines()
    assert [line for line in lines if "SnapStart" in line] == [
        f"blueprint.production.{key}: Lambda has no SnapStart in {region}; allowed: false"
        for key in (
            "api.snap_start",
            "api.stream_snap_start",
            "functions.knowledge_search.snap_start",
            "functions.connector_push.snap_start",
        )
    ]
    api = {**blueprint["production"].get("api", {}), "snap_start": False}
    blueprint["production"]["api"] = api
    assert next(line for line in refusal(blueprint).splitlines() if "SnapStart" in line).startswith(
        "blueprint.production.api.stream_snap_start:"
    )  # each switch alone
    blueprint["production"]["api"] = {**api, "stream_snap_start": False}
    blueprint["production"]["functions"] = {
        name: {"snap_start": False} for name in ("knowledge_search", "connector_push")
    }
    assert load_config({"blueprint": blueprint}).production.region == region


@pytest.mark.parametrize(
    ("push", "message"),
    [
        (
            {"sources": {"crm": "internal"}},
            "blueprint.production.connectors.push.callers.crm: a push source needs the roles that may push its "
            "records (none given); allowed: 1 or more IAM role names or ARNs",
        ),
        (
            {"sources": {"crm": "internal"}, "callers": {"crm": []}},
            "blueprint.production.connectors.push.callers.crm: a push source needs the roles that may push its "
            "records (none given); allowed: 1 or more IAM role names or ARNs",
        ),
        (
            {"sources": {"crm": "internal"}, "callers": {"crm": ["a"], "erp": ["b"]}},
            "blueprint.production.connectors.push.callers.erp: callers of a source that is not a push source; "
            "allowed: crm",
        ),
        (
            {"sources": {"crm": "internal"}, "callers": {"crm": ["arn:aws:iam::123456789012:user/bob"]}},
            "blueprint.production.connectors.push.callers.crm.0 = 'arn:aws:iam::123456789012:user/bob': must be an "
            "IAM role name such as crm-exporter (a "
            "role of the tier's account) or a role ARN such as arn:aws:iam::123456789012:role/crm-exporter",
        ),
    ],
)
def test_a_push_source_without_its_own_callers_is_refused(push: dict[str, Any], message: str) -> None:
    """A source's path chooses its records' classification: each is its callers' alone."""
    assert refusal(config(at("production", "connectors", value={"push": push}))) == message


def test_push_callers_past_the_resource_policys_quota_are_refused() -> None:
    """API Gateway stores 8,192 characters of resource policy: the estimate is an upper bound."""
    roles = [f"arn:aws:iam::123456789012:role/integrations/system-{n:02d}" for n in range(40)]
    sources = {f"source-{n}": "internal" for n in range(3)}
    fits = {"sources": {"source-0": "internal"}, "callers": {"source-0": roles}}
    assert load_config({"blueprint": config(at("production", "connectors", value={"push": fits}))})
    too_many = {"sources": sources, "callers": dict.fromkeys(sources, roles)}
    message = refusal(config(at("production", "connectors", value={"push": too_many})))
    assert message.startswith("blueprint.production.connectors.push.callers: the push API's resource policy would ")
    assert message.endswith(
        "API Gateway stores 8192 (a quota AWS can raise); allowed: fewer sources or callers, or shorter role names"
    )
