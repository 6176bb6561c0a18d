"""Fakes for the web MCP server's AWS boundary: the guardrail (ApplyGuardrail), an AgentCore Browser
client and a local websocket speaking the few Chrome DevTools Protocol messages the server uses."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosedError

from tests.lambdas.web_site import ATTACK
from web_mcp import browse

EMAIL = re.compile(r"[\w.]+@[\w.]+")


class Inline(Executor):
    """Runs what is submitted at once, on the submitting thread: a browser session's start and
    stop, and a guardrail call, in the order the code asks for them."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as error:  # as a pool's future holds it
            future.set_exception(error)
        return future


class FakeClock:
    """Seconds that pass only when told: ``step`` per reading."""

    def __init__(self) -> None:
        self.now = 0.0
        self.step = 0.0

    def __call__(self) -> float:
        self.now += self.step
        return self.now


@dataclass
class FakeGuardrail:
    """ApplyGuardrail: blocks the prompt attack, anonymises e-mail addresses, fails on demand."""

    failing: bool = False
    calls: list[dict[str, Any]] = field(default_factory=list)

    def apply_guardrail(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        if self.failing:
            raise ClientError({"Error": {"Code": "ServiceUnavailableException", "Message": "down"}}, "ApplyGuardrail")
        text = request["content"][0]["text"]["text"]
        if ATTACK.lower() in text.lower():
            filters = [{"type": "PROMPT_ATTACK", "confidence": "HIGH", "action": "BLOCKED"}]
            return {
                "action": "GUARDRAIL_INTERVENED",
                "outputs": [{"text": "Sorry."}],
                "assessments": [{"contentPolicy": {"filters": filters}}],
            }
        if EMAIL.search(text):
            entities = [{"match": "x", "type": "EMAIL", "action": "ANONYMIZED"}]
            return {
                "action": "GUARDRAIL_INTERVENED",
                "outputs": [{"text": EMAIL.sub("{EMAIL}", text)}],
                "assessments": [{"sensitiveInformationPolicy": {"piiEntities": entities}}],
            }
        return {"action": "NONE", "outputs": [], "assessments": []}


@dataclass
class FakeBrowserPage:
    final_url: str
    title: str
    html: str
    redirects: tuple[str, ...] = ()  # the main frame's further document requests (redirect hops)
    frames: tuple[str, ...] = ()  # the page's frames' document requests
    frame_content_type: str = "text/html"
    # Where the page's own script says it is (a page that replaced JSON.stringify): None, its URL.
    claimed_url: str | None = None
    content_type: str | None = "text/html; charset=utf-8"  # the last hop's Content-Type (None: no header)
    # The address the browser says it connected to for the page's document (None: it names none,
    # as for a cached response); the test resolver's answer for the site, unless a test says otherwise.
    address: str | None = "127.0.0.1"
    resources: tuple[tuple[str, str], ...] = ()  # what the page then loads: (URL, the address it came from)


MAIN_FRAME = "target-1"  # a page's main frame has its target's id
WORLD = 7  # the isolated world's execution context


@dataclass
class FakeCdp:
    """The browser end of the automation stream. ``pages`` maps a navigated URL to what the browser
    ends up showing (its final URL may differ: the browser's own redirects). Once the client has
    enabled document interception, each document request of a navigation (the URL, its redirect
    hops, the page's frames) pauses for the client's answer, as Chromium's Fetch domain does,
    before it is sent and once its response's headers are in (a redirect hop's a 302 with its
    Location, the next hop naming it as ``redirectedRequestId``; the page's a 200 with its
    Content-Type; a URL with no page's a connection failure): a failed main-frame hop ends the
    navigation with net::ERR_BLOCKED_BY_CLIENT. ``navigations``: selectors whose click navigates
    the main frame to a URL. Once the client has enabled the Network domain, the page's document
    response and each of its resources' is reported (Network.responseReceived) with the address the
    browser connected to (FakeBrowserPage.address, .resources)."""

    pages: dict[str, FakeBrowserPage] = field(default_factory=dict)
    loads: bool = True  # False: the page never finishes loading
    elements: set[str] = field(default_factory=set)  # selectors that match
    navigations: dict[str, str] = field(default_factory=dict)
    received: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paused: list[tuple[str, str, str]] = field(default_factory=list)  # (url, frame, "continue" | "fail")
    responses: list[tuple[str, str, str]] = field(default_factory=list)  # as paused, at the response stage
    intercepting: bool = False
    reporting: bool = False  # Network.enable received: responses are reported
    history: dict[str, Any] | None = None  # Page.getNavigationHistory's answer (None: the pages')
    world: dict[str, Any] = field(default_factory=lambda: {"executionContextId": WORLD})  # createIsolatedWorld's
    read_in: list[Any] = field(default_factory=list)  # the context each read of the page ran in
    current: str = "about:blank"

    async def answer(self, method: str, params: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:
        if method == "Target.createTarget":
            return {"targetId": MAIN_FRAME}
        if method == "Target.attachToTarget":
            return {"sessionId": "cdp-session-1"}
        if method == "Fetch.enable":
            self.intercepting = params == {
                "patterns": [
                    {"urlPattern": "*", "resourceType": "Document", "requestStage": "Request"},
                    {"urlPattern": "*", "resourceType": "Document", "requestStage": "Response"},
                ]
            }
            return {}
        if method == "Network.enable":
            self.reporting = True
            return {}
        if method == "Page.navigate":
            return await self.navigate(params["url"], connection)
        if method == "Page.getNavigationHistory":
            entries = [{"id": 1, "url": "about:blank", "title": "", "transitionType": "typed"}]
            if self.current in self.pages:
                page = self.pages[self.current]
                entries.append({"id": 2, "url": page.final_url, "title": page.title, "transitionType": "link"})
            return self.history if self.history is not None else {"currentIndex": len(entries) - 1, "entries": entries}
        if method == "Page.createIsolatedWorld":
            return self.world if params == {"frameId": MAIN_FRAME, "worldName": browse.WORLD} else {}
        if method == "Runtime.evaluate":
            return await self.runtime_evaluate(params, connection)
        return {}

    async def runtime_evaluate(self, params: dict[str, Any], connection: ServerConnection) -> dict[str, Any]:
        expression = params["expression"]
        if expression.startswith(f"({browse.READ}"):
            self.read_in.append(params.get("contextId"))
        for selector, url in self.navigations.items():
            if expression.startswith(f"({browse.CLICK}") and json.dumps(selector) in expression:
                await self.navigate(url, connection)
        return {"result": {"type": "string", "value": self.evaluate(expression)}}

    async def navigate(self, url: str, connection: ServerConnection) -> dict[str, Any]:
        page = self.pages.get(url)
        hops = [url, *(page.redirects if page else ())]
        previous = None
        for index, hop in enumerate(hops):
            previous = await self.pause(hop, MAIN_FRAME, connection, redirected=previous)
            if previous is None:
                return {"frameId": MAIN_FRAME, "errorText": "net::ERR_BLOCKED_BY_CLIENT"}
            if page is None:
                response: dict[str, Any] = {"responseErrorReason": "ConnectionRefused"}
            elif index < len(hops) - 1:
                location = [{"name": "Location", "value": hops[index + 1]}]
                response = {"responseStatusCode": 302, "responseHeaders": location}
            else:
                typed = [{"name": "Content-Type", "value": page.content_type}] if page.content_type else []
                response = {"responseStatusCode": 200, "responseHeaders": [{"name": "Server", "value": "t"}, *typed]}
            if await self.pause(hop, MAIN_FRAME, connection, response=response) is None:
                return {"frameId": MAIN_FRAME, "errorText": "net::ERR_BLOCKED_BY_CLIENT"}
        await self.report(hops[-1], page, connection)
        for frame in page.frames if page else ():
            if await self.pause(frame, "frame-2", connection):
                typed = [{"name": "content-type", "value": page.frame_content_type}] if page else []
                await self.pause(
                    frame, "frame-2", connection, response={"responseStatusCode": 200, "responseHeaders": typed}
                )
        if page is None:
            return {"frameId": MAIN_FRAME, "errorText": "net::ERR"}
        self.current = url
        return {"frameId": MAIN_FRAME}

    async def report(self, url: str, page: FakeBrowserPage | None, connection: ServerConnection) -> None:
        """The page's document response (its last hop, ``url``) and its resources', as
        Network.responseReceived reports them (when the client asked)."""
        if not self.reporting or page is None:
            return
        received = [(url, "Document", page.address), *((at, "Fetch", address) for at, address in page.resources)]
        for at, kind, address in received:
            response: dict[str, Any] = {"url": at, "status": 200, "mimeType": "text/html", "remotePort": 80}
            if address is not None:
                response["remoteIPAddress"] = address
            params = {
                "requestId": f"r-{at}",
                "loaderId": "l-1",
                "frameId": MAIN_FRAME,
                "type": kind,
                "response": response,
            }
            await connection.send(json.dumps({"method": "Network.responseReceived", "params": params}))

    async def pause(
        self,
        url: str,
        frame: str,
        connection: ServerConnection,
        redirected: str | None = None,
        response: dict[str, Any] | None = None,
    ) -> str | None:
        """One document request held for the client's answer (sent on without interception): at
        the request stage (``redirected``: the id of the request whose redirect made it) or, with
        ``response``, at the response stage. Its id if it went on, else None."""
        request_id = f"interception-{len(self.paused) + len(self.responses) + 1}"
        if not self.intercepting:
            return request_id
        paused = {"requestId": request_id, "request": {"url": url, "method": "GET"}, "frameId": frame}
        paused["resourceType"] = "Document"
        if redirected is not None:
            paused["redirectedRequestId"] = redirected
        await connection.send(json.dumps({"method": "Fetch.requestPaused", "params": {**paused, **(response or {})}}))
        message = json.loads(await connection.recv())
        self.received.append(message)
        decision = {"Fetch.continueRequest": "continue", "Fetch.failRequest": "fail"}[message["method"]]
        assert message["params"]["requestId"] == request_id, message
        if decision == "fail":
            assert message["params"]["errorReason"] == "BlockedByClient", message
        (self.responses if response is not None else self.paused).append((url, frame, decision))
        await connection.send(json.dumps({"id": message["id"], "result": {}}))
        return request_id if decision == "continue" else None

    def evaluate(self, expression: str) -> Any:
        if expression == browse.READY:
            return "complete" if self.loads else "loading"
        _, _, args = expression.partition(")(")
        values = json.loads(f"[{args[:-1]}]")
        if expression.startswith(f"({browse.CLICK}") or expression.startswith(f"({browse.TYPE}"):
            return values[0] in self.elements
        if expression.startswith(f"({browse.EXISTS}"):
            return values[0] in self.elements
        if expression.startswith(f"({browse.READ}"):
            page = self.pages[self.current]
            claimed = page.claimed_url or page.final_url
            return json.dumps({"title": page.title, "url": claimed, "html": page.html[: values[0]]})
        raise AssertionError(f"unexpected script: {expression[:60]}")

    async def handler(self, connection: ServerConnection) -> None:
        self.headers.append(
            {k.lower(): v for k, v in connection.request.headers.raw_items()} if connection.request else {}
        )
        try:
            async for raw in connection:
                message = json.loads(raw)
                self.received.append(message)
                # An event first: the client must skip what is not its answer.
                await connection.send(json.dumps({"method": "Page.frameStartedLoading", "params": {}}))
                result = await self.answer(message["method"], message.get("params", {}), connection)
                await connection.send(json.dumps({"id": message["id"], "result": result}))
        except ConnectionClosedError:
            pass  # the client closed with an error (a message past its cap): its side is the test's

    def methods(self) -> list[str]:
        return [message["method"] for message in self.received]


@contextmanager
def cdp_server(fake: FakeCdp) -> Iterator[str]:
    """Serves ``fake`` on a loopback websocket from a thread; yields its ws:// URL."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    port: list[int] = []

    async def main() -> None:
        async with serve(fake.handler, "127.0.0.1", 0) as server:
            port.append(next(iter(server.sockets)).getsockname()[1])
            ready.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the CDP stand-in did not start")
    try:
        yield f"ws://127.0.0.1:{port[0]}/browser-streams/aws.browser.v1/sessions/s-1/automation"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


@dataclass
class FakeBrowserClient:
    """BrowserClient's session API: records start/stop; the websocket is the CDP stand-in's."""

    ws_url: str
    log: list[str]
    fail_start: bool = False
    hold: str | None = None  # "start" or "stop": it answers once ``release`` is set, however fast the machine
    release: threading.Event = field(default_factory=threading.Event)
    stopped_on: list[str] = field(default_factory=list)  # the thread each stop ran on

    def start(
        self, identifier: str | None = None, name: str | None = None, session_timeout_seconds: int | None = None
    ) -> str:
        if self.hold == "start":
            self.release.wait(30)
        self.log.append(f"start {identifier} {session_timeout_seconds}")
        if self.fail_start:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "StartBrowserSession")
        return "s-1"

    def generate_ws_headers(self) -> tuple[str, dict[str, str]]:
        self.log.append("headers")
        return self.ws_url, {
            "Host": "bedrock-agentcore.us-east-1.amazonaws.com",
            "X-Amz-Date": "20261203T000000Z",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "User-Agent": "BrowserSandbox-Client/1.0 (Session: s-1)",
        }

    def stop(self) -> bool:
        self.stopped_on.append(threading.current_thread().name)
        if self.hold == "stop":
            self.release.wait(30)
        self.log.append("stop")
        return True
