"""The production user pool: who may sign in, and how."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from stacks.config.base import ConfigModel


class IdentityConfig(ConfigModel):
    """The Cognito user pool (no self sign-up; sign-in with e-mail and SRP) and its tokens."""

    mfa: Literal["OFF", "OPTIONAL", "REQUIRED"] = Field(
        default="REQUIRED", description="Multi-factor authentication with an authenticator app (TOTP; no SMS)."
    )
    threat_protection: Literal["off", "audit", "enforced"] = Field(
        default="enforced",
        description="Cognito threat protection (formerly advanced security): audit only logs risky sign-ins, "
        "enforced also acts on them. audit and enforced put the pool on the Plus feature plan, off on Essentials.",
    )
    password_min_length: int = Field(
        default=14,
        ge=8,
        le=99,
        description="Shortest password accepted (digits, lower and upper case letters and symbols are required).",
    )
    access_token_hours: int = Field(
        default=1, ge=1, le=24, description="Hours ID and access tokens are valid; refresh tokens last 30 days."
    )
