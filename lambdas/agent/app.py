"""The agent on AgentCore Runtime: ``BedrockAgentCoreApp`` serves the runtime contract.

    GET  /ping          {"status": "Healthy", ...}               (BedrockAgentCoreApp)
    POST /invocations   {"prompt": "..."} or {"messages": [...]}, optionally "instructions",
                        "models", "max_tokens", "turn_seconds", "temperature", "top_p",
                        "stop_sequences", "memory" (false: no history or recall read)
                        ->  {"answer", "model", "session_id", "tool_calls", "usage", ...}

Only the AI gateway can invoke the runtime (IAM inbound auth; the roles of its gateway function,
its streaming function and its jobs worker alone hold the grant). It forwards the caller's access
token in ``CALLER_TOKEN_HEADER``, which the agent verifies itself
(signature against the pool's keys, issuer, expiry, ``token_use``, app client) before it uses it:
a forged or expired token gets a 401 and no tools. With that token, and the gateway's passage
for it (``PASSAGE_HEADER``, shared.passage: the tools gateway grants tools only to a token that
comes with one), the agent calls the tools gateway, so it sees and calls only the caller's tools;
and it binds the session to the caller's user and group at its first turn: a later turn from
anyone else gets a 409. Memory is read here (scoped to group and user) and written by the gateway
after its output guardrail.

The groups an agent serves, and their models, are its entry in the AgentGroups runtime document
(AppConfig, read through a cached DocumentReader): a group without a place there gets a 403, and
an agent with no document readable yet answers 503 (retry), never a stack trace.

A body ``json.loads`` cannot read (not JSON, not UTF-8, nested past the recursion limit, an
integer past Python's digit limit) gets a 400 ``invalid_request`` before the SDK parses it, and a
body past ``MAX_BODY_BYTES`` (AgentCore Runtime's own payload limit) a 413 ``too_large`` before
it is read into memory: the SDK would read any body whole.
"""

from __future__ import annotations

import contextvars
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any

import boto3
from bedrock_agentcore.runtime import BedrockAgentCoreApp, PingStatus, RequestContext
from botocore.config import Config
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent.contract import TOOL_CALL_SECONDS, AgentGroups, GroupModels, Settings
from agent.memory import SessionMemory
from agent.turn import STOPPED_ANSWER, Turn, run_turn
from shared.agent_memory import actor_id
from shared.aws_errors import Kind, UpstreamError
from shared.bodies import MAX_FIELD_CHARS, MAX_MESSAGES, BodyError, check_values, clip, shown
from shared.converse import MAX_STOP_CHARS, MAX_STOP_SEQUENCES, TEMPERATURE_MAX, TOP_P_MAX
from shared.display import utf8_encodable
from shared.headers import (
    AGENT_SESSION_HEADER,
    CALLER_TOKEN_HEADER,
    CONVERSATION_HEADER,
    PASSAGE_HEADER,
    TOOLS_PASSAGE_HEADER,
)
from shared.logs import log_unexpected, service_logger
from shared.runtime_config import DocumentReader, RuntimeConfigError
from shared.telemetry import CONVERSATION
from shared.tokens import GROUP_CLAIM, InvalidToken, TokenVerifier

# The instructions the gateway sends (ai_gateway.flow) are the output type's, "\n\n", then the caller's
# system messages joined by "\n\n". With the largest values config allows, that is 4,000 characters
# (output_types.<name>.instructions; a workload's output instructions or generation prompt), 2,
# 200,000 (api.max_message_chars: all of a request's text, its system messages' included), and 2 for
# each join (at most MAX_MESSAGES - 1 system messages beside the user's turn). The agent takes all a
# gateway may send, whatever its config, and no more: a tighter bound here turned a chat a model
# route answers (a 4,800-character system message) into an upstream_rejected 400. The agent does not
# ship the config: tests/lambdas/test_agent_app_exact.py holds these maxima to its fields.
OUTPUT_INSTRUCTIONS_CHARS = 4000
MESSAGE_CHARS = 200_000
MAX_INSTRUCTIONS = OUTPUT_INSTRUCTIONS_CHARS + 2 + MESSAGE_CHARS + 2 * (MAX_MESSAGES - 2)
# AgentCore Runtime's largest request payload (100 MB, not adjustable): the runtime never passes a
# larger one, and the agent run anywhere else reads no more.
MAX_BODY_BYTES = 100 * 1000 * 1000
MAX_TOOL_PAGES = 20  # tools/list pages read per turn (a gateway that pages forever is cut off)
# A refusal names what the caller sent only this far: a caller-sized name would make a caller-sized answer.
ECHOED_NAMES = 3
BODY_SHAPE = 'body: {"prompt": "..."} or {"messages": [...]}, the last one the user\'s'
logger = service_logger()

