"""Each PDF page is bounded on its own (issue 14): the document's clock is read between pages, so a
page is refused before pypdf parses it when its content, counting a form every time it is drawn,
is over max_page_bytes, or when its forms nest past max_form_depth. Limits are injected; nothing
here times anything."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st
from pypdf import PageObject

from ingestion import documents
from ingestion.documents import ReadLimits, RejectedError, text_of
from tests.lambdas.ingestion_corpus import pdf_file
from tests.lambdas.ingestion_fixtures import Aws
from tests.lambdas.test_ingestion_documents import curated_text, settled

IMAGE = b"<< /Type /XObject /Subtype /Image /Width 1 /Height 1 /ColorSpace /DeviceGray /BitsPerComponent 8 >>"


def line(text: str) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (%s) Tj ET\n" % text.encode()


def draw(form: int, times: int = 1) -> bytes:
    return b"/Fm%d Do\n" % form * times


def pdf(pages: Sequence[bytes], forms: Sequence[bytes] = (), *, compress: bool = False) -> bytes:
    """A PDF whose pages and forms (/Fm0, /Fm1, ...) have these content streams, and a 1x1 image
    /Im0. One resource dictionary (the font /F1, the image and every form) is shared by the pages
    and the forms, as many producers write it: any form may draw any other, itself included."""

    def stream(content: bytes, head: bytes = b"<< >>") -> bytes:
        data = zlib.compress(content, 9) if compress else content
        flate = b" /Filter /FlateDecode" if compress else b""
        return head[:-2] + b" /Length %d%s >>\nstream\n%s\nendstream" % (len(data), flate, data)

    first_form, image = 5, 5 + len(forms)
    first_page = image + 1
    names = b" ".join(b"/Fm%d %d 0 R" % (i, first_form + i) for i in range(len(forms)))
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Font << /F1 3 0 R >> /XObject << %s /Im0 %d 0 R >> >>" % (names, image),
        *(stream(form, b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources 4 0 R >>") for form in forms),
        IMAGE[:-2] + b"/Length 1 >>\nstream\n\x00\nendstream",
    ]
    for i, content in enumerate(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources 4 0 R /Contents %d 0 R >>"
            % (first_page + 2 * i + 1)
        )
        objects.append(stream(content))
    return pdf_file(objects)


def refusal(data: bytes, *, here: bool = False, **limits: Any) -> tuple[str, str]:
    """text_of's refusal; ``here``: the same reader run in this process (text_of runs it in a
    child process), so that a test's spies on pypdf see its calls."""
    read = partial(documents._read, clock=lambda: 0.0) if here else text_of  # (here: time stands still)
    with pytest.raises(RejectedError) as refused:
        read(data, "pdf", ReadLimits(**limits))
    return refused.value.code, refused.value.reason


PAGES = [line("one"), line("two"), line("three")]
LARGEST = max(map(len, PAGES))


def test_pages_within_the_byte_limit_are_read_whole_and_one_byte_over_is_refused() -> None:
    document = pdf(PAGES)
    assert text_of(document, "pdf", ReadLimits(max_page_bytes=LARGEST)) == "one\ntwo\nthree"
    assert refusal(document, max_page_bytes=LARGEST - 1) == (
        "page_too_large",
        f"page 3's content is over the {LARGEST - 1} byte limit",
    )


def test_an_oversized_page_is_refused_before_pypdf_reads_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    extracted: list[int] = []
    extract_text = PageObject.extract_text

    def counted(page: PageObject, *args: Any, **kwargs: Any) -> str:
        extracted.append(page.page_number or 0)
        return extract_text(page, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", counted)
    document = pdf([line("one"), line("two") + b" " * 5_000, line("three")], compress=True)
    assert refusal(document, here=True, max_page_bytes=1_000) == (
        "page_too_large",
        "page 2's content is over the 1000 byte limit",
    )
    assert extracted == [0]  # page 1 only (pypdf counts from 0)


@settings(max_examples=40)
@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=5))
def test_a_pdf_is_refused_exactly_when_one_of_its_pages_is_over_the_limit(paddings: list[int]) -> None:
    pages = [line(f"page{n}") + b" " * padding for n, padding in enumerate(paddings)]
    cap = 300
    document = pdf(pages)
    over = [n for n, page in enumerate(pages, start=1) if len(page) > cap]
    if over:
        assert refusal(document, max_page_bytes=cap) == (
            "page_too_large",
            f"page {over[0]}'s content is over the {cap} byte limit",
        )
    else:
        assert text_of(document, "pdf", ReadLimits(max_page_bytes=cap)).split() == [
            f"page{n}" for n in range(len(pages))
        ]


