"""Property: the web MCP server's tools (web_fetch, web_browse) answer any arguments an agent can
send (url, max_chars, steps, a tool name, a caller group) with a typed tool error, never an
exception or a stack trace, and use no network to refuse them.

Every host resolves to an address the real address policy refuses (loopback, private, link-local,
the metadata address); a literal public address passes every check and is the one case that would
connect: sockets refuse here, so it ends as the typed upstream_unavailable. The browser's session
fails the same way.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from mcp.types import TextContent

from shared.display import CONTROLS
from shared.runtime_config import DocumentReader
from shared.tool_errors import ADVICE
from tests.lambdas.strategies import json_values
from tests.lambdas.test_fuzz_gateway import hostile_text, log_lines_are_never_lost  # noqa: F401 - every log line is written
from tests.lambdas.web_fakes import FakeGuardrail
from web_mcp.addresses import blocked_reason
from web_mcp.browse import Browser
from web_mcp.contract import MAX_STEPS, WEB_BROWSE, WEB_FETCH, Settings, WebPolicy
from web_mcp.fetch import Checker, Fetcher
from web_mcp.guard import Guard
from web_mcp.readable import MAX_TITLE, from_html
from web_mcp.server import call
from web_mcp.tools import WebTools

POLICY = {"groups": {"researchers": {"deny": ["denied.test"]}, "narrow": {"allow": ["example.org"]}}}
BLOCKED = [
    "127.0.0.1",
    "10.0.0.7",
    "169.254.169.254",
    "::1",
    "fd00:ec2::254",
    "192.168.1.1",
    "0.0.0.0",
    "::ffff:127.0.0.1",
]
CONNECTIONS: list[Any] = []


def resolver(host: str, port: int) -> list[str]:
    """An IP literal is itself (as getaddrinfo answers); every name is an address nobody may reach."""
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        return [BLOCKED[sum(map(ord, host)) % len(BLOCKED)]]


class NoBrowser:
    """A browser session that cannot start (as if unreachable): nothing is browsed."""

    def start(self, **_: Any) -> None:
        CONNECTIONS.append("browser")
        raise OSError("no browser in tests")

    def generate_ws_headers(self) -> tuple[str, dict[str, str]]:  # pragma: no cover - never started
        raise AssertionError

    def stop(self) -> None: ...


def no_network(*_: Any, **__: Any) -> None:
    CONNECTIONS.append("socket")
    raise OSError("no network in tests")


@pytest.fixture(scope="module")
def tools() -> Iterator[WebTools]:
    patch = pytest.MonkeyPatch()
    patch.setattr(socket.socket, "connect", no_network)
    patch.setattr(socket, "create_connection", no_network)
    config = Settings.from_environ(
        {
            "GUARDRAIL_ID": "gr-1",
            "GUARDRAIL_VERSION": "1",
            "POLICY": json.dumps(
                {"application": "app", "environment": "env", "profile": "web-policy", "environment_name": "tools"}
            ),
            # Long, on stopped clocks: the resolver's real wait is bounded by what is left, and a
            # refusal must not turn into a timeout because the machine is busy.
            "TIMEOUT_SECONDS": "30",
            "BROWSE_TIMEOUT_SECONDS": "30",
        }
    )
    checker = Checker(config, resolver=resolver, address_policy=blocked_reason)
    guardrail = FakeGuardrail()
    yield WebTools(
        settings=config,
        policy=DocumentReader.static(WebPolicy.model_validate(POLICY)).get,
        fetcher=Fetcher(checker, clock=lambda: 0.0),
        browser=Browser(checker, sessions=NoBrowser, clock=lambda: 0.0),  # type: ignore[arg-type]
        guard=Guard(guardrail, guardrail_id=config.guardrail_id, version=config.guardrail_version),
    )
    patch.undo()


HOSTS = [
    "example.org",
    "www.example.org",
    "denied.test",
    "a.denied.test",
    "localhost",
    "127.0.0.1",
    "127.1",
    "2130706433",
    "0x7f.0.0.1",
    "0177.0.0.1",
    "169.254.169.254",
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[fd00:ec2::254]",
    "[fe80::1%25eth0]",
    "[::1",
    "93.184.215.14",  # a public literal: passes every check (and then cannot connect)
    "[2606:4700::1111]",
    "bücher.example.org",
    "xn--bcher-kva.example.org",
    "a..b",
    "-a.example.org",
    "a" * 70 + ".example.org",
    "example.org.",
    "EXAMPLE.ORG",
    "",
    "%65xample.org",
    "example.org\x00.evil",
    "example.org\\@evil.test",
]
hosts = st.one_of(st.sampled_from(HOSTS), hostile_text(30))
urls = st.one_of(
    st.builds(
        lambda scheme, userinfo, host, port, path, query: f"{scheme}{userinfo}{host}{port}{path}{query}",
        st.sampled_from(
            ["https://"] * 6 + ["http://", "HTTPS://", "ftp://", "file://", "javascript:", "//", "https:/", ""]
        ),
        st.sampled_from(["", "", "", "user@", "user:pw@", "@", ":@"]),
        hosts,
        st.sampled_from(["", "", ":443", ":0", ":65536", ":-1", ":abc", ":", ":８０"]),
        st.sampled_from(["", "/", "/a/../../etc", "/%2e%2e/", "/\r\nHost: evil"]) | hostile_text(20),
        st.sampled_from(["", "?q=1", "#frag", "?\x00"]),
    ),
    hostile_text(60),
    st.just("https://example.org/" + "a" * 2100),
)
steps = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "action": st.sampled_from(["click", "type", "wait", "eval", ""]) | json_values,
            "selector": st.sampled_from(["#go", "a[href]", "", "x" * 201]) | hostile_text(20) | json_values,
            "text": hostile_text(30) | st.just("t" * 501) | json_values,
            "script": st.just("alert(1)"),
        },
    ),
    max_size=MAX_STEPS + 2,
)
arguments = st.fixed_dictionaries(
    {},
    optional={
        "url": urls | json_values,
        "max_chars": st.integers(-5, 300_000) | st.sampled_from([10**30, 1.5, True, "100"]) | json_values,
        "steps": steps | json_values,
        "caller_group": st.sampled_from(["researchers", "narrow", "", "other"]) | hostile_text(10) | json_values,
    },
    # Arguments a tool does not take (a header, a method, a body) are refused, not used.
).flatmap(
    lambda fixed: st.dictionaries(st.sampled_from(["headers", "method", "body", "proxy"]), json_values, max_size=1).map(
        lambda more: {**more, **fixed}
    )
)


valid_steps = st.lists(
    st.fixed_dictionaries(
        {"action": st.sampled_from(["click", "type", "wait"]), "selector": st.sampled_from(["#go", "a[href]"])},
        optional={"text": st.text(max_size=20)},
    ),
    max_size=3,
)
well_formed = st.one_of(  # what passes validation: the URL is what the checks must refuse
    st.fixed_dictionaries(
        {
            "url": urls.filter(lambda url: 0 < len(url) <= 2048),
            "caller_group": st.sampled_from(["researchers", "narrow"]),
        },
        optional={"max_chars": st.integers(1, 20_000)},
    ).map(lambda arguments: (WEB_FETCH.name, arguments)),
    st.fixed_dictionaries(
        {
            "url": urls.filter(lambda url: 0 < len(url) <= 2048),
            "caller_group": st.sampled_from(["researchers", "narrow"]),
        },
        optional={"max_chars": st.integers(1, 20_000), "steps": valid_steps},
    ).map(lambda arguments: (WEB_BROWSE.name, arguments)),
)
anything = st.tuples(st.sampled_from([WEB_FETCH.name, WEB_BROWSE.name, "web_search", ""]) | hostile_text(20), arguments)


def refused(tools: WebTools, name: str, arguments: dict[str, Any]) -> None:
    CONNECTIONS.clear()
    result = call(tools, name, arguments)
    assert result.is_error, result
    body = result.structured_content
    assert body is not None
    error = body["error"]
    assert error["kind"] in ADVICE, error
    assert error["advice"] == ADVICE[error["kind"]]
    assert isinstance(error["reason"], str)
    assert error["reason"] != "internal_error", (arguments, error)  # every refusal is one the tools name
    assert "Traceback" not in error["message"]
    content = result.content[0]
    assert isinstance(content, TextContent)
    assert json.loads(content.text) == body
    if error["kind"] == "upstream_unavailable" or CONNECTIONS:
        # Only a call every check let through tries to connect: to a public address literal.
        url = arguments.get("url")
        assert isinstance(url, str), (url, error)
        assert any(public in url for public in ("93.184.215.14", "2606:4700::1111")), (url, error, CONNECTIONS)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(call_=st.one_of(well_formed, well_formed, anything))
def test_any_arguments_get_a_typed_tool_error_and_no_network(
    tools: WebTools, call_: tuple[str, dict[str, Any]]
) -> None:
    refused(tools, *call_)


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("name", [WEB_FETCH.name, WEB_BROWSE.name])
def test_each_odd_host_is_a_typed_refusal(tools: WebTools, name: str, host: str) -> None:
    refused(tools, name, {"url": f"https://{host}/", "caller_group": "researchers"})


# Readable text from any markup a page can send: never an exception (the server could only answer
# internal_error), never more than max_chars, never a control character in what the agent gets.
MARKUP = [
    "<", ">", "/", "!", "-", "--", "?", "<![", "foo[", "CDATA[", "]]>", "<!--", "-->", "<?", "<!doctype ",
    "<script>", "</script>", "<style>", "</style>", "<title>", "</title>", "<svg>", "</svg>", "<head>",
    "</head>", "<body>", "<p>", "</p>", "<h2>", "<li>", "<a href='/x'>", "<a href=javascript:x>", "</a>",
    "&", "&amp;", "&#", "&#x41;", ";", "'", '"', "=", " ", "\n", "\x00", "\x1b", "\u202e", "<br/>",
]  # fmt: skip
markup = st.lists(st.sampled_from(MARKUP) | hostile_text(6), max_size=80).map("".join)


@settings(max_examples=300, deadline=None)
@given(page=markup, max_chars=st.integers(1, 300))
def test_any_markup_is_read_into_bounded_text(page: str, max_chars: int) -> None:
    readable = from_html(page, base_url="https://e.test/a/", max_chars=max_chars)
    assert len(readable.text) <= max_chars
    assert len(readable.title) <= MAX_TITLE


@settings(max_examples=100, deadline=None)
@given(page=markup)
def test_what_an_agent_gets_of_any_page_has_no_control_characters(tools: WebTools, page: str) -> None:
    readable = from_html(page, base_url="https://e.test/a/", max_chars=2_000)
    result = tools._result("https://e.test/a/\x1b[0m\u202e", readable, 2_000)
    assert not any(CONTROLS.search(str(value)) for value in result.values())
