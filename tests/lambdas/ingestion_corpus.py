"""The fixture corpus the ingestion tests and bench run, and a Comprehend stand-in that keeps
Comprehend's limits (importable without AWS set-up)."""

from __future__ import annotations

import io
import json
import re
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from xml.sax.saxutils import escape

from ingestion.pii import MAX_CALL_BYTES

LANDING = "landing-bucket"
MAX_BYTES = 4_000
CUSTOM = {"employee_id": r"\bEMP-\d{6}\b"}
# Personal data seeded into the corpus: none of it may reach a log, the registry or curated text.
SEEDED_PII = ["ada.lovelace@example.com", "078-05-1120", "+1 206 555 0143", "Grace Hopper", "EMP-314159"]
FRENCH = "Bonjour, voici le rapport trimestriel de l'équipe. Merci de le lire attentivement."


class FakeComprehend:
    """Answers like Comprehend for the corpus: detects English/Spanish/French by marker words and
    finds e-mail addresses, SSNs, phone numbers and two names; refuses texts over 100 KB."""

    PATTERNS: ClassVar[dict[str, re.Pattern[str]]] = {
        "EMAIL": re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),
        "SSN": re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),
        "PHONE": re.compile(r"\+1 \d{3} \d{3} \d{4}"),
        "NAME": re.compile(r"\b(Grace Hopper|Alan Turing)\b"),
    }

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def detect_dominant_language(self, *, Text: str) -> dict[str, Any]:  # noqa: N803 - boto3's names
        self._check(Text)
        code = "fr" if "Bonjour" in Text else "es" if " el " in Text else "en"
        self.calls.append(("language", len(Text.encode())))
        return {"Languages": [{"LanguageCode": code, "Score": 0.99}]}

    def detect_pii_entities(self, *, Text: str, LanguageCode: str) -> dict[str, Any]:  # noqa: N803
        self._check(Text)
        assert LanguageCode in ("en", "es")
        self.calls.append(("pii", len(Text.encode())))
        entities = [
            {"Type": kind, "BeginOffset": m.start(), "EndOffset": m.end(), "Score": 0.99}
            for kind, pattern in self.PATTERNS.items()
            for m in pattern.finditer(Text)
        ]
        return {"Entities": entities}

    @staticmethod
    def _check(text: str) -> None:
        if not text or len(text.encode()) > MAX_CALL_BYTES:
            raise AssertionError(f"Comprehend refuses {len(text.encode())} bytes of text")


# --- the corpus -----------------------------------------------------------------------------------

CLEAN = {
    "docs/handbook.txt": "Our refund window is thirty days from delivery.",
    "docs/faq.md": "# FAQ\n\nShipping takes three to five working days.",
    "docs/prices.csv": "sku,price\nA-1,10\nB-2,12\n",
    "docs/catalog.json": json.dumps({"items": [{"sku": "A-1", "name": "Kettle"}]}),
    "docs/about.html": "<html><head><style>p{}</style><script>var x=1</script></head>"
    "<body><h1>About</h1><p>We make kettles.</p></body></html>",
}
WITH_PII_INTERNAL = {
    "hr/contact.txt": "Escalations go to ada.lovelace@example.com or +1 206 555 0143 (Grace Hopper).",
    "hr/payroll.md": "Employee EMP-314159 has SSN 078-05-1120 on file.",
}
WITH_PII_PUBLIC = {"web/press.txt": "Press contact: ada.lovelace@example.com"}
REJECTED: dict[str, tuple[bytes | str, str]] = {
    "big/oversized.txt": ("x " * MAX_BYTES, "over the 4000 byte limit"),
    "bin/report.pdf": (b"%PDF-1.7 binary", "the pdf document could not be read"),
    "bin/tool.exe": (b"MZ\x90\x00", "the file name has an extension that is not an allowed format"),
    "bin/noextension": (b"plain", "the file name has no extension"),
    "bad/latin1.txt": ("caf\xe9 cr\xe8me".encode("latin-1"), "not UTF-8"),
    "bad/broken.json": ('{"items": [1, 2', "not valid JSON"),
    "intl/rapport.txt": (FRENCH, "does not support the document's language (fr)"),
}
MALFORMED = {
    "not json": "{nope",
    "wrong type": json.dumps({"source": "aws.s3", "detail-type": "Object Deleted", "detail": {}}),
    "no version": json.dumps(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": LANDING}, "object": {"key": "k", "size": 1}},
        }
    ),
}


# --- PDF and DOCX, built here so every byte of a test document is accounted for --------------------


def pdf_file(objects: list[bytes]) -> bytes:
    """A PDF of ``objects`` (numbered from 1, the catalog first) with its cross-reference table."""
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def pdf_bytes(pages: list[str], *, padding: int = 0, compress: bool = False) -> bytes:
    """A PDF with one Helvetica text line per page ("" for a page without a text layer);
    ``padding`` spaces after the text of each page's content stream, ``compress`` deflates it."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        content = (f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET" if text else "").encode() + b" " * padding
        data = zlib.compress(content, 9) if compress else content
        flate = b" /Filter /FlateDecode" if compress else b""
        objects.append(b"<< /Length %d%s >>\nstream\n%s\nendstream" % (len(data), flate, data))
    return pdf_file(objects)


_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
_PACKAGE = {
    "[Content_Types].xml": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/word/document.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>',
    "_rels/.rels": '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="word/document.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/></Relationships>',
}


def docx_bytes(paragraphs: list[str], *, extra: dict[str, bytes] | None = None) -> bytes:
    """The smallest DOCX Word and python-docx open: a package, its relationship, one document part
    with ``paragraphs``; ``extra`` parts (name -> bytes) are added deflated."""
    body = "".join(f"<w:p><w:r><w:t>{escape(p)}</w:t></w:r></w:p>" for p in paragraphs)
    document = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="{_W}"><w:body>{body}</w:body></w:document>'
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, text in {**_PACKAGE, "word/document.xml": document}.items():
            package.writestr(name, text)
        for name, data in (extra or {}).items():
            package.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


_S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_A = "http://schemas.openxmlformats.org/drawingml/2006/main"
_P = "http://schemas.openxmlformats.org/presentationml/2006/main"


def office_bytes(parts: Mapping[str, str | bytes]) -> bytes:
    """A zip of ``parts`` (name -> XML text or bytes), deflated as Office writes them."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        for name, data in parts.items():
            package.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return out.getvalue()


