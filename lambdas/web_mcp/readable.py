"""Readable text from HTML, with the standard library's parser (no dependency, no recursion).

The title (the document's first, not an SVG's); headings as ``#``-prefixed lines; paragraphs, list
items (``- ``), table rows and other blocks as lines; links as ``text (absolute url)`` (the text
alone for a URL that is not http(s), cannot be joined or is longer than MAX_URL); script, style,
noscript, svg, template and the head (except its title) dropped, the head ending where HTML ends it
when ``</head>`` and ``<body>`` are left out (at the first element or text it cannot hold); what
the page's own markup or a browser's own stylesheet hides from its reader left out
(web_mcp.hidden); whitespace collapsed. The output is bounded by ``max_chars``: once that much is
collected (the line being collected counted too), the rest of the page is not read, and the result
is cut at a word boundary with a marker (within ``max_chars`` even when that is shorter than the
marker).

Work is bounded in time as well as by the input (already capped in bytes): the page is fed to the
parser in slices, with the caller's deadline checked between them and before it closes; the parser
holds back no more than a slice of text (HTMLParser holds back all of it while it ends in an
unfinished "&": _release_text) and at most ``MAX_PENDING`` characters of one unfinished construct.
Past that, an unfinished tag, comment or declaration is dropped up to its end (the next ">", or
"-->" for a comment) and the middle of a script or style is dropped. Held back whole, such a
construct costs the parser a rescan on every slice (CPython gh-153030), and where HTMLParser still
reads an unfinished construct at the end of its input as text (before CPython gh-135462, as in
3.11.7) it rescans what follows once per "<" in it, quadratic ('<a' * 100_000 took 27 s): there,
such a construct at the end is dropped before the parser closes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

from web_mcp.contract import MAX_URL
from web_mcp.hidden import HiddenContent, standards_mode

TRUNCATED = " [… truncated]"
MAX_TITLE = 300
SLICE = 16_384  # characters fed to the parser at a time; the deadline is checked between slices
MAX_PENDING = 65_536  # characters the parser may hold back for one unfinished construct
SCRIPT_TAIL = 256  # of an overlong script or style kept, so its end tag is still found
# Elements the head holds (HTML's "in head" insertion mode); any other start tag ends it.
HEAD = frozenset(
    {"base", "basefont", "bgsound", "link", "meta", "title", "noscript", "noframes", "style", "script", "template"}
    | {"head", "html"}
)
DROPPED = frozenset(
    {"script", "style", "noscript", "noembed", "noframes", "svg", "template", "iframe", "object", "canvas", "math"}
)
HEADINGS = {f"h{level}": level for level in range(1, 7)}
BLOCKS = frozenset(
    {
        "p", "div", "br", "hr", "li", "tr", "td", "th", "section", "article", "main", "header", "footer",
        "nav", "aside", "blockquote", "pre", "dt", "dd", "ul", "ol", "dl", "table", "figure", "figcaption",
        "form", "address", "details", "summary", "body", "caption",
    }
)  # fmt: skip
# A numeric character reference of more digits than any code point needs (leading zeros aside): the
# parser's int() of one past 4,300 digits raises, and one past 0x10FFFF is U+FFFD anyway.
HUGE_CHARREF = re.compile(r"&#(?:[xX][0-9a-fA-F]{32,}|[0-9]{32,});?")


@dataclass(frozen=True)
class Readable:
    title: str
    text: str
    truncated: bool


def collapse(text: str) -> str:
    return " ".join(text.split())


def cut(text: str, max_chars: int) -> tuple[str, bool]:
    """``text`` within ``max_chars`` characters, cut at a word boundary with a marker (without
    one when ``max_chars`` leaves no room for a character of text besides it)."""
    if len(text) <= max_chars:
        return text, False
    room = max_chars - len(TRUNCATED)
    if room < 1:
        return text[:max_chars], True
    head = text[:room]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > room // 2:
        head = head[:space]
    return head.rstrip() + TRUNCATED, True


class _Extractor(HTMLParser):
    # Read as raw text, as a browser with scripting on reads them: Python before 3.13.4 reads markup
    # in all but script and style, and later ones in <noscript> unless made with scripting=True.
    CDATA_CONTENT_ELEMENTS = ("script", "style", "xmp", "iframe", "noembed", "noframes", "noscript")  # type: ignore[misc]

    def __init__(self, base_url: str, budget: int, *, computed: bool = False) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.budget = budget  # characters worth collecting (a little over max_chars)
        self.size = 0  # of the lines kept
        self.pending = 0  # of the line being collected (its text and links), not kept yet
        self.lines: list[str] = []
        self.line: list[str] = []
        self.prefix = ""
        self.title: list[str] = []
        self.title_size = 0
        self.in_title = False
        self.titled = False  # the document's first title has ended: any later one is not its title
        self.other_title = False  # inside a <title> that is not the document's
        self.in_head = False
        self.dropped = 0  # depth inside dropped elements (a counter: no recursion, no stack)
        self.hidden = HiddenContent(computed=computed)
        self.link: str | None = None
        self.link_text: list[str] = []
        self.skip_to: str | None = None  # input is dropped up to and including this (see _bound)
        self.carry = ""  # the end of what was dropped, should ``skip_to`` straddle two slices
        self.left_out = False  # text was there once enough was collected (so the result is cut short)

    def feed_slice(self, data: str) -> None:
        if self.skip_to is not None:
            data = self._skip(data)
        self.feed(data)
        if len(self.rawdata) > SLICE and not self.cdata_elem and not self.rawdata.startswith("<"):
            self._release_text()
        if len(self.rawdata) > MAX_PENDING:
            self._bound(self.rawdata)

    def _release_text(self) -> None:
        """Text the parser holds back is given to it up to the last "&" (a character reference
        cut in half there): HTMLParser holds back all the text it has when that ends in an "&"
        with no space or ";" after it and no "<" follows, so a page of "&a" with no tag holds
        itself whole, decoded only as the parser closes, past the last deadline check. Text held
        back has no "<" in it (the parser reads up to one at once), and a reference ends at the
        next "&": the text before the last one decodes the same apart."""
        text = self.rawdata
        amp = text.rfind("&")
        if amp > 0:
            self.handle_data(unescape(text[:amp]))
            self.rawdata = text[amp:]

    def finish(self) -> None:
        if CLOSE_RESCANS and self.rawdata.startswith("<") and not self.cdata_elem:
            # An unfinished tag, comment or declaration at the end is not text, and this parser's
            # close would rescan it once per "<" in it. (A fixed parser may hold the input after
            # it apart from rawdata, so it is left to close there.)
            self.rawdata = ""
        self.close()
        self.flush()

    def _bound(self, pending: str) -> None:
        """What the parser holds back for one unfinished construct, cut to a bounded size."""
        if self.cdata_elem:  # the content of a script or style (from Python 3.13.4 a title too)
            self.rawdata = pending[-SCRIPT_TAIL:]
        elif pending.startswith("<"):  # a tag, comment or declaration: dropped up to its end
            self.rawdata = ""
            self.skip_to = "-->" if pending.startswith("<!--") else ">"
            # The end of what is dropped may hold the start of that end ("--" of a "-->" that
            # straddles this slice and the next), as _skip's carry does.
            self.carry = pending[len(pending) - len(self.skip_to) + 1 :]
        # Otherwise it is text held back for a character reference at its end, which feed_slice
        # has already cut to what follows its last "&".

    def _skip(self, data: str) -> str:
        assert self.skip_to is not None
        text = self.carry + data
        end = text.find(self.skip_to)
        if end < 0:
            self.carry = text[len(text) - len(self.skip_to) + 1 :]
            return ""
        rest = text[end + len(self.skip_to) :]
        self.skip_to, self.carry = None, ""
        return rest

    def handle_decl(self, decl: str) -> None:
        self.hidden.standards = standards_mode(decl)

    def parse_marked_section(self, i: int, report: bool = True) -> int:
        # HTML reads "<![" as a bogus comment up to the next ">" (CDATA sections exist only in
        # SVG and MathML, which are dropped); Python before 3.13.4 raised AssertionError for an
        # unknown keyword ("<![foo["). Later versions do not call this.
        end = self.rawdata.find(">", i + 3)
        return -1 if end < 0 else end + 1

    @property
    def full(self) -> bool:
        """Enough is collected: the line being collected counts too (a page of links and text
        with no block element is one line, which would otherwise be read to the page's end)."""
        return self.size + self.pending >= self.budget

    def flush(self) -> None:
        self._end_link()
        text = collapse("".join(self.line))
        self.line, self.pending = [], 0
        if text and self.size < self.budget:
            line = self.prefix + text
            self.lines.append(line)
            self.size += len(line) + 1
        self.prefix = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._title_or_head(tag)
        if self.hidden.start(tag, attrs, closed=False, may_hide=not (self.dropped or tag in HEAD)):
            return
        if tag in DROPPED:
            self.dropped += 1
            return
        if self.dropped or self.in_head:
            return
        if tag in HEADINGS:
            self.flush()
            self.prefix = "#" * HEADINGS[tag] + " "
        elif tag in BLOCKS:
            self.flush()
            if tag == "li":
                self.prefix = "- "
        elif tag == "a":
            self._end_link()
            href = dict(attrs).get("href")
            self.link = self._absolute(href) if href else None
            self.link_text = []

    def _title_or_head(self, tag: str) -> None:
        if tag == "title":
            # An SVG's or MathML's <title> (inside a dropped element) names an image, not the page,
            # and a second <title> is neither the title nor text.
            self.in_title = not (self.dropped or self.titled)
            self.other_title = not self.in_title
        elif tag == "head":
            self.in_head = True
        elif tag not in HEAD:
            self.in_head = False  # <body>, or any element the head cannot hold, starts the body

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in HEAD:
            self.in_head = False
        # "/>" closes nothing in HTML but a void or foreign element: <div hidden/> hides what follows.
        if self.hidden.start(tag, attrs, closed=True, may_hide=not (self.dropped or tag in HEAD)):
            return
        if tag in BLOCKS and not (self.dropped or self.in_head):
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.titled = self.titled or self.in_title
            self.in_title = self.other_title = False
        elif tag == "head":
            self.in_head = False
        if self.hidden.end(tag):
            return
        if tag in DROPPED:
            self.dropped = max(0, self.dropped - 1)
            return
        if self.dropped or self.in_head:
            return
        if tag in HEADINGS or tag in BLOCKS:
            self.flush()
        elif tag == "a":
            self._end_link()

    def handle_data(self, data: str) -> None:
        if self.in_title:
            if self.title_size < MAX_TITLE:
                self.title.append(data[:MAX_TITLE])
                self.title_size += len(data)
            return
        if self.other_title or self.hidden:
            return
        if self.in_head and not self.dropped and data.strip():
            self.in_head = False  # text the head cannot hold starts the body
        if self.dropped or self.in_head:
            return
        if self.full:
            self.left_out = self.left_out or not data.isspace()
            return
        self.pending += len(collapse(data)) + 1
        if self.link is not None:
            self.link_text.append(data)
        else:
            self.line.append(data)

    def _end_link(self) -> None:
        if self.link is None:
            return
        text = collapse("".join(self.link_text))
        url, self.link, self.link_text = self.link, None, []
        if text:
            self.line.append(f" {text} ({url})" if url else f" {text}")
            self.pending += len(url) + 3 if url else 0

    def _absolute(self, href: str) -> str | None:
        """The link's absolute http(s) URL; None (its text is kept alone) for any other, one that
        cannot be joined ("https://[x") or one longer than a URL the tools take (MAX_URL)."""
        try:
            url = urljoin(self.base_url, href.strip())
            scheme = urlsplit(url).scheme
        except ValueError:
            return None
        return url if len(url) <= MAX_URL and scheme in ("http", "https") else None


def _close_rescans() -> bool:
    """Whether this Python's HTMLParser reads an unfinished tag at the end of its input as text,
    rescanning the rest for the next "<" (before CPython gh-135462; fixed ones ignore the tag)."""
    seen: list[str] = []

    class Probe(HTMLParser):
        def handle_data(self, data: str) -> None:
            seen.append(data)

    probe = Probe()
    probe.feed("<a")
    probe.close()
    return bool(seen)


CLOSE_RESCANS = _close_rescans()


def from_html(
    html: str,
    *,
    base_url: str,
    max_chars: int,
    check: Callable[[], object] | None = None,
    computed: bool = False,
) -> Readable:
    """``check`` is called between slices of the page and before the parser closes (the caller's
    deadline: it raises once that has passed). ``computed``: the page is a browser's copy marked
    with what it computed as not shown (web_mcp.hidden.HiddenContent)."""
    # A base longer than a URL the tools take (a page's script can make its own that long) joins
    # no link: each would be as long.
    base = base_url if len(base_url) <= MAX_URL else ""
    extractor = _Extractor(base, budget=max_chars + 1, computed=computed)
    html = HUGE_CHARREF.sub("\ufffd", html)
    unread = False  # slices left when enough was collected: the page goes on past the text kept
    for start in range(0, len(html), SLICE):
        if extractor.full and not extractor.in_title:
            unread = True
            break  # nothing more of the text would be kept (a title after this much is not read)
        if check is not None:
            check()
        extractor.feed_slice(html[start : start + SLICE])
    if check is not None:
        check()  # closing decodes what the parser still holds: bounded, but after the last slice
    extractor.finish()
    text, truncated = cut("\n".join(extractor.lines), max_chars)
    title = collapse("".join(extractor.title))[:MAX_TITLE]
    return Readable(title=title, text=text, truncated=truncated or extractor.left_out or unread)


def from_text(text: str, *, max_chars: int) -> Readable:
    lines = (collapse(line) for line in text[: max_chars * 2].splitlines())
    body, truncated = cut("\n".join(line for line in lines if line), max_chars)
    return Readable(title="", text=body, truncated=truncated or len(text) > max_chars * 2)