# A tools session for one caller (token, conversation id, the seconds the turn has left): entered
# for the turn, it yields that caller's Strands tools.
# (token, conversation, seconds left, the AI gateway's passage for the token or None) -> the caller's tools.
ToolsFor = Callable[[str, str, float, str | None], AbstractContextManager[list[Any]]]


class RefusedError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers: dict[str, str] | None = None  # the answer's own (a 405's Allow)


@dataclass
class Service:
    """What serves the turns: settings, AWS clients, the token verifier, the reader of the groups
    document and the session bindings."""

    settings: Settings
    bedrock: Any
    verifier: TokenVerifier
    tools_for: ToolsFor
    groups: DocumentReader[AgentGroups]
    memory: SessionMemory | None = None
    clock: Callable[[], float] = time.monotonic
    # session id -> (user, group), fixed at the session's first turn.
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, body: Any, headers: dict[str, str], session_id: str | None) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one invocation."""
        session = _session(session_id)
        logger.thread_safe_remove_keys([CONVERSATION])  # a context reused from another request names no session
        try:
            return 200, self._turn(body, headers, session)
        except RefusedError as refused:
            return _refusal(refused, session)

    def _caller(self, headers: dict[str, str]) -> tuple[str, str, str]:
        """(token, user, group) of the caller the gateway forwarded, verified here."""
        forwarded = {name.lower(): value for name, value in headers.items()}.get(CALLER_TOKEN_HEADER.lower())
        if not forwarded:
            raise RefusedError(401, "unauthorized", "the caller's token is required")
        try:
            claims = self.verifier.claims(forwarded)
        except InvalidToken:
            raise RefusedError(401, "unauthorized", "the caller's token is not valid") from None
        return forwarded, str(claims.get("sub") or ""), str(claims.get(GROUP_CLAIM) or "")

    def _turn(self, body: Any, headers: dict[str, str], session_id: str) -> dict[str, Any]:
        settings = self.settings
        arrived = self.clock()  # the turn's time counts from here: memory and tools are inside it
        token, user, group = self._caller(headers)
        document = self._document()
        models = document.served_by(settings.agent_name).get(group)
        if not user or models is None:
            # Naming the groups it does serve would tell a caller the others' names.
            raise RefusedError(403, "forbidden", "this agent does not serve the caller's group")
        self._bind(session_id, user, group)
        logger.thread_safe_append_keys(**{CONVERSATION: session_id})  # this request's context only
        request = _request(body, models)
        prompt = document.prompt_of(settings.agent_name)
        if prompt is None:  # the stack always writes one: a document from elsewhere
            logger.error("no system prompt in the groups document", extra={"agent": settings.agent_name})
            raise RefusedError(503, "config_unavailable", "the agent's configuration is not available yet; retry")
        messages, system = self._context(request, prompt, actor_id(group, user), session_id)
        turn_seconds = min(settings.turn_seconds, request.turn_seconds or settings.turn_seconds)
        deadline = arrived + turn_seconds
        try:
            with self.tools_for(token, session_id, deadline - self.clock(), _passage(headers)) as tools:
                turn = run_turn(
                    self.bedrock,
                    tools,
                    agent_name=settings.agent_name,
                    models=request.models,
                    system=system,
                    messages=messages,
                    session_id=session_id,
                    max_tokens=request.max_tokens,
                    **request.sampling,
                    max_iterations=settings.max_iterations,
                    max_tool_calls=settings.max_tool_calls,
                    deadline=deadline,
                    clock=self.clock,
                )
        except ToolsOutOfTimeError:  # the turn's time ran out before its tools session started
            turn = Turn(model=request.models[0], answer=STOPPED_ANSWER, stop="deadline")
        except UpstreamError as error:  # no model of the caller's could answer
            # The request's own fault (passed on: 4xx) is a rejection; the platform's set-up (model
            # access, region) and the model's failures are the platform's: model_unavailable, 5xx.
            kind = "model_rejected" if error.kind is Kind.REJECTED and error.passed_on else "model_unavailable"
            raise RefusedError(error.http_status, kind, f"{error.service} failed with {error.code}") from None
        except ToolsUnavailableError:
            raise RefusedError(502, "tools_unavailable", "the tools gateway did not answer") from None
        logger.info(
            "turn finished",
            extra={
                "session_id": session_id,
                "group": group,
                "model": turn.model,
                "stop": turn.stop,
                "iterations": turn.iterations,
                "tools": [call.name for call in turn.tool_calls],
                "input_tokens": turn.input_tokens,
                "output_tokens": turn.output_tokens,
            },
        )
        return {
            "agent": settings.agent_name,
            "session_id": session_id,
            "answer": turn.answer,
            "model": turn.model,
            "stop": turn.stop,
            "iterations": turn.iterations,
            "tool_calls": [asdict(call) for call in turn.tool_calls],
            "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens},
        }

    def _document(self) -> AgentGroups:
        """The agents' document (the last good version, re-read when the reader's cache expires),
        where this agent's groups and prompt are its entries."""
        try:
            document: AgentGroups = self.groups.get()
        except RuntimeConfigError as error:  # nothing deployed yet, or the store unreachable at start
            logger.error("no groups document", extra={"why": str(error)})
            raise RefusedError(
                503, "config_unavailable", "the agent's configuration is not available yet; retry"
            ) from None
        return document

    def _context(
        self, request: TurnRequest, prompt: str, actor: str, session_id: str
    ) -> tuple[list[dict[str, Any]], str]:
        """The turn's messages and system prompt (the agent's, the request's instructions, what
        memory holds for this caller)."""
        messages = request.messages
        system = prompt + (f"\n\n{request.instructions}" if request.instructions else "")
        if self.memory is None or not request.memory:
            return messages, system
        if len(messages) == 1:  # only the newest turn: the session's earlier ones come from memory
            messages = self.memory.history(actor, session_id) + messages
        remembered = self.memory.recall(actor, session_id, messages[-1]["content"][0]["text"])
        if remembered:
            system += "\n\nWhat you remember about this user (from earlier sessions):\n"
            system += "\n".join(f"- {record}" for record in remembered)
        return messages, system

    def _bind(self, session_id: str, user: str, group: str) -> None:
        with self._lock:
            bound = self.bindings.setdefault(session_id, (user, group))
        if bound != (user, group):
            raise RefusedError(409, "session_bound", "this session belongs to another caller or group; start a new one")


