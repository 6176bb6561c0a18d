"""What a browser does not show, known from the markup alone (web_mcp.readable leaves it out).

Text a page's reader is not shown is where instructions meant for an agent hide, so an element
hidden by its own markup is left out with all it holds: the ``hidden`` attribute (not
``hidden="until-found"``, a collapsed section a reader opens by finding in it or following a link
to it), and an inline style whose ``display`` is ``none``, ``visibility`` ``hidden`` or
``collapse``, or ``content-visibility`` ``hidden``; what a browser's own stylesheet hides (a
``<dialog>`` without ``open``, an element with a ``popover`` attribute, ``<datalist>``, ``<rp>``) unless
the page is a browser's copy marked with what it computed; and the content of ``<audio>`` and
``<video>``, a fallback no browser with media shows. The style is read as CSS reads it: strings,
comments and escapes, the last valid declaration winning unless an earlier one is ``!important``
(a declaration whose value is not a keyword of its property is dropped, as a browser drops it).

Where the element ends is followed as HTML's tree builder follows it, with the elements open inside
it (at most MAX_DEPTH; past that, the rest of the page is left out) but not the tree around it: its
end tag, looked for within the scope HTML looks in (``</div>`` does not close a div outside a table
it is in); an end tag of an element that is not open inside it is ignored, except the tags that
close an element whose end tag may be left out (``<p>``, ``<li>``, ``<dt>``/``<dd>``, table rows,
cells and sections, ``<option>``/``<optgroup>``): start tags as HTML closes them (a ``<table>``
closes a ``<p>`` only in standards mode), and the end tags of the elements that hold them, which are
taken as open (and in scope, unless an element open inside stops the search). A page written to
defeat this (a stray ``</ul>`` after a hidden ``<li>``, misnested formatting) can still show this
reader what a browser hides, as a stylesheet always can (web_fetch reads none; web_browse marks what
the browser computed): the web-content guardrail's prompt-attack filter reads what is left.
"""

from __future__ import annotations

import re

