"""The streaming Runtime API loop (ai_gateway.stream_runtime) against a fake Runtime API: a real
HTTP server on 127.0.0.1 that hands out invocations and records each request's raw chunks."""

from __future__ import annotations

import base64
import http.client
import json
import os
import queue
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ai_gateway import stream_runtime
from ai_gateway.stream_runtime import (
    CONTENT_TYPE,
    DELIMITER,
    INITIALIZATION_TYPE,
    SNAP_START,
    Context,
    StreamedResponse,
    serve,
)
from shared import snapstart

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = ROOT / "lambdas" / "ai_gateway" / "stream_bootstrap"
WAIT = 10  # seconds: a bound on a handshake that fails, never a pause


@dataclass
class Recorded:
    """One request the runtime made: its line, headers, body chunks (chunked) or body, trailers."""

    method: str
    path: str
    headers: dict[str, str]
    chunks: list[bytes] = field(default_factory=list)
    body: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)


@dataclass
class Invocation:
    event: Any
    request_id: str = "req-1"
    deadline_ms: int = 1_800_000_030_000
    trace: str | None = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"


class RuntimeApiHandler(BaseHTTPRequestHandler):
    """The fake Runtime API's side of one connection (its state: the server's ``fake``)."""

    protocol_version = "HTTP/1.1"

    @property
    def fake(self) -> FakeRuntimeApi:
        fake: FakeRuntimeApi = self.server.fake  # type: ignore[attr-defined]
        return fake

    def log_message(self, *_: Any) -> None: ...

    def do_GET(self) -> None:
        self.fake.log.append(f"GET {self.path}")
        if self.path.endswith("/runtime/restore/next"):  # answered at once: the snapshot "restored"
            self.fake.requests.append(Recorded("GET", self.path, dict(self.headers.items())))
            self._answer(self.fake.restore_status, b"")
            return
        if not self.fake.pending:
            self._answer(500, b"{}")
            return
        invocation = self.fake.pending.pop(0)
        body = json.dumps(invocation.event).encode()
        self.send_response(200)
        named = str.lower if self.fake.lower_case_headers else str
        self.send_header(named("Lambda-Runtime-Aws-Request-Id"), invocation.request_id)
        self.send_header(named("Lambda-Runtime-Deadline-Ms"), str(invocation.deadline_ms))
        self.send_header(named("Lambda-Runtime-Invoked-Function-Arn"), "arn:aws:lambda:eu-west-1:1:function:gw")
        if invocation.trace:
            self.send_header(named("Lambda-Runtime-Trace-Id"), invocation.trace)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        record = Recorded("POST", self.path, dict(self.headers.items()))
        self.fake.log.append(f"POST {self.path}")
        self.fake.requests.append(record)
        if self.headers.get("Transfer-Encoding") == "chunked":
            self._read_chunks(record)
        else:
            record.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        status = self.fake.post_statuses.pop(0) if self.fake.post_statuses else 202
        self._answer(status, b'{"status":"OK"}' if status == 202 else b'{"errorType":"Refused"}')

    def _read_chunks(self, record: Recorded) -> None:
        while size := int(self.rfile.readline().strip(), 16):
            data = self.rfile.read(size)
            assert self.rfile.read(2) == b"\r\n"
            record.chunks.append(data)
            self.fake.received.put(data)
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            record.trailers[name.strip()] = value.strip()

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeRuntimeApi:
    """Serves ``invocations`` in order on GET /next (then answers 500: no more), records every
    other request, and puts each body chunk on ``received`` the moment it arrives."""

    def __init__(self, invocations: list[Invocation]) -> None:
        self.pending = list(invocations)
        self.requests: list[Recorded] = []
        self.log: list[str] = []  # every request's method and path as it arrived (and what tests add)
        self.restore_status = 200
        self.lower_case_headers = False  # header names as HTTP allows them: in any case
        self.post_statuses: list[int] = []  # the answers to the first POSTs (then 202)
        self.received: queue.Queue[bytes] = queue.Queue()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApiHandler)
        self.server.fake = self  # type: ignore[attr-defined]
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def runtime_api(request: pytest.FixtureRequest) -> Iterator[Any]:
    servers: list[FakeRuntimeApi] = []

    def start(*invocations: Invocation) -> FakeRuntimeApi:
        server = FakeRuntimeApi(list(invocations))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def prelude(chunk: bytes) -> dict[str, Any]:
    head, delimiter, rest = chunk.partition(DELIMITER)
    assert (delimiter, rest) == (DELIMITER, b"")  # the delimiter ends the prelude's own chunk
    parsed: dict[str, Any] = json.loads(head)
    return parsed


