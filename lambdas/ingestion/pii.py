"""Finding personal data in a document's text, and masking it.

Comprehend's DetectPiiEntities takes at most 100 KB of UTF-8 per call and supports English and
Spanish: longer texts are scanned in overlapping chunks cut at whitespace, and the language is
detected first (DetectDominantLanguage). The configured custom identifiers (regular expressions)
run on the whole text in every language. Only entity types and counts leave this module.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

MAX_CALL_BYTES = 100_000  # DetectPiiEntities' and DetectDominantLanguage's limit per call
LANGUAGE_SAMPLE_CHARS = 5_000
LANGUAGE_SAMPLES = 3  # from the text's start, middle and end
SUPPORTED_LANGUAGES = ("en", "es")
UNDETERMINED = "und"  # no language Comprehend could name (a sample of numbers, blank cells)


@dataclass(frozen=True, order=True)
class Span:
    begin: int
    end: int
    type: str


@dataclass(frozen=True)
class Scan:
    language: str  # the language the text was scanned in
    supported: bool  # False: only the custom identifiers looked at the text
    spans: tuple[Span, ...]
    # A language of the text's the scan does not support (a part in it had no Comprehend pass), if any.
    unsupported: str | None = None

    def summary(self) -> dict[str, int]:
        """Entity type -> how many: what the registry and logs may keep (never the values)."""
        return dict(sorted(Counter(span.type for span in self.spans).items()))


class ScanStoppedError(Exception):
    """The time given for the scan ran out between two of its Comprehend calls: the document is
    left for a later invocation (the handler defers it), rather than the function timing out in
    the middle of a long text, with every document of its batch."""


class PiiScanner:
    def __init__(
        self,
        comprehend: Any,
        *,
        custom_identifiers: Mapping[str, str],
        min_score: float = 0.8,
        chunk_bytes: int = MAX_CALL_BYTES,
        overlap_chars: int = 200,
    ) -> None:
        self._comprehend = comprehend
        self._custom = {name.upper(): re.compile(regex) for name, regex in custom_identifiers.items()}
        self._min_score = min_score
        self._chunk_bytes = chunk_bytes
        self._overlap = overlap_chars

    def scan(self, text: str, *, language: str | None = None, seconds_left: Callable[[], float] | None = None) -> Scan:
        """Find personal data in ``text``; ``language`` (e.g. the document's, for its metadata
        fields) skips detecting it again. The text is scanned in the first language of its samples
        (languages) that Comprehend supports, the custom identifiers whatever its language; a
        language of its samples that Comprehend does not support is ``unsupported``. A chunk is
        sent only while ``seconds_left()`` is above zero (None: however long it takes), else
        ScanStoppedError."""
        found = [language] if language else self.languages(text)
        known = [code for code in found if code != UNDETERMINED] or found  # "und": no answer, not a language
        language = next((code for code in known if code in SUPPORTED_LANGUAGES), known[0])
        unsupported = next((code for code in known if code not in SUPPORTED_LANGUAGES), None)
        spans = {Span(m.start(), m.end(), name) for name, rx in self._custom.items() for m in rx.finditer(text)}
        supported = language in SUPPORTED_LANGUAGES
        if supported:
            for start, chunk in chunks(text, self._chunk_bytes, self._overlap):
                if seconds_left is not None and seconds_left() <= 0:
                    raise ScanStoppedError("the invocation's time ran out while the text was scanned for personal data")
                response = self._comprehend.detect_pii_entities(Text=chunk, LanguageCode=language)
                spans |= {
                    Span(start + e["BeginOffset"], start + e["EndOffset"], e["Type"])
                    for e in response.get("Entities", [])
                    if e.get("Score", 0) >= self._min_score
                }
        return Scan(language=language, supported=supported, spans=tuple(sorted(spans)), unsupported=unsupported)

    def languages(self, text: str) -> list[str]:
        """The dominant language of each of the text's samples, from its start, middle and end
        (_samples): judged on its start alone, a document in another language behind a preface in
        English would pass for English, past the unsupported-language policy."""
        return [self._dominant(sample) for sample in _samples(text)]

    def _dominant(self, sample: str) -> str:
        languages = self._comprehend.detect_dominant_language(Text=sample).get("Languages", [])
        best = max(languages, key=lambda lang: lang.get("Score", 0), default={"LanguageCode": UNDETERMINED})
        return str(best["LanguageCode"])


def _samples(text: str) -> list[str]:
    """Up to LANGUAGE_SAMPLES pieces of LANGUAGE_SAMPLE_CHARS characters, spread evenly from the
    text's start to its end (one for a text no longer than a piece), each within a call's bytes."""
    size = LANGUAGE_SAMPLE_CHARS
    count = min(LANGUAGE_SAMPLES, -(-len(text) // size)) or 1
    starts = [0] if count == 1 else [round(i * (len(text) - size) / (count - 1)) for i in range(count)]
    return [_fit(text[start : start + size], MAX_CALL_BYTES) for start in starts]


def chunks(text: str, max_bytes: int, overlap: int) -> Iterator[tuple[int, str]]:
    """(start offset, chunk) pairs covering ``text``: each chunk at most ``max_bytes`` of UTF-8,
    cut at whitespace where one is near, and starting ``overlap`` characters before the last
    one ended, so an entity on a boundary is seen whole by one of them."""
    start = 0
    while start < len(text):
        piece = _fit(text[start:], max_bytes)
        end = start + len(piece)
        if end < len(text):
            cut = piece.rfind(" ", len(piece) // 2)
            cut = max(cut, piece.rfind("\n", len(piece) // 2))
            if cut > 0:
                end = start + cut + 1
                piece = text[start:end]
        yield start, piece
        if end >= len(text):
            return
        start = max(end - overlap, start + 1)


def _fit(text: str, max_bytes: int) -> str:
    """The longest prefix of ``text`` whose UTF-8 encoding fits in ``max_bytes`` (only that many
    characters are encoded: each takes a byte at least, and the text may be megabytes long)."""
    prefix = text[:max_bytes]
    encoded = prefix.encode()
    if len(encoded) <= max_bytes:
        return prefix
    return encoded[:max_bytes].decode(errors="ignore")


def mask(text: str, spans: tuple[Span, ...]) -> str:
    """``text`` with every span replaced by ``[TYPE]``; overlapping spans merge (first type wins)."""
    out: list[str] = []
    position = 0
    for span in sorted(spans):
        if span.end <= position:
            continue
        out.append(text[position : max(span.begin, position)])
        if span.begin >= position:
            out.append(f"[{span.type}]")
        position = span.end
    out.append(text[position:])
    return "".join(out)