MAX_DEPTH = 256  # elements open inside a hidden one
VOID = frozenset(
    {"area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "img", "input", "keygen", "link",
     "meta", "param", "source", "track", "wbr"}
)  # fmt: skip
FOREIGN = frozenset({"svg", "math"})  # inside them "/>" closes an element
# HTML's special elements: an end tag of another element is ignored past one of them, and the
# search for an open <li>, <dt> or <dd> to close stops at one (but at address, div and p).
SPECIAL = VOID | frozenset(
    {"address", "applet", "article", "aside", "blockquote", "body", "button", "caption", "center", "colgroup",
     "dd", "details", "dir", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "frameset",
     "h1", "h2", "h3", "h4", "h5", "h6", "head", "header", "hgroup", "html", "iframe", "li", "listing", "main",
     "marquee", "menu", "nav", "noembed", "noframes", "noscript", "object", "ol", "p", "plaintext", "pre",
     "script", "search", "section", "select", "style", "summary", "table", "tbody", "td", "template", "textarea",
     "tfoot", "th", "thead", "title", "tr", "ul", "xmp"}
)  # fmt: skip
HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
FORMATTING = frozenset(
    {"a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u"}
)
# Elements whose content no browser shows, whatever the page's styles: what an <audio> or <video>
# holds is the fallback of a browser that plays no media (its <source> and <track> are void).
NEVER_SHOWN = frozenset({"audio", "video"})
# Elements a browser's own stylesheet hides (a <dialog> without ``open`` and an element with a
# ``popover`` attribute, of any value, are hidden too): until a script shows them, which a page read
# without running its script never does.
HIDDEN_BY_DEFAULT = frozenset({"datalist", "rp"})
# Ruby's parts: a start tag of one closes the open ones (HTML's implied end tags) in a ruby.
RUBY_PARTS = frozenset({"rb", "rp", "rt", "rtc"})
# HTML's scope: its elements, and those in svg and math that hold HTML again (not svg and math).
SCOPE = frozenset(
    {"applet", "caption", "html", "table", "td", "th", "marquee", "object", "template"}
    | {"foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext", "annotation-xml"}
)
BUTTON_SCOPE = SCOPE | {"button"}
LIST_SCOPE = SCOPE | {"ol", "ul"}
TABLE_SCOPE = frozenset({"html", "table", "template"})
TABLE_PARTS = frozenset({"caption", "colgroup", "tbody", "thead", "tfoot", "tr", "td", "th"})
TABLE_STARTS = TABLE_PARTS | {"col"}  # start tags HTML ignores outside a table
SELECT_ENDS = frozenset({"select", "option", "optgroup"})
ITEM_STOPS = SPECIAL - {"address", "div", "p"}
# The start tags that close an open <p> (in button scope); <table> only in standards mode.
P_CLOSERS = HEADINGS | {
    "address", "article", "aside", "blockquote", "center", "details", "dialog", "dir", "div", "dl", "dd", "dt",
    "fieldset", "figcaption", "figure", "footer", "form", "header", "hgroup", "hr", "li", "listing", "main", "menu",
    "nav", "ol", "p", "plaintext", "pre", "search", "section", "summary", "table", "ul", "xmp",
}  # fmt: skip
# The elements a tag closes, and where the search for them stops (None: at the current element).
Rule = tuple[frozenset[str], frozenset[str] | None]
P_RULE: Rule = (frozenset({"p"}), BUTTON_SCOPE)
CAPTION_RULE: Rule = (frozenset({"caption"}), TABLE_SCOPE)
CLOSED_BY_START: dict[str, list[Rule]] = {tag: [P_RULE] for tag in P_CLOSERS}
CLOSED_BY_START.update(
    {
        "li": [(frozenset({"li"}), ITEM_STOPS), P_RULE],
        "dt": [(frozenset({"dt", "dd"}), ITEM_STOPS), P_RULE],
        "dd": [(frozenset({"dt", "dd"}), ITEM_STOPS), P_RULE],
        **{heading: [P_RULE, (HEADINGS, None)] for heading in HEADINGS},
        "a": [(frozenset({"a"}), SCOPE)],
        "button": [(frozenset({"button"}), SCOPE)],
        "td": [CAPTION_RULE, (frozenset({"td", "th"}), TABLE_SCOPE)],
        "th": [CAPTION_RULE, (frozenset({"td", "th"}), TABLE_SCOPE)],
        "tr": [CAPTION_RULE, (frozenset({"td", "th", "tr"}), TABLE_SCOPE)],
        **{part: [(TABLE_PARTS, TABLE_SCOPE)] for part in ("caption", "colgroup", "tbody", "thead", "tfoot")},
        "rb": [(RUBY_PARTS, None)],
        "rtc": [(RUBY_PARTS, None)],
        "rp": [(RUBY_PARTS - {"rtc"}, None)],
        "rt": [(RUBY_PARTS - {"rtc"}, None)],
        "option": [(frozenset({"option"}), None)],
        "optgroup": [(frozenset({"option", "optgroup"}), None)],
    }
)
# Where the search for an end tag's element stops (other end tags: at a special element).
END_SCOPE: dict[str, frozenset[str]] = {
    **{tag: SCOPE for tag in SPECIAL | FORMATTING},
    "p": BUTTON_SCOPE,
    "li": LIST_SCOPE,
    "dialog": SCOPE,  # not a special element, but its end tag is looked for as theirs are
    **{tag: TABLE_SCOPE for tag in TABLE_PARTS | {"table"}},
}
# The end tags of what holds an element whose end tag may be left out: they close it too.
CLOSED_BY_END: dict[str, frozenset[str]] = {
    **{tag: SPECIAL - {tag, "br", "body", "html"} for tag in ("p", "li", "dt", "dd")},
    **{part: SPECIAL - {"br", "body", "html"} | {"ruby", "rtc"} - {part} for part in RUBY_PARTS},
    "option": frozenset({"select", "optgroup", "datalist"}),
    "optgroup": frozenset({"select", "datalist"}),
    "td": frozenset({"tr", "tbody", "thead", "tfoot", "table"}),
    "th": frozenset({"tr", "tbody", "thead", "tfoot", "table"}),
    "tr": frozenset({"tbody", "thead", "tfoot", "table"}),
    **{part: frozenset({"table"}) for part in ("caption", "colgroup", "tbody", "thead", "tfoot")},
}

