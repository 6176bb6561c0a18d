"""Agents on AgentCore Runtime, invoked by the gateway on the caller's behalf.

The runtimes authorize with IAM and only the gateway's roles (its function's, its streaming
function's and its jobs worker's) may invoke them, so
InvokeAgentRuntime is an ordinary botocore call, SigV4-signed with the function's credentials.
The caller's access token travels in AgentCore's allowlisted custom header (CALLER_TOKEN_HEADER),
inside the signature and never as Authorization: the agent reaches the tools gateway as the
caller, with the gateway's passage for that token beside it (PASSAGE_HEADER, shared.passage), which
the tools gateway asks for: a caller's token without one gets no tools. The runtime session id is
derived from the caller's group, user and session, so one caller's session can never be entered by
another or from another group.

Time: botocore has no per-call timeout, and a client per deadline would cost a client's creation
per request. So the request's deadline reaches the agent as its turn's budget (the flow's
``turn_seconds``), which the agent ends its turn by; the client's read timeout (``read_seconds``:
the longest turn the function's timeout allows) is the backstop for a runtime that never answers.
One attempt: a turn is not idempotent.

Memory: the agents' AgentCore Memory holds only guarded text, so the gateway, not the agent,
writes each turn, after its output guardrail (``remember``), with a client of its own whose
short timeouts keep a slow write from costing the caller the answer.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Final

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError as TransportError,
    ConnectTimeoutError,
    HTTPClientError,
    ReadTimeoutError,
)
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ai_gateway.contract import AGENT_ENDPOINT, DEFAULT_AGENT_TIMEOUT_SECONDS
from ai_gateway.router import Generation
from shared.agent_memory import actor_id, create_turn_event
from shared.aws_errors import MAX_REPORTED_COUNT, Kind, UpstreamError, call, invalid_response
from shared.headers import CALLER_TOKEN_HEADER, PASSAGE_HEADER

# An agent answers one JSON document; anything larger is not an answer this gateway can guard.
MAX_ANSWER_BYTES: Final = 2 * 1024 * 1024
CONNECT_SECONDS: Final = 2
# A write is best effort (the answer is already guarded and metered): one short attempt, and
# none at all when the function has less time left than the attempt could take.
MEMORY_CONNECT_SECONDS: Final = 1
MEMORY_READ_SECONDS: Final = 2
MEMORY_WORST_SECONDS: Final = MEMORY_CONNECT_SECONDS + MEMORY_READ_SECONDS
MEMORY_SERVICE: Final = "agent memory"
# botocore's events for InvokeAgentRuntime (``<event>.<service id>.<operation>``).
_INVOKE_EVENT: Final = "bedrock-agentcore.InvokeAgentRuntime"
# An error code the agent chose is logged and shown: a short token, or the status names it.
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")  # whole: fullmatch, so no trailing newline

# The caller's token for the invocation under way: one signing hook per client reads it, so no
# handler is registered per call and no token outlives its call.
_caller_token: ContextVar[tuple[str, str | None] | None] = ContextVar("caller_token", default=None)  # with its passage
PASSAGE_SERVICE: Final = "gateway passage"


def runtime_session_id(group: str, user: str, session: str) -> str:
    """A runtime (and memory) session id for one caller's session: 65 characters of [a-z0-9]."""
    digest = hashlib.sha256(f"{group}\n{user}\n{session}".encode()).hexdigest()
    return f"s{digest}"


@dataclass(frozen=True)
class AgentTurn:
    generation: Generation
    stop: str
    iterations: int
    # What the agent called, as it reported: {"name", "arguments", "ok", "error_kind", "latency_ms"}.
    calls: tuple[dict[str, Any], ...] = ()

    @property
    def tool_errors(self) -> int:
        return sum(1 for call in self.calls if not call.get("ok"))


