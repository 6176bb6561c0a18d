"""The prototype query function's deadline: every AWS call of a request, on both paths, ends before
the function's timeout, and a call that no longer fits is not made.

Real HTTP on the loopback interface (botocore's Stubber answers before the hook that holds each
attempt to the deadline runs), and a test clock that the fake services move forward by the time
each answer "takes": the outcome does not depend on how fast the machine is.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from prototype_query import handler
from prototype_query.deadline import CONNECT_SECONDS, MARGIN_SECONDS
from tests.lambdas.conftest import FakeContext, HttpResult, function_url_event, http_result
from tests.lambdas.loopback import QuietHandler, loopback

FUNCTION_TIMEOUT = 60  # the tier's default
READ_TIMEOUT = 27  # what the construct writes for it: (60 - 5) // 2
START = 1000.0
DEADLINE = START + FUNCTION_TIMEOUT - MARGIN_SECONDS


class Clock:
    """The handler's clock, moved only by the fake services."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class Context(FakeContext):
    """An invocation of a function of ``timeout`` seconds, its remaining time on ``clock``."""

    def __init__(self, clock: Callable[[], float], timeout: float) -> None:
        super().__init__()
        self._clock, self._end = clock, clock() + timeout

    def get_remaining_time_in_millis(self) -> int:  # type: ignore[override]
        return int((self._end - self._clock()) * 1000)


@dataclass
class Reply:
    seconds: float  # how far answering moves the clock
    body: dict[str, Any]
    error: str | None = None  # the error type of a 500 answered instead of the body


