"""A loopback HTTP server standing in for a legacy product API (orders and customers).

It answers the way screen-era APIs do: OAuth2 client-credentials tokens, deep and verbose JSON,
every record at once. Faults can be queued to exercise the adapter's failure handling, and any
path (the token endpoint's included) can be given a hostile ``Answer``: malformed, huge, lying
about its length, dripped a byte at a time, or never finished.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qs, unquote_plus, urlparse

from tests.lambdas.loopback import QuietHandler, loopback

CLIENT_ID = "gateway-client"
CLIENT_SECRET = "s3cr3t-for-tests"
CUSTOMER_ID = "C-1001"
CUSTOMER_EMAIL = "ada@example.com"
ORDER_COUNT = 150
STATUSES = ("placed", "paid", "shipped", "delivered", "returned")


def order(number: int) -> dict[str, Any]:
    """One order as a product API returns it: everything for every screen that ever needed it."""
    status = STATUSES[number % len(STATUSES)]
    created = f"2026-{1 + number % 12:02d}-{1 + number % 28:02d}T10:{number % 60:02d}:00Z"
    lines = [
        {
            "lineId": f"L-{number:04d}-{line}",
            "sku": f"SKU-{(number * 7 + line) % 997:04d}",
            "description": f"Ergonomic product number {line} with extended warranty and accessories bundle",
            "quantity": 1 + line,
            "unitPrice": {"amount": 19.99 + line, "currency": "EUR", "formatted": f"€{19.99 + line:.2f}"},
            "attributes": {"colour": "graphite", "size": "M", "giftWrap": False, "personalisation": None},
            "_links": {"self": {"href": f"/v2/orders/O-{number:05d}/lines/{line}"}},
        }
        for line in range(4)
    ]
    return {
        "orderId": f"O-{number:05d}",
        "orderNumber": f"2026-{number:08d}",
        "status": {
            "code": status,
            "label": status.title(),
            "updatedAt": created,
            "history": [
                {"code": s, "at": created, "by": "system", "note": "automatic transition"} for s in STATUSES[:3]
            ],
        },
        "customer": {"customerId": CUSTOMER_ID, "displayName": "Ada Lovelace", "segment": "gold", "locale": "en-GB"},
        "pricing": {
            "currency": "EUR",
            "lines": lines,
            "totals": {
                "grand": {"amount": round(100 + number * 1.5, 2), "formatted": f"€{100 + number * 1.5:.2f}"},
                "tax": {"amount": 19.0, "rate": 0.19, "formatted": "€19.00"},
                "shipping": {"amount": 4.95, "method": "standard", "formatted": "€4.95"},
                "discounts": [
                    {"code": "WELCOME10", "amount": 10.0, "description": "Welcome discount for new accounts"}
                ],
            },
        },
        "fulfilment": {
            "carrier": {"code": "DHL", "name": "DHL Express", "service": "Parcel Connect", "contact": "+49 228 182 0"},
            "tracking": {
                "number": f"TRK{number:010d}",
                "url": f"https://tracking.example.com/TRK{number:010d}",
                "events": [{"at": created, "where": "Leipzig hub", "what": "Processed at facility"} for _ in range(3)],
            },
            "warehouse": {
                "code": "LEJ-2",
                "address": {"line1": "Logistics Park 4", "city": "Leipzig", "country": "DE"},
            },
        },
        "audit": {"createdAt": created, "createdBy": "web-checkout", "etag": uuid.UUID(int=number).hex, "version": 7},
        "metadata": {"channel": "web", "campaign": "autumn-sale", "abTests": ["checkout-v3", "free-shipping-banner"]},
        "_links": {
            "self": {"href": f"/v2/orders/O-{number:05d}"},
            "customer": {"href": f"/v2/customers/{CUSTOMER_ID}"},
            "invoice": {"href": f"/v2/orders/O-{number:05d}/invoice.pdf"},
        },
    }


CUSTOMER = {
    "customerId": CUSTOMER_ID,
    "profile": {"name": {"given": "Ada", "family": "Lovelace", "display": "Ada Lovelace"}, "email": CUSTOMER_EMAIL},
    "account": {
        "segment": "gold",
        "since": "2019-04-01",
        "status": "active",
        "flags": {"vip": True, "fraudHold": False},
    },
    "preferences": {"locale": "en-GB", "marketing": {"email": False, "sms": False}, "currency": "EUR"},
    "_links": {"self": {"href": f"/v2/customers/{CUSTOMER_ID}"}},
}
ADDRESSES = [
    {
        "addressId": "A-1",
        "type": "billing",
        "line1": "12 Analytical Row",
        "city": "London",
        "postcode": "N1 9GU",
        "country": "GB",
    },
    {
        "addressId": "A-2",
        "type": "shipping",
        "line1": "1 Engine Yard",
        "city": "London",
        "postcode": "E1 6AN",
        "country": "GB",
    },
]
META = {
    "apiVersion": "2.14.3",
    "deprecations": ["v1 endpoints retire 2027-01-01"],
    "generatedAt": "2026-11-29T18:00:00Z",
}


ARTICLE_COUNT = 45
ARTICLES_PAGE = 20
POISON_ARTICLE = 17  # published without a body: the pull connector must dead-letter it


def article(number: int) -> dict[str, Any]:
    """A help-centre article as the content API serves it (the pull connector's source)."""
    body = None if number == POISON_ARTICLE else {"text": f"How to do task {number}.", "format": "plain"}
    return {
        "article": {
            "id": f"A-{number:03d}",
            "title": f"Task {number}",
            "body": body,
            "audit": {"updatedAt": f"2026-11-{1 + number % 28:02d}T08:00:00Z", "updatedBy": "editor"},
            "locale": "en-GB",
        }
    }


@dataclass(frozen=True)
class Answer:
    """What the server sends for a path instead of its real answer."""

    body: bytes = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    repeat: int = 1  # the body sent this many times: a large answer the server never holds whole
    piece_bytes: int = 0  # sent this many bytes at a time (0: the body at once)
    pause_seconds: float = 0.0  # between pieces
    content_length: int | Literal["actual", "none"] = "actual"  # "none": the body ends at close; n: a lie
    hold: bool = False  # after the headers, send nothing until the server stops
    head_padding: int = 0  # a header of this many bytes more; with piece_bytes, the head drips too


@dataclass
class LegacyApi:
    """Test handle on the server: its URL, what it saw, and faults to inject."""

    url: str = ""
    token_ttl: int = 3600
    tokens: dict[str, float] = field(default_factory=dict)
    token_requests: int = 0
    requests: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # each resource request's target as sent (path and query)
    connections: int = 0  # TCP connections the server accepted
    # Compress every resource answer unless the request's Accept-Encoding is identity (as a server
    # may when a client names no coding or one it does not know).
    gzip_unless_identity: bool = False
    faults: list[int] = field(default_factory=list)  # statuses for the next resource requests
    answers: dict[str, Answer] = field(default_factory=dict)  # path -> hostile answer (token path too)
    sent_bytes: int = 0  # body bytes of hostile answers that reached the socket
    stopped: threading.Event = field(default_factory=threading.Event)  # ends drips and holds
    lock: threading.Lock = field(default_factory=threading.Lock)
    # The one client the token endpoint knows: (client_id, client_secret).
    client: tuple[str, str] = (CLIENT_ID, CLIENT_SECRET)

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def orders_bytes(self) -> int:
        return len(_orders_body())


def _orders_body() -> bytes:
    return json.dumps({"data": {"orders": [order(n) for n in range(ORDER_COUNT)]}, "meta": META}).encode()


def _articles(query: dict[str, list[str]]) -> dict[str, Any]:
    """Articles changed at or after ``updated_since``, a page at a time (``cursor`` = offset)."""
    since = query.get("updated_since", [""])[0]
    changed = [a for a in map(article, range(ARTICLE_COUNT)) if a["article"]["audit"]["updatedAt"] >= since]
    offset = int(query.get("cursor", ["0"])[0])
    page = changed[offset : offset + ARTICLES_PAGE]
    more = offset + ARTICLES_PAGE < len(changed)
    return {"items": page, **({"next_cursor": str(offset + ARTICLES_PAGE)} if more else {}), "meta": META}


def _orders(query: dict[str, list[str]]) -> Any:
    """The customer's orders: every one at once (pre-serialized), or those of one ``status``."""
    if "status" not in query:
        return _orders_body()
    orders = [order(n) for n in range(ORDER_COUNT) if order(n)["status"]["code"] == query["status"][0]]
    return {"data": {"orders": orders}, "meta": META}


def _resource(path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
    """The answer to an authorized GET: status and body (bytes are sent as they are)."""
    if path == "/v2/customers":
        found = query.get("email") == [CUSTOMER_EMAIL]
        return 200, {
            "data": {"items": [{"customerId": CUSTOMER_ID, "email": CUSTOMER_EMAIL}] if found else []},
            "meta": META,
        }
    answers: dict[str, Callable[[], Any]] = {
        f"/v2/customers/{CUSTOMER_ID}/orders": lambda: _orders(query),
        f"/v2/customers/{CUSTOMER_ID}": lambda: {"data": CUSTOMER, "meta": META},
        f"/v2/customers/{CUSTOMER_ID}/addresses": lambda: {"data": {"items": ADDRESSES}, "meta": META},
        "/api/v2/articles": lambda: _articles(query),
    }
    answer = answers.get(path)
    if answer is None and path.startswith("/v2/orders/"):  # one order by id (a single-call tool's)
        number = path.removeprefix("/v2/orders/O-")
        if number.isdigit() and int(number) < ORDER_COUNT:
            return 200, {"data": order(int(number)), "meta": META}
    return (200, answer()) if answer else (404, {"error": "not_found"})


def _handler(api: LegacyApi) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"  # connections kept alive between requests, as services do
        wbufsize = 1 << 16  # an answer's head and body leave together (a hostile answer's flush as they go)

        def setup(self) -> None:
            super().setup()
            with api.lock:
                api.connections += 1

        def do_POST(self) -> None:
            form = _form(self.headers, self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self._reply(*_token_answer(api, urlparse(self.path).path, self.headers.get("Authorization"), form))

        def do_GET(self) -> None:
            parsed = urlparse(self.path)
            api.requests.append(parsed.path)
            api.targets.append(self.path)
            refused = _refused(api, self.headers)
            if refused is not None:
                return self._send(*refused)
            hostile = api.answers.get(parsed.path)
            return self._reply(
                *((hostile.status, hostile) if hostile else _resource(parsed.path, parse_qs(parsed.query)))
            )

        def _reply(self, status: int, body: Any) -> None:
            """A hostile Answer as it says, bytes as they are, anything else as JSON."""
            if isinstance(body, Answer):
                return _send_answer(self, api, body)
            return self._raw(status, body) if isinstance(body, bytes) else self._send(status, body)

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            self._raw(status, json.dumps(body).encode(), headers)

        def _raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
            data, headers = _coded(api, self, data, headers or {})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _form(headers: Message[str, str], body: bytes) -> dict[str, list[str]]:
    """A POST's form fields, or none when its Content-Type does not say it is a form."""
    content_type = (headers.get("Content-Type") or "").partition(";")[0].strip().lower()
    return parse_qs(body.decode()) if content_type == "application/x-www-form-urlencoded" else {}


def _refused(api: LegacyApi, headers: Message[str, str]) -> tuple[int, Any, dict[str, str]] | None:
    """A resource request's refusal: a token the service did not issue (or has forgotten), an
    Accept without JSON (media types match in any case), or the next queued fault."""
    token = (headers.get("Authorization") or "").removeprefix("Bearer ")
    with api.lock:
        valid = api.tokens.get(token, 0) > time.monotonic()
        fault = api.faults.pop(0) if api.faults else None
    if not valid:
        return 401, {"error": "invalid_token"}, {}
    ranges = {part.partition(";")[0].strip().lower() for part in (headers.get("Accept") or "").split(",")}
    if not ranges & {"application/json", "application/*", "*/*"}:
        return 406, {"error": "not_acceptable"}, {}
    if fault:
        return fault, {"error": "injected"}, {"Retry-After": "7"}
    return None


def _coded(
    api: LegacyApi, request: BaseHTTPRequestHandler, data: bytes, headers: dict[str, str]
) -> tuple[bytes, dict[str, str]]:
    """A resource answer's body, gzipped when the API does so unless the request's Accept-Encoding
    is identity (codings match in any case)."""
    accepted = (request.headers.get("Accept-Encoding") or "").strip().lower()
    if not api.gzip_unless_identity or request.command != "GET" or accepted == "identity":
        return data, headers
    return gzip.compress(data), {**headers, "Content-Encoding": "gzip"}


def _basic_client(authorization: str | None) -> tuple[str, str] | None:
    """The client of a Basic header as RFC 6749 2.3.1 has it: base64 of the form-urlencoded id, a
    colon and the form-urlencoded secret (so a colon or a % in either reads as itself)."""
    scheme, _, encoded = (authorization or "").partition(" ")
    try:
        client_id, colon, secret = base64.b64decode(encoded, validate=True).decode().partition(":")
        client = unquote_plus(client_id, errors="strict"), unquote_plus(secret, errors="strict")
    except ValueError:  # not base64, or not UTF-8 (binascii.Error and UnicodeDecodeError are ValueErrors)
        return None
    return client if scheme == "Basic" and colon else None


def _token_answer(
    api: LegacyApi, path: str, authorization: str | None, form: Mapping[str, list[str]]
) -> tuple[int, Any]:
    """The token endpoint: a fresh token for the known client asking with the client-credentials
    grant (a form, RFC 6749 4.4.2), or the hostile answer queued for it."""
    if path != "/oauth/token" or _basic_client(authorization) != api.client:
        return 401, {"error": "invalid_client"}
    if form != {"grant_type": ["client_credentials"]}:
        return 400, {"error": "unsupported_grant_type"}
    if (hostile := api.answers.get("/oauth/token")) is not None:
        return hostile.status, hostile
    token = uuid.uuid4().hex
    with api.lock:
        api.token_requests += 1
        api.tokens[token] = time.monotonic() + api.token_ttl
    return 200, {"access_token": token, "token_type": "Bearer", "expires_in": api.token_ttl}


def _send_answer(handler: BaseHTTPRequestHandler, api: LegacyApi, answer: Answer) -> None:
    head = [
        f"{handler.protocol_version} {answer.status} Hostile",
        "Connection: close",
        *(f"{name}: {value}" for name, value in answer.headers.items()),
    ]
    length = len(answer.body) * answer.repeat if answer.content_length == "actual" else answer.content_length
    if length != "none":
        head.append(f"Content-Length: {length}")
    # A hostile answer ends its connection: one without a length (or that lies, or is held) ends
    # only when it does, and one whose head the client cannot parse must not be followed on it.
    handler.close_connection = True
    if answer.head_padding:
        head.append(f"X-Padding: {'x' * answer.head_padding}")
    head_bytes = "".join(f"{line}\r\n" for line in [*head, ""]).encode()
    try:
        if answer.head_padding:  # the head drips (counted as sent) like a body would
            _drip(handler, api, answer, head_bytes, times=1)
        else:
            handler.wfile.write(head_bytes)
            handler.wfile.flush()
        if answer.hold:
            api.stopped.wait()
            return
        _drip(handler, api, answer, answer.body, times=answer.repeat)
    except OSError:  # the client gave up and closed the connection
        return


def _drip(handler: BaseHTTPRequestHandler, api: LegacyApi, answer: Answer, data: bytes, *, times: int) -> None:
    """Send ``data`` ``times`` times, piece_bytes at a time with pause_seconds between pieces."""
    piece = answer.piece_bytes or max(len(data), 1)
    pieces = [data[start : start + piece] for start in range(0, len(data), piece)]
    for _ in range(times):
        for chunk in pieces:
            if api.stopped.is_set():
                return
            handler.wfile.write(chunk)
            handler.wfile.flush()
            with api.lock:
                api.sent_bytes += len(chunk)
            if answer.pause_seconds:
                api.stopped.wait(answer.pause_seconds)


@contextmanager
def serve() -> Iterator[LegacyApi]:
    api = LegacyApi()
    with loopback(_handler(api)) as url:
        api.url = url
        try:
            yield api
        finally:
            api.stopped.set()  # a drip or a hold still running ends with the test


# What each tool declares for this API's records (declared field -> upstream path), as a
# deployment's legacy_apis.<api>.tools would: the tests' own, not the sample cdk.json's.
FIELDS = {
    "find_orders": {
        "order_id": "orderId",
        "status": "status.code",
        "placed_at": "audit.createdAt",
        "total": "pricing.totals.grand.amount",
        "currency": "pricing.currency",
        "tracking_number": "fulfilment.tracking.number",
    },
    "get_customer": {
        "customer_id": "customer.customerId",
        "name": "customer.profile.name.display",
        "segment": "customer.account.segment",
        "status": "customer.account.status",
        "billing_city": "addresses[0].city",
        "shipping_city": "addresses[1].city",
    },
}
