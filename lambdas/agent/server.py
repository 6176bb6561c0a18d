"""The agent's AgentCore Runtime entrypoint: the HTTP protocol contract, standard library only.

    GET  /ping          {"status": "Healthy"}
    POST /invocations   {"prompt": "..."} or {"messages": [...]}  ->  {"answer", "session_id", ...}

AgentCore Runtime forwards the session id (X-Amzn-Bedrock-AgentCore-Runtime-Session-Id) and, when
the runtime's request-header allowlist names it, the caller's Authorization header: the agent
calls the tools gateway with the caller's own token, so it sees only that caller's tools.
Listens on 0.0.0.0:8080 (AGENT_PORT overrides, for tests).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from agent.loop import run_turn
from agent.mcp_client import McpClient, McpError

SESSION_HEADER = "X-Amzn-Bedrock-AgentCore-Runtime-Session-Id"
MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class AgentSettings:
    name: str
    model_id: str
    system_prompt: str
    gateway_url: str
    max_iterations: int = 6
    turn_seconds: float = 120.0

    @classmethod
    def from_environ(cls) -> AgentSettings:
        env = os.environ
        return cls(
            name=env["AGENT_NAME"],
            model_id=env["MODEL_ID"],
            system_prompt=env["SYSTEM_PROMPT"],
            gateway_url=env["TOOLS_GATEWAY_URL"],
            max_iterations=int(env.get("MAX_ITERATIONS", "6")),
            turn_seconds=float(env.get("TURN_SECONDS", "120")),
        )


@cache
def bedrock() -> Any:
    return boto3.client("bedrock-runtime", config=Config(read_timeout=60, retries={"mode": "standard"}))


def invoke(
    settings: AgentSettings, client: Any, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON answer) for one invocation."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return 401, {"error": "unauthorized", "message": "the caller's bearer token is required"}
    session_id = headers.get(SESSION_HEADER.lower()) or f"session-{uuid.uuid4().hex}"
    messages = _messages(body)
    if messages is None:
        return 400, {"error": "invalid_request", "message": 'body: {"prompt": "..."} or {"messages": [...]}'}
    try:
        turn = run_turn(
            client,
            McpClient(settings.gateway_url, token=token),
            model_id=settings.model_id,
            system=settings.system_prompt,
            messages=messages,
            session_id=session_id,
            max_iterations=settings.max_iterations,
            deadline=time.monotonic() + settings.turn_seconds,
        )
    except McpError as error:
        return 502, {"error": "tools_unavailable", "message": error.message, "session_id": session_id}
    except (ClientError, BotoCoreError) as error:
        code = error.response["Error"]["Code"] if isinstance(error, ClientError) else type(error).__name__
        status = 429 if code == "ThrottlingException" else 502
        return status, {
            "error": "model_unavailable",
            "message": f"bedrock-runtime failed with {code}",
            "session_id": session_id,
        }
    return 200, {
        "agent": settings.name,
        "session_id": session_id,
        "answer": turn.answer,
        "stop": turn.stop,
        "iterations": turn.iterations,
        "tool_calls": [asdict(call) for call in turn.tool_calls],
        "usage": {"input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens},
    }


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
        ):
            return None
        messages.append({"role": turn["role"], "content": [{"text": turn["content"]}]})
    return messages if messages[-1]["role"] == "user" else None


def handler_class(settings: AgentSettings, client: Any) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/ping":
                return self._send(200, {"status": "Healthy"})
            return self._send(404, {"error": "not_found", "message": "GET /ping or POST /invocations"})

        def do_POST(self) -> None:
            if self.path != "/invocations":
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
            status, answer = invoke(settings, client, body, headers)
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


def serve(settings: AgentSettings | None = None, client: Any = None, port: int | None = None) -> ThreadingHTTPServer:
    chosen = settings or AgentSettings.from_environ()
    return ThreadingHTTPServer(
        ("0.0.0.0", port if port is not None else int(os.environ.get("AGENT_PORT", "8080"))),  # noqa: S104 - the runtime contract
        handler_class(chosen, client or bedrock()),
    )


if __name__ == "__main__":
    serve().serve_forever()
