"""One page from the hostile web, bounded.

Every hop (the first URL and each redirect) is checked the same way before anything is sent: the
URL's scheme (https unless the deployment allows http), no user information, the host against the
caller group's allow- and deny-lists, and every address the host resolves to against the address
policy (addresses.py). The connection is then made to the checked address itself (pinned; TLS still
verifies the certificate for the host name and sends it as SNI), so DNS rebinding cannot swap it.
Redirects are followed here, at most ``max_redirects``; the body is read in chunks and refused as
soon as it passes ``max_bytes``, as sent or as decompressed, and the whole answer (interim responses,
headers, chunk framing and trailers too) as soon as it passes ``max_bytes`` and HEADROOM (budget.py);
one deadline covers the whole call
(connects, the TLS handshake, every redirect, and every read from the socket: status line, headers,
chunk sizes and body alike, each waiting at most what is left of it), so a server that drips a byte
at a time is cut off. Only the configured content types are read at all. Name resolution counts
against the deadline too (on a worker thread: getaddrinfo has no timeout of its own).

The site's answer is hostile too: a Content-Length that is not plain digits, a compressed body that
does not decompress (or ends before its compressed stream does, or goes on after it) and a Location
that is not a URL are refusals with a reason; a redirect to a URL the checks refuse is ``forbidden``
("the page led to a refused URL"), never the caller's ``invalid_argument``; no refusal names a host
the site chose (a redirect's: only the caller's own URL is named, Checker.check); a page's declared
charset is used only if it is a plain text charset (``TEXT_CODECS``), otherwise the page is read as
UTF-8. A refusal names the site's content type or encoding only when it is one (a media type, a
short token); anything else in those headers is never repeated.
"""

from __future__ import annotations

import encodings
import encodings.aliases
import ipaddress
import re
import socket
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor, TimeoutError as FuturesTimeout
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import SplitResult, quote, urljoin, urlsplit

import certifi
import urllib3
from urllib3.exceptions import HTTPError as Urllib3Error

from shared.deadline_http import reads_within
from shared.logs import service_logger
from web_mcp.addresses import Address, AddressPolicy, blocked_reason, parse
from web_mcp.budget import HEADROOM, CountedHTTPPool, CountedHTTPSPool, answers_within
from web_mcp.contract import MAX_URL, GroupWeb, Settings, normalise_domain
from web_mcp.errors import WebError, forbidden, invalid, unavailable

logger = service_logger("web-mcp")

CHUNK = 16_384
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "web-mcp/1.0 (+AgentCore tools gateway)"
# host, port -> the addresses it resolves to (as text)
Resolver = Callable[[str, int], list[str]]
# Where resolutions run, so a call can stop waiting for one at its deadline (a few at a time: one
# given up on holds its worker until the system resolver's own timeouts end it).
_RESOLVERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")
Clock = Callable[[], float]
_URL_SAFE = "/?&=%:@!$'()*+,;~-._[]"
_DIGITS = re.compile(r"[0-9]+")
# What of a site's Content-Type and Content-Encoding a refusal may name: a media type as the
# configuration spells one (stacks/config/fields.py MimeType, copied: lambdas import no stacks) and
# a short token. The header is the site's text, any length, any characters: read into an error
# message (outside the external_content wrapper, never screened) it could speak to the agent.
MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
ENCODING_TOKEN = re.compile(r"[a-z0-9-]{1,20}")
# The codecs a page's charset may name (Python's names; its aliases of them are accepted too).
# Only text codecs that decode in linear time and never raise with errors="replace": not idna,
# punycode, utf-7, rot13 or the like, whose names a site can send just as easily.
TEXT_CODECS = frozenset(
    {
        "ascii",
        "utf_8",
        "utf_8_sig",
        *(f"utf_{bits}{order}" for bits in (16, 32) for order in ("", "_le", "_be")),
        "latin_1",
        *(f"iso8859_{part}" for part in (2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16)),
        *(f"cp{page}" for page in range(1250, 1259)),
        "koi8_r",
        "koi8_u",
        "cp866",
        "cp874",
        "tis_620",
        "mac_roman",
        "mac_cyrillic",
        "shift_jis",
        "cp932",
        "euc_jp",
        "iso2022_jp",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
        "big5hkscs",
        "euc_kr",
        "cp949",
    }
)

