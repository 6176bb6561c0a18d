"""PDF and DOCX through the pipeline, and documents no parser can read: text goes through the same
PII policy as plain text; limits, decompression bombs, no text layer and parser failures end in
quarantine with a reason on the first try, never in a retry or the DLQ."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import docx
import pytest

from ingestion import documents
from ingestion.documents import ReadLimits, RejectedError, text_of
from ingestion.pipeline import document_id
from tests.lambdas.ingestion_corpus import LANDING, SEEDED_PII, docx_bytes, pdf_bytes, xlsx_bytes
from tests.lambdas.ingestion_fixtures import CURATED, QUARANTINE, Aws, landed
from tests.lambdas.test_ingestion import run, version_record


def settled(aws: Aws, key: str, body: bytes, **metadata: str) -> dict[str, Any]:
    """Land one document, process it in a batch of its own (nothing may fail), its version record."""
    assert run(landed(aws, key, body, **metadata)) == []
    return version_record(aws, key)


def curated_text(aws: Aws, key: str) -> str:
    return aws.objects(CURATED)[f"curated/{document_id(LANDING, key)}.txt"].decode()


def test_pdf_and_docx_text_is_curated_with_personal_data_masked(aws: Aws, capsys: pytest.CaptureFixture[str]) -> None:
    pdf = pdf_bytes(["Escalations go to ada.lovelace@example.com", "Employee EMP-314159"], compress=True)
    word = docx_bytes(["Call Grace Hopper on +1 206 555 0143.", "SSN 078-05-1120 on file."])
    assert settled(aws, "docs/contacts.pdf", pdf)["pii"] == {"EMAIL": 1, "EMPLOYEE_ID": 1}
    assert settled(aws, "docs/contacts.docx", word)["status"] == "curated"
    assert curated_text(aws, "docs/contacts.pdf") == "Escalations go to [EMAIL]\nEmployee [EMPLOYEE_ID]"
    assert curated_text(aws, "docs/contacts.docx") == "Call [NAME] on [PHONE].\nSSN [SSN] on file."
    sinks = [capsys.readouterr().out, str(aws.registry_items()), *map(bytes.decode, aws.objects(CURATED).values())]
    assert not [value for value in SEEDED_PII for sink in sinks if value in sink]


def test_pdf_and_docx_in_a_classification_that_quarantines_pii_are_quarantined(aws: Aws) -> None:
    record = settled(aws, "web/press.docx", docx_bytes(["Press: ada.lovelace@example.com"]), classification="public")
    assert (record["status"], record["reason"]) == ("quarantined", "personal data (EMAIL) in a public document")


def test_a_word_file_python_docx_writes_is_read_with_its_tables() -> None:
    document = docx.Document()
    document.add_paragraph("Refunds take thirty days.")
    document.add_table(rows=1, cols=1).cell(0, 0).text = "In the table"
    out = io.BytesIO()
    document.save(out)
    assert text_of(out.getvalue(), "docx") == "Refunds take thirty days.\nIn the table"


W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
DECLARED = (
    f'xmlns:w="{W}" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" '
    'xmlns:wps="http://schemas.microsoft.com/office/word/2010/wordprocessingShape" '
    'xmlns:v="urn:schemas-microsoft-com:vml"'
)
# A text box as Word writes it: the box for readers that know shapes, and a VML copy for the others.
TEXT_BOX = (
    f'<w:p {DECLARED}><w:r><w:t xml:space="preserve">Before </w:t></w:r><w:r><mc:AlternateContent>'
    '<mc:Choice Requires="wps"><w:drawing><wps:wsp><wps:txbx><w:txbxContent><w:p><w:r><w:t>Boxed</w:t></w:r></w:p>'
    "</w:txbxContent></wps:txbx></wps:wsp></w:drawing></mc:Choice><mc:Fallback><w:pict><v:rect><v:textbox>"
    "<w:txbxContent><w:p><w:r><w:t>Boxed</w:t></w:r></w:p></w:txbxContent></v:textbox></v:rect></w:pict>"
    "</mc:Fallback></mc:AlternateContent></w:r><w:r><w:t>After</w:t></w:r></w:p>"
)
# A paragraph moved while changes are tracked: the old place, and the new.
MOVED = (
    f'<w:p {DECLARED}><w:moveFrom w:id="1" w:author="a"><w:r><w:t>Moved.</w:t></w:r></w:moveFrom></w:p>',
    f'<w:p {DECLARED}><w:moveTo w:id="2" w:author="a"><w:r><w:t>Moved.</w:t></w:r></w:moveTo></w:p>',
)


def test_a_word_file_is_read_as_word_shows_it() -> None:
    """Each text box once (not with its copy for older readers, nor glued into the paragraph
    around it), a tracked move at its new place only, hidden text left out, tabs and breaks kept."""
    from docx.oxml import parse_xml

    document = docx.Document()
    escalation = document.add_paragraph("Escalate to")
    escalation.add_run().add_tab()
    escalation.add_run("Grace").add_break()
    escalation.add_run("Hopper")
    shown = document.add_paragraph("Shown")
    hidden = shown.add_run(" Hidden")
    hidden.font.hidden = True
    body = document.element.body
    for xml in (TEXT_BOX, *MOVED):
        body.insert(len(body) - 1, parse_xml(xml))  # before the section properties
    out = io.BytesIO()
    document.save(out)
    assert text_of(out.getvalue(), "docx") == "Escalate to\tGrace\nHopper\nShown\nBefore After\nBoxed\nMoved."


def notes_part(kind: str, notes: list[tuple[str | None, str]]) -> str:
    """A footnotes or endnotes part: each note's type (None: a note of text) and its paragraph."""
    written = "".join(
        f'<w:{kind} w:id="{number}"{f" w:type={chr(34)}{type_}{chr(34)}" if type_ else ""}>'
        f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p></w:{kind}>"
        for number, (type_, text) in enumerate(notes)
    )
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:{kind}s xmlns:w="{W}">{written}</w:{kind}s>'


