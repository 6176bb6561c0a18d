"""XLSX and PPTX through the pipeline: what Excel and PowerPoint files hold is read as text (rows
tab-separated, slides' paragraphs in order) under the same PII policy as any document, and a
hostile workbook or deck (entities, bombs, too many sheets, a shared string it does not have,
garbage XML) ends in quarantine with its reason on the first try."""

from __future__ import annotations

import io
import warnings
import zipfile
from typing import Any

import openpyxl
import pptx
import pytest
from hypothesis import given, settings, strategies as st
from pptx.util import Inches

from ingestion.documents import SUPPORTED_FORMATS, ReadLimits, RejectedError, text_of
from tests.lambdas.ingestion_corpus import (
    SEEDED_PII,
    office_bytes,
    pptx_bytes,
    pptx_package,
    relationships,
    sheet_xml,
    slide_xml,
    xlsx_bytes,
    xlsx_package,
)
from tests.lambdas.ingestion_fixtures import Aws
from tests.lambdas.test_ingestion_documents import curated_text, settled


def workbook_excel_would_write() -> bytes:
    """Two sheets as openpyxl writes them: strings shared, numbers as numbers, a formula (which
    openpyxl saves without a last value)."""
    book = openpyxl.Workbook()
    prices = book.active
    prices.title = "Prices"
    for row in (("Plan", "Price"), ("Basic", 10), ("Gold", 25.5), ("Double", "=B2*2")):
        prices.append(row)
    book.create_sheet("Notes").append(("Renewals", "in March"))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def deck_powerpoint_would_write() -> bytes:
    """A title-and-content slide and a slide with a two-by-two table, as python-pptx writes them."""
    deck = pptx.Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])
    first.shapes.title.text = "Quarterly plan"
    first.placeholders[1].text = "Refunds take thirty days."
    table = deck.slides.add_slide(deck.slide_layouts[5]).shapes.add_table(2, 2, 0, 0, Inches(4), Inches(1)).table
    for (row, column), text in {(0, 0): "Region", (0, 1): "Lead", (1, 0): "North", (1, 1): "Ines"}.items():
        table.cell(row, column).text = text
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_a_workbook_is_read_row_by_row_with_its_cells_tab_separated() -> None:
    assert "xlsx" in SUPPORTED_FORMATS
    assert (
        text_of(workbook_excel_would_write(), "xlsx")
        == "Plan\tPrice\nBasic\t10\nGold\t25.5\nDouble\nRenewals\tin March"
    )


def test_a_deck_is_read_slide_by_slide_with_its_tables() -> None:
    assert "pptx" in SUPPORTED_FORMATS
    text = text_of(deck_powerpoint_would_write(), "pptx")
    assert text == "Quarterly plan\nRefunds take thirty days.\nRegion\nLead\nNorth\nInes"


def test_a_slides_speaker_notes_follow_it() -> None:
    """python-pptx writes a notes page as PowerPoint does (a slide image, the notes body and a slide
    number placeholder; the notes master beside it): the body is read after its slide."""
    deck = pptx.Presentation(io.BytesIO(deck_powerpoint_would_write()))
    deck.slides[0].notes_slide.notes_text_frame.text = "Say the refund window twice.\nThen take questions."
    out = io.BytesIO()
    deck.save(out)
    assert text_of(out.getvalue(), "pptx") == (
        "Quarterly plan\nRefunds take thirty days.\nSay the refund window twice.\nThen take questions."
        "\nRegion\nLead\nNorth\nInes"
    )


P_NS = "http://schemas.openxmlformats.org/presentationml/2006/main"
A_NS = "http://schemas.openxmlformats.org/drawingml/2006/main"