# Labels of the WHATWG Encoding Standard (what browsers and pages use) that Python's aliases lack.
WEB_LABELS = {
    "windows_874": "cp874",
    "x_mac_cyrillic": "mac_cyrillic",
    "x_mac_ukrainian": "mac_cyrillic",
    "windows_31j": "cp932",
    "x_sjis": "shift_jis",
    "iso_8859_8_i": "iso8859_8",
    "csiso88598i": "iso8859_8",
    **{f"x_cp{page}": f"cp{page}" for page in range(1250, 1259)},
}


def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses in the resolver's own order (RFC 6724), IPv4 first: every one is
    checked, and the connection is pinned to the first, which a runtime without IPv6 can reach."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    ordered = list(dict.fromkeys(str(info[4][0]) for info in infos))
    return sorted(ordered, key=lambda address: ":" in address)


@dataclass(frozen=True)
class Target:
    """A checked hop: the URL as sent, its host (normalised), port and the pinned address."""

    url: str
    scheme: str
    host: str
    port: int
    address: Address
    target: str  # path and query
    led: bool = False  # a URL the page led to, not the caller's (Checker.check)

    @property
    def site(self) -> str:
        """The site as a refusal names it: by its host only if the caller chose it."""
        return "the site the page led to" if self.led else f"the site {self.host}"

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        name = f"[{self.host}]" if ":" in self.host else self.host
        return name if self.port == default else f"{name}:{self.port}"


@dataclass(frozen=True)
class Page:
    url: str
    content_type: str
    charset: str | None
    body: bytes
    # The call's deadline, still running: reading the page's text counts against it too.
    deadline: Deadline | None = field(default=None, compare=False, repr=False)

    def text(self) -> str:
        return self.body.decode(text_codec(self.charset), errors="replace")


T = TypeVar("T")


class Deadline:
    def __init__(self, clock: Clock, seconds: float) -> None:
        self._clock = clock
        self._seconds = seconds
        self._end = clock() + seconds

    def remaining(self) -> float:
        left = self._end - self._clock()
        if left <= 0:
            raise self.refusal()
        return left

    def refusal(self) -> WebError:
        """The call's refusal once the deadline has passed."""
        return unavailable("timeout", f"the page did not arrive within {self._seconds:g} seconds")

    def within(
        self,
        pool: Executor,
        work: Callable[[], T],
        late: str,
        abandoned: Callable[[Future[T]], object] | None = None,
    ) -> T:
        """``work``'s result, waited for at most what is left: a blocking call with no deadline of
        its own (getaddrinfo; an AWS call, whose timeouts are per attempt) runs on one of
        ``pool``'s threads, which a call given up on keeps until it ends by itself. Past the
        deadline: a ``timeout`` refusal, ``late`` its message, and ``abandoned`` called with the
        call's future (to undo what it does once it is done), unless the call never started: it
        is cancelled then (a pool whose threads are all busy has not run it yet)."""
        left = self.remaining()
        pending = pool.submit(work)
        try:
            return pending.result(timeout=left)
        except FuturesTimeout:
            if pending.done():  # done as the wait ended, or the call's own TimeoutError
                return pending.result()
            if not pending.cancel() and abandoned is not None:
                abandoned(pending)
            raise unavailable("timeout", late) from None


