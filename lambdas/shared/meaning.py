"""Patterns explained in words.

A patterned string type carries a ``Meaning``: a value that does not match fails with "must be
<meaning>" instead of pydantic's "String should match pattern '<regex>'", and the meaning goes
into the JSON schema (``x-meaning``), so into docs/configuration.md and a tool's error text.
Imports only pydantic: the CDK app and every function import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationError
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

# The error type of a pattern mismatch explained in words (pydantic's own is string_pattern_mismatch).
PATTERN_ERROR = "string_pattern_meaning"


@dataclass(frozen=True)
class Meaning:
    """What a patterned string must look like, in plain words (``Annotated`` metadata after the pattern)."""

    text: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_wrap_validator_function(self._validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["x-meaning"] = self.text
        return json_schema

    def _validate(self, value: Any, handler: core_schema.ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except ValidationError as error:
            if any(e["type"] == "string_pattern_mismatch" for e in error.errors()):
                raise PydanticCustomError(PATTERN_ERROR, "must be {meaning}", {"meaning": self.text}) from None
            raise
