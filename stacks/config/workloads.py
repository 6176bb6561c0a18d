"""Workloads: one team's use case, declared once (workloads/<name>.json), in one of two stages.

In ``sandbox`` stage the sandbox tier runs a prototype stack for it (its documents bucket,
Knowledge Base, Kendra switch, query function, budget and expiry). In ``production`` stage the
production tier derives from the same declaration what the workload needs there: its output
types (prices, token bounds, prompt), each of its groups' quota for them and binding to its tools
and its documents' classification, and its agent. ``make promote WORKLOAD=<name>`` moves a
workload from one stage to the other after its readiness gates pass (tools/promote.py).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from agent.contract import MAX_TOOL_CALLS
from prototype_query.contract import MAX_PROMPT_CHARS, TEMPLATE_PLACEHOLDERS, prompt_problem
from shared.meaning import Meaning
from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import Classification, Emails, GroupName, ModelId, SnakeName, TagValue, ToolName
from stacks.config.groups import MAX_OUTPUT_UNITS, UNIT_PRICE_RULE, OutputQuota, UnitPrice
from stacks.config.guardrail import PII_ENTITY_TYPES
from stacks.config.knowledge_base import KnowledgeBaseConfig
from stacks.config.sandbox import BUDGET_AMOUNT_RULE, BudgetAmount

# A workload names its sandbox stack (<prefix>-sandbox-<name>) and the resources in it.
WorkloadName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9]{1,11}$"),
    Meaning("2 to 12 lowercase letters or digits, starting with a letter, such as support"),
]
Stage = Literal["sandbox", "production"]
_PII_TYPES = ", ".join(sorted(PII_ENTITY_TYPES))


class WorkloadDocuments(ConfigModel):
    """The workload's documents: how they are classified and what personal data they may carry."""

    classification: Classification = Field(
        description="The classification its documents carry (production: one of ingestion.classifications, "
        "which says whether personal data in them is masked or quarantined)."
    )
    pii_entities: tuple[str, ...] = Field(
        default=(),
        description="Bedrock Guardrail PII entity types its documents and conversations may contain (EMAIL, "
        "PHONE, NAME, ...), each once: in production stage the production guardrail must cover each.",
    )

    @field_validator("pii_entities")
    @classmethod
    def _known_pii_types(cls, entities: tuple[str, ...]) -> tuple[str, ...]:
        for index, name in enumerate(entities):
            if name not in PII_ENTITY_TYPES:
                raise KeyedError((str(index),), f"unknown PII entity type {name}", allowed=_PII_TYPES)
            if entities.index(name) != index:
                raise KeyedError((str(index),), f"{name} named twice", allowed="each type once")
        return entities


class WorkloadGeneration(ConfigModel):
    """The model and prompt the team tuned in the sandbox."""

    model_id: ModelId | None = Field(
        default=None,
        description="The model that writes the answers (the sandbox query function's); null: "
        "sandbox.query.generation_model_id.",
    )
    prompt: str = Field(
        min_length=1,
        max_length=4000,
        description="The system prompt: the sandbox query function's (in sandbox stage at most 3,728 characters, "
        "which RetrieveAndGenerate's template holds beside the rules every answer keeps, and without its "
        "placeholders), and each output type's instructions by default.",
    )


class WorkloadOutput(ConfigModel):
    """An output type the workload sells: its price, bounds and each of its groups' quota."""

    unit_price_usd: UnitPrice = Field(
        description=f"Price of one unit (USD); promotion needs it above 0. {UNIT_PRICE_RULE}"
    )
    units: int = Field(default=1, ge=1, le=MAX_OUTPUT_UNITS, description="Units one delivered output consumes.")
    max_tokens: int = Field(default=1000, ge=1, le=8192, description="Tokens the model may write per output.")
    instructions: str | None = Field(
        default=None, min_length=1, max_length=4000, description="The system prompt; null: generation.prompt."
    )
    quota: OutputQuota = Field(description="What each of the workload's groups may produce of it per period.")

    @model_validator(mode="after")
    def _quota_fits_one_output(self) -> WorkloadOutput:
        # In sandbox stage too: a quota that could never admit one output fails now, not at promotion.
        if 0 < self.quota.limit < self.units:
            raise KeyedError(
                ("quota", "limit"),
                f"below the {self.units} units one output takes: none could ever be delivered",
                allowed=f"0 (none) or at least {self.units}",
            )
        return self


class WorkloadAgent(ConfigModel):
    """The workload's agent, if it has one: it produces every output type of the workload."""

    description: str = Field(min_length=1, max_length=1200, description="What the agent is for.")
    system_prompt: str | None = Field(
        default=None, min_length=1, max_length=4000, description="The agent's system prompt; null: generation.prompt."
    )
    max_iterations: int = Field(default=6, ge=1, le=20, description="Model calls the agent may make per turn.")
    max_tool_calls: int = Field(
        default=MAX_TOOL_CALLS, ge=1, le=100, description="Tool calls the agent may make per turn (see agents.*)."
    )
    turn_seconds: int = Field(default=24, ge=10, le=840, description="A turn's time budget (see agents.*).")


