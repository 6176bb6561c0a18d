"""The text of Office files (DOCX, XLSX, PPTX), read in the reading child of ingestion.documents.

Each is a zip of XML parts (Office Open XML, transitional or strict). The zip directory is checked
before anything is inflated (office_package). DOCX is read with python-docx; XLSX and PPTX with
lxml (python-docx's own XML library), following the package's relationships from its main part the
way Excel and PowerPoint do: the workbook's sheets and the presentation's slides in the order the
document lists them, nothing the document does not list. Their XML is parsed as it is inflated and
dropped as it is read (one row, shared string or paragraph at a time), entities are never expanded
nor anything fetched, and the read budget is checked at every row, string and paragraph.
"""

from __future__ import annotations

import io
import posixpath
import warnings
import zipfile
from collections.abc import Iterator
from itertools import chain
from typing import Any, NamedTuple

from ingestion.documents import ReadBudget, ReadLimits, RejectedError
from ingestion.excel_dates import BUILTIN_DATES, format_kind, shown

APPS = {"docx": "Word", "xlsx": "Excel", "pptx": "PowerPoint"}
MAX_MEMBERS = 2_000  # an Office file has tens of parts; thousands is an attack on the directory
# Where the main part is when the package's own relationships do not say (they always do in files
# Office writes), and what it lists: (main part, the list's entries, what one is called).
# The list is read only where the main part keeps it, a child of its root (a deck's sections name
# its slides again, in a list of the same name, in an extension: those are not more slides).
MAIN_PARTS = {
    "xlsx": ("xl/workbook.xml", "sheets", "sheet", "sheet"),
    "pptx": ("ppt/presentation.xml", "sldIdLst", "sldId", "slide"),
}
OFFICE_DOCUMENT = "/officeDocument"  # the end of the main part's relationship type (transitional and strict)
NOTES_SLIDE = "/notesSlide"  # the end of a slide's relationship type to its notes page


def office_text(data: bytes, fmt: str, limits: ReadLimits, budget: ReadBudget) -> str:
    """The Office file's text, or RejectedError (a parser's own failure escapes to the caller's
    catch-all, which names its type only)."""
    package = Package(data, limits, fmt)
    if fmt == "docx":
        return _docx_text(data, budget)
    main, parts = _listed_parts(package, limits)
    if fmt == "xlsx":
        return _xlsx_text(package, main, parts, limits, budget)
    return _pptx_text(package, parts, budget)


class Package:
    """An Office file's zip, refused as a bomb from the central directory before anything is
    inflated. The sizes there are the uploader's word: zipfile cuts a member at its declared size
    only after inflating what one read asks for (all of it, for python-docx), so a member that lies
    is stopped by the reading child's memory limit instead (too_much_memory). Office writes only
    stored and deflated members, each name once (part names are case-insensitive); bzip2 and LZMA,
    whose inflation no read bounds, and two members of one name are refused."""

    def __init__(self, data: bytes, limits: ReadLimits, fmt: str) -> None:
        self.fmt = fmt
        name, app = fmt.upper(), APPS[fmt]
        try:
            self.archive = zipfile.ZipFile(io.BytesIO(data))
            members = self.archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            raise RejectedError("unreadable", f"the {fmt} document is not a readable zip file") from None
        if len(members) > MAX_MEMBERS:
            raise RejectedError("decompression_bomb", f"the {name} has over {MAX_MEMBERS} parts")
        if any(member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) for member in members):
            raise RejectedError(
                "unreadable", f"the {name} has parts compressed in a way {app} does not write (bzip2, LZMA)"
            )
        self.members = {member.filename.lower(): member for member in members}
        if len(self.members) != len(members):
            raise RejectedError("unreadable", f"the {name} has two parts of one name")
        total = 0
        for member in members:
            total += member.file_size
            ratio = member.file_size / max(member.compress_size, 1)
            if total > limits.max_expanded_bytes or (
                member.file_size > 1_000_000 and ratio > limits.max_compression_ratio
            ):
                raise RejectedError(
                    "decompression_bomb",
                    f"the {name}'s parts expand past {limits.max_expanded_bytes} bytes or "
                    f"{limits.max_compression_ratio} times their compressed size",
                )

    def has(self, part: str) -> bool:
        return part.lower() in self.members

    def elements(self, part: str, local: str) -> Iterator[Any]:
        """Each element of ``part`` whose local name is ``local`` (any namespace: transitional or
        strict), once it is parsed whole, streamed from the zip. Everything already read is dropped
        as the parse goes on, inside the wanted elements and outside them, so memory holds one
        wanted element at a time whatever else the part holds; comments and processing
        instructions are left out, entities are not expanded, nothing is loaded."""
        from lxml import etree  # only when an Office file arrives (python-docx's own XML library)

        with self.archive.open(self.members[part.lower()]) as stream:
            parsed = etree.iterparse(
                stream,
                events=("start", "end"),
                resolve_entities=False,
                no_network=True,
                load_dtd=False,
                huge_tree=False,
                remove_comments=True,
                remove_pis=True,
            )
            try:
                yield from _kept(parsed, local)
            except etree.XMLSyntaxError as error:  # libxml2 out of memory is a syntax error of its own code
                if error.code == etree.ErrorTypes.ERR_NO_MEMORY:
                    raise MemoryError from None
                raise


