"""Exact outputs of the web MCP server's readable text and address parsing, at their boundaries.

readable.py: ``cut`` (the word boundary, the marker, ``max_chars`` at and below the marker's length),
``from_text`` (blank lines, the ``2 * max_chars`` read), and ``from_html``: where the head starts and
ends, block and inline elements, dropped elements, links (their URL's scheme and length, the base's
length), how much text is collected before the rest is not read (each chunk of text, link and line
counted), the title (``MAX_TITLE``, its pieces, one being read when the text is full), the deadline
check between slices, unfinished constructs at the end and long ones across slices, and the probe of
this Python's parser. addresses.py: ``parse`` drops an IPv6 zone index.
"""

from __future__ import annotations

import ipaddress
from html import unescape
from html.parser import HTMLParser
from typing import Any

import pytest

from web_mcp import readable as readable_module
from web_mcp.addresses import blocked_reason, parse
from web_mcp.contract import MAX_URL
from web_mcp.readable import MAX_PENDING, MAX_TITLE, SCRIPT_TAIL, SLICE, TRUNCATED, Readable, cut, from_html, from_text

BASE = "https://e.test/"


def read(page: str, max_chars: int = 1000) -> tuple[str, str, bool]:
    readable = from_html(page, base_url=BASE, max_chars=max_chars)
    return readable.title, readable.text, readable.truncated


def _parser_reads_markup_in_a_title() -> bool:
    """Python's HTMLParser before 3.13.4 parses tags and comments inside <title>; later ones read
    a title's content as text (so a title reaches the extractor in one piece)."""
    seen: list[str] = []

    class Probe(HTMLParser):
        def handle_comment(self, data: str) -> None:
            seen.append(data)

    probe = Probe()
    probe.feed("<title>a<!--x-->b</title>")
    probe.close()
    return bool(seen)


MARKUP_IN_TITLE = _parser_reads_markup_in_a_title()

# cut

TAIL = "rstuvwxyz0123456789"


@pytest.mark.parametrize(
    ("text", "max_chars", "expected"),
    [
        ("word", 4, "word"),
        ("word word", 9, "word word"),
        ("word " * 10, 14, "word word word"),  # no room for a character besides the marker: no marker
        ("word " * 10, 15, "w" + TRUNCATED),  # room for one character: it and the marker
        ("aaaa\nbbbb\ncccc\ndddddddddddd", 26, "aaaa\nbbbb" + TRUNCATED),  # at the last line break
        ("abcde fghijklmnop" + TAIL, 24, "abcde fghi" + TRUNCATED),  # a space at exactly half the room: not cut there
        ("abcdef ghijklmnop" + TAIL, 24, "abcdef" + TRUNCATED),  # one past half: cut there
        ("abcde fghijklmnopq" + TAIL, 26, "abcde fghijk" + TRUNCATED),  # under half (5 of 12): not cut there
        ("abcdef  ghijklmnop" + TAIL, 24, "abcdef" + TRUNCATED),  # the spaces before the marker stripped
    ],
)
def test_cut_keeps_text_within_max_chars_at_a_word_boundary_past_half_the_room(
    text: str, max_chars: int, expected: str
) -> None:
    assert cut(text, max_chars) == (expected, expected != text)
    assert len(expected) <= max_chars


# from_text


@pytest.mark.parametrize(
    ("text", "max_chars", "body", "truncated"),
    [
        ("  a  \n\n\t b   c \n", 100, "a\nb c", False),  # blank lines dropped, whitespace collapsed
        ("a\nb", 5, "a\nb", False),
        ("word " * 5, 20, "word" + TRUNCATED, True),
        ("ab" + " " * 8, 5, "ab", False),  # exactly 2 * max_chars long: all of it read
        ("ab" + " " * 9, 5, "ab", True),  # one more: what is past 2 * max_chars is not read
        (" " * 10 + "hello", 5, "", True),  # past 2 * max_chars: not read at all
    ],
)
def test_from_text_reads_twice_max_chars_into_collapsed_lines(
    text: str, max_chars: int, body: str, truncated: bool
) -> None:
    assert from_text(text, max_chars=max_chars) == Readable(title="", text=body, truncated=truncated)


# from_html: structure