@dataclass
class Checker:
    """The URL, domain and address checks every hop passes (shared by web_fetch and web_browse)."""

    settings: Settings
    resolver: Resolver = system_resolver
    address_policy: AddressPolicy = blocked_reason

    def check(self, url: str, group: GroupWeb, deadline: Deadline | None = None, *, led: bool = False) -> Target:
        """The hop checked and its address pinned; ``deadline``: the call's, which the host's
        resolution counts against too.

        ``led``: a URL the page led to (a redirect's Location, a document the browser loads, where
        it ended up), not the caller's. Its refusal is ``forbidden`` with the check's reason,
        whatever kind the check gave it, since the caller's own URL passed (``invalid_argument``
        would have the agent fix an argument that was never wrong); a host that does not resolve
        stays ``not_found``. And neither it nor any later refusal of its hop (Target.site) names
        its host or address: the site chose them, and a host's labels can be words for the agent
        ("ignore-all-previous-instructions.example"), read outside the external_content wrapper
        and never screened."""
        try:
            parts = self._parts(url)
            host = self._host(parts)
            refusal = group.refusal(host, "its domain" if led else None)
            if refusal is not None:
                raise forbidden("domain_not_allowed", refusal)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            address = self._address(host, port, deadline, led)
        except WebError as refused:
            if not led or refused.kind not in ("invalid_argument", "forbidden"):
                raise
            message = refused.message.removeprefix("url: ")
            raise WebError("forbidden", refused.reason, f"the page led to a refused URL: {message}") from None
        # Characters a request line cannot carry are percent-encoded; existing escapes are kept.
        target = quote((parts.path or "/") + (f"?{parts.query}" if parts.query else ""), safe=_URL_SAFE)
        return Target(url=url, scheme=parts.scheme, host=host, port=port, address=address, target=target, led=led)

    def _parts(self, url: str) -> SplitResult:
        try:
            parts = urlsplit(url.strip())
            parts.port  # noqa: B018 - raises ValueError for a malformed port
            # A lone surrogate (JSON can escape one; a browser's JSON can hold one) is no
            # character of any URL, and no request line could carry it (UnicodeEncodeError).
            url.encode("utf-8")
        except ValueError:
            raise invalid("invalid_url", "url: not a valid URL") from None
        schemes = ("https",) if self.settings.https_only else ("https", "http")
        if parts.scheme.lower() not in schemes:
            raise invalid("scheme_not_allowed", f"url: the scheme must be {' or '.join(schemes)}")
        if parts.username is not None or parts.password is not None:
            raise invalid("userinfo", "url: user names and passwords in URLs are not allowed")
        if not parts.hostname:
            raise invalid("invalid_url", "url: no host")
        return parts._replace(scheme=parts.scheme.lower())

    @staticmethod
    def _host(parts: SplitResult) -> str:
        hostname = parts.hostname or ""
        try:
            address = ipaddress.ip_address(hostname)
        except ValueError:
            pass
        else:
            # A zone ("fe80::1%eth0") names an interface of the machine, never a web site; and it is
            # any text but "%", which would reach the agent in every message that names the host.
            if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
                raise invalid("invalid_url", "url: an IPv6 address with a zone is not a web address")
            return str(address)
        try:
            return normalise_domain(hostname)
        except ValueError:
            raise invalid("invalid_url", "url: the host is not a valid domain name") from None

    def _address(self, host: str, port: int, deadline: Deadline | None, led: bool) -> Address:
        """The host's first address, every one checked; ``led``: named in no message (check)."""
        named = "the host of a URL the page led to" if led else f"the host {host}"
        try:
            addresses = [parse(text) for text in self._resolve(host, port, deadline, named)]
        except (OSError, UnicodeError, ValueError):
            raise WebError("not_found", "unresolvable", f"{named} could not be resolved") from None
        if not addresses:
            raise WebError("not_found", "unresolvable", f"{named} could not be resolved")
        for address in addresses:
            reason = self.address_policy(address)
            if reason is not None:
                where = (
                    f"its host's address is {reason}" if led else f"the address of host {host} is {reason} ({address})"
                )
                raise forbidden("address_not_allowed", where)
        return addresses[0]

    def _resolve(self, host: str, port: int, deadline: Deadline | None, named: str) -> list[str]:
        """The resolver's answer within what is left of the deadline: getaddrinfo has no timeout
        of its own but the system resolver's (seconds per try, several tries), so it runs on a
        worker thread, which a resolution given up on keeps until the resolver ends it."""
        if deadline is None:
            return self.resolver(host, port)
        late = f"{named} did not resolve within the call's time"
        return deadline.within(_RESOLVERS, lambda: self.resolver(host, port), late)