def notes_xml(placeholder: str, paragraphs: list[str]) -> str:
    """A notes page with one shape: a placeholder of ``placeholder``'s type holding ``paragraphs``."""
    body = "".join(f"<a:p><a:r><a:t>{p}</a:t></a:r></a:p>" for p in paragraphs)
    return (
        f'<p:notes xmlns:p="{P_NS}" xmlns:a="{A_NS}"><p:cSld><p:spTree><p:sp><p:nvSpPr><p:cNvPr id="2" name="n"/>'
        f'<p:cNvSpPr/><p:nvPr><p:ph type="{placeholder}" idx="1"/></p:nvPr></p:nvSpPr><p:txBody>{body}</p:txBody>'
        "</p:sp></p:spTree></p:cSld></p:notes>"
    )


def with_notes(notes: dict[str, str], targets: dict[int, str], slides: int = 2) -> bytes:
    """A deck of ``slides`` slides whose slide n relates to the notes part ``targets[n]``."""
    extra: dict[str, str | bytes] = {f"ppt/notesSlides/{name}": xml for name, xml in notes.items()}
    for number, target in targets.items():
        extra[f"ppt/slides/_rels/slide{number}.xml.rels"] = relationships({"rId9": target}, "notesSlide")
    return pptx_package([slide_xml([f"slide {n}"]) for n in range(1, slides + 1)], extra=extra)


def test_notes_are_read_only_from_a_body_placeholder_of_a_part_in_the_package() -> None:
    # PowerPoint's slide number, date, header and footer placeholders hold text too: not the notes.
    notes = {"a.xml": notes_xml("body", ["note a"]), "b.xml": notes_xml("sldNum", ["2"])}
    assert text_of(with_notes(notes, {1: "../notesSlides/a.xml", 2: "../notesSlides/b.xml"}), "pptx") == (
        "slide 1\nnote a\nslide 2"
    )
    # A relationship to a part the package lacks, or outside it, is no notes page: nothing read, no error.
    assert text_of(with_notes({}, {1: "../notesSlides/gone.xml", 2: "../../../etc/passwd"}), "pptx") == (
        "slide 1\nslide 2"
    )


def test_notes_that_every_slide_shares_count_against_the_text_limit_each_time() -> None:
    """A hostile deck pointing every slide at one large notes page cannot read past the limits."""
    page = notes_xml("body", ["word " * 100])
    deck = with_notes({"a.xml": page}, {n: "../notesSlides/a.xml" for n in range(1, 9)}, slides=8)
    with pytest.raises(RejectedError, match="over the 2000 character limit") as rejected:
        text_of(deck, "pptx", ReadLimits(max_chars=2000))
    assert rejected.value.code == "too_much_text"


def test_speaker_notes_are_scanned_for_pii_like_the_slides(aws: Aws) -> None:
    deck = with_notes(
        {"a.xml": notes_xml("body", ["Call Grace Hopper on +1 206 555 0143."])}, {1: "../notesSlides/a.xml"}
    )
    assert settled(aws, "docs/notes.pptx", deck)["status"] == "curated"
    assert curated_text(aws, "docs/notes.pptx") == "slide 1\nCall [NAME] on [PHONE].\nslide 2"


SECTIONS = (
    '<p:extLst><p:ext uri="{521415D9-36F7-43E2-AB2F-B90AF26B5E84}">'
    '<p14:sectionLst xmlns:p14="http://schemas.microsoft.com/office/powerpoint/2010/main">'
    '<p14:section name="Intro" id="{8E5B4C4B-1111-4A4A-9A9A-000000000001}"><p14:sldIdLst>'
    '<p14:sldId id="256"/><p14:sldId id="257"/></p14:sldIdLst></p14:section></p14:sectionLst></p:ext></p:extLst>'
)


def with_part(package: bytes, name: str, edit: Any) -> bytes:
    """``package`` with one part's text replaced by ``edit(text)``."""
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in source.infolist():
            data = source.read(item)
            copy.writestr(item, edit(data.decode()).encode() if item.filename == name else data)
    return out.getvalue()


