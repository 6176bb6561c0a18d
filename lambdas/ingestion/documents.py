"""What the pipeline accepts, and the text it reads out of each format.

Every reader is hostile-input safe: whatever a document holds, text_of returns its text or
raises RejectedError (the pipeline quarantines it on the first try); nothing else escapes. PDF
and DOCX readers are imported only when such a document arrives, and read within ReadLimits:
pages, extracted characters, wall-clock seconds, and what compressed parts may expand to (a
DOCX's zip members are checked from the zip directory before any is inflated; pypdf's decoders
stop at the cap).
"""

from __future__ import annotations

import io
import json
import logging
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Any, Literal, get_args

# The formats text_of reads: what ingestion.formats may name (the config imports this type).
DocumentFormat = Literal["txt", "md", "csv", "json", "html", "pdf", "docx"]
SUPPORTED_FORMATS: tuple[DocumentFormat, ...] = get_args(DocumentFormat)
BINARY_FORMATS = frozenset({"pdf", "docx"})
DOCX_MAX_MEMBERS = 2_000  # a Word file has tens of parts; thousands is an attack on the directory
# Parsers' own messages can quote the document: they never reach the logs.
for _name in ("pypdf", "docx"):
    _quiet = logging.getLogger(_name)  # their modules log to children, which inherit this level
    _quiet.setLevel(logging.CRITICAL + 1)
    _quiet.propagate = False


