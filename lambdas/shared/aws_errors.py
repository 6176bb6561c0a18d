"""What a failed AWS call means, decided once for every function that calls a model.

A failure is one of four kinds, from the error code first and the HTTP status AWS answered with
second (``ResponseMetadata.HTTPStatusCode``):

- **throttled**: retry later, or ask another model; the caller gets a 429 with Retry-After.
- **unavailable**: the service failed (a 5xx, an unavailable or unready model, a timeout, no
  connection); another model may answer; the caller gets a 502 when none does.
- **rejected**: the request itself was refused (validation, access, a missing resource, any
  other 4xx); no model or retry can help. The caller gets that 4xx only from a service that
  acted on the caller's own request (the model, the agent: ``caller_facing``); a rejection by
  the platform's own services (its ledger, its guardrail, its parameters) is the platform's
  fault, and the caller gets a 502. A function may also refuse to pass on a caller-facing
  rejection of the platform's set-up rather than of the request (``as_platforms``,
  PLATFORM_REJECTIONS: a model the account may not use or the region lacks, the model's own
  failure): the AI gateway and the prototype query do.
- **failed**: the SDK gave up before AWS answered for a reason retrying cannot fix (bad
  parameters, no credentials); the caller gets a 502.

Only the service name and the error code are kept: AWS's error message can quote the request.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum
from typing import Any

from botocore.eventstream import ParserError
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as TransportError, HTTPClientError
from urllib3.exceptions import HTTPError, ReadTimeoutError

# Codes that mean "too many requests, now": Bedrock's and the SDK-wide ones botocore also retries.
THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceQuotaExceededException",
        "Throttling",
        "ThrottledException",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "SlowDown",
    }
)
# Codes that mean the service (or the model behind it) failed, whatever status came with them:
# Bedrock answers ModelNotReady with a 429, ModelTimeout with a 408 and ModelError (the model
# failed while processing the request, often once) with a 424.
SERVER_ERROR_CODES = frozenset(
    {
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelNotReadyException",
        "ModelTimeoutException",
        "ModelErrorException",
    }
)
RETRY_AFTER_SECONDS = 5
# A caller-facing service's rejections that are the platform's, whatever request was sent
# (UpstreamError.as_platforms): the service, then the codes, and the statuses its rejections of
# a request come with. Bedrock's
# runtime refuses the caller's conversation with a 400 (ValidationException: too long, malformed);
# access not granted to the model or the role (AccessDeniedException, 403), a model the region
# does not serve (ResourceNotFoundException, 404) and the platform's credentials are the
# operator's to fix: the caller gets a 502.
PLATFORM_CODES = frozenset(
    {
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "IncompleteSignature",
        "MissingAuthenticationTokenException",
    }
)
# The sandbox's prototype query passes the caller's question to Bedrock's RetrieveAndGenerate
# and to Kendra: each refuses a question with a 400 (ValidationException); access to the model,
# the knowledge base or the index, and a knowledge base or index that does not exist, are the
# platform's set-up.
PLATFORM_REJECTIONS: dict[str, tuple[frozenset[str], frozenset[int]]] = {
    "bedrock-runtime": (PLATFORM_CODES, frozenset({400})),
    "bedrock-agent-runtime": (PLATFORM_CODES, frozenset({400})),
    "kendra": (PLATFORM_CODES, frozenset({400})),
}
# Why DynamoDB cancels a transaction, when the reason is not the request's own condition: worth a
# retry, not a 4xx (DynamoDB answers every cancellation with a 400).
TRANSIENT_CANCELLATIONS = {
    "ThrottlingError": "throttled",
    "ProvisionedThroughputExceeded": "throttled",
    "RequestLimitExceeded": "throttled",
    "TransactionConflict": "unavailable",
}


class Kind(StrEnum):
    THROTTLED = "throttled"
    UNAVAILABLE = "unavailable"
    REJECTED = "rejected"
    FAILED = "failed"


def classify(code: str, status: int) -> Kind:
    """The kind of a failure with this error code and upstream HTTP status (0: none)."""
    if code in THROTTLING_CODES:
        return Kind.THROTTLED
    if code in SERVER_ERROR_CODES:
        return Kind.UNAVAILABLE
    if status == 429:
        return Kind.THROTTLED
    if status >= 500:
        return Kind.UNAVAILABLE
    if status >= 400:
        return Kind.REJECTED
    return Kind.FAILED


class UpstreamError(Exception):
    """An upstream call failed: the service, its error code, its HTTP status and what that means."""

    def __init__(
        self, service: str, code: str, status: int = 0, kind: Kind | None = None, *, caller_facing: bool = False
    ) -> None:
        super().__init__(f"{service} failed with {code}")
        self.service = service
        self.code = code
        self.status = status
        self.kind = kind or classify(code, status)
        self.caller_facing = caller_facing

    @property
    def throttled(self) -> bool:
        return self.kind is Kind.THROTTLED

    @property
    def retryable(self) -> bool:
        """Worth asking another model (or the same one later): throttled or unavailable."""
        return self.kind in (Kind.THROTTLED, Kind.UNAVAILABLE)

    @property
    def http_status(self) -> int:
        """The status a caller gets: 429 throttled, a caller-facing upstream's 4xx when it rejected
        the request, else 502."""
        if self.kind is Kind.THROTTLED:
            return 429
        if self.passed_on:
            return self.status if 400 <= self.status < 500 else 400
        return 502

    @property
    def passed_on(self) -> bool:
        """A rejection the caller sees as such: the caller's own request was refused."""
        return self.kind is Kind.REJECTED and self.caller_facing

    @property
    def platform_fault(self) -> bool:
        """A rejection that is the platform's whatever the request (PLATFORM_REJECTIONS): by its
        code, or a status the service does not refuse a request with."""
        rule = PLATFORM_REJECTIONS.get(self.service)
        return self.kind is Kind.REJECTED and rule is not None and (self.code in rule[0] or self.status not in rule[1])

    def as_platforms(self) -> UpstreamError:
        """This failure, answered as the platform's (a 502) when it is a caller-facing rejection of
        the platform's set-up (``platform_fault``); any other as it is."""
        if not (self.passed_on and self.platform_fault):
            return self
        return UpstreamError(self.service, self.code, self.status, self.kind)

    @property
    def error_code(self) -> str:
        """The ``error`` of a JSON error answer."""
        if self.kind is Kind.THROTTLED:
            return "throttled"
        return "upstream_rejected" if self.passed_on else "upstream_error"

    @property
    def public_message(self) -> str:
        """The ``message`` of a JSON error answer: the service and the code, nothing of the request."""
        if self.kind is Kind.THROTTLED:
            return f"{self.service} is throttling requests; retry later"
        if self.passed_on:
            return f"{self.service} rejected the request with {self.code}"
        return f"{self.service} failed with {self.code}"

    @classmethod
    def from_exception(
        cls, service: str, error: ClientError | BotoCoreError, *, caller_facing: bool = False
    ) -> UpstreamError:
        if isinstance(error, ClientError):
            # Only what looks like an AWS error code: it is logged, and answered in messages.
            code = failure_code(error) if error.response.get("Error", {}).get("Code") else "Unknown"
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            return cls(service, code, status, _cancellation(error.response), caller_facing=caller_facing)
        if isinstance(error, TransportError | HTTPClientError):  # timeouts, no connection: no answer
            return cls(service, type(error).__name__, 503, Kind.UNAVAILABLE)
        return cls(service, type(error).__name__, 0, Kind.FAILED)