@dataclass(frozen=True)
class TurnRequest:
    messages: list[dict[str, Any]]
    models: list[str]
    instructions: str | None = None
    max_tokens: int | None = None
    turn_seconds: float | None = None
    sampling: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, stop_sequences: those sent
    memory: bool = True  # False: the turn reads neither the session's history nor what is recalled of the caller


def _request(body: Any, group: GroupModels) -> TurnRequest:
    turns = body.get("messages") if isinstance(body, dict) else None
    if isinstance(turns, list) and len(turns) > MAX_MESSAGES:  # the gateway never sends more
        raise RefusedError(400, "invalid_request", f"messages: at most {MAX_MESSAGES}")
    messages = _messages(body) if isinstance(body, dict) else None
    if messages is None:
        raise RefusedError(400, "invalid_request", BODY_SHAPE)
    instructions = body.get("instructions")
    if instructions is not None and (not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS):
        raise RefusedError(400, "invalid_request", f"instructions: a string of at most {MAX_INSTRUCTIONS} characters")
    models = body.get("models")
    if models is None:
        models = [group.default]
    # Only an absent models means the default: 0, "", {} or [] is a mistake, not "no preference".
    if not isinstance(models, list) or not models or not all(isinstance(m, str) for m in models):
        raise RefusedError(400, "invalid_request", "models: a non-empty list of model ids")
    outside = [m for m in models if m not in group.allowed]
    if outside:
        raise RefusedError(403, "model_forbidden", f"not available to this group: {_echoed(outside)}")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (type(max_tokens) is not int or not 1 <= max_tokens <= 8192):
        raise RefusedError(400, "invalid_request", "max_tokens: an integer from 1 to 8192")
    turn_seconds = body.get("turn_seconds")
    if turn_seconds is not None and (type(turn_seconds) not in (int, float) or not turn_seconds > 0):
        raise RefusedError(400, "invalid_request", "turn_seconds: a positive number")
    memory = body.get("memory", True)
    if type(memory) is not bool:
        raise RefusedError(400, "invalid_request", "memory: true or false")
    return TurnRequest(
        messages, list(dict.fromkeys(models)), instructions, max_tokens, turn_seconds, _sampling(body), memory
    )