def test_a_deck_with_sections_is_read_once_slide_by_slide() -> None:
    """PowerPoint writes a deck's sections as an extension of the presentation, naming its slides
    again in lists of the same element names: they are no more slides (the deck was quarantined)."""
    deck = with_part(
        deck_powerpoint_would_write(),
        "ppt/presentation.xml",
        lambda xml: xml.replace("</p:presentation>", SECTIONS + "</p:presentation>"),
    )
    assert SECTIONS in zipfile.ZipFile(io.BytesIO(deck)).read("ppt/presentation.xml").decode()
    assert (
        text_of(deck, "pptx", ReadLimits(max_pages=2))
        == "Quarterly plan\nRefunds take thirty days.\nRegion\nLead\nNorth\nInes"
    )


def test_a_shapes_copy_for_older_readers_is_not_read_again() -> None:
    """PowerPoint writes some shapes twice, in mc:Choice and a mc:Fallback copy: read once."""
    mc = "http://schemas.openxmlformats.org/markup-compatibility/2006"
    slide = slide_xml(["Intro"]).replace(
        "</p:spTree>",
        f'<mc:AlternateContent xmlns:mc="{mc}"><mc:Choice Requires="p14"><p:sp><p:txBody><a:p><a:r><a:t>Chart title'
        "</a:t></a:r></a:p></p:txBody></p:sp></mc:Choice><mc:Fallback><p:sp><p:txBody><a:p><a:r><a:t>Chart title"
        "</a:t></a:r></a:p></p:txBody></p:sp></mc:Fallback></mc:AlternateContent></p:spTree>",
    )
    assert text_of(pptx_package([slide]), "pptx") == "Intro\nChart title"


def test_sheets_and_slides_are_read_in_their_numbers_order() -> None:
    numbers = range(1, 12)  # sheet10 and slide10 sort before sheet2 and slide2 as text
    assert text_of(xlsx_bytes([[[f"sheet {n}"]] for n in numbers]), "xlsx").splitlines() == [
        f"sheet {n}" for n in numbers
    ]
    assert text_of(pptx_bytes([[f"slide {n}"] for n in numbers]), "pptx").splitlines() == [
        f"slide {n}" for n in numbers
    ]


def test_shared_strings_inline_strings_and_numbers_are_each_read() -> None:
    book = xlsx_bytes([[["s:1", "inline", "42"], ["s:0"]]], shared=["first", "second"])
    assert text_of(book, "xlsx") == "second\tinline\t42\nfirst"


def test_workbook_and_deck_text_is_curated_with_personal_data_masked(aws: Aws) -> None:
    book = xlsx_bytes([[["Contact", "s:0"], ["Employee", "EMP-314159"]]], shared=["ada.lovelace@example.com"])
    assert settled(aws, "docs/contacts.xlsx", book)["pii"] == {"EMAIL": 1, "EMPLOYEE_ID": 1}
    assert curated_text(aws, "docs/contacts.xlsx") == "Contact\t[EMAIL]\nEmployee\t[EMPLOYEE_ID]"
    deck = pptx_bytes([["Escalations"], ["Call Grace Hopper on +1 206 555 0143."]])
    assert settled(aws, "docs/contacts.pptx", deck)["status"] == "curated"
    assert curated_text(aws, "docs/contacts.pptx") == "Escalations\nCall [NAME] on [PHONE]."
    assert not [value for value in SEEDED_PII if value in str(aws.registry_items())]


def test_a_deck_with_personal_data_in_a_public_classification_is_quarantined(aws: Aws) -> None:
    record = settled(aws, "web/press.pptx", pptx_bytes([["Press: ada.lovelace@example.com"]]), classification="public")
    assert (record["status"], record["reason"]) == ("quarantined", "personal data (EMAIL) in a public document")