@pytest.mark.parametrize(
    ("page", "text"),
    [
        # A <head> start tag opens the head wherever it is: end tags in it are not read, text ends it.
        ("<p>one<head></p>two", "onetwo"),
        ("<p>one<head></head></p>two", "one\ntwo"),  # </head> ends it
        ("<p>one</head></p>two", "one\ntwo"),  # a stray </head> opens nothing
        ("<p>one<head><br/>two", "one\ntwo"),  # a self-closing element the head cannot hold ends it
        ("<p>one<head><meta/></p>two", "onetwo"),  # one it can hold does not
        ("<p>one<head><script>x</script></p>two", "onetwo"),  # nor does a script's text
        ("<head><meta charset=utf-8>Loose text<p>para</p>", "Loose text\npara"),  # text ends it
        # Block elements, self-closing or not, end a line; inline ones do not.
        ("<p>one<br/>two</p>", "one\ntwo"),
        ("<p>one <img/> two</p>", "one two"),
        ("Just text, in no element.", "Just text, in no element."),
        # Dropped elements nest; nothing inside them counts, tags included.
        ("<p><svg><svg></svg>hidden</svg>shown</p>", "shown"),
        ("<p>a<svg></p>b</svg>c", "ac"),
        ("<svg><li></li></svg>after", "after"),
        ("<p>one<svg><br/></svg>two</p>", "onetwo"),
        # Links: no href, an empty one, text in pieces.
        ("<p><a>plain</a> and <a href=''>empty</a></p>", "plain and empty"),
        ("<a href=/x>one<b>two</b></a>", "onetwo (https://e.test/x)"),
        ("<a href=http://e.test/x>plain http</a>", "plain http (http://e.test/x)"),
        ("word </a>yy", "word yy"),  # a stray </a> ends no link: the text before it is left as it is
        # Marked sections are bogus comments up to the next ">", wherever they are.
        ("<p>before</p><![foo[x]]><p>after</p>", "before\nafter"),
        ("<![>shown<p>x</p>", "shown\nx"),
        # What is unfinished at the end: a tag is not text; text held for a character reference is.
        ("<p>Text.</p><a", "Text."),
        ("Tom &amp Jerry &amp", "Tom & Jerry &"),
    ],
)
def test_the_text_of_a_page_is_its_lines_outside_the_head_and_dropped_elements(page: str, text: str) -> None:
    assert read(page) == ("", text, False)


@pytest.mark.parametrize(
    ("base", "href", "text"),
    [
        ("https://e.test/?" + "q" * (MAX_URL - 16), "/ok", "four (https://e.test/ok)"),  # a base of MAX_URL
        ("https://e.test/?" + "q" * (MAX_URL - 15), "/ok", "four"),  # one longer joins nothing
        (BASE, "https://e.test/" + "u" * (MAX_URL - 15), "four (https://e.test/" + "u" * (MAX_URL - 15) + ")"),
        (BASE, "https://e.test/" + "u" * (MAX_URL - 14), "four"),  # a URL one past MAX_URL
    ],
)
def test_a_link_and_its_base_may_be_max_url_long_and_no_longer(base: str, href: str, text: str) -> None:
    page = f'<p><a href="{href}">four</a></p>'
    assert from_html(page, base_url=base, max_chars=10_000) == Readable(title="", text=text, truncated=False)


# from_html: how much is collected

A19 = "a" * 19
A20 = "a" * 20


@pytest.mark.parametrize(
    ("page", "max_chars", "text"),
    [
        # max_chars of text, more after it: kept whole (no marker), the rest not read.
        (f"<p>{A20}</p><p>more</p>", 20, A20),
        (f"<b>{A20}</b>e", 20, A20),  # within a line too
        # Each piece of text counts its collapsed length and one: 19 + 1 leaves room for one more.
        (f"<b>{A19}</b>e<p>more words</p>", 20, A19 + "e"),
        # ... unless whitespace before it counted one: then "e" is not read, the next line is, and cut.
        (f"<html> <b>{A19}</b>e<p>more words</p>", 20, "aaaaaa" + TRUNCATED),
        # A kept line counts its length and one: 19 + 1 leaves room to read the next line.
        (f"<p>{A19}</p><p>more</p>", 20, "aaaaaa" + TRUNCATED),
        ("<p>aaaa</p>" * 10, 19, "aaaa\naaaa\naaaa\naaaa"),  # four lines of 4 and their breaks: 19
        ("<p>aaaa</p>" * 10, 17, "aaa" + TRUNCATED),  # three lines (15) leave room to read a fourth
        # A link counts its text, URL, brackets and spaces: " t (https://e.test/x)" is 21.
        ("<a href=https://e.test/x>t</a>x", 20, "t (https://e.test/x)"),
        ("<a href=https://e.test/x>t</a>x<p>more</p>", 21, "t (https://e.test/x)x"),
    ],
)
def test_text_is_collected_until_max_chars_and_the_rest_is_not_read(page: str, max_chars: int, text: str) -> None:
    assert read(page, max_chars) == ("", text, True)


