"""Pages that need a browser: an AgentCore Browser session (managed Chromium) driven over its
automation stream with the Chrome DevTools Protocol.

Before the browser is sent anywhere, the URL passes the same checks as web_fetch (scheme, user
information, the group's domain lists, every resolved address). The browser then loads documents
itself (the page, each redirect hop, what a step navigates to, the frames it renders in the
page's own process), so the page's document requests are paused in the browser (CDP Fetch
domain on the page's session) until they have passed the same checks here (Documents): before a
request is sent, its URL, and at most ``max_redirects`` redirects in a row; once its response's
headers are in, its content type (one of the configured types, as web_fetch).
A hop of the page that fails them is never sent, or its body never read, and fails the call
(``forbidden``, the check's reason; a refused URL is "the page led to a refused URL"); a frame
that fails them is not loaded and the page is read without it. Not paused: sub-resources
(scripts, images, a script's own requests), and what runs in targets of their own (a cross-site
frame's later navigations, a popup); none of it is read back, and AgentCore Browser's network
isolation bounds it. But every response the page's session receives, documents and sub-resources
alike, names the address the browser connected to, and one the address policy refuses fails the
call (Documents.received): the browser resolves a checked host again itself (DNS rebinding). (A
proxy configured for the browser would be the address of every response: this check assumes
none.) The page's final URL, as the browser's navigation history holds it (never as
a script in the page reports it), is checked once more before anything of it is returned. The
page is read in a JavaScript world of our own, what the browser does not show marked on an inert
copy (READ). Steps run as small fixed scripts whose selector and text are passed as JSON literals,
never spliced into JavaScript source.

One deadline covers the call: starting the session (given up on at the deadline: a start not
begun yet is cancelled, one under way has its session stopped once it has started), opening the
automation stream, navigation, steps and reading the page. The session is stopped on every path,
on threads of their own: the answer does not wait for the stop, nor does a later call's start.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import websockets
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

from shared.logs import service_logger
from web_mcp.addresses import parse
from web_mcp.contract import GroupWeb, Step
from web_mcp.errors import WebError, forbidden, invalid, unavailable
from web_mcp.fetch import REDIRECTS, Checker, Clock, Deadline, content_type, deadline_passed, media_type_named

logger = service_logger("web-mcp")

POLL_SECONDS = 0.05
# Every document request pauses until answered (Cdp), frames and navigations, redirect hops
# included: before it is sent, and again once its response's headers are in.
DOCUMENT_REQUESTS = [
    {"urlPattern": "*", "resourceType": "Document", "requestStage": stage} for stage in ("Request", "Response")
]
# Sessions start on these threads, waited for until the deadline at most; they stop on others, not
# waited for (a slow stop never holds a later call's start).
_STARTS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="browser-start")
_STOPS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="browser-stop")
# Headers the websocket library writes itself; the rest of the signed set is sent as given.
_HANDSHAKE = frozenset({"host", "upgrade", "connection", "sec-websocket-version", "sec-websocket-key"})

READY = "document.readyState"
CLICK = "(s) => { const e = document.querySelector(s); if (!e) return false; e.click(); return true; }"
TYPE = (
    "(s, t) => { const e = document.querySelector(s); if (!e) return false; e.focus(); e.value = t; "
    "e.dispatchEvent(new Event('input', {bubbles: true})); e.dispatchEvent(new Event('change', {bubbles: true})); "
    "return true; }"
)
EXISTS = "(s) => document.querySelector(s) !== null"
# The page as the browser holds it, read in a world of our own (Browser._world: the page's script
# cannot replace what this calls) and without touching the page: each element's computed style is
# read first (reads only: one style pass, whatever the page's size), then the document is copied
# into an inert one (no script, no custom element runs there) and marked as the browser shows it:
# an element not rendered with all it holds (display none, content-visibility hidden; a section
# hidden until found is shown, as web_fetch shows it) is marked ``hidden``, every other is not; an
# element invisible itself (visibility hidden or collapse, which a child can set back to visible)
# loses its own text, its children marked by their own visibility; inline styles go: the
# browser's computation replaces the reader's (web_mcp.hidden), a stylesheet's rules included.
READ = (
    "(n) => { const root = document.documentElement; "
    "if (!root) return JSON.stringify({title: document.title, html: ''}); "
    "const all = root.querySelectorAll('*'); "
    "const unseen = Array.from(all, (e) => { const s = getComputedStyle(e); "
    "if (e.getAttribute('hidden') !== 'until-found' && (s.display === 'none' || s.contentVisibility === 'hidden')) "
    "return 2; return s.visibility === 'hidden' || s.visibility === 'collapse' ? 1 : 0; }); "
    "const copy = document.implementation.createHTMLDocument('').importNode(root, true); "
    "const marked = copy.querySelectorAll('*'); "
    "if (marked.length === all.length) marked.forEach((e, i) => { e.removeAttribute('style'); "
    "if (unseen[i] === 2) e.setAttribute('hidden', ''); else e.removeAttribute('hidden'); "
    "if (unseen[i] === 1) Array.from(e.childNodes).forEach((c) => { if (c.nodeType === 3) c.remove(); }); }); "
    "const h = copy.outerHTML; "
    "return JSON.stringify({title: document.title, html: h.length > n ? h.slice(0, n) : h}); }"
)
WORLD = "web-mcp-reader"


class BrowserSession(Protocol):
    """The part of bedrock_agentcore.tools.browser_client.BrowserClient used here."""

    def start(
        self, identifier: str | None = ..., name: str | None = ..., session_timeout_seconds: int | None = ...
    ) -> str: ...

    def generate_ws_headers(self) -> tuple[str, dict[str, str]]: ...

    def stop(self) -> bool: ...


@dataclass(frozen=True)
class BrowsedPage:
    url: str
    title: str
    html: str
    # The session's deadline, still running: reading the page's text counts against it too.
    deadline: Deadline | None = field(default=None, compare=False, repr=False)


def call(script: str, *args: Any) -> str:
    """An expression calling a fixed script with JSON-literal arguments."""
    return f"({script})({', '.join(json.dumps(arg) for arg in args)})"


@dataclass
class Documents:
    """What the page's document requests must pass, as the browser pauses them (Cdp): raises the
    refusal of one that does not."""

    checker: Checker
    group: GroupWeb
    deadline: Deadline
    redirects: dict[str, int] = field(default_factory=dict)  # a frame's redirects in a row so far

    def paused(self, params: dict[str, Any]) -> None:
        """One paused request, at the stage CDP's requestPaused names by a response's status or
        error (the response stage) or their absence (the request stage)."""
        if "responseStatusCode" in params or "responseErrorReason" in params:
            self._response(params)
            return
        frame = str(params.get("frameId"))
        # A request a redirect made names the request redirected; any other starts a new chain.
        redirects = self.redirects.get(frame, 0) + 1 if params.get("redirectedRequestId") else 0
        self.redirects[frame] = redirects
        limit = self.checker.settings.max_redirects
        if redirects > limit:
            raise forbidden("too_many_redirects", f"more than {limit} redirects")
        request = params.get("request")
        url = request.get("url") if isinstance(request, dict) else None
        # The caller's URL passed; where the page went did not: the site's doing, not the caller's.
        self.checker.check(url if isinstance(url, str) else "", self.group, self.deadline, led=True)

    def received(self, params: dict[str, Any]) -> None:
        """A response the browser received for the page (Network.responseReceived: a document or
        anything the page loads): the address it came from must pass the address policy.

        A document's URL is checked before the browser sends it (``paused``), but the browser then
        resolves its host again, and a host can answer the check here with a public address and
        the browser a moment later with an internal one (DNS rebinding); a sub-resource is never
        checked at all. The browser says which address it connected to: an internal one fails the
        call (raised at the next answer, Cdp), before any of the page is read back, or before the
        read's answer is used. A response without an address (from a cache, a service worker, a
        data: URL) has none to check."""
        response = params.get("response")
        text = response.get("remoteIPAddress") if isinstance(response, dict) else None
        if not isinstance(text, str) or not text:
            return
        try:
            reason = self.checker.address_policy(parse(text.strip("[]")))  # IPv6 as "[2001:db8::1]" too
        except ValueError:
            reason = "not an IP address"
        if reason is not None:
            raise forbidden("address_not_allowed", f"the page led to a refused address: one that is {reason}")

    def _response(self, params: dict[str, Any]) -> None:
        """A response, its body not yet read: a redirect goes on (its next hop is paused in
        turn), and so does a failure (the browser ends the navigation); a document's content type
        must be one of the configured ones."""
        status = params.get("responseStatusCode")
        if "responseErrorReason" in params or (type(status) is int and status in REDIRECTS):
            return
        mime, _ = content_type(header(params.get("responseHeaders"), "content-type"))
        if mime not in self.checker.settings.content_types:
            raise forbidden("content_type_not_allowed", f"the content type {media_type_named(mime)} is not allowed")


def header(headers: object, name: str) -> str:
    """A header's value in CDP's list of name/value entries (names in any case), else ''."""
    for entry in headers if isinstance(headers, list) else ():
        if isinstance(entry, dict) and str(entry.get("name", "")).lower() == name:
            value = entry.get("value")
            return value if isinstance(value, str) else ""
    return ""


class Cdp:
    """A minimal CDP client over one websocket: commands by id; of the events, a paused document
    request is answered (``documents`` checks it: a WebError fails the request) and a received
    response's address is checked (``documents``), the rest are ignored. A refused request of the
    main frame (``main_frame``), and a response from a refused address of any, is raised at the
    next answer."""

    def __init__(self, socket: Any, deadline: Deadline, documents: Documents | None = None) -> None:
        self._socket = socket
        self._deadline = deadline
        self._documents = documents
        self._next = 0
        self.session_id: str | None = None
        self.main_frame: str | None = None
        self.refusal: WebError | None = None

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        expected = await self._write(method, params or {})
        while True:
            left = self._deadline.remaining()  # before the read starts: a timeout refusal leaves nothing pending
            try:
                raw = await asyncio.wait_for(self._socket.recv(), timeout=left)
            except TimeoutError:
                self._deadline.remaining()  # raises the timeout refusal
                continue
            except ConnectionClosed as closed:
                if closed.sent is not None and closed.sent.code == CloseCode.MESSAGE_TOO_BIG:
                    # A message past the socket's cap (the rendered page, serialized twice over):
                    # the same page would fail every retry.
                    raise forbidden("too_large", "the rendered page is too large to read") from None
                raise
            answer = json.loads(raw)
            if answer.get("method") == "Fetch.requestPaused":
                await self._paused(answer.get("params") or {})
                continue
            if answer.get("method") == "Network.responseReceived":
                self._received(answer.get("params") or {})
                continue
            if answer.get("id") != expected:
                continue
            if self.refusal is not None:
                raise self.refusal
            if "error" in answer:
                raise unavailable("browser_error", f"the browser refused {method}")
            result: dict[str, Any] = answer.get("result", {})
            return result

    async def _write(self, method: str, params: dict[str, Any]) -> int:
        """Sends a command; its answer is left to whoever waits for its id."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session_id is not None:
            message["sessionId"] = self.session_id
        await self._socket.send(json.dumps(message))
        return self._next

    async def _paused(self, params: dict[str, Any]) -> None:
        """A document request the browser holds until it is answered: sent on if it passes."""
        answer: dict[str, Any] = {"requestId": params.get("requestId")}
        main = params.get("frameId") == self.main_frame
        try:
            if self._documents is not None:
                self._documents.paused(params)
        except WebError as refusal:
            if main:
                self.refusal = self.refusal or refusal
            else:
                logger.info("frame not loaded", extra={"reason": refusal.reason})
            await self._write("Fetch.failRequest", {**answer, "errorReason": "BlockedByClient"})
            return
        await self._write("Fetch.continueRequest", answer)

    def _received(self, params: dict[str, Any]) -> None:
        try:
            if self._documents is not None:
                self._documents.received(params)
        except WebError as refusal:
            self.refusal = self.refusal or refusal

    async def evaluate(self, expression: str, context: int | None = None) -> Any:
        """``expression``'s value, in the page's own world or, with ``context``, that one."""
        params: dict[str, Any] = {"expression": expression, "returnByValue": True}
        if context is not None:
            params["contextId"] = context
        result = await self.send("Runtime.evaluate", params)
        if "exceptionDetails" in result:
            raise ScriptError
        return result.get("result", {}).get("value")


