"""PDF, Office files, JSON and HTML are read in a child process that cannot outgrow its memory nor
outlive its time: what a parser does inside one page or part (where the readers' own checks cannot
look) costs the child, and the function gets a refusal with its reason. The documents here are the
ones a hostile probe found: each held the function's memory or time before."""

from __future__ import annotations

import gc
import io
import os
import resource
import signal
import sys
import threading
import tracemalloc
import zipfile
import zlib
from pathlib import Path
from typing import Any

import pytest

from ingestion import documents, office
from ingestion.documents import ReadLimits, RejectedError, text_of
from tests.lambdas.ingestion_corpus import docx_bytes, pdf_file, sheet_xml, xlsx_package
from tests.lambdas.ingestion_fixtures import Aws, land, make
from tests.lambdas.test_ingestion_documents import settled

MB = 1_000_000


def stream(content: bytes, *, compress: bool = False) -> bytes:
    data = zlib.compress(content, 9) if compress else content
    flate = b" /Filter /FlateDecode" if compress else b""
    return b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), flate, data)


def cmap(body: bytes) -> bytes:
    return (
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /X def /CMapType 2 def\n"
        b"1 begincodespacerange <00> <FF> endcodespacerange\n"
        + body
        + b"\nendcmap CMapName currentdict /CMap defineresource pop end end"
    )


def pdf_with_font(to_unicode: bytes, content: bytes, *, names: int = 1) -> bytes:
    """One page drawing ``content`` with a Type1 font whose /ToUnicode CMap is ``to_unicode``,
    named ``names`` times in the page's resources (/F0, /F1, ...)."""
    fonts = b" ".join(b"/F%d 3 0 R" % i for i in range(names))
    return pdf_file(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 4 0 R >>",
            stream(to_unicode),
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << %s >> >> /Contents 6 0 R >>"
            % fonts,
            stream(content, compress=True),
        ]
    )


