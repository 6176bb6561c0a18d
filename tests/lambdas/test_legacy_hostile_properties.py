"""Any upstream answer, property-tested, for the legacy tools test_legacy_hostile.py covers only by
example: ``get_customer`` and every single-call tool the config in use declares (cdk.json's, or the
variant's), each deployed as the stack deploys it (its target's settings in the environment, the
single-call declarations as the runtime document) against the loopback stand-in of its API.

An answer is any JSON value (wrong types at any level, huge, negative and out-of-range numbers,
odd texts, lone surrogates escaped in the JSON, escapes and tokens no JSON parser takes) planted
anywhere along the paths the tool reads, or any bytes: other encodings, truncated, compressed
unasked, a Content-Length that lies. Each outcome is exactly what a model of the tool predicts:

- an answer the client cannot decode (not strict UTF-8 JSON of bounded depth, finite numbers) is
  ``upstream_unavailable`` saying so, with no request after it;
- a decodable answer of the wrong shape is ``upstream_unavailable`` naming what changed;
- anything else is the tool's promised answer, each declared field the upstream's value at its
  path (or cut, and named in ``clipped``), within the byte budget;

never an exception, never the catch-all "the tool failed unexpectedly", and no error text or log
line carries the upstream's text (every error message is one of a closed set of sentences).

get_customer's second request takes nothing from its first answer (only the caller's id, which its
argument model holds to one segment's characters): the property asserts both requests exactly for
every answer, so no answer can steer the next one. (find_orders' chained segment is
test_legacy_hostile.py's.)

One thing these properties found, and its fix, is section 7: a lone surrogate the upstream escaped
reached the answer, which the Lambda runtime then could not encode (now read as U+FFFD).
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, event, find, given, settings, strategies as st

from legacy_tools import handler
from legacy_tools.adapters import CHAINED
from legacy_tools.contract import LegacyApi as ApiSettings, Settings, SingleCallTool, SingleCallTools
from legacy_tools.shaping import LEFT_OUT
from shared.field_paths import value_at
from shared.legacy_client import MAX_JSON_DEPTH, LegacyClient
from shared.runtime_config import ConfigLocation, DocumentReader
from shared.tool_errors import ADVICE, ToolError
from shared.tools import TOOL_NAME_KEY, qualified
from stacks.config import load_config
from tests.lambdas.conftest import FakeClientContext, FakeContext
from tests.lambdas.legacy_api import ADDRESSES, CUSTOMER, CUSTOMER_ID, META, Answer, LegacyApi, serve
from tests.lambdas.strategies import json_values
from tests.lambdas.test_legacy_hostile import make_client
from tests.lambdas.test_legacy_tools import ARTICLES, _fresh_caches  # noqa: F401  # (autouse: the handler's caches cleared)
from tests.lambdas.test_legacy_tools_budget import cut_from, weight
from tests.variant_config import suite_context

# The deployment's legacy APIs, read as the stack reads them (stacks/production/tools.py).
APIS = load_config(suite_context()).production.legacy_apis
LOCATION = ConfigLocation(application="a", environment="e", profile="p", environment_name="tools")


@dataclass(frozen=True)
class SingleCall:
    """A single-call tool as one target's function serves it."""

    target: str
    name: str
    tool: SingleCallTool


# Every single-call tool the config declares, and the tests' own paged one (test_legacy_tools'
# ARTICLES, served beside the first API's tools): the sample declares none with ``records``, and a
# paged tool answers in another shape.
DECLARED = [SingleCall(t, n, tool) for t, api in APIS.items() for n, tool in api.single_call_tools().items()]
LISTING = [SingleCall(target, "tests_paged_listing", ARTICLES) for target in list(APIS)[:1]]
SINGLE_CALLS = [*DECLARED, *LISTING]
GET_CUSTOMER_TARGET = next((t for t, api in APIS.items() if "get_customer" in api.chained_tools()), None)
# The runtime document every target's function reads its single-call tools from.
DOCUMENT = DocumentReader.static(
    SingleCallTools(apis={target: {c.name: c.tool for c in SINGLE_CALLS if c.target == target} for target in APIS})
)

# The property settings: the suite's profile (tests/conftest.py: no deadline) with a modest number
# of examples; the server and the deployment are the same for every example of a test.
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(PROPERTY, max_examples=100)


# 1. What an upstream may answer.

