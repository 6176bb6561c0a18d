"""What every config model shares: the frozen base model, the tiers, and the errors."""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from functools import cache
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from stacks.config.fields import AccountId, LogRetentionDays, Region


class ConfigError(ValueError):
    """Configuration that cannot be deployed; each line names one bad key."""


# How much of a bad value (or a key) an error line echoes: enough to recognise it, however long it is.
EXCERPT_CHARS = 60


def clipped(text: str, limit: int = EXCERPT_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when something was cut, and each
    character that is not printable as its escape (a name holding a newline would otherwise start
    an error line of its own, one that could read like another key's)."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[: limit + 1])
    return shown if len(text) <= limit else f"{shown[:limit]}..."


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A value as an error line echoes it: its repr, cut to about ``limit`` characters (a string's
    quotes kept, an ellipsis after them when something was cut)."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}..."
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deep, or an integer of more digits than str() takes
        return f"<{type(value).__name__}>"
    return clipped(text, limit)


class KeyedError(ValueError):
    """A check that names the key below the validated field that is wrong."""

    def __init__(self, path: tuple[str, ...], reason: str, *, allowed: str) -> None:
        super().__init__(f"{reason}; allowed: {allowed}")
        self.path = path
        self.reason = reason
        self.allowed = allowed


class Tier(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


class ConfigModel(BaseModel):
    """Frozen, no unknown keys, defaults validated too, no infinity or NaN; JSON's kinds kept apart
    (see _json_kinds)."""

    # Numbers become strings where a string is expected: `-c blueprint.sandbox.account=123456789012`
    # arrives as JSON and parses to an int.
    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_default=True, coerce_numbers_to_str=True, allow_inf_nan=False
    )

    @model_validator(mode="wrap")
    @classmethod
    def _json_kinds(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """pydantic takes true for 1, 1 for true, "no" for false, " 1_000 " for 1000 and 0 for
        1970-01-01: a config's true where a number belongs, anything but true or false (or the text
        "true" or "false") where true or false belongs, a number's text other than plain digits where a
        number belongs, a number with a fraction or an exponent (5.0, 1e3) where a whole number
        belongs, anything but a date's YYYY-MM-DD text where a date belongs, or a blank string where
        text belongs, is refused, at any depth of the field's lists and mappings (reported with the
        model's other errors). The texts are kept because `-c key=value` overrides that are not JSON
        (a date) arrive as strings."""
        if not isinstance(data, dict):
            return handler(data)
        problems: list[KeyedError] = []
        for name, value in data.items():
            field = cls.model_fields.get(name)
            if field is not None:
                try:
                    _check_kind(field.annotation, value, (name,))
                except KeyedError as problem:
                    problems.append(problem)
        if not problems:
            return handler(data)
        try:
            handler(data)
            errors: list[ErrorDetails] = []
        except ValidationError as error:
            errors = error.errors()
        bad = {problem.path[0] for problem in problems}
        details = [reraised(e) for e in errors if not (e["loc"] and e["loc"][0] in bad)]
        details += [
            InitErrorDetails(
                type="value_error",
                loc=(problem.path[0],),
                input=data[problem.path[0]],
                ctx={"error": KeyedError(problem.path[1:], problem.reason, allowed=problem.allowed)},
            )
            for problem in problems
        ]
        raise ValidationError.from_exception_data(cls.__name__, details)


# What a string may hold where a number or a date belongs: the text JSON or ISO 8601 writes it in, no
# more (pydantic would also read " 5 ", "5.0" and "1_000" as 5, and "0" as a date in 1970).
_INTEGER_TEXT = re.compile(r"-?[0-9]+")
_NUMBER_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_RULE = "a date as YYYY-MM-DD, such as 2030-01-31"


def _check_kind(annotation: Any, value: Any, path: tuple[str, ...]) -> None:
    options = _flat(annotation)
    kinds = {_kind(option) for option in options} - {"none"}
    if isinstance(value, bool):
        if "number" in kinds and "bool" not in kinds:
            raise KeyedError(path, f"{str(value).lower()} is not a number", allowed=_numbers_allowed(options))
        if kinds == {"date"}:
            raise KeyedError(path, f"{str(value).lower()} is not a date", allowed=DATE_RULE)
    elif isinstance(value, int | float):
        if kinds == {"bool"}:
            raise KeyedError(path, f"{excerpt(value)} is not true or false", allowed="true or false")
        if kinds == {"date"}:
            raise KeyedError(path, f"{excerpt(value)} is not a date", allowed=DATE_RULE)
        if isinstance(value, float) and kinds == {"number"} and _whole(options):  # 5.0, 1e3: pydantic's 5, 1000
            raise _not_whole(path, value, options)
    elif isinstance(value, str):
        if value and not value.strip() and "str" in kinds:
            raise KeyedError(path, f"{excerpt(value)} is blank", allowed="text, not only spaces")
        _check_text(options, kinds, value, path)
    else:
        _check_items(options, value, path)


def _check_text(options: list[Any], kinds: set[str], value: str, path: tuple[str, ...]) -> None:
    """A string where only true or false, a number or a date belongs, which pydantic would read as
    one: only the text JSON or ISO 8601 writes it in. (A string pydantic refuses gets its message.)"""
    if kinds == {"bool"} and value not in ("true", "false") and _lax_reads(bool, value):
        raise KeyedError(path, f"{excerpt(value)} is not true or false", allowed="true or false")
    if kinds == {"number"}:
        whole = _whole(options)
        if whole and not _INTEGER_TEXT.fullmatch(value) and _lax_reads(int, value):
            raise _not_whole(path, value, options)
        if not whole and not _NUMBER_TEXT.fullmatch(value) and _lax_reads(float, value):
            allowed = _numbers_allowed(options, "a number as JSON writes it, such as 5 or 2.5")
            raise KeyedError(path, f"{excerpt(value)} is not written as a number", allowed=allowed)
    if kinds == {"date"} and not _DATE_TEXT.fullmatch(value) and _lax_reads(dt.date, value):
        raise KeyedError(path, f"{excerpt(value)} is not written as a date", allowed=DATE_RULE)


def _lax_reads(kind: type, value: str) -> bool:
    """Whether pydantic's lax mode takes ``value`` for a ``kind``."""
    try:
        _lax(kind).validate_python(value)
    except ValidationError:
        return False
    return True


@cache
def _lax(kind: type) -> TypeAdapter[Any]:
    return TypeAdapter(kind)


def _whole(options: list[Any]) -> bool:
    """Whether a field of numbers takes whole numbers only."""
    return not any(option is float or _literal_floats(option) for option in options)


def _not_whole(path: tuple[str, ...], value: object, options: list[Any]) -> KeyedError:
    allowed = _numbers_allowed(options, "a whole number in digits, such as 5 or -1")
    return KeyedError(path, f"{excerpt(value)} is not written as a whole number", allowed=allowed)


def _literal_floats(option: Any) -> bool:
    return get_origin(option) is Literal and any(isinstance(v, float) for v in get_args(option))


def _numbers_allowed(options: list[Any], otherwise: str = "a number") -> str:
    literals = [str(v) for option in options if get_origin(option) is Literal for v in get_args(option)]
    return ", ".join(literals) if literals else otherwise


def _check_items(options: list[Any], value: Any, path: tuple[str, ...]) -> None:
    """The kinds inside a mapping or a list, by the item type the annotation gives them."""
    if isinstance(value, dict):
        mapping = next((o for o in options if get_origin(o) is dict), None)
        for key, item in value.items() if mapping is not None else ():
            _check_kind(get_args(mapping)[1], item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        sequence = next((o for o in options if get_origin(o) in (tuple, list)), None)
        for index, item in enumerate(value) if sequence is not None else ():
            _check_kind(get_args(sequence)[0], item, (*path, str(index)))


def _flat(annotation: Any) -> list[Any]:
    """The types an annotation allows, Annotated and unions unwrapped."""
    if get_origin(annotation) is Annotated:
        return _flat(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [option for arg in get_args(annotation) for option in _flat(arg)]
    return [annotation]


def _kind(option: Any) -> str:
    if option is NoneType or option is None:
        return "none"
    if get_origin(option) is Literal:
        values = get_args(option)
        if all(isinstance(v, bool) for v in values):
            return "bool"
        return "number" if all(isinstance(v, int | float) for v in values) else "other"
    if option is bool:
        return "bool"
    if option is dt.date:
        return "date"
    if option in (int, float):
        return "number"
    return "str" if option is str else "other"


class TierConfig(ConfigModel):
    """Where a tier deploys and how long it keeps its logs."""

    account: AccountId | None = Field(
        default=None,
        description="The AWS account the tier's stacks deploy to; null leaves them environment-agnostic "
        "(the account of the deploying credentials).",
    )
    region: Region = Field(default="us-east-1", description="The AWS region the tier's stacks deploy to.")
    log_retention_days: LogRetentionDays = Field(
        default=30,
        description="Days the tier's log groups keep their events; also how long its access-log bucket keeps objects.",
    )


_PYDANTIC_ERRORS = frozenset(get_args(ErrorType))


def reraised(error: ErrorDetails) -> InitErrorDetails:
    """An error pydantic reported, in the form ValidationError.from_exception_data takes back."""
    if error["type"] in _PYDANTIC_ERRORS:
        details = InitErrorDetails(type=error["type"], loc=error["loc"], input=error["input"])
        if "ctx" in error:
            details["ctx"] = error["ctx"]
        return details
    # A custom error's message is already rendered: keep it as it is.
    return InitErrorDetails(
        type=PydanticCustomError(error["type"], error["msg"]), loc=error["loc"], input=error["input"]
    )
