"""Template values: CloudFormation intrinsics as text, the resources a value references."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final

Template = dict[str, Any]
KeyPath = tuple[str, ...]


class _Missing:
    def __repr__(self) -> str:
        return "(absent)"


MISSING: Final = _Missing()
JSON_MARK: Final = "(JSON)"  # a path segment: what follows is inside a JSON document held in a string


def text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))


def render(value: Any) -> Any:
    """A template value with its intrinsic functions written as ``${...}`` text, as ``cdk diff`` shows them
    (an ``Fn::Join`` becomes the string it makes, so JSON built from tokens can still be parsed; an
    ``Fn::Sub`` its text with the values of its variable map written in)."""
    if isinstance(value, list):
        return [render(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref" or name.startswith("Fn::"):
            return _intrinsic(name, argument)
    return {key: render(item) for key, item in value.items()}


def _intrinsic(name: str, argument: Any) -> str:
    if name == "Ref":
        return f"${{{argument}}}"
    if name == "Fn::GetAtt":
        return "${" + (".".join(map(str, argument)) if isinstance(argument, list) else str(argument)) + "}"
    if name == "Fn::Join" and isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], list):
        return str(argument[0]).join(text(render(part)) for part in argument[1])
    if name == "Fn::Sub" and isinstance(argument, str):
        return argument
    if name == "Fn::Sub" and isinstance(argument, list) and len(argument) == 2 and isinstance(argument[1], dict):
        return _substituted(text(render(argument[0])), argument[1])
    if name == "Fn::GetStackOutput" and isinstance(argument, dict):
        return f"${{{argument.get('StackName')}.{argument.get('OutputName')}}}"
    return f"${{{name} {text(render(argument))}}}"


_SUB_NAME = re.compile(r"\$\{([^}]*)\}")


def _substituted(template: str, variables: dict[str, Any]) -> str:
    """An ``Fn::Sub`` text with its variable map's values written in, so that a change of a value
    is a change of the text; ``${...}`` names not in the map (a resource, ``${!Literal}``) stay."""
    values = {name: text(render(value)) for name, value in variables.items()}
    return _SUB_NAME.sub(lambda match: values.get(match[1], match[0]), template)


def references(value: Any) -> set[str]:
    """Logical ids a raw template value refers to with Ref or Fn::GetAtt."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            found.add(value["Ref"])
        target = value.get("Fn::GetAtt")
        if isinstance(target, list) and target:
            found.add(str(target[0]))
        elif isinstance(target, str):
            found.add(target.split(".")[0])
        value = list(value.values())
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    return found


def at(value: Any, path: Sequence[str]) -> Any:
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def as_json(value: str) -> Any:
    """The JSON object or array a string holds, or None."""
    if value.lstrip()[:1] not in ("{", "["):
        return None
    try:
        parsed = json.loads(value)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict | list) else None
