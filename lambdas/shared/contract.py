"""One contract between a stack and its handler.

A function's settings are one frozen model in ``lambdas/<package>/contract.py``, imported by both
sides: the construct writes the environment with :meth:`FunctionSettings.environment`, the handler
reads it once at start-up with :meth:`FunctionSettings.from_environ`. Each field's variable is its
name in upper case; a text field is written as it is, anything else as JSON. Only the fields the
construct sets are written: a field it leaves unset gets the model's default, which lives there
and nowhere else.

Contract modules import only the standard library and pydantic: the CDK app imports them too.
"""

from __future__ import annotations

import json
import os
import types
from collections.abc import Callable, Mapping
from typing import Any, Literal, Self, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError


class SettingsError(RuntimeError):
    """The function's environment does not match its contract (a deploy or config fault)."""


def variable(field: str) -> str:
    """The environment variable that holds a settings field."""
    return field.upper()


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class FunctionSettings(BaseModel):
    """Base of every function's settings model (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def environment(self, dumps: Callable[[Any], str] = _dumps) -> dict[str, str]:
        """The Lambda environment for these settings: every field set explicitly (required fields
        always are). ``dumps`` serialises non-text values; a stack passes ``Stack.to_json_string``
        where a value holds deploy-time tokens."""
        data = self.model_dump(mode="json", include=self.model_fields_set)
        return {
            variable(name): value if _is_text(type(self).model_fields[name].annotation) else dumps(value)
            for name, value in sorted(data.items())
            if value is not None
        }

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> Self:
        """The settings from the process environment (or ``env``); a missing required variable
        or a malformed value raises SettingsError naming the variable."""
        source = os.environ if env is None else env
        raw: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            text = source.get(variable(name))
            if text is None:
                continue
            try:
                raw[name] = text if _is_text(info.annotation) else json.loads(text)
            except json.JSONDecodeError as error:
                raise SettingsError(f"{variable(name)}: not JSON ({error.msg})") from None
        try:
            return cls.model_validate(raw)
        except ValidationError as error:
            problems = "; ".join(
                f"{variable(str(e['loc'][0])) if e['loc'] else cls.__name__}: {e['msg']}" for e in error.errors()
            )
            raise SettingsError(problems) from None


def _is_text(annotation: Any) -> bool:
    """Whether a field is written verbatim: str, a str enum or a Literal of strings, optionally or None."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        parts = [a for a in get_args(annotation) if a is not type(None)]
        return len(parts) == 1 and _is_text(parts[0])
    if origin is Literal:
        return all(isinstance(value, str) for value in get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, str)
