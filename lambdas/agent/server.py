"""The agent's AgentCore Runtime entrypoint: the HTTP protocol contract, standard library only.

    GET  /ping          {"status": "Healthy"}
    POST /invocations   {"prompt": "..."} or {"messages": [...]}, optionally "instructions",
                        "models", "max_tokens", "turn_seconds"
                        ->  {"answer", "model", "session_id", "tool_calls", "usage", ...}

AgentCore Runtime verifies the caller's Cognito token (its JWT authorizer) and forwards it (the
request-header allowlist names Authorization) with the session id
(X-Amzn-Bedrock-AgentCore-Runtime-Session-Id). The agent calls the tools gateway with that same
token, so it sees only the caller's tools, and binds the session to the caller's user and group
at its first turn: a later turn from anyone else gets a 409. Memory is scoped to group and user.
Listens on 0.0.0.0:8080 (AGENT_PORT overrides, for tests).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from botocore.config import Config

from agent.contract import GroupModels, Settings
from agent.loop import run_turn
from agent.mcp_client import McpClient, McpError
from agent.memory import SessionMemory, actor_id
from shared.aws_errors import Kind, UpstreamError
from shared.headers import AGENT_SESSION_HEADER
from shared.telemetry import CONVERSATION
from shared.tokens import GROUP_CLAIM, InvalidToken, bearer, claims_checked_upstream

MAX_BODY_BYTES = 1_000_000
MAX_INSTRUCTIONS = 4000
logger = Logger()


class RefusedError(Exception):
    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass
class Agent:
    settings: Settings
    bedrock: Any
    memory: SessionMemory | None = None
    # session id -> (user, group), fixed at the session's first turn.
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON answer) for one invocation."""
        session_id = headers.get(AGENT_SESSION_HEADER.lower()) or f"session-{uuid.uuid4().hex}"
        try:
            return 200, self._turn(body, headers, session_id)
        except RefusedError as refused:
            logger.info("refused", extra={"status": refused.status, "error": refused.error, "session_id": session_id})
            return refused.status, {"error": refused.error, "message": refused.message, "session_id": session_id}

    def _turn(self, body: dict[str, Any], headers: dict[str, str], session_id: str) -> dict[str, Any]:
        settings = self.settings
        try:
            token = bearer(headers.get("authorization"))
            claims = claims_checked_upstream(token)
        except InvalidToken:
            raise RefusedError(401, "unauthorized", "the caller's bearer token is required") from None
        user, group = str(claims.get("sub") or ""), str(claims.get(GROUP_CLAIM) or "")
        models = settings.group_models.get(group)
        if not user or models is None:
            raise RefusedError(
                403, "forbidden", f"this agent serves the groups {', '.join(sorted(settings.group_models))}"
            )
        self._bind(session_id, user, group)
        logger.append_keys(**{CONVERSATION: session_id})
        request = _request(body, models)
        actor = actor_id(group, user)
        messages = request.messages
        system = settings.system_prompt + (f"\n\n{request.instructions}" if request.instructions else "")
        question = messages[-1]["content"][0]["text"]
        if self.memory:
            if len(messages) == 1:  # only the newest turn: the session's earlier ones come from memory
                messages = self.memory.history(actor, session_id) + messages
            remembered = self.memory.recall(actor, session_id, question)
            if remembered:
                system += "\n\nWhat you remember about this user (from earlier sessions):\n"
                system += "\n".join(f"- {record}" for record in remembered)
        turn_seconds = min(settings.turn_seconds, request.turn_seconds or settings.turn_seconds)
        try:
            turn = run_turn(
                self.bedrock,
                McpClient(
                    settings.tools_gateway_url,
                    token=token,
                    timeout_seconds=min(20.0, turn_seconds),
                    conversation=session_id,
                    trace=headers.get("x-amzn-trace-id"),
                ),
                models=request.models,
                system=system,
                messages=messages,
                session_id=session_id,
                max_tokens=request.max_tokens,
                max_iterations=settings.max_iterations,
                deadline=time.monotonic() + turn_seconds,
            )
        except McpError as error:
            raise RefusedError(502, "tools_unavailable", error.message) from None
        except UpstreamError as error:  # shared.converse: no model of the caller's could answer
            kind = "model_rejected" if error.kind is Kind.REJECTED else "model_unavailable"
            raise RefusedError(error.http_status, kind, f"{error.service} failed with {error.code}") from None
        if self.memory and turn.answer:
            self.memory.remember(actor, session_id, question, turn.answer, at=dt.datetime.now(dt.UTC))
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