def with_notes(package: bytes, parts: dict[str, str]) -> bytes:
    """``package`` with footnotes and endnotes parts (``parts``: kind -> XML), related from the
    main part and declared, as Word writes them."""
    source = zipfile.ZipFile(io.BytesIO(package))
    relations = "".join(
        f'<Relationship Id="rIdNote{kind}" Target="{kind}s.xml" '
        f'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/{kind}s"/>'
        for kind in parts
    )
    types = "".join(
        f'<Override PartName="/word/{kind}s.xml" '
        f'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.{kind}s+xml"/>'
        for kind in parts
    )
    edits = {
        "word/_rels/document.xml.rels": lambda text: text.replace("</Relationships>", relations + "</Relationships>"),
        "[Content_Types].xml": lambda text: text.replace("</Types>", types + "</Types>"),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as copy:
        for item in source.infolist():
            data = source.read(item)
            edit = edits.get(item.filename)
            copy.writestr(item, edit(data.decode()).encode() if edit else data)
        for kind, xml in parts.items():
            copy.writestr(f"word/{kind}s.xml", xml)
    return out.getvalue()


def test_a_word_files_footnotes_and_endnotes_follow_its_body() -> None:
    """Footnotes carry what a document cites and qualifies: read after the body, footnotes before
    endnotes, without the rules Word writes above them for its layout."""
    document = docx.Document()
    document.add_paragraph("Refunds take thirty days.")
    out = io.BytesIO()
    document.save(out)
    notes = {
        "endnote": notes_part("endnote", [("separator", "-"), (None, "See the 2024 policy.")]),
        "footnote": notes_part(
            "footnote",
            [("separator", "-"), ("continuationSeparator", "--"), (None, "Except sale items."), (None, "Ask Ada.")],
        ),
    }
    assert text_of(with_notes(out.getvalue(), notes), "docx") == (
        "Refunds take thirty days.\nExcept sale items.\nAsk Ada.\nSee the 2024 policy."
    )


def test_json_with_an_integer_of_any_length_is_json() -> None:
    document = '{"id": ' + "9" * 5000 + "}"
    assert text_of(document.encode(), "json") == document


@pytest.mark.parametrize("fmt", ["txt", "md", "csv", "json"])
def test_a_text_format_past_the_limit_in_bytes_is_refused_before_it_is_decoded(
    monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Its text is its bytes (as UTF-8), and the scan's limit is on those: 2,002 bytes are too much
    text for 2,000 however few characters they hold (1,002 here)."""

    def decoded(*_: Any) -> str:
        raise AssertionError("decoded")

    monkeypatch.setattr(documents, "_plain_text", decoded)
    with pytest.raises(RejectedError) as refused:
        text_of(b'"' + "\u00e9".encode() * 1_000 + b'"', fmt, ReadLimits(max_chars=2_000))
    assert (refused.value.code, refused.value.reason) == (
        "too_much_text",
        "the text is 2002 bytes of UTF-8, over the 2000 byte limit (one personal-data scan per 100 KB)",
    )


def test_a_text_of_exactly_the_limit_in_bytes_is_read_and_its_byte_order_mark_is_not_counted() -> None:
    text = '"' + "\u00e9" * 999 + '"'  # 2,000 bytes
    assert text_of(b"\xef\xbb\xbf" + text.encode(), "json", ReadLimits(max_chars=2_000)) == text


def test_html_is_read_as_a_browser_shows_it() -> None:
    """Table cells apart, and a script written "<script/>" (a browser opens it: what follows is its
    source until "</script>") left out."""
    page = "<table><tr><td>Grace</td><td>Hopper</td></tr></table><p>a</p><script/>var s='S1'</script><p>b</p>"
    assert text_of(page.encode(), "html") == "Grace\nHopper\na\nb"


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-128", "AES-256"])
def test_a_pdf_with_only_an_owner_password_is_read_as_any_viewer_reads_it(algorithm: str) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["Refunds take thirty days."]))))
    writer.encrypt(user_password="", owner_password="owner-only", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    assert text_of(out.getvalue(), "pdf") == "Refunds take thirty days."
    locked = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(["Secret."]))))
    locked.encrypt(user_password="reader", owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    locked.write(out)
    with pytest.raises(RejectedError) as refused:
        text_of(out.getvalue(), "pdf")
    assert (refused.value.code, str(refused.value)) == ("encrypted", "the PDF is encrypted")


@pytest.mark.parametrize(
    ("key", "body", "reason", "code"),
    [
        (
            "limits/long.pdf",
            pdf_bytes(["one", "two", "three", "four"]),
            "4 pages is over the 3 page limit",
            "too_many_pages",
        ),
        (
            "limits/wordy.pdf",
            pdf_bytes(["word " * 300] * 2, compress=True),
            "over the 2000 character limit",
            "too_much_text",
        ),
        ("limits/wordy.docx", docx_bytes(["word " * 300] * 2), "over the 2000 character limit", "too_much_text"),
        ("scan/page.pdf", pdf_bytes(["", ""]), "no text layer (scanned pages need OCR)", "needs_ocr"),
        (
            "bomb/streams.pdf",
            pdf_bytes(["Hi"], padding=2_000_000, compress=True),
            "expand past 1000000 bytes",
            "decompression_bomb",
        ),
        (
            "bomb/parts.docx",
            docx_bytes(["Hi"], extra={"word/media/pad.bin": bytes(2_000_000)}),
            "expand past 1000000 bytes or 200 times their compressed size",
            "decompression_bomb",
        ),
        ("bad/truncated.pdf", pdf_bytes(["Hello"])[:300], "the pdf document could not be read", "unreadable"),
        ("bad/notazip.docx", b"PK\x03\x04 not really", "the docx document is not a readable zip file", "unreadable"),
        ("bad/nodocument.docx", docx_bytes(["x"])[:200], "the docx document", "unreadable"),
        ("bad/nested.json", "[" * 100_000 + "]" * 100_000, "nested too deeply", "unreadable"),
        ("bad/invalid.txt", b"ok \xff\xfe \xc3\x28", "not UTF-8", "not_text"),
    ],
)
def test_documents_past_a_limit_or_unreadable_are_quarantined_on_the_first_try(
    aws: Aws, key: str, body: bytes | str, reason: str, code: str
) -> None:
    data = body.encode() if isinstance(body, str) else body
    if len(data) > 4_000:  # over the test size limit: check the reader itself, then the pipeline
        with pytest.raises(RejectedError, match=reason.replace("(", r"\(").replace(")", r"\)")) as rejected:
            text_of(data, key.rsplit(".", 1)[1], ReadLimits(max_expanded_bytes=1_000_000))
        assert rejected.value.code == code
        return
    record = settled(aws, key, data)
    assert record["status"] == "quarantined", record
    assert reason in record["reason"]
    assert record["reason_code"] == code  # a stable code to count and query quarantines by
    assert aws.dlq() == []
    assert [q for q in aws.objects(QUARANTINE) if q.startswith(document_id(LANDING, key))]


def test_a_slow_document_is_quarantined_when_the_time_budget_runs_out() -> None:
    ticks = iter(range(0, 1000, 15))  # every look at the clock, 15 seconds later
    with pytest.raises(RejectedError, match="took longer than 20 seconds"):
        text_of(pdf_bytes(["one", "two", "three"]), "pdf", ReadLimits(seconds=20), clock=lambda: next(ticks))


def test_html_the_standard_parser_chokes_on_is_quarantined_as_unreadable(aws: Aws) -> None:
    # html.parser raises AssertionError on these marked sections (Python 3.11).
    for n, html in enumerate(["<p>before <![foo[x]]>", "<p>before <![ x"]):
        record = settled(aws, f"bad/page{n}.html", html.encode())
        assert (record["status"], record["reason"]) == (
            "quarantined",
            "the html document could not be read (AssertionError)",
        )


def test_the_readers_are_imported_only_when_such_a_document_arrives() -> None:
    code = (
        f"import sys; sys.path[:0] = [{str(Path(documents.__file__).parents[1])!r}]\n"
        "import ingestion.handler, ingestion.pipeline\n"
        "from ingestion.documents import text_of\n"
        "text_of(b'plain text', 'txt')\n"
        "assert not {'pypdf', 'docx', 'lxml'} & set(sys.modules), 'imported at start-up'\n"
        "text_of(" + repr(pdf_bytes(["x"])) + ", 'pdf')\n"
        "assert 'pypdf' in sys.modules and not {'docx', 'lxml'} & set(sys.modules)\n"
        "text_of(" + repr(xlsx_bytes([[["x"]]])) + ", 'xlsx')\n"
        "assert 'lxml' in sys.modules and 'docx' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"AWS_DEFAULT_REGION": "us-east-1"})