class AgentClient:
    """InvokeAgentRuntime for the configured agents, and their memory's turns.

    ``endpoint``: AgentCore's data plane (None: the region's public endpoint); ``runtimes``: agent
    name -> runtime ARN, or what gives the current ones (the policy's, from runtime config);
    ``read_seconds``: the longest an agent turn may take; ``memory_id``: the agents' AgentCore
    Memory (None: agents have no memory, and ``remember`` writes nothing); ``passage``: the
    passage for a caller's token (shared.passage.PassageIssuer; None: none is sent, and the agent
    gets no tools), whose time, on ``clock``, comes out of the turn's. The botocore client is
    created on first use: a route served by a model never pays for it.
    """

    def __init__(
        self,
        endpoint: str | None,
        runtimes: Mapping[str, str] | Callable[[], Mapping[str, str]],
        *,
        read_seconds: float = DEFAULT_AGENT_TIMEOUT_SECONDS,
        memory_id: str | None = None,
        passage: Callable[[str], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._endpoint = endpoint
        self._passage = passage
        self._clock = clock
        fixed = dict(runtimes) if not callable(runtimes) else {}
        self._runtimes: Callable[[], Mapping[str, str]] = runtimes if callable(runtimes) else lambda: fixed
        self._read_seconds = read_seconds
        self._memory_id = memory_id

    @cached_property
    def _client(self) -> Any:
        client = boto3.client(
            "bedrock-agentcore",
            endpoint_url=self._endpoint,
            config=Config(
                connect_timeout=CONNECT_SECONDS,
                read_timeout=self._read_seconds,
                retries={"mode": "standard", "total_max_attempts": 1},
            ),
        )
        # X-Amzn-Trace-Id needs nothing here: botocore adds it from _X_AMZN_TRACE_ID in Lambda
        # (its recursion-detection handler), so the agent's spans continue this request's trace.
        client.meta.events.register_first(f"before-sign.{_INVOKE_EVENT}", _add_caller_token)
        client.meta.events.register(f"before-parse.{_INVOKE_EVENT}", _keep_agent_error_code)
        return client

    @cached_property
    def _memory_client(self) -> Any:
        return boto3.client(
            "bedrock-agentcore",
            endpoint_url=self._endpoint,
            config=Config(
                connect_timeout=MEMORY_CONNECT_SECONDS,
                read_timeout=MEMORY_READ_SECONDS,
                retries={"mode": "standard", "total_max_attempts": 1},
            ),
        )

    def invoke(self, agent: str, *, token: str, session_id: str, payload: dict[str, Any]) -> AgentTurn:
        service = f"agent {agent}"
        arn = self._runtimes().get(agent)
        if arn is None:  # the policy names an agent this deployment has no runtime for
            raise UpstreamError(service, "UnknownAgent", kind=Kind.FAILED)
        client = self._client  # created before the clock starts: the turn's latency is the agent's
        passage = None
        if self._passage is not None:
            began = self._clock()
            with call(PASSAGE_SERVICE):  # a KMS call the first time a container sees the token
                passage = self._passage(token)
            # Its time comes out of the turn the caller's deadline left the agent.
            spent = self._clock() - began
            if spent > 0 and isinstance(payload.get("turn_seconds"), int | float):
                payload = {**payload, "turn_seconds": max(payload["turn_seconds"] - spent, 1)}
        started = time.perf_counter()
        bound = _caller_token.set((token, passage))
        try:
            response = client.invoke_agent_runtime(
                agentRuntimeArn=arn,
                qualifier=AGENT_ENDPOINT,
                runtimeSessionId=session_id,
                contentType="application/json",
                accept="application/json",
                payload=json.dumps(payload).encode(),
            )
            data = _read_bounded(service, response["response"])
        except (ReadTimeoutError, ConnectTimeoutError):
            raise UpstreamError(service, "Timeout", 504) from None
        except (TransportError, HTTPClientError):
            raise UpstreamError(service, "ConnectionError", 503) from None
        except (ClientError, BotoCoreError) as error:  # AWS's refusals, and the agent's (classified alike)
            raise UpstreamError.from_exception(service, error, caller_facing=True) from None
        finally:
            _caller_token.reset(bound)
        latency_ms = (time.perf_counter() - started) * 1000
        status = int(response.get("statusCode") or 200)
        if status != 200:  # an answer botocore took for success that is not the agent's answer
            raise UpstreamError(service, _agent_error_code(data) or f"HTTP{status}", status, caller_facing=True)
        return _turn(service, data, latency_ms)

    def remember(self, *, group: str, user: str, session_id: str, question: str, answer: str, at: dt.datetime) -> None:
        """One guarded turn into the agents' memory, as the caller's (nothing without a memory)."""
        if self._memory_id is None:
            return
        with call(MEMORY_SERVICE):
            create_turn_event(
                self._memory_client,
                self._memory_id,
                actor=actor_id(group, user),
                session=session_id,
                question=question,
                answer=answer,
                at=at,
            )


def _add_caller_token(request: Any, **_: Any) -> None:
    """before-sign: the caller's token of the invocation under way, and the gateway's passage for
    it (shared.passage), signed with the rest."""
    caller = _caller_token.get()
    if caller is not None:
        token, passage = caller
        request.headers[CALLER_TOKEN_HEADER] = token
        if passage is not None:
            request.headers[PASSAGE_HEADER] = passage


def _keep_agent_error_code(
    response_dict: Mapping[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> None:
    """before-parse: a refusal the agent answered itself (``{"error": "<code>"}`` with its status)
    keeps its code, which botocore would replace by the bare status. AWS's own errors name
    themselves (x-amzn-ErrorType) and stay AWS's."""
    if response_dict["status_code"] < 300 or "x-amzn-errortype" in response_dict["headers"]:
        return
    code = _agent_error_code(response_dict["body"])
    if code:
        customized_response_dict["Error"] = {"Code": code, "Message": ""}


def _agent_error_code(body: bytes) -> str | None:
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        return None
    code = answer.get("error") if isinstance(answer, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None


def _read_bounded(service: str, body: Any) -> bytes:
    """The answer's bytes, up to MAX_ANSWER_BYTES (more: not an answer, and not read further)."""
    chunks, size = [], 0
    try:
        for chunk in body.iter_chunks(64 * 1024):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise UpstreamError(service, "InvalidResponse", kind=Kind.FAILED)
            chunks.append(chunk)
    finally:
        body.close()
    return b"".join(chunks)


Count = Annotated[int, Field(ge=0, le=MAX_REPORTED_COUNT)]


class _Usage(BaseModel):
    model_config = ConfigDict(strict=True)

    input_tokens: Count = 0
    output_tokens: Count = 0


class _ToolCall(BaseModel):
    model_config = ConfigDict(strict=True)

    name: str = Field(min_length=1, max_length=256)
    ok: bool = False
    arguments: dict[str, Any] = Field(default_factory=dict)
    error_kind: str | None = Field(default=None, max_length=64)
    latency_ms: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class _Answer(BaseModel):
    """An agent's answer (lambdas/agent), checked at every level: strict types, finite numbers,
    counts in range. Anything else is the agent's failure, not the gateway's."""

    model_config = ConfigDict(strict=True)

    model: str = Field(min_length=1, max_length=256)
    answer: str = Field(min_length=1)
    usage: _Usage = Field(default_factory=_Usage)
    stop: str = Field(default="", max_length=64)
    iterations: Count = 0
    tool_calls: list[_ToolCall] = Field(default_factory=list)


def _turn(service: str, data: bytes, latency_ms: float) -> AgentTurn:
    try:
        answer = _Answer.model_validate_json(data)
    except ValidationError:  # not JSON, too deep, NaN, the wrong type anywhere: not an answer
        raise invalid_response(service) from None
    if not answer.answer.strip():
        raise invalid_response(service)
    return AgentTurn(
        generation=Generation(
            model=answer.model,
            text=answer.answer,
            input_tokens=answer.usage.input_tokens,
            output_tokens=answer.usage.output_tokens,
            latency_ms=latency_ms,
        ),
        stop=answer.stop,
        iterations=answer.iterations,
        calls=tuple(call.model_dump(exclude_unset=True) for call in answer.tool_calls),
    )