def bzip2_part(name: str, data: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_BZIP2) as package:
        package.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("key", "body", "reason", "code"),
    [
        ("limits/long.xlsx", xlsx_bytes([[["a"]]] * 4), "4 sheets is over the 3 page limit", "too_many_pages"),
        ("limits/long.pptx", pptx_bytes([["a"]] * 4), "4 slides is over the 3 page limit", "too_many_pages"),
        ("limits/wordy.xlsx", xlsx_bytes([[["s:0"]]], shared=["word " * 500]), "2000 character", "too_much_text"),
        ("limits/wordy.pptx", pptx_bytes([["word " * 300] * 2]), "over the 2000 character limit", "too_much_text"),
        (
            "bomb/parts.xlsx",
            xlsx_bytes([[["Hi"]]], extra={"xl/media/pad.bin": bytes(2_000_000)}),
            "the XLSX's parts expand past 1000000 bytes or 200 times their compressed size",
            "decompression_bomb",
        ),
        (
            "bomb/parts.pptx",
            pptx_bytes([["Hi"]], extra={"ppt/media/pad.bin": bytes(2_000_000)}),
            "the PPTX's parts expand past 1000000 bytes",
            "decompression_bomb",
        ),
        ("bad/notazip.xlsx", b"PK\x03\x04 not really", "the xlsx document is not a readable zip file", "unreadable"),
        ("bad/truncated.pptx", pptx_bytes([["x"]])[:150], "the pptx document is not a readable zip file", "unreadable"),
        (
            "bad/bzip2.xlsx",
            bzip2_part("xl/worksheets/sheet1.xml", sheet_xml([["x"]])),
            "the XLSX has parts compressed in a way Excel does not write (bzip2, LZMA)",
            "unreadable",
        ),
        (
            "bad/shared.xlsx",
            xlsx_bytes([[["s:1"]]], shared=["only one"]),
            "the xlsx document names a shared string it does not have",
            "unreadable",
        ),
        (
            "bad/negative.xlsx",
            xlsx_bytes([[["s:-1"]]], shared=["only one"]),
            "names a shared string it does not have",
            "unreadable",
        ),
        ("bad/garbage.xlsx", xlsx_package(["<row><c"]), "could not be read", "unreadable"),
        ("bad/garbage.pptx", pptx_package(["\x00<p:sld"]), "could not be read", "unreadable"),
        (
            "bad/unlisted.pptx",
            pptx_package([slide_xml(["x"])], order=[1, 2]),
            "lists a slide it does not have",
            "unreadable",
        ),
        (
            "bad/nomain.xlsx",
            office_bytes({"xl/worksheets/sheet1.xml": sheet_xml([["x"]])}),
            "no workbook.xml part",
            "unreadable",
        ),
        ("empty/deck.pptx", pptx_package([]), "the document has no text", "empty"),
    ],
)
def test_workbooks_and_decks_past_a_limit_or_unreadable_are_quarantined_on_the_first_try(
    aws: Aws, key: str, body: bytes, reason: str, code: str
) -> None:
    record = settled(aws, key, body)
    assert (record["status"], record["reason_code"]) == ("quarantined", code), record
    assert reason in record["reason"]
    assert aws.dlq() == []


def test_a_text_within_the_character_limit_but_past_it_in_utf_8_bytes_is_quarantined_before_any_scan(
    aws: Aws,
) -> None:
    """Each 100 KB of UTF-8 is one Comprehend call: a workbook repeating a shared string of 4-byte
    characters reads within the character limit and would cost four times the calls it is sized
    for. 600 emoji: 600 characters, 2,400 bytes, past the 2,000 limit."""
    record = settled(aws, "limits/wide.xlsx", xlsx_bytes([[["s:0"]]], shared=["\U0001f600" * 600]))
    assert (record["status"], record["reason_code"], record["reason"]) == (
        "quarantined",
        "too_much_text",
        "the text is 2400 bytes of UTF-8, over the 2000 byte limit (one personal-data scan per 100 KB)",
    )
    assert aws.comprehend.calls == []


EXTERNAL_ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY secret SYSTEM "file:///etc/passwd">]>'
    '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&secret;</t></si></sst>'
)
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE p:sld [<!ENTITY a "lol">'
    + "".join(f'<!ENTITY {chr(98 + n)} "{("&" + chr(97 + n) + ";") * 10}">' for n in range(8))
    + "]>"
)