def sheet_xml(rows: list[list[str]]) -> str:
    """A worksheet part whose text cells are inline strings and whose numbers are numbers; a cell
    ``s:<n>`` names shared string n."""

    def cell(value: str) -> str:
        if value.startswith("s:"):
            return f'<c t="s"><v>{escape(value[2:])}</v></c>'
        if value.replace(".", "", 1).isdigit():
            return f"<c><v>{value}</v></c>"
        return f'<c t="inlineStr"><is><t>{escape(value)}</t></is></c>'

    body = "".join(f"<row>{''.join(map(cell, row))}</row>" for row in rows)
    return f'<worksheet xmlns="{_S}"><sheetData>{body}</sheetData></worksheet>'


_RELATIONSHIPS = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE_RELATIONS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def relationships(targets: dict[str, str], kind: str) -> str:
    """A relationships part: id -> target, each of ``kind`` (the end of its type)."""
    listed = "".join(
        f'<Relationship Id="{id_}" Type="{_OFFICE_RELATIONS}/{kind}" Target="{target}"/>'
        for id_, target in targets.items()
    )
    return f'<Relationships xmlns="{_RELATIONSHIPS}">{listed}</Relationships>'


def xlsx_package(sheets: Sequence[str | bytes], *, extra: dict[str, str | bytes] | None = None) -> bytes:
    """A workbook package as Excel lays it out: its relationships to the workbook, which lists
    ``sheets`` (worksheet parts, in order) through its own; ``extra`` parts added as they are."""
    ids = {f"rId{n}": f"worksheets/sheet{n}.xml" for n in range(1, len(sheets) + 1)}
    listed = "".join(f'<sheet name="S{n}" sheetId="{n}" r:id="rId{n}"/>' for n in range(1, len(sheets) + 1))
    parts: dict[str, str | bytes] = {
        "_rels/.rels": relationships({"rId1": "xl/workbook.xml"}, "officeDocument"),
        "xl/workbook.xml": f'<workbook xmlns="{_S}" xmlns:r="{_OFFICE_RELATIONS}"><sheets>{listed}</sheets></workbook>',
        "xl/_rels/workbook.xml.rels": relationships(ids, "worksheet"),
        **{f"xl/{target}": sheet for target, sheet in zip(ids.values(), sheets, strict=True)},
    }
    return office_bytes({**parts, **(extra or {})})


def xlsx_bytes(
    sheets: list[list[list[str]]], *, shared: list[str] | None = None, extra: dict[str, str | bytes] | None = None
) -> bytes:
    """A workbook of ``sheets`` (rows of cells, as sheet_xml writes them) and ``shared`` strings."""
    parts = dict(extra or {})
    if shared is not None:
        items = "".join(f"<si><t>{escape(s)}</t></si>" for s in shared)
        parts["xl/sharedStrings.xml"] = f'<sst xmlns="{_S}">{items}</sst>'
    return xlsx_package([sheet_xml(rows) for rows in sheets], extra=parts)


def slide_xml(paragraphs: list[str]) -> str:
    """A slide part with one shape holding ``paragraphs``."""
    body = "".join(f"<a:p><a:r><a:t>{escape(p)}</a:t></a:r></a:p>" for p in paragraphs)
    return (
        f'<p:sld xmlns:p="{_P}" xmlns:a="{_A}"><p:cSld><p:spTree><p:sp><p:txBody>{body}</p:txBody></p:sp>'
        "</p:spTree></p:cSld></p:sld>"
    )


def pptx_package(
    slides: Sequence[str | bytes], *, order: list[int] | None = None, extra: dict[str, str | bytes] | None = None
) -> bytes:
    """A deck package as PowerPoint lays it out: the presentation lists the slide parts (slide n
    is ``slides[n - 1]``) in ``order`` (each once, by number; all in turn by default)."""
    ids = {f"rId{n}": f"slides/slide{n}.xml" for n in range(1, len(slides) + 1)}
    listed = "".join(f'<p:sldId id="{255 + n}" r:id="rId{n}"/>' for n in order or range(1, len(slides) + 1))
    presentation = f'<p:presentation xmlns:p="{_P}" xmlns:r="{_OFFICE_RELATIONS}"><p:sldIdLst>{listed}</p:sldIdLst></p:presentation>'
    parts: dict[str, str | bytes] = {
        "_rels/.rels": relationships({"rId1": "ppt/presentation.xml"}, "officeDocument"),
        "ppt/presentation.xml": presentation,
        "ppt/_rels/presentation.xml.rels": relationships(ids, "slide"),
        **{f"ppt/{target}": slide for target, slide in zip(ids.values(), slides, strict=True)},
    }
    return office_bytes({**parts, **(extra or {})})


def pptx_bytes(slides: list[list[str]], *, extra: dict[str, str | bytes] | None = None) -> bytes:
    """A deck of ``slides``, each a list of paragraphs."""
    return pptx_package([slide_xml(paragraphs) for paragraphs in slides], extra=extra)