class WorkloadEvaluation(ConfigModel):
    """The golden cases the workload is judged on before it is promoted."""

    cases: tuple[str, ...] = Field(
        default=(),
        description="Case ids from the golden set (lambdas/evaluation/golden_set.json) with recorded traces "
        "(evals/recorded_traces.jsonl), each once, asked by its groups and answered with its tools; promotion "
        "needs them scored at or above observability.tool_accuracy_floor.",
    )

    @field_validator("cases")
    @classmethod
    def _each_once(cls, cases: tuple[str, ...]) -> tuple[str, ...]:
        for index, case in enumerate(cases):
            if cases.index(case) != index:  # listed twice, a case would weigh twice in the score
                raise KeyedError((str(index),), f"{case} listed twice", allowed="each case once")
        return cases


class WorkloadBudget(ConfigModel):
    """What the workload's sandbox may spend, and who hears about it."""

    monthly_limit_usd: BudgetAmount = Field(
        description=f"The sandbox budget per calendar month (USD); {BUDGET_AMOUNT_RULE}."
    )
    alert_emails: Emails = Field(
        min_length=1, max_length=10, description="Who the budget alerts e-mail (AWS Budgets takes up to 10 per alert)."
    )


class WorkloadSandbox(ConfigModel):
    """The workload's own sandbox settings (the rest, and what it leaves out, come from the sandbox
    tier's config: ``sandbox.*``)."""

    expires_on: dt.date | None = Field(
        default=None,
        description="The date the prototype is due to be removed (a tag on its stack); null: sandbox.expires_on.",
    )
    budget: WorkloadBudget | None = Field(
        default=None, description="Its own budget; null: sandbox.budget's limit and recipients."
    )
    kendra: bool = Field(
        default=False,
        description="Whether its sandbox has a Kendra index (billed by the hour), when the tier allows one "
        "(sandbox.kendra.enabled).",
    )


class WorkloadConfig(ConfigModel):
    """One team's use case."""

    team: TagValue = Field(
        min_length=1,
        max_length=64,
        description="The owning team (a tag on its stacks: letters, digits, spaces or _.:/=+@-, not starting with "
        "aws:).",
    )
    stage: Stage = Field(description="sandbox: a prototype stack; production: served by the production tier.")
    documents: WorkloadDocuments = Field(description="Its documents' classification and personal data.")
    knowledge_base: KnowledgeBaseConfig | None = Field(
        default=None, description="Embedding model and chunking it tuned (sandbox KB); null: sandbox.knowledge_base."
    )
    generation: WorkloadGeneration = Field(description="The model and prompt it tuned.")
    groups: tuple[GroupName, ...] = Field(
        min_length=1, description="The production groups (production.groups) that may use it."
    )
    outputs: dict[SnakeName, WorkloadOutput] = Field(
        min_length=1, description="The output types it sells (names new to production.output_types)."
    )
    tools: tuple[ToolName, ...] = Field(default=(), description="The tools it uses, bound to each of its groups.")
    agent: WorkloadAgent | None = Field(default=None, description="Its agent, named after the workload; null: none.")
    evaluation: WorkloadEvaluation = Field(default_factory=WorkloadEvaluation, description="Its golden cases.")
    sandbox: WorkloadSandbox = Field(description="Its sandbox's expiry, budget and Kendra switch.")

    @model_validator(mode="after")
    def _sandbox_can_answer_with_the_prompt(self) -> WorkloadConfig:
        """In sandbox stage the query function answers with the prompt, inside RetrieveAndGenerate's
        prompt template (prototype_query.contract): refused now, naming the key, not at synth."""
        if self.stage == "sandbox" and (problem := prompt_problem(self.generation.prompt)):
            raise KeyedError(
                ("generation", "prompt"),
                f"in sandbox stage the prompt {problem}",
                allowed=f"text of at most {MAX_PROMPT_CHARS:,} characters without {', '.join(TEMPLATE_PLACEHOLDERS)}",
            )
        return self


def production_additions(workloads: dict[str, Any]) -> dict[str, Any]:
    """What the workloads in production stage add to the production tier's config, as raw config:
    {"output_types": {...}, "agents": {...}, "groups": {group: {"output_quotas", "tools",
    "data_classifications"}}}. ``workloads`` are validated WorkloadConfig values by name."""
    additions: dict[str, Any] = {"output_types": {}, "agents": {}, "groups": {}}
    for name, workload in sorted(workloads.items()):
        if workload.stage != "production":
            continue
        for output, spec in workload.outputs.items():
            if output in additions["output_types"]:
                raise KeyedError(
                    ("workloads", name, "outputs", output),
                    f"another workload sells {output} too",
                    allowed="an output type sold by one workload",
                )
            additions["output_types"][output] = {
                "unit_price_usd": spec.unit_price_usd,
                "units": spec.units,
                "max_tokens": spec.max_tokens,
                "instructions": spec.instructions or workload.generation.prompt,
            }
        for group in workload.groups:
            entry = additions["groups"].setdefault(
                group, {"output_quotas": {}, "tools": [], "data_classifications": []}
            )
            entry["output_quotas"].update({o: s.quota.model_dump() for o, s in workload.outputs.items()})
            entry["tools"] += [t for t in workload.tools if t not in entry["tools"]]
            if workload.documents.classification not in entry["data_classifications"]:
                entry["data_classifications"].append(workload.documents.classification)
        if workload.agent is not None:
            agent = workload.agent
            additions["agents"][name] = {
                "description": agent.description,
                "system_prompt": agent.system_prompt or workload.generation.prompt,
                "output_types": sorted(workload.outputs),
                "max_iterations": agent.max_iterations,
                "max_tool_calls": agent.max_tool_calls,
                "turn_seconds": agent.turn_seconds,
            }
    return additions
