"""What a gateway request carries, read as untrusted: headers, body, identity, keys.

API Gateway builds the event, but a client chose most of what is in it: repeated headers, header
names in any case, bodies of any shape, keys of any length. Each reader here takes what it needs
and refuses the rest with a GatewayError (status, code, a message safe to show the caller); the
OpenAI route's readers refuse in OpenAI's shape (openai_api.OpenAIError) instead.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel, ValidationError

from ai_gateway import openai_api
from ai_gateway.contract import AUTHORIZATION_HEADER, EVALUATION_CASE_HEADER, IDEMPOTENCY_KEY_HEADER, prompt_digest
from ai_gateway.models import GroupPolicy
from ai_gateway.openai_api import ChatCompletionRequest
from shared.bearer import InvalidToken, bearer  # not shared.tokens: PyJWT and cryptography stay unloaded
from shared.bodies import BodyError, json_bytes, problems
from shared.claims import CONTEXT_GROUP, CONTEXT_USER

# Matched whole (fullmatch): with re.match, "$" would also accept a trailing newline.
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
OUTPUT_TYPE = re.compile(r"[a-z][a-z0-9_]{0,31}")
EVALUATION_CASE = re.compile(r"[a-z0-9-]{1,64}")
NOT_ALONE = (
    "the golden case's prompt must be the request's only text "
    "(one user message; no system text, instructions, earlier turns or session)"
)
SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{8,128}")
Body = TypeVar("Body", bound=BaseModel)


class GatewayError(Exception):
    """A refusal with its HTTP status, error code and a message safe to show the caller."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass(frozen=True)
class Incoming:
    """One request's event (Powertools' view of it, and the raw event where that view folds)."""

    event: APIGatewayProxyEvent

    def identity(self) -> tuple[str, str]:
        """The caller's user and group as the authorizer put them in the request's context."""
        claims = self.context().get("authorizer")
        if not isinstance(claims, dict):  # API Gateway always sends one; a misrouted event may not
            claims = {}
        user, group = str(claims.get(CONTEXT_USER) or ""), str(claims.get(CONTEXT_GROUP) or "")
        if not user or not group or not (user + group).isprintable():  # the authorizer's are
            raise GatewayError(403, "forbidden", "the caller has no gateway group")
        return user, group

    def body(self, model: type[Body]) -> Body:
        """The request's body as ``model``. pydantic's own JSON parser reads it: nesting, numbers
        and NaN beyond what a field takes are a 422 naming the problem, never a RecursionError."""
        try:
            return model.model_validate_json(json_bytes(self.event.body, self.event.is_base64_encoded))
        except BodyError as error:
            raise GatewayError(400, "invalid_request", str(error)) from None
        except ValidationError as error:
            raise GatewayError(422, "invalid_request", problems(error)) from None

    def completion_body(self) -> ChatCompletionRequest:
        """The chat completion's body (the same reader as ``body``, refusals in OpenAI's shape)."""
        try:
            return ChatCompletionRequest.model_validate_json(json_bytes(self.event.body, self.event.is_base64_encoded))
        except BodyError as error:
            raise openai_api.invalid(str(error), code="invalid_body") from None
        except ValidationError as error:
            raise openai_api.from_validation(error) from None

    def extension(self, value: str | None, header: str, pattern: re.Pattern[str], name: str) -> str | None:
        """A gateway field of a chat completion: from the body (the SDK's extra_body), else its header."""
        if value is not None:
            return value
        sent = self.header(header)
        if sent is None:
            return None
        if not pattern.fullmatch(sent):
            raise openai_api.invalid(f"{header}: not a valid {name}", param=name)
        return sent

    def header_lines(self, header: str) -> list[str]:
        """Every value the request sent for ``header`` (any case), in order: API Gateway's
        ``headers`` keeps only the last of a repeated header, ``multiValueHeaders`` all of them.
        Read from the raw event: Powertools' view of it folds names that differ in case into one,
        keeping the last."""
        sent = self.event.raw_event.get("multiValueHeaders")
        lines = [
            value
            for name, values in (sent.items() if isinstance(sent, dict) else ())
            if isinstance(name, str) and name.lower() == header.lower() and isinstance(values, list)
            for value in values
            if isinstance(value, str)
        ]
        last = self.event.headers.get(header)  # Powertools' headers are case-insensitive
        return lines or ([last] if last is not None else [])

    def header(self, header: str) -> str | None:
        """A header that names one thing (a key, a type, a session): sent twice with different
        values it is ambiguous, and refused rather than read as whichever came last."""
        lines = self.header_lines(header)
        if len(set(lines)) > 1:
            raise GatewayError(422, "invalid_request", f"{header}: sent more than once with different values")
        return lines[0] if lines else None

    def context(self) -> dict[str, Any]:
        """The event's requestContext (API Gateway always sends one; a misrouted event may not)."""
        context = self.event.raw_event.get("requestContext")
        return context if isinstance(context, dict) else {}

    def request_id(self) -> str:
        """The Idempotency-Key the caller sent, else API Gateway's request id."""
        key = self.header(IDEMPOTENCY_KEY_HEADER)
        if key is None:
            request_id = self.context().get("requestId")
            if not isinstance(request_id, str) or not request_id or not request_id.isprintable():  # never API Gateway's
                raise GatewayError(400, "invalid_request", "requestContext.requestId is missing or not text")
            return request_id
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise GatewayError(422, "invalid_request", f"{IDEMPOTENCY_KEY_HEADER}: 8 to 128 of A-Z a-z 0-9 _ . : -")
        return key

    def caller_token(self) -> str | None:
        """The caller's own access token (the authorizer has verified it), for an agent runtime.
        Two different Authorization headers are refused: the authorizer saw one of them, and the
        agent must act with that one, not whichever API Gateway's ``headers`` kept."""
        try:
            return bearer(self.header(AUTHORIZATION_HEADER))
        except InvalidToken:
            return None  # refused (401) only if an agent is asked to act with it

    def evaluation_case(self, group: GroupPolicy, prompts: Mapping[str, str], asked: str | None) -> str | None:
        """The golden case an internal caller's request replays, if any: named by the header, and
        ``asked`` (the request's one prompt; None when it carries more text than one user prompt)
        that case's prompt (``prompts``: the policy's digests), so the tool arguments logged for it
        are a golden prompt's, never a caller's."""
        case = self.header(EVALUATION_CASE_HEADER)
        if not case or group.kind != "internal":
            return None
        if not EVALUATION_CASE.fullmatch(case):
            raise GatewayError(422, "invalid_request", f"{EVALUATION_CASE_HEADER}: 1 to 64 of a-z 0-9 -")
        if asked is None:
            raise GatewayError(422, "invalid_request", f"{EVALUATION_CASE_HEADER}: {NOT_ALONE}")
        if prompts.get(case) != prompt_digest(asked):
            raise GatewayError(
                422, "invalid_request", f"{EVALUATION_CASE_HEADER}: the request does not ask a golden case's prompt"
            )
        return case
