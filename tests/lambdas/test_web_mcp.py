"""The web MCP server's parts: its contract, the address policy, domain matching, readable text,
the guardrail request (botocore Stubber on a real client), the pinned HTTPS connection and the
deadline."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import contextmanager
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

import shared.tools as shared_tools
from tests.lambdas.web_site import SiteHandler, resolver, self_signed, site_policy
from web_mcp import readable as readable_module
from web_mcp.addresses import blocked_reason
from web_mcp.browse import Documents
from web_mcp.contract import (
    GROUP_ARGUMENT,
    MAX_URL,
    WEB_BROWSE,
    WEB_FETCH,
    GroupWeb,
    Settings,
    WebBrowseArguments,
    WebPolicy,
    normalise_domain,
)
from web_mcp.errors import WebError
from web_mcp.fetch import Checker, Deadline, Fetcher, content_type
from web_mcp.guard import LATE, Guard
from web_mcp.readable import SLICE, TRUNCATED, cut, from_html, from_text

LOCATION = {"application": "app", "environment": "env", "profile": "web-policy", "environment_name": "tools"}
SETTINGS = {"GUARDRAIL_ID": "gr-1", "GUARDRAIL_VERSION": "1", "POLICY": json.dumps(LOCATION)}

# Contract


def test_the_argument_the_gateway_writes_is_a_field_of_both_tools() -> None:
    """GROUP_ARGUMENT is shared.tools' (imported, not copied): what the interceptor writes must be an
    argument each web tool declares, or the server would never see the caller's group."""
    assert GROUP_ARGUMENT in shared_tools.GATEWAY_ARGUMENTS
    for spec in (WEB_FETCH, WEB_BROWSE):
        assert GROUP_ARGUMENT in spec.arguments.model_fields, spec.name
    assert (WEB_FETCH.name, WEB_BROWSE.name) == shared_tools.WEB_TOOLS


def test_settings_defaults_and_round_trip() -> None:
    settings = Settings.from_environ(SETTINGS)
    assert (settings.max_bytes, settings.max_redirects, settings.timeout_seconds, settings.max_chars) == (
        2_000_000,
        5,
        10,
        20_000,
    )
    assert settings.https_only
    assert settings.browser_id == "aws.browser.v1"
    assert settings.browse_timeout_seconds == 18
    assert settings.content_types == ("text/html", "text/plain", "application/xhtml+xml")
    assert Settings.from_environ(settings.environment()) == settings
    assert settings.policy.profile == "web-policy"  # where the groups' domains are: AppConfig


def test_the_web_policy_is_a_runtime_document_validated_before_it_deploys() -> None:
    schema = WebPolicy.validator_schema()
    assert schema["$schema"].startswith("http://json-schema.org/draft-04/")
    policy = WebPolicy.model_validate_json('{"groups": {"g": {"allow": ["Example.COM."]}}}')
    assert policy == WebPolicy(groups={"g": GroupWeb(allow=("example.com",))})
    with pytest.raises(ValueError, match="extra"):
        WebPolicy.model_validate({"groups": {"g": {"allowed": ["example.com"]}}})


def test_a_type_step_needs_text_and_only_a_type_step_is_checked_for_it() -> None:
    def steps(*items: dict[str, str]) -> dict[str, object]:
        return {"url": "https://a.test", "steps": list(items)}

    with pytest.raises(ValueError, match="a type step needs text"):
        WebBrowseArguments.model_validate(steps({"action": "type", "selector": "#q"}))
    typed = WebBrowseArguments.model_validate(steps({"action": "type", "selector": "#q", "text": ""}))
    assert typed.steps is not None
    assert typed.steps[0].text == ""  # typing nothing clears the field: a choice, not a mistake
    WebBrowseArguments.model_validate(
        steps({"action": "click", "selector": "#go"}, {"action": "wait", "selector": "a"})
    )


def test_tool_specs_publish_the_models() -> None:
    assert WEB_FETCH.input_schema()["required"] == ["url"]
    assert set(WEB_BROWSE.input_schema()["properties"]) == {"url", "steps", "max_chars", "caller_group"}
    with pytest.raises(ValueError, match="steps"):
        WebBrowseArguments.model_validate({"url": "https://a.test", "steps": [{"action": "scroll", "selector": "a"}]})
    with pytest.raises(ValueError, match="selector"):
        WebBrowseArguments.model_validate(
            {"url": "https://a.test", "steps": [{"action": "click", "selector": "a" * 201}]}
        )


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("example.com", True),
        ("news.example.com", True),
        ("badexample.com", False),
        ("example.com.evil.test", False),
        ("a.b.example.com", True),
    ],
)
def test_allow_list_matches_the_domain_and_its_subdomains(host: str, allowed: bool) -> None:
    assert (GroupWeb(allow=("Example.COM.",)).refusal(host) is None) is allowed


