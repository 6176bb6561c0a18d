"""Reading the config from CDK context, and saying in plain words what is wrong with it.

The whole model lives under the context key ``blueprint`` in ``cdk.json``. Any field can be
overridden on the command line with a dotted key, for example::

    cdk synth -c blueprint.sandbox.kendra.enabled=false
    cdk synth -c blueprint.sandbox.budget.alert_emails='["me@example.com"]'

Override values are parsed as JSON when they are valid JSON, otherwise taken as strings.
A bad value raises ``ConfigError`` whose lines each name the key, the value (an excerpt of a long
one) and what is allowed; every problem of the config is reported in one go. JSON that json.loads
would read wrong, or not at all, is refused before validation: a key given twice in one object
(json keeps the last), and nesting deeper than any key of the config (it would overflow the stack).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError
from pydantic_core import ErrorDetails

from stacks.config.base import ConfigError, KeyedError, Tier, clipped, excerpt
from stacks.config.blueprint import BlueprintConfig, fed_production
from stacks.config.fields import PATTERN_ERROR
from stacks.config.references import REFERENCE_ERROR

CONTEXT_KEY = "blueprint"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
TIER_CONTEXT_KEY = "tier"
PIPELINE = "pipeline"  # the tier value that synthesizes the delivery pipeline (stacks/pipeline)

# Where pydantic puts the error about a mapping's key (rather than its value) in a location.
_KEY_MARK = "[key]"


def load_config(context: Mapping[str, Any]) -> BlueprintConfig:
    """Build the validated config from CDK context (``cdk.json`` plus ``-c`` overrides)."""
    base = context.get(CONTEXT_KEY)
    if isinstance(base, str):  # `-c blueprint='{...}'` arrives as a string
        base = _parse_value(base, [])
    if not isinstance(base, Mapping):
        raise ConfigError(f"{CONTEXT_KEY}: missing or not an object in cdk.json context")
    too_deep = _too_deep(base, [])
    if too_deep is not None:  # named by its section: the path down to it is as deep as the problem
        raise ConfigError(f"{_dotted(too_deep[:1])}: {_TOO_DEEP}")
    raw = json.loads(json.dumps(base))  # a private, plain copy to apply overrides to
    folder = context.get(f"{CONTEXT_KEY}.workloads_dir", raw.get("workloads_dir"))
    _read_workloads(raw, _parse_value(folder, ["workloads_dir"]))
    prefix = CONTEXT_KEY + "."
    for key in sorted(k for k in context if k.startswith(prefix)):
        path = key[len(prefix) :].split(".")
        # A copy: a later, deeper key must not write into the caller's context (a whole map given as one).
        _set_path(raw, path, copy.deepcopy(_parse_value(context[key], path)))
    try:
        return BlueprintConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A list that fails on one item also reports its own (emptied) length: keep the item's.
        specific = [e for e in errors if not any(_inside(o["loc"], e["loc"]) for o in errors)]
        try:
            origins = fed_production(raw)[1]
        except ValueError:  # a clash of the workloads' own, reported as such
            origins = {}
        raise ConfigError("\n".join(describe(error) + _origin(error, origins) for error in specific)) from None


def _read_workloads(raw: dict[str, Any], folder: Any) -> None:
    """Each workloads/<name>.json under raw["workloads"][name] (an entry already there wins)."""
    key = f"{CONTEXT_KEY}.workloads_dir"
    if folder is None:
        return
    if not isinstance(folder, str) or not folder.strip():
        raise ConfigError(f"{key} = {excerpt(folder)}: allowed: a folder's path from the project root, or null")
    where = PROJECT_ROOT / folder
    try:
        is_folder = where.is_dir()
    except (OSError, ValueError):  # a name too long for the file system, a NUL in it
        is_folder = False
    if not is_folder:  # the sandbox tier would build no stacks, and say nothing
        raise ConfigError(
            f"{key} = {excerpt(folder)}: {_shown(where)} is not a folder; allowed: an existing folder, or null for no "
            "workloads (git keeps no empty folder: a workloads folder left without files is null here)"
        )
    declared = raw.setdefault("workloads", {})
    if not isinstance(declared, dict):
        return  # the workloads field's own error says so
    files = sorted(where.glob("*.json"))
    _refuse_misnamed(set(where.iterdir()) - set(files))
    for path in files:
        declared.setdefault(path.stem, _read_workload(path))


def _refuse_misnamed(others: set[Path]) -> None:
    """support.JSON would be skipped without a word (and promote edits <name>.json only)."""
    for path in sorted(others):
        name = path.name.strip()
        if name.lower().endswith(".json"):
            raise ConfigError(
                f"{CONTEXT_KEY}.workloads_dir: {_shown(path)} is not read, its name does not end in .json; allowed: "
                f"a workload file named <name>.json, in lower case (rename it {excerpt(name[:-5] + '.json')})"
            )


def _read_workload(path: Path) -> Any:
    here = f"{CONTEXT_KEY}.workloads.{clipped(path.stem)}: {_shown(path)}"
    try:
        value = _json(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ConfigError(f"{here} is not JSON ({error.msg}, line {error.lineno})") from None
    except _RepeatedKeyError as error:
        raise ConfigError(
            f"{here} gives the key {excerpt(error.key)} twice in one object (JSON would keep only the last); "
            "allowed: each key once"
        ) from None
    except RecursionError:
        raise ConfigError(f"{here} is {_TOO_DEEP}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{here} is not UTF-8 text (byte {error.start}); allowed: a UTF-8 JSON file") from None
    except ValueError as error:  # a number of more digits than Python reads
        raise ConfigError(f"{here} is not JSON Python can read ({clipped(str(error))})") from None
    except OSError as error:
        raise ConfigError(f"{here} cannot be read ({error.strerror})") from None
    if _too_deep(value, ["workloads", path.stem]) is not None:
        raise ConfigError(f"{here} is {_TOO_DEEP}")
    return value


PATH_CHARS = 256  # of a path in a message: whole where a path is, its control characters escaped


def _shown(path: Path) -> str:
    """A path from the project root when it is inside it, else whole."""
    try:
        return clipped(str(path.relative_to(PROJECT_ROOT)), PATH_CHARS)
    except ValueError:
        return clipped(str(path), PATH_CHARS)


def selected_tiers(context: Mapping[str, Any]) -> tuple[Tier, ...]:
    """The tiers to synthesize: context ``tier`` is one tier name or ``all`` (the default); for
    ``pipeline`` (the delivery pipeline, whose stages hold both tiers) none at the top level."""
    value = str(context.get(TIER_CONTEXT_KEY) or "all")
    if value == "all":
        return tuple(Tier)
    if value == PIPELINE:
        return ()
    try:
        return (Tier(value),)
    except ValueError:
        allowed = ", ".join(["all", *Tier, PIPELINE])
        raise ConfigError(f"{TIER_CONTEXT_KEY} = {value!r}: allowed values are {allowed}") from None


def pipeline_selected(context: Mapping[str, Any], config: BlueprintConfig) -> bool:
    """Whether context ``tier`` is ``pipeline``; then the config must enable the pipeline."""
    if str(context.get(TIER_CONTEXT_KEY) or "all") != PIPELINE:
        return False
    if not config.pipeline.enabled:
        raise ConfigError(
            f"{TIER_CONTEXT_KEY} = {PIPELINE!r}: {CONTEXT_KEY}.pipeline.enabled is false; allowed: set it to true "
            "with the pipeline's account, connection_arn and repository (docs/operations.md), or another tier"
        )
    return True


def describe(error: ErrorDetails) -> str:
    """One line: dotted key, offending value, and what is allowed."""
    loc, _ = _walk(error["loc"])
    if loc and loc[-1] == _KEY_MARK:
        return _describe_key(_dotted(loc[:-1]), error)
    key = _dotted(loc)
    if error["type"] == "missing":
        return f"{key}: required but missing"
    if error["type"] == REFERENCE_ERROR:
        return f"{key}: {error['msg']}"
    message = error["msg"].removeprefix("Value error, ")
    keyed = error.get("ctx", {}).get("error")
    if isinstance(keyed, KeyedError):
        return f"{_dotted(keyed.path, key)}: {keyed.reason}; allowed: {keyed.allowed}"
    if error["type"] == "union_tag_not_found":
        field = error["ctx"]["discriminator"].strip("'")
        _, here = _walk(error["loc"])
        allowed = ", ".join(str(tag) for option in here for tag in _tags(option))
        return f"{key}.{field}: required but missing; allowed values are {allowed}"
    if error["type"] == "union_tag_invalid":
        ctx = error["ctx"]
        field = ctx["discriminator"].strip("'")
        return f"{key}.{field} = {excerpt(ctx['tag'])}: allowed values are {ctx['expected_tags']}"
    if error["type"] == "extra_forbidden":
        _, here = _walk(error["loc"][:-1])
        allowed = ", ".join(name for model in map(_untagged, here) if _is_model(model) for name in model.model_fields)
        return f"{key}: unknown key; allowed keys here are {allowed}"
    value = error["input"]
    if isinstance(value, Mapping):  # a whole object's check: name the key its message starts with
        first = re.split(r"[\s:]", message, maxsplit=1)[0]
        return f"{key}.{first}: {message.removeprefix(f'{first}: ')}" if first in value else f"{key}: {message}"
    return f"{key} = {excerpt(value)}: {message}"


def _dotted(parts: Sequence[str], under: str = CONTEXT_KEY) -> str:
    """A dotted key below ``under``, each part cut to an excerpt (a key can be as long as a value),
    and no more parts than the config can have; an empty key is shown as ""."""
    shown = ".".join([under, *(clipped(part) if part else '""' for part in parts[:MAX_DEPTH])])
    return shown if len(parts) <= MAX_DEPTH else f"{shown}..."


def _describe_key(key: str, error: ErrorDetails) -> str:
    """A mapping's key that is not allowed: its name is the problem, not a value."""
    if error["type"] == "literal_error":
        allowed = ", ".join(re.findall(r"'([^']*)'", error["ctx"]["expected"]))
        return f"{key}: unknown key; allowed keys here are {allowed}"
    if error["type"] == PATTERN_ERROR:
        return f"{key}: this name {error['msg']}"
    return f"{key}: this name is not allowed: {error['msg']}"