def refusal(data: bytes, fmt: str, **limits: Any) -> tuple[str, str]:
    """The refusal of reading ``data``; unless the test is about time, given minutes, not 20 s: a
    refusal for memory or structure must not turn into too_slow on a machine whose cores are busy."""
    limits.setdefault("seconds", 600.0)
    with pytest.raises(RejectedError) as refused:
        text_of(data, fmt, ReadLimits(**limits))
    return refused.value.code, refused.value.reason


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def lying_docx(expanded: int, declared: int = 500) -> bytes:
    """A DOCX whose document part inflates to ``expanded`` bytes while its directory, in the part's
    local header and in the central directory, declares ``declared``."""
    base = zipfile.ZipFile(io.BytesIO(docx_bytes(["Hello"])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as package:
        for info in base.infolist():
            if info.filename != "word/document.xml":
                package.writestr(info.filename, base.read(info.filename), compress_type=zipfile.ZIP_DEFLATED)
        package.writestr("word/document.xml", b"\0" * expanded, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    data = bytearray(out.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("word/document.xml")
    data[info.header_offset + 22 : info.header_offset + 26] = declared.to_bytes(4, "little")
    entry = data.rfind(b"PK\x01\x02" + bytes(data[info.header_offset + 4 : info.header_offset + 6]))
    while not data[entry + 46 :].startswith(b"word/document.xml"):
        entry = data.rfind(b"PK\x01\x02", 0, entry)
    data[entry + 24 : entry + 28] = declared.to_bytes(4, "little")
    return bytes(data)


def test_a_docx_part_that_lies_about_its_size_costs_the_child_not_the_function() -> None:
    """zipfile inflates what python-docx asks for before cutting it to the declared size: 300 MB of
    zeros declared as 500 bytes pass the directory's checks, and the child's memory stops it."""
    data = lying_docx(300 * MB)
    assert len(data) < 400_000
    assert zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml").file_size == 500
    before = peak_rss_mb()
    assert refusal(data, "docx", max_memory_bytes=100 * MB) == (
        "too_much_memory",
        f"reading the docx document needed over {100 * MB} bytes of memory",
    )
    assert peak_rss_mb() - before < 50  # the function's own memory did not grow with it


def test_a_docx_whose_parts_word_never_compresses_so_is_refused_before_any_is_inflated() -> None:
    for method in (zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as package:
            base = zipfile.ZipFile(io.BytesIO(docx_bytes(["Hello"])))
            for info in base.infolist():
                package.writestr(info.filename, base.read(info.filename), compress_type=method)
        assert refusal(out.getvalue(), "docx") == (
            "unreadable",
            "the DOCX has parts compressed in a way Word does not write (bzip2, LZMA)",
        )


def test_a_page_whose_characters_expand_a_hundredfold_is_stopped_by_the_childs_memory() -> None:
    """A 1.5 MB string (within max_page_bytes) whose font maps each byte to 256 characters: the
    page's text is built whole before the character limit can be checked after the page."""
    data = pdf_with_font(
        cmap(b"1 beginbfchar\n<41> <" + b"4E00" * 256 + b">\nendbfchar"),
        b"BT /F0 12 Tf 72 720 Td (" + b"A" * 1_500_000 + b") Tj ET",
    )
    before = peak_rss_mb()
    assert refusal(data, "pdf", max_memory_bytes=150 * MB)[0] == "too_much_memory"
    assert peak_rss_mb() - before < 50


def test_a_page_that_takes_longer_than_the_budget_is_stopped_at_it() -> None:
    """pypdf builds every font the page names before it reads the page (a 65,536-code map, once per
    name): 2,000 names take minutes, and the clock the readers check between pages is never read.
    The child is stopped at seconds + grace_seconds."""
    data = pdf_with_font(
        cmap(b"1 beginbfrange\n<0000> <FFFF> <0041>\nendbfrange"), b"BT /F0 12 Tf (Hi) Tj ET", names=2000
    )
    # Read to its end, the page would be text: the refusal is the child stopped at the budget.
    assert refusal(data, "pdf", seconds=0.5, grace_seconds=0.5) == (
        "too_slow",
        "reading the text took longer than 0.5 seconds",
    )


def test_a_reader_that_never_answers_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    def hangs(*_: Any) -> str:
        threading.Event().wait()  # nothing ever sets it: the child never answers
        return "never"

    monkeypatch.setattr(documents, "_pdf_text", hangs)  # the child is forked with it
    assert refusal(b"%PDF-1.7", "pdf", seconds=0.1, grace_seconds=0.1)[0] == "too_slow"


def test_a_reader_that_dies_is_a_refusal_naming_how(monkeypatch: pytest.MonkeyPatch) -> None:
    def killed(*_: Any) -> str:
        os.kill(os.getpid(), signal.SIGKILL)  # as the kernel ends a process out of memory
        return "never"

    monkeypatch.setattr(office, "office_text", killed)
    assert refusal(b"PK", "docx") == (
        "unreadable",
        f"the docx document's reader stopped without an answer (exit code {-signal.SIGKILL})",
    )


def test_the_reader_answers_the_same_text_and_refusals_through_the_child() -> None:
    assert text_of(docx_bytes(["Hello", "World"]), "docx") == "Hello\nWorld"
    text = " ".join(f"word{n}" for n in range(200_000))  # over a pipe's buffer: sent whole
    assert text_of(docx_bytes([text]), "docx") == text
    assert refusal(b"%PDF-1.7 nothing more", "pdf")[0] == "unreadable"


def test_a_lone_surrogate_in_a_pdfs_text_is_replaced_and_the_document_curated(aws: Aws) -> None:
    """pypdf passes a character map's lone UTF-16 surrogate through; the PII scan encodes the text
    as UTF-8, which failed on it (three attempts, then the DLQ). Pairs stay one character."""
    data = pdf_with_font(
        cmap(b"3 beginbfchar\n<41> <0048>\n<42> <D800>\n<43> <D83DDE00>\nendbfchar"), b"BT /F0 12 Tf (AABC) Tj ET"
    )
    assert text_of(data, "pdf") == "HH\ufffd\U0001f600"
    assert settled(aws, "docs/surrogate.pdf", data)["status"] == "curated"


def test_a_pdf_past_a_parser_limit_is_named_as_such_not_as_a_bomb() -> None:
    too_long = pdf_file(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Junk [" + b"0 " * 100_001 + b"] >>",
        ]
    )
    assert refusal(too_long, "pdf") == (
        "too_complex",
        "the PDF's structure is past a reader limit (an array, map, page tree or reference chain)",
    )


def test_libxml2_out_of_memory_in_the_child_is_too_much_memory_not_an_unreadable_document() -> None:
    """libxml2 reports its own failed allocation as an XMLSyntaxError (ERR_NO_MEMORY), not Python's
    MemoryError: a row of a million attributes (which Python never sees) outgrows a 10 MB child
    inside libxml2."""
    row = "<row " + " ".join(f'a{i}="1"' for i in range(1_000_000))
    book = xlsx_package([sheet_xml([["first"]]).replace("<row", row, 1)])
    assert refusal(book, "xlsx", max_memory_bytes=10 * MB, max_compression_ratio=1_000_000) == (
        "too_much_memory",
        f"reading the xlsx document needed over {10 * MB} bytes of memory",
    )


def test_the_parents_garbage_is_never_finalized_in_the_reading_child(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cycle the parent has not collected yet (a leftover coroutine, an earlier invocation's
    objects) would be collected in the child, its finalizer run under the memory limit in the
    middle of a parse: in the suite, pytest's hook for a never-awaited coroutine crashed the
    reader there (SIGSEGV), and the document was "unreadable" for a reason of the parent's. The
    child here collects as soon as its memory is limited, as an allocation past the collector's
    threshold would make it do anywhere in the parse."""
    marker = tmp_path / "finalized"
    limit = documents._limit_memory

    def limit_then_collect(extra: int) -> None:
        limit(extra)
        gc.collect()

    monkeypatch.setattr(documents, "_limit_memory", limit_then_collect)

    class Leftover:
        def __del__(self) -> None:
            if os.getpid() != parent:
                marker.write_text("in the child")

    parent = os.getpid()
    gc.disable()  # the cycle stays the collector's until the child starts
    try:
        cycle = Leftover()
        cycle.me = cycle  # type: ignore[attr-defined]
        del cycle
        book = xlsx_package([sheet_xml([[f"cell {i}" for i in range(50)] for _ in range(200)])])
        assert text_of(book, "xlsx").startswith("cell 0")
    finally:
        gc.enable()
        gc.collect()  # here, in the parent, where it belongs
    assert not marker.exists()


def test_an_error_nothing_can_raise_in_the_reading_child_is_not_reported_there(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """libxml2's error callback failing to allocate under the child's memory limit is an error
    nothing can raise: the parent's hook (pytest's, in the suite) reported it, allocating under
    the limit, and crashed the reader (SIGSEGV: "unreadable", exit code -11). The parse fails
    with its own error; the child reports nothing."""
    marker = tmp_path / "reported"
    parent = os.getpid()

    def parents_hook(unraisable: Any) -> None:
        if os.getpid() != parent:
            marker.write_text("in the child")

    class Failing:
        def __del__(self) -> None:
            raise RuntimeError("nothing can raise this")

    limit = documents._limit_memory

    def limit_then_fail_unraisably(extra: int) -> None:
        limit(extra)
        Failing()  # made and dropped at once: its __del__'s error is unraisable

    monkeypatch.setattr(documents, "_limit_memory", limit_then_fail_unraisably)
    monkeypatch.setattr(sys, "unraisablehook", parents_hook)
    book = xlsx_package([sheet_xml([["cell"]])])
    assert text_of(book, "xlsx").startswith("cell")
    assert not marker.exists()


# "[{},{},...]": each two-byte object is a dict of the parser's (the reviewer's 45 MB upload grew
# the 1024 MB function by ~942 MiB before the text limit was looked at).
MANY_OBJECTS = ("[" + "{}," * 999_999 + "{}]").encode()  # 3 MB


def test_json_and_html_are_parsed_in_the_reading_child(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsed in the function's own process, neither read_memory_bytes nor read_seconds applied to
    them: JSON's objects take twenty times and more their bytes, and html.parser (3.11) is
    quadratic on unclosed tags (a 90 KB upload outlasted the processor's timeout)."""
    parent, parsed = os.getpid(), tmp_path / "parsed"
    plain_text = documents._plain_text

    def recorded(data: bytes, fmt: str) -> str:
        with parsed.open("a") as log:
            log.write(f"{fmt} {'child' if os.getpid() != parent else 'function'}\n")
        return plain_text(data, fmt)

    monkeypatch.setattr(documents, "_plain_text", recorded)  # the child is forked with it
    assert text_of(b'{"a": [1, 2]}', "json") == '{"a": [1, 2]}'
    assert text_of(b"<p>Hi</p><script>x()</script>", "html") == "Hi"
    assert parsed.read_text().splitlines() == ["json child", "html child"]


def test_a_json_document_of_many_small_objects_costs_the_child_not_the_function() -> None:
    tracemalloc.start()
    try:
        assert text_of(MANY_OBJECTS, "json", ReadLimits(max_chars=5 * MB)) == MANY_OBJECTS.decode()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The text the child sends back, and its pickle: parsed here it took about 25 times the bytes.
    assert peak < 5 * len(MANY_OBJECTS)
    # Five times as many need ~375 MB parsed: more than the child's limit and than whatever free
    # memory it inherits from the suite's process.
    assert refusal(
        MANY_OBJECTS[:-1] + b",{}" * 4_000_000 + b"]", "json", max_chars=50 * MB, max_memory_bytes=20 * MB
    ) == (
        "too_much_memory",
        f"reading the json document needed over {20 * MB} bytes of memory",
    )


def test_an_html_parse_that_takes_longer_than_the_budget_is_stopped_at_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(parser: Any, data: str) -> None:
        threading.Event().wait(10)  # nothing sets it: a parse far longer than the budget

    monkeypatch.setattr(documents._Text, "feed", slow)
    assert refusal(b"<p>Hi</p>", "html", seconds=0.1, grace_seconds=0.1) == (
        "too_slow",
        "reading the text took longer than 0.1 seconds",
    )


def test_a_json_upload_of_too_much_text_is_quarantined_without_being_parsed(aws: Aws) -> None:
    """The reviewer's upload, at 3 MB: its size alone says its text is past the limit (the
    fixture's 2,000 bytes), so nothing decodes or parses it before it is quarantined."""
    ref = land(aws, "docs/many.json", MANY_OBJECTS)
    pipeline = make(aws, max_document_bytes=5 * MB)
    tracemalloc.start()
    try:
        outcome = pipeline.process(ref)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (outcome.status, outcome.reason_code, outcome.reason) == (
        "quarantined",
        "too_much_text",
        f"the text is {len(MANY_OBJECTS)} bytes of UTF-8, over the 2000 byte limit (one personal-data scan per 100 KB)",
    )
    # S3's answer and the copy (moto's, in this process) hold the bytes; the parse took 25 times them.
    assert peak < 10 * len(MANY_OBJECTS)