def _request(body: dict[str, Any], group: GroupModels) -> TurnRequest:
    messages = _messages(body)
    if messages is None:
        raise RefusedError(
            400, "invalid_request", 'body: {"prompt": "..."} or {"messages": [...]}, the last one the user\'s'
        )
    instructions = body.get("instructions")
    if instructions is not None and (not isinstance(instructions, str) or len(instructions) > MAX_INSTRUCTIONS):
        raise RefusedError(400, "invalid_request", f"instructions: a string of at most {MAX_INSTRUCTIONS} characters")
    models = body.get("models") or [group.default]
    if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
        raise RefusedError(400, "invalid_request", "models: a list of model ids")
    outside = [m for m in models if m not in group.allowed]
    if outside:
        raise RefusedError(403, "model_forbidden", f"not available to this group: {', '.join(outside)}")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or not 1 <= max_tokens <= 8192):
        raise RefusedError(400, "invalid_request", "max_tokens: an integer from 1 to 8192")
    turn_seconds = body.get("turn_seconds")
    if turn_seconds is not None and (not isinstance(turn_seconds, int | float) or turn_seconds <= 0):
        raise RefusedError(400, "invalid_request", "turn_seconds: a positive number")
    return TurnRequest(messages, list(dict.fromkeys(models)), instructions, max_tokens, turn_seconds)


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
            or not turn["content"]
        ):
            return None
        messages.append({"role": turn["role"], "content": [{"text": turn["content"]}]})
    return messages if messages[-1]["role"] == "user" else None


def handler_class(agent: Agent) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/ping":
                return self._send(200, {"status": "Healthy"})
            return self._send(404, {"error": "not_found", "message": "GET /ping or POST /invocations"})

        def do_POST(self) -> None:
            if self.path.split("?")[0] != "/invocations":
                return self._send(404, {"error": "not_found", "message": "GET /ping or POST /invocations"})
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                return self._send(413, {"error": "too_large", "message": f"at most {MAX_BODY_BYTES} bytes"})
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                return self._send(400, {"error": "invalid_request", "message": "body: not JSON"})
            if not isinstance(body, dict):
                return self._send(400, {"error": "invalid_request", "message": "body: a JSON object is required"})
            headers = {name.lower(): value for name, value in self.headers.items()}
            status, answer = agent.invoke(body, headers)
            return self._send(status, answer)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # no request lines (they can carry user text)
            return None

    return Handler


@cache
def _clients(turn_seconds: float) -> tuple[Any, Any]:
    # One attempt per model call, never longer than a whole turn: the loop moves on to the next
    # model on throttling, and the gateway stops waiting when the turn's time is up.
    bedrock = boto3.client(
        "bedrock-runtime",
        config=Config(
            connect_timeout=2, read_timeout=turn_seconds, retries={"mode": "standard", "total_max_attempts": 1}
        ),
    )
    memory = boto3.client("bedrock-agentcore", config=Config(connect_timeout=2, read_timeout=10))
    return bedrock, memory


def agent_from_environ() -> Agent:
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
    return Agent(settings, bedrock, memory)


def serve(agent: Agent | None = None, port: int | None = None) -> ThreadingHTTPServer:
    return ThreadingHTTPServer(
        ("0.0.0.0", port if port is not None else int(os.environ.get("AGENT_PORT", "8080"))),  # noqa: S104 - the runtime contract
        handler_class(agent or agent_from_environ()),
    )
