"""Structural diffs: leaf changes of two values with their paths, and per resource of two stacks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tools.reviewing.values import JSON_MARK, MISSING, KeyPath, Template, as_json, at, render, text


@dataclass(frozen=True)
class Change:
    path: KeyPath
    old: Any
    new: Any

    @property
    def where(self) -> str:
        return format_path(self.path)

    def describe(self) -> str:
        return f"`{self.where}`: {show_change(self.old, self.new)}"

    def leaves(self) -> list[Change]:
        """The change one leaf value at a time where a whole object (or list of objects) is added or
        removed, so that no value hides in a line cut at SHOW_CHARS; otherwise the change itself."""
        if (self.old is MISSING) == (self.new is MISSING):
            return [self]
        if self.old is MISSING:
            return [Change(path, MISSING, value) for path, value in leaves(self.new, self.path)]
        return [Change(path, value, MISSING) for path, value in leaves(self.old, self.path)]

    def lines(self, keep: Callable[[Change], bool] = lambda _: True) -> list[str]:
        """What ``describe`` says, a line per leaf value that ``keep`` keeps, at most LEAF_LINES of them."""
        kept = [leaf.describe() for leaf in self.leaves() if keep(leaf)]
        more = len(kept) - LEAF_LINES
        return kept[:LEAF_LINES] + ([f"`{self.where}`: {more} more values not listed"] if more > 0 else [])


# Keys that identify the items of a list of objects (tags, tool schemas, statements, the guardrail's
# filters and PII entities), in this order.
LIST_KEYS = ("Key", "Name", "Sid", "Id", "name", "id", "Type")


def diff_values(old: Any, new: Any, path: KeyPath = ()) -> list[Change]:
    """The leaf changes from ``old`` to ``new``: objects by key, lists of objects by an identifying key
    (or position), strings holding JSON by their content; a list of scalars is one change."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        return _diff_mappings(old, new, path)
    if isinstance(old, list) and isinstance(new, list) and not (_scalars(old) and _scalars(new)):
        key = _list_key(old, new)
        return _diff_mappings(_by_key(old, key), _by_key(new, key), path)
    if isinstance(old, str) and isinstance(new, str):
        documents = as_json(old), as_json(new)
        if documents[0] is not None and documents[1] is not None:
            return diff_values(*documents, (*path, JSON_MARK))
    return [Change(path, old, new)]


def leaves(value: Any, path: KeyPath = ()) -> Iterator[tuple[KeyPath, Any]]:
    """Every leaf value inside ``value`` with its path, the items of a list of objects named as
    ``diff_values`` names them; a list of scalars is one leaf."""
    if isinstance(value, list) and not _scalars(value):
        value = _by_key(value, _list_key(value, value))
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    else:
        yield path, value


def _diff_mappings(old: Mapping[str, Any], new: Mapping[str, Any], path: KeyPath) -> list[Change]:
    keys = [*old, *(key for key in new if key not in old)]
    return [c for key in keys for c in diff_values(old.get(key, MISSING), new.get(key, MISSING), (*path, key))]


def _scalars(items: list[Any]) -> bool:
    return not any(isinstance(item, dict | list) for item in items)


def _list_key(old: list[Any], new: list[Any]) -> str | None:
    for key in LIST_KEYS:
        if all(isinstance(item, dict) and isinstance(item.get(key), str) for item in old + new) and all(
            len({item[key] for item in items}) == len(items) for items in (old, new)
        ):
            return key
    return None


def _by_key(items: list[Any], key: str | None) -> dict[str, Any]:
    if key is None:
        return {f"[{index}]": item for index, item in enumerate(items)}
    return {f"[{key}={item[key]}]": item for item in items}


def format_path(path: KeyPath) -> str:
    """``Environment.Variables.TOOL_BINDINGS (JSON) customer-basic``: a property path, ``Properties.`` left out."""
    out = ""
    for part in path[1:] if path[:1] == ("Properties",) else path:
        if part == JSON_MARK:
            out += f" {JSON_MARK} "
        elif part.startswith("[") or not out or out.endswith(" "):
            out += part
        else:
            out += "." + part
    return out or "(whole value)"


