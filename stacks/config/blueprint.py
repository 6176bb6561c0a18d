"""The whole deployment's config: a name prefix, tags, and the two tiers."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from stacks.config.agents import RUNTIME_NAME_LENGTH, evaluation_name, runtime_name
from stacks.config.base import ConfigModel, KeyedError, clipped, excerpt
from stacks.config.fields import TAG_KEY, TAG_KEY_RULE, TAG_VALUE_RULE, Prefix, is_tag_value
from stacks.config.pipeline import PipelineConfig
from stacks.config.production import ProductionConfig
from stacks.config.sandbox import SandboxConfig
from stacks.config.workloads import WorkloadConfig, WorkloadName, production_additions

# AWS tags: at most 50 on a resource (their characters: fields.TAG_KEY, fields.TAG_VALUE).
MAX_TAGS = 50
# The tags app.py and the stacks add themselves (a workload's sandbox stack has all four).
STACK_TAGS = ("tier", "workload", "team", "expires-on")


class BlueprintConfig(ConfigModel):
    """Everything under the context key blueprint in cdk.json."""

    prefix: Prefix = Field(
        description="Names every stack (<prefix>-sandbox, <prefix>-production-...) and most resources; short so "
        "that derived names stay within AWS limits."
    )
    tags: dict[str, str] = Field(
        default_factory=dict,
        description="Tags on every resource of every stack: valid AWS tag keys (no aws: prefix) and values.",
    )
    sandbox: SandboxConfig = Field(
        description="The sandbox tier: where it deploys, and the defaults of each workload's sandbox stack."
    )
    production: ProductionConfig = Field(
        description="The production tier (plus what each workload in production stage adds to it)."
    )
    workloads_dir: str | None = Field(
        default=None,
        description="Folder (from the project root) of the workload declarations, one <name>.json each "
        '(cdk.json: "workloads"); null: only those under workloads.',
    )
    workloads: dict[WorkloadName, WorkloadConfig] = Field(
        default_factory=dict,
        description="The workloads by name, read from workloads_dir (a key here overrides the file's).",
    )
    pipeline: PipelineConfig = Field(
        default_factory=PipelineConfig,
        description="The optional multi-account delivery pipeline (off by default; TIER=pipeline).",
    )

    @model_validator(mode="before")
    @classmethod
    def _workloads_feed_production(cls, raw: Any) -> Any:
        """The production tier gets what each production-stage workload declares (output types,
        quotas, tool bindings, classifications, its agent): typed once, in the workload."""
        return fed_production(raw)[0]

    @model_validator(mode="after")
    def _workload_groups_exist(self) -> BlueprintConfig:
        for name, workload in self.workloads.items():
            unknown = [g for g in workload.groups if g not in self.production.groups]
            if unknown:
                raise KeyedError(
                    ("workloads", name, "groups"),
                    f"unknown groups {', '.join(unknown)}",
                    allowed=", ".join(sorted(self.production.groups)),
                )
        return self

    @model_validator(mode="after")
    def _runtime_names_fit(self) -> BlueprintConfig:
        """An agent's runtime is named ``<prefix>_<agent>``, which AgentCore holds to 48 characters."""
        room = RUNTIME_NAME_LENGTH - len(runtime_name(self.prefix, ""))
        for name in self.production.agents:
            if len(name) > room:
                raise KeyedError(
                    ("production", "agents", name),
                    f"the runtime name {runtime_name(self.prefix, name)} is longer than AgentCore's "
                    f"{RUNTIME_NAME_LENGTH} characters",
                    allowed=f"agent names of at most {room} characters with the prefix {self.prefix}",
                )
        # Cut to 48 characters, two evaluation names can be one (each agent in its own stack: the
        # second deploy would fail on the first's results log group).
        named: dict[str, str] = {}
        for name in self.production.agents:
            made = evaluation_name(self.prefix, name)
            if made in named:
                raise KeyedError(
                    ("production", "agents", name),
                    f"its online evaluation would be named {made}, as agent {named[made]}'s is",
                    allowed="agent names that differ within the first 48 characters of <prefix>_<agent>_tools",
                )
            named[made] = name
        return self

    @model_validator(mode="after")
    def _pipeline_deploys_to_named_accounts(self) -> BlueprintConfig:
        """A pipeline deploys each tier into its own account from the tooling account: each tier's
        account is needed (an environment-agnostic stack cannot be deployed cross-account)."""
        if self.pipeline.enabled:
            for tier in ("sandbox", "production"):
                if getattr(self, tier).account is None:
                    raise KeyedError(
                        (tier, "account"), "required when the pipeline is enabled", allowed="a 12-digit account id"
                    )
        return self

    @model_validator(mode="after")
    def _production_guardrail_covers_workloads(self) -> BlueprintConfig:
        """A production-stage workload's personal data is the production guardrail's to catch
        (make promote checks it before the move; this keeps it true after)."""
        covered = self.production.guardrail.pii_entities
        for name in self.workloads_in("production"):
            missing = [e for e in self.workloads[name].documents.pii_entities if e not in covered]
            if missing:
                raise KeyedError(
                    ("workloads", name, "documents", "pii_entities"),
                    f"the production guardrail does not cover {', '.join(missing)}",
                    allowed=f"types in production.guardrail.pii_entities ({', '.join(sorted(covered)) or 'none'})",
                )
        return self

    def sandbox_for(self, name: str) -> SandboxConfig:
        """The sandbox tier's settings with what workload ``name`` declares for its own sandbox: its
        expiry, budget, Knowledge Base and model where it sets them (the tier's are the defaults),
        and a Kendra index when it asks for one and the tier allows it."""
        workload = self.workloads[name]
        own = workload.sandbox
        sandbox = self.sandbox
        budget = sandbox.budget
        if own.budget is not None:
            budget = budget.model_copy(
                update={"monthly_limit_usd": own.budget.monthly_limit_usd, "alert_emails": own.budget.alert_emails}
            )
        model = workload.generation.model_id or sandbox.query.generation_model_id
        return sandbox.model_copy(
            update={
                "expires_on": own.expires_on or sandbox.expires_on,
                "budget": budget,
                "kendra": sandbox.kendra.model_copy(update={"enabled": sandbox.kendra.enabled and own.kendra}),
                "knowledge_base": workload.knowledge_base or sandbox.knowledge_base,
                "query": sandbox.query.model_copy(update={"generation_model_id": model}),
            }
        )

    def workloads_in(self, stage: str) -> list[str]:
        return sorted(name for name, workload in self.workloads.items() if workload.stage == stage)

    @field_validator("tags")
    @classmethod
    def _tags_are_valid(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            shown = clipped(key, 40)
            if not TAG_KEY.fullmatch(key) or key.lower().startswith("aws:"):
                raise KeyedError((shown,), "not a valid AWS tag key", allowed=TAG_KEY_RULE)
            if not is_tag_value(value):
                raise KeyedError(
                    (shown,), f"tag value {excerpt(value, 40)} is not a valid AWS tag value", allowed=TAG_VALUE_RULE
                )
        total = len(set(tags) | set(STACK_TAGS))
        if total > MAX_TAGS:
            raise KeyedError(
                (),
                f"{len(tags)} tags and the stacks' own {', '.join(STACK_TAGS)} make {total} on a resource",
                allowed=f"at most {MAX_TAGS} tags on a resource, so {MAX_TAGS - len(STACK_TAGS)} here",
            )
        return tags


def fed_production(raw: Any) -> tuple[Any, dict[tuple[str, ...], str]]:
    """``raw`` with what its production-stage workloads add to the production tier, and where each
    added entry came from (its key path below blueprint -> the workload). A value of a shape the
    merge cannot extend is left as it is, for its own field's error."""
    origins: dict[tuple[str, ...], str] = {}
    if not isinstance(raw, dict) or not isinstance(raw.get("production"), dict):
        return raw, origins
    declared = raw.get("workloads") or {}
    if not isinstance(declared, dict):
        return raw, origins  # reported where the workloads field is validated
    workloads = {}
    for name, value in declared.items():
        try:
            workloads[name] = WorkloadConfig.model_validate(value)
        except ValidationError:
            continue  # reported where the workloads field is validated
    additions = production_additions(workloads)
    if not any(additions.values()):
        return raw, origins
    production = dict(raw["production"])
    sections = ("output_types", "agents", "groups")
    if not all(isinstance(_or_empty(production.get(section), {}), dict) for section in sections):
        return raw, origins  # the production section's own errors come first
    in_production = {n: w for n, w in sorted(workloads.items()) if w.stage == "production"}
    _add_new(production, "output_types", additions["output_types"], workloads, "outputs")
    _add_new(production, "agents", additions["agents"], workloads, "agent")
    sellers = _first_owner({n: list(w.outputs) for n, w in in_production.items()})
    origins.update({("production", "output_types", o): sellers[o] for o in additions["output_types"]})
    origins.update({("production", "agents", agent): agent for agent in additions["agents"]})
    groups = dict(_or_empty(production.get("groups"), {}))
    for group, added in additions["groups"].items():
        if isinstance(groups.get(group), dict):  # an unknown group: _workload_groups_exist says so
            members = {n: w for n, w in in_production.items() if group in w.groups}
            groups[group] = _fed_group(groups[group], added, members, ("production", "groups", group), origins)
    production["groups"] = groups
    return {**raw, "production": production}, origins


def _fed_group(
    entry: dict[str, Any],
    added: dict[str, Any],
    members: dict[str, WorkloadConfig],
    here: tuple[str, ...],
    origins: dict[tuple[str, ...], str],
) -> dict[str, Any]:
    """A production group's entry with what its production-stage workloads add to it."""
    entry = dict(entry)
    sellers = _first_owner({n: list(w.outputs) for n, w in members.items()})
    quotas = _or_empty(entry.get("output_quotas"), {})
    if isinstance(quotas, dict):
        entry["output_quotas"] = {**quotas, **added["output_quotas"]}
        origins.update({(*here, "output_quotas", o): sellers[o] for o in added["output_quotas"]})
    users = _first_owner({n: list(w.tools) for n, w in members.items()})
    classes = _first_owner({n: [w.documents.classification] for n, w in members.items()})
    for key, owners in (("tools", users), ("data_classifications", classes)):
        known = _or_empty(entry.get(key), [])
        if isinstance(known, list | tuple):
            entry[key] = [*known, *(item for item in added[key] if item not in known)]
            for index in range(len(known), len(entry[key])):
                origins[(*here, key, str(index))] = owners.get(entry[key][index], "?")
    return entry


def _or_empty(value: Any, empty: Any) -> Any:
    """A value not given is empty; a falsy value of another shape ([] for a mapping) is kept for its error."""
    return empty if value is None else value


def _first_owner(declared: dict[str, list[str]]) -> dict[str, str]:
    """Each item -> the first workload (by name) that declares it."""
    owners: dict[str, str] = {}
    for name, items in sorted(declared.items()):
        for item in items:
            owners.setdefault(item, name)
    return owners


def _add_new(
    production: dict[str, Any], section: str, added: dict[str, Any], workloads: dict[str, WorkloadConfig], field: str
) -> None:
    """Add the workloads' entries to a production section; a name already there is typed twice."""
    existing = dict(_or_empty(production.get(section), {}))
    for key, value in added.items():
        if key in existing:
            if field == "outputs":  # an output type: the workload that sells it
                owner = next(name for name, workload in workloads.items() if key in workload.outputs)
                path: tuple[str, ...] = ("workloads", owner, "outputs", key)
            else:  # an agent: named after its workload
                path = ("workloads", key, "agent")
            raise KeyedError(path, f"production.{section} already has {key}", allowed="a name declared in one place")
        existing[key] = value
    production[section] = existing
