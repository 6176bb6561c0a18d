"""Readable text from HTML, with the standard library's parser (no dependency, no recursion).

The title; headings as ``#``-prefixed lines; paragraphs, list items (``- ``), table rows and other
blocks as lines; links as ``text (absolute url)``; script, style, noscript, svg, template and the
head (except its title) dropped; whitespace collapsed. Work is bounded by the input (already capped
in bytes) and the output by ``max_chars``: once that much is collected, nothing more is kept, and
the result is cut at a word boundary with a marker.
"""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

TRUNCATED = " [… truncated]"
MAX_TITLE = 300
DROPPED = frozenset({"script", "style", "noscript", "svg", "template", "iframe", "object", "canvas", "math"})
HEADINGS = {f"h{level}": level for level in range(1, 7)}
BLOCKS = frozenset(
    {
        "p", "div", "br", "hr", "li", "tr", "td", "th", "section", "article", "main", "header", "footer",
        "nav", "aside", "blockquote", "pre", "dt", "dd", "ul", "ol", "dl", "table", "figure", "figcaption",
        "form", "address", "details", "summary", "body", "caption",
    }
)  # fmt: skip
VOID = frozenset({"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "wbr"})


@dataclass(frozen=True)
class Readable:
    title: str
    text: str
    truncated: bool


def collapse(text: str) -> str:
    return " ".join(text.split())


def cut(text: str, max_chars: int) -> tuple[str, bool]:
    """``text`` within ``max_chars`` characters, cut at a word boundary with a marker."""
    if len(text) <= max_chars:
        return text, False
    room = max(0, max_chars - len(TRUNCATED))
    head = text[:room]
    space = max(head.rfind(" "), head.rfind("\n"))
    if space > room // 2:
        head = head[:space]
    return head.rstrip() + TRUNCATED, True


class _Extractor(HTMLParser):
    def __init__(self, base_url: str, budget: int) -> None:
        super().__init__(convert_charrefs=True)
        self.base_url = base_url
        self.budget = budget  # characters worth collecting (a little over max_chars)
        self.size = 0
        self.lines: list[str] = []
        self.line: list[str] = []
        self.prefix = ""
        self.title: list[str] = []
        self.in_title = False
        self.in_head = False
        self.dropped = 0  # depth inside dropped elements (a counter: no recursion, no stack)
        self.link: str | None = None
        self.link_text: list[str] = []

    @property
    def full(self) -> bool:
        return self.size >= self.budget

    def flush(self) -> None:
        self._end_link()
        text = collapse("".join(self.line))
        self.line = []
        if text and not self.full:
            line = self.prefix + text
            self.lines.append(line)
            self.size += len(line) + 1
        self.prefix = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        elif tag == "head":
            self.in_head = True
        elif tag == "body":
            self.in_head = False
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

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in BLOCKS and not (self.dropped or self.in_head):
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        elif tag == "head":
            self.in_head = False
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
            if sum(map(len, self.title)) < MAX_TITLE:
                self.title.append(data)
            return
        if self.dropped or self.in_head or self.full:
            return
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

    def _absolute(self, href: str) -> str | None:
        url = urljoin(self.base_url, href.strip())
        return url if urlsplit(url).scheme in ("http", "https") else None


def from_html(html: str, *, base_url: str, max_chars: int) -> Readable:
    extractor = _Extractor(base_url, budget=max_chars + 1)
    extractor.feed(html)
    extractor.close()
    extractor.flush()
    text, truncated = cut("\n".join(extractor.lines), max_chars)
    title = collapse("".join(extractor.title))[:MAX_TITLE]
    return Readable(title=title, text=text, truncated=truncated or extractor.full)


def from_text(text: str, *, max_chars: int) -> Readable:
    lines = (collapse(line) for line in text[: max_chars * 2].splitlines())
    body, truncated = cut("\n".join(line for line in lines if line), max_chars)
    return Readable(title="", text=body, truncated=truncated or len(text) > max_chars * 2)