SENTINEL = "UPSTREAM-TEXT-9q7x"  # in answers: must never reach an error message or a log line


@dataclass(frozen=True)
class Raw:
    """JSON text written as it is: a token json.dumps never writes (an overflowing or over-long
    number, NaN, an escape of half a surrogate pair, a bad escape, nesting past the limit). Not a
    str subclass: Hypothesis, replaying a shrunk example, takes a str for one of its own choices."""

    text: str


RAW_TOKENS = [
    "1e400",
    "-1e400",
    "1E+309",
    "1.5e-400",
    "-0",
    "-0.0",
    "0e0",
    "NaN",
    "-Infinity",
    "Infinity",
    '"\\ud800"',
    '"\\udfff"',
    '"\\udbff\\udfff"',  # a pair: one character
    '"\\ude00\\ud83d"',  # a pair reversed: two lone halves
    '"\\u0000"',
    '"\\uD800x"',
    '"\\x41"',
    '"\\uZZZZ"',
    "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
    '{"k": 1, "k": [2]}',
    "01",
    ".5",
    "+1",
    "'single'",
    "nul",
    '"unterminated',
]

lone_surrogates = st.characters(categories=["Cs"])
texts = st.one_of(
    st.text(max_size=12),
    st.lists(st.characters() | lone_surrogates, min_size=1, max_size=6).map("".join),
    st.sampled_from(["", ".", "..", "/", "../admin", "%2e%2e", "a/b?c#d", "\x00", "\u202e", "\ufeff", "\uffff", "🙂"]),
    st.sampled_from(["null", "true", "0", "[]", "{}", '"', "\\", "\r\nX-Injected: 1"]),
    st.text(max_size=8).map(lambda tail: SENTINEL + tail),
    st.integers(1, 1500).map(lambda n: (SENTINEL + " é") * n),  # past any budget: cut or left out
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**80), max_value=10**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([2**53 + 1, -(2**63), 2**64, 5e-324, 1.7976931348623157e308, -0.0]),
    st.sampled_from([1, -1]).map(lambda sign: sign * 10**4000),
)
# 4,300 digits: the most int() converts; one more, and no parser converts it.
long_numbers = st.sampled_from([4300, 4301]).map(lambda digits: Raw("9" * digits))
leaves = st.none() | st.booleans() | numbers | texts | st.sampled_from(RAW_TOKENS).map(Raw) | long_numbers
hostile_values = (
    json_values
    | texts
    | st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
        max_leaves=12,
    )
)


def to_json(value: Any, *, ascii_only: bool) -> str:
    """``value`` as JSON text, a Raw as it is. Not ASCII only: characters as they are."""
    if isinstance(value, Raw):
        return value.text
    if isinstance(value, dict):
        pairs = (
            f"{json.dumps(k, ensure_ascii=ascii_only)}:{to_json(v, ascii_only=ascii_only)}" for k, v in value.items()
        )
        return "{" + ",".join(pairs) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(item, ascii_only=ascii_only) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def encoded(value: Any, coding: str) -> bytes:
    """The answer's body: JSON with escapes, or UTF-8 as it is (a lone surrogate then as the bytes
    no UTF-8 decoder takes)."""
    if coding == "escaped":
        return to_json(value, ascii_only=True).encode()
    return to_json(value, ascii_only=False).encode("utf-8", "surrogatepass")


codings = st.sampled_from(["escaped", "escaped", "utf-8"])


def steps(path: str) -> list[str | int]:
    """A field path's keys and indexes: "addresses[0].city" -> ["addresses", 0, "city"]."""
    return [key or int(index) for key, index in re.findall(r"([^.\[\]]+)|\[(\d+)\]", path)]


def plant(document: Any, where: Sequence[str | int], value: Any) -> Any:
    """``document`` with ``value`` at ``where``, the containers on the way made as needed (copied
    along the path: the document itself is not changed)."""
    if not where:
        return value
    head, rest = where[0], where[1:]
    if isinstance(head, int):
        items = list(document) if isinstance(document, list) else []
        items += [{} for _ in range(head + 1 - len(items))]
        items[head] = plant(items[head], rest, value)
        return items
    mapping = dict(document) if isinstance(document, dict) else {}
    mapping[head] = plant(mapping.get(head), rest, value)
    return mapping


