"""The AI gateway authorizer's contract: the user pool and app client whose tokens it accepts, and
each group's API key (the usage plan a caller is metered under)."""

from __future__ import annotations

from shared.contract import FunctionSettings


class Settings(FunctionSettings):
    user_pool_id: str
    client_id: str
    api_key_ids: dict[str, str]  # group -> API key id
