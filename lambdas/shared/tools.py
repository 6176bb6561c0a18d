"""What the tools gateway, its interceptors and its tools agree on.

A tool is a :class:`ToolSpec`: its name, a description and the pydantic model of its arguments.
The same model validates a call in the tool's Lambda and, through :meth:`ToolSpec.input_schema`,
is the schema the tools gateway publishes (stacks/production/tools.py), so the two cannot drift.

Imports only the standard library and pydantic: the CDK app imports it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

# AgentCore names a tool ``<target>___<tool>`` and tells a Lambda target which one in its client
# context under this key.
TARGET_SEPARATOR = "___"
TOOL_NAME_KEY = "bedrockAgentCoreToolName"

# Arguments the gateway's REQUEST interceptor writes from the caller's verified identity (any value
# an agent sends is replaced), and its RESPONSE interceptor hides from tools/list.
CLASSIFICATIONS_ARGUMENT = "data_classifications"
CONVERSATION_ARGUMENT = "conversation_id"
GROUP_ARGUMENT = "caller_group"  # the web tools' (their domain lists are per group)
GATEWAY_ARGUMENTS = (CLASSIFICATIONS_ARGUMENT, CONVERSATION_ARGUMENT, GROUP_ARGUMENT)

# The most a legacy API's answer may be (bytes) unless its endpoint's config says otherwise: the
# client (shared/legacy_client.py) refuses a larger one as it streams.
DEFAULT_MAX_RESPONSE_BYTES = 1 << 20
DEFAULT_BACKOFF_SECONDS = 0.2  # the client's first backoff; each next attempt's doubles it


def longest_call_seconds(
    timeout_seconds: float, max_attempts: int, backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
) -> float:
    """The longest one call of the legacy client may take: each attempt's exchange and at most two
    token fetches (the call's first, and a fresh one after a 401: the client fetches no more), every
    one at most ``timeout_seconds``, and the backoffs between attempts. Here, not in the client, so
    config can check it without an HTTP client."""
    backoffs: float = backoff_seconds * (2**max_attempts - 1)  # (int ** int is Any to mypy)
    return (max_attempts + 2) * timeout_seconds + backoffs


# A parsed JSON answer's memory per byte of its text, at most. The densest shape is lists nested to
# the depth the client allows ([[[...]]],...): about 44 times its size as Python objects, as
# tracemalloc counts them, and its text beside them (4 bytes a character once one character is past
# U+FFFF: 47 times; tests/lambdas/test_legacy_hostile.py measures every shape). The process's memory
# is about a tenth more (the allocator's rounding): 48.6 times for the ASCII answer and 51.6 for the
# wide one, measured at 2 to 32 MiB, the client letting go of the answer's bytes before it parses
# its text. 56 leaves a margin over that. And what a Python function holds before it reads one (the
# runtime, boto3, the handler's modules).
JSON_MEMORY_FACTOR = 56
FUNCTION_BASELINE_MB = 128


def answer_memory_mb(max_response_bytes: int) -> int:
    """The memory a function needs to parse an answer of ``max_response_bytes`` at worst (MB)."""
    return math.ceil(max_response_bytes * JSON_MEMORY_FACTOR / 2**20) + FUNCTION_BASELINE_MB


# The most calls one legacy tool makes: a chained tool's two (find_orders: the customer, then their
# orders); a single-call tool makes one.
MAX_TOOL_CALLS = 2
LAMBDA_TIMEOUT_MAX = 900


# The legacy client's read of its credentials (shared.legacy_client's Secrets Manager client): one
# short attempt and one retry, not boto3's default of a minute per read and several retries; at
# most SECRET_READ_SECONDS, with botocore's backoff before the retry (a second at most).
SECRET_CONNECT_SECONDS, SECRET_READ_TIMEOUT_SECONDS, SECRET_ATTEMPTS = 2, 3, 2
SECRET_READ_SECONDS = SECRET_ATTEMPTS * (SECRET_CONNECT_SECONDS + SECRET_READ_TIMEOUT_SECONDS) + 1


def tools_function_seconds(timeout_seconds: float, max_attempts: int) -> int:
    """A legacy tools function's timeout: its tool's calls at their longest (longest_call_seconds
    each), the credentials' read (SECRET_READ_SECONDS) and 10 s for the rest, at most Lambda's
    900. A shorter one would have Lambda end a tool whose calls retry to their end, and the
    gateway would get no error of the taxonomy."""
    longest = MAX_TOOL_CALLS * longest_call_seconds(timeout_seconds, max_attempts) + SECRET_READ_SECONDS
    return min(math.ceil(longest) + 10, LAMBDA_TIMEOUT_MAX)


# Tools every deployment has, by tool name -> gateway target: knowledge search (a Lambda target)
# and the web tools (lambdas/web_mcp, an MCP server on AgentCore Runtime).
KNOWLEDGE_SEARCH = "knowledge_search"
WEB_TARGET = "web"
WEB_FETCH = "web_fetch"
WEB_BROWSE = "web_browse"
WEB_TOOLS = (WEB_FETCH, WEB_BROWSE)
BUILTIN_TOOLS: dict[str, str] = {KNOWLEDGE_SEARCH: "knowledge", WEB_FETCH: WEB_TARGET, WEB_BROWSE: WEB_TARGET}

# JSON Schema keywords the gateway's inline tool schemas carry (AgentCore's SchemaDefinition).
_KEPT = ("type", "description")


def qualified(target: str, tool: str) -> str:
    """The gateway's name for a tool: ``<target>___<tool>``."""
    return f"{target}{TARGET_SEPARATOR}{tool}"


def split(name: str) -> tuple[str | None, str]:
    """A gateway tool name's target and tool: what comes before its FIRST separator and what
    after (no target when it has none). The first, not the last: a target name holds no ``_``,
    so the gateway authorizes ``orders___report___summary`` as the tool ``report___summary`` of
    ``orders``, and a target must run that tool, never ``summary`` (config forbids ``__`` in a
    tool name; this holds whatever a name holds)."""
    target, separator, tool = name.partition(TARGET_SEPARATOR)
    return (target, tool) if separator else (None, name)


def unqualified(name: str) -> str:
    """The tool part of a gateway tool name (the name itself when it has no target)."""
    return split(name)[1]


@dataclass(frozen=True)
class ToolSpec:
    """A tool as agents see it. ``description`` may name ``{fields}``: the record fields the
    deployment declares for the tool, filled in by :meth:`describe`."""

    name: str
    description: str
    arguments: type[BaseModel]

    def describe(self, fields: list[str] | tuple[str, ...] = ()) -> str:
        return self.description.format(fields=", ".join(fields))

    def input_schema(self) -> dict[str, Any]:
        """The arguments' JSON Schema reduced to what the gateway publishes: types, descriptions,
        properties, items and required. Arguments the gateway writes are never required."""
        schema = self.arguments.model_json_schema()
        properties = {name: _reduce(spec) for name, spec in schema.get("properties", {}).items()}
        required = [name for name in schema.get("required", []) if name not in GATEWAY_ARGUMENTS]
        return {"type": "object", "properties": properties, "required": required}


def _reduce(spec: dict[str, Any]) -> dict[str, Any]:
    # ``X | None`` is anyOf [X, null] in pydantic's schema: publish X (absent means None).
    options = [s for s in spec.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        spec = {**options[0], **{k: v for k, v in spec.items() if k != "anyOf"}}
    reduced = {k: spec[k] for k in _KEPT if k in spec}
    if "items" in spec:
        reduced["items"] = _reduce(spec["items"])
    return reduced