@dataclass
class Fetcher:
    checker: Checker
    clock: Clock = time.monotonic
    ca_certs: str = field(default_factory=certifi.where)

    @property
    def settings(self) -> Settings:
        return self.checker.settings

    def fetch(self, url: str, group: GroupWeb) -> Page:
        deadline = Deadline(self.clock, self.settings.timeout_seconds)
        current = url
        for hop in range(self.settings.max_redirects + 1):
            target = self.checker.check(current, group, deadline, led=hop > 0)
            logger.info("fetching", extra={"host": target.host, "hop": hop})
            location = self._request(target, deadline)
            if isinstance(location, Page):
                return location
            try:
                current = urljoin(target.url, location)
            except ValueError:  # e.g. "http://[::1": not a URL at all
                raise unavailable("bad_redirect", f"{target.site} redirected to a malformed Location") from None
            if len(current) > MAX_URL:  # a caller's URL is held to it: a site's is too
                raise unavailable("bad_redirect", f"{target.site} redirected to a URL longer than {MAX_URL} characters")
        raise forbidden("too_many_redirects", f"more than {self.settings.max_redirects} redirects")

    def _pool(self, target: Target, deadline: Deadline) -> urllib3.HTTPConnectionPool:
        timeout = urllib3.Timeout(connect=deadline.remaining(), read=deadline.remaining())
        address = str(target.address)
        if target.scheme == "https":
            return CountedHTTPSPool(
                address,
                target.port,
                timeout=timeout,
                retries=False,
                maxsize=1,
                cert_reqs="CERT_REQUIRED",
                ca_certs=self.ca_certs,
                server_hostname=target.host,
                assert_hostname=target.host,
            )
        return CountedHTTPPool(address, target.port, timeout=timeout, retries=False, maxsize=1)

    def _request(self, target: Target, deadline: Deadline) -> Page | str:
        """The page, or the Location of a redirect."""
        pool = self._pool(target, deadline)
        try:
            # Status lines, headers, chunk sizes, trailers and body: each socket read within the
            # deadline, and all of them together within max_bytes and HEADROOM.
            with reads_within(deadline.remaining), answers_within(self.settings.max_bytes + HEADROOM):
                response = pool.urlopen(
                    "GET",
                    target.target,
                    headers={
                        "Host": target.host_header,
                        "User-Agent": USER_AGENT,
                        "Accept": ", ".join(self.settings.content_types),
                        "Accept-Encoding": "gzip, deflate, identity",
                    },
                    redirect=False,
                    retries=False,
                    preload_content=False,
                    decode_content=False,
                    assert_same_host=False,
                )
            try:
                return self._answer(target, response, deadline)
            finally:
                response.release_conn()
                response.close()
        except WebError:
            raise
        except (Urllib3Error, OSError) as error:
            if deadline_passed(deadline):
                raise unavailable(
                    "timeout", f"the page did not arrive within {self.settings.timeout_seconds:g} seconds"
                ) from None
            logger.info("fetch failed", extra={"host": target.host, "error": type(error).__name__})
            raise unavailable("unreachable", f"{target.site} could not be reached") from None
        finally:
            pool.close()

    def _answer(self, target: Target, response: Any, deadline: Deadline) -> Page | str:
        status = int(response.status)
        if status in REDIRECTS:
            location = response.headers.get("Location")
            if not location:
                raise unavailable("bad_redirect", f"{target.site} redirected without a Location")
            return str(location)
        if status in (404, 410):
            raise WebError("not_found", "http_status", f"{target.site} answered HTTP {status}")
        if status != 200:
            raise unavailable("http_status", f"{target.site} answered HTTP {status}")
        mime, charset = content_type(response.headers.get("Content-Type", ""))
        if mime not in self.settings.content_types:
            raise forbidden("content_type_not_allowed", f"the content type {media_type_named(mime)} is not allowed")
        length = response.headers.get("Content-Length")
        if length is not None:
            self._check_length(target, length)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            body = self._read(response, deadline, encoding)
        except _EncodingError as bad:
            raise unavailable("bad_encoding", f"{target.site} sent {bad}") from None
        return Page(url=target.url, content_type=mime, charset=charset, body=body, deadline=deadline)

    def _check_length(self, target: Target, header: str) -> None:
        """A declared length over the limit is refused before reading. Repeats of one value are
        allowed (RFC 9110 8.6); anything but ASCII digits is refused (``str.isdigit`` takes "²"),
        and a number longer than the limit's is too large without converting it."""
        values = {value.strip() for value in header.split(",")}
        if len(values) != 1 or not _DIGITS.fullmatch(value := values.pop()):
            raise unavailable("bad_length", f"{target.site} sent an invalid Content-Length")
        limit = self.settings.max_bytes
        digits = value.lstrip("0") or "0"
        if len(digits) > len(str(limit)) or int(digits) > limit:
            raise forbidden("too_large", f"the page is larger than {limit} bytes")

    def _read(self, response: Any, deadline: Deadline, encoding: str) -> bytes:
        decoder = _decoder(encoding)
        limit = self.settings.max_bytes
        body = bytearray()
        sent = 0  # bytes as they came, compressed or not
        while True:
            deadline.remaining()
            chunk = response.read1(CHUNK)
            if not chunk:
                break
            # Counted as sent as well as decompressed: a compressed body can decompress to nothing
            # at all (empty stored blocks, a gzip header's name that never ends) for as long as the
            # site sends it, which would otherwise be read until the deadline.
            sent += len(chunk)
            if sent > limit:
                raise forbidden("too_large", f"the page is larger than {limit} bytes")
            if decoder is not None:
                chunk = _inflate(decoder, chunk, limit + 1 - len(body), encoding)
            body += chunk
            if len(body) > limit:
                raise forbidden("too_large", f"the page is larger than {limit} bytes")
        # The body ended where the compressed stream had not (a gzip member without its trailer):
        # what came out so far is part of a page, not the page. An empty body is an empty page.
        if decoder is not None and sent and not decoder.eof:
            raise _EncodingError(f"a {encoding} body that ends before its compressed data does")
        return bytes(body)