def _sampling(body: dict[str, Any]) -> dict[str, Any]:
    """The caller's sampling settings the gateway passes on (an OpenAI client's temperature, top_p
    and stop), within Converse's ranges, for every model call of the turn; those not sent are the
    model's defaults."""
    chosen: dict[str, Any] = {}
    for name, highest in (("temperature", TEMPERATURE_MAX), ("top_p", TOP_P_MAX)):
        value = body.get(name)
        if value is None:
            continue
        if type(value) not in (int, float) or not 0 <= value <= highest:  # NaN is in no range
            raise RefusedError(400, "invalid_request", f"{name}: a number from 0 to {highest:g}")
        chosen[name] = float(value)
    stop = body.get("stop_sequences")
    if stop is not None:
        if not (
            isinstance(stop, list)
            and 1 <= len(stop) <= MAX_STOP_SEQUENCES
            and all(isinstance(text, str) and 1 <= len(text) <= MAX_STOP_CHARS for text in stop)
        ):
            raise RefusedError(
                400,
                "invalid_request",
                f"stop_sequences: 1 to {MAX_STOP_SEQUENCES} texts of 1 to {MAX_STOP_CHARS} characters",
            )
        chosen["stop_sequences"] = stop
    return chosen


def _echoed(names: list[str]) -> str:
    """Caller-chosen names as a refusal quotes them: clipped, and a character that is not printable
    (a control, a lone surrogate JSON can carry but UTF-8 cannot encode) shown as "?"."""
    listed = [shown(name, MAX_FIELD_CHARS) for name in names[:ECHOED_NAMES]]
    more = len(names) - len(listed)
    return ", ".join(listed) + (f" and {more} more" if more else "")


def _passage(headers: dict[str, str]) -> str | None:
    """The AI gateway's passage for the caller's token, passed on to the tools gateway as it came
    (its interceptor checks it; the agent cannot)."""
    return {name.lower(): value for name, value in headers.items()}.get(PASSAGE_HEADER.lower()) or None


def _session(session_id: str | None) -> str:
    return session_id or f"session-{uuid.uuid4().hex}"


def _refusal(refused: RefusedError, session: str) -> tuple[int, dict[str, Any]]:
    logger.info("refused", extra={"status": refused.status, "error": refused.error, "session_id": session})
    return refused.status, {"error": refused.error, "message": refused.message, "session_id": session}


# The runtime contract's routes (BedrockAgentCoreApp's; its /ws is a websocket route) and their methods.
ROUTES = {"/invocations": ("POST",), "/ping": ("GET", "HEAD")}


