"""AWS calls the gateway makes, with failures reduced to a service name and an error code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

THROTTLING = frozenset({"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"})


class UpstreamError(Exception):
    """An AWS call failed; ``throttled`` says whether retrying later can help."""

    def __init__(self, service: str, code: str, status: int = 0) -> None:
        super().__init__(f"{service} failed with {code}")
        self.service = service
        self.code = code
        self.status = status
        self.throttled = code in THROTTLING

    @property
    def retryable(self) -> bool:
        """Worth trying another model: throttled, or the service failed (5xx)."""
        return self.throttled or self.status >= 500 or self.code in RETRYABLE_CODES


RETRYABLE_CODES = frozenset(
    {"ServiceUnavailableException", "InternalServerException", "ModelNotReadyException", "ModelTimeoutException"}
)


@contextmanager
def call(service: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        raise UpstreamError(service, error.response.get("Error", {}).get("Code", "Unknown"), status) from None
    except BotoCoreError as error:  # timeouts and connection failures: the service did not answer
        raise UpstreamError(service, type(error).__name__, 503) from None