def test_entities_are_never_expanded_nor_fetched() -> None:
    book = xlsx_bytes([[["s:0", "kept"]]], extra={"xl/sharedStrings.xml": EXTERNAL_ENTITY.encode()})
    text = text_of(book, "xlsx")
    assert text == "kept"  # the entity is left out: neither the file nor an error
    slide = slide_xml(["&i;", "after the laughs"]).replace("&amp;i;", "&i;")  # 10**8 "lol"s, expanded
    with pytest.raises(RejectedError, match="the pptx document could not be read") as rejected:
        text_of(pptx_package([LAUGHS + slide]), "pptx")
    assert rejected.value.code == "unreadable"  # libxml2 refuses the amplification before anything grows
    one_level = LAUGHS.split("<!ENTITY b")[0] + "]>" + slide_xml(["&a;", "kept"]).replace("&amp;a;", "&a;")
    assert text_of(pptx_package([one_level]), "pptx") == "kept"  # never expanded


def test_a_sheet_of_empty_rows_is_stopped_when_the_time_budget_runs_out() -> None:
    ticks = iter(range(0, 10_000, 15))  # every look at the clock, 15 seconds later
    book = xlsx_bytes([[[] for _ in range(50)]])
    with pytest.raises(RejectedError, match="took longer than 20 seconds") as rejected:
        text_of(book, "xlsx", ReadLimits(seconds=20), clock=lambda: next(ticks))
    assert rejected.value.code == "too_slow"
    deck = pptx_bytes([[""] * 50])
    ticks = iter(range(0, 10_000, 15))
    with pytest.raises(RejectedError, match="took longer than 20 seconds"):
        text_of(deck, "pptx", ReadLimits(seconds=20), clock=lambda: next(ticks))


@settings(max_examples=40, deadline=None)
@given(part=st.binary(max_size=400), fmt=st.sampled_from(["xlsx", "pptx"]))
def test_any_bytes_in_a_sheet_or_slide_are_text_or_a_refusal(part: bytes, fmt: str) -> None:
    try:
        text = text_of((xlsx_package if fmt == "xlsx" else pptx_package)([part]), fmt)
    except RejectedError as rejected:
        code = rejected.code
    else:
        code = "read" if text.strip() else "blank text returned"
    assert code in {"unreadable", "empty", "read"}


def test_slides_are_read_in_the_presentations_order_and_only_those_it_lists() -> None:
    slides = [slide_xml([f"slide {n}"]) for n in (1, 2, 3)]
    assert text_of(pptx_package(slides, order=[3, 1, 2]), "pptx") == "slide 3\nslide 1\nslide 2"
    # A slide deleted from the list but left in the package is not the deck's: nobody sees it.
    assert text_of(pptx_package(slides, order=[2]), "pptx") == "slide 2"
    deck = pptx.Presentation(io.BytesIO(deck_powerpoint_would_write()))
    listed = deck.slides._sldIdLst
    first = listed[0]
    listed.remove(first)
    listed.append(first)
    out = io.BytesIO()
    deck.save(out)
    assert text_of(out.getvalue(), "pptx") == "Region\nLead\nNorth\nInes\nQuarterly plan\nRefunds take thirty days."


def test_sheets_are_read_in_the_workbooks_order() -> None:
    book = openpyxl.load_workbook(io.BytesIO(workbook_excel_would_write()))
    book.move_sheet("Notes", offset=-1)
    out = io.BytesIO()
    book.save(out)
    assert text_of(out.getvalue(), "xlsx").splitlines()[0] == "Renewals\tin March"


def test_phonetic_readings_are_left_out_and_rich_text_runs_joined() -> None:
    items = (
        '<si><t>東京</t><rPh sb="0" eb="2"><t>トウキョウ</t></rPh><phoneticPr fontId="1"/></si>'
        '<si><r><rPr><b/></rPr><t>Bold</t></r><r><t xml:space="preserve"> plain</t></r></si>'
    )
    shared = f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{items}</sst>'
    book = xlsx_bytes([[["s:0", "s:1"]]], extra={"xl/sharedStrings.xml": shared})
    assert text_of(book, "xlsx") == "東京\tBold plain"