class ScriptError(Exception):
    """A page script threw (e.g. an invalid selector)."""


@dataclass
class Browser:
    checker: Checker
    sessions: Callable[[], BrowserSession]
    clock: Clock = time.monotonic
    pool: Executor = _STARTS  # where sessions start
    stops: Executor = _STOPS  # where they stop

    def browse(self, url: str, steps: Sequence[Step], group: GroupWeb) -> BrowsedPage:
        settings = self.checker.settings
        deadline = Deadline(self.clock, settings.browse_timeout_seconds)
        target = self.checker.check(url, group, deadline)
        session = self.sessions()
        abandoned: list[Future[Any]] = []  # a start given up on at the deadline
        try:
            late = "the browser session did not start within the call's time"
            ws_url, headers = deadline.within(self.pool, lambda: self._open(session), late, abandoned.append)
            page = asyncio.run(self._drive(ws_url, headers, target.url, steps, deadline, group))
        except WebError:
            raise
        except Exception as error:
            if deadline_passed(deadline):  # a wait the deadline ended (the stream's opening handshake)
                raise deadline.refusal() from None
            logger.warning("browse failed", extra={"host": target.host, "error": type(error).__name__})
            raise unavailable("browser_unavailable", "the browser session failed") from None
        finally:
            if abandoned:  # stopped once its start has ended, on a stop thread (never the start's)
                abandoned[0].add_done_callback(lambda _: self.stops.submit(stop, session))
            else:
                self.stops.submit(stop, session)
        # Where the browser ended up (a redirect of its own, a script's navigation).
        self.checker.check(page.url, group, deadline, led=True)
        return page

    def _open(self, session: BrowserSession) -> tuple[str, dict[str, str]]:
        """The session started; its automation stream's URL and signed headers."""
        settings = self.checker.settings
        # The session also ends on its own shortly after the deadline, should stop ever fail.
        timeout = math.ceil(settings.browse_timeout_seconds) + 60
        session.start(identifier=settings.browser_id, session_timeout_seconds=timeout)
        return session.generate_ws_headers()

    async def _drive(
        self,
        ws_url: str,
        headers: dict[str, str],
        url: str,
        steps: Sequence[Step],
        deadline: Deadline,
        group: GroupWeb,
    ) -> BrowsedPage:
        max_bytes = self.checker.settings.max_bytes
        signed = {name: value for name, value in headers.items() if name.lower() not in _HANDSHAKE}
        async with websockets.connect(
            ws_url,
            additional_headers=signed,
            open_timeout=deadline.remaining(),
            close_timeout=1,  # the closing handshake, past the deadline at most this
            max_size=4 * max_bytes + 65_536,
            user_agent_header=None,
        ) as socket:
            cdp = Cdp(socket, deadline, Documents(self.checker, group, deadline))
            created = await cdp.send("Target.createTarget", {"url": "about:blank"})
            attached = await cdp.send("Target.attachToTarget", {"targetId": created["targetId"], "flatten": True})
            cdp.session_id = attached["sessionId"]
            cdp.main_frame = created["targetId"]  # a page's main frame has its target's id
            await cdp.send("Fetch.enable", {"patterns": DOCUMENT_REQUESTS})
            await cdp.send("Network.enable")  # each response's address (Documents.received)
            navigated = await cdp.send("Page.navigate", {"url": url})
            if navigated.get("errorText"):
                raise unavailable("unreachable", "the browser could not load the page")
            await self._loaded(cdp, deadline)
            for index, step in enumerate(steps):
                await self._step(cdp, index, step, deadline)
            world = await self._world(cdp)
            raw = await self._evaluate(cdp, call(READ, max_bytes), "reading the page", world)
            data = json.loads(raw) if isinstance(raw, str) else {}
            final_url = await self._location(cdp)
        html = str(data.get("html", "")).encode("utf-8", errors="replace")[:max_bytes].decode("utf-8", errors="ignore")
        return BrowsedPage(url=final_url, title=str(data.get("title", "")), html=html, deadline=deadline)

    @staticmethod
    async def _world(cdp: Cdp) -> int:
        """A JavaScript world of our own in the page's main frame: the page's DOM, none of its
        script's globals (what the page replaces there, JSON.stringify or getComputedStyle, is not
        what the read calls)."""
        created = await cdp.send("Page.createIsolatedWorld", {"frameId": cdp.main_frame, "worldName": WORLD})
        context = created.get("executionContextId")
        if type(context) is not int:
            raise unavailable("browser_error", "the browser did not open a world to read the page in")
        return context

    @staticmethod
    async def _location(cdp: Cdp) -> str:
        """The page's URL as the browser holds it (the current entry of its navigation history),
        never as a script in the page reports it: the page can replace whatever our script calls
        (JSON.stringify, a getter) and so choose the URL the checks would see."""
        history = await cdp.send("Page.getNavigationHistory")
        entries, index = history.get("entries"), history.get("currentIndex")
        if isinstance(entries, list) and type(index) is int and 0 <= index < len(entries):
            entry = entries[index]
            if isinstance(entry, dict) and isinstance(entry.get("url"), str):
                return str(entry["url"])
        raise unavailable("browser_error", "the browser did not say which page it shows")

    async def _loaded(self, cdp: Cdp, deadline: Deadline) -> None:
        while await self._evaluate(cdp, READY, "loading the page") != "complete":
            deadline.remaining()
            await asyncio.sleep(POLL_SECONDS)

    async def _step(self, cdp: Cdp, index: int, step: Step, deadline: Deadline) -> None:
        where = f"steps[{index}]"
        if step.action == "wait":
            while not await self._evaluate(cdp, call(EXISTS, step.selector), where):
                deadline.remaining()
                await asyncio.sleep(POLL_SECONDS)
            return
        # A type step has text: the argument model refuses one without before a session starts.
        script = call(CLICK, step.selector) if step.action == "click" else call(TYPE, step.selector, step.text)
        if not await self._evaluate(cdp, script, where):
            raise invalid("no_element", f"{where}: no element matches the selector")
        await self._loaded(cdp, deadline)

    @staticmethod
    async def _evaluate(cdp: Cdp, expression: str, where: str, context: int | None = None) -> Any:
        try:
            return await cdp.evaluate(expression, context)
        except ScriptError:
            raise invalid("script_error", f"{where}: the page script failed (is the selector valid?)") from None


def stop(session: BrowserSession) -> None:
    """The session stopped; a failure logged (the session ends on its own at its timeout)."""
    try:
        session.stop()
    except Exception as error:
        logger.warning("browser session not stopped", extra={"error": type(error).__name__})
