"""Real HTTP on the loopback interface for the fakes that stand in for remote services."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that writes no access log lines."""

    def log_message(self, *args: Any) -> None: ...


@contextmanager
def loopback(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True  # a handler still sleeping does not hold up the test's end
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_asgi(app: Any, *, startup_seconds: float = 30.0) -> Iterator[str]:
    """Serve an ASGI app (Starlette: BedrockAgentCoreApp, an MCP server) with uvicorn on 127.0.0.1
    (a free port) from a thread; yields the base URL once it accepts connections."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.01):  # bounded: a server that never starts fails the test, not hangs it
        if server.started:
            break
        startup_seconds -= 0.01
        if startup_seconds <= 0 or not thread.is_alive():
            raise RuntimeError("the loopback ASGI server did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