GLOBAL_KEYWORDS = frozenset({"inherit", "initial", "unset", "revert", "revert-layer"})
DISPLAY_WORDS = frozenset(
    {"none", "contents", "block", "inline", "run-in", "flow", "flow-root", "table", "flex", "grid", "ruby", "math",
     "list-item", "inline-block", "inline-table", "inline-flex", "inline-grid", "inline-list-item", "table-row-group",
     "table-header-group", "table-footer-group", "table-row", "table-cell", "table-column-group", "table-column",
     "table-caption", "ruby-base", "ruby-text", "ruby-base-container", "ruby-text-container", "-webkit-box",
     "-webkit-inline-box", "-ms-flexbox", "-ms-inline-flexbox", "-moz-box", "-moz-inline-box"}
)  # fmt: skip
HIDING = {
    "display": frozenset({"none"}),
    "visibility": frozenset({"hidden", "collapse"}),
    "content-visibility": frozenset({"hidden"}),
}
KEYWORDS = {
    "visibility": frozenset({"visible", "hidden", "collapse"}),
    "content-visibility": frozenset({"visible", "auto", "hidden"}),
}
ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\n\r\f]?|(.))", re.DOTALL)
IMPORTANT = re.compile(r"!\s*important$")


def hidden_by_markup(attrs: list[tuple[str, str | None]]) -> bool:
    """Whether an element's own attributes hide it (its first ``style`` counts, as in HTML)."""
    hidden = any(name == "hidden" and (value or "").lower() != "until-found" for name, value in attrs)
    style = next((value or "" for name, value in attrs if name == "style"), "")
    return hidden or hidden_by_style(style)