def test_a_streamed_response_is_the_prelude_eight_nuls_and_each_chunk_in_order(runtime_api: Any) -> None:
    api = runtime_api(Invocation({"path": "/v1/chat/completions"}))

    def handler(event: dict[str, Any], context: Context) -> StreamedResponse:
        return StreamedResponse(200, {"Content-Type": "text/event-stream"}, iter([b"data: a\n\n", b"", b"data: b\n\n"]))

    serve(api.address, handler, invocations=1, environ={})
    [posted] = api.requests
    assert posted.path == "/2018-06-01/runtime/invocation/req-1/response"
    assert {k: posted.headers[k] for k in ("Lambda-Runtime-Function-Response-Mode", "Transfer-Encoding")} == {
        "Lambda-Runtime-Function-Response-Mode": "streaming",
        "Transfer-Encoding": "chunked",
    }
    assert posted.headers["Content-Type"] == CONTENT_TYPE
    assert posted.headers["Trailer"] == "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    assert "Content-Length" not in posted.headers
    # The empty chunk is not sent: a zero-length chunk would end the body.
    assert posted.chunks == [
        b'{"statusCode": 200, "headers": {"Content-Type": "text/event-stream"}}' + b"\x00" * 8,
        b"data: a\n\n",
        b"data: b\n\n",
    ]
    assert posted.trailers == {}


def test_header_names_in_any_case_and_a_request_id_of_any_text_answer_their_own_invocation(runtime_api: Any) -> None:
    """Header names are case-insensitive (lower case, the request id read as "" answered every
    invocation at invocation//response); a request id that is not a UUID (a space, a control)
    made http.client refuse the path and ended the loop."""
    api = runtime_api(Invocation({}, request_id="req 1\x01/x"), Invocation({}, request_id="req-2"))
    api.lower_case_headers = True
    seen: list[tuple[str, int]] = []

    def handler(event: dict[str, Any], context: Context) -> dict[str, Any]:
        seen.append((context.aws_request_id, context.deadline_ms))
        return {"statusCode": 200, "body": "ok"}

    serve(api.address, handler, invocations=2, environ={})
    assert seen == [("req 1\x01/x", 1_800_000_030_000), ("req-2", 1_800_000_030_000)]
    assert [r.path for r in api.requests] == [
        "/2018-06-01/runtime/invocation/req%201%01%2Fx/response",
        "/2018-06-01/runtime/invocation/req-2/response",
    ]


def test_each_chunk_is_sent_before_the_next_is_produced(runtime_api: Any) -> None:
    api = runtime_api(Invocation({}))
    seen: list[bytes] = []

    def body() -> Iterator[bytes]:
        yield b"one"
        # The runtime asks for the next chunk only after sending this one: the server has it.
        seen.append(api.received.get(timeout=WAIT))  # the prelude
        seen.append(api.received.get(timeout=WAIT))
        yield b"two"
        seen.append(api.received.get(timeout=WAIT))
        yield b"three"

    serve(api.address, lambda e, c: StreamedResponse(200, {}, body()), invocations=1, environ={})
    assert seen[1:] == [b"one", b"two"]
    assert api.requests[0].chunks[1:] == [b"one", b"two", b"three"]


def test_a_proxy_response_dict_is_written_whole_after_its_prelude(runtime_api: Any) -> None:
    api = runtime_api(Invocation({}), Invocation({}, request_id="req-2"))
    answers = iter(
        [
            {
                "statusCode": 429,
                "multiValueHeaders": {"Content-Type": ["application/json"], "Retry-After": ["5"]},
                "body": '{"error": "quota_exceeded"}',
                "isBase64Encoded": False,
            },
            {
                "statusCode": 200,
                "headers": {"X-A": "1"},
                "body": base64.b64encode(b"\x00raw").decode(),
                "isBase64Encoded": True,
            },
        ]
    )
    serve(api.address, lambda e, c: next(answers), invocations=2, environ={})
    first, second = api.requests
    assert prelude(first.chunks[0]) == {
        "statusCode": 429,
        "headers": {},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Retry-After": ["5"]},
    }
    assert first.chunks[1:] == [b'{"error": "quota_exceeded"}']
    assert (second.path, prelude(second.chunks[0]), second.chunks[1:]) == (
        "/2018-06-01/runtime/invocation/req-2/response",
        {"statusCode": 200, "headers": {"X-A": "1"}},
        [b"\x00raw"],
    )


