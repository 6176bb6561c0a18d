"""The whole deployment's config: a name prefix, tags, and the two tiers."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from stacks.config.base import ConfigModel, KeyedError
from stacks.config.fields import Prefix
from stacks.config.production import ProductionConfig
from stacks.config.sandbox import SandboxConfig
from stacks.config.workloads import WorkloadConfig, WorkloadName, production_additions


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

    @model_validator(mode="before")
    @classmethod
    def _workloads_feed_production(cls, raw: Any) -> Any:
        """The production tier gets what each production-stage workload declares (output types,
        quotas, tool bindings, classifications, its agent): typed once, in the workload."""
        if not isinstance(raw, dict) or not isinstance(raw.get("production"), dict):
            return raw
        workloads = {}
        for name, declared in (raw.get("workloads") or {}).items():
            try:
                workloads[name] = WorkloadConfig.model_validate(declared)
            except ValidationError:
                continue  # reported where the workloads field is validated
        additions = production_additions(workloads)
        if not any(additions.values()):
            return raw
        production = dict(raw["production"])
        sections = ("output_types", "agents", "groups")
        if not all(isinstance(production.get(section) or {}, dict) for section in sections):
            return raw  # the production section's own errors come first
        _add_new(production, "output_types", additions["output_types"], workloads, "outputs")
        _add_new(production, "agents", additions["agents"], workloads, "agent")
        groups = dict(production.get("groups") or {})
        for group, added in additions["groups"].items():
            if not isinstance(groups.get(group), dict):
                continue  # an unknown group: _workload_groups_exist says so
            entry = dict(groups[group])
            entry["output_quotas"] = {**(entry.get("output_quotas") or {}), **added["output_quotas"]}
            entry["tools"] = [
                *(entry.get("tools") or []),
                *(t for t in added["tools"] if t not in (entry.get("tools") or [])),
            ]
            known = list(entry.get("data_classifications") or [])
            entry["data_classifications"] = known + [c for c in added["data_classifications"] if c not in known]
            groups[group] = entry
        production["groups"] = groups
        return {**raw, "production": production}

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

    def sandbox_for(self, name: str) -> SandboxConfig:
        """The sandbox tier's settings with what workload ``name`` declares for its own sandbox."""
        workload = self.workloads[name]
        own = workload.sandbox
        sandbox = self.sandbox
        return sandbox.model_copy(
            update={
                "expires_on": own.expires_on,
                "budget": sandbox.budget.model_copy(
                    update={"monthly_limit_usd": own.budget.monthly_limit_usd, "alert_emails": own.budget.alert_emails}
                ),
                "kendra": sandbox.kendra.model_copy(update={"enabled": own.kendra}),
                "knowledge_base": workload.knowledge_base,
                "query": sandbox.query.model_copy(update={"generation_model_id": workload.generation.model_id}),
            }
        )

    def workloads_in(self, stage: str) -> list[str]:
        return sorted(name for name, workload in self.workloads.items() if workload.stage == stage)

    @field_validator("tags")
    @classmethod
    def _tags_are_valid(cls, tags: dict[str, str]) -> dict[str, str]:
        for key, value in tags.items():
            if not re.fullmatch(r"[\w .:/=+@-]{1,128}", key) or key.startswith("aws:"):
                raise ValueError(f"tag key {key!r} is not a valid AWS tag key")
            if not re.fullmatch(r"[\w .:/=+@-]{0,256}", value):
                raise ValueError(f"tag value {value!r} is not a valid AWS tag value")
        return tags


def _add_new(
    production: dict[str, Any], section: str, added: dict[str, Any], workloads: dict[str, WorkloadConfig], field: str
) -> None:
    """Add the workloads' entries to a production section; a name already there is typed twice."""
    existing = dict(production.get(section) or {})
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
