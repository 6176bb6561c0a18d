"""The legacy tools' contract: what the stack writes for one legacy API, and the single-call tool
a deployment declares in config alone.

Two kinds of legacy tool:

- **single-call**: one GET whose path and query come from the tool's arguments, projected to the
  declared fields (and paged when the answer holds a list). Config only: ``SingleCallTool``
  under ``production.legacy_apis.<target>.tools.<tool>``, no code.
- **chained**: several calls whose later ones depend on earlier answers (``find_orders``:
  e-mail -> customer -> orders). Code, in one place: lambdas/legacy_tools/adapters.py ``CHAINED``;
  config declares only its fields.

Imports only the standard library, pydantic and the shared contracts: the CDK app imports it too.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model, field_validator, model_validator
from pydantic_core import SchemaError

from shared.contract import FunctionSettings
from shared.field_paths import FieldPath
from shared.meaning import Meaning
from shared.runtime_config import ConfigLocation, RuntimeDocument
from shared.tools import DEFAULT_MAX_RESPONSE_BYTES, GATEWAY_ARGUMENTS, ToolSpec

ArgumentName = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]{0,63}$"),
    Meaning("1 to 64 lowercase letters, digits or _, starting with a letter, such as order_id"),
]
# A declared record field: the name agents read in a tool's answer (and in its description).
DeclaredField = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"),
    Meaning("1 to 64 letters, digits or _, not starting with a digit, such as order_id or totalAmount"),
]
ResourcePath = Annotated[
    str,
    Field(pattern=r"^(/([A-Za-z0-9._~-]+|\{[a-z][a-z0-9_]*\}))+$"),
    Meaning("a path such as /v2/orders/{order_id}: segments of letters, digits or ._~-, or {argument}"),
]
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
CURSOR = "cursor"
_PATTERN_SYNTAX = "a regular expression without look-around or backreferences"


def _reason(error: Exception) -> str:
    """Why a pattern does not compile, in one line. Python's re says it in one; pydantic's engine
    says it on its last line ("error: look-around ... is not supported"), after the pattern and a
    caret under the fault."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
    return (reasons or lines or [type(error).__name__])[-1]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CallArgument(_Frozen):
    """One argument of a single-call tool; every argument is a string or an integer."""

    type: Literal["string", "integer"] = Field(default="string", description="The argument's JSON type.")
    description: str = Field(min_length=1, max_length=300, description="What the agent should pass.")
    required: bool = Field(default=True, description="Whether a call must carry it.")
    pattern: str | None = Field(
        default=None, max_length=300, description="Strings: a regular expression the whole value must match."
    )
    max_length: int = Field(default=256, ge=1, le=2048, description="Strings: the most characters accepted.")
    minimum: int | None = Field(default=None, description="Integers: the smallest value accepted.")
    maximum: int | None = Field(default=None, description="Integers: the largest value accepted.")

    # pydantic takes 1 for true and true for 1: in a declaration both are a mistake, and the tool
    # would be built from what pydantic guessed (max_length: true is a limit of one character).
    @field_validator("required", mode="before")
    @classmethod
    def _true_or_false(cls, value: Any) -> Any:
        if not isinstance(value, bool):
            raise ValueError("not true or false; allowed: true or false")
        return value

    @field_validator("max_length", "minimum", "maximum", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError("not a whole number; allowed: a whole number such as 64")
        return value

    @field_validator("description")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("blank; allowed: text, not only spaces")
        return value

    # Messages start with the key they are about: the config's error line names it.
    @model_validator(mode="after")
    def _pattern_compiles(self) -> CallArgument:
        if self.pattern is None:
            return self
        if not self.pattern.strip():
            # "" anchored is ^(?:)$: every value but the empty one (and every path value) refused.
            raise ValueError("pattern: blank; allowed: a regular expression such as ^O-[0-9]{5}$, or no pattern")
        try:
            re.compile(self.pattern)
            # The engine that will match it (pydantic's) must take it too: no look-arounds.
            TypeAdapter(Annotated[str, Field(pattern=self.anchored_pattern())])
        except (re.error, SchemaError) as error:
            raise ValueError(f"pattern: does not compile: {_reason(error)}; allowed: {_PATTERN_SYNTAX}") from None
        return self

    @model_validator(mode="after")
    def _range_is_not_empty(self) -> CallArgument:
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError(f"minimum: {self.minimum} is above maximum {self.maximum}, so no value could pass")
        return self

    def anchored_pattern(self) -> str | None:
        """The pattern the whole value must match (a pattern alone matches anywhere in it)."""
        return None if self.pattern is None else f"^(?:{self.pattern})$"

    def field(self, *, in_path: bool = False) -> tuple[Any, Any]:
        """(annotation, FieldInfo) for the tool's argument model; a path argument is never empty."""
        kind: Any = str if self.type == "string" else int
        constraints: dict[str, Any] = {"description": self.description}
        if self.type == "string":
            constraints |= {
                "max_length": self.max_length,
                "pattern": self.anchored_pattern(),
                "min_length": 1 if in_path else None,
            }
        else:
            # Strict, as knowledge_search's: lax mode would send true as 1, "7" and 7.0 as 7,
            # hiding a confused caller from it and from the API.
            constraints |= {"ge": self.minimum, "le": self.maximum, "strict": True}
        if self.required:
            return kind, Field(**constraints)
        return kind | None, Field(default=None, **constraints)


MAX_ARGUMENTS = 64  # a single-call tool's, well under the interceptor's bound on a call's keys


class SingleCallTool(_Frozen):
    """A legacy tool that is one GET: arguments named in ``path`` as ``{name}`` fill path segments
    (each value encoded as one segment), every other argument is a query parameter; the answer
    (or each item of the list at ``records``) is projected to ``fields``."""

    description: str = Field(
        min_length=1, max_length=500, description="What the tool does, for agents; {fields} lists the declared fields."
    )
    path: ResourcePath = Field(description="The resource path under the API's base_url, with {argument} placeholders.")
    arguments: dict[ArgumentName, CallArgument] = Field(
        default_factory=dict,
        max_length=MAX_ARGUMENTS,
        description=f"The tool's arguments by name (at most {MAX_ARGUMENTS}: the tools gateway's interceptor "
        "refuses a call whose arguments hold more than 256 keys).",
    )
    records: FieldPath | None = Field(
        default=None, description="Path to a list in the answer: each item is a record, paged with a cursor."
    )
    fields: dict[DeclaredField, FieldPath] = Field(
        min_length=1, description="Declared record field -> path in the answer."
    )

    @model_validator(mode="after")
    def _description_names_only_fields(self) -> SingleCallTool:
        # Parsed, not formatted: format() would look attributes and items up ("{fields.upper}" is a
        # method's repr in the tool's description, "{fields.x}" an AttributeError out of synth).
        try:
            braced = [(name, spec, how) for _, name, spec, how in string.Formatter().parse(self.description)]
        except ValueError:
            braced = [("", "", None)]  # an unpaired brace
        if any(name is not None and (name, spec, how) != ("fields", "", None) for name, spec, how in braced):
            raise ValueError("description: only {fields} may stand in braces")
        return self

    @model_validator(mode="after")
    def _placeholders_are_required_arguments(self) -> SingleCallTool:
        if any(segment in {".", ".."} for segment in self.path.split("/")):
            raise ValueError("path segments . and .. are not allowed")
        for name in _PLACEHOLDER.findall(self.path):
            argument = self.arguments.get(name)
            if argument is None or not argument.required:
                raise ValueError(f"path placeholder {{{name}}} must be a required argument")
        for name in (CURSOR, *GATEWAY_ARGUMENTS):
            if name in self.arguments:
                raise ValueError(f"argument {name} is reserved")
        return self

    def path_arguments(self) -> list[str]:
        """The arguments the path names, each once (a path may name one twice)."""
        return list(dict.fromkeys(_PLACEHOLDER.findall(self.path)))

    def spec(self, name: str) -> ToolSpec:
        in_path = set(self.path_arguments())
        fields: dict[str, Any] = {
            argument: spec.field(in_path=argument in in_path) for argument, spec in self.arguments.items()
        }
        if self.records is not None:
            fields[CURSOR] = (
                str | None,
                Field(default=None, max_length=512, description="next_cursor of the previous page"),
            )
        model = create_model(
            f"{name.title().replace('_', '')}Arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        return ToolSpec(name=name, description=self.description, arguments=model)


class LegacyApi(_Frozen):
    """What one legacy tools function needs to reach its API and shape its answers."""

    base_url: str
    token_path: str
    secret_name: str
    timeout_seconds: float  # the deadline of one exchange with the API (connect and every read)
    max_attempts: int
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES  # a larger answer is refused as it streams
    top_k: int
    byte_budget: int
    fields: dict[str, dict[str, str]]  # chained tool -> declared field -> path


class SingleCallTools(RuntimeDocument):
    """Every legacy API's single-call tools: API (gateway target) -> tool -> declaration. A runtime
    document (AppConfig, environment "tools"); each API's function serves its own entry."""

    apis: dict[str, dict[str, SingleCallTool]]


class Settings(FunctionSettings):
    api_name: str = Field(min_length=1)  # the gateway target: its entry in SingleCallTools
    legacy_api: LegacyApi
    single_call_tools: ConfigLocation  # the SingleCallTools document