def _kept(parsed: Any, local: str) -> Iterator[Any]:
    """The wanted elements of an iterparse of start and end events, everything else dropped."""
    inside = 0  # how many wanted elements the parse is in
    for event, element in parsed:
        wanted = local_name(element.tag) == local
        if event == "start":
            inside += wanted
            continue
        inside -= wanted
        if inside:  # part of a wanted element still being parsed
            continue
        if wanted:
            yield element
        element.clear(keep_tail=False)
        parent = element.getparent()
        while parent is not None and element.getprevious() is not None:
            del parent[0]


def local_name(tag: Any) -> str:
    """An element's name without its namespace ('' for an entity reference's node)."""
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _attribute(element: Any, local: str) -> str | None:
    """A namespaced attribute by its local name (r:id, in either relationships namespace)."""
    return next(
        (value for key, value in element.attrib.items() if key.startswith("{") and local_name(key) == local), None
    )


def _text(element: Any) -> str:
    """A text element's text, entity references left out and the text after them kept (libxml2
    nests at most 256 deep without huge_tree)."""
    if element is None:
        return ""
    parts = [element.text or ""]
    for child in element:
        if isinstance(child.tag, str):  # an entity reference's node has a function for a tag
            parts.append(_text(child))
        parts.append(child.tail or "")
    return "".join(parts)


def _listed_parts(package: Package, limits: ReadLimits) -> tuple[str, list[str]]:
    """The main part, and the parts it lists (a workbook's sheets, a presentation's slides) in its
    order, refused past max_pages before any is read."""
    default, container, entry, what = MAIN_PARTS[package.fmt]
    main = _related(package, "", OFFICE_DOCUMENT, default)
    if not package.has(main):
        raise RejectedError("unreadable", f"the {package.fmt} document has no {posixpath.basename(default)} part")
    targets = _relationships(package, main)
    listed = [
        _attribute(element, "id")
        for kept in package.elements(main, container)
        if kept.getparent() is not None and kept.getparent().getparent() is None  # the main part's own list
        for element in kept
        if local_name(element.tag) == entry
    ]
    if len(listed) > limits.max_pages:
        raise RejectedError("too_many_pages", f"{len(listed)} {what}s is over the {limits.max_pages} page limit")
    parts = [targets.get(id_ or "") for id_ in listed]
    if not all(part is not None and package.has(part) for part in parts):
        raise RejectedError("unreadable", f"the {package.fmt} document lists a {what} it does not have")
    return main, [part for part in parts if part is not None]


def _related(package: Package, main: str, kind: str, default: str) -> str:
    """The part ``main`` relates to by a type ending with ``kind`` (the first), else ``default``."""
    return next(iter(_relationships(package, main, kind).values()), default)


def _relationships(package: Package, source: str, kind: str = "") -> dict[str, str]:
    """The internal targets (id -> part name) of a part's relationships (the package's own for
    ``source`` ''), those whose type ends with ``kind``."""
    folder = posixpath.dirname(source)
    rels = posixpath.join(folder, "_rels", f"{posixpath.basename(source)}.rels")
    if not package.has(rels):
        return {}
    targets = {}
    for relation in package.elements(rels, "Relationship"):
        target, id_ = relation.get("Target") or "", relation.get("Id")
        if relation.get("TargetMode") == "External" or not id_ or not (relation.get("Type") or "").endswith(kind):
            continue
        part = posixpath.normpath(target[1:] if target.startswith("/") else posixpath.join(folder, target))
        if not part.startswith(".."):  # a target outside the package is none of its parts
            targets[id_] = part
    return targets


W_MAIN = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
MARKUP_COMPATIBILITY = "http://schemas.openxmlformats.org/markup-compatibility/2006"
# Where a body holds text Word does not show: the copy of a text box written for older readers
# (beside the one read), and the old place of a moved paragraph while the move is tracked.
UNSHOWN = frozenset({f"{{{MARKUP_COMPATIBILITY}}}Fallback", f"{{{W_MAIN}}}moveFrom"})
# What a run's other elements stand for in its text.
RUN_MARKS = {f"{{{W_MAIN}}}tab": "\t", f"{{{W_MAIN}}}br": "\n", f"{{{W_MAIN}}}cr": "\n",
             f"{{{W_MAIN}}}noBreakHyphen": "-"}  # fmt: skip


