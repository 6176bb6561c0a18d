"""The Bedrock Guardrail the AI gateway applies to every input and output."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, JsonValue, field_validator

from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import Meaning

PiiAction = Literal["BLOCK", "ANONYMIZE"]
# Bedrock Guardrails' PII entity types (GuardrailPiiEntityType).
PII_ENTITY_TYPES = frozenset(
    (
        "ADDRESS",
        "AGE",
        "AWS_ACCESS_KEY",
        "AWS_SECRET_KEY",
        "CA_HEALTH_NUMBER",
        "CA_SOCIAL_INSURANCE_NUMBER",
        "CREDIT_DEBIT_CARD_CVV",
        "CREDIT_DEBIT_CARD_EXPIRY",
        "CREDIT_DEBIT_CARD_NUMBER",
        "DRIVER_ID",
        "EMAIL",
        "INTERNATIONAL_BANK_ACCOUNT_NUMBER",
        "IP_ADDRESS",
        "LICENSE_PLATE",
        "MAC_ADDRESS",
        "NAME",
        "PASSWORD",
        "PHONE",
        "PIN",
        "SWIFT_CODE",
        "UK_NATIONAL_HEALTH_SERVICE_NUMBER",
        "UK_NATIONAL_INSURANCE_NUMBER",
        "UK_UNIQUE_TAXPAYER_REFERENCE_NUMBER",
        "URL",
        "USERNAME",
        "US_BANK_ACCOUNT_NUMBER",
        "US_BANK_ROUTING_NUMBER",
        "US_INDIVIDUAL_TAX_IDENTIFICATION_NUMBER",
        "US_PASSPORT_NUMBER",
        "US_SOCIAL_SECURITY_NUMBER",
        "VEHICLE_IDENTIFICATION_NUMBER",
    )
)
# The JSON schema's (and so the docs') list of them.
_PII_ENTITY_NAMES: list[JsonValue] = [*sorted(PII_ENTITY_TYPES)]
FilterStrength = Literal["NONE", "LOW", "MEDIUM", "HIGH"]
TopicName = Annotated[
    str,
    Field(pattern=r"^[0-9a-zA-Z_ !?.-]{1,100}$"),
    Meaning("1 to 100 letters, digits, spaces or _!?.-, such as Investment advice"),
]


class DeniedTopic(ConfigModel):
    """A subject the guardrail refuses, described in words."""

    name: TopicName = Field(description="The topic's name.")
    definition: str = Field(
        min_length=1, max_length=200, description="What the topic covers, in a sentence the guardrail matches on."
    )
    examples: tuple[Annotated[str, Field(min_length=1, max_length=100)], ...] = Field(
        default=(),
        max_length=5,
        description="Up to five example inputs that belong to the topic, each up to 100 characters.",
    )


class GuardrailConfig(ConfigModel):
    """The Bedrock Guardrail applied to every gateway input and output.

    Any change publishes a new guardrail version, which the gateway function pins to.
    """

    pii_entities: dict[str, PiiAction] = Field(
        default_factory=dict,
        description="Bedrock PII entity type (EMAIL, PHONE, NAME, ...) -> BLOCK the input or output, or ANONYMIZE "
        "the entity in it.",
        json_schema_extra={"propertyNames": {"enum": _PII_ENTITY_NAMES}},
    )
    content_filters: dict[Literal["SEXUAL", "VIOLENCE", "HATE", "INSULTS", "MISCONDUCT"], FilterStrength] = Field(
        default_factory=dict,
        description="Harmful-content category -> filter strength, applied to inputs and outputs alike.",
    )
    prompt_attack_strength: FilterStrength = Field(
        default="HIGH", description="Input strength of the prompt-attack (jailbreak and injection) filter."
    )
    denied_topics: tuple[DeniedTopic, ...] = Field(
        default=(), max_length=30, description="Topics the guardrail refuses (at most 30, each name once)."
    )
    grounding_threshold: float | None = Field(
        default=None,
        gt=0,
        le=0.99,
        description="Contextual grounding: outputs made from caller material that are less grounded in it than "
        "this are blocked; null: no grounding check. Bedrock's range is 0 (blocks nothing) to 0.99 (blocks almost "
        "everything); 0 is refused, a check that blocks nothing but is still billed.",
    )
    relevance_threshold: float | None = Field(
        default=None,
        gt=0,
        le=0.99,
        description="Contextual grounding: outputs made from caller material less relevant to the request than "
        "this are blocked; null: no relevance check. Bedrock's range is 0 (blocks nothing) to 0.99 (blocks almost "
        "everything); 0 is refused, a check that blocks nothing but is still billed.",
    )
    blocked_input_message: str = Field(
        default="This request can't be processed.",
        min_length=1,
        max_length=500,
        description="What the caller sees when the guardrail blocks the input.",
    )
    blocked_output_message: str = Field(
        default="The answer was withheld by policy.",
        min_length=1,
        max_length=500,
        description="What the caller sees when the guardrail blocks the output.",
    )

    @field_validator("denied_topics")
    @classmethod
    def _topic_names_unique(cls, topics: tuple[DeniedTopic, ...]) -> tuple[DeniedTopic, ...]:
        names = [topic.name.casefold() for topic in topics]
        for index, topic in enumerate(topics):
            if names.index(topic.name.casefold()) != index:
                raise KeyedError((str(index), "name"), f"topic {topic.name} named twice", allowed="each name once")
        return topics

    @field_validator("pii_entities")
    @classmethod
    def _known_pii_types(cls, entities: dict[str, str]) -> dict[str, str]:
        for name in entities:
            if name not in PII_ENTITY_TYPES:
                raise KeyedError((name,), "unknown PII entity type", allowed=", ".join(sorted(PII_ENTITY_TYPES)))
        return entities
