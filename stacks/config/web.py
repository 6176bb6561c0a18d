"""The web tools (web_fetch, web_browse): their MCP server's caps, and each group's domains."""

from __future__ import annotations

from pydantic import Field

from agent.contract import TOOL_CALL_SECONDS
from stacks.config.base import ConfigModel
from stacks.config.fields import DomainName, MimeType


class GroupWebConfig(ConfigModel):
    """The web a group's agents may reach through web_fetch and web_browse (when it has them)."""

    allow: tuple[DomainName, ...] = Field(
        default=(),
        max_length=100,
        description="Domains (each with its subdomains) the group may reach; empty: any public domain not denied.",
    )
    deny: tuple[DomainName, ...] = Field(
        default=(),
        max_length=100,
        description="Domains (each with its subdomains) the group may never reach; a denied domain wins over an "
        "allowed one.",
    )


# A web call's time at most: the agent's wait for a tool's answer, less the tools gateway's own hops
# (its interceptors and the call to the server).
WEB_CALL_SECONDS = TOOL_CALL_SECONDS - 2


class WebConfig(ConfigModel):
    """The web MCP server (lambdas/web_mcp) on AgentCore Runtime, behind the tools gateway."""

    max_bytes: int = Field(
        default=2_000_000,
        ge=10_000,
        le=20_000_000,
        description="Bytes of one page (or the browser's document) read at most; a larger page is refused.",
    )
    max_redirects: int = Field(default=5, ge=0, le=10, description="Redirects a fetch follows, each checked again.")
    timeout_seconds: float = Field(
        default=10,
        gt=0,
        le=WEB_CALL_SECONDS,
        description="Seconds one fetch may take, redirects and every read together; at most what an agent waits "
        "for a tool's answer (20 s) less the tools gateway's hops.",
    )
    browse_timeout_seconds: float = Field(
        default=WEB_CALL_SECONDS,
        gt=0,
        le=WEB_CALL_SECONDS,
        description="Seconds one web_browse may take, the browser session included; at most what an agent waits "
        "for a tool's answer (20 s) less the tools gateway's hops.",
    )
    max_chars: int = Field(
        default=20_000, ge=1000, le=200_000, description="Characters of text a call returns at most."
    )
    content_types: tuple[MimeType, ...] = Field(
        default=("text/html", "text/plain", "application/xhtml+xml"),
        min_length=1,
        description="Media types a fetched page may have; any other is refused.",
    )
    https_only: bool = Field(default=True, description="Refuse http:// pages (and redirects to them).")
