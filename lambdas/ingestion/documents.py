"""What the pipeline accepts, and the text it reads out of each format."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import PurePosixPath
from typing import Literal, get_args

# The formats text_of reads: what ingestion.formats may name (the config imports this type).
DocumentFormat = Literal["txt", "md", "csv", "json", "html"]
SUPPORTED_FORMATS: tuple[DocumentFormat, ...] = get_args(DocumentFormat)


class RejectedError(Exception):
    """A document the pipeline will not curate: it is quarantined with this reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def document_format(key: str, allowed: tuple[str, ...]) -> str:
    suffix = PurePosixPath(key).suffix.lower().lstrip(".")
    fmt = "html" if suffix == "htm" else suffix
    if fmt not in allowed:
        raise RejectedError("unsupported_format", f"format .{suffix or '(none)'} is not one of {', '.join(allowed)}")
    return fmt


def text_of(data: bytes, fmt: str) -> str:
    """The document's text: UTF-8 only; JSON must parse; HTML loses its markup, scripts and styles."""
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
    if not text.strip():
        raise RejectedError("empty", "the document has no text")
    return text


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