def test_the_deadline_is_checked_before_each_slice_read_and_before_closing_and_none_once_the_text_is_full() -> None:
    page = "<p>" + "word " * SLICE + "</p>"  # five slices and a bit
    calls: list[None] = []
    from_html(page, base_url=BASE, max_chars=len(page), check=lambda: calls.append(None))
    assert len(calls) == -(-len(page) // SLICE) + 1
    calls.clear()
    readable = from_html(page, base_url=BASE, max_chars=100, check=lambda: calls.append(None))
    assert (len(calls), readable.truncated) == (2, True)  # the first slice, then the close


def test_a_deadline_that_passes_during_the_last_slice_refuses_before_the_parser_closes() -> None:
    """Closing decodes whatever the parser still holds back: it is work after the last slice."""
    page = "<p>" + "&a" * SLICE  # two slices and a bit: checked three times before closing
    calls: list[None] = []

    def check() -> None:
        calls.append(None)
        if len(calls) > 3:
            raise TimeoutError("deadline")

    with pytest.raises(TimeoutError, match="deadline"):
        from_html(page, base_url=BASE, max_chars=len(page), check=check)


def test_text_held_back_for_an_unfinished_reference_is_read_slice_by_slice() -> None:
    """HTMLParser holds back all its text when no "<" follows and the last "&" is unfinished: a
    page of "&a" would be held whole and decoded as the parser closes, after the last deadline
    check. Read slice by slice, the text fills max_chars after a slice or two and the rest of the
    page is not read (nor checked for)."""
    page = "<p>" + "&a" * 1_000_000  # 2 MB, 123 slices
    calls: list[None] = []
    readable = from_html(page, base_url=BASE, max_chars=1_000, check=lambda: calls.append(None))
    assert len(calls) <= 3
    assert readable.truncated
    assert readable.text.startswith("&a&a&a")


@pytest.mark.parametrize(
    "page",
    [
        "<p>" + "x" * SLICE + "&amp" + "y" * 10 + " tail &am",  # a reference straddles the cut
        "<p>" + "&amp;" * SLICE + "&lt;done",
        "<p>" + "&a" * SLICE + "&copy;&#65&#x42;",
    ],
)
def test_text_read_slice_by_slice_decodes_as_it_would_read_whole(page: str) -> None:
    expected = unescape(page.removeprefix("<p>"))
    readable = from_html(page, base_url=BASE, max_chars=len(page))
    assert readable.text == " ".join(expected.split())


def test_a_check_that_raises_ends_the_reading_with_its_exception() -> None:
    page = "<p>" + "word " * SLICE + "</p>"
    calls: list[None] = []

    def check() -> None:
        calls.append(None)
        if len(calls) == 3:
            raise TimeoutError("deadline")

    with pytest.raises(TimeoutError, match="deadline"):
        from_html(page, base_url=BASE, max_chars=len(page), check=check)
    assert len(calls) == 3


# from_html: the title


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("  A \n\t title  ", "A title"),
        ("t" * MAX_TITLE, "t" * MAX_TITLE),
        ("t" * (MAX_TITLE + 1), "t" * MAX_TITLE),
        ("Fish &amp; chips", "Fish & chips"),
    ],
)
def test_the_title_is_collapsed_and_at_most_max_title_long(title: str, expected: str) -> None:
    assert read(f"<title>{title}</title><p>x</p>") == (expected, "x", False)


SPACED_300 = "a" + " " * 298 + "b"
SPACED_299 = "a" + " " * 297 + "b"
SPACED_200 = "a" + " " * 198 + "b"


