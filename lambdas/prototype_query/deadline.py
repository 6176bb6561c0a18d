"""Every AWS call of a request ends by the request's deadline, whichever path answers it.

A request may make two calls in a row (Kendra Retrieve, then Converse), each of up to two attempts,
so a read timeout sized for one call does not bound a request. botocore's timeouts are per attempt
and per socket read; it reads an override of the read timeout from the request's context
(botocore 1.44, boto/botocore#3770). So a hook on each client (``bound``), run before each attempt
is sent, starts that attempt only while a connect and MIN_READ_SECONDS of reading fit before the
deadline of the ``within`` block it is made in, and gives it a read timeout of at most what is left
after the connect. An attempt that no longer fits is not sent: the call fails as its service's
DeadlineExceeded (a 502), inside the function's timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from shared.aws_errors import Kind, UpstreamError

CONNECT_SECONDS = 2  # every client's connect timeout
MIN_READ_SECONDS = 1.0  # an attempt with less time than this to read is not worth sending
# Kept back from the function's remaining time: the answer, its log line and metrics after the calls.
MARGIN_SECONDS = 2.0
DEADLINE_EXCEEDED = "DeadlineExceeded"


@dataclass(frozen=True)
class Deadline:
    """The time (on ``clock``'s scale) by which a request's AWS calls end."""

    at: float
    clock: Callable[[], float] = field(default=time.monotonic)

    @classmethod
    def of_invocation(cls, remaining_ms: int, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """The deadline of an invocation with ``remaining_ms`` left (the Lambda context's), less MARGIN_SECONDS."""
        return cls(clock() + remaining_ms / 1000 - MARGIN_SECONDS, clock)

    def left(self) -> float:
        return self.at - self.clock()


_current: ContextVar[Deadline | None] = ContextVar("prototype_query_deadline", default=None)


@contextmanager
def within(deadline: Deadline) -> Iterator[None]:
    """The AWS calls made in the block (by ``bound`` clients) end by ``deadline``."""
    token = _current.set(deadline)
    try:
        yield
    finally:
        _current.reset(token)


def bound(client: Any) -> Any:
    """``client``, each attempt of its calls held to the deadline of the ``within`` block it is
    made in (outside one, as its config says)."""
    hook = partial(_bound_attempt, client.meta.service_model.service_name, client.meta.config.read_timeout)
    client.meta.events.register("before-send", hook)
    return client


def _bound_attempt(service: str, read_timeout: float, request: Any, **_: Any) -> None:
    """before-send: the attempt's read timeout, what is left after its connect (at most the
    client's own); an attempt that does not fit is not sent."""
    deadline = _current.get()
    if deadline is None:
        return
    left = deadline.left() - CONNECT_SECONDS
    if left < MIN_READ_SECONDS:
        raise UpstreamError(service, DEADLINE_EXCEEDED, 504, Kind.UNAVAILABLE)
    request.context["read_timeout"] = min(read_timeout, left)