class ReadableBody:
    """ASGI middleware: POST /invocations reaches the SDK only with a body ``json.loads`` reads
    (at most ``MAX_BODY_BYTES`` of it), and any other path or method gets the agent's JSON 404 or 405.

    The SDK parses the body itself and answers a 400 only for a JSON or encoding error: a body
    nested past the recursion limit (RecursionError) or an integer past Python's digit limit
    (ValueError) escapes it as a 500 with a stack trace. So the body is parsed here first (a
    second parse, small beside a model call) and every body it cannot read gets the agent's own
    400."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        refused = _misrouted(scope)
        if refused is None and scope["path"] != "/invocations":
            await self.app(scope, receive, send)
            return
        body = None
        if refused is None:
            try:
                body, refused = await _readable_body(request)
            except ClientDisconnect:
                return
        if refused is not None:
            status, answer = _refusal(refused, _session(request.headers.get(AGENT_SESSION_HEADER)))
            await JSONResponse(answer, status_code=status, headers=refused.headers)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:  # the body is read: what comes next is the disconnect
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def _misrouted(scope: Scope) -> RefusedError | None:
    """Every path and method but the runtime contract's is the agent's JSON 404 or 405 (Starlette's
    own is plain text)."""
    allowed = ROUTES.get(scope["path"])
    if allowed is None:
        return RefusedError(404, "not_found", "no such path: POST /invocations or GET /ping")
    if scope["method"] not in allowed:
        refused = RefusedError(405, "method_not_allowed", f"{scope['path']} takes {' or '.join(allowed)}")
        refused.headers = {"Allow": ", ".join(allowed)}
        return refused
    return None


async def _readable_body(request: Request) -> tuple[bytes, RefusedError | None]:
    """The body, read no further than MAX_BODY_BYTES, and the refusal when it is too large or
    ``json.loads`` cannot read it."""
    too_large = RefusedError(413, "too_large", f"body: at most {MAX_BODY_BYTES} bytes")
    declared = request.headers.get("content-length", "")
    # ASCII digits only, and no int() of a caller-sized number: more digits than the cap's is more.
    longer = len(declared) > len(str(MAX_BODY_BYTES))
    if declared.isascii() and declared.isdigit() and (longer or int(declared) > MAX_BODY_BYTES):
        logger.info("body too large", extra={"declared": clip(declared, 12)})
        return b"", too_large
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > MAX_BODY_BYTES:  # chunked, or more than it declared
            logger.info("body too large", extra={"bytes": len(received)})
            return b"", too_large
    body = bytes(received)
    try:
        # A parser builds one object per value (9 MB of "[{},{},...]" is 225 MB), and the SDK parses
        # the body again: more values than any turn holds are refused on the bytes, before either.
        check_values(body)
    except BodyError as error:
        logger.info("body of too many values", extra={"bytes": len(body)})
        return body, RefusedError(413, "too_large", str(error))
    try:
        json.loads(body)
    except (RecursionError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        logger.info("unreadable body", extra={"why": type(error).__name__, "bytes": len(body)})
        return body, RefusedError(400, "invalid_request", f"{BODY_SHAPE}, as JSON this agent can read")
    return body, None


def _messages(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt.strip():
        return [{"role": "user", "content": [{"text": prompt}]}]
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        return None
    messages = []
    for turn in turns:
        if (
            not isinstance(turn, dict)
            or turn.get("role") not in ("user", "assistant")
            or not isinstance(turn.get("content"), str)
            or not turn["content"].strip()  # as a prompt: Bedrock refuses blank text after the tools session
        ):
            return None
        messages.append({"role": turn["role"], "content": [{"text": turn["content"]}]})
    return messages if messages[-1]["role"] == "user" else None


class ToolsUnavailableError(Exception):
    """The tools gateway could not be reached or did not list the caller's tools."""


class ToolsOutOfTimeError(Exception):
    """The turn's time ran out before its tools session could start: the turn ends at its
    deadline, as one out of time in its loop does."""


@dataclass(frozen=True)
class GatewayTools:
    """Tools sessions with the tools gateway (MCP over streamable HTTP), one per turn, carrying the
    caller's own token: the gateway's policies and interceptors decide per caller what it lists.
    Called with (token, conversation id, the turn's seconds left), it is the turn's session:
    entered, the caller's tools."""

    url: str
    timeout_seconds: float = 20  # to start the session (connect, initialize)

    @contextmanager
    def __call__(
        self, token: str, conversation: str, seconds_left: float, passage: str | None = None
    ) -> Iterator[list[Any]]:
        from strands.tools.mcp import MCPClient

        if not seconds_left > 0:  # the turn's time ran out before (its memory read): no session
            raise ToolsOutOfTimeError
        # One wait, ending at the turn's deadline when that comes first: a gateway that has not
        # listed the caller's tools by then is as unavailable as one that never does.
        wait = min(self.timeout_seconds, seconds_left)
        client = MCPClient(
            url=self.url,
            headers={
                "Authorization": f"Bearer {token}",
                CONVERSATION_HEADER: conversation,
                **({TOOLS_PASSAGE_HEADER: passage} if passage else {}),
            },
            startup_timeout=self.timeout_seconds,  # type: ignore[arg-type]  # a float: it is a wait's timeout
        )
        # Starting the session and listing are one wait: a page of tools/list has no timeout of
        # its own but the MCP SDK's five-minute read, and there may be many.
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def start_and_list() -> None:
            try:
                client.start()
                outcome["tools"] = _listed(client)
            except Exception as error:  # handed to the turn's thread
                outcome["error"] = error
            finally:
                done.set()

        # With the caller's context: the session's spans continue the request's trace.
        threading.Thread(
            target=contextvars.copy_context().run, args=(start_and_list,), name="tools-session", daemon=True
        ).start()
        if not done.wait(wait) or "error" in outcome:
            error = outcome.get("error")
            why = type(error).__name__ if error else "timeout"
            logger.warning("tools gateway unavailable", extra={"error": why, "waited_seconds": round(wait, 3)})
            _stop(client)
            raise ToolsUnavailableError from None
        try:
            yield outcome["tools"]
        finally:
            _stop(client)