@pytest.mark.skipif(not MARKUP_IN_TITLE, reason="this Python's parser gives a title's content in one piece")
@pytest.mark.parametrize(
    ("pieces", "expected"),
    [
        (["A", "B"], "AB"),
        ([SPACED_300, "c"], "a b"),  # MAX_TITLE characters read: no more pieces
        ([SPACED_299, "c"], "a bc"),  # one fewer: the next piece is read
        ([SPACED_200, " " * 150, "c"], "a b"),  # the pieces' lengths add up
    ],
)
def test_a_title_in_pieces_is_read_to_max_title_characters(pieces: list[str], expected: str) -> None:
    assert read("<title>" + "<!---->".join(pieces) + "</title><p>x</p>") == (expected, "x", False)


def test_a_title_being_read_when_the_text_fills_is_read_to_its_end_and_a_later_one_not_at_all() -> None:
    start = "<p>" + "word " * 20 + "</p>"
    late = start + " " * (SLICE - len(start) - len("<title>Late")) + "<title>Late"
    assert len(late) == SLICE  # the title's start is in the first slice, its end in the second
    text = "word word word word word word word" + TRUNCATED
    assert read(late + " title</title>" + "<p>more</p>" * SLICE, 50) == ("Late title", text, True)
    later = start + " " * (2 * SLICE) + "<title>Later</title>"  # starts in the third slice
    assert read(later, 50) == ("", text, True)


# from_html: long constructs across slices


def _pad(page: str, length: int) -> str:
    return page + " " * (length - len(page))


@pytest.mark.parametrize(
    ("pad", "text"),
    [
        (0, "t (https://e.test/x)"),  # held back for exactly MAX_PENDING characters: read as a tag
        (SLICE - 1, "t"),  # one more (after the fifth slice): the tag is dropped, its link with it
    ],
)
def test_an_unfinished_tag_is_held_back_for_at_most_max_pending_characters(pad: int, text: str) -> None:
    page = " " * pad + "<a title='" + "x" * MAX_PENDING + "' href='/x'>t</a>"
    assert read(page) == ("", text, False)


def test_a_long_scripts_middle_is_dropped_and_its_end_still_found(monkeypatch: pytest.MonkeyPatch) -> None:
    held: list[int] = []
    feed_slice = readable_module._Extractor.feed_slice

    def fed(self: Any, data: str) -> None:
        feed_slice(self, data)
        held.append(len(self.rawdata))

    monkeypatch.setattr(readable_module._Extractor, "feed_slice", fed)
    for element in ("script", "style"):
        held.clear()
        page = f"<p>Before.</p><{element}>" + "x" * (5 * SLICE) + f"</{element}><p>After.</p>"
        assert read(page) == ("", "Before.\nAfter.", False)
        assert max(held) <= MAX_PENDING
        assert SCRIPT_TAIL in held  # what was held back, cut to its last characters


def _long(opening: str, ending: str, end_at: int) -> str:
    """A page of a tag or comment longer than MAX_PENDING whose last character is at ``end_at``."""
    start = "<p>Before.</p>" + opening
    page = start + "c" * (end_at + 1 - len(ending) - len(start)) + ending + "After.<p>x</p>"
    assert page[end_at] == ">"
    return page


@pytest.mark.parametrize(
    "page",
    [
        _long("<img alt='", "'>", 5 * SLICE),  # the ">" the first character after the tag was dropped
        _long("<img alt='", "'>", 6 * SLICE),
        _long("<!--", "-->", 6 * SLICE),  # "--" ending one slice, ">" the next
        _long("<!--", "-->", 6 * SLICE + 1),  # "-" ending one slice, "->" the next
        _long("<!--", "-->", 6 * SLICE + 2),  # "-->" starting a slice
    ],
)
def test_a_dropped_tag_or_comment_ends_where_its_end_is_even_at_a_slices_edge(page: str) -> None:
    assert read(page) == ("", "Before.\nAfter.\nx", False)


# The probe of this Python's parser


class _FixedParser(HTMLParser):
    """A parser that ignores an unfinished tag at the end of its input (CPython after gh-135462)."""

    def close(self) -> None:
        if self.rawdata.startswith("<"):
            self.rawdata = ""
        super().close()


class _RescanningParser(HTMLParser):
    """A parser that reads whatever is left at the end of its input as text (before gh-135462)."""

    def close(self) -> None:
        if self.rawdata:
            self.handle_data(self.rawdata)
            self.rawdata = ""
        super().close()