class _EncodingError(Exception):
    """What is wrong with a compressed body: "a gzip body that ..."."""


def _decoder(encoding: str) -> Any:
    """A decompressor for the Content-Encoding, or None for none."""
    if encoding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj()
    if encoding not in ("", "identity"):
        named = encoding if ENCODING_TOKEN.fullmatch(encoding) else "(not an encoding name)"
        raise forbidden("encoding_not_allowed", f"the content encoding {named} is not supported")
    return None


def _inflate(decoder: Any, chunk: bytes, room: int, encoding: str) -> bytes:
    """At most ``room`` bytes of what ``chunk`` decompresses to (so never more than one byte past
    the limit comes out); anything after the compressed stream's end is refused at once, never
    kept, however long."""
    try:
        out: bytes = decoder.decompress(chunk, room)
    except zlib.error:
        raise _EncodingError(f"a body that is not {encoding} data") from None
    if decoder.unused_data:
        raise _EncodingError(f"a {encoding} body that has data after its compressed data")
    return out


def deadline_passed(deadline: Deadline) -> bool:
    try:
        deadline.remaining()
    except WebError:
        return True
    return False


def text_codec(charset: str | None) -> str:
    """The codec a page's declared charset names if it is one of ``TEXT_CODECS``, else UTF-8. Names
    are matched as Python's codec registry would, but without asking it (it imports a module for any
    name and caches every miss)."""
    if not charset:
        return "utf_8"
    name = encodings.normalize_encoding(charset.lower())
    name = WEB_LABELS.get(name) or encodings.aliases.aliases.get(name, name)
    return name if name in TEXT_CODECS else "utf_8"


def media_type_named(mime: str) -> str:
    """A refused media type as a message may name it (MEDIA_TYPE), else a fixed phrase."""
    if not mime:
        return "(none)"
    return mime if MEDIA_TYPE.fullmatch(mime) else "(not a media type)"


def content_type(header: str) -> tuple[str, str | None]:
    """The media type (lower case) and charset of a Content-Type header."""
    mime, *params = header.split(";")
    charset = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"').lower() or None
    return mime.strip().lower(), charset
