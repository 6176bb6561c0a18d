"""A Lambda runtime loop that streams responses, for API Gateway's STREAM integrations.

Lambda's managed Python runtime answers only with a whole response. API Gateway streams a Lambda
proxy integration whose ``responseTransferMode`` is STREAM: it calls InvokeWithResponseStream
and reads the "http integration response" format, a JSON prelude (statusCode, headers,
multiValueHeaders, cookies), eight NUL bytes, then the body bytes as they come. This module is
the Runtime API loop that writes it, with the standard library and shared.snapstart's hook lists
only (AWS's custom runtime documentation, "Implementing response streaming in a custom runtime"):

    GET  /2018-06-01/runtime/invocation/next            the event; its request id, deadline
                                                         (Lambda-Runtime-Deadline-Ms) and trace
                                                         id (Lambda-Runtime-Trace-Id, set as
                                                         _X_AMZN_TRACE_ID for the SDKs)
    POST /2018-06-01/runtime/invocation/{id}/response   Lambda-Runtime-Function-Response-Mode:
                                                         streaming, Transfer-Encoding: chunked,
                                                         Content-Type: application/vnd.awslambda.
                                                         http-integration-response; one HTTP
                                                         chunk per body chunk, sent as produced
    POST /2018-06-01/runtime/invocation/{id}/error      a failure before the first byte
    trailers Lambda-Runtime-Function-Error-Type/-Body   a failure after it (the body base64)
    POST /2018-06-01/runtime/init/error                 the handler cannot be loaded, or a
                                                         before-snapshot hook failed
    GET  /2018-06-01/runtime/restore/next               SnapStart: the environment is ready to be
                                                         snapshotted; answered once it is restored
    POST /2018-06-01/runtime/restore/error              SnapStart: an after-restore hook failed

Each POST is answered 202 when accepted. A 500 means the environment cannot recover and "the
runtime should exit promptly": the loop exits (status 1) and Lambda starts a new environment. Any
other refusal (400, 403, 413: a response too large) ends only that invocation; it is logged with
its status, and the loop goes on.

It runs on the managed python3.14 runtime through a wrapper script (``stream_bootstrap``, named by
the function's AWS_LAMBDA_EXEC_WRAPPER) that starts this module instead of the runtime's own
loop. The handler (STREAM_HANDLER, default ``ai_gateway.handler.stream_handler``) is called with
(event, context) and answers either an API Gateway proxy response dict (written whole after the
prelude) or a StreamedResponse. The body's first chunk is read before anything is posted, so a
handler that fails before producing a byte still gets an ordinary error.

With SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE is ``snap-start`` while a version is published),
the loop does what the managed runtime's own does (awslambdaric's bootstrap), by the Runtime API
lifecycle AWS documents for container images and runtime clients of one's own ("Implementing
SnapStart hooks for container images"): once the handler is loaded it runs the
before-snapshot hooks the handler registered (shared.snapstart; in reverse order), asks for
``restore/next`` and waits there while Lambda snapshots the environment; the answer comes in each
environment resumed from the snapshot, which then runs the after-restore hooks (in order) before
its first ``invocation/next``.

Neither the event nor the body is ever logged: only request ids and exception class names.
"""

from __future__ import annotations

import base64
import http.client
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

from shared import snapstart

API_VERSION = "2018-06-01"
HANDLER_VARIABLE = "STREAM_HANDLER"
DEFAULT_HANDLER = "ai_gateway.handler.stream_handler"
CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\x00" * 8
ERROR_TYPE = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY = "Lambda-Runtime-Function-Error-Body"
INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"
SNAP_START = "snap-start"
# What the managed runtime (awslambdaric) exits with when a hook fails.
BEFORE_SNAPSHOT_EXIT, AFTER_RESTORE_EXIT = 64, 65
UNRECOVERABLE_EXIT = 1  # the Runtime API answered a POST with 500
TRACE_VARIABLE = "_X_AMZN_TRACE_ID"
# What the caller sees of a failure: its class, never its message (which may quote the request).
FAILED = "the function failed; see its logs for the request id"


@dataclass(frozen=True)
class StreamedResponse:
    """A response whose body is written chunk by chunk as ``body`` yields it."""

    status: int
    headers: dict[str, str]
    body: Iterator[bytes]
    cookies: list[str] = field(default_factory=list)


Handler = Callable[[dict[str, Any], "Context"], "StreamedResponse | dict[str, Any]"]