@pytest.mark.parametrize(("parser", "rescans"), [(_FixedParser, False), (_RescanningParser, True)])
def test_the_probe_says_whether_the_parser_reads_an_unfinished_tag_at_the_end_as_text(
    parser: type[HTMLParser], rescans: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(readable_module, "HTMLParser", parser)
    assert readable_module._close_rescans() is rescans


def test_the_probe_answers_for_this_pythons_parser() -> None:
    texts: list[str] = []

    class Parser(HTMLParser):
        def handle_data(self, data: str) -> None:
            texts.append(data)

    parser = Parser()
    parser.feed("<div")
    parser.close()
    assert readable_module._close_rescans() is bool(texts)


# addresses.parse


@pytest.mark.parametrize(
    ("text", "address", "reason"),
    [
        ("fe80::1%eth0", "fe80::1", "link-local"),  # the zone index getaddrinfo gives a link-local one
        ("fe80::1%a%b", "fe80::1", "link-local"),  # all of it, from the first "%"
        ("10.0.0.1", "10.0.0.1", "private"),
        ("2606:4700:4700::1111", "2606:4700:4700::1111", None),
    ],
)
def test_parse_drops_the_zone_index(text: str, address: str, reason: str | None) -> None:
    parsed = parse(text)
    assert (parsed, str(parsed)) == (ipaddress.ip_address(address), address)
    assert blocked_reason(parsed) == reason


# Found by this file's mutation work: both failed before the fix.


def test_a_long_comment_ending_across_the_slice_where_it_was_first_cut_still_ends() -> None:
    """The "--" of a "-->" that ends the slice where the comment first passed MAX_PENDING was
    dropped with it, so the "->" after was not its end and the rest of the page was lost."""
    start = "<p>Before.</p><!--"
    for end_at in (5 * SLICE, 5 * SLICE + 1):  # "--" or "-" ending the slice after which it was cut
        page = start + "c" * (end_at - 2 - len(start)) + "-->After.<p>x</p>"
        assert page[end_at] == ">"
        assert from_html(page, base_url="https://e.test/", max_chars=1000).text == "Before.\nAfter.\nx"


@pytest.mark.parametrize(
    ("page", "text", "truncated"),
    [
        ("<p>" + "a" * 20 + "</p>", "a" * 20, False),  # exactly max_chars, and nothing after
        ("<p>" + "a" * 20 + "</p><p> </p><div>\n</div>", "a" * 20, False),  # nothing after but space
        ("<p>" + "a" * 20 + "</p><p>b</p>", "a" * 20, True),  # text after it, left out
        ("<p>" + "a" * 20 + " b</p>", cut("a" * 20 + " b", 20)[0], True),  # the line itself cut
    ],
)
def test_truncated_says_whether_text_was_left_out_not_whether_the_budget_was_reached(
    page: str, text: str, truncated: bool
) -> None:
    assert from_html(page, base_url="https://e.test/", max_chars=20) == Readable(
        title="", text=text, truncated=truncated
    )


def test_a_page_longer_than_the_slices_read_is_truncated_though_the_rest_is_not_read() -> None:
    page = "<p>" + "a" * 20 + "</p>" + " " * SLICE + "<p>unread</p>"
    assert from_html(page, base_url="https://e.test/", max_chars=20) == Readable(
        title="", text="a" * 20, truncated=True
    )


def test_a_quoted_gt_that_ends_the_slice_where_a_tag_was_cut_is_dropped_with_it() -> None:
    """A ">" inside a quoted attribute is no end of the tag: dropped with it when the tag is cut,
    so the tag is dropped up to the next ">" (after its closing quote), not read on as text."""
    start = "<p>Before.</p><img alt='"
    cut_at = 5 * SLICE  # the slice after which the tag first passes MAX_PENDING
    page = start + "c" * (cut_at - 1 - len(start)) + ">" + "tail'>After.<p>x</p>"
    assert page[cut_at - 1] == ">"
    assert from_html(page, base_url="https://e.test/", max_chars=1000).text == "Before.\nAfter.\nx"


def test_a_marked_section_never_closed_at_the_end_of_a_page_is_not_text() -> None:
    assert from_html("<p>a</p><![foo[ bar", base_url="https://e.test/", max_chars=100) == Readable(
        title="", text="a", truncated=False
    )