@pytest.mark.parametrize("where", ["handler", "first chunk"])
def test_a_failure_before_the_first_byte_is_posted_as_the_invocations_error(runtime_api: Any, where: str) -> None:
    api = runtime_api(Invocation({"secret": "the caller's prompt"}))

    def body() -> Iterator[bytes]:
        raise KeyError("the caller's prompt")
        yield b"never"

    def handler(event: dict[str, Any], context: Context) -> StreamedResponse:
        if where == "handler":
            raise KeyError(event["secret"])
        return StreamedResponse(200, {}, body())

    serve(api.address, handler, invocations=1, environ={})
    [posted] = api.requests
    assert posted.path == "/2018-06-01/runtime/invocation/req-1/error"
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == "Function.KeyError"
    assert json.loads(posted.body) == {
        "errorMessage": "the function failed; see its logs for the request id",
        "errorType": "KeyError",
        "stackTrace": [],
    }
    assert b"prompt" not in posted.body


def test_a_failure_mid_stream_ends_the_response_with_the_error_trailers(
    runtime_api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    api = runtime_api(Invocation({}))
    closed: list[bool] = []

    def body() -> Iterator[bytes]:
        try:
            yield b"data: part\n\n"
            raise ValueError("the model's answer so far")
        finally:
            closed.append(True)

    serve(api.address, lambda e, c: StreamedResponse(200, {}, body()), invocations=1, environ={})
    [posted] = api.requests
    assert posted.path.endswith("/response")
    assert posted.chunks[1:] == [b"data: part\n\n"]
    assert posted.trailers["Lambda-Runtime-Function-Error-Type"] == "Function.ValueError"
    assert json.loads(base64.b64decode(posted.trailers["Lambda-Runtime-Function-Error-Body"])) == {
        "errorMessage": "the function failed; see its logs for the request id",
        "errorType": "ValueError",
        "stackTrace": [],
    }
    assert closed == [True]
    logged = capsys.readouterr()
    assert "answer so far" not in logged.out + logged.err
    assert json.loads(logged.err.strip())["request_id"] == "req-1"


def test_the_context_carries_the_deadline_and_the_functions_settings_and_the_trace_id_is_set(
    runtime_api: Any,
) -> None:
    api = runtime_api(Invocation({}), Invocation({}, request_id="req-2", trace=None))
    environ = {
        "AWS_LAMBDA_FUNCTION_NAME": "gw-stream",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/gw-stream",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/12/03/[$LATEST]abc",
    }
    seen: list[tuple[Any, ...]] = []

    def handler(event: dict[str, Any], context: Context) -> dict[str, Any]:
        seen.append(
            (
                context.aws_request_id,
                context.get_remaining_time_in_millis(),
                context.function_name,
                context.memory_limit_in_mb,
                context.invoked_function_arn,
                context.log_group_name,
                context.log_stream_name,
                environ.get("_X_AMZN_TRACE_ID"),
            )
        )
        return {"statusCode": 204, "body": ""}

    serve(api.address, handler, invocations=2, environ=environ, now=lambda: 1_800_000_000.0)
    arn = "arn:aws:lambda:eu-west-1:1:function:gw"
    settings = ("gw-stream", 512, arn, "/aws/lambda/gw-stream", "2026/12/03/[$LATEST]abc")
    assert seen == [
        ("req-1", 30_000, *settings, Invocation({}).trace),
        ("req-2", 30_000, *settings, None),  # no trace id: not the previous invocation's
    ]
    assert Context({"Lambda-Runtime-Deadline-Ms": "1000"}, {}, now=lambda: 5.0).get_remaining_time_in_millis() == 0


def test_a_handler_that_cannot_be_loaded_is_an_init_error(runtime_api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    api = runtime_api()
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", api.address)
    monkeypatch.setenv("STREAM_HANDLER", "ai_gateway.no_such_module.stream_handler")
    with pytest.raises(SystemExit):
        stream_runtime.main()
    monkeypatch.setenv("STREAM_HANDLER", "ai_gateway.stream_runtime.no_such_handler")
    with pytest.raises(SystemExit):
        stream_runtime.main()
    assert [(r.path, r.headers["Lambda-Runtime-Function-Error-Type"]) for r in api.requests] == [
        ("/2018-06-01/runtime/init/error", "Runtime.ImportModuleError"),
        ("/2018-06-01/runtime/init/error", "Runtime.HandlerNotFound"),
    ]
    assert json.loads(api.requests[0].body)["errorType"] == "ModuleNotFoundError"


def _hooks(steps: list[str], api: FakeRuntimeApi) -> tuple[list[Any], list[Any]]:
    """Two before-snapshot and two after-restore hooks that note when they run in ``steps`` and
    in the fake's log, between the requests the runtime makes."""

    def hook(name: str) -> Any:
        def run() -> None:
            steps.append(name)
            api.log.append(name)

        return run

    return [hook("before 1"), hook("before 2")], [hook("after 1"), hook("after 2")]


API = "/2018-06-01/runtime"


def _main_with_hooks(api: FakeRuntimeApi, monkeypatch: pytest.MonkeyPatch, initialization: str | None) -> list[str]:
    """Run the wrapper's entry (main) with recording hooks until the fake's one invocation is
    served and its next /next answers 500; the hooks' names, in the order they ran."""
    steps: list[str] = []
    before, after = _hooks(steps, api)
    monkeypatch.setattr(snapstart, "before_snapshot_hooks", before)
    monkeypatch.setattr(snapstart, "after_restore_hooks", after)
    monkeypatch.setenv("AWS_LAMBDA_RUNTIME_API", api.address)
    monkeypatch.setenv("STREAM_HANDLER", "tests.lambdas.test_stream_runtime.echo_handler")
    if initialization is None:
        monkeypatch.delenv(INITIALIZATION_TYPE, raising=False)
    else:
        monkeypatch.setenv(INITIALIZATION_TYPE, initialization)
    with pytest.raises(RuntimeError, match="/next answered 500"):  # the fake's invocations ran out
        stream_runtime.main()
    return steps


def test_with_snapstart_the_hooks_run_around_the_snapshot_then_the_loop_serves(
    runtime_api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = runtime_api(Invocation({"name": "world"}))
    _main_with_hooks(api, monkeypatch, SNAP_START)
    # Before-snapshot hooks in reverse order of registration, then the snapshot; after it, the
    # after-restore hooks in order, then the first invocation.
    assert api.log == [
        "before 2",
        "before 1",
        f"GET {API}/restore/next",
        "after 1",
        "after 2",
        f"GET {API}/invocation/next",
        f"POST {API}/invocation/req-1/response",
        f"GET {API}/invocation/next",  # answered 500: the fake has no more
    ]
    restore, response = api.requests
    assert (restore.method, restore.path) == ("GET", "/2018-06-01/runtime/restore/next")
    assert (response.path, response.chunks[1:]) == (
        "/2018-06-01/runtime/invocation/req-1/response",
        [b"hello ", b"world"],
    )


@pytest.mark.parametrize("initialization", ["on-demand", "provisioned-concurrency", None])
def test_without_snapstart_no_hook_runs_and_no_snapshot_is_asked_for(
    runtime_api: Any, monkeypatch: pytest.MonkeyPatch, initialization: str | None
) -> None:
    api = runtime_api(Invocation({"name": "world"}))
    assert _main_with_hooks(api, monkeypatch, initialization) == []
    assert [r.path for r in api.requests] == ["/2018-06-01/runtime/invocation/req-1/response"]


def test_a_snapshot_the_runtime_api_refuses_is_an_init_error_and_nothing_more_runs(runtime_api: Any) -> None:
    api = runtime_api(Invocation({"name": "world"}))
    api.restore_status = 500
    steps: list[str] = []
    before, after = _hooks(steps, api)
    with pytest.raises(SystemExit) as exited:
        stream_runtime.snapshot_and_restore(api.address, before, after)
    assert exited.value.code == stream_runtime.BEFORE_SNAPSHOT_EXIT
    assert api.log == ["before 2", "before 1", f"GET {API}/restore/next", f"POST {API}/init/error"]
    assert api.requests[-1].headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.BeforeSnapshotError"
    assert api.pending  # no invocation was asked for


def test_a_hook_that_exits_is_still_reported(runtime_api: Any) -> None:
    api = runtime_api()

    def exits() -> None:
        raise SystemExit(3)

    with pytest.raises(SystemExit) as exited:
        stream_runtime.snapshot_and_restore(api.address, [], [exits])
    assert exited.value.code == stream_runtime.AFTER_RESTORE_EXIT
    assert api.log[-1] == f"POST {API}/restore/error"


def test_a_failing_before_snapshot_hook_is_an_init_error_and_no_snapshot_is_taken(runtime_api: Any) -> None:
    api = runtime_api()

    def fails() -> None:
        raise ValueError("secret detail")

    with pytest.raises(SystemExit) as exited:
        stream_runtime.snapshot_and_restore(api.address, [fails], [])
    [posted] = api.requests
    assert exited.value.code == stream_runtime.BEFORE_SNAPSHOT_EXIT
    assert (posted.path, posted.headers["Lambda-Runtime-Function-Error-Type"]) == (
        "/2018-06-01/runtime/init/error",
        "Runtime.BeforeSnapshotError",
    )
    assert json.loads(posted.body) == {
        "errorMessage": stream_runtime.FAILED,
        "errorType": "ValueError",
        "stackTrace": [],
    }


def test_a_failing_after_restore_hook_is_a_restore_error_and_the_loop_never_starts(runtime_api: Any) -> None:
    api = runtime_api(Invocation({"name": "world"}))
    ran: list[str] = []

    def fails() -> None:
        raise OSError("no route")

    with pytest.raises(SystemExit) as exited:
        stream_runtime.snapshot_and_restore(api.address, [], [fails, lambda: ran.append("later hook")])
    restore, posted = api.requests
    assert exited.value.code == stream_runtime.AFTER_RESTORE_EXIT
    assert restore.path == "/2018-06-01/runtime/restore/next"
    assert (posted.path, posted.headers["Lambda-Runtime-Function-Error-Type"]) == (
        "/2018-06-01/runtime/restore/error",
        "Runtime.AfterRestoreError",
    )
    assert json.loads(posted.body)["errorType"] == "OSError"
    assert ran == []
    assert api.pending  # the invocation was never asked for


def echo_handler(event: dict[str, Any], context: Context) -> StreamedResponse:
    """The handler the wrapper test's runtime loads (by name, from STREAM_HANDLER)."""
    return StreamedResponse(200, {"Content-Type": "text/plain"}, iter([b"hello ", event["name"].encode()]))


def test_the_wrapper_runs_the_loop_with_the_runtimes_interpreter_and_ignores_its_bootstrap(runtime_api: Any) -> None:
    mode = BOOTSTRAP.stat().st_mode
    assert (bool(mode & stat.S_IXUSR), bool(mode & stat.S_IXOTH)) == (True, True)  # run by any user
    tracked = subprocess.run(
        ["git", "ls-files", "-s", str(BOOTSTRAP)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert tracked.startswith("100755") or tracked == ""  # committed executable (not yet tracked: new)
    api = runtime_api(Invocation({"name": "world"}))
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "LAMBDA_TASK_ROOT": str(ROOT / "lambdas"),
        "PYTHONPATH": str(ROOT),  # the runtime's own path; here, where this test module is
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "STREAM_HANDLER": "tests.lambdas.test_stream_runtime.echo_handler",
    }
    # As Lambda starts it: the interpreter, then the runtime bootstrap's arguments.
    process = subprocess.Popen(
        [str(BOOTSTRAP), sys.executable, "/var/runtime/bootstrap.py"],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        chunks = [api.received.get(timeout=WAIT) for _ in range(3)]
    finally:
        process.kill()
        process.wait(timeout=WAIT)
    assert prelude(chunks[0]) == {"statusCode": 200, "headers": {"Content-Type": "text/plain"}}
    assert chunks[1:] == [b"hello ", b"world"]


@pytest.mark.parametrize(
    "broken",
    [ConnectionResetError("reset by peer"), http.client.IncompleteRead(b"{}", 48), http.client.BadStatusLine("?")],
    ids=["connection-reset", "answer-cut-short", "answer-not-http"],
)
def test_a_response_whose_connection_breaks_ends_that_invocation_not_the_loop(
    runtime_api: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], broken: Exception
) -> None:
    """The connection broke, or the Runtime API's answer to the response cannot be read (an
    HTTPException, which is no OSError): that invocation is over, the loop is not."""
    api = runtime_api(Invocation({}), Invocation({}, request_id="req-2"))
    real = stream_runtime._invoke
    calls = iter([broken, None])

    def invoke(*args: Any) -> None:
        broken = next(calls)
        if broken is not None:
            raise broken
        real(*args)

    monkeypatch.setattr(stream_runtime, "_invoke", invoke)
    serve(api.address, lambda e, c: StreamedResponse(200, {}, iter([b"ok"])), invocations=2, environ={})
    [served] = api.requests
    assert (served.path, served.chunks[1:]) == ("/2018-06-01/runtime/invocation/req-2/response", [b"ok"])
    logged = json.loads(capsys.readouterr().err.strip())
    assert (logged["message"], logged["request_id"], logged["error"]) == (
        "invocation response failed",
        "req-1",
        type(broken).__name__,
    )


class Unclosable:
    """A response body whose close fails (after it was read whole)."""

    def __init__(self) -> None:
        self.items = iter([b"ok"])

    def __iter__(self) -> Unclosable:
        return self

    def __next__(self) -> bytes:
        return next(self.items)

    def close(self) -> None:
        raise ValueError("cannot close")


def test_a_body_whose_close_fails_ends_that_invocation_not_the_loop(
    runtime_api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    api = runtime_api(Invocation({}), Invocation({}, request_id="req-2"))
    bodies = iter([Unclosable(), iter([b"next"])])
    serve(api.address, lambda e, c: StreamedResponse(200, {}, next(bodies)), invocations=2, environ={})
    assert [(request.path, request.chunks[1:]) for request in api.requests] == [
        ("/2018-06-01/runtime/invocation/req-1/response", [b"ok"]),
        ("/2018-06-01/runtime/invocation/req-2/response", [b"next"]),
    ]
    logged = json.loads(capsys.readouterr().err.strip())
    assert (logged["message"], logged["request_id"], logged["error"]) == (
        "response body failed to close",
        "req-1",
        "ValueError",
    )


def test_a_response_the_runtime_api_refuses_is_logged_with_its_status_and_the_loop_goes_on(
    runtime_api: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    api = runtime_api(Invocation({}), Invocation({}, request_id="req-2"))
    api.post_statuses = [413]  # the first response is too large
    serve(api.address, lambda e, c: StreamedResponse(200, {}, iter([b"ok"])), invocations=2, environ={})
    assert [request.path for request in api.requests] == [
        "/2018-06-01/runtime/invocation/req-1/response",
        "/2018-06-01/runtime/invocation/req-2/response",
    ]
    logged = json.loads(capsys.readouterr().err.strip())
    assert logged == {
        "level": "ERROR",
        "message": "runtime API refused a post",
        "path": "invocation/req-1/response",
        "status": 413,
    }


@pytest.mark.parametrize("fails", [False, True], ids=["response", "error"])
def test_a_500_from_the_runtime_api_ends_the_process_before_the_next_invocation(
    runtime_api: Any, capsys: pytest.CaptureFixture[str], fails: bool
) -> None:
    def handler(event: dict[str, Any], context: Context) -> StreamedResponse:
        if fails:
            raise ValueError("before the first byte")
        return StreamedResponse(200, {}, iter([b"ok"]))

    api = runtime_api(Invocation({}), Invocation({}, request_id="req-2"))
    api.post_statuses = [500]  # "non-recoverable state: the runtime should exit promptly"
    with pytest.raises(SystemExit) as exited:
        serve(api.address, handler, invocations=2, environ={})
    assert exited.value.code == stream_runtime.UNRECOVERABLE_EXIT == 1
    assert [line.split()[0] for line in api.log] == ["GET", "POST"]  # req-2 never asked for
    path = "invocation/req-1/error" if fails else "invocation/req-1/response"
    assert {"path": path, "status": 500}.items() <= json.loads(capsys.readouterr().err.splitlines()[-1]).items()