SHOW_CHARS = 100
# A whole object added or removed is listed a leaf value a line (Change.lines), at most this many.
LEAF_LINES = 30


def show(value: Any) -> str:
    if value is MISSING:
        return "(absent)"
    shown = text(value) if not isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(shown) > SHOW_CHARS:
        shown = shown[: SHOW_CHARS - 1] + "…"
    return "`" + shown.replace("`", "'") + "`"


def show_change(old: Any, new: Any) -> str:
    if isinstance(old, list) and isinstance(new, list):
        added = [show(item) for item in new if item not in old]
        removed = [show(item) for item in old if item not in new]
        return ", ".join([*(f"+ {a}" for a in added), *(f"− {r}" for r in removed)]) or "reordered"
    if isinstance(old, str) and isinstance(new, str) and max(len(old), len(new)) > SHOW_CHARS:
        old, new = elide(old, new)
    return f"{show(old)} → {show(new)}"


def _common_prefix(one: str, other: str) -> int:
    return next((i for i, (a, b) in enumerate(zip(one, other, strict=False)) if a != b), min(len(one), len(other)))


def elide(old: str, new: str, context: int = 24) -> tuple[str, str]:
    """The part of two long strings that differs, with a little context either side."""
    prefix = _common_prefix(old, new)
    suffix = _common_prefix(old[prefix:][::-1], new[prefix:][::-1])
    start = max(0, prefix - context)

    def cut(value: str) -> str:
        end = len(value) - max(0, suffix - context)
        return ("…" if start else "") + value[start:end] + ("…" if end < len(value) else "")

    return cut(old), cut(new)


@dataclass(frozen=True)
class Assembly:
    """A synthesized app: templates by stack name; ``bundles``: the project packages (lambdas/<package>)
    inside each resource's code asset, by "<stack>/<logical id>" (empty when the assets are unknown)."""

    templates: Mapping[str, Template]
    bundles: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class ResourceDiff:
    stack: str
    logical_id: str
    type: str
    status: str  # "added", "removed", "modified" or "unchanged"
    old: Mapping[str, Any]
    new: Mapping[str, Any]
    changes: tuple[Change, ...]

    @property
    def key(self) -> str:
        return f"{self.stack}/{self.logical_id}"

    @property
    def cdk_path(self) -> str:
        path = at(self.new or self.old, ("Metadata", "aws:cdk:path"))
        return path if isinstance(path, str) else ""

    def __str__(self) -> str:
        return f"`{self.logical_id}` ({self.type})"


def compared_view(resource: Mapping[str, Any]) -> Any:
    """A resource as compared: rendered, without its Metadata (the CDK path, nag acknowledgements)."""
    return render({key: value for key, value in resource.items() if key != "Metadata"})


def diff_stack(stack: str, base: Template | None, head: Template | None) -> list[ResourceDiff]:
    """Every resource of either side: added, removed, modified or unchanged (a resource whose template is
    unchanged may still be replaced, when a create-only property refers to a replaced one)."""
    old = (base or {}).get("Resources", {})
    new = (head or {}).get("Resources", {})
    diffs = []
    for logical_id in [*old, *(key for key in new if key not in old)]:
        before, after = old.get(logical_id, {}), new.get(logical_id, {})
        changes = tuple(diff_values(compared_view(before), compared_view(after))) if before and after else ()
        status = "added" if not before else "removed" if not after else "modified" if changes else "unchanged"
        kind = str(after.get("Type") or before.get("Type"))
        diffs.append(ResourceDiff(stack, logical_id, kind, status, before, after, changes))
    return diffs


def template_changes(base: Template | None, head: Template | None) -> list[Change]:
    """Changes outside Resources: outputs, parameters, conditions."""
    strip = {"Resources", "Metadata"}

    def rest(template: Template | None) -> dict[str, Any]:
        return {key: value for key, value in (template or {}).items() if key not in strip}

    return diff_values(render(rest(base)), render(rest(head))) if base and head else []