def _cancellation(response: Mapping[str, Any]) -> Kind | None:
    """A cancelled transaction's kind when one of its reasons is transient (None: classify the code)."""
    reasons = {str(r.get("Code")) for r in response.get("CancellationReasons") or () if isinstance(r, Mapping)}
    kinds = {Kind(TRANSIENT_CANCELLATIONS[r]) for r in reasons if r in TRANSIENT_CANCELLATIONS}
    if Kind.THROTTLED in kinds:
        return Kind.THROTTLED
    return Kind.UNAVAILABLE if kinds else None


@contextmanager
def call(service: str, *, caller_facing: bool = False) -> Iterator[None]:
    """Turn a botocore failure inside the block into an UpstreamError of ``service``;
    ``caller_facing``: the service acts on the caller's own request (its rejections are theirs)."""
    try:
        yield
    except (ClientError, BotoCoreError) as error:
        raise UpstreamError.from_exception(service, error, caller_facing=caller_facing) from None
    # botocore wraps what fails while a call is made, not what fails while an event stream's events
    # are read from urllib3's response (ConverseStream): an upstream silent past the read timeout,
    # a connection broken mid-stream, a corrupt frame. They are the upstream's failures too.
    except ReadTimeoutError:
        raise UpstreamError(service, "ReadTimeoutError", 503, Kind.UNAVAILABLE) from None
    except HTTPError:  # ProtocolError (the connection broke) and urllib3's other failures
        raise UpstreamError(service, "ConnectionClosedError", 503, Kind.UNAVAILABLE) from None
    except ParserError:  # no BotoCoreError
        raise invalid_response(service) from None
    # botocore reads an answer with int(), float(), its timestamp parser and dict methods, whose
    # errors are not botocore's (a score of "high", a count of 400 digits, a date that is not one,
    # a string where an object belongs: AttributeError): what botocore's parser raised is the
    # upstream's failure. The same errors raised anywhere else in the block are a bug of the
    # caller's, and stay one.
    except Exception as error:
        if not raised_parsing(error):
            raise
        raise invalid_response(service) from None


def raised_parsing(error: BaseException) -> bool:
    """Whether ``error`` was raised while botocore parsed an answer: a frame of its parsers is on
    the way from the call to the raise (the timestamp parser's, in botocore.utils, is under one)."""
    frame = error.__traceback__
    while frame is not None:
        if frame.tb_frame.f_globals.get("__name__") == "botocore.parsers":
            return True
        frame = frame.tb_next
    return False


# An answer that is not what the upstream promised (a count that is not a count, no text, a
# document of the wrong shape) is the upstream's failure: the caller gets a 502, never a 500.
INVALID_RESPONSE = "InvalidResponse"
# More tokens or iterations than any one request could take: not a count to meter or to chart.
MAX_REPORTED_COUNT = 100_000_000


# What an AWS error code looks like (ThrottlingException, NoSuchKey, AWS.SimpleQueueService.Foo).
_ERROR_CODE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def failure_code(error: BaseException) -> str:
    """A failed call as a log line may name it: the AWS error code of a ClientError (when it looks
    like one), else the exception's class; never its text, which can quote a key, a URL or a value."""
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code")
        return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else "ClientError"
    return type(error).__name__


def invalid_response(service: str) -> UpstreamError:
    return UpstreamError(service, INVALID_RESPONSE, kind=Kind.FAILED)


def reported_count(service: str, value: object) -> int:
    """A count an upstream reported (tokens, iterations): an int from 0 to MAX_REPORTED_COUNT;
    anything else (negative, huge, a float, NaN, a string, a bool) is ``service``'s failure."""
    if type(value) is not int or not 0 <= value <= MAX_REPORTED_COUNT:
        raise invalid_response(service)
    return value