class Context:
    """The invocation's context, with the LambdaContext attributes Powertools reads."""

    def __init__(
        self,
        headers: Mapping[str, str],
        environ: Mapping[str, str],
        now: Callable[[], float] = time.time,
    ) -> None:
        self.aws_request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms") or 0)
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = int(environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") or 0)
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self.identity = None
        self.client_context = None
        self._now = now

    def get_remaining_time_in_millis(self) -> int:
        return max(self.deadline_ms - int(self._now() * 1000), 0)


class RuntimeApi:
    """The Runtime API at ``address`` (host:port, AWS_LAMBDA_RUNTIME_API): one connection per
    call (the streaming endpoint expects its connection closed once the response is written)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._host, self._port = host, int(port)

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self._host, self._port, timeout=None)  # /next may wait long

    def next(self) -> tuple[dict[str, str], bytes]:
        """The next invocation: its headers and its event."""
        return self._get("invocation/next")

    def restore_next(self) -> None:
        """Ready to be snapshotted: returns in the environment resumed from the snapshot."""
        self._get("restore/next")

    def _get(self, path: str) -> tuple[dict[str, str], bytes]:
        connection = self.connection()
        try:
            connection.request("GET", f"/{API_VERSION}/runtime/{path}")
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"runtime API /{path} answered {response.status}")
            # Header names are case-insensitive: read in the case AWS documents them in.
            return {name.title(): value for name, value in response.getheaders()}, body
        finally:
            connection.close()

    def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> None:
        connection = self.connection()
        try:
            connection.request("POST", f"/{API_VERSION}/runtime/{path}", body=body, headers=dict(headers))
            _answered(connection.getresponse(), path)
        finally:
            connection.close()

    def error(self, path: str, error_type: str, error: BaseException) -> None:
        body = json.dumps({"errorMessage": FAILED, "errorType": type(error).__name__, "stackTrace": []}).encode()
        self.post(path, body, {ERROR_TYPE: error_type, "Content-Type": "application/json"})


def serve(
    runtime_api: str,
    handler: Handler,
    *,
    invocations: int | None = None,
    environ: MutableMapping[str, str] | None = None,
    now: Callable[[], float] = time.time,
) -> None:
    """Serve invocations from the Runtime API at ``runtime_api`` (forever, or ``invocations``)."""
    api = RuntimeApi(runtime_api)
    env = os.environ if environ is None else environ
    served = 0
    while invocations is None or served < invocations:
        headers, payload = api.next()
        served += 1
        try:
            _invoke(api, handler, headers, payload, env, now)
        except (OSError, http.client.HTTPException) as error:
            # The response's connection broke, or the Runtime API's answer to it could not be read:
            # this invocation is over, the loop is not.
            _log("invocation response failed", headers.get("Lambda-Runtime-Aws-Request-Id", ""), error)


def _invoke(
    api: RuntimeApi,
    handler: Handler,
    headers: dict[str, str],
    payload: bytes,
    environ: MutableMapping[str, str],
    now: Callable[[], float],
) -> None:
    request_id = headers.get("Lambda-Runtime-Aws-Request-Id", "")
    path_id = quote(request_id, safe="")  # a request id is a UUID; anything else stays one path segment
    trace = headers.get("Lambda-Runtime-Trace-Id")
    if trace:
        environ[TRACE_VARIABLE] = trace
    else:
        environ.pop(TRACE_VARIABLE, None)  # never the previous invocation's
    error_path = f"invocation/{path_id}/error"
    try:
        event = json.loads(payload)
        result = handler(event, Context(headers, environ, now))
        prelude, chunks = _response(result)
        first = next(chunks, None)  # a failure before the first byte is an ordinary error
    except Exception as error:
        _log("handler failed", request_id, error)
        api.error(error_path, f"Function.{type(error).__name__}", error)
        return
    _stream(api, path_id, prelude, first, chunks)


def _response(result: object) -> tuple[bytes, Iterator[bytes]]:
    """The prelude and the body's chunks of what the handler answered."""
    if isinstance(result, StreamedResponse):
        prelude: dict[str, Any] = {"statusCode": result.status, "headers": dict(result.headers)}
        if result.cookies:
            prelude["cookies"] = list(result.cookies)
        return json.dumps(prelude).encode(), iter(result.body)
    if isinstance(result, dict) and isinstance(result.get("statusCode"), int):
        prelude = {"statusCode": result["statusCode"], "headers": dict(result.get("headers") or {})}
        for key in ("multiValueHeaders", "cookies"):
            if result.get(key):
                prelude[key] = result[key]
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        return json.dumps(prelude).encode(), iter([data])
    raise TypeError("the handler answered neither a StreamedResponse nor a proxy response dict")


def _stream(api: RuntimeApi, request_id: str, prelude: bytes, first: bytes | None, chunks: Iterator[bytes]) -> None:
    """POST the response as HTTP/1.1 chunks: the prelude and delimiter, then each body chunk
    as the handler yields it; a failure mid-stream ends it with the error trailers."""
    connection = api.connection()
    try:
        connection.putrequest("POST", f"/{API_VERSION}/runtime/invocation/{request_id}/response")
        connection.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.putheader("Content-Type", CONTENT_TYPE)
        connection.putheader("Trailer", f"{ERROR_TYPE}, {ERROR_BODY}")
        connection.endheaders()
        _chunk(connection, prelude + DELIMITER)
        trailers = b""
        try:
            if first is not None:
                _chunk(connection, first)
                for data in chunks:
                    _chunk(connection, data)
        except Exception as error:
            _log("response stream failed", request_id, error)
            body = json.dumps({"errorMessage": FAILED, "errorType": type(error).__name__, "stackTrace": []})
            trailers = (
                f"{ERROR_TYPE}: Function.{type(error).__name__}\r\n"
                f"{ERROR_BODY}: {base64.b64encode(body.encode()).decode()}\r\n"
            ).encode()
        connection.send(b"0\r\n" + trailers + b"\r\n")
        _answered(connection.getresponse(), f"invocation/{request_id}/response")
    finally:
        closer = getattr(chunks, "close", None)
        try:
            if closer is not None:
                closer()  # a body left unfinished (a failed write) settles now, not at garbage collection
        except Exception as error:  # the body's own failure ends this invocation, never the loop
            _log("response body failed to close", request_id, error)
        finally:
            connection.close()


def _answered(response: http.client.HTTPResponse, path: str) -> None:
    """The Runtime API's answer to a POST to ``path``: 202 accepted; 500, exit (the environment
    cannot recover); any other status, logged (that invocation's answer was refused)."""
    response.read()
    if 200 <= response.status < 300:
        return
    line = {"level": "ERROR", "message": "runtime API refused a post", "path": path, "status": response.status}
    print(json.dumps(line), file=sys.stderr, flush=True)
    if response.status == 500:
        raise SystemExit(UNRECOVERABLE_EXIT)


def _chunk(connection: http.client.HTTPConnection, data: bytes) -> None:
    if data:  # a zero-length chunk would end the body
        connection.send(b"%X\r\n" % len(data) + data + b"\r\n")


def _log(message: str, request_id: str, error: BaseException) -> None:
    line = {"level": "ERROR", "message": message, "request_id": request_id, "error": type(error).__name__}
    print(json.dumps(line), file=sys.stderr, flush=True)


def load_handler(name: str) -> Handler:
    module, _, attribute = name.rpartition(".")
    handler: Handler = getattr(importlib.import_module(module), attribute)
    return handler


def snapshot_and_restore(
    api: str, before_snapshot: Sequence[Callable[[], object]], after_restore: Sequence[Callable[[], object]]
) -> None:
    """SnapStart's part of init: the before-snapshot hooks (in reverse order of registration), the
    snapshot (``restore/next`` returns in each environment resumed from it), then the after-restore
    hooks (in order). A failing hook is reported as the managed runtime reports it, and the
    process exits: before the snapshot, an init error (Runtime.BeforeSnapshotError); after the
    restore, a restore error (Runtime.AfterRestoreError)."""
    try:
        for hook in reversed(before_snapshot):
            hook()
        RuntimeApi(api).restore_next()
    except BaseException as error:  # a hook's sys.exit too: reported, as the managed runtime does
        _init_failed(api, "Runtime.BeforeSnapshotError", error, code=BEFORE_SNAPSHOT_EXIT)
    try:
        for hook in after_restore:
            hook()
    except BaseException as error:
        _log("after-restore hook failed", "", error)
        RuntimeApi(api).error("restore/error", "Runtime.AfterRestoreError", error)
        raise SystemExit(AFTER_RESTORE_EXIT) from None


def main() -> None:
    """The wrapper's entry: load the handler (or report the init error), take part in SnapStart's
    snapshot where the version has it, then serve forever."""
    api = os.environ["AWS_LAMBDA_RUNTIME_API"]
    name = os.environ.get(HANDLER_VARIABLE, DEFAULT_HANDLER)
    try:
        handler = load_handler(name)
    except ImportError as error:
        _init_failed(api, "Runtime.ImportModuleError", error)
    except (AttributeError, ValueError) as error:
        _init_failed(api, "Runtime.HandlerNotFound", error)
    except Exception as error:  # the module's own start-up failed
        _init_failed(api, "Runtime.InitError", error)
    if os.environ.get(INITIALIZATION_TYPE) == SNAP_START:  # the hooks the handler's import recorded
        snapshot_and_restore(api, snapstart.before_snapshot_hooks, snapstart.after_restore_hooks)
    serve(api, handler)


def _init_failed(api: str, error_type: str, error: BaseException, *, code: int = 1) -> NoReturn:
    _log("init failed", "", error)
    RuntimeApi(api).error("init/error", error_type, error)
    raise SystemExit(code)


if __name__ == "__main__":
    # Run as ``python -m``, this file is ``__main__``: the loop must be the module the handler
    # imports, or a StreamedResponse it returns would be another class than the one checked.
    from ai_gateway import stream_runtime

    stream_runtime.main()