def hidden_by_default(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
    """Whether a browser's own stylesheet hides the element (HIDDEN_BY_DEFAULT)."""
    names = {name for name, _ in attrs}
    return tag in HIDDEN_BY_DEFAULT or (tag == "dialog" and "open" not in names) or "popover" in names


def hidden_by_style(style: str) -> bool:
    chosen: dict[str, tuple[bool, str]] = {}  # property: (important, value)
    for declaration in _declarations(style):
        name, colon, value = declaration.partition(":")
        name = _unescaped(name).strip().lower()
        if not colon or name not in HIDING:
            continue
        value = " ".join(_unescaped(value).lower().split())
        important = IMPORTANT.search(value) is not None
        value = IMPORTANT.sub("", value).strip()
        if _valid(name, value) and (important or not chosen.get(name, (False, ""))[0]):
            chosen[name] = (important, value)
    shown = {name: value for name, (_, value) in chosen.items()}
    return any(shown.get(name) in values for name, values in HIDING.items())


def _valid(name: str, value: str) -> bool:
    if value in GLOBAL_KEYWORDS:
        return True
    if name == "display":
        words = value.split()
        return 0 < len(words) <= 3 and all(word in DISPLAY_WORDS for word in words)
    return value in KEYWORDS[name]


def _unescaped(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1) is None:  # an escaped line break outside a string is no escape: invalid
            return "\ufffd" if match.group(2) == "\n" else match.group(2)
        code = int(match.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"

    return ESCAPE.sub(one, text) if "\\" in text else text


def _declarations(style: str) -> list[str]:
    """A style attribute's declarations, split at the semicolons CSS splits at (not in a string,
    a comment or brackets, not escaped), comments left out; in time linear in the style."""
    declarations: list[str] = []
    current: list[str] = []
    quote, depth, index, size = "", 0, 0, len(style)
    while index < size:
        char = style[index]
        if char == "\\":
            current.append(style[index : index + 2])
            index += 2
            continue
        if quote:
            quote = "" if char == quote else quote
        elif style.startswith("/*", index):
            end = style.find("*/", index + 2)
            index = size if end < 0 else end + 2
            continue
        elif char in "\"'":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth = max(0, depth - 1)
        elif char == ";" and depth == 0:
            declarations.append("".join(current))
            current = []
            index += 1
            continue
        current.append(char)
        index += 1
    declarations.append("".join(current))
    return declarations


class HiddenContent:
    """The hidden element the parser is in, if any: the elements open inside it, outermost first."""

    def __init__(self, *, computed: bool = False) -> None:
        """``computed``: the page is a browser's copy already marked with what it computed as not
        shown (web_browse's READ), so what its default stylesheet hides is the browser's to say (a
        script may have opened the dialog, a stylesheet may show the datalist)."""
        self.open: list[str] = []
        self.to_end = False  # deeper than MAX_DEPTH: the rest of the page is hidden
        self.standards = False  # the document's doctype asks for standards mode (see standards_mode)
        self.tables = 0  # tables open outside hidden content (their start tags less their end tags)
        self.rubies = 0  # rubies open outside hidden content, as tables are counted
        self.defaults = not computed

    def __bool__(self) -> bool:
        return bool(self.open) or self.to_end

    def start(self, tag: str, attrs: list[tuple[str, str | None]], *, closed: bool, may_hide: bool) -> bool:
        """Follows a start tag (``closed``: written with "/>") into, within or out of hidden content:
        True when the tag is part of it. ``may_hide``: the tag may start hidden content here."""
        if self.to_end or (self.open and self._ignores(tag)):
            return True
        void = tag in VOID or (closed and (tag in FOREIGN or any(name in FOREIGN for name in self.open)))
        if not self.open and (void or not may_hide or not self._hides(tag, attrs)):
            if tag == "table":
                self.tables += 1
            elif tag == "ruby":
                self.rubies += 1
            return False
        if void:
            return True
        if len(self.open) == MAX_DEPTH:
            self.open, self.to_end = [], True
        else:
            self.open.append(tag)
        return True

    def _ignores(self, tag: str) -> bool:
        """Closes what a start tag closes inside hidden content: True when HTML ignores the tag."""
        if tag in TABLE_STARTS and self.open[0] not in TABLE_PARTS and "table" not in self.open:
            if not self.tables:
                return True  # a table's part in no table
            self.open = []  # it ends the cell (or the table's part) the hidden element is in
            return False
        # In quirks mode a table goes inside an open <p>; a ruby's part closes others only in a ruby.
        quirks_table = tag == "table" and not self.standards
        no_ruby = tag in RUBY_PARTS and not self.rubies and "ruby" not in self.open
        rules = () if quirks_table or no_ruby else CLOSED_BY_START.get(tag, ())
        for names, stops in rules:
            while self.open and self._close(names, stops):
                pass
        return False

    def _hides(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        # A table's part in no table is a tag HTML ignores, hidden or not.
        if tag in TABLE_STARTS and not self.tables:
            return False
        by_default = self.defaults and hidden_by_default(tag, attrs)
        return tag in NEVER_SHOWN or by_default or hidden_by_markup(attrs)

    def end(self, tag: str) -> bool:
        """Follows an end tag: True when it is part of hidden content; False when there is none,
        or the tag closes an element that holds it (to be read as if nothing were hidden)."""
        if self.to_end:
            return True
        if self.open:
            if "select" in self.open and tag not in SELECT_ENDS:
                return True  # a select's content ends at its options' and its own end tags only
            scope = END_SCOPE.get(tag, SPECIAL)
            if self._close(frozenset({tag}), scope):
                return True
            # The element the tag ends, taken as open around hidden content, is in scope only when
            # nothing open inside it stops the search: then it closes what it holds.
            if scope.isdisjoint(self.open):
                while self.open and tag in CLOSED_BY_END.get(self.open[-1], ()):
                    self.open.pop()
            if self.open:
                return True
        if tag == "table":
            self.tables = max(0, self.tables - 1)
        elif tag == "ruby":
            self.rubies = max(0, self.rubies - 1)
        return False

    def _close(self, names: frozenset[str], stops: frozenset[str] | None) -> bool:
        """Closes the innermost open element named in ``names`` (and all inside it), looking no
        further than an element in ``stops`` (None: the innermost only): whether one was."""
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index] in names:
                del self.open[index:]
                return True
            if stops is None or self.open[index] in stops:
                return False
        return False


QUIRKS_PUBLIC = ("-//w3c//dtd html 4.01 transitional//", "-//w3c//dtd html 4.01 frameset//")


def standards_mode(doctype: str) -> bool:
    """Whether a doctype (the text of ``<!...>``) asks for standards or limited-quirks mode, in
    which a <table> closes an open <p>: ``html`` with no public id, an XHTML 1 or HTML 4.01 one
    (transitional and frameset only with a system id); any other leaves the page in quirks mode."""
    words = doctype.lower().split(None, 2)
    if len(words) < 2 or words[0] != "doctype" or words[1] != "html":
        return False
    rest = words[2] if len(words) > 2 else ""
    if not rest.startswith("public"):
        return rest in ("", 'system "about:legacy-compat"', "system 'about:legacy-compat'")
    quoted = re.findall(r"\"([^\"]*)\"|'([^']*)'", rest)
    identifiers = [double or single for double, single in quoted]
    public = identifiers[0] if identifiers else ""
    if public.startswith("-//w3c//dtd xhtml 1."):
        return True
    if public.startswith(QUIRKS_PUBLIC):
        return len(identifiers) > 1
    return public.startswith("-//w3c//dtd html 4.01//")