def _origin(error: ErrorDetails, origins: Mapping[tuple[str, ...], str]) -> str:
    """Which workload brought the production entry an error is about, if one did."""
    loc = tuple(_walk(error["loc"])[0])
    for size in range(len(loc), 2, -1):
        if loc[:size] in origins:
            return f" (from workload {origins[loc[:size]]})"
    return ""


def _parse_value(value: Any, path: list[str]) -> Any:
    """An override's value: its JSON when it is valid JSON, else its text (a date, a name)."""
    if not isinstance(value, str):
        return value
    try:
        parsed = _json(value)
    except _RepeatedKeyError as error:
        raise ConfigError(
            f"{_dotted(path)}: the override gives the key {excerpt(error.key)} twice in one object; "
            "allowed: each key once"
        ) from None
    except RecursionError:
        raise ConfigError(f"{_dotted(path)}: {_TOO_DEEP}") from None
    except ValueError:  # not JSON (JSONDecodeError), or a number of more digits than Python reads
        return value
    _check_depth(parsed, path)
    return parsed


# Deeper than any key of the config goes (blueprint.production.legacy_apis.<api>.tools.<tool>.arguments.
# <argument>.pattern is 8 levels): more can only be a mistake, and some 500 levels overflow Python's
# stack when the value is validated.
MAX_DEPTH = 32
_TOO_DEEP = f"nested too deeply; allowed: at most {MAX_DEPTH} levels of objects and lists below {CONTEXT_KEY}"


