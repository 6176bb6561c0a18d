"""What every config model shares: the frozen base model, the tiers, and the errors."""

from __future__ import annotations

from enum import StrEnum
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ModelWrapValidatorHandler, ValidationError, model_validator
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError
from pydantic_core.core_schema import ErrorType

from stacks.config.fields import AccountId, LogRetentionDays, Region


class ConfigError(ValueError):
    """Configuration that cannot be deployed; each line names one bad key."""


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
        """pydantic takes true for 1 and 1 for true: a config's true where a number belongs, anything
        but true or false where true or false belongs, or a blank string where text belongs, is refused,
        at any depth of the field's lists and mappings (reported with the model's other errors)."""
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


def _check_kind(annotation: Any, value: Any, path: tuple[str, ...]) -> None:
    options = _flat(annotation)
    kinds = {_kind(option) for option in options} - {"none"}
    if isinstance(value, bool):
        if "number" in kinds and "bool" not in kinds:
            literals = [str(v) for option in options if get_origin(option) is Literal for v in get_args(option)]
            allowed = ", ".join(literals) if literals else "a number"
            raise KeyedError(path, f"{str(value).lower()} is not a number", allowed=allowed)
    elif isinstance(value, int | float):
        if kinds == {"bool"}:
            raise KeyedError(path, f"{value!r} is not true or false", allowed="true or false")
    elif isinstance(value, str):
        if value and not value.strip() and "str" in kinds:
            raise KeyedError(path, f"{value!r} is blank", allowed="text, not only spaces")
    else:
        _check_items(options, value, path)


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
