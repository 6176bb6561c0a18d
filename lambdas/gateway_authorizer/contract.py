"""The AI gateway authorizer's contract: the user pool and app client whose tokens it accepts, and
where it reads each group's API key (the usage plan a caller is metered under)."""

from __future__ import annotations

from pydantic import Field

from shared.contract import FunctionSettings
from shared.runtime_config import ConfigLocation, RuntimeDocument


class ApiKeys(RuntimeDocument):
    """group -> its API key's id (AppConfig, environment "gateway")."""

    keys: dict[str, str] = Field(min_length=1)


class Settings(FunctionSettings):
    user_pool_id: str
    client_id: str
    api_keys: ConfigLocation  # the ApiKeys document
    api_keys_max_age_seconds: int = Field(default=60, ge=1)  # how stale the keys document may be