def prefixes(*paths: Sequence[str | int]) -> list[tuple[str | int, ...]]:
    """Every place along ``paths`` (the whole answer included), in a stable order."""
    found = {tuple(path[:end]) for path in paths for end in range(len(path) + 1)}
    return sorted(found, key=lambda place: (len(place), [str(step) for step in place]))


Place = Sequence[str | int]


def planted(document: Any, *where: Sequence[Place]) -> st.SearchStrategy[Any]:
    """``document`` with any value at one of the places, each group of places as likely as the
    others (the ones the tool checks, the declared fields', anywhere along what it reads)."""
    place = st.one_of([st.sampled_from(list(places)) for places in where if places])
    return st.tuples(place, leaves | hostile_values).map(lambda drawn: plant(document, drawn[0], drawn[1]))


# 2. What the tool must do with it: the reference decoding and the tool's model.

UNUSABLE = {
    f"the service's answer is unusable: {what}"
    for what in (
        "not JSON",
        "not UTF-8",
        "nested too deeply",
        "a byte order mark before the JSON",
    )
}
CHANGED = "the service's answer has changed: "
COMPRESSED = "the service's answer is unusable: a compressed answer that was not asked for"
NO_ANSWER = "the service did not answer in time"
CATCH_ALL = "the tool failed unexpectedly"


class NotDecodableError(Exception):
    """What the reference decoding refuses."""


def _refuse(token: str) -> Any:
    raise NotDecodableError(token)


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise NotDecodableError(text)
    return number


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


def reference(body: bytes) -> tuple[bool, Any]:
    """(decodable, value): strict UTF-8 without a BOM, JSON without NaN or infinite numbers, at
    most MAX_JSON_DEPTH deep, each half of a surrogate pair in a text (key or value) read as U+FFFD
    (the client's promise, written independently)."""
    try:
        text = body.decode("utf-8")
        if text.startswith("\ufeff"):
            return False, None
        value = json.loads(text, parse_constant=_refuse, parse_float=_finite)
    except (UnicodeDecodeError, ValueError, NotDecodableError, RecursionError):
        return False, None
    if _depth(value) > MAX_JSON_DEPTH:
        return False, None
    return True, _replaced(value)


