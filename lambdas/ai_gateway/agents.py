"""Agents on AgentCore Runtime, invoked as the caller.

The runtimes authorize with the Cognito pool (JWT), so InvokeAgentRuntime is called over HTTPS
with the caller's own bearer token rather than SigV4: the agent acts, and reaches the tools
gateway, as the caller. The runtime session id is derived from the caller's group, user and
session, so one caller's session can never be entered by another or from another group.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import urllib3

from ai_gateway.router import Generation
from shared.aws_errors import Kind, UpstreamError
from shared.headers import AGENT_SESSION_HEADER


def runtime_session_id(group: str, user: str, session: str) -> str:
    """A runtime (and memory) session id for one caller's session: 65 characters of [a-z0-9]."""
    digest = hashlib.sha256(f"{group}\n{user}\n{session}".encode()).hexdigest()
    return f"s{digest}"


@dataclass(frozen=True)
class AgentTurn:
    generation: Generation
    stop: str
    iterations: int
    # What the agent called: {"name", "arguments", "ok", "error_kind"} per call, as it reported.
    calls: tuple[dict[str, Any], ...] = ()

    @property
    def tool_errors(self) -> int:
        return sum(1 for call in self.calls if not call.get("ok"))


class AgentClient:
    def __init__(
        self,
        endpoint: str,
        runtimes: Mapping[str, str],
        *,
        http: urllib3.PoolManager | None = None,
        connect_seconds: float = 2.0,
    ) -> None:
        self._endpoint = endpoint.rstrip("/")
        self._runtimes = dict(runtimes)
        self._http = http or urllib3.PoolManager(retries=False)
        self._connect = connect_seconds

    def invoke(
        self, agent: str, *, token: str, session_id: str, payload: dict[str, Any], timeout_seconds: float
    ) -> AgentTurn:
        service = f"agent {agent}"
        arn = self._runtimes.get(agent)
        if arn is None:  # the policy names an agent this deployment has no runtime for
            raise UpstreamError(service, "UnknownAgent", kind=Kind.FAILED)
        url = f"{self._endpoint}/runtimes/{quote(arn, safe='')}/invocations?qualifier=DEFAULT"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            AGENT_SESSION_HEADER: session_id,
        }
        trace = os.environ.get("_X_AMZN_TRACE_ID")
        if trace:  # the agent's spans continue this request's X-Ray trace
            headers["X-Amzn-Trace-Id"] = trace
        started = time.perf_counter()
        try:
            response = self._http.request(
                "POST",
                url,
                body=json.dumps(payload).encode(),
                headers=headers,
                timeout=urllib3.Timeout(connect=self._connect, read=timeout_seconds),
            )
        except urllib3.exceptions.TimeoutError:
            raise UpstreamError(service, "Timeout", 504) from None
        except urllib3.exceptions.HTTPError:
            raise UpstreamError(service, "ConnectionError", 503) from None
        latency_ms = (time.perf_counter() - started) * 1000
        if response.status != 200:  # classified like an AWS error: its code, else its status
            raise UpstreamError(service, _error_code(response), response.status, caller_facing=True)
        try:
            answer = json.loads(response.data)
            usage = answer.get("usage") or {}
            calls = tuple(dict(call) for call in answer.get("tool_calls") or [])
            return AgentTurn(
                generation=Generation(
                    model=str(answer["model"]),
                    text=str(answer["answer"]),
                    input_tokens=int(usage.get("input_tokens", 0)),
                    output_tokens=int(usage.get("output_tokens", 0)),
                    latency_ms=latency_ms,
                ),
                stop=str(answer.get("stop", "")),
                iterations=int(answer.get("iterations", 0)),
                calls=calls,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UpstreamError(service, "InvalidResponse", kind=Kind.FAILED) from None


def _error_code(response: urllib3.BaseHTTPResponse) -> str:
    """AWS's error type header (``ThrottlingException:...``), else the agent's own error code."""
    kind = response.headers.get("x-amzn-ErrorType", "").split(":")[0]
    if kind:
        return kind
    if response.status == 429:
        return "ThrottlingException"
    try:
        body = json.loads(response.data)
    except ValueError:
        body = None
    return str(body.get("error")) if isinstance(body, dict) and body.get("error") else f"HTTP{response.status}"