def test_a_form_counts_each_time_it_is_drawn_and_images_count_nothing() -> None:
    form = line("Signed") + b" " * 500
    page = line("Contract") + draw(0, 3) + b"/Im0 Do\n" * 200
    document = pdf([page], [form])
    drawn = len(page) + 3 * len(form)
    assert text_of(document, "pdf", ReadLimits(max_page_bytes=drawn)).split() == ["Contract", *["Signed"] * 3]
    assert refusal(document, max_page_bytes=drawn - 1) == (
        "page_too_large",
        f"page 1's content, with its forms counted each time they are drawn, is over the {drawn - 1} byte limit",
    )


def test_a_form_that_draws_itself_is_counted_once_as_pypdf_skips_the_loop() -> None:
    form = line("Loop") + draw(0)
    page = draw(0)
    assert text_of(pdf([page], [form]), "pdf", ReadLimits(max_page_bytes=len(page) + len(form))).split() == ["Loop"]


def test_forms_nested_past_the_depth_limit_are_refused() -> None:
    chain = [draw(1), draw(2), draw(3), line("Deepest")]  # Fm0 draws Fm1 draws Fm2 draws Fm3
    document = pdf([line("Top") + draw(0)], chain)
    assert text_of(document, "pdf", ReadLimits(max_form_depth=4)).split() == ["Top", "Deepest"]
    assert refusal(document, max_form_depth=3) == ("too_deeply_nested", "page 1 draws forms nested more than 3 deep")


@pytest.mark.parametrize("last", [True, False])
def test_a_refusal_deep_in_a_form_ends_the_page_although_pypdf_swallows_form_errors(last: bool) -> None:
    # Fm1 expands past the cap; Fm0 draws it from inside, where pypdf catches whatever a form raises.
    forms = [line("Before") + draw(1) + line("After"), line("Bomb") + b" " * 2_000_000]
    page = line("Top") + draw(0) + (b"" if last else line("End"))
    assert refusal(pdf([page], forms, compress=True), max_expanded_bytes=1_000_000) == (
        "decompression_bomb",
        "the PDF's streams expand past 1000000 bytes",
    )


def test_no_form_is_read_once_the_page_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # The page draws Fm0 50 times, Fm0 draws Fm1 20 times: 1,050 form reads unbounded. The limit
    # is reached at Fm1's sixth draw, inside the first Fm0, where pypdf swallows the refusal.
    reads: list[int] = []
    extract_xform_text = PageObject.extract_xform_text

    def counted(page: PageObject, *args: Any, **kwargs: Any) -> str:
        reads.append(1)
        return extract_xform_text(page, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_xform_text", counted)
    forms = [draw(1, 20), line("x")]
    page = draw(0, 50)
    cap = len(page) + len(forms[0]) + 5 * len(forms[1])
    assert refusal(pdf([page], forms), here=True, max_page_bytes=cap)[0] == "page_too_large"
    assert len(reads) == 1 + 5


def test_a_page_drawing_a_form_past_the_default_limit_is_quarantined_on_the_first_try(aws: Aws) -> None:
    form = line("Signed") + b" " * 99_000  # compresses to a few hundred bytes, within the test's size limit
    heavy = pdf([line("Contract") + draw(0, 25)], [form], compress=True)
    light = pdf([line("Contract") + draw(0, 15)], [form], compress=True)
    record = settled(aws, "contracts/heavy.pdf", heavy)
    assert (record["status"], record["reason"]) == (
        "quarantined",
        "page 1's content, with its forms counted each time they are drawn, is over the 2000000 byte limit",
    )
    assert aws.dlq() == []
    assert settled(aws, "contracts/light.pdf", light)["status"] == "curated"
    assert curated_text(aws, "contracts/light.pdf").split() == ["Contract", *["Signed"] * 15]
