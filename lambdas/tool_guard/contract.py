"""The tool interceptor's contract: the group -> tools map the Cedar permits come from too, each
group's data classifications, and the user pool whose tokens it verifies."""

from __future__ import annotations

from shared.contract import FunctionSettings


class Settings(FunctionSettings):
    tool_bindings: dict[str, list[str]]  # group -> qualified tool names (<target>___<tool>)
    data_classifications: dict[str, list[str]]  # group -> classifications its searches are filtered to
    user_pool_id: str
    client_id: str
