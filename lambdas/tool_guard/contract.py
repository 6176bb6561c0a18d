"""The tool interceptor's contract: where it reads the group -> tools map (the Cedar permits come
from it too) and each group's data classifications, and the user pool whose tokens it verifies."""

from __future__ import annotations

from enum import StrEnum
from typing import Final, Self

from pydantic import model_validator

from shared.contract import FunctionSettings
from shared.runtime_config import ConfigLocation, RuntimeDocument

# The interceptor's Powertools service name: its metrics carry it as their one dimension.
SERVICE: Final = "tool_guard"


class Metric(StrEnum):
    """The interceptor's metrics (EMF, in the tier's namespace); the observability stack alarms on both."""

    CALLS_REFUSED = "ToolCallsRefused"  # a tools/call for a tool not the caller's, or malformed
    FAILURES = "InterceptorFailures"  # the interceptor itself failed (the request was refused)


class ToolBindings(RuntimeDocument):
    """A runtime document (AppConfig, environment "tools")."""

    tool_bindings: dict[str, list[str]]  # group -> qualified tool names (<target>___<tool>)
    data_classifications: dict[str, list[str]]  # group -> classifications its searches are filtered to

    @model_validator(mode="after")
    def _every_group_in_both(self) -> Self:
        if set(self.tool_bindings) != set(self.data_classifications):
            raise ValueError("tool_bindings and data_classifications must name the same groups")
        return self


class PassageSettings(FunctionSettings):
    """The part of the environment the passage check reads (on its own: it is read where the
    caller is, which needs nothing else of the environment)."""

    # The KMS HMAC key of the AI gateway's passages (shared.passage): a caller's token without one gets
    # no tools. None: none is asked for (the production stack always sets it).
    passage_key_id: str | None = None


class Settings(PassageSettings):
    bindings: ConfigLocation  # the ToolBindings document
    user_pool_id: str
    client_id: str