class RejectedError(Exception):
    """A document the pipeline will not curate: it is quarantined with this reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ReadLimits:
    """How much of a PDF or DOCX the pipeline reads before it quarantines the document instead."""

    max_pages: int = 500
    max_chars: int = 5_000_000
    seconds: float = 20.0
    max_expanded_bytes: int = 100_000_000  # what compressed streams or zip members may inflate to
    max_compression_ratio: int = 200  # per zip member: uncompressed / compressed


def document_format(key: str, allowed: tuple[str, ...]) -> str:
    """The document's format from its key's extension. The extension is the uploader's text: the
    reason names the allowed formats, never what was sent."""
    suffix = PurePosixPath(key).suffix.lower().lstrip(".")
    fmt = "html" if suffix == "htm" else suffix
    if fmt not in allowed:
        what = "has no extension" if not suffix else "has an extension that is not an allowed format"
        raise RejectedError("unsupported_format", f"the file name {what} (allowed: {', '.join(allowed)})")
    return fmt


def text_of(
    data: bytes, fmt: str, limits: ReadLimits = ReadLimits(), clock: Callable[[], float] = time.monotonic
) -> str:
    """The document's text: UTF-8 only; JSON must parse; HTML loses its markup, scripts and
    styles; PDF and DOCX within ``limits``. Raises RejectedError and nothing else."""
    try:
        if fmt == "pdf":
            text = _pdf_text(data, limits, _Budget(limits, clock))
        elif fmt == "docx":
            text = _docx_text(data, limits, _Budget(limits, clock))
        else:
            text = _plain_text(data, fmt)
    except RejectedError:
        raise
    except RecursionError:
        raise RejectedError("unreadable", f"the {fmt} document is nested too deeply to read") from None
    except Exception as error:  # a parser's failure on hostile input: the type only, never its message
        raise RejectedError("unreadable", f"the {fmt} document could not be read ({type(error).__name__})") from None
    if not text.strip():
        raise RejectedError("empty", "the document has no text")
    return text


def _plain_text(data: bytes, fmt: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RejectedError("not_text", "the document is not UTF-8 text") from None
    if "\x00" in text:
        raise RejectedError("not_text", "the document contains NUL bytes (a binary file?)")
    if fmt == "json":
        try:
            json.loads(text)
        except ValueError:
            raise RejectedError("invalid_json", "the document is not valid JSON") from None
    if fmt == "html":
        parser = _Text()
        parser.feed(text)
        parser.close()
        text = parser.text()
    return text


class _Budget:
    """Characters and seconds left while a reader walks a document."""

    def __init__(self, limits: ReadLimits, clock: Callable[[], float]) -> None:
        self._limits = limits
        self._clock = clock
        self._deadline = clock() + limits.seconds
        self._parts: list[str] = []
        self._chars = 0

    def add(self, text: str) -> None:
        if self._clock() > self._deadline:
            raise RejectedError("too_slow", f"reading the text took longer than {self._limits.seconds:g} seconds")
        self._chars += len(text)
        if self._chars > self._limits.max_chars:
            raise RejectedError("too_much_text", f"the text is over the {self._limits.max_chars} character limit")
        self._parts.append(text)

    def text(self, separator: str = "\n") -> str:
        return separator.join(self._parts)


def _pdf_text(data: bytes, limits: ReadLimits, budget: _Budget) -> str:
    from pypdf import PdfReader, apply_configuration  # only when a PDF arrives
    from pypdf.errors import LimitReachedError

    cap = limits.max_expanded_bytes
    bounded = {
        "maximum_declared_stream_length": cap,
        "array_based_stream_maximum_output_length": cap,
        "zlib_maximum_output_length": cap,
        "lzw_maximum_output_length": cap,
        "run_length_maximum_output_length": cap,
        "jbig2_maximum_output_length": cap,
        "brotli_maximum_output_length": cap,
        "flate_maximum_buffer_size": cap,
        "image_maximum_buffer_size": cap,
        "stream_decoding_work_maximum_length": cap,
        "jbig2dec_binary": None,  # never start a process for a document
        "disable_legacy_handling": True,
    }
    try:
        with apply_configuration(**_known_settings(bounded)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted:
                raise RejectedError("encrypted", "the PDF is encrypted")
            pages = len(reader.pages)
            if pages > limits.max_pages:
                raise RejectedError("too_many_pages", f"{pages} pages is over the {limits.max_pages} page limit")
            for page in reader.pages:
                budget.add(page.extract_text())
    except LimitReachedError:
        raise RejectedError("decompression_bomb", f"the PDF's streams expand past {cap} bytes") from None
    text = budget.text()
    if pages and not text.strip():
        raise RejectedError("needs_ocr", "the PDF has no text layer (scanned pages need OCR)")
    return text


def _known_settings(settings: dict[str, Any]) -> dict[str, Any]:
    from pypdf import Configuration

    return {name: value for name, value in settings.items() if name in Configuration.__dataclass_fields__}


def _docx_text(data: bytes, limits: ReadLimits, budget: _Budget) -> str:
    _check_zip(data, limits)
    import docx  # only when a DOCX arrives
    from docx.oxml.ns import qn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        document = docx.Document(io.BytesIO(data))
        paragraph, run_text = qn("w:p"), qn("w:t")
        for element in document.element.body.iter(paragraph):  # tables' paragraphs too
            budget.add("".join(t.text or "" for t in element.iter(run_text)))
    return budget.text()


def _check_zip(data: bytes, limits: ReadLimits) -> None:
    """Refuse a zip bomb from the central directory, before anything is inflated. Python's zipfile
    stops a member at its declared size (and fails its CRC), so declared sizes bound the work."""
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise RejectedError("unreadable", "the docx document is not a readable zip file") from None
    if len(members) > DOCX_MAX_MEMBERS:
        raise RejectedError("decompression_bomb", f"the DOCX has over {DOCX_MAX_MEMBERS} parts")
    total = 0
    for member in members:
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        if total > limits.max_expanded_bytes or (member.file_size > 1_000_000 and ratio > limits.max_compression_ratio):
            raise RejectedError(
                "decompression_bomb",
                f"the DOCX's parts expand past {limits.max_expanded_bytes} bytes or "
                f"{limits.max_compression_ratio} times their compressed size",
            )


class _Text(HTMLParser):
    SKIPPED = frozenset({"script", "style", "template", "noscript"})
    BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self._parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self._parts.append(data)

    def text(self) -> str:
        lines = (" ".join(line.split()) for line in "".join(self._parts).splitlines())
        return "\n".join(line for line in lines if line)