def _replaced(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    if isinstance(value, dict):
        return {_replaced(key): _replaced(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_replaced(item) for item in value]
    return value


@dataclass(frozen=True)
class Refused:
    messages: frozenset[str]
    requests: tuple[str, ...]
    # The client's and the chained tools' errors say when to retry; a single-call tool's "holds no
    # list" does not (as test_legacy_shaping pins it).
    retry_after: int | None = 30


@dataclass(frozen=True)
class Single:
    """{"record": ...}: each declared field the value at its path."""

    expected: dict[str, Any]
    requests: tuple[str, ...]


@dataclass(frozen=True)
class Paged:
    """{"total", "returned", "records", ...}: the first page of these records."""

    expected: list[dict[str, Any]]
    requests: tuple[str, ...]


Outcome = Refused | Single | Paged


def is_object(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def projected(record: Any, fields: Mapping[str, str]) -> dict[str, Any]:
    return {name: value_at(record, path) for name, path in fields.items()}


def customer_outcome(customer: bytes, addresses: bytes, paths: tuple[str, str], fields: Mapping[str, str]) -> Outcome:
    """get_customer: the customer, then their addresses; an undecodable answer ends the call."""
    decodable, profile = reference(customer)
    if not decodable:
        return Refused(frozenset(UNUSABLE), paths[:1])
    decodable, listing = reference(addresses)
    if not decodable:
        return Refused(frozenset(UNUSABLE), paths)
    changed: list[str] = []
    items = None
    if not is_object(listing):
        changed.append("the answer is not an object")
    else:
        data = (listing or {}).get("data")
        if not is_object(data):
            changed.append("data is not an object")
        else:
            items = (data or {}).get("items")
            if items is not None and not isinstance(items, list):
                changed.append("data.items is not a list")
    if not is_object(profile):
        changed.append("the answer is not an object")
    if changed:
        return Refused(frozenset(CHANGED + what for what in changed), paths)
    record = {"customer": (profile or {}).get("data"), "addresses": items or []}
    return Single(projected(record, fields), paths)


def single_call_outcome(case: SingleCall, body: bytes, path: str) -> Outcome:
    decodable, answer = reference(body)
    if not decodable:
        return Refused(frozenset(UNUSABLE), (path,))
    if case.tool.records is None:
        return Single(projected(answer, case.tool.fields), (path,))
    items = value_at(answer, case.tool.records)
    if not isinstance(items, list):
        message = f"the service's answer holds no list at {case.tool.records}: it has changed"
        return Refused(frozenset({message}), (path,), retry_after=None)
    return Paged([projected(item, case.tool.fields) for item in items], (path,))


def same(actual: Any, expected: Any) -> bool:
    """Equal as JSON, type for type (1 is not 1.0 nor true; -0.0 is not 0)."""
    return json.dumps(actual) == json.dumps(expected)


def check_fields(record: dict[str, Any], expected: dict[str, Any], clipped: Sequence[str]) -> None:
    """Every declared field (in any order: the environment carries the field map as JSON with its
    keys sorted): the upstream's value, or, when named in clipped, cut."""
    assert set(record) == set(expected), record
    assert len(set(clipped)) == len(clipped), clipped
    assert set(clipped) <= set(expected), clipped
    for name, value in record.items():
        original = expected[name]
        if name in clipped:
            assert value is None or (isinstance(original, str) and cut_from(value, original)), (name, value)
        else:
            assert same(value, original), (name, value, original)


def check_single(result: dict[str, Any], expected: dict[str, Any], budget: int) -> None:
    assert set(result) <= {"record", "truncated", "clipped", "note"}, result.keys()
    room = budget - (weight({"record": None, "truncated": True}) - weight(None))
    if result["record"] is None:
        assert (result.get("truncated"), result.get("note"), "clipped" in result) == (True, LEFT_OUT, False)
        assert weight(expected) > room
        return
    clipped = result.get("clipped", [])
    assert "note" not in result
    assert result.get("truncated", False) is bool(clipped), result.keys()
    check_fields(result["record"], expected, clipped)
    assert bool(clipped) is (weight(expected) > room)


def check_page(result: dict[str, Any], expected: list[dict[str, Any]], top_k: int) -> None:
    assert set(result) <= {"total", "returned", "records", "truncated", "clipped", "note", "next_cursor"}
    records, clipped = result["records"], result.get("clipped", [])
    assert (result["total"], result["returned"]) == (len(expected), len(records))
    assert len(records) <= min(top_k, len(expected))
    left_out = 0
    if "note" in result:
        assert (result["note"], records, clipped) == (LEFT_OUT, [], [])
        left_out = 1
    if clipped:
        assert len(records) == 1
    for index, record in enumerate(records):
        check_fields(record, expected[index], clipped if index == 0 else [])
    window = min(top_k, len(expected))
    if "truncated" in result:  # cut short by the budget: a record cut or left out, or fewer than top_k
        assert result["truncated"] is True
        assert clipped or left_out or len(records) < window
    else:
        assert not clipped
        assert not left_out
        assert len(records) == window
    assert ("next_cursor" in result) is (len(records) + left_out < len(expected))


def as_error(result: dict[str, Any]) -> ToolError | dict[str, Any]:
    """The handler's answer: a ToolError again for an error (its advice the taxonomy's)."""
    if "error" not in result:
        return result
    error = result["error"]
    assert set(error) <= {"kind", "message", "advice", "retry_after"}, error
    assert error["advice"] == ADVICE[error["kind"]]
    return ToolError(error["kind"], error["message"], retry_after=error.get("retry_after"))


def check(outcome: ToolError | dict[str, Any], expected: Outcome, api: LegacyApi, budget: int, top_k: int) -> None:
    """The tool did what its model says: the requests, then the error or the answer."""
    assert tuple(api.requests) == expected.requests
    # What the examples reached (pytest --hypothesis-show-statistics).
    event(outcome.message if isinstance(outcome, ToolError) else f"answered: {sorted(set(outcome) - {'record'})}")
    if isinstance(expected, Refused):
        assert isinstance(outcome, ToolError), f"an answer where an error was due: {outcome}"
        assert outcome.message != CATCH_ALL
        assert (outcome.kind, outcome.retry_after) == ("upstream_unavailable", expected.retry_after), outcome.message
        assert outcome.message in expected.messages, outcome.message  # a closed set: nothing echoed
        return
    assert not isinstance(outcome, ToolError), f"{outcome.kind}: {outcome.message}"
    json.dumps(outcome, allow_nan=False)  # what the Lambda answers is JSON
    assert weight(outcome) <= budget
    if isinstance(expected, Single):
        check_single(outcome, expected.expected, budget)
    else:
        check_page(outcome, expected.expected, top_k)


# 3. The deployment: each target's function as the stack configures it, its API the loopback one.


@dataclass(repr=False)
class Upstream:
    """The loopback API and a client of it (test_legacy_hostile's: one attempt, on the test's clock,
    which stands still: its token is fetched once). Shown by its URL in a failing example."""

    api: LegacyApi
    client: LegacyClient

    def __repr__(self) -> str:
        return f"Upstream({self.api.url})"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    with serve() as running:
        yield Upstream(running, make_client(running))


def deploy(monkeypatch: pytest.MonkeyPatch, upstream: Upstream, target: str) -> None:
    """The handler configured as ``target``'s function: the stack's settings for it, the runtime
    document, and the upstream's client."""
    declared = APIS[target]
    endpoint = ApiSettings(
        base_url=upstream.api.url,
        token_path=declared.token_path,
        secret_name=declared.secret_name,
        timeout_seconds=declared.timeout_seconds,
        max_attempts=declared.max_attempts,
        max_response_bytes=declared.max_response_bytes,
        top_k=declared.top_k,
        byte_budget=declared.byte_budget,
        fields=declared.chained_tools(),
    )
    settings = Settings(api_name=target, legacy_api=endpoint, single_call_tools=LOCATION)
    for name, value in settings.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(handler, "single_call_tools", lambda: DOCUMENT)
    monkeypatch.setattr(handler, "client", lambda: upstream.client)
    for cached in (handler.settings, handler.served):
        cached.cache_clear()


def serve_only(api: LegacyApi, answers: Mapping[str, Answer]) -> None:
    api.answers.clear()
    api.requests.clear()
    api.answers.update(answers)


def direct(name: str, arguments: dict[str, Any]) -> ToolError | dict[str, Any]:
    """The deployed tool called as handler.run calls it, without its catch-all: an exception no
    guard foresaw fails the test with its traceback instead of becoming an answer."""
    tool = handler.tools()[name]
    try:
        return tool(handler.client(), handler.shape(), arguments)
    except ToolError as error:
        return error


def invoked(target: str, name: str, arguments: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> Any:
    """The Lambda invoked as the gateway invokes it; no line it logs carries the upstream's text, and
    its answer, whatever it is, is one the runtime can send (section 7)."""
    capsys.readouterr()
    context = FakeContext(client_context=FakeClientContext({TOOL_NAME_KEY: qualified(target, name)}))
    result = handler.lambda_handler(arguments, context)
    logged = capsys.readouterr()
    assert SENTINEL not in logged.out + logged.err
    as_the_runtime_sends(result)
    return as_error(result)


# 4. The bytes an upstream may send instead of JSON, and how it may frame them.


@dataclass(frozen=True)
class Framed:
    answer: Answer
    read: bytes | None  # what the client reads of it (None: nothing usable, see ``expected``)
    expected: str | None = None  # the error the framing alone causes


def legit_in_other_codings(document: Any) -> st.SearchStrategy[bytes]:
    text = json.dumps(document)
    return st.one_of(
        st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig", "cp1252"]).map(
            lambda coding: (text.replace("Ada", "Adà") if coding == "cp1252" else text).encode(coding)
        ),
        st.integers(0, len(text) - 1).map(lambda end: text.encode()[:end]),  # cut short
        st.sampled_from([b"\n", b" x", b"}", b"\x00", b"<html>"]).map(lambda tail: text.encode() + tail),
    )


def bodies(document: Any) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=300),
        st.binary(max_size=40).map(lambda noise: noise + SENTINEL.encode()),
        st.sampled_from([b"", b"null", b"[]", b"{}", b"0", b'"x"', b"<html>maintenance</html>"]),
        legit_in_other_codings(document),
    )


@st.composite
def framed(draw: st.DrawFn, body: bytes) -> Framed:
    how = draw(st.sampled_from(["as is", "as is", "no length", "shorter length", "longer length", "compressed"]))
    if how == "no length":
        return Framed(Answer(body=body, content_length="none"), body)
    if how == "shorter length" and body:
        length = draw(st.integers(0, len(body) - 1))
        return Framed(Answer(body=body, content_length=length), body[:length])
    if how == "longer length":
        return Framed(Answer(body=body, content_length=len(body) + draw(st.integers(1, 64))), None, NO_ANSWER)
    if how == "compressed":
        coding = draw(st.sampled_from(["gzip", "GZIP", "x-gzip", "deflate", "br", "identity, gzip"]))
        return Framed(Answer(body=gzip.compress(body), headers={"Content-Encoding": coding}), None, COMPRESSED)
    return Framed(Answer(body=body), body)


# 5. get_customer.

CUSTOMER_FIELDS = APIS[GET_CUSTOMER_TARGET].chained_tools()["get_customer"] if GET_CUSTOMER_TARGET else {}
needs_get_customer = pytest.mark.skipif(GET_CUSTOMER_TARGET is None, reason="the config in use has no get_customer")
# The two answers as the API gives them, and where along each the declared fields are read.
ANSWERS = {"customer": {"data": CUSTOMER, "meta": META}, "addresses": {"data": {"items": ADDRESSES}, "meta": META}}
READ_AT: dict[str, list[list[str | int]]] = {"customer": [["data"]], "addresses": [["data", "items"]]}
for _path in CUSTOMER_FIELDS.values():
    _head, *_rest = steps(_path)
    if _head == "customer":
        READ_AT["customer"].append(["data", *_rest])
    elif _head == "addresses":
        READ_AT["addresses"].append(["data", "items", *_rest])
# Where the tool checks the answers' types; where the declared fields are; anywhere along either.
CHECKED: dict[str, list[Place]] = {"customer": [("data",), ()], "addresses": [("data", "items"), ("data",), ()]}
FIELD_PLACES = {answer: paths[1:] for answer, paths in READ_AT.items()}
PLACES = {answer: prefixes(*paths) for answer, paths in READ_AT.items()}
customer_ids = st.from_regex(
    CHAINED["get_customer"].spec.arguments.model_json_schema()["properties"]["customer_id"]["pattern"], fullmatch=True
)


def customer_paths(customer_id: str) -> tuple[str, str]:
    base = f"/v2/customers/{quote(customer_id, safe='')}"
    return base, f"{base}/addresses"


@st.composite
def customer_answers(draw: st.DrawFn) -> dict[str, bytes]:
    """Both answers, one or both with a hostile value somewhere along what the tool reads."""
    hostile = draw(st.sampled_from([("customer",), ("addresses",), ("customer", "addresses")]))
    answers = {}
    for answer, document in ANSWERS.items():
        if answer in hostile:
            document = draw(planted(document, CHECKED[answer], FIELD_PLACES[answer], PLACES[answer]))
        answers[answer] = encoded(document, draw(codings))
    return answers


@needs_get_customer
@PROPERTY
@given(customer_id=customer_ids, answers=customer_answers())
def test_get_customer_answers_any_json_with_its_record_or_a_taxonomy_error(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, customer_id: str, answers: dict[str, bytes]
) -> None:
    assert GET_CUSTOMER_TARGET is not None
    deploy(monkeypatch, upstream, GET_CUSTOMER_TARGET)
    paths = customer_paths(customer_id)
    serve_only(upstream.api, {paths[0]: Answer(body=answers["customer"]), paths[1]: Answer(body=answers["addresses"])})
    outcome = direct("get_customer", {"customer_id": customer_id})
    expected = customer_outcome(answers["customer"], answers["addresses"], paths, CUSTOMER_FIELDS)
    shape = handler.shape()
    check(outcome, expected, upstream.api, shape.byte_budget, shape.top_k)


@needs_get_customer
@FEW
@given(which=st.sampled_from(["customer", "addresses"]), data=st.data())
def test_get_customer_answers_any_bytes_with_its_record_or_a_taxonomy_error(
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    which: str,
    data: st.DataObject,
) -> None:
    """Through the Lambda's entry point, as the gateway invokes it."""
    assert GET_CUSTOMER_TARGET is not None
    deploy(monkeypatch, upstream, GET_CUSTOMER_TARGET)
    paths = customer_paths(CUSTOMER_ID)
    sent = data.draw(bodies(ANSWERS[which]).flatmap(framed), label="answer")
    legit = json.dumps(ANSWERS["addresses" if which == "customer" else "customer"]).encode()
    hostile_path, legit_path = paths if which == "customer" else paths[::-1]
    serve_only(upstream.api, {hostile_path: sent.answer, legit_path: Answer(body=legit)})
    outcome = invoked(GET_CUSTOMER_TARGET, "get_customer", {"customer_id": CUSTOMER_ID}, capsys)
    if sent.read is None:  # the framing alone refuses it: no request after it
        expected: Outcome = Refused(frozenset({sent.expected or ""}), paths if which == "addresses" else paths[:1])
    else:
        read = {hostile_path: sent.read, legit_path: legit}
        expected = customer_outcome(read[paths[0]], read[paths[1]], paths, CUSTOMER_FIELDS)
    shape = handler.shape()
    check(outcome, expected, upstream.api, shape.byte_budget, shape.top_k)


# 6. The single-call tools.


def arguments_for(tool: SingleCallTool) -> st.SearchStrategy[dict[str, Any]]:
    """Arguments the tool's own model accepts, drawn from its declaration."""
    in_path = set(tool.path_arguments())
    parts: dict[str, st.SearchStrategy[Any]] = {}
    for name, argument in tool.arguments.items():
        value: st.SearchStrategy[Any]
        if argument.type == "integer":
            value = st.integers(argument.minimum, argument.maximum)
        elif argument.pattern is not None:
            value = st.from_regex(argument.pattern, fullmatch=True)
        else:
            value = st.text(min_size=1, max_size=min(argument.max_length, 24))
        if name in in_path:
            value = value.filter(lambda text: str(text) not in {"", ".", ".."})
        parts[name] = value if argument.required else st.none() | value
    model = tool.spec("probe").arguments

    def accepted(arguments: dict[str, Any]) -> bool:
        try:
            model.model_validate(arguments)
            json.dumps(arguments, ensure_ascii=False).encode()  # no lone surrogate: refused as the caller's
        except (ValueError, UnicodeEncodeError):
            return False
        return True

    drawn = st.fixed_dictionaries(parts).map(lambda values: {k: v for k, v in values.items() if v is not None})
    return drawn.filter(accepted)


def request_path(tool: SingleCallTool, arguments: Mapping[str, Any]) -> str:
    return tool.path.format_map({name: quote(str(arguments[name]), safe="") for name in tool.path_arguments()})


def skeleton(tool: SingleCallTool) -> Any:
    """An answer in which every declared path holds a value (and the records' path a list of two)."""
    record: Any = {}
    for name, path in tool.fields.items():
        record = plant(record, steps(path), f"{name} value")
    return record if tool.records is None else plant({}, steps(tool.records), [record, record])


def answers_of(tool: SingleCallTool) -> st.SearchStrategy[Any]:
    """The tool's answer with any value where it checks a type (the whole answer, the records'
    list), at a declared field, or anywhere along what it reads."""
    fields: list[Place] = [steps(path) for path in tool.fields.values()]
    checked: list[Place] = [()]
    if tool.records is not None:
        listed = steps(tool.records)
        checked.append(listed)
        fields = [[*listed, index, *field] for index in (0, 1) for field in fields]
    return planted(skeleton(tool), checked, fields, prefixes(*checked, *fields))


def single_call_id(case: SingleCall) -> str:
    return f"{case.target}.{case.name}"


@pytest.mark.parametrize("case", SINGLE_CALLS, ids=single_call_id)
@PROPERTY
@given(data=st.data(), coding=codings)
def test_a_single_call_tool_answers_any_json_with_its_record_or_a_taxonomy_error(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, case: SingleCall, data: st.DataObject, coding: str
) -> None:
    deploy(monkeypatch, upstream, case.target)
    arguments = data.draw(arguments_for(case.tool), label="arguments")
    body = encoded(data.draw(answers_of(case.tool), label="answer"), coding)
    path = request_path(case.tool, arguments)
    serve_only(upstream.api, {path: Answer(body=body)})
    outcome = direct(case.name, arguments)
    shape = handler.shape()
    check(outcome, single_call_outcome(case, body, path), upstream.api, shape.byte_budget, shape.top_k)


@pytest.mark.parametrize("case", SINGLE_CALLS, ids=single_call_id)
@FEW
@given(data=st.data())
def test_a_single_call_tool_answers_any_bytes_with_its_record_or_a_taxonomy_error(
    upstream: Upstream,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    case: SingleCall,
    data: st.DataObject,
) -> None:
    """Through the Lambda's entry point, as the gateway invokes it."""
    deploy(monkeypatch, upstream, case.target)
    arguments = data.draw(arguments_for(case.tool), label="arguments")
    sent = data.draw(bodies(skeleton(case.tool)).flatmap(framed), label="answer")
    path = request_path(case.tool, arguments)
    serve_only(upstream.api, {path: sent.answer})
    outcome = invoked(case.target, case.name, arguments, capsys)
    if sent.read is None:
        expected: Outcome = Refused(frozenset({sent.expected or ""}), (path,))
    else:
        expected = single_call_outcome(case, sent.read, path)
    shape = handler.shape()
    check(outcome, expected, upstream.api, shape.byte_budget, shape.top_k)


def test_each_function_deployed_here_serves_the_tools_its_target_publishes(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The properties above run what the stack deploys: each target's function serves exactly the
    config's tools for it (plus, on one, the tests' paged listing), so every single-call tool the
    config declares is a case of the parametrization, with no list here to keep up."""
    for target, api in APIS.items():
        deploy(monkeypatch, upstream, target)
        extra = {case.name for case in LISTING if case.target == target}
        assert set(handler.tools()) == set(api.tools) | extra
        assert not extra & set(api.tools)


# 7. Found by these properties (fixed 2026-12-06): a lone surrogate the upstream escaped reached a
# tool's answer.
#
# JSON may escape half a surrogate pair (\ud800 in the JSON text); decode_json took it, the
# projection copied it into the record, and the handler answered it. The function runs on Python
# 3.14 (stacks/shared/lambda_function.py), where the Lambda runtime (awslambdaric's marshaller)
# writes an answer with ensure_ascii=False and then encodes it as UTF-8, after the handler has
# returned: the UnicodeEncodeError ended the invocation as a runtime failure, not a tool error from
# the taxonomy. decode_json now reads each such half as U+FFFD (and invoked() sends every answer of
# these properties as the runtime does).


def as_the_runtime_sends(result: Any) -> bytes:
    """The answer as the python3.12+ Lambda runtime sends it: JSON with characters as they are
    (awslambdaric's Encoder: ensure_ascii=False, allow_nan=True), encoded as UTF-8."""
    return json.dumps(result, ensure_ascii=False, allow_nan=True).encode("utf-8")


LONE_SURROGATE = Raw('"\\ud800"')


def surrogate_cases() -> list[Any]:
    cases: list[Any] = []
    if GET_CUSTOMER_TARGET is not None and max(map(len, READ_AT["customer"])) > 1:  # a field of the customer
        cases.append(pytest.param(None, id="get_customer"))
    cases += [pytest.param(case, id=single_call_id(case)) for case in DECLARED if case.tool.records is None]
    return cases


@pytest.mark.parametrize("case", surrogate_cases())
def test_an_escaped_lone_surrogate_in_a_declared_field_is_answered_as_a_replacement_character(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], case: SingleCall | None
) -> None:
    if case is None:  # get_customer: the customer's answer, at the deepest declared field read from it
        assert GET_CUSTOMER_TARGET is not None
        target, name, arguments = GET_CUSTOMER_TARGET, "get_customer", {"customer_id": CUSTOMER_ID}
        place = max(READ_AT["customer"], key=len)
        paths = customer_paths(CUSTOMER_ID)
        answers = {paths[0]: plant(ANSWERS["customer"], place, LONE_SURROGATE), paths[1]: ANSWERS["addresses"]}
    else:  # a single-call tool: its first declared field
        target, name = case.target, case.name
        arguments = find(arguments_for(case.tool), lambda _: True)  # the simplest its model accepts
        place = steps(next(iter(case.tool.fields.values())))
        answers = {request_path(case.tool, arguments): plant(skeleton(case.tool), place, LONE_SURROGATE)}
    deploy(monkeypatch, upstream, target)
    serve_only(upstream.api, {path: Answer(body=encoded(answer, "escaped")) for path, answer in answers.items()})
    result = invoked(target, name, arguments, capsys)  # sent as the runtime sends it
    assert not isinstance(result, ToolError), result.message
    assert "\\ufffd" in json.dumps(result)  # the upstream's half pair, read as U+FFFD
    assert "\\ud800" not in json.dumps(result)