PASSAGES = Reply(
    0, {"QueryId": "q", "ResultItems": [{"Id": "1", "Content": "Refunds take 5 days.", "DocumentTitle": "t"}]}
)
CONVERSED = Reply(
    0,
    {
        "output": {"message": {"role": "assistant", "content": [{"text": "Five days [1]."}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
        "metrics": {"latencyMs": 1},
    },
)
GENERATED = Reply(0, {"sessionId": "s", "output": {"text": "Five days."}, "citations": []})


@dataclass
class FakeAws:
    """Kendra, Bedrock's runtime and its agent runtime on one endpoint: each operation's replies in
    order. ``sent``: each attempt the function's clients sent (its operation, the clock then, its
    read timeout); ``served``: the operations that reached the endpoint."""

    clock: Clock
    replies: dict[str, list[Reply]]
    sent: list[tuple[str, float, float | None]] = field(default_factory=list)
    served: list[str] = field(default_factory=list)

    def sending(self, request: Any, event_name: str, **_: Any) -> None:
        """before-send, after the function's own hook: what it let through, with what read timeout."""
        self.sent.append((event_name.rsplit(".", 1)[-1], self.clock(), request.context.get("read_timeout")))


def _operation(path: str, target: str) -> str:
    if target.endswith(".Retrieve"):
        return "Retrieve"
    return "Converse" if path.endswith("/converse") else "RetrieveAndGenerate"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(handler, "clock", clock)
    return clock


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, clock: Clock) -> Iterator[Callable[..., FakeAws]]:
    """The function's own clients (handler.clients) against a FakeAws on the loopback interface."""
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("Be brief.")
    environment = {
        "KNOWLEDGE_BASE_ID": "KB12345678",
        "GENERATION_MODEL_ARN": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
        "KENDRA_INDEX_ID": "0123abcd-0123-0123-0123-0123456789ab",
        "UPSTREAM_TIMEOUT_SECONDS": str(READ_TIMEOUT),
        "SYSTEM_PROMPT_FILE": str(prompt),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with ExitStack() as servers:

        def start(hang: threading.Event | None = None, **replies: list[Reply]) -> FakeAws:
            """``hang``: every request waits for it, unanswered (in real time, not the clock's)."""
            fake = FakeAws(clock, {name: list(r) for name, r in replies.items()})

            class Handler(QuietHandler):
                def do_POST(self) -> None:
                    self.rfile.read(int(self.headers.get("content-length", 0)))
                    name = _operation(self.path, self.headers.get("x-amz-target", ""))
                    fake.served.append(name)
                    if hang is not None:
                        hang.wait(60)
                        return
                    reply = fake.replies[name].pop(0)
                    clock.now += reply.seconds
                    body = json.dumps(reply.body if reply.error is None else {"message": "failed"}).encode()
                    self.send_response(200 if reply.error is None else 500)
                    self.send_header("content-type", "application/json")
                    if reply.error is not None:
                        self.send_header("x-amzn-ErrorType", reply.error)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            monkeypatch.setenv("AWS_ENDPOINT_URL", servers.enter_context(loopback(Handler)))
            handler.clients.cache_clear()
            for client in vars(handler.clients()).values():
                client.meta.events.register("before-send", fake.sending)
            return fake

        handler.settings.cache_clear()
        handler.prompt.cache_clear()
        yield start
        handler.clients.cache_clear()
        handler.settings.cache_clear()
        handler.prompt.cache_clear()


def ask(source: str, context: FakeContext) -> HttpResult:
    body = json.dumps({"question": "How long do refunds take?", "source": source})
    return http_result(handler.lambda_handler(function_url_event(body), context))


def deadline_exceeded(service: str) -> dict[str, str]:
    return {"error": "upstream_error", "message": f"{service} failed with DeadlineExceeded"}


# --- the Kendra path: two calls in a row -----------------------------------------------------


def test_a_kendra_retrieve_that_takes_most_of_the_time_leaves_converse_unsent(
    serve: Callable[..., FakeAws], clock: Clock
) -> None:
    # Retrieve answers 56.5 s in: 1.5 s are left before the deadline, less than a connect and a read.
    fake = serve(Retrieve=[Reply(56.5, PASSAGES.body)], Converse=[CONVERSED])
    result = ask("kendra", Context(clock, FUNCTION_TIMEOUT))
    assert (result.status, result.body) == (502, deadline_exceeded("bedrock-runtime"))
    assert fake.served == ["Retrieve"]  # Converse was never sent
    assert clock() <= DEADLINE < START + FUNCTION_TIMEOUT


def test_a_slow_retrieve_retried_leaves_converse_unsent_and_ends_in_a_json_error_within_the_budget(
    serve: Callable[..., FakeAws], clock: Clock
) -> None:
    # Retrieve's first attempt fails after a whole attempt's time (connect and read), the second
    # answers just inside one: 2.5 s are left, too few for Converse (which was sent before with
    # 27 s more to read: up to 108 s of a 60 s function in all).
    fake = serve(
        Retrieve=[
            Reply(CONNECT_SECONDS + READ_TIMEOUT, {}, error="InternalServerException"),
            Reply(READ_TIMEOUT - 0.5, PASSAGES.body),
        ],
        Converse=[CONVERSED],
    )
    result = ask("kendra", Context(clock, FUNCTION_TIMEOUT))
    assert (result.status, result.body) == (502, deadline_exceeded("bedrock-runtime"))
    assert fake.served == ["Retrieve", "Retrieve"]
    assert clock() <= DEADLINE


def test_each_attempts_read_timeout_is_at_most_what_is_left_of_the_deadline(
    serve: Callable[..., FakeAws], clock: Clock
) -> None:
    fake = serve(
        Retrieve=[Reply(20, {}, error="InternalServerException"), Reply(20, PASSAGES.body)],
        Converse=[Reply(5, CONVERSED.body)],
    )
    result = ask("kendra", Context(clock, FUNCTION_TIMEOUT))
    assert result.status == 200
    # At most the configured read timeout; Converse, 40 s in, at most what is left after its connect.
    assert fake.sent == [
        ("Retrieve", START, READ_TIMEOUT),
        ("Retrieve", START + 20, READ_TIMEOUT),
        ("Converse", START + 40, DEADLINE - (START + 40) - CONNECT_SECONDS),
    ]
    for _, at, read_timeout in fake.sent:
        assert read_timeout is not None
        assert at + CONNECT_SECONDS + read_timeout <= DEADLINE


# --- the knowledge base path -----------------------------------------------------------------


def test_a_knowledge_base_retry_that_cannot_fit_is_not_sent(serve: Callable[..., FakeAws], clock: Clock) -> None:
    # The first attempt fails 56 s in: 2 s are left, for a connect and no read.
    fake = serve(RetrieveAndGenerate=[Reply(56, {}, error="InternalServerException"), GENERATED])
    result = ask("knowledge_base", Context(clock, FUNCTION_TIMEOUT))
    assert (result.status, result.body) == (502, deadline_exceeded("bedrock-agent-runtime"))
    assert fake.served == ["RetrieveAndGenerate"]
    assert clock() <= DEADLINE


def test_no_call_is_made_when_the_invocation_has_no_time_for_one(serve: Callable[..., FakeAws], clock: Clock) -> None:
    fake = serve(RetrieveAndGenerate=[GENERATED], Retrieve=[PASSAGES])
    for source, service in (("knowledge_base", "bedrock-agent-runtime"), ("kendra", "kendra")):
        # 4.5 s left: less than the margin, a connect and a read.
        result = ask(source, Context(clock, MARGIN_SECONDS + CONNECT_SECONDS + 0.5))
        assert (result.status, result.body) == (502, deadline_exceeded(service))
    assert (fake.served, fake.sent) == ([], [])


def test_a_silent_upstream_is_given_up_on_by_the_deadline_not_the_read_timeout(
    serve: Callable[..., FakeAws], monkeypatch: pytest.MonkeyPatch
) -> None:
    """In real time: the read timeout the hook sets is the one the socket waits (botocore's request
    context reaches urllib3), not the client's 27 s."""
    monkeypatch.setattr(handler, "clock", time.monotonic)
    hang = threading.Event()
    try:
        fake = serve(hang=hang)
        started = time.monotonic()
        # 1.5 s to read for, then no time for a second attempt.
        result = ask("knowledge_base", Context(time.monotonic, MARGIN_SECONDS + CONNECT_SECONDS + 1.5))
        elapsed = time.monotonic() - started
    finally:
        hang.set()
    assert result.status == 502
    assert result.body["message"].startswith("bedrock-agent-runtime failed with ")
    assert fake.served == ["RetrieveAndGenerate"]
    assert elapsed < READ_TIMEOUT / 2  # about 1.5 s (and a backoff of at most 1 s), on any machine
