"""The pre-token-generation trigger's contract: where it reads each configured group's claims and
precedence (a runtime document in AppConfig, environment "identity")."""

from __future__ import annotations

from shared.contract import FunctionSettings
from shared.runtime_config import ConfigLocation, RuntimeDocument


class GroupClaims(RuntimeDocument):
    precedence: int  # a user in several groups gets the lowest
    tier: str
    kind: str


class GatewayGroups(RuntimeDocument):
    """The gateway's groups, by Cognito group name."""

    groups: dict[str, GroupClaims]


class Settings(FunctionSettings):
    gateway_groups: ConfigLocation  # the GatewayGroups document