def _listed(client: Any) -> list[Any]:
    """Every page of the gateway's tools/list (MAX_TOOL_PAGES at most), each name once: the first
    listing of a name is kept (the agent refuses two tools of one name)."""
    tools: list[Any] = []
    page = client.list_tools_sync()
    tools += page
    for _ in range(MAX_TOOL_PAGES - 1):
        if not page.pagination_token:
            break
        page = client.list_tools_sync(pagination_token=page.pagination_token)
        tools += page
    unique: dict[str, Any] = {}
    for tool in tools:
        unique.setdefault(tool.tool_name, tool)
    return list(unique.values())


def _stop(client: Any) -> None:
    try:
        client.stop(None, None, None)
    except Exception:
        logger.warning("tools session did not close cleanly")


@cache
def _clients(turn_seconds: float) -> tuple[Any, Any]:
    # One attempt per model call, never longer than a whole turn: the router moves on to the next
    # model on throttling, and the gateway stops waiting when the turn's time is up.
    bedrock = boto3.client(
        "bedrock-runtime",
        config=Config(
            connect_timeout=2, read_timeout=turn_seconds, retries={"mode": "standard", "total_max_attempts": 1}
        ),
    )
    # Memory is best effort: one short attempt, so a slow memory costs the turn little of its time.
    memory = boto3.client(
        "bedrock-agentcore",
        config=Config(connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 1}),
    )
    return bedrock, memory


def service_from_environ() -> Service:
    settings = Settings.from_environ()
    bedrock, memory_client = _clients(settings.turn_seconds)
    memory = (
        SessionMemory(
            memory_client,
            settings.memory_id,
            settings.memory_namespaces,
            history_turns=settings.memory_history_turns,
            recall_records=settings.memory_recall_records,
        )
        if settings.memory_id
        else None
    )
    return Service(
        settings,
        bedrock,
        TokenVerifier(issuer=settings.token_issuer, client_id=settings.token_client_id),
        GatewayTools(settings.tools_gateway_url, timeout_seconds=min(TOOL_CALL_SECONDS, settings.turn_seconds)),
        DocumentReader(settings.groups, AgentGroups),
        memory,
    )


def create_app(service: Callable[[], Service] = service_from_environ) -> BedrockAgentCoreApp:
    """The runtime's app. ``service`` is built at the first invocation (the settings are read
    then) and Strands is loaded after the first /ping, so the runtime is ready as soon as the
    server is up."""
    app = BedrockAgentCoreApp(middleware=[Middleware(ReadableBody)])
    built: list[Service] = []
    lock = threading.Lock()

    def current() -> Service:
        with lock:
            if not built:
                built.append(service())
            return built[0]

    loading: list[threading.Thread] = []

    @app.ping
    def ping() -> PingStatus:
        # Once the runtime is known to be up, load what every turn needs (Strands, its Bedrock
        # model and MCP client: about a second) off the request path.
        if not loading:
            loading.append(threading.Thread(target=_load_turn_modules, name="warm-up", daemon=True))
            loading[0].start()
        return PingStatus.HEALTHY

    @app.entrypoint
    def invoke(payload: Any, context: RequestContext) -> JSONResponse | dict[str, Any]:
        try:
            status, answer = current().invoke(payload, context.request_headers or {}, context.session_id)
            answer = _encodable(answer)
            return answer if status == 200 else JSONResponse(answer, status_code=status)
        except Exception as error:  # a bug: logged here, and the caller gets no stack trace or message
            log_unexpected(logger, "turn failed", error)
            return JSONResponse({"error": "internal", "message": "the agent failed"}, status_code=500)

    return app


def _encodable(value: Any) -> Any:
    """``value`` with every text UTF-8 can encode: a lone surrogate (a model's or a tool's answer can
    carry one escaped in JSON) as U+FFFD, where the SDK's encoding of the answer would fail into a
    500 quoting the error."""
    if isinstance(value, str):
        return utf8_encodable(value)
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_encodable(item) for item in value]
    return value


def _load_turn_modules() -> None:
    import strands.models.routing
    import strands.tools.mcp  # noqa: F401