# The ends of the main part's relationship types to its footnotes and endnotes, in reading order.
NOTE_PARTS = ("/footnotes", "/endnotes")
NOTES = frozenset({f"{{{W_MAIN}}}footnote", f"{{{W_MAIN}}}endnote"})
# The notes Word writes for its own layout (the rule above the notes and its continuations): no text.
LAYOUT_NOTES = frozenset({"separator", "continuationSeparator", "continuationNotice"})


def _docx_text(data: bytes, budget: ReadBudget) -> str:
    """Each paragraph of the body a line (tables' and text boxes' too, each once), as Word shows
    it: a run's tabs and breaks kept, hidden runs, a text box's fallback copy and a tracked move's
    old place left out; then the footnotes' and endnotes' paragraphs, read the same way."""
    import docx  # only when a DOCX arrives

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        document = docx.Document(io.BytesIO(data))
        for paragraph in chain(document.element.body.iter(f"{{{W_MAIN}}}p"), _note_paragraphs(document)):
            budget.check_time()
            if any(ancestor.tag in UNSHOWN for ancestor in paragraph.iterancestors()):
                continue
            if line := "".join(_docx_runs(paragraph)):  # a paragraph of nothing Word shows is no line
                budget.add(line)
    return budget.text()


def _note_paragraphs(document: Any) -> Iterator[Any]:
    """The paragraphs of the document's footnotes, then of its endnotes (the parts its main part
    relates to; python-docx keeps them unparsed), in their order, Word's layout notes left out.
    Parsed with python-docx's parser: entities are not expanded, nothing is fetched."""
    from docx.oxml import parse_xml

    relations = [rel for rel in document.part.rels.values() if not rel.is_external]
    for kind in NOTE_PARTS:
        for rel in relations:
            if not rel.reltype.endswith(kind):
                continue
            for note in parse_xml(rel.target_part.blob):
                if note.tag in NOTES and note.get(f"{{{W_MAIN}}}type") not in LAYOUT_NOTES:
                    yield from note.iter(f"{{{W_MAIN}}}p")


def _docx_runs(paragraph: Any) -> Iterator[str]:
    """The text of a paragraph's own runs: not of the paragraphs a text box in it holds (each is
    a line of its own), nor what Word does not show."""
    pending = list(reversed(paragraph))
    while pending:
        element = pending.pop()
        if not isinstance(element.tag, str) or element.tag in UNSHOWN or element.tag == f"{{{W_MAIN}}}p":
            continue
        if element.tag == f"{{{W_MAIN}}}r":
            if not _hidden(element):
                yield from _run_text(element)
            continue
        pending.extend(reversed(element))


def _run_text(run: Any) -> Iterator[str]:
    """A run's text and marks (a drawing in it, with a text box's paragraphs, is read as lines)."""
    for child in run:
        if child.tag == f"{{{W_MAIN}}}t":
            yield child.text or ""
        elif child.tag in RUN_MARKS:
            yield RUN_MARKS[child.tag]


def _hidden(run: Any) -> bool:
    """Whether a run is hidden text (w:vanish in its properties, not switched off)."""
    for properties in run.iterchildren(f"{{{W_MAIN}}}rPr"):
        for vanish in properties.iterchildren(f"{{{W_MAIN}}}vanish"):
            return vanish.get(f"{{{W_MAIN}}}val", "true") not in ("0", "false", "off")
    return False


class _Workbook(NamedTuple):
    strings: list[str]  # the shared strings
    dates: dict[int, str]  # a cell style's index -> what its number format shows (excel_dates)
    date1904: bool  # dates count from 1904 (workbookPr date1904)


def _xlsx_text(package: Package, main: str, sheets: list[str], limits: ReadLimits, budget: ReadBudget) -> str:
    """Each sheet's rows, one line per row with its cells' values tab-separated: text from the
    workbook's shared strings or the cell itself, numbers as Excel stores them except dates and
    times (ISO 8601, excel_dates), TRUE and FALSE, a formula by its last saved value; error values
    left out."""
    book = _Workbook(
        _shared_strings(package, _related(package, main, "/sharedStrings", "xl/sharedStrings.xml"), limits, budget),
        _date_styles(package, _related(package, main, "/styles", "xl/styles.xml"), budget),
        any(pr.get("date1904") in ("1", "true") for pr in package.elements(main, "workbookPr")),
    )
    for sheet in sheets:
        for row in package.elements(sheet, "row"):
            budget.check_time()  # a sheet of empty rows adds no text
            values: list[str] = []
            size = 0
            for cell in row:
                if local_name(cell.tag) == "c" and (value := _cell_value(cell, book)):
                    size += len(value) + 1
                    if size > limits.max_chars:  # before joining what could be a huge row
                        raise RejectedError("too_much_text", f"the text is over the {limits.max_chars} character limit")
                    values.append(value)
            if values:
                budget.add("\t".join(values))
    return budget.text()