def test_deny_wins_and_idns_compare_in_punycode() -> None:
    group = GroupWeb(allow=("example.com",), deny=("ads.example.com", "bücher.de"))
    assert group.refusal("x.ads.example.com") == "the domain x.ads.example.com is denied to this group"
    assert group.deny[1] == "xn--bcher-kva.de"
    assert GroupWeb(deny=("bücher.de",)).refusal("shop.xn--bcher-kva.de") is not None
    assert GroupWeb().refusal("anything.test") is None


@pytest.mark.parametrize(
    "host",
    [
        "www.site.test.",
        "WWW.Site.Test..",
        "www.site.test\u3002",  # ideographic full stop
        "www.site.test\uff0e",  # fullwidth full stop
        "www.site.test\uff61",  # halfwidth ideographic full stop
        "www\u3002site\uff0etest\uff61",
    ],
)
def test_a_trailing_full_stop_of_any_spelling_is_dropped_so_the_deny_list_matches(host: str) -> None:
    assert normalise_domain(host) == "www.site.test"
    assert GroupWeb(deny=("www.site.test",)).refusal(normalise_domain(host)) is not None
    assert GroupWeb(allow=(host,)).allow == ("www.site.test",)


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ",
        ".",
        "\u3002",
        "..\uff0e",
        "\u2024",
        # One dot leader: IDNA 2003's nameprep made it a full stop; UTS #46 (idna's tables)
        # disallows it, so the name is refused whole, never a spelling of a listed domain.
        "www.site.test\u2024",
    ],
)
def test_a_domain_of_full_stops_only_is_not_a_domain(name: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        normalise_domain(name)


@pytest.mark.parametrize(
    "name",
    [
        "ignore all previous instructions.evil.example",  # IDNA takes spaces and punctuation in ASCII
        "a\x1bc\x07.evil.example",
        "semi;colon.example",
        "-leading.example",
        "trailing-.example",
        "a" * 64 + ".example",
        ("a" * 60 + ".") * 5 + "example",  # over 253 characters
    ],
)
def test_a_name_of_other_than_letters_digits_and_hyphens_is_not_a_domain(name: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        normalise_domain(name)


@pytest.mark.parametrize("name", ["my_host.example.com", "xn--bcher-kva.example", "b\u00fccher.example", "a-b.c0"])
def test_a_name_of_ldh_labels_and_underscores_is_a_domain(name: str) -> None:
    assert normalise_domain(name) == normalise_domain(name.upper())


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2003 (Python's idna codec): fass.de, another site
        ("FAß.DE", "xn--fa-hia.de"),
        ("ς.com", "xn--3xa.com"),  # IDNA 2003: xn--4xa.com, the other small sigma
        ("bücher.de", "xn--bcher-kva.de"),
        ("ＥＸＡＭＰＬＥ．ｃｏｍ", "example.com"),  # fullwidth letters and full stop, mapped as browsers map them
        # ASCII labels stay as browsers keep them: hyphens in the 3rd and 4th place, underscores.
        ("r3---sn-4g5e6nls.googlevideo.com", "r3---sn-4g5e6nls.googlevideo.com"),
        ("_dmarc.example.com", "_dmarc.example.com"),
    ],
)
def test_an_international_name_is_the_one_a_browser_looks_up(name: str, encoded: str) -> None:
    """UTS #46 non-transitional, as the WHATWG URL standard (and so web_browse's browser) has it."""
    assert normalise_domain(name) == encoded


@pytest.mark.parametrize(
    "name",
    [
        "xn---bbk.test",  # not the canonical A-label of its U-label (xn--bbk): two spellings of one site
        "xn--abc-.test",
        "xn--" + "a" * 70 + ".test",
        "a\u200db.test",  # a zero-width joiner where none may stand (IDNA 2003 dropped it: ab.test)
        "\ud800.test",
    ],
)
def test_a_label_idna_refuses_is_no_domain(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid domain name"):
        normalise_domain(name)


def test_the_lists_and_the_fetched_host_agree_on_an_international_name() -> None:
    """An entry in the configuration's spelling (punycode) matches the URL an agent writes in Unicode."""
    looked_up: list[str] = []

    def public(host: str, port: int) -> list[str]:
        looked_up.append(host)
        return ["93.184.216.34"]

    checker = Checker(Settings.from_environ(SETTINGS), resolver=public)
    target = checker.check("https://faß.de/", GroupWeb(allow=("xn--fa-hia.de",)))
    assert (target.host, target.host_header, looked_up) == ("xn--fa-hia.de", "xn--fa-hia.de", ["xn--fa-hia.de"])
    with pytest.raises(WebError) as refused:
        checker.check("https://faß.de/", GroupWeb(deny=("xn--fa-hia.de",)))
    assert refused.value.reason == "domain_not_allowed"
    with pytest.raises(WebError) as refused:
        checker.check("https://faß.de/", GroupWeb(allow=("fass.de",)))
    assert refused.value.reason == "domain_not_allowed"
    # The configuration's entries are normalised by the same function (GroupWeb), Unicode or not.
    assert GroupWeb(allow=("faß.de", "xn--fa-hia.de")).allow == ("xn--fa-hia.de", "xn--fa-hia.de")


# The address policy


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.0.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "the instance metadata address"),
        ("fd00:ec2::254", "the instance metadata address"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("192.0.0.1", "an IETF protocol assignment"),
        ("192.0.0.192", "an IETF protocol assignment"),  # is_private only from Python 3.13
        ("192.0.0.9", "an IETF protocol assignment"),  # is_global, but no web server's
        ("fec0::1", "site-local"),  # deprecated (RFC 3879), yet is_global on every Python
        ("feff:ffff::1", "site-local"),
        ("203.0.113.9", "private"),
        ("2001:db8::1", "private"),
        ("198.18.0.1", "private"),
        ("192.0.2.1", "private"),
        ("::ffff:10.0.0.1", "private (embedded in IPv6)"),
        ("::ffff:169.254.169.254", "the instance metadata address (embedded in IPv6)"),
        ("::ffff:127.0.0.1", "loopback (embedded in IPv6)"),
        ("2002:a00:1::1", "private (embedded in IPv6)"),  # 6to4 of 10.0.0.1
        ("2002:a9fe:a9fe::1", "the instance metadata address (embedded in IPv6)"),
        ("64:ff9b::a9fe:a9fe", "the instance metadata address (embedded in IPv6)"),  # NAT64
        ("64:ff9b::7f00:1", "loopback (embedded in IPv6)"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private (embedded in IPv6)"),  # Teredo of 10.0.0.1
    ],
)
def test_the_address_policy_blocks_every_internal_range(address: str, reason: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "52.94.236.248", "2606:4700:4700::1111", "2a00:1450:4001::64"]
)
def test_the_address_policy_allows_public_addresses(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_the_test_policy_exempts_only_the_sites_address() -> None:
    assert site_policy(ipaddress.ip_address("127.0.0.1")) is None
    assert site_policy(ipaddress.ip_address("127.0.0.2")) == "loopback"
    assert site_policy(ipaddress.ip_address("::1")) == "loopback"


# Readable text


def test_readable_text_drops_what_is_not_content() -> None:
    page = """<html><head><title> A  title </title><meta name="x" content="hidden"><style>p{}</style></head>
    <body><noscript>no</noscript><template><p>tpl</p></template><svg><text>svg</text></svg>
    <h2>Heading</h2><p>One <a href="../b?c=d#e">link</a> and <a href="javascript:alert(1)">js</a>.</p>
    <ol><li>first</li><li>second</li></ol><script>var s = "</p>";</script><table><tr><td>cell</td></tr></table>
    </body></html>"""
    readable = from_html(page, base_url="https://e.test/a/b/c", max_chars=1000)
    assert readable.title == "A title"
    assert readable.text.splitlines() == [
        "## Heading",
        "One link (https://e.test/a/b?c=d#e) and js.",
        "- first",
        "- second",
        "cell",
    ]


def test_readable_text_is_bounded_and_not_recursive() -> None:
    deep = "<div>" * 50_000 + "<p>deep text</p>" + "</div>" * 50_000
    assert from_html(deep, base_url="https://e.test/", max_chars=100).text == "deep text"
    long = "<p>" + "word " * 10_000 + "</p>"
    readable = from_html(long, base_url="https://e.test/", max_chars=100)
    assert len(readable.text) <= 100
    assert readable.text.endswith(TRUNCATED)
    assert readable.truncated
    assert readable.text[: -len(TRUNCATED)].split() == ["word"] * len(readable.text[: -len(TRUNCATED)].split())
    unclosed = "<script>" + "<p>never shown</p>" * 10
    assert from_html(unclosed, base_url="https://e.test/", max_chars=100).text == ""


@pytest.mark.parametrize(
    "page",
    [
        # </head> and <body> are optional: the first element the head cannot hold starts the body.
        "<html><head><title>T</title><h1>Quarterly results</h1><p>Revenue rose 4%.</p>",
        "<!doctype html><html><head><meta charset=utf-8><title>T</title>"
        "<h1>Quarterly results</h1><p>Revenue rose 4%.</p></html>",
        "<head><title>T</title><link rel=icon href=/i.png><h1>Quarterly results</h1>Revenue rose 4%.",
        # So does text: "Revenue" is the body's even before any of its tags.
        "<head><title>T</title><meta name=x content=hidden><style>p{}</style>\n  <h1>Quarterly results</h1>"
        "<br/>Revenue rose 4%.",
    ],
)
def test_a_page_without_its_optional_head_and_body_tags_has_its_text(page: str) -> None:
    readable = from_html(page, base_url="https://e.test/", max_chars=1000)
    assert readable.title == "T"
    assert readable.text.replace("\n", " ").split() == ["#", "Quarterly", "results", "Revenue", "rose", "4%."]
    assert "hidden" not in readable.text


def test_what_the_head_holds_stays_out_of_the_text() -> None:
    page = """<head><title>T</title><base href=/><meta name=x content=y><link rel=x><style>p{color:red}</style>
    <script>var secret = 1;</script><noscript>enable js</noscript><template><p>tpl</p></template>
    </head><body><p>Body.</p></body>"""
    assert from_html(page, base_url="https://e.test/", max_chars=1000).text == "Body."


@pytest.mark.parametrize(
    ("page", "title"),
    [
        ("<title>Real title</title><body><svg><title>menu icon</title></svg><p>x</p>", "Real title"),
        ("<title>One</title><title>Two</title><p>x</p>", "One"),
        ("<body><math><title>formula</title></math><svg><title>icon</title></svg><p>x</p>", ""),
        ("<body><svg><title>icon</title></svg><title>Late</title><p>x</p>", "Late"),
    ],
)
def test_the_title_is_the_documents_first_title_not_an_images(page: str, title: str) -> None:
    readable = from_html(page, base_url="https://e.test/", max_chars=1000)
    assert (readable.title, readable.text) == (title, "x")


@pytest.mark.parametrize("max_chars", [1, 5, 13, 14, 15, 20])
def test_max_chars_below_the_marker_still_bounds_the_text(max_chars: int) -> None:
    long = "word " * 100
    for readable in (
        from_html(f"<p>{long}</p>", base_url="https://e.test/", max_chars=max_chars),
        from_text(long, max_chars=max_chars),
    ):
        assert 0 < len(readable.text) <= max_chars
        assert readable.truncated
    text, truncated = cut(long, max_chars)
    assert (len(text) <= max_chars, truncated) == (True, True)
    assert cut("word", 4) == ("word", False)


def test_a_marked_section_of_any_keyword_is_skipped_not_an_error() -> None:
    """Python before 3.13.4 raised AssertionError for "<![foo[" (an unknown marked-section
    keyword); HTML reads it as a bogus comment up to the next ">"."""
    for page in ("<![foo[x]]><p>after</p>", "<![ x ]><p>after</p>", "<![CDATA[x]]><p>after</p>"):
        assert from_html(page, base_url="https://e.test/", max_chars=100).text == "after"


# Markup that never ends: Python's HTMLParser before 3.13.4 rescans it once per "<" in it when
# the input ends (quadratic: '<a' * 100_000 took 27 s); from 3.13.4 it is linear. Either way the
# parser is fed slices and may hold back at most MAX_PENDING characters of one unfinished construct.
PATHOLOGICAL = ["<a", "<a/", "<a\n", "<a a", "<a a=", "<a b='", '<a b="', "<!--", "</", "<?", "<!", "</a ", "<a ="]


@pytest.mark.parametrize("unit", PATHOLOGICAL)
def test_markup_that_never_ends_is_read_in_linear_time(unit: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Linear without a clock: after every slice the parser holds back at most MAX_PENDING
    characters (each slice's work is bounded), and a parser whose close rescans an unfinished
    construct once per "<" (quadratic: 27 s to minutes for this page) closes on none."""
    held: list[int] = []
    closed_on: list[str] = []
    feed_slice, close = readable_module._Extractor.feed_slice, readable_module._Extractor.close

    def fed(self: Any, data: str) -> None:
        feed_slice(self, data)
        held.append(len(self.rawdata))

    def closing(self: Any) -> None:
        closed_on.append(self.rawdata)
        close(self)

    monkeypatch.setattr(readable_module._Extractor, "feed_slice", fed)
    monkeypatch.setattr(readable_module._Extractor, "close", closing)
    page = unit * (200_000 // len(unit))
    readable = from_html("<p>Before.</p>" + page, base_url="https://e.test/", max_chars=20_000)
    assert len(held) > 10  # the page was fed in slices
    assert max(held) <= readable_module.MAX_PENDING
    if readable_module.CLOSE_RESCANS:
        assert not closed_on[0].startswith("<")
    assert readable.text.startswith("Before.")


def test_a_long_script_or_tag_still_leaves_the_text_after_it() -> None:
    """Legitimate pages hold long scripts (page data as JSON) and long tags (data: URIs): past
    what the parser may hold back, their middle is dropped, and the text after them is kept."""
    script = "<script>var data = " + '"</div>x' * 40_000 + '";</script>'
    image = '<img alt="a photo" src="data:image/png;base64,' + "A" * 300_000 + '">'
    comment = "<!-- " + "<b>old</b> " * 30_000 + "-->"
    for big in (script, image, comment):
        page = f"<p>Before.</p>{big}<p>After the long part.</p>"
        readable = from_html(page, base_url="https://e.test/", max_chars=1000)
        assert readable.text == "Before.\nAfter the long part.", big[:20]


def test_a_page_of_links_in_no_block_is_read_only_to_max_chars() -> None:
    """Links and text waiting for a block's end count toward max_chars: otherwise a page of links
    with no block element was one line read to its end, each link as long as the page's URL (a
    redirect's Location is up to MAX_URL: 4 KB of gzip took the server past 1.5 GB)."""
    base = "https://e.test/" + "a" * (MAX_URL - 16)
    page = '<a href="#">y</a>' * 100_000
    tracemalloc.start()
    try:
        readable = from_html(page, base_url=base, max_chars=20_000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert readable.truncated
    assert len(readable.text) <= 20_000
    assert readable.text.count(f"({base})") == 20_000 // len(f"y ({base}) ")  # the links that fit, no more
    assert peak < 10 * len(page), f"{peak / 2**20:.0f} MiB"


def test_a_link_keeps_only_a_url_the_tools_could_take() -> None:
    """Not joinable ("https://[x": urljoin raises), not http(s), or longer than MAX_URL (a base
    its page's script made megabytes long): the link's text stays, without a URL."""
    page = (
        '<p>See <a href="https://[x">one</a>, <a href="//[y">two</a>, <a href="mailto:a@b.test">three</a>, '
        '<a href="/ok">four</a>.</p>'
    )
    assert from_html(page, base_url="https://e.test/", max_chars=1000).text == (
        "See one, two, three, four (https://e.test/ok)."
    )
    long_base = "https://e.test/?" + "q" * MAX_URL
    assert from_html(page, base_url=long_base, max_chars=1000).text == "See one, two, three, four."


def test_a_character_reference_too_long_for_any_code_point_is_a_replacement_character() -> None:
    """Python's int() refuses more than 4,300 digits: in a page's text, an attribute or its title,
    such a reference made the whole page unreadable (an internal error, "retry")."""
    digits = "9" * 5_000
    page = f'<title>&#{digits};</title><p title="&#x{"f" * 5_000};">a &#{digits}; b &#0065; &#x41;</p>'
    readable = from_html(page, base_url="https://e.test/", max_chars=1000)
    assert (readable.title, readable.text) == ("\ufffd", "a \ufffd b A A")


def test_parsing_checks_the_deadline_between_slices() -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # a second per reading: a few slices in, the 3 s deadline has passed
        return now[0]

    page = "<p>" + "word " * (SLICE * 2) + "</p>"  # some ten slices, all of them read (max_chars is more)
    deadline = Deadline(clock, 3)
    with pytest.raises(WebError) as refused:
        from_html(page, base_url="https://e.test/", max_chars=len(page), check=deadline.remaining)
    assert (refused.value.kind, refused.value.reason) == ("upstream_unavailable", "timeout")
    assert from_html(page, base_url="https://e.test/", max_chars=100, check=lambda: None).truncated


def test_content_type_parameters() -> None:
    assert content_type('Text/HTML; Charset="UTF-8"') == ("text/html", "utf-8")
    assert content_type("") == ("", None)


# The guardrail request, against the service model


def test_guardrail_request_is_valid_and_masked_text_is_returned() -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    request = {
        "guardrailIdentifier": "gr-1",
        "guardrailVersion": "2",
        "source": "INPUT",
        "content": [{"text": {"text": "Mail jane@example.com", "qualifiers": ["guard_content"]}}],
    }
    masked = {
        "usage": {"topicPolicyUnits": 1, "contentPolicyUnits": 1, "wordPolicyUnits": 1, "sensitiveInformationPolicyUnits": 1,
                  "sensitiveInformationPolicyFreeUnits": 0, "contextualGroundingPolicyUnits": 0},
        "action": "GUARDRAIL_INTERVENED",
        "outputs": [{"text": "Mail {EMAIL}"}],
        "assessments": [{"sensitiveInformationPolicy": {"piiEntities": [{"match": "jane@example.com", "type": "EMAIL", "action": "ANONYMIZED"}], "regexes": []}}],
    }  # fmt: skip
    blocked = {
        **masked,
        "outputs": [{"text": "Sorry"}],
        "assessments": [
            {"contentPolicy": {"filters": [{"type": "PROMPT_ATTACK", "confidence": "HIGH", "action": "BLOCKED"}]}}
        ],
    }
    guard = Guard(client, guardrail_id="gr-1", version="2")
    with Stubber(client) as stubber:
        stubber.add_response("apply_guardrail", masked, request)
        stubber.add_response("apply_guardrail", blocked, request)
        stubber.add_client_error("apply_guardrail", "ThrottlingException", http_status_code=429)
        assert guard.screen("Mail jane@example.com") == "Mail {EMAIL}"
        with pytest.raises(WebError) as refused:
            guard.screen("Mail jane@example.com")
        assert refused.value.reason == "content_blocked"
        assert refused.value.kind == "forbidden"
        with pytest.raises(WebError) as failed:
            guard.screen("Mail jane@example.com")
        assert failed.value.reason == "guardrail_unavailable"
        assert failed.value.kind == "upstream_unavailable"
        stubber.assert_no_pending_responses()


class HeldGuardrail:
    """ApplyGuardrail that answers once the test releases it, however fast the machine."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def apply_guardrail(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        self.release.wait(30)
        return {"action": "NONE", "outputs": [], "assessments": []}


def test_the_guardrail_is_waited_for_until_the_calls_deadline_and_no_longer() -> None:
    """Its client's timeouts are per attempt (two attempts of 3 + 10 s): the call's deadline bounds
    the whole (here 0.2 s of the test's own clock, which never moves: the guardrail never answers)."""
    held = HeldGuardrail()
    with ThreadPoolExecutor(max_workers=1) as pool:
        guard = Guard(held, guardrail_id="gr-1", version="2", pool=pool)
        try:
            with pytest.raises(WebError) as late:
                guard.screen("Some page", Deadline(lambda: 0.0, 0.2))
        finally:
            held.release.set()
        assert (late.value.kind, late.value.reason, str(late.value)) == ("upstream_unavailable", "timeout", LATE)
        assert guard.screen("Some page", Deadline(lambda: 0.0, 30)) == "Some page"  # answered in time
    assert held.calls == 2


def test_the_guardrails_failures_cross_the_worker_thread_as_refusals() -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with ThreadPoolExecutor(max_workers=1) as pool, Stubber(client) as stubber:
        stubber.add_client_error("apply_guardrail", "ThrottlingException", http_status_code=429)
        with pytest.raises(WebError) as failed:
            Guard(client, guardrail_id="gr-1", version="2", pool=pool).screen("text", Deadline(lambda: 0.0, 30))
    assert (failed.value.kind, failed.value.reason) == ("upstream_unavailable", "guardrail_unavailable")


# What the browser's document requests must pass (its wire: tests/lambdas/test_web_mcp_server.py)


def documents() -> Documents:
    checker = Checker(Settings.from_environ(SETTINGS), resolver=resolver, address_policy=site_policy)
    return Documents(checker, GroupWeb(), Deadline(lambda: 0.0, 30))


HTML = [{"name": "Content-Type", "value": "text/html"}]


@pytest.mark.parametrize(
    "response",
    [
        {"responseStatusCode": "302", "responseHeaders": HTML[:0]},  # not a status: no redirect
        {"responseStatusCode": [302], "responseHeaders": HTML[:0]},
        {"responseStatusCode": 200, "responseHeaders": {"Content-Type": "text/html"}},  # not CDP's list
        {"responseStatusCode": 200, "responseHeaders": ["Content-Type: text/html"]},
        {"responseStatusCode": 200, "responseHeaders": [{"name": "Content-Type", "value": ["text/html"]}]},
        {"responseStatusCode": 200, "responseHeaders": [{"name": None, "value": "text/html"}]},
        {"responseStatusCode": 200},
    ],
    ids=["text-status", "list-status", "headers-object", "headers-text", "value-list", "no-name", "no-headers"],
)
def test_a_response_described_oddly_is_one_without_a_content_type(response: dict[str, Any]) -> None:
    with pytest.raises(WebError) as refused:
        documents().paused({"requestId": "r", "frameId": "f", **response})
    assert (refused.value.kind, refused.value.reason) == ("forbidden", "content_type_not_allowed")
    assert str(refused.value) == "the content type (none) is not allowed"


@pytest.mark.parametrize(
    "response",
    [
        *({"responseStatusCode": status, "responseHeaders": []} for status in (301, 302, 303, 307, 308)),
        {"responseErrorReason": "ConnectionRefused"},
        {"responseStatusCode": 200, "responseHeaders": [{"name": "server", "value": "x"}, {"name": "CONTENT-TYPE", "value": "text/plain; charset=x"}]},
    ],
)  # fmt: skip
def test_redirects_failures_and_allowed_types_go_on(response: dict[str, Any]) -> None:
    documents().paused({"requestId": "r", "frameId": "f", **response})


def test_redirects_are_counted_in_a_row_per_frame() -> None:
    checked = documents()
    hop = {"request": {"url": "https://site.test/"}, "redirectedRequestId": "r0"}
    for _ in range(5):
        checked.paused({"frameId": "main", **hop})
    checked.paused({"frameId": "frame", **hop})  # another frame's chain
    with pytest.raises(WebError) as refused:
        checked.paused({"frameId": "main", **hop})
    assert (refused.value.kind, refused.value.reason, str(refused.value)) == (
        "forbidden", "too_many_redirects", "more than 5 redirects"
    )  # fmt: skip
    checked.paused({"frameId": "main", "request": {"url": "https://site.test/"}, "redirectedRequestId": ""})
    for _ in range(5):  # a request no redirect made starts the count again
        checked.paused({"frameId": "main", **hop})


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),  # the host resolved again by the browser: DNS rebinding
        ("169.254.169.254", "the instance metadata address"),
        ("[::1]", "loopback"),  # IPv6 as Chromium writes it, in brackets
        ("::ffff:10.0.0.1", "private (embedded in IPv6)"),
        ("not-an-address", "not an IP address"),
    ],
)
def test_a_response_from_a_refused_address_is_refused(address: str, reason: str) -> None:
    response = {"url": "https://site.test/", "status": 200, "remoteIPAddress": address}
    with pytest.raises(WebError) as refused:
        documents().received({"requestId": "r", "type": "Fetch", "response": response})
    assert (refused.value.kind, refused.value.reason, str(refused.value)) == (
        "forbidden", "address_not_allowed", f"the page led to a refused address: one that is {reason}"
    )  # fmt: skip


@pytest.mark.parametrize(
    "response",
    [
        {"remoteIPAddress": "127.0.0.1"},  # the test policy's site
        {"remoteIPAddress": "[2606:4700::1111]"},
        {"remoteIPAddress": ""},  # from a cache or a service worker: no address to check
        {},
        {"remoteIPAddress": None},
        "not a response",
    ],
)
def test_a_response_from_an_allowed_address_or_none_goes_on(response: Any) -> None:
    documents().received({"requestId": "r", "type": "Document", "response": response})


@pytest.mark.parametrize("request_", ["https://site.test/", {"url": 5}, None, {"url": "https://private.test/"}])
def test_a_request_described_oddly_or_refused_is_the_sites_doing(request_: Any) -> None:
    with pytest.raises(WebError) as refused:
        documents().paused({"requestId": "r", "frameId": "f", "request": request_})
    assert refused.value.kind == "forbidden"  # never invalid_argument: the caller's URL passed
    assert str(refused.value).startswith("the page led to a refused URL: ")


# HTTPS, pinned to the checked address


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@contextmanager
def tls_site(cert: Path, key: Path) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    server.handle_error = lambda *args: None  # type: ignore[method-assign]  # refused handshakes are expected
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def test_https_connects_to_the_checked_address_and_verifies_the_host(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    settings = Settings.from_environ({**SETTINGS, "MAX_BYTES": "100000"})
    fetcher = Fetcher(
        Checker(settings, resolver=resolver, address_policy=site_policy), ca_certs=str(cert), clock=lambda: 0.0
    )
    with tls_site(cert, key) as port:
        SiteHandler.seen = []
        page = fetcher.fetch(f"https://site.test:{port}/page", GroupWeb())
        assert page.url == f"https://site.test:{port}/page"
        assert b"<h1>Hello</h1>" in page.body
        assert SiteHandler.seen == [(f"site.test:{port}", "/page")]
        # Another name on the same address: the certificate does not match it, nothing is read.
        with pytest.raises(WebError) as refused:
            fetcher.fetch(f"https://www.site.test:{port}/page", GroupWeb())
        assert refused.value.reason == "unreachable"


def test_an_http_redirect_from_https_is_refused_when_https_only(certificate: tuple[Path, Path]) -> None:
    settings = Settings.from_environ(SETTINGS)
    checker = Checker(settings, resolver=resolver, address_policy=site_policy)
    with pytest.raises(WebError) as refused:
        checker.check("http://site.test/page", GroupWeb())
    assert refused.value.reason == "scheme_not_allowed"


# The deadline


def test_the_deadline_is_one_budget_over_the_call() -> None:
    now = [0.0]
    deadline = Deadline(lambda: now[0], 10)
    now[0] = 9.5
    assert deadline.remaining() == pytest.approx(0.5)
    now[0] = 10.0
    with pytest.raises(WebError) as refused:
        deadline.remaining()
    assert refused.value.kind == "upstream_unavailable"
    assert refused.value.reason == "timeout"


def test_a_resolution_that_never_answers_ends_at_the_deadline() -> None:
    """getaddrinfo has no timeout of its own: the call stops waiting for it when its time is up
    (here 0.05 s of the test's clock: the resolver never answers, however fast the machine)."""
    answered = threading.Event()

    def never(host: str, port: int) -> list[str]:
        answered.wait(30)  # until the test ends: the worker is let go then
        return []

    checker = Checker(Settings.from_environ(SETTINGS), resolver=never, address_policy=site_policy)
    now = [0.0]
    try:
        with pytest.raises(WebError) as refused:
            checker.check("https://site.test/page", GroupWeb(), Deadline(lambda: now[0], 0.05))
    finally:
        answered.set()
    assert (refused.value.kind, refused.value.reason) == ("upstream_unavailable", "timeout")
    assert str(refused.value) == "the host site.test did not resolve within the call's time"
    # A resolver that answers in time: its answer, the deadline still running.
    answering = Checker(Settings.from_environ(SETTINGS), resolver=resolver, address_policy=site_policy)
    assert answering.check("https://site.test/page", GroupWeb(), Deadline(lambda: now[0], 60)).host == "site.test"


def test_within_gives_up_at_the_deadline_and_hands_over_the_pending_call() -> None:
    release = threading.Event()
    abandoned: list[Future[str]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        try:
            with pytest.raises(WebError) as late:
                Deadline(lambda: 0.0, 0.2).within(
                    pool, lambda: "done" if release.wait(30) else "", "too late", abandoned.append
                )
        finally:
            release.set()
        assert (late.value.kind, late.value.reason, str(late.value)) == ("upstream_unavailable", "timeout", "too late")
        assert [future.result(timeout=30) for future in abandoned] == ["done"]


def test_within_cancels_a_call_that_never_started() -> None:
    """Every thread of the pool busy until the deadline: the call is cancelled, never run later,
    and nothing is handed over to undo."""
    busy, ran = threading.Event(), []
    abandoned: list[Future[None]] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(busy.wait, 30)
        try:
            with pytest.raises(WebError) as late:
                Deadline(lambda: 0.0, 0.2).within(pool, lambda: ran.append("ran"), "too late", abandoned.append)
        finally:
            busy.set()
    assert (late.value.reason, ran, abandoned) == ("timeout", [], [])


class DoneAsTheWaitEnds(Future[str]):
    """The call finishes just after the wait for it timed out, before the timeout is handled."""

    def result(self, timeout: float | None = None) -> str:
        if timeout is not None and not self.done():
            self.set_result("done")
            raise TimeoutError
        return super().result()


class Late(Executor):
    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        return DoneAsTheWaitEnds()


def test_within_returns_a_result_that_came_as_the_wait_ended() -> None:
    assert Deadline(lambda: 0.0, 30).within(Late(), lambda: "never called", "too late") == "done"


def test_within_raises_the_calls_own_errors_and_starts_nothing_past_the_deadline() -> None:
    def own() -> None:
        raise TimeoutError("the call's own")

    started: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        with pytest.raises(TimeoutError, match="the call's own"):
            Deadline(lambda: 0.0, 30).within(pool, own, "too late")
        now = [0.0]
        deadline = Deadline(lambda: now[0], 1)
        now[0] = 1.0
        with pytest.raises(WebError) as late:
            deadline.within(pool, lambda: started.append("started"), "too late")
    assert str(late.value) == "the page did not arrive within 1 seconds"
    assert started == []


def test_the_system_resolver_keeps_the_resolvers_order_ipv4_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The connection is pinned to the first address: IPv4 before IPv6 (a runtime may have no IPv6
    route), otherwise the resolver's own order, each address once."""
    import socket

    from web_mcp import fetch as fetch_module

    answers = ["2600:1f18::1", "52.94.236.248", "2600:1f18::1", "3.5.0.1"]
    infos = [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 443)) for a in answers]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_, **__: infos)
    assert fetch_module.system_resolver("docs.example.com", 443) == ["52.94.236.248", "3.5.0.1", "2600:1f18::1"]