def test_booleans_read_as_excel_shows_them_and_error_values_are_left_out() -> None:
    cells = '<c t="b"><v>1</v></c><c t="b"><v>0</v></c><c t="e"><v>#DIV/0!</v></c><c t="str"><v>total</v></c>'
    sheet = (
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f"<sheetData><row>{cells}</row></sheetData></worksheet>"
    )
    assert text_of(xlsx_package([sheet]), "xlsx") == "TRUE\tFALSE\ttotal"


def test_a_line_break_is_kept_and_text_after_an_entity_reference_is_not_lost() -> None:
    a = "http://schemas.openxmlformats.org/drawingml/2006/main"
    paragraph = f'<a:p xmlns:a="{a}"><a:r><a:t>Hello</a:t></a:r><a:br/><a:r><a:t>before &e; after</a:t></a:r></a:p>'
    slide = f'<!DOCTYPE p [<!ENTITY e "E">]><p:sld xmlns:p="urn:p">{paragraph}</p:sld>'
    assert text_of(pptx_package([slide]), "pptx") == "Hello\nbefore  after"


STRICT = {
    "_rels/.rels": relationships({"rId1": "xl/workbook.xml"}, "officeDocument"),
    "xl/workbook.xml": '<workbook xmlns="http://purl.oclc.org/ooxml/spreadsheetml/main" '
    'xmlns:r="http://purl.oclc.org/ooxml/officeDocument/relationships"><sheets>'
    '<sheet name="S" sheetId="1" r:id="rId1"/></sheets></workbook>',
    "xl/_rels/workbook.xml.rels": relationships({"rId1": "/xl/worksheets/sheet1.xml"}, "worksheet").replace(
        "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
        "http://purl.oclc.org/ooxml/officeDocument/relationships",
    ),
    "xl/worksheets/sheet1.xml": sheet_xml([["Strict", "1"]]).replace(
        "http://schemas.openxmlformats.org/spreadsheetml/2006/main", "http://purl.oclc.org/ooxml/spreadsheetml/main"
    ),
}


def test_a_strict_open_xml_workbook_is_read_like_a_transitional_one() -> None:
    assert text_of(office_bytes(STRICT), "xlsx") == "Strict\t1"


def test_part_names_are_matched_whatever_their_case_and_two_parts_of_one_name_are_refused() -> None:
    upper = {name.upper() if name.startswith("xl/worksheets") else name: part for name, part in STRICT.items()}
    assert text_of(office_bytes(upper), "xlsx") == "Strict\t1"
    out = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(out, "w") as package:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate it writes
        for name, part in STRICT.items():
            package.writestr(name, part)
        package.writestr("XL/worksheets/sheet1.xml", sheet_xml([["hidden second copy"]]))
    with pytest.raises(RejectedError, match="the XLSX has two parts of one name"):
        text_of(out.getvalue(), "xlsx")


def test_what_a_sheet_holds_outside_its_rows_is_dropped_as_it_is_read() -> None:
    """Half a million cells outside any row take well over 32 MB parsed whole; read and dropped
    one at a time, the reading child holds one."""
    sheet = sheet_xml([["first"]]).replace("</sheetData>", "</sheetData>" + "<c/>" * 500_000)
    limits = ReadLimits(max_memory_bytes=32_000_000, max_compression_ratio=10_000)  # the cells repeat
    assert text_of(xlsx_package([sheet]), "xlsx", limits) == "first"


def test_a_row_is_refused_for_its_size_before_it_is_joined() -> None:
    book = xlsx_bytes([[["s:0"] * 5]], shared=["x" * 1_000])  # five references to one long string
    with pytest.raises(RejectedError, match="over the 4000 character limit") as rejected:
        text_of(book, "xlsx", ReadLimits(max_chars=4_000))
    assert rejected.value.code == "too_much_text"