def _cell_value(cell: Any, book: _Workbook) -> str:
    kind = cell.get("t")
    children = {local_name(child.tag): child for child in cell}
    if kind == "inlineStr":
        return _string_item(children.get("is"))
    value = _text(children.get("v"))
    if kind == "s" and value:
        if (index := _index(value)) is None or index >= len(book.strings):
            raise RejectedError("unreadable", "the xlsx document names a shared string it does not have")
        return book.strings[index]
    if kind == "b":
        return {"1": "TRUE", "0": "FALSE"}.get(value, "")
    if kind in (None, "n") and value and (shows := book.dates.get(_index(cell.get("s")) or 0)):
        return shown(value, shows, date1904=book.date1904)
    return "" if kind == "e" else value


def _index(value: str | None) -> int | None:
    """A count or index attribute's value; None when it is none (absent, signed, not ASCII digits)."""
    return int(value) if value and value.isascii() and value.isdigit() else None


def _date_styles(package: Package, styles: str, budget: ReadBudget) -> dict[int, str]:
    """The cell styles (their index in the styles part's cellXfs) whose number format shows a
    date or a time, and what it shows: the workbook's own formats (numFmts) first, else Excel's
    built-in ones."""
    if not package.has(styles):
        return {}
    codes: dict[int | None, str] = {}
    for formats in package.elements(styles, "numFmts"):  # not the differential formats' numFmt
        for code in formats:
            codes[_index(code.get("numFmtId"))] = code.get("formatCode") or ""
    dates = {}
    for styled in package.elements(styles, "cellXfs"):
        for index, xf in enumerate(xf for xf in styled if local_name(xf.tag) == "xf"):
            budget.check_time()
            number_format = _index(xf.get("numFmtId"))
            kind = (
                format_kind(codes[number_format]) if number_format in codes else BUILTIN_DATES.get(number_format or 0)
            )
            if kind:
                dates[index] = kind
    return dates


def _string_item(item: Any) -> str:
    """A shared or inline string: its text, or its rich text runs' joined; never its phonetic
    reading (rPh), which Excel keeps beside Japanese text."""
    if item is None:
        return ""
    parts = []
    for child in item:
        name = local_name(child.tag)
        if name == "t":
            parts.append(_text(child))
        elif name == "r":
            parts.extend(_text(t) for t in child if local_name(t.tag) == "t")
    return "".join(parts)


def _shared_strings(package: Package, part: str, limits: ReadLimits, budget: ReadBudget) -> list[str]:
    """The workbook's shared strings, within max_chars in all."""
    strings: list[str] = []
    if not package.has(part):
        return strings
    chars = 0
    for item in package.elements(part, "si"):
        budget.check_time()
        text = _string_item(item)
        chars += len(text)
        if chars > limits.max_chars:
            raise RejectedError("too_much_text", f"the text is over the {limits.max_chars} character limit")
        strings.append(text)
    return strings


def _pptx_text(package: Package, slides: list[str], budget: ReadBudget) -> str:
    """Each slide's paragraphs (its text boxes, shapes and tables, a line break kept), then its
    speaker notes (the notes page's body placeholder, not the slide image, number, date, header or
    footer PowerPoint puts around it), slides in the presentation's order; comments and embedded
    files are not read."""
    for slide in slides:
        _paragraphs(_shown(package.elements(slide, "p")), budget)
        notes = _related(package, slide, NOTES_SLIDE, "")
        if not notes or not package.has(notes):
            continue
        for shape in package.elements(notes, "sp"):
            budget.check_time()
            placeholder = next(shape.iter("{*}ph"), None)
            if placeholder is not None and placeholder.get("type") == "body":
                _paragraphs(_shown(shape.iter("{*}p")), budget)
    return budget.text()


def _shown(paragraphs: Iterator[Any]) -> Iterator[Any]:
    """The paragraphs not in content written again for older readers (mc:Fallback, beside the
    mc:Choice that is read): their ancestors are still there while the parse is inside them."""
    for paragraph in paragraphs:
        if not any(ancestor.tag in UNSHOWN for ancestor in paragraph.iterancestors()):
            yield paragraph


def _paragraphs(paragraphs: Iterator[Any], budget: ReadBudget) -> None:
    """Each DrawingML paragraph's text a line (its runs and fields, a line break kept)."""
    for paragraph in paragraphs:
        budget.check_time()  # a deck of empty paragraphs adds no text
        parts = []
        for element in paragraph.iter():
            name = local_name(element.tag)
            if name == "t":
                parts.append(_text(element))
            elif name == "br":
                parts.append("\n")
        if line := "".join(parts).strip("\n"):
            budget.add(line)
