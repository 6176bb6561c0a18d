"""docs/configuration.md is generated from the config models and cannot drift from them."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from stacks.config import Meaning, load_config
from tools import config_docs


def test_the_configuration_reference_is_up_to_date() -> None:
    committed = config_docs.OUTPUT.read_text(encoding="utf-8") if config_docs.OUTPUT.exists() else ""
    assert committed == config_docs.render(), "docs/configuration.md is stale: run `make docs` and commit the result"


def test_the_reference_names_every_key_path_of_the_config() -> None:
    text = config_docs.render()
    for key in (
        "prefix",
        "sandbox.budget.alert_emails",
        "sandbox.knowledge_base.chunking.parent_max_tokens",
        "production.groups.<name>.models.allowed",
        "production.groups.<name>.output_quotas.<name>.period",
        "production.guardrail.denied_topics[].name",
        "production.functions.<name>.memory_mb",
        "production.functions.<name>.timeout_seconds",
        "production.connectors.pull.<name>.classification",
    ):
        assert f"| `{key}` |" in text, key


class _Inner(BaseModel):
    """An inner object."""

    size: int = Field(default=3, ge=1, le=9, description="How big.")


class _Root(BaseModel):
    """The root."""

    name: Annotated[str, Field(pattern=r"^[a-z]+$"), Meaning("lowercase letters")] = Field(description="A name.")
    mode: Literal["a", "b"] = Field(default="a", description="A | mode.")
    items: dict[str, _Inner] = Field(default_factory=dict, description="Inner objects by name.")
    inner: _Inner = Field(default=_Inner(size=5), description="One inner object.")


def _rows(text: str) -> dict[str, list[str]]:
    rows: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def test_a_row_shows_type_default_allowed_values_and_description() -> None:
    schema: dict[str, Any] = _Root.model_json_schema(schema_generator=config_docs.WithFactoryDefaults)
    rows = _rows(config_docs.render(schema))
    assert rows["name"] == ["string", "required", "lowercase letters", "A name."]
    assert rows["mode"] == ["string", '`"a"`', "`a`, `b`", "A \\| mode."]
    assert rows["items"] == ["map of name to object", "`{}`", "", "Inner objects by name."]
    assert rows["items.<name>.size"] == ["integer", "`3`", "1 to 9", "How big."]
    # An object's default sets the defaults of its keys.
    assert rows["inner.size"] == ["integer", "`5`", "1 to 9", "How big."]


def test_the_references_override_examples_are_valid_and_take_effect(cdk_context: dict[str, Any]) -> None:
    """The two `cdk synth -c` lines the reference opens with load, and each changes what it says."""
    examples = re.findall(r"^cdk synth -c (\S+?)=(.+)$", config_docs.HEADER, flags=re.MULTILINE)
    assert len(examples) == 2
    overrides = {key: value.strip("'") for key, value in examples}
    config = load_config({**cdk_context, **overrides})
    assert config.sandbox_for("support").kendra.enabled
    assert not load_config(cdk_context).sandbox_for("support").kendra.enabled
    assert config.production.groups["customer-gold"].models.fallbacks == ()
    assert load_config(cdk_context).production.groups["customer-gold"].models.fallbacks != ()
