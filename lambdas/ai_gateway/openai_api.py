"""The gateway's OpenAI-compatible surface: request and response models and OpenAI's error shape.

    POST /v1/chat/completions   an OpenAI chat completion, metered as an output type (default chat)
    GET  /v1/models             the caller's group's allowed models
    GET  /v1/models/{model}     one of them (the SDK's models.retrieve); any other id is a 404

The ``openai`` SDKs call these unchanged (``OpenAI(base_url=<api>/v1, api_key=<access token>)``);
the gateway's own fields travel as the SDK's ``extra_body`` (``output_type``, ``session_id``) and
headers (``Idempotency-Key``), and its answer adds one ``gateway`` object, which the SDK keeps.
Errors on these routes are OpenAI's ``{"error": {"message", "type", "param", "code"}}``; the
other routes keep the gateway's own shape. Imports only pydantic, shared.bodies,
ai_gateway.contract and the standard library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from ai_gateway.contract import LENGTH_STOP_REASONS, MAX_MESSAGES
from shared.bodies import first_problems, shown, worded
from shared.converse import DEADLINE_CODE, MAX_STOP_CHARS, MAX_STOP_SEQUENCES, TEMPERATURE_MAX, TOP_P_MAX

CHAT_COMPLETION_PATH: Final = "/v1/chat/completions"
MODELS_PATH: Final = "/v1/models"
MODEL_PATH: Final = "/v1/models/{model}"
PATHS: Final = frozenset({CHAT_COMPLETION_PATH, MODELS_PATH})
# A model id as a path segment, once percent-decoded: Bedrock's ids and ARNs (":", ".", "/").
MODEL_ID: Final = re.compile(r"[A-Za-z0-9._:/-]{1,200}")
# Fields accepted only with a value that changes nothing: those values, and the refusal otherwise.
PENALTY: Final = ((None, 0), "penalties are not supported; send 0 or leave it out")
INERT: Final[dict[str, tuple[tuple[Any, ...], str]]] = {
    "n": ((None, 1), "one choice is generated; send 1 or leave it out"),
    "logprobs": ((None, False), "log probabilities are not returned; send false or leave it out"),
    "frequency_penalty": PENALTY,
    "presence_penalty": PENALTY,
    "store": ((None, False), "completions are not stored; send false or leave it out"),
    "response_format": ((None, {"type": "text"}), 'only {"type": "text"} is supported'),
}
# OpenAI's metadata bounds (accepted and not kept: nothing is stored).
MAX_METADATA_KEYS: Final = 16
# Bounds on what one request may carry before the gateway's own character limit is even counted.
MAX_PARTS: Final = 50
MAX_TEXT_CHARS: Final = 200_000
OWNED_BY: Final = "aws-bedrock"

# OpenAI's error types.
INVALID_REQUEST: Final = "invalid_request_error"
AUTHENTICATION: Final = "authentication_error"
PERMISSION: Final = "permission_error"
RATE_LIMIT: Final = "rate_limit_error"
API_ERROR: Final = "api_error"

# pydantic's error types as OpenAI names the problem.
_CODES = {
    "missing": "missing_required_parameter",
    "extra_forbidden": "unknown_parameter",
    "string_type": "invalid_type",
    "int_type": "invalid_type",
    "float_type": "invalid_type",
    "bool_type": "invalid_type",
    "list_type": "invalid_type",
    "model_type": "invalid_type",
    "dict_type": "invalid_type",
    "model_attributes_type": "invalid_type",
    "json_invalid": "invalid_json",
    "unsupported_value": "unsupported_value",
}


class OpenAIError(Exception):
    """A refusal in OpenAI's shape: its HTTP status, type, code, the parameter at fault, and a
    message safe to show the caller (never the caller's text, never a trace)."""

    def __init__(
        self,
        status: int,
        type: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type
        self.message = message
        self.code = code
        self.param = param
        self.retry_after = retry_after
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {
            "error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code, **self.extra}
        }


def invalid(message: str, *, param: str | None = None, code: str | None = "invalid_value") -> OpenAIError:
    return OpenAIError(400, INVALID_REQUEST, message, code=code, param=param)


def model_not_found(model: str) -> OpenAIError:
    return OpenAIError(
        404,
        INVALID_REQUEST,
        f"The model `{shown(model)}` does not exist or you do not have access to it.",
        code="model_not_found",
        param="model",
    )


def stream_refused(why: str = "streamed completions are not served by this function") -> OpenAIError:
    return invalid(f"stream: {why}; send stream: false", param="stream", code="streaming_unavailable")


def from_validation(error: ValidationError) -> OpenAIError:
    """A body pydantic refused: a 400 naming the fields at fault (their location and pydantic's
    message, never the input; shared.bodies bounds how many and how long), the first as ``param``."""
    listed, count = first_problems(error)
    first = listed[0]
    return invalid(
        worded(listed, count),
        param=None if first.field == "body" else first.field,
        code=_CODES.get(first.type, "invalid_value"),
    )


# The gateway's refusal codes (handler.GatewayError, the flow's errors) as OpenAI's: status, type, code.
_FROM_GATEWAY: dict[str, tuple[int, str, str]] = {
    "invalid_request": (400, INVALID_REQUEST, "invalid_value"),
    "too_large": (400, INVALID_REQUEST, "context_length_exceeded"),
    "guardrail_blocked": (400, INVALID_REQUEST, "content_filter"),
    "upstream_rejected": (400, INVALID_REQUEST, "upstream_rejected"),
    "unauthorized": (401, AUTHENTICATION, "unauthorized"),
    "forbidden": (403, PERMISSION, "forbidden"),
    "not_found": (404, INVALID_REQUEST, "not_found"),
    "model_forbidden": (404, INVALID_REQUEST, "model_not_found"),
    "duplicate_request": (409, INVALID_REQUEST, "duplicate_request"),
    "quota_exceeded": (429, RATE_LIMIT, "rate_limit_exceeded"),
    "throttled": (429, RATE_LIMIT, "rate_limit_exceeded"),
    "policy_unavailable": (503, API_ERROR, "policy_unavailable"),
    "internal_error": (500, API_ERROR, "internal_error"),
}
# Upstream failures by how they failed: no answer in time (504), a service or model not ready (503).
# "Timeout" and "ConnectionError" are ai_gateway.agents' names for an agent's (AgentCore's) alike.
TIMEOUT_CODES: Final = frozenset(
    {"ReadTimeoutError", "ConnectTimeoutError", "ModelTimeoutException", "Timeout", DEADLINE_CODE}
)
UNAVAILABLE_CODES: Final = frozenset(
    {
        "ServiceUnavailableException",
        "ModelNotReadyException",
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectionError",
    }
)


def from_gateway(status: int, code: str, message: str, *, retry_after: str | None = None, **extra: Any) -> OpenAIError:
    """One of the gateway's refusals in OpenAI's shape (its extra fields kept beside the four)."""
    mapped_status, kind, openai_code = _FROM_GATEWAY.get(
        code, (status, API_ERROR if status >= 500 else INVALID_REQUEST, code)
    )
    param = "model" if code == "model_forbidden" else None
    return OpenAIError(mapped_status, kind, message, code=openai_code, param=param, retry_after=retry_after, **extra)


def from_upstream(upstream_code: str, status: int, code: str, message: str, retry_after: str | None) -> OpenAIError:
    """An upstream failure (shared.aws_errors.UpstreamError's status, code and public message)."""
    if status < 500:
        return from_gateway(status, code, message, retry_after=retry_after)
    if upstream_code in TIMEOUT_CODES:
        return OpenAIError(504, API_ERROR, message, code="upstream_timeout", retry_after=retry_after)
    if upstream_code in UNAVAILABLE_CODES:
        return OpenAIError(503, API_ERROR, message, code="upstream_unavailable", retry_after=retry_after)
    return OpenAIError(502, API_ERROR, message, code="upstream_error", retry_after=retry_after)


# --- requests ----------------------------------------------------------------------------------


def unsupported(message: str) -> PydanticCustomError:
    """A value the gateway does not honour (OpenAI's code ``unsupported_value``), in pydantic's terms."""
    return PydanticCustomError("unsupported_value", message)


# What an assistant message carries back when a client returns the SDK's message object (its
# model_dump() included): nothing of it reaches the model while empty; a tool call, a function
# call, audio or a refusal is something the gateway never answered with, and is refused.
ASSISTANT_EXTRAS: Final = ("refusal", "annotations", "audio", "function_call", "tool_calls")


class ChatMessage(BaseModel):
    """One message; its content a string or a list of text parts (read as their texts joined with
    newlines)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    # "developer" is what newer OpenAI models call the system role.
    role: Literal["system", "developer", "user", "assistant"]
    content: str = Field(max_length=MAX_TEXT_CHARS)
    name: str | None = Field(default=None, max_length=64)  # accepted as OpenAI does; not sent on
    # An assistant message's fields as the SDK serializes them (ASSISTANT_EXTRAS): accepted when
    # null or empty, then dropped.
    refusal: Any = None
    annotations: Any = None
    audio: Any = None
    function_call: Any = None
    tool_calls: Any = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_only(cls, content: Any) -> Any:
        """A list of parts becomes its text here, so every later check sees one string; a part that
        is not exactly {"type": "text", "text": <string>} is refused by its index."""
        if not isinstance(content, list):
            return content  # a string, or the type error the field reports
        if len(content) > MAX_PARTS:
            raise ValueError(f"at most {MAX_PARTS} parts")
        texts: list[str] = []
        for index, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                shown = kind if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 32 else None
                raise ValueError(f"part {index}: only text parts are supported" + (f", not {shown}" if shown else ""))
            if set(part) != {"type", "text"} or not isinstance(part["text"], str):
                raise ValueError(f'part {index}: a text part is {{"type": "text", "text": <string>}}')
            texts.append(part["text"])
        return "\n".join(texts)

    @field_validator(*ASSISTANT_EXTRAS, mode="before")
    @classmethod
    def _empty_assistant_extra(cls, value: Any, info: ValidationInfo) -> None:
        """An assistant message's null or empty extra (dropped); on any other role the field is
        unknown, as it was, and on an assistant message a value is refused by name."""
        if info.data.get("role") != "assistant":
            raise PydanticCustomError("extra_forbidden", "Extra inputs are not permitted")
        if value is None or (info.field_name in ("annotations", "tool_calls") and value == []):
            return None
        if info.field_name == "annotations" and isinstance(value, list) and len(value) <= MAX_PARTS:
            return None  # citations of the content, which is kept: nothing the model needs
        what = {
            "tool_calls": "tool calls are not supported",
            "function_call": "function calls are not supported",
            "audio": "audio is not supported",
            "refusal": "a refusal is not accepted back; send its text as content",
            "annotations": f"at most {MAX_PARTS} annotations",
        }[str(info.field_name)]
        raise unsupported(f"{what}; send null or leave it out")

    @property
    def is_system(self) -> bool:
        return self.role in ("system", "developer")


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    include_usage: bool = False
    include_obfuscation: bool | None = None  # accepted and ignored: the chunks carry no padding


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request, as much of it as the gateway honours; an unknown field is
    a 400 naming it rather than silently ignored, and a known one is accepted only with a value
    that changes nothing (n 1, logprobs false, penalties 0, ...) unless the gateway honours it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    model: str | None = Field(default=None, min_length=1, max_length=200)  # None: the group's default
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=TEMPERATURE_MAX, allow_inf_nan=False)
    top_p: float | None = Field(default=None, ge=0, le=TOP_P_MAX, allow_inf_nan=False)  # Converse's topP
    stop: list[str] | None = None  # Converse's stopSequences (one string: a list of one)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=256)  # accepted; the identity is the authorizer's
    # Accepted with the values that change nothing (INERT); any other is refused by name.
    n: int | None = None
    logprobs: bool | None = None
    frequency_penalty: float | None = Field(default=None, allow_inf_nan=False)
    presence_penalty: float | None = Field(default=None, allow_inf_nan=False)
    store: bool | None = None
    response_format: dict[str, Any] | None = None
    # Accepted and ignored: no tool is ever offered, and nothing is stored to attach metadata to.
    parallel_tool_calls: bool | None = None
    metadata: dict[str, str] | None = Field(default=None, max_length=MAX_METADATA_KEYS)
    # The gateway's extensions (the SDK's extra_body).
    output_type: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    session_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{8,128}$")

    @field_validator("messages")
    @classmethod
    def _a_conversation(cls, messages: list[ChatMessage]) -> list[ChatMessage]:
        turns = [m for m in messages if not m.is_system]
        if not turns or turns[-1].role != "user":
            raise ValueError("the last non-system message must be the user's")
        if turns[0].role != "user":
            raise ValueError("the first non-system message must be the user's")
        # A blank system or assistant message is dropped (Conversation.of); the caller's own turns need text.
        if any(not m.content.strip() for m in messages if m.role == "user"):
            raise ValueError("every user message needs some text")
        return messages

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_is_a_list_of_one(cls, stop: Any) -> Any:
        # Not a union: pydantic would name its members ("stop.str", "stop.list[str]") as fields.
        if stop is None or isinstance(stop, list):
            return stop
        if isinstance(stop, str):
            return [stop]
        raise ValueError("a string or a list of strings")

    @field_validator("stop")
    @classmethod
    def _stop_sequences(cls, sequences: list[str] | None) -> list[str] | None:
        if sequences is None:
            return None
        if len(sequences) > MAX_STOP_SEQUENCES:
            raise unsupported(f"at most {MAX_STOP_SEQUENCES} stop sequences")
        if any(not 1 <= len(sequence) <= MAX_STOP_CHARS for sequence in sequences):
            raise unsupported(f"a stop sequence has 1 to {MAX_STOP_CHARS} characters")
        return sequences or None

    @field_validator("stream_options")
    @classmethod
    def _only_streamed(cls, options: StreamOptions | None, info: ValidationInfo) -> StreamOptions | None:
        if options is not None and not info.data.get("stream"):
            raise unsupported("only allowed when stream is true")
        return options

    @field_validator(*INERT)
    @classmethod
    def _changes_nothing(cls, value: Any, info: ValidationInfo) -> Any:
        allowed, refusal = INERT[str(info.field_name)]
        if value not in allowed:
            raise unsupported(refusal)
        return value

    @field_validator("metadata")
    @classmethod
    def _bounded_metadata(cls, metadata: dict[str, str] | None) -> dict[str, str] | None:
        if metadata and any(len(key) > 64 or len(value) > 512 for key, value in metadata.items()):
            raise unsupported("keys of at most 64 characters, values of at most 512")
        return metadata

    def requested_max_tokens(self) -> tuple[str, int] | None:
        """The field that set the completion's token limit, and the limit (None: the output type's)."""
        if self.max_completion_tokens is not None:
            return "max_completion_tokens", self.max_completion_tokens
        if self.max_tokens is not None:
            return "max_tokens", self.max_tokens
        return None

    def stop_sequences(self) -> tuple[str, ...]:
        """``stop`` as Converse's stopSequences (validated into a list of 1 to 4)."""
        return tuple(self.stop or ())


@dataclass(frozen=True)
class Conversation:
    """A validated request's text: the system texts and the turns, in the order the guardrail sees them."""

    system: list[str] = field(default_factory=list)
    turns: list[tuple[str, str]] = field(default_factory=list)  # (role, text)

    @classmethod
    def of(cls, request: ChatCompletionRequest) -> Conversation:
        conversation = cls()
        for message in request.messages:
            if not message.content.strip():
                continue  # a blank system or assistant message (a user's is refused): nothing to send
            if message.is_system:
                conversation.system.append(message.content)
            else:
                conversation.turns.append(("user" if message.role == "user" else "assistant", message.content))
        return conversation

    def texts(self) -> list[str]:
        return [text for _, text in self.roles_and_texts()]

    def roles_and_texts(self) -> list[tuple[str, str]]:
        """``texts()`` with each text's role (system, user or assistant)."""
        return [*(("system", text) for text in self.system), *self.turns]

    def converse_messages(self, screened: tuple[str, ...]) -> tuple[str | None, list[dict[str, Any]]]:
        """The screened texts (in ``texts()`` order) as a system prompt addition and Converse messages;
        consecutive turns of one role are joined into one message (Converse wants them alternating)."""
        system = list(screened[: len(self.system)])
        messages: list[dict[str, Any]] = []
        for (role, _), text in zip(self.turns, screened[len(self.system) :], strict=True):
            if messages and messages[-1]["role"] == role:
                messages[-1]["content"][0]["text"] += "\n\n" + text
            else:
                messages.append({"role": role, "content": [{"text": text}]})
        return ("\n\n".join(system) or None), messages


# --- responses ---------------------------------------------------------------------------------


FinishReason = Literal["stop", "length", "content_filter"]


def finish_reason(stop_reason: str | None, blocked: bool) -> FinishReason:
    """OpenAI's finish_reason for Converse's stopReason (or the output guardrail's block)."""
    if blocked or stop_reason in ("guardrail_intervened", "content_filtered"):
        return "content_filter"
    if stop_reason in LENGTH_STOP_REASONS:
        return "length"
    return "stop"


def chat_completion(
    *,
    request_id: str,
    created: int,
    model: str,
    content: str,
    finish: str,
    prompt_tokens: int,
    completion_tokens: int,
    gateway: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "gateway": gateway,
    }


def model_object(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": OWNED_BY}


def model_list(models: tuple[str, ...]) -> dict[str, Any]:
    return {"object": "list", "data": [model_object(model) for model in models]}


def retrieved_model(segment: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    """GET /v1/models/{model}: the model object as the list has it, when ``segment`` (the path's,
    percent-decoded once here: the SDK encodes ":" and "/") is one of ``allowed``; else OpenAI's 404
    (an id that is not an id is not echoed)."""
    model = unquote(segment)
    if not MODEL_ID.fullmatch(model):
        raise OpenAIError(
            404,
            INVALID_REQUEST,
            "The model does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )
    if model not in allowed:
        raise model_not_found(model)
    return model_object(model)