class _RepeatedKeyError(Exception):
    """A JSON object that gives one key twice."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json(text: str) -> Any:
    """Parsed JSON text, refusing a key given twice in one object (json keeps the last silently)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise _RepeatedKeyError(key)
        mapping[key] = value
    return mapping


def _check_depth(value: Any, path: list[str]) -> None:
    """Refuse an override's value (at ``path`` below blueprint) that nests too deeply."""
    if _too_deep(value, path) is not None:
        raise ConfigError(f"{_dotted(path)}: {_TOO_DEEP}")


def _too_deep(value: Any, path: list[str]) -> list[str] | None:
    """Where ``value``, at ``path`` below blueprint, nests objects and lists deeper than MAX_DEPTH
    below blueprint (the path to the first level too deep), or None; walked without recursion."""
    pending: list[tuple[Any, list[str]]] = [(value, path)]
    while pending:
        node, here = pending.pop()
        if len(here) > MAX_DEPTH:
            return here
        if isinstance(node, Mapping):
            pending.extend((item, [*here, str(key)]) for key, item in node.items())
        elif isinstance(node, list | tuple):
            pending.extend((item, [*here, str(index)]) for index, item in enumerate(node))
    return None


def _set_path(raw: dict[str, Any], path: list[str], value: Any) -> None:
    node = raw
    for part in path[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{_dotted(path)}: cannot override inside {excerpt(part)}, which is not an object")
        node = child
    node[path[-1]] = value


def _inside(inner: tuple[Any, ...], outer: tuple[Any, ...]) -> bool:
    return len(inner) > len(outer) and inner[: len(outer)] == outer


def _walk(loc: tuple[int | str, ...]) -> tuple[list[str], list[Any]]:
    """Follow an error location down from the root model: its parts without the tags pydantic adds
    after a discriminated union ("FIXED_SIZE" and the like), and the types allowed at its end."""
    parts: list[str] = []
    here = _options(BlueprintConfig)
    for part in loc:
        tagged = [option for option in here if part in _tags(option)]
        if len(here) > 1 and tagged:
            here = tagged
            continue
        parts.append(str(part))
        here = _options(_inner(here, part))
    return parts, here


def _options(annotation: Any) -> list[Any]:
    """The types an annotation allows: Annotated and unions unwrapped (a union member tagged for a
    callable discriminator keeps its Tag), None left out."""
    if annotation is None or annotation is type(None):
        return []
    if get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        if any(isinstance(m, Tag) for m in metadata):
            return [annotation]
        return _options(inner)
    if get_origin(annotation) in (Union, UnionType):
        return [option for arg in get_args(annotation) for option in _options(arg)]
    return [annotation]


def _inner(options: list[Any], part: int | str) -> Any:
    """The type of what ``part`` (a field, a mapping's key, an index) names inside ``options``."""
    for option in map(_untagged, options):
        if _is_model(option):
            field = option.model_fields.get(str(part))
            if field is not None:
                return field.annotation
        elif get_origin(option) is dict:
            return get_args(option)[1]
        elif get_origin(option) in (tuple, list):
            return get_args(option)[0]
    return None


def _tags(option: Any) -> tuple[Any, ...]:
    """The discriminator values of one member of a discriminated union: its Tag, or the values of
    its ``strategy`` field."""
    if get_origin(option) is Annotated:
        return tuple(m.tag for m in get_args(option)[1:] if isinstance(m, Tag))
    field = option.model_fields.get("strategy") if _is_model(option) else None
    return get_args(field.annotation) if field else ()


def _untagged(option: Any) -> Any:
    return get_args(option)[0] if get_origin(option) is Annotated else option


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)
