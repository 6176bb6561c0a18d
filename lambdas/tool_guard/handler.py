"""REQUEST and RESPONSE interceptor of the AgentCore Gateway: each group sees and calls its tools.

The caller's group comes from the ``gateway_group`` claim of the bearer token the gateway passes
on (``passRequestHeaders``), verified again here. The allowed tools come from the same map of
group -> tools in config that the gateway's Cedar policies are generated from:

- REQUEST: ``tools/call`` of a tool outside the caller's group is answered with an MCP error and
  never reaches a target. A call of knowledge search gets the caller's data classifications
  written into its arguments here, over anything the agent sent: retrieval is scoped to the
  caller's group, and a search without them is refused by the tool. A call of a web tool
  (``web___web_fetch``, ``web___web_browse``) gets the caller's group written the same way: the
  web server applies that group's domain lists. No other tool takes an argument the gateway
  writes (``GATEWAY_ARGUMENTS``): whatever an agent sends under those names is dropped from every
  other call, so no target ever gets an agent's value for one.
- RESPONSE: ``tools/list`` results are filtered to the caller's tools, and every listed tool's
  schema is shown without the arguments the gateway writes (neither as properties nor required).

Unknown group, missing claim, missing or malformed token: no tools at all. Nor for a token without
the AI gateway's passage for it (``X-Genai-Gateway-Passage``, shared.passage, checked with KMS
where ``passage_key_id`` is set, as a deployment always has it): the tools gateway accepts the
users' own app client, and a user calling it directly, past the AI gateway's quotas and
guardrails, has a token but no passage.

It fails closed on whatever the MCP versions the gateway speaks (2025-03-26, 2025-06-18) can carry:

- Methods are matched exactly against :data:`PASSING_METHODS` (what the gateway serves and no
  tool can be reached by) and ``tools/call``; anything else is answered "method not found" and
  never passes. A ``tools/call`` whose ``params`` is not an object, ``name`` not a string or
  ``arguments`` not an object is refused before the caller's tools are looked at, and so are
  arguments holding an object of more than 256 keys or an array of more than 1,000 items (a
  target's validation would hold an error for each) or a lone surrogate no UTF-8 can carry
  (``shared.bodies.check_arguments``).
- A JSON-RPC batch (a list, 2025-03-26 only) passes only if every message in it would pass on
  its own, each transformed as it would be alone; one message refused refuses the whole batch,
  answered with one error per message (a partly forwarded batch would leave the caller waiting
  for answers nobody sends). Any other body (none, a string, an empty list) is refused.
- A batch of more than :data:`MAX_BATCH` messages is refused whole, with one "invalid request"
  error and before any message in it is looked at: one request fans out to no more target calls.
- The answer to anything that could be a ``tools/list`` (a listing, or a message that was not
  recognised) is rebuilt from what is understood: a ``result`` with a list of ``tools`` keeps
  the caller's tools (entries objects with a string name) and a string ``nextCursor`` (each page
  is filtered alike); an ``error`` keeps its code and message; any other shape becomes an error.
  That holds for a single answer, each answer of a batch, each ``data:`` event of an SSE-framed
  string body, and a string body of plain JSON (one holding ``NaN`` or an infinity is no JSON: it
  cannot be read, so it becomes an error too). An answer to recognised calls alone (no listing
  among them) passes unchanged unless a message in it carries a ``tools`` list in its result
  (no tool's answer has one): then it is read as above, each such message as a listing. Within an
  answer read so, well-formed answers to recognised calls pass unchanged (one without a result or
  an error, or with a tools list, is read as a listing).
- The ``Authorization`` header must be present exactly once (any case) and be ``Bearer`` and a
  token of the JWT alphabet only: a duplicate in another case, or anything appended, is no token.
- The ``X-Genai-Conversation-Id`` header is used (logged, written into a knowledge search) only
  when it is a conversation id of :data:`CONVERSATION_ID`'s form; any other value is dropped.
- A caller's method or tool name is cut to :data:`SHOWN` characters wherever it is echoed or logged.
"""

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError

from shared.aws_errors import UpstreamError
from shared.bodies import BodyError, check_arguments, clip
from shared.headers import CONVERSATION_HEADER, TOOLS_PASSAGE_HEADER
from shared.logs import log_unexpected, service_logger
from shared.passage import PassageChecker, kms_client
from shared.runtime_config import DocumentReader
from shared.telemetry import CONVERSATION
from shared.tokens import GROUP_CLAIM, InvalidToken, TokenVerifier, bearer
from shared.tools import (
    BUILTIN_TOOLS,
    CLASSIFICATIONS_ARGUMENT,
    CONVERSATION_ARGUMENT,
    GATEWAY_ARGUMENTS,
    GROUP_ARGUMENT,
    KNOWLEDGE_SEARCH,
    WEB_TARGET,
    WEB_TOOLS,
    qualified,
)
from tool_guard.contract import Metric, PassageSettings, Settings, ToolBindings

logger = service_logger()
metrics = Metrics()
VERSION = "1.0"
AUTHORIZATION = "authorization"
CALL = "tools/call"
LIST = "tools/list"
# Methods that pass unchanged: the session's life cycle and the listing (whose answer is filtered).
# The gateway serves tools only, so resources/*, prompts/*, completion/* and the rest are refused
# here rather than trusted to stay harmless.
PASSING_METHODS = frozenset(
    {
        "initialize",
        "ping",
        LIST,
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)
FORBIDDEN = -32001  # an implementation-defined JSON-RPC server error: "not allowed"
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Knowledge search, as the gateway names it: exactly, not by its ending (another target's tool
# could end in ___knowledge_search and would be handed the caller's classifications).
SEARCH_CALL = qualified(BUILTIN_TOOLS[KNOWLEDGE_SEARCH], KNOWLEDGE_SEARCH)
# The web tools, as the gateway names them (their MCP server is one target).
WEB_CALLS = frozenset(qualified(WEB_TARGET, tool) for tool in WEB_TOOLS)
SSE_FIELDS = ("event", "id", "retry")  # kept as sent; every data field is rewritten
# The most messages a JSON-RPC batch may carry. Each tools/call in a batch is a target invocation,
# so a batch is a fan-out its sender chooses. A client batches at most one turn's parallel tool
# calls, a handful (MCP 2025-06-18 has no batches at all): 50 leaves room for any real client
# while one request can no longer become thousands of invocations (or, refused, thousands of
# errors, log lines and metrics).
MAX_BATCH = 50
# The most of a caller's method or tool name echoed in an error or a log line.
SHOWN = 100
# A conversation id the tools may be given: the AI gateway issues "s" and 64 hex digits (its
# runtime_session_id); other callers of an agent runtime choose session ids of this alphabet (a
# UUID, say). 256 is the most knowledge search takes: a longer one would fail every search with
# an error the agent cannot mend.
CONVERSATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,256}")


@cache
def settings() -> Settings:
    return Settings.from_environ()


@cache
def bindings() -> DocumentReader[ToolBindings]:
    return DocumentReader(settings().bindings, ToolBindings)


@dataclass(frozen=True)
class Grant:
    """What one group may do, from one version of the bindings: call ``tools`` (qualified names,
    ``<target>___<tool>``) and search documents of ``classifications``."""

    tools: frozenset[str]
    classifications: tuple[str, ...]


def _grants(document: ToolBindings) -> dict[str, Grant]:
    # The document's validator has every group in both maps.
    return {
        group: Grant(tools=frozenset(tools), classifications=tuple(document.data_classifications[group]))
        for group, tools in document.tool_bindings.items()
    }


@cache
def allowed_tools_view() -> Callable[[], dict[str, Grant]]:
    return bindings().derive(_grants)


def allowed_tools() -> dict[str, Grant]:
    """group -> its grant, from the current bindings: read once a request, so the tools a call is
    checked against and the classifications written into it come from one version."""
    return allowed_tools_view()()


@cache
def passages() -> PassageChecker | None:
    """The check of the AI gateway's passages (shared.passage); None when no key is configured."""
    key = PassageSettings.from_environ().passage_key_id
    if not key:
        return None
    return PassageChecker(kms_client, key)


@cache
def verifier() -> TokenVerifier:
    return TokenVerifier.for_pool(
        region=os.environ["AWS_REGION"], user_pool_id=settings().user_pool_id, client_id=settings().client_id
    )


class Refusal(Exception):  # noqa: N818 - what the caller gets
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Caller:
    group: str | None
    grant: Grant
    conversation: str | None

    @property
    def tools(self) -> frozenset[str]:
        return self.grant.tools


NO_GRANT = Grant(tools=frozenset(), classifications=())


def header(headers: Any, name: str) -> str | None:
    """The value of the one header called ``name`` in any case; None when absent, repeated or not text."""
    if not isinstance(headers, dict):
        return None
    values = [value for key, value in headers.items() if isinstance(key, str) and key.lower() == name]
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


def caller_group(headers: Any, allowed: Mapping[str, Grant] | None = None) -> str | None:
    """The caller's configured group; None when anything about the caller is off: its token, its
    group, or (where a passage key is configured) the AI gateway's passage for its token."""
    try:
        token = bearer(header(headers, AUTHORIZATION))
        claims = verifier().claims(token)
    except InvalidToken as error:
        logger.info("no tools: token rejected", extra={"reason": error.reason})
        return None
    group = claims.get(GROUP_CLAIM)
    if not isinstance(group, str) or group not in (allowed if allowed is not None else allowed_tools()):
        logger.info("no tools: no configured group", extra={"user": claims.get("sub")})
        return None
    if not _came_through_the_gateway(token, header(headers, TOOLS_PASSAGE_HEADER.lower())):
        logger.info("no tools: not through the AI gateway", extra={"user": claims.get("sub")})
        return None
    return group


def _came_through_the_gateway(token: str, passage: str | None) -> bool:
    """Whether the call carries the AI gateway's passage for ``token`` (always, with no key
    configured). A KMS failure is no passage: the caller gets no tools, and the failure is logged."""
    check = passages()
    if check is None:
        return True
    try:
        return check(token, passage)
    except (ClientError, BotoCoreError) as error:
        logger.warning("passage not checked", extra={"error": UpstreamError.from_exception("kms", error).code})
        return False


def conversation_id(headers: Any) -> str | None:
    """The conversation id the caller's agent sent; None when absent or not of the expected form."""
    value = header(headers, CONVERSATION_HEADER.lower())
    if value is None or value == "":
        return None
    if CONVERSATION_ID.fullmatch(value) is None:
        # Neither logged nor passed on: the value is the caller's to choose.
        logger.info("conversation id dropped: not of the expected form", extra={"length": len(value)})
        return None
    return value


def intercept(event: Any) -> dict[str, Any]:
    mcp = event.get("mcp") if isinstance(event, dict) else None
    request = mcp.get("gatewayRequest") if isinstance(mcp, dict) else None
    if not isinstance(mcp, dict) or not isinstance(request, dict):
        return _refused(None, Refusal(INVALID_REQUEST, "not an interceptor event"))
    headers = request.get("headers")
    conversation = conversation_id(headers)
    if conversation:
        logger.append_keys(**{CONVERSATION: conversation})
    allowed = allowed_tools()  # one version of the bindings for the whole request
    group = caller_group(headers, allowed)
    caller = Caller(group=group, grant=allowed[group] if group else NO_GRANT, conversation=conversation)
    body = request.get("body")
    if mcp.get("gatewayResponse") is not None:
        return _on_response(body, mcp["gatewayResponse"], caller)
    return _on_request(body, caller)


# REQUEST


def _on_request(body: Any, caller: Caller) -> dict[str, Any]:
    if isinstance(body, dict):
        try:
            return _output(request={"body": _checked(body, caller)})
        except Refusal as refusal:
            return _refused(body, refusal)
    if isinstance(body, list) and body:
        return _on_batch(body, caller)
    return _refused(None, Refusal(INVALID_REQUEST, "not a JSON-RPC request"))


def _on_batch(batch: list[Any], caller: Caller) -> dict[str, Any]:
    if len(batch) > MAX_BATCH:
        # One error, not one per message: answering each would cost what the cap saves.
        logger.info("batch refused: too many messages", extra={"messages": len(batch)})
        return _refused(None, Refusal(INVALID_REQUEST, f"a batch may carry at most {MAX_BATCH} messages"))
    checked: list[dict[str, Any]] = []
    refusals: list[Refusal | None] = []
    for message in batch:
        try:
            checked.append(_checked(message, caller))
            refusals.append(None)
        except Refusal as refusal:
            refusals.append(refusal)
    if not any(refusals):
        return _output(request={"body": checked})
    logger.info("batch refused", extra={"messages": len(batch)})
    bystander = Refusal(INVALID_REQUEST, "batch refused: another message in it is not allowed")
    errors = [_error(message, refusal or bystander) for message, refusal in zip(batch, refusals, strict=True)]
    return _output(response={"statusCode": 200, "body": errors})


def _checked(message: Any, caller: Caller) -> dict[str, Any]:
    """The message to forward (tool calls transformed), or a :class:`Refusal`."""
    if not isinstance(message, dict):
        raise Refusal(INVALID_REQUEST, "not a JSON-RPC request")
    method = message.get("method")
    if not isinstance(method, str):
        raise Refusal(INVALID_REQUEST, "not a JSON-RPC request")
    if method == CALL:
        return _checked_call(message, caller)
    if method in PASSING_METHODS:
        return message
    logger.info("method refused", extra={"method": clip(method, SHOWN)})
    raise Refusal(METHOD_NOT_FOUND, "method not available through this gateway")


def _checked_call(message: dict[str, Any], caller: Caller) -> dict[str, Any]:
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    arguments = params.get("arguments") if isinstance(params, dict) else None
    if not isinstance(params, dict) or not isinstance(name, str) or not isinstance(arguments, dict | None):
        metrics.add_metric(name=Metric.CALLS_REFUSED, unit=MetricUnit.Count, value=1)
        raise Refusal(INVALID_PARAMS, "tools/call needs params with a string name and object arguments")
    try:
        # Before any target validates them: a model's validation holds an error for each unknown
        # key, and a few megabytes of them take a 256 MB tool function past its memory.
        check_arguments(arguments)
    except BodyError as error:
        metrics.add_metric(name=Metric.CALLS_REFUSED, unit=MetricUnit.Count, value=1)
        raise Refusal(INVALID_PARAMS, str(error)) from None
    if caller.group is None or name not in caller.tools:
        metrics.add_metric(name=Metric.CALLS_REFUSED, unit=MetricUnit.Count, value=1)
        logger.info("tool call refused", extra={"tool": clip(name, SHOWN)})
        raise Refusal(FORBIDDEN, f"tool {clip(name, SHOWN)} is not available to this caller")
    sent = {k: v for k, v in (arguments or {}).items() if k not in GATEWAY_ARGUMENTS}
    if name in WEB_CALLS:
        return {**message, "params": {**params, "arguments": {**sent, GROUP_ARGUMENT: caller.group}}}
    if name != SEARCH_CALL:
        # No other tool takes them: an agent's value for one reaches no target.
        return message if arguments is None else {**message, "params": {**params, "arguments": sent}}
    written = {**sent, CLASSIFICATIONS_ARGUMENT: list(caller.grant.classifications)}
    if caller.conversation:
        written[CONVERSATION_ARGUMENT] = caller.conversation
    return {**message, "params": {**params, "arguments": written}}


# RESPONSE


@dataclass(frozen=True)
class Listing:
    """Which answers of a request must be read as tools/list answers: all but those whose id
    belongs only to recognised requests that are not listings. ``open``: something in the request
    could be a listing (if not, its answer is read only when it carries a tools list)."""

    plain: frozenset[tuple[str, int | str]]
    listing: frozenset[tuple[str, int | str]]
    open: bool

    @classmethod
    def of(cls, request: Any) -> "Listing":
        plain: set[tuple[str, int | str]] = set()
        listing: set[tuple[str, int | str]] = set()
        unknown_listing = False
        for message in request if isinstance(request, list) else [request]:
            method = message.get("method") if isinstance(message, dict) else None
            key = _id_key(message.get("id")) if isinstance(message, dict) else None
            if isinstance(method, str) and method != LIST and (method == CALL or method in PASSING_METHODS):
                if key is not None:
                    plain.add(key)
            elif key is not None:
                listing.add(key)
            else:
                unknown_listing = True
        return cls(plain=frozenset(plain), listing=frozenset(listing), open=bool(listing) or unknown_listing)

    def passes(self, answer_id: Any) -> bool:
        key = _id_key(answer_id)
        return key is not None and key in self.plain and key not in self.listing


def _on_response(request_body: Any, response: Any, caller: Caller) -> dict[str, Any]:
    if not isinstance(response, dict):
        return _refused(None, Refusal(INTERNAL_ERROR, "the answer could not be read"))
    status = response.get("statusCode")
    status = status if type(status) is int and 100 <= status <= 599 else 200
    answer = response.get("body")
    if isinstance(answer, str):  # a byte order mark is no content: SSE readers drop it, JSON ones may
        answer = answer.removeprefix("\ufeff")
    listing = Listing.of(request_body)
    if not listing.open and not _carries_tools(answer):
        return _output(response={"statusCode": status, "body": answer})
    try:
        filtered = _filtered_body(answer, listing, caller.tools)
    except Refusal as refusal:
        return _refused(answer, refusal)
    return _output(response={"statusCode": status, "body": filtered})


def _filtered_body(answer: Any, listing: Listing, tools: frozenset[str]) -> Any:
    if isinstance(answer, dict | list):
        return _filtered_json(answer, listing, tools)
    if isinstance(answer, str) and _whole_json(answer) is not None:
        return json.dumps(_filtered_json(_parsed(answer), listing, tools), allow_nan=False)
    if isinstance(answer, str):
        return _filtered_stream(answer, listing, tools)
    raise Refusal(INTERNAL_ERROR, "the tools list could not be read")


def _carries_tools(answer: Any) -> bool:
    """Whether any message of an answer has a result with a ``tools`` member (of any value: one
    that is not a list is then refused as an unreadable listing). A string is read as leniently as
    any client might (NaN and all); one no client can read (not JSON) carries nothing. One that
    only this reader cannot read (a number past Python's digit limit, nesting past its recursion
    limit: JavaScript's JSON.parse reads both) may carry anything, so it is filtered, and refused.
    A string that is not JSON whole is read as an SSE stream, whatever it starts with: a JSON
    message followed by events is no JSON to a JSON reader, and the events' data to an SSE one."""
    whole = _whole_json(answer) if isinstance(answer, str) else answer
    if isinstance(answer, str) and whole is None:
        answers = [_lenient(data) for _, data in _sse_events(answer)]
    else:
        answers = [whole]
    return any(body is _SUSPECT for body in answers) or any(
        isinstance(message, dict) and isinstance(message.get("result"), dict) and "tools" in message["result"]
        for body in answers
        for message in (body if isinstance(body, list) else [body])
    )


class _RepeatedKeyError(ValueError):
    """A JSON object names a member twice: readers differ on which one counts."""


# A text with a repeated member (a client that keeps the first "result" could read a tools list
# that this reader, which keeps the last, never saw), or one a client could read and this reader
# cannot: such an answer is filtered, and refused there.
_SUSPECT: Any = object()


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        raise _RepeatedKeyError
    return found


def _whole_json(text: str) -> Any:
    """The text read as one JSON value (as _lenient reads it) when it is one, else None (an SSE
    stream, or no answer any client reads)."""
    return _lenient(text) if text.lstrip()[:1] in ("{", "[") else None


def _lenient(text: str) -> Any:
    try:
        return json.loads(text, object_pairs_hook=_unique)
    except json.JSONDecodeError:  # not JSON: no client reads it
        return None
    except (ValueError, RecursionError):  # a repeated member, a huge integer, deep nesting
        return _SUSPECT


def _filtered_json(answer: Any, listing: Listing, tools: frozenset[str]) -> Any:
    if isinstance(answer, list):
        return [_filtered_message(message, listing, tools) for message in answer]
    return _filtered_message(answer, listing, tools)


def _filtered_message(message: Any, listing: Listing, tools: frozenset[str]) -> Any:
    if isinstance(message, dict) and listing.passes(message.get("id")) and _plain_answer(message):
        return message
    try:
        return _listing_answer(message, tools)
    except Refusal as refusal:
        logger.info("tools/list answer refused", extra={"reason": refusal.message})
        return _error(message, refusal)


def _plain_answer(message: dict[str, Any]) -> bool:
    """A well-formed answer (a result or an error) carrying no tools list: anything else under a
    recognised call's id is read as a listing, so it is filtered or refused, never passed."""
    if ("result" in message) == ("error" in message):
        return False
    result = message.get("result")
    return not (isinstance(result, dict) and "tools" in result)


def _listing_answer(message: Any, tools: frozenset[str]) -> dict[str, Any]:
    """A tools/list answer rebuilt from what is understood of it."""
    unreadable = Refusal(INTERNAL_ERROR, "the tools list could not be read")
    if not isinstance(message, dict) or ("result" in message) == ("error" in message):
        raise unreadable
    answer_id = _echo_id(message)
    result, error = message.get("result"), message.get("error")
    if isinstance(result, dict) and isinstance(result.get("tools"), list):
        kept = [_public(tool) for tool in result["tools"] if isinstance(tool, dict) and _name(tool) in tools]
        page: dict[str, Any] = {"tools": kept}
        if isinstance(result.get("nextCursor"), str):
            page["nextCursor"] = result["nextCursor"]
        return {"jsonrpc": "2.0", "id": answer_id, "result": page}
    if isinstance(error, dict) and type(error.get("code")) is int and isinstance(error.get("message"), str):
        return {"jsonrpc": "2.0", "id": answer_id, "error": {"code": error["code"], "message": error["message"]}}
    raise unreadable


def _filtered_stream(text: str, listing: Listing, tools: frozenset[str]) -> str:
    """An SSE-framed answer, each event's data filtered; events keep their event, id and retry."""
    events = [
        "\n".join([*fields, "data: " + json.dumps(_filtered_event(data, listing, tools), allow_nan=False)]) + "\n\n"
        for fields, data in _sse_events(text)
    ]
    if not events:
        raise Refusal(INTERNAL_ERROR, "the tools list could not be read")
    return "".join(events)


def _sse_events(text: str) -> list[tuple[list[str], str]]:
    """The events of an SSE-framed text that carry data: each one's kept fields and its data."""
    events: list[tuple[list[str], str]] = []
    for block in text.replace("\r\n", "\n").replace("\r", "\n").split("\n\n"):
        fields: list[str] = []
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name in SSE_FIELDS:
                fields.append(f"{name}: {value}")
        if data:
            events.append((fields, "\n".join(data)))
    return events


def _filtered_event(data: str, listing: Listing, tools: frozenset[str]) -> Any:
    try:
        return _filtered_json(_parsed(data), listing, tools)
    except Refusal as refusal:
        return _error(None, refusal)


def _parsed(text: str) -> Any:
    """JSON as JSON has it: NaN and the infinities (which Python would read and write back, no
    longer JSON) make a text as unreadable as any other error does."""
    try:
        return json.loads(text, parse_constant=_not_a_number, parse_float=_finite, object_pairs_hook=_unique)
    except (ValueError, RecursionError):
        raise Refusal(INTERNAL_ERROR, "the tools list could not be read") from None


def _not_a_number(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # 1e999
        raise ValueError(f"{text} is not a finite number")
    return number


def _name(tool: dict[str, Any]) -> str | None:
    name = tool.get("name")
    return name if isinstance(name, str) else None


def _public(tool: dict[str, Any]) -> dict[str, Any]:
    """A listed tool as the agent should see it: without the arguments the gateway writes."""
    given = tool.get("inputSchema")
    schema = dict(given) if isinstance(given, dict) else {"type": "object"}
    properties = schema.get("properties")
    schema["properties"] = (
        {k: v for k, v in properties.items() if k not in GATEWAY_ARGUMENTS} if isinstance(properties, dict) else {}
    )
    required = schema.get("required")
    if isinstance(required, list):
        schema["required"] = [name for name in required if name not in GATEWAY_ARGUMENTS]
    elif "required" in schema:
        del schema["required"]
    return {**tool, "inputSchema": schema}


# OUTPUT


def _id_key(value: Any) -> tuple[str, int | str] | None:
    """A JSON-RPC id to compare by (1, True and "1" are three ids); None for no usable id."""
    return (type(value).__name__, value) if type(value) in (int, str) else None


def _echo_id(message: Any) -> int | str | None:
    value = message.get("id") if isinstance(message, dict) else None
    return value if type(value) in (int, str) else None


def _error(message: Any, refusal: Refusal) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": _echo_id(message), "error": {"code": refusal.code, "message": refusal.message}}


def _refused(message: Any, refusal: Refusal) -> dict[str, Any]:
    """An answer in the caller's place: the gateway sends it without calling a target."""
    return _output(response={"statusCode": 200, "body": _error(message, refusal)})


def _output(*, request: dict[str, Any] | None = None, response: dict[str, Any] | None = None) -> dict[str, Any]:
    mcp: dict[str, Any] = {}
    if request is not None:
        mcp["transformedGatewayRequest"] = request
    if response is not None:
        mcp["transformedGatewayResponse"] = response
    return {"interceptorOutputVersion": VERSION, "mcp": mcp}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return intercept(event)
    except Exception as error:  # whatever went wrong, nothing passes unchecked
        log_unexpected(logger, "interceptor failed: refused", error)
        metrics.add_metric(name=Metric.FAILURES, unit=MetricUnit.Count, value=1)
        return _refused(None, Refusal(INTERNAL_ERROR, "the gateway could not check this request"))
